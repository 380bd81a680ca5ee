"""DFCAN, the deep Fourier channel attention network (Qiao et al., Nature Methods 2021).

Layer for layer the authors' Keras ``DFCAN16.py`` (github.com/qc17-THU/DL-SR), so parameter for
parameter at the published size (64 features, 4 residual groups x 4 FCABs):

- head: conv3x3 (in -> 64) + GELU;
- residual group: 4 FCABs, then + the group's input;
- FCAB: conv3x3 + GELU, conv3x3 + GELU, Fourier channel attention, then + the block's input;
- Fourier channel attention: |FFT2|^0.8 (+1e-8 inside), fftshift, bilinear resize to 128x128,
  conv3x3 + ReLU, global average pool, conv1x1 64 -> 4 + ReLU, conv1x1 4 -> 64 + sigmoid,
  multiply the features;
- tail: conv3x3 (64 -> 64·s²) + GELU, pixel shuffle, conv3x3 (64 -> 1), sigmoid.

Differences that do not change the function class: torch's ``pixel_shuffle`` orders channels
differently from TF's ``depth_to_space`` (a permutation of the tail conv's filters), and GELU is
exact (erf), as the Keras code's own ``gelu``. Smaller widths and depths (``features``,
``groups``, ``blocks``) give the CPU "lite" variants with the same structure.

The DFGAN discriminator (:class:`DFGANDiscriminator`) is the published one: conv3x3 32 +
LeakyReLU(0.1), five blocks of two conv3x3 (32, 64, 128, 256, 512), global average pooling,
dense 256 + LeakyReLU, dense 1 + sigmoid.
"""

from __future__ import annotations

import torch
from torch import nn

from ._fourier import SpectrumMethod, attention_spectrum

__all__ = ["DFCAN", "DFGANDiscriminator", "FourierChannelAttention"]


