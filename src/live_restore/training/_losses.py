"""Training losses.

- :func:`mse_ssim_loss`: DFCAN's published loss, MSE + 0.1·(1 − SSIM).
- :func:`charbonnier_frequency_loss`: Charbonnier penalty on the difference of spectra (Jin et
  al., Optics Express 2024): it weighs the weak high frequencies that pixel losses ignore.
- :class:`FeatureLoss`: L1 between the activations of a frozen network this project trained
  (``focus-est``'s trunk), the feature (perceptual) loss of the refocus model.
- :func:`gaussian_nll`: for a mean and log-variance output (the defocus estimator).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import cast

import torch
from torch import nn

__all__ = ["FeatureLoss", "charbonnier_frequency_loss", "gaussian_nll", "mse_ssim_loss"]


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


def gaussian_nll(output: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Squared error of the mean + the Gaussian NLL of the variance given that error.

    ``output[:, 0]`` is the mean, ``output[:, 1]`` the log-variance. The NLL alone let the
    network explain every error by a large variance and never learn the mean (seen here: a
    validation error stuck at the spread of the targets); so the mean learns from the squared
    error, and the variance from the NLL of the (detached) mean's error.
    """
    mean, log_variance = output[:, 0], output[:, 1].clamp(-12.0, 8.0)
    squared = (target[:, 0] - mean) ** 2
    nll = 0.5 * (log_variance + squared.detach() * torch.exp(-log_variance))
    return (squared + nll).mean()


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
