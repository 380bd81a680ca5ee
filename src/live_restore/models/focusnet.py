"""focus-est: defocus (µm) with an uncertainty and a sign, from one patch of a widefield frame.

A small CNN (each patch standardised; four stride-2 stages with GroupNorm; mean and
standard-deviation pooling) gives, per 64x64 patch, the defocus magnitude, the log-variance of
that magnitude (trained with the Gaussian negative log-likelihood, so the variance is calibrated
to the error) and a logit for the sign. Magnitude and sign are separate outputs: blur shows the
magnitude plainly, while the sign is observable only through the asymmetry that the objective's
spherical aberration gives +z and -z (in the simulator as on a real objective), which is weak at
low light. A frame's estimate pools its patches by inverse variance: empty or noisy patches say
so through their variance and weigh little.

Its convolutional trunk is also the feature extractor for the refocus network's feature loss.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["FocusNet"]


class FocusNet(nn.Module):
    """Normalised patches ``(N, 1, P, P)`` -> ``(N, 3)``: |defocus| (µm), its log-variance.

    The third output is the logit that defocus is positive (stage above the focal plane).
    """

    def __init__(self, features: int = 16, stages: int = 4) -> None:
        super().__init__()
        if features < 1 or stages < 1:
            raise ValueError("features and stages must be >= 1")
        layers: list[nn.Module] = []
        in_channels = 1
        for stage in range(stages):
            width = features * 2**stage
            layers.append(
                nn.Sequential(
                    nn.Conv2d(in_channels, width, 3, padding=1),
                    nn.GroupNorm(min(8, width), width),
                    nn.GELU(),
                    nn.Conv2d(width, width, 3, stride=2, padding=1),
                    nn.GroupNorm(min(8, width), width),
                    nn.GELU(),
                )
            )
            in_channels = width
        self.trunk = nn.ModuleList(layers)
        # mean and standard deviation pooling: blur shows in how features vary, not only in
        # their average
        self.head = nn.Sequential(nn.Linear(2 * in_channels, 64), nn.GELU(), nn.Linear(64, 3))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """Activations after each stage (for a feature loss)."""
        # blur is relative contrast: each patch standardised, so brightness cannot distract
        x = (x - x.mean(dim=(-2, -1), keepdim=True)) / (x.std(dim=(-2, -1), keepdim=True) + 1e-3)
        outputs = []
        for stage in self.trunk:
            x = stage(x)
            outputs.append(x)
        return outputs

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        last = self.features(x)[-1]
        pooled = torch.cat([last.mean(dim=(-2, -1)), last.std(dim=(-2, -1))], dim=1)
        output = self.head(pooled)
        # a magnitude cannot be negative; softplus keeps the gradient alive near zero
        magnitude = nn.functional.softplus(output[:, :1])
        return torch.cat([magnitude, output[:, 1:]], dim=1)
