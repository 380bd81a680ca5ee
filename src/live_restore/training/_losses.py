"""Training losses.

- :func:`mse_ssim_loss`: DFCAN's published loss, MSE + 0.1·(1 − SSIM).
- :func:`charbonnier_frequency_loss`: Charbonnier penalty on the difference of spectra (Jin et
  al., Optics Express 2024): it weighs the weak high frequencies that pixel losses ignore.
- :class:`FeatureLoss`: L1 between the activations of a frozen network this project trained
  (``focus-est``'s trunk), the feature (perceptual) loss of the refocus model.
- :func:`defocus_loss`: for the defocus estimator's magnitude, log-variance and sign outputs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

__all__ = ["FeatureLoss", "charbonnier_frequency_loss", "defocus_loss", "mse_ssim_loss"]


def mse_ssim_loss(
    prediction: torch.Tensor, target: torch.Tensor, weight: float = 0.1
) -> torch.Tensor:
    """MSE + weight·(1 − SSIM), images in [0, 1] (SSIM window 11, σ 1.5)."""
    from pytorch_msssim import ssim

    mse = nn.functional.mse_loss(prediction, target)
    similarity = ssim(prediction, target, data_range=1.0, size_average=True)
    return mse + weight * (1.0 - similarity)


def charbonnier_frequency_loss(
    prediction: torch.Tensor, target: torch.Tensor, epsilon: float = 1e-3
) -> torch.Tensor:
    """Mean of sqrt(|F(prediction) − F(target)|² + ε²), spectra orthonormally scaled."""
    difference = torch.fft.fft2(prediction - target, norm="ortho")
    return torch.sqrt(difference.real**2 + difference.imag**2 + epsilon**2).mean()


def defocus_loss(
    output: torch.Tensor, target: torch.Tensor, sign_scale_um: float = 0.3
) -> torch.Tensor:
    """Magnitude error + Gaussian NLL of its variance + cross-entropy of the sign.

    ``output[:, 0]`` is |defocus| (µm), ``output[:, 1]`` its log-variance, ``output[:, 2]`` the
    logit that defocus is positive; ``target[:, 0]`` the signed defocus. Magnitude and sign are
    learned apart because blur shows the magnitude plainly while the sign rests on the weak
    asymmetry that spherical aberration gives; one signed regression learned neither well
    (validation error at the spread of the targets: it averaged the two signs to zero). The
    variance learns from the detached error (the NLL alone let the network explain every error
    by a large variance). The sign weighs little near focus, where it means nothing.
    """
    defocus = target[:, 0]
    magnitude, log_variance = output[:, 0], output[:, 1].clamp(-12.0, 8.0)
    squared = (defocus.abs() - magnitude) ** 2
    nll = 0.5 * (log_variance + squared.detach() * torch.exp(-log_variance))
    weight = (defocus.abs() / sign_scale_um).clamp(max=1.0)
    sign = nn.functional.binary_cross_entropy_with_logits(
        output[:, 2], (defocus > 0).to(output.dtype), weight=weight, reduction="none"
    )
    return (squared + nll + sign).mean()


class FeatureLoss(nn.Module):
    """L1 distance between a frozen extractor's activations of prediction and target."""

    def __init__(self, extractor: nn.Module, layer_weights: Sequence[float]) -> None:
        super().__init__()
        if not hasattr(extractor, "features"):
            raise TypeError("the feature extractor needs a features(x) -> list of tensors method")
        self.extractor = extractor.eval()
        for parameter in self.extractor.parameters():
            parameter.requires_grad_(False)
        self.layer_weights = list(layer_weights)

    def forward(self, prediction: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        features = cast(Callable[[torch.Tensor], list[torch.Tensor]], self.extractor.features)
        predicted, wanted = features(prediction), features(target)
        total = prediction.new_zeros(())
        for weight, a, b in zip(self.layer_weights, predicted, wanted, strict=False):
            total = total + weight * nn.functional.l1_loss(a, b)
        return total
