"""A heteroscedastic head: per-pixel Laplace scale of a frozen restoration's error.

The head sees what the restoration saw and what it made: the raw frame and the restored frame,
each scaled to its own 0.1-99.9 % range, and predicts ``b``, the scale of a Laplace
distribution of the restoration's error (so ``b`` is the expected absolute error), in the
restored frame's range units. Trained with the Laplace negative log-likelihood
``|error| / b + log b`` against the simulator's truth (``training/_trust_head.py``), with the
restoration network frozen: the restored image is exactly what the model gives without it.

It runs at the raw frame's resolution: the restored frame is folded into ``scale``² channels
(space-to-depth) beside the raw one, and ``scale``² scales are unfolded back, so it costs a
quarter of the same network at the output's resolution for a 2x model. Dilated convolutions
give it a 31 px field of view (raw pixels) at four layers.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F

__all__ = ["TrustHead"]


class TrustHead(nn.Module):
    """(raw, restored) in range units -> Laplace scale ``b`` of the restoration's error."""

    def __init__(self, scale: int = 2, features: int = 16) -> None:
        super().__init__()
        self.scale = scale
        folded = 1 + scale * scale
        layers: list[nn.Module] = []
        width = folded
        for dilation in (1, 2, 4, 8):
            layers += [nn.Conv2d(width, features, 3, padding=dilation, dilation=dilation)]
            layers += [nn.ReLU(inplace=True)]
            width = features
        layers.append(nn.Conv2d(features, scale * scale, 1))
        self.body = nn.Sequential(*layers)

    def forward(self, raw: torch.Tensor, restored: torch.Tensor) -> torch.Tensor:
        """``raw`` (N, 1, H, W), ``restored`` (N, 1, sH, sW) -> ``b`` (N, 1, sH, sW), > 0."""
        folded = F.pixel_unshuffle(restored, self.scale) if self.scale > 1 else restored
        out = self.body(torch.cat([raw, folded], dim=1))
        out = F.pixel_shuffle(out, self.scale) if self.scale > 1 else out
        # softplus keeps b positive with a gradient everywhere; the floor keeps log b finite
        return F.softplus(out) + 1e-4
