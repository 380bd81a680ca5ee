"""Recorruption: from one noisy image, two with independent noise (training without truth).

A camera frame is ``y = x + n`` with Poisson-Gaussian noise: its variance is linear in the
signal, ``var(y) = gain * mean(y) + floor`` in counts (shot noise times the gain, the read noise;
an EMCCD's excess noise doubles the slope, a per-pixel sCMOS map scatters it a little). Draw
``z`` with that variance and make ``y_hat = y + alpha * z`` and ``y_bar = y - z / alpha``: for
Gaussian noise their noise is independent, and ``E[y_bar] = x``. A network trained from
``y_hat`` to ``y_bar`` learns the expectation of the clean image (Recorrupted-to-Recorrupted,
Pang et al., CVPR 2021; with the Poisson-Gaussian variance as ZS-DeconvNet uses it, Qiao et
al., Nature Communications 2024). At use it sees ``y`` itself, a little less noisy than
``y_hat``; ``alpha = 1`` was the best of 0.5, 1 and 2 on a simulated user stack
(``benchmarks/bench_adapt.py``).

The noise model is fitted from the frames themselves, so no camera settings are needed: each
pixel minus the mean of its four neighbours (noise variance x 1.25) is binned by the local
mean; a robust (MAD) variance per bin keeps most edges of structures out; a line through the
bins gives gain and floor. On ten simulated stacks (sCMOS maps, EMCCD) the gain came out 0.87
to 1.16 times the true one (``tests/training/test_recorrupt.py`` holds it within 20 %).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

__all__ = ["NoiseModel", "recorrupt"]

_MIN_PIXELS_PER_BIN = 200
# a pixel minus the mean of its four neighbours: noise variance x 1.25 (of the 3x3 mean's
# residual and a diagonal one, this leaked least of the structure: gain 0.87-1.16x on
# ten simulated stacks, sCMOS above, EMCCD below)
_FOUR_NEIGHBOURS = np.array([[0, 1, 0], [1, 0, 1], [0, 1, 0]], np.float32) / 4


@dataclass(frozen=True)
class NoiseModel:
    """``variance = gain * mean + floor``, counts² as a function of the expected counts."""

    gain: float
    floor: float

    @classmethod
    def fit(cls, frames: np.ndarray) -> NoiseModel:
        """Fit from ``(N, H, W)`` frames (counts). ValueError when they hold no usable range."""
        means, residuals = [], []
        for frame in np.asarray(frames, np.float32):
            means.append(ndimage.uniform_filter(frame, 3).ravel())
            neighbours = ndimage.convolve(frame, _FOUR_NEIGHBOURS, mode="reflect")
            residuals.append((frame - neighbours).ravel())
        mean, residual = np.concatenate(means), np.concatenate(residuals)
        edges = np.unique(np.percentile(mean, np.linspace(0.5, 99.5, 41)))
        bins = np.digitize(mean, edges)
        centres, variances = [], []
        for k in range(1, len(edges)):
            chosen = residual[bins == k]
            if chosen.size < _MIN_PIXELS_PER_BIN:
                continue
            mad = float(np.median(np.abs(chosen - np.median(chosen))))
            centres.append(float(mean[bins == k].mean()))
            variances.append((1.4826 * mad) ** 2 / 1.25)
        if len(centres) < 3:
            raise ValueError(
                "the frames hold too narrow a range of brightness to fit their camera noise"
            )
        gain, floor = np.polyfit(centres, variances, 1)
        return cls(max(float(gain), 1e-6), float(floor))

    def variance(self, smoothed_counts: np.ndarray) -> np.ndarray:
        """Each pixel's noise variance from its (smoothed) counts, at least a small floor."""
        result: np.ndarray = np.maximum(self.gain * smoothed_counts + self.floor, 1e-3)
        return result.astype(np.float32)

    def describe(self) -> dict[str, float]:
        """What model.yaml records of the fit."""
        return {"gain_counts_per_count": round(self.gain, 5), "floor_counts2": round(self.floor, 3)}


def recorrupt(
    frame: np.ndarray, variance: np.ndarray, alpha: float, rng: np.random.Generator
) -> tuple[np.ndarray, np.ndarray]:
    """``(y_hat, y_bar)``: the network's input and its target, their noise independent."""
    z = rng.standard_normal(frame.shape).astype(np.float32) * np.sqrt(variance)
    return frame + np.float32(alpha) * z, frame - z / np.float32(alpha)
