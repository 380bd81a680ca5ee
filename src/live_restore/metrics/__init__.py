"""Image quality, resolution and focus measures."""

from ._focus import brenner, normalised_variance, spectral_focus
from ._quality import fit_to_truth, ms_ssim, nrmse, psnr, ssim
from ._resolution import decorrelation_resolution_um, frc_curve, frc_resolution_um

__all__ = [
    "brenner",
    "decorrelation_resolution_um",
    "fit_to_truth",
    "frc_curve",
    "frc_resolution_um",
    "ms_ssim",
    "normalised_variance",
    "nrmse",
    "psnr",
    "spectral_focus",
    "ssim",
]
