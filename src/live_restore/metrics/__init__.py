"""Image quality, resolution and focus measures.

The quality measures (``_quality``) run on torch; they load only when first used, so a focus
monitor (which scores with ``_focus``) and ``import live_restore.acquisition`` stay light.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._focus import brenner, normalised_variance, spectral_focus
from ._resolution import decorrelation_resolution_um, frc_curve, frc_resolution_um

if TYPE_CHECKING:
    from ._quality import fit_to_truth, ms_ssim, nrmse, psnr, ssim

_TORCH_HOMES = dict.fromkeys(("fit_to_truth", "ms_ssim", "nrmse", "psnr", "ssim"), "._quality")

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


def __getattr__(name: str) -> Any:
    if name not in _TORCH_HOMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(_TORCH_HOMES[name], __name__), name)
