"""Resolution from the data: Fourier ring correlation and decorrelation analysis.

Written here because no maintained library on PyPI provides either for plain arrays (the known
implementations live in unpackaged research code, e.g. miplib, or in ImageJ/Fiji plug-ins).

- FRC (Nieuwenhuizen et al., Nature Methods 2013): the correlation of two independent noise
  realisations of one image over rings of spatial frequency; the resolution is the inverse of
  the frequency where it drops below the 1/7 threshold.
- Decorrelation (Descloux et al., Nature Methods 2019), simplified: the peak of the
  correlation between the image and its normalised spectrum low-passed at radius r, over a set
  of high-pass filtered versions; the largest peak position is the cut-off frequency.
"""

from __future__ import annotations

import numpy as np

__all__ = ["decorrelation_resolution_um", "frc_curve", "frc_resolution_um"]

_FRC_THRESHOLD = 1.0 / 7.0


def _tukey_window(shape: tuple[int, int]) -> np.ndarray:
    def one(n: int) -> np.ndarray:
        edge = max(n // 8, 1)
        window = np.ones(n)
        ramp = 0.5 * (1 - np.cos(np.pi * np.arange(edge) / edge))
        window[:edge], window[-edge:] = ramp, ramp[::-1]
        return window

    return np.outer(one(shape[0]), one(shape[1]))


def _radius_index(shape: tuple[int, int]) -> tuple[np.ndarray, np.ndarray]:
    """Ring index of each frequency (in cycles per pixel x side) and the ring frequencies."""
    side = min(shape)
    fy = np.fft.fftfreq(shape[0])[:, None]
    fx = np.fft.fftfreq(shape[1])[None, :]
    radius = np.sqrt(fy**2 + fx**2)
    rings = np.floor(radius * side).astype(int)
    frequencies = np.arange(side // 2) / side  # cycles per pixel
    return rings, frequencies


def frc_curve(image_a: np.ndarray, image_b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequencies in cycles per pixel, FRC) of two noise realisations of one scene."""
    if image_a.shape != image_b.shape or image_a.ndim != 2:
        raise ValueError("FRC needs two 2-D images of one shape")
    window = _tukey_window(image_a.shape)
    fa = np.fft.fft2((image_a - image_a.mean()) * window)
    fb = np.fft.fft2((image_b - image_b.mean()) * window)
    rings, frequencies = _radius_index(image_a.shape)
    n = len(frequencies)
    keep = rings < n
    cross = np.bincount(rings[keep], (fa * np.conj(fb)).real[keep], n)
    power_a = np.bincount(rings[keep], (np.abs(fa) ** 2)[keep], n)
    power_b = np.bincount(rings[keep], (np.abs(fb) ** 2)[keep], n)
    with np.errstate(invalid="ignore", divide="ignore"):
        curve = cross / np.sqrt(power_a * power_b)
    return frequencies, np.nan_to_num(curve)


def frc_resolution_um(image_a: np.ndarray, image_b: np.ndarray, pixel_um: float) -> float:
    """FRC resolution (1/7 threshold) in µm; inf if the curve never crosses."""
    frequencies, curve = frc_curve(image_a, image_b)
    smooth = np.convolve(curve, np.ones(3) / 3, mode="same")
    below = np.flatnonzero(smooth[1:] < _FRC_THRESHOLD)
    if below.size == 0:
        return 2.0 * pixel_um  # correlated up to Nyquist
    crossing = frequencies[below[0] + 1]
    return float(pixel_um / crossing) if crossing > 0 else float("inf")


def decorrelation_resolution_um(image: np.ndarray, pixel_um: float, steps: int = 50) -> float:
    """Single-image resolution estimate (decorrelation analysis) in µm."""
    if image.ndim != 2:
        raise ValueError("decorrelation analysis needs a 2-D image")
    window = _tukey_window(image.shape)
    spectrum = np.fft.fft2((image - image.mean()) * window)
    fy = np.fft.fftfreq(image.shape[0])[:, None]
    fx = np.fft.fftfreq(image.shape[1])[None, :]
    radius = np.sqrt(fy**2 + fx**2) * 2.0  # 1 at Nyquist
    normalised = spectrum / np.maximum(np.abs(spectrum), 1e-12)
    radii = np.linspace(0.02, 1.0, steps)
    best = 0.0
    for sigma in (None, 0.5, 0.25, 0.12, 0.06):
        base = spectrum
        if sigma is not None:
            base = spectrum * (1 - np.exp(-(radius**2) / (2 * sigma**2)))
        energy = np.sqrt(np.sum(np.abs(base) ** 2))
        curve = []
        for r in radii:
            inside = radius <= r
            masked = normalised * inside
            denominator = energy * np.sqrt(np.sum(np.abs(masked) ** 2))
            curve.append(np.sum((base * np.conj(masked)).real) / max(denominator, 1e-12))
        values = np.asarray(curve)
        peak = int(np.argmax(values))
        # a peak at the last radius is no peak: the curve is still rising at Nyquist
        if 0 < peak < steps - 1 and values[peak] > 0.05:
            best = max(best, float(radii[peak]))
    if best == 0.0:
        return float("inf")
    return float(2.0 * pixel_um / best)