class FourierChannelAttention(nn.Module):
    """Rescale each feature map by a gate computed from its power spectrum."""

    def __init__(
        self,
        features: int,
        reduction: int = 16,
        size: int = 128,
        gamma: float = 0.8,
        reference_px: int | None = None,
    ) -> None:
        super().__init__()
        if features // reduction < 1:
            raise ValueError(f"{features} features cannot be reduced {reduction}-fold")
        self.size = size
        self.gamma = gamma
        self.reference_px = reference_px
        self.spectrum_method: SpectrumMethod = "fft"
        self.spectrum_conv = nn.Conv2d(features, features, 3, padding=1)
        self.down = nn.Conv2d(features, features // reduction, 1)
        self.up = nn.Conv2d(features // reduction, features, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spectrum = attention_spectrum(
            x, self.gamma, self.size, self.spectrum_method, self.reference_px
        )
        weights = torch.relu(self.spectrum_conv(spectrum)).mean(dim=(-2, -1), keepdim=True)
        weights = torch.sigmoid(self.up(torch.relu(self.down(weights))))
        return x * weights


class FCAB(nn.Module):
    """Fourier channel attention block: two conv-GELU, attention, residual."""

    def __init__(
        self, features: int, reduction: int, attention_size: int, reference_px: int | None
    ) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(features, features, 3, padding=1)
        self.conv2 = nn.Conv2d(features, features, 3, padding=1)
        self.attention = FourierChannelAttention(
            features, reduction, attention_size, reference_px=reference_px
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = nn.functional.gelu(self.conv2(nn.functional.gelu(self.conv1(x))))
        return x + self.attention(y)


class ResidualGroup(nn.Module):
    """Several FCABs with an identity skip over the group."""

    def __init__(
        self,
        features: int,
        blocks: int,
        reduction: int,
        attention_size: int,
        reference_px: int | None = None,
    ) -> None:
        super().__init__()
        self.blocks = nn.Sequential(
            *(FCAB(features, reduction, attention_size, reference_px) for _ in range(blocks))
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.blocks(x)


class DFCAN(nn.Module):
    """DFCAN: ``(N, in_channels, H, W)`` in [0, 1] -> ``(N, 1, s·H, s·W)`` in (0, 1).

    Parameters
    ----------
    in_channels : int
        1 for a widefield frame, 9 for a SIM raw set (3 angles x 3 phases).
    scale : int
        Upsampling factor (2 or 3 as published; 1 keeps the grid, for denoising/refocus).
    features, groups, blocks : int
        Width and depth; the published DFCAN is 64, 4, 4.
    reduction : int
        Channel reduction inside the attention gate (published: 16).
    attention_size : int
        Size the spectrum is resized to inside the attention (published: 128).
    spectrum_reference_px : int, optional
        Scale the attention's spectrum by this side over the input's (sqrt of its area), so its
        magnitudes do not grow with the input (published: None, unscaled). Set to the training
        patch, a network trained on patches runs whole frames with the attention it learned:
        dfcan-sr2x-tiny gained 0.4 dB over 128 px tiles, and 2.4 dB over unscaled whole frames,
        at 512x512 (benchmarks/RESULTS.md).
    """

    def __init__(
        self,
        in_channels: int = 1,
        scale: int = 2,
        features: int = 64,
        groups: int = 4,
        blocks: int = 4,
        reduction: int = 16,
        attention_size: int = 128,
        spectrum_reference_px: int | None = None,
    ) -> None:
        super().__init__()
        if scale not in (1, 2, 3, 4):
            raise ValueError(f"scale {scale} is not supported: use 1, 2, 3 or 4")
        if in_channels < 1 or features < 1 or groups < 1 or blocks < 1:
            raise ValueError("in_channels, features, groups and blocks must be >= 1")
        self.scale = scale
        self.in_channels = in_channels
        self.features = features
        self.blocks_per_group = blocks
        self.head = nn.Conv2d(in_channels, features, 3, padding=1)
        self.groups = nn.Sequential(
            *(
                ResidualGroup(features, blocks, reduction, attention_size, spectrum_reference_px)
                for _ in range(groups)
            )
        )
        self.tail = nn.Conv2d(features, features * scale * scale, 3, padding=1)
        self.shuffle = nn.PixelShuffle(scale)
        self.out = nn.Conv2d(features, 1, 3, padding=1)

    def set_spectrum_method(self, method: SpectrumMethod) -> None:
        """Compute the attention spectrum by FFT (training, eager) or sampled DFT (export)."""
        for module in self.modules():
            if isinstance(module, FourierChannelAttention):
                module.spectrum_method = method

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = self.groups(nn.functional.gelu(self.head(x)))
        upsampled = self.shuffle(nn.functional.gelu(self.tail(features)))
        return torch.sigmoid(self.out(upsampled))


class DFGANDiscriminator(nn.Module):
    """The DFGAN discriminator: an SR image -> probability that it is a real SIM image.

    The defaults are the published network. ``widths`` and ``stride`` give the CPU variant: each
    block's first conv strided, so the wide blocks run on small maps (the published one runs
    512 channels at the full SR size, about 80 GFLOP per 256x256 image).
    """

    def __init__(
        self,
        in_channels: int = 1,
        widths: tuple[int, ...] = (32, 64, 128, 256, 512),
        stride: int = 1,
        dense: int = 256,
    ) -> None:
        super().__init__()
        first = widths[0]
        layers: list[nn.Module] = [nn.Conv2d(in_channels, first, 3, padding=1), nn.LeakyReLU(0.1)]
        previous = first
        for width in widths:
            layers += [
                nn.Conv2d(previous, width, 3, stride=stride, padding=1),
                nn.LeakyReLU(0.1),
                nn.Conv2d(width, width, 3, padding=1),
                nn.LeakyReLU(0.1),
            ]
            previous = width
        self.features = nn.Sequential(*layers)
        self.dense = nn.Linear(previous, dense)
        self.decision = nn.Linear(dense, 1)
        # He initialisation for LeakyReLU(0.1), biases zero (Keras's are too): torch's default
        # shrinks the signal about 3-fold a layer while its random biases stay, so after 12
        # layers the decision no longer depended on the image at all (measured: 0.5010 for
        # zeros and for noise alike)
        for module in self.modules():
            if isinstance(module, nn.Conv2d | nn.Linear):
                nn.init.kaiming_normal_(module.weight, a=0.1, nonlinearity="leaky_relu")
                if module.bias is not None:
                    nn.init.zeros_(module.bias)

    def logit(self, x: torch.Tensor) -> torch.Tensor:
        """The decision before its sigmoid (what a numerically safe BCE takes)."""
        pooled = self.features(x).mean(dim=(-2, -1))
        return self.decision(nn.functional.leaky_relu(self.dense(pooled), 0.1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.logit(x))
