"""Camera: expected photons -> digital counts, the way an sCMOS pixel does it.

``counts = clip(round(gain * (Poisson(photons) clipped at full well + Normal(0, read_noise))
+ offset), 0, 2**bit_depth - 1)``. Photons here are detected photons (photo-electrons): the
quantum efficiency is folded into the photon budget, so "20 photons per pixel" is what the
pixel actually records, the number that sets the shot-noise SNR.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from live_restore.frames import PhotonConversion

__all__ = ["CameraParams", "expose", "expose_frame"]


class CameraParams(BaseModel):
    """Noise and digitisation of the simulated camera (sCMOS-like defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    offset_adu: float = Field(100.0, ge=0.0, le=10000.0, description="Dark offset, counts.")
    read_noise_e: float = Field(1.5, ge=0.0, le=100.0, description="Gaussian read noise, e- rms.")
    gain_adu_per_e: float = Field(1.0, gt=0.0, le=100.0, description="Counts per electron.")
    bit_depth: int = Field(16, ge=8, le=16, description="ADC bits; counts saturate at 2**bits-1.")
    full_well_e: float = Field(30000.0, gt=0.0, description="Electrons a pixel can hold.")

    @property
    def max_adu(self) -> int:
        """Largest count the ADC can report."""
        return int(2**self.bit_depth - 1)

    @property
    def photon_conversion(self) -> PhotonConversion:
        """Counts <-> photons with this camera's offset and gain."""
        return PhotonConversion(self.offset_adu, self.gain_adu_per_e)


def expose(
    photons: np.ndarray,
    camera: CameraParams,
    rng: np.random.Generator,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """Draw one noisy uint16 frame from an image of expected photons per pixel."""
    if photons.ndim != 2:
        raise ValueError(f"expected a 2-D photon image, got shape {photons.shape}")
    lowest, highest = float(photons.min()), float(photons.max())
    if not (lowest >= 0.0 and np.isfinite(highest)):  # also catches NaN (comparisons fail)
        raise ValueError(
            f"expected photon image must be finite and non-negative (min {lowest}, max {highest})"
        )
    electrons = rng.poisson(photons).astype(np.float32)
    np.minimum(electrons, np.float32(camera.full_well_e), out=electrons)
    if camera.read_noise_e > 0:
        electrons += np.float32(camera.read_noise_e) * rng.standard_normal(
            photons.shape, dtype=np.float32
        )
    counts = electrons
    counts *= np.float32(camera.gain_adu_per_e)
    counts += np.float32(camera.offset_adu)
    np.rint(counts, out=counts)
    np.clip(counts, 0, camera.max_adu, out=counts)
    if out is None:
        return counts.astype(np.uint16)
    out[...] = counts
    return out


_HELPER: list[ThreadPoolExecutor] = []
_HELPER_LOCK = threading.Lock()


def _helper() -> ThreadPoolExecutor:
    with _HELPER_LOCK:
        if not _HELPER:
            _HELPER.append(ThreadPoolExecutor(1, thread_name_prefix="sim-camera-noise"))
        return _HELPER[0]


def expose_frame(
    photons: np.ndarray,
    camera: CameraParams,
    seed: Sequence[int],
    out: np.ndarray | None = None,
) -> np.ndarray:
    """:func:`expose` for the simulated camera: the lower half of the rows on a helper thread.

    numpy's samplers release the GIL, so on two cores the noise (most of a frame's cost: the
    exact Poisson sampler) takes about half the time. Each half has its own generator, seeded
    ``[*seed, half]``: a frame depends on ``seed`` alone, not on the cores or the timing.
    """
    if photons.ndim != 2:
        raise ValueError(f"expected a 2-D photon image, got shape {photons.shape}")
    frame = out if out is not None else np.empty(photons.shape, np.uint16)
    middle = photons.shape[0] // 2
    lower = _helper().submit(
        expose, photons[middle:], camera, np.random.default_rng([*seed, 1]), frame[middle:]
    )
    try:
        expose(photons[:middle], camera, np.random.default_rng([*seed, 0]), frame[:middle])
    finally:
        lower.result()  # also re-raises the helper's error (e.g. a NaN in the lower half)
    return frame
