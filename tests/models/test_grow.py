import pytest
import torch

from live_restore.models import DFCAN, grow_dfcan


def _trained_small(seed: int = 0) -> DFCAN:
    """A small DFCAN with random (not default) weights and biases, as training leaves them."""
    torch.manual_seed(seed)
    small = DFCAN(features=16, groups=1, blocks=1, attention_size=32)
    with torch.no_grad():
        for p in small.parameters():
            p.normal_(0.0, 0.2)
    return small.eval()


@pytest.mark.parametrize(("scale", "in_channels"), [(2, 1), (3, 1), (2, 9)])
def test_grown_network_computes_what_the_small_one_does(scale, in_channels):
    torch.manual_seed(1)
    small = DFCAN(in_channels, scale, features=16, groups=1, blocks=1, attention_size=32)
    with torch.no_grad():
        for p in small.parameters():
            p.normal_(0.0, 0.2)
    large = grow_dfcan(small.eval(), features=32, groups=3, blocks=2)
    assert (len(large.groups), len(large.groups[0].blocks), large.head.out_channels) == (3, 2, 32)
    assert large.groups[0].blocks[0].attention.down.out_channels == 2  # reduction 16 kept
    x = torch.rand(2, in_channels, 23, 30)  # odd sizes too
    with torch.no_grad():
        expected, grown = small(x), large(x)
    assert grown.shape == expected.shape == (2, 1, 23 * scale, 30 * scale)
    # float32 rounding of the split sums: up to 2.3e-6 (9 input channels) on one 2-core VM's
    # kernels, under 2e-6 on another; 5e-6 is still ~40 ulps of outputs near 1
    torch.testing.assert_close(grown, expected, atol=5e-6, rtol=0)


def test_copied_channels_learn_apart():
    # identical copies with identical outgoing weights would get identical gradients forever
    large = grow_dfcan(_trained_small(), features=32, groups=1, blocks=1).train()
    x = torch.rand(2, 1, 24, 24)
    large(x).mean().backward()
    grad = large.head.weight.grad
    assert grad is not None
    # channel c and its copy c + 16 start with the same incoming weights ...
    torch.testing.assert_close(large.head.weight[:16], large.head.weight[16:])
    # ... but their gradients differ, so they part after the first step
    assert (grad[:16] - grad[16:]).abs().amax() > 1e-6


def test_growing_is_seeded_and_refuses_to_shrink():
    small = _trained_small()
    a, b = grow_dfcan(small, 32, 2, 2, seed=3), grow_dfcan(small, 32, 2, 2, seed=3)
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(ValueError, match="only larger sizes"):
        grow_dfcan(small, features=8)
