"""Image quality against a ground truth: NRMSE, PSNR, SSIM, MS-SSIM.

SSIM and MS-SSIM come from ``pytorch-msssim`` (the Wang et al. definitions, Gaussian window
11/1.5, the standard five-scale weights), the same code the training loss uses. NRMSE and PSNR
are one line each. Restored images from different methods come in different units (counts,
photons, a sigmoid's range): :func:`fit_to_truth` puts each on the truth's scale with the
least-squares affine map before it is scored (as CARE did), so no method wins or loses by its
intensity scale.
"""

from __future__ import annotations

import math

import numpy as np
import torch

__all__ = ["fit_to_truth", "ms_ssim", "nrmse", "psnr", "ssim"]


def _pair(image: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    image = np.asarray(image, np.float64)
    truth = np.asarray(truth, np.float64)
    if image.shape != truth.shape or image.ndim != 2:
        raise ValueError(f"need two 2-D images of one shape, got {image.shape} and {truth.shape}")
    return image, truth


def _span(truth: np.ndarray) -> float:
    return float(truth.max() - truth.min()) or 1.0


def fit_to_truth(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``a·image + b`` with a, b minimising the squared error to ``truth``."""
    image, truth = _pair(image, truth)
    design = np.stack([image.ravel(), np.ones(image.size)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, truth.ravel(), rcond=None)
    fitted: np.ndarray = gain * image + offset
    return fitted


def nrmse(image: np.ndarray, truth: np.ndarray) -> float:
    """Root-mean-square error divided by the truth's range (BioSR's NRMSE)."""
    image, truth = _pair(image, truth)
    return float(np.sqrt(np.mean((image - truth) ** 2)) / _span(truth))


def psnr(image: np.ndarray, truth: np.ndarray) -> float:
    """Peak signal-to-noise ratio in dB, the peak being the truth's range."""
    error = nrmse(image, truth)
    return math.inf if error == 0 else -20.0 * math.log10(error)


def _as_tensors(image: np.ndarray, truth: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
    image, truth = _pair(image, truth)
    low, span = float(truth.min()), _span(truth)
    to_tensor = lambda a: torch.from_numpy((a - low) / span).float()[None, None]  # noqa: E731
    return to_tensor(image), to_tensor(truth)


def ssim(image: np.ndarray, truth: np.ndarray) -> float:
    """Structural similarity (data range: the truth's range)."""
    from pytorch_msssim import ssim as _ssim

    a, b = _as_tensors(image, truth)
    return float(_ssim(a, b, data_range=1.0))


def ms_ssim(image: np.ndarray, truth: np.ndarray) -> float:
    """Multi-scale SSIM; images need >= 161 px a side for the standard five scales."""
    from pytorch_msssim import ms_ssim as _ms_ssim

    a, b = _as_tensors(image, truth)
    if min(a.shape[-2:]) <= 160:
        raise ValueError(f"MS-SSIM needs images over 160 px a side, got {tuple(a.shape[-2:])}")
    return float(_ms_ssim(a, b, data_range=1.0))
