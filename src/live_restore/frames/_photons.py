"""Camera counts <-> detected photons: the one conversion every stage and dataset shares."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["PhotonConversion"]


@dataclass(frozen=True)
class PhotonConversion:
    """A camera's linear response: ``counts = photons * gain_adu_per_e + offset_adu``."""

    offset_adu: float = 100.0
    gain_adu_per_e: float = 1.0

    def __post_init__(self) -> None:
        if not self.gain_adu_per_e > 0:
            raise ValueError(f"camera gain must be > 0 ADU per electron, got {self.gain_adu_per_e}")

    def photons(self, counts: np.ndarray) -> np.ndarray:
        """Counts -> photons (float32, negative values from read noise clipped to 0)."""
        photons = (np.asarray(counts, dtype=np.float32) - np.float32(self.offset_adu)) / (
            np.float32(self.gain_adu_per_e)
        )
        clipped: np.ndarray = np.maximum(photons, 0.0)
        return clipped

    def counts(self, photons: np.ndarray) -> np.ndarray:
        """Photons -> counts (float32, not rounded or clipped to the ADC)."""
        counts: np.ndarray = np.asarray(photons, dtype=np.float32) * np.float32(
            self.gain_adu_per_e
        ) + np.float32(self.offset_adu)
        return counts

    def describe(self) -> str:
        """The conversion as provenance records it."""
        return f"(counts - {self.offset_adu}) / {self.gain_adu_per_e}"
