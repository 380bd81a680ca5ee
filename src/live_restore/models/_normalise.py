"""Raw counts <-> network units: one definition for training, evaluation and inference."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ._spec import Normalisation

__all__ = ["FrameScale", "frame_scale", "interp_inputs"]


@dataclass(frozen=True)
class FrameScale:
    """The counts that map to 0 and 1 for one frame."""

    low: float
    high: float

    def forward(self, counts: np.ndarray) -> np.ndarray:
        """Counts -> network input (float32)."""
        result: np.ndarray = ((counts - self.low) / (self.high - self.low)).astype(np.float32)
        return result

    def inverse(self, output: np.ndarray, output_range: float) -> np.ndarray:
        """Network output -> counts (float32)."""
        result: np.ndarray = (self.low + output_range * (self.high - self.low) * output).astype(
            np.float32
        )
        return result


def frame_scale(counts: np.ndarray, normalisation: Normalisation) -> FrameScale:
    """Percentile scale of a whole frame (never of a patch: training and inference agree)."""
    low, high = np.percentile(counts, [normalisation.low_percentile, normalisation.high_percentile])
    # a blank frame: keep the map finite and the output flat rather than dividing by zero
    high = max(float(high), float(low) + 1.0)
    return FrameScale(float(low), high)


def interp_inputs(
    before_counts: np.ndarray,
    after_counts: np.ndarray,
    fractions: list[float],
    normalisation: Normalisation,
) -> tuple[np.ndarray, FrameScale]:
    """Interpolation network inputs ``(F, 3, H, W)`` for a pair in counts, and their scale.

    One scale for both frames (their joint percentiles), so that a change of brightness between
    them stays one; planes: before, after, and the fraction, constant (one input per fraction).
    """
    scale = frame_scale(np.stack((before_counts, after_counts)), normalisation)
    planes = np.empty((len(fractions), 3, *before_counts.shape), np.float32)
    planes[:, 0] = scale.forward(before_counts)
    planes[:, 1] = scale.forward(after_counts)
    for i, fraction in enumerate(fractions):
        planes[i, 2] = fraction
    return planes, scale
