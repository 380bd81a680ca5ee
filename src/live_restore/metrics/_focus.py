"""Model-free focus scores (higher = sharper), for cross-checks and fallbacks.

Standard definitions (Groen et al. 1985; Sun et al. 2004), written out because each is a few lines.
"""

from __future__ import annotations

import numpy as np

__all__ = ["brenner", "normalised_variance", "spectral_focus"]


def _image(frame: np.ndarray) -> np.ndarray:
    image = np.asarray(frame, np.float64)
    if image.ndim != 2:
        raise ValueError(f"a focus score needs a 2-D frame, got shape {image.shape}")
    return image


def normalised_variance(frame: np.ndarray) -> float:
    """Variance divided by the mean: independent of the light level's scale."""
    image = _image(frame)
    mean = float(image.mean())
    return float(image.var() / mean) if mean > 0 else 0.0


def brenner(frame: np.ndarray) -> float:
    """Mean squared difference of pixels two apart (both axes), divided by the mean squared."""
    image = _image(frame)
    mean = float(image.mean()) or 1.0
    dx = image[:, 2:] - image[:, :-2]
    dy = image[2:, :] - image[:-2, :]
    return float((np.mean(dx**2) + np.mean(dy**2)) / mean**2)


def spectral_focus(frame: np.ndarray, band: tuple[float, float] = (0.1, 0.4)) -> float:
    """Share of spectral power in a mid-frequency band (cycles per pixel), DC excluded."""
    image = _image(frame)
    power = np.abs(np.fft.rfft2(image - image.mean())) ** 2
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.rfftfreq(image.shape[1])[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    total = float(power.sum()) or 1.0
    return float(power[(radius >= band[0]) & (radius <= band[1])].sum() / total)
