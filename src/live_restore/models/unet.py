"""The refocus U-Net: a defocused widefield frame -> its in-focus estimate (same grid).

Encoder-decoder with skip connections (Ronneberger et al. 2015), GroupNorm instead of BatchNorm
(so one frame at inference behaves as a batch did in training), and a residual output: the net
predicts the correction added to its input, which is what refocusing is. Trained with pixel loss
plus a feature loss whose features come from this project's own ``focus-est`` network (no
ImageNet weights can be downloaded here; a defocus estimator's features are blur-sensitive,
which is what a refocus loss should see).
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["RefocusUNet"]


def _double_conv(in_channels: int, out_channels: int) -> nn.Sequential:
    groups = min(8, out_channels)
    return nn.Sequential(
        nn.Conv2d(in_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.GELU(),
        nn.Conv2d(out_channels, out_channels, 3, padding=1),
        nn.GroupNorm(groups, out_channels),
        nn.GELU(),
    )


class RefocusUNet(nn.Module):
    """U-Net ``(N, 1, H, W) -> (N, 1, H, W)``; H and W must be multiples of ``2**depth``.

    Parameters
    ----------
    features : int
        Channels at full resolution; doubled at each level down.
    depth : int
        Number of 2x downsamplings.
    """

    def __init__(self, features: int = 16, depth: int = 3) -> None:
        super().__init__()
        if features < 1 or depth < 1:
            raise ValueError("features and depth must be >= 1")
        self.depth = depth
        widths = [features * 2**level for level in range(depth + 1)]
        self.down = nn.ModuleList(
            [_double_conv(1, widths[0])]
            + [_double_conv(widths[i], widths[i + 1]) for i in range(depth)]
        )
        self.upsample = nn.ModuleList(
            nn.ConvTranspose2d(widths[i + 1], widths[i], 2, stride=2) for i in range(depth)
        )
        self.up = nn.ModuleList(_double_conv(2 * widths[i], widths[i]) for i in range(depth))
        self.out = nn.Conv2d(widths[0], 1, 1)

    @property
    def stride(self) -> int:
        """Input sides must be multiples of this."""
        return int(2**self.depth)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] % self.stride or x.shape[-2] % self.stride:
            raise ValueError(
                f"input {tuple(x.shape[-2:])} is not a multiple of {self.stride} on each side"
            )
        skips = []
        y = x
        for level, block in enumerate(self.down):
            y = block(y if level == 0 else nn.functional.max_pool2d(y, 2))
            skips.append(y)
        skips.pop()
        for level in reversed(range(self.depth)):
            y = self.up[level](torch.cat([self.upsample[level](y), skips.pop()], dim=1))
        return x + self.out(y)
