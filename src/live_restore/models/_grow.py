"""Grow a trained DFCAN into a wider and deeper one that computes the same function.

Why: the published DFCAN (64 features, 4 groups x 4 FCABs) costs ~5.6 s per training step on a
2-core CPU, so training it from scratch there is out of reach, while its CPU-size sibling
(``dfcan-sr2x-lite``, 32 features, 2 x 2) has thousands of steps behind it. Net2Net (Chen,
Goodfellow and Shlens, ICLR 2016) starts the large network *at* the small one's function and
lets the added capacity learn from there:

- wider: every feature channel (and every channel of the attention's reduced gate) is copied;
  a layer reading copied channels splits each original input weight between the copies in
  random shares that sum to one, so outputs are unchanged while the copies get different
  gradients (identical copies would stay identical forever);
- deeper: an added FCAB has its second convolution zeroed, so its branch is exactly 0 and the
  block is the identity; an added residual group (``x + blocks(x)``) then doubles its input,
  which the tail convolution's weights undo (it is linear in its input).

The grown network equals the small one to float rounding (tested), before any training.
"""

from __future__ import annotations

import torch
from torch import nn

from .dfcan import DFCAN, FCAB, FourierChannelAttention

__all__ = ["grow_dfcan"]


def _copies(old: int, new: int) -> torch.Tensor:
    """Index of the original channel behind each of ``new`` channels (first ``old``: themselves)."""
    if new < old:
        raise ValueError(f"cannot shrink {old} channels to {new}")
    return torch.arange(new) % old


def _input_shares(source: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per new input channel, its share of its original's weight (copies' shares sum to 1)."""
    raw = 0.5 + torch.rand(len(source), generator=generator)  # in [0.5, 1.5): no share near 0
    totals = torch.zeros(int(source.max()) + 1).index_add_(0, source, raw)
    return raw / totals[source]


def _grow_conv(
    small: nn.Conv2d,
    large: nn.Conv2d,
    out_source: torch.Tensor | None,
    in_source: torch.Tensor | None,
    generator: torch.Generator,
) -> None:
    """Copy ``small`` into ``large``, output channels from ``out_source``, inputs split.

    ``in_source``: the original of each input channel, whose weight the copies share;
    None: the same channels as ``small``.
    """
    weight = small.weight.detach()
    bias = small.bias.detach() if small.bias is not None else None
    if out_source is not None:
        weight = weight[out_source]
        bias = bias[out_source] if bias is not None else None
    if in_source is not None:
        shares = _input_shares(in_source, generator)
        weight = weight[:, in_source] * shares[None, :, None, None]
    with torch.no_grad():
        large.weight.copy_(weight)
        if large.bias is not None and bias is not None:
            large.bias.copy_(bias)


def _grow_attention(
    small: FourierChannelAttention,
    large: FourierChannelAttention,
    features: torch.Tensor,
    generator: torch.Generator,
) -> None:
    reduced = _copies(small.down.out_channels, large.down.out_channels)
    _grow_conv(small.spectrum_conv, large.spectrum_conv, features, features, generator)
    _grow_conv(small.down, large.down, reduced, features, generator)
    _grow_conv(small.up, large.up, features, reduced, generator)


def _grow_fcab(small: FCAB, large: FCAB, features: torch.Tensor, gen: torch.Generator) -> None:
    _grow_conv(small.conv1, large.conv1, features, features, gen)
    _grow_conv(small.conv2, large.conv2, features, features, gen)
    _grow_attention(small.attention, large.attention, features, gen)


def _silence(block: FCAB) -> None:
    """Make an added FCAB the identity: its branch ends in GELU(conv2(.)) = GELU(0) = 0."""
    with torch.no_grad():
        block.conv2.weight.zero_()
        if block.conv2.bias is not None:
            block.conv2.bias.zero_()


def _fcabs(network: DFCAN) -> list[list[FCAB]]:
    """The FCABs of each residual group, in order."""
    return [[m for m in group.modules() if isinstance(m, FCAB)] for group in network.groups]


def grow_dfcan(
    small: DFCAN, features: int = 64, groups: int = 4, blocks: int = 4, seed: int = 0
) -> DFCAN:
    """A DFCAN of the given size that computes what ``small`` computes.

    The large network keeps ``small``'s input channels, scale, reduction and attention size;
    ``features``, ``groups`` and ``blocks`` must each be at least ``small``'s, and the
    attention's reduced width must not shrink. ``seed`` draws the weight shares that break the
    copies' symmetry and the added layers' initial weights.
    """
    small_blocks = _fcabs(small)
    old_groups, old_blocks = len(small.groups), small.blocks_per_group
    old_features = small.features
    first = small_blocks[0][0].attention
    reduction = old_features // first.down.out_channels
    if groups < old_groups or blocks < old_blocks or features < old_features:
        raise ValueError(
            f"cannot grow DFCAN {old_features}/{old_groups}/{old_blocks} "
            f"(features/groups/blocks) into {features}/{groups}/{blocks}: only larger sizes"
        )
    # the added layers' own initial weights come from ``seed`` too, not the global generator
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        large = DFCAN(
            in_channels=small.in_channels,
            scale=small.scale,
            features=features,
            groups=groups,
            blocks=blocks,
            reduction=reduction,
            attention_size=first.size,
        )
    generator = torch.Generator().manual_seed(seed)
    channels = _copies(old_features, features)
    _grow_conv(small.head, large.head, channels, None, generator)
    for g, large_group in enumerate(_fcabs(large)):
        for b, large_block in enumerate(large_group):
            if g < old_groups and b < old_blocks:
                _grow_fcab(small_blocks[g][b], large_block, channels, generator)
            else:
                _silence(large_block)
    # the tail's output channel c·s² + k feeds pixel-shuffled channel c at sub-position k
    s2 = small.scale**2
    tail_source = (channels[:, None] * s2 + torch.arange(s2)[None, :]).reshape(-1)
    _grow_conv(small.tail, large.tail, tail_source, channels, generator)
    with torch.no_grad():
        # each added group doubled the features (x + identity blocks(x))
        large.tail.weight /= 2.0 ** (groups - old_groups)
    _grow_conv(small.out, large.out, None, channels, generator)
    return large.train(small.training)
