import numpy as np
import pytest
import torch
from torch import nn

from live_restore.models import DFCAN, DFGANDiscriminator
from live_restore.models._fourier import attention_spectrum, tf_bilinear_matrix


def _count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


# Parameter counts from the published Keras DFCAN16.py layer shapes:
# head 3x3 in->64; 16 FCABs of [2 x conv3x3 64->64, attention conv3x3 64->64, 1x1 64->4,
# 1x1 4->64]; tail 3x3 64->64*s^2; output 3x3 64->1 (all with biases).
_FCAB = 2 * (64 * 64 * 9 + 64) + (64 * 64 * 9 + 64) + (64 * 4 + 4) + (4 * 64 + 64)


@pytest.mark.parametrize(("in_channels", "scale"), [(1, 2), (1, 3), (9, 2)])
def test_parameter_count_matches_the_published_keras_model(in_channels, scale):
    expected = (
        (in_channels * 64 * 9 + 64)
        + 16 * _FCAB
        + (64 * 64 * scale**2 * 9 + 64 * scale**2)
        + (64 * 9 + 1)
    )
    assert _count(DFCAN(in_channels=in_channels, scale=scale)) == expected
    if (in_channels, scale) == (1, 2):
        assert expected == 1_930_753


def test_layer_sequence_is_the_published_one():
    net = DFCAN()
    convs = [m for m in net.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 1 + 16 * 5 + 2
    assert len(net.groups) == 4 and all(len(g.blocks) == 4 for g in net.groups)
    attention = net.groups[0].blocks[0].attention
    assert (attention.size, attention.gamma) == (128, 0.8)
    assert (attention.down.out_channels, attention.up.out_channels) == (4, 64)
    x = torch.rand(1, 1, 32, 32)
    with torch.no_grad():
        y = net(x)
    assert y.shape == (1, 1, 64, 64) and float(y.min()) > 0 and float(y.max()) < 1  # sigmoid


def test_tf_legacy_bilinear_resize():
    down = tf_bilinear_matrix(512, 128)
    assert np.array_equal(np.flatnonzero(down.sum(axis=0)), np.arange(0, 512, 4))
    up = tf_bilinear_matrix(64, 128)
    assert np.allclose(up[1, :2], [0.5, 0.5]) and np.allclose(up[-1, -1], 1.0)
    assert np.allclose(up.sum(axis=1), 1.0)


def _keras_spectrum(x: np.ndarray, gamma: float) -> np.ndarray:
    """The published fft2d + fftshift2d (before the resize), written as Keras slices them."""
    magnitude = (np.abs(np.fft.fft2(x)) + 1e-8) ** gamma
    h, w = x.shape[-2:]
    fs11 = magnitude[..., -h // 2 : h, -w // 2 : w]
    fs12 = magnitude[..., -h // 2 : h, 0 : w // 2]
    fs21 = magnitude[..., 0 : h // 2, -w // 2 : w]
    fs22 = magnitude[..., 0 : h // 2, 0 : w // 2]
    top = np.concatenate([fs11, fs21], axis=-2)
    bottom = np.concatenate([fs12, fs22], axis=-2)
    return np.concatenate([top, bottom], axis=-1)


@pytest.mark.parametrize(
    "shape", [(32, 48), (37, 45), (128, 128), (256, 256), (33, 200), (512, 384), (384, 200)]
)
def test_spectrum_fft_and_dft_agree_with_the_published_code(shape):
    # (128, 128) .. (512, 384): sides the spectrum's size divides, computed by folding
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 3, *shape)).astype(np.float32)
    size = 128
    reference = _keras_spectrum(x.astype(np.float64), 0.8)
    reference = (
        tf_bilinear_matrix(shape[0], size) @ reference @ tf_bilinear_matrix(shape[1], size).T
    )
    for method in ("fft", "dft"):
        got = attention_spectrum(torch.from_numpy(x), 0.8, size, method).numpy()
        assert np.allclose(got, reference, rtol=1e-4, atol=1e-4), method


def test_spectrum_gradient_is_finite_where_a_feature_map_is_all_zero():
    # a dead channel (all zero after GELU) has a zero spectrum: training must not turn it to nan
    x = torch.zeros(1, 2, 64, 64)
    x[0, 1] = torch.rand(64, 64)
    x.requires_grad_(True)
    attention_spectrum(x, 0.8, 128).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())
    assert float(x.grad[0, 1].abs().sum()) > 0


def test_training_works_after_inference_at_the_same_size_in_one_process():
    # the spectrum's cached index is made once; made under inference_mode it could not join
    # autograd, and a session restoring frames would break training in the same process
    x = torch.rand(1, 2, 48, 80)
    with torch.inference_mode():
        attention_spectrum(x, 0.8, 96)
    x.requires_grad_(True)
    attention_spectrum(x, 0.8, 96).sum().backward()
    assert x.grad is not None and bool(torch.isfinite(x.grad).all())


def test_whole_network_same_with_either_spectrum():
    torch.manual_seed(0)
    net = DFCAN(features=16, groups=1, blocks=2, reduction=4).eval()
    x = torch.rand(1, 1, 40, 40)
    with torch.no_grad():
        a = net(x)
        net.set_spectrum_method("dft")
        b = net(x)
    assert torch.allclose(a, b, atol=1e-5)


def test_dfgan_discriminator_gives_a_probability():
    out = DFGANDiscriminator()(torch.rand(2, 1, 32, 32))
    assert out.shape == (2, 1) and bool(((out > 0) & (out < 1)).all())
    convs = [m for m in DFGANDiscriminator().modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 11


def test_bad_configuration_is_refused():
    with pytest.raises(ValueError, match="scale"):
        DFCAN(scale=5)
    with pytest.raises(ValueError, match="reduced"):
        DFCAN(features=8, reduction=16)
