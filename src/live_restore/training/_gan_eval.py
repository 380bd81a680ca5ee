"""Where an adversarially trained SR model paints what is not there: DFGAN vs DFCAN.

A GAN's outputs look sharper; the question is whether the sharpness is in the sample. Per
structure and light level, on held-out fields (seeds never trained on), each model restores
one noisy frame of each field, and four numbers are kept:

- ``psnr``: against the 2x truth after the affine fit every SR evaluation uses;
- ``frc_truth_nm``: FRC resolution between the output and the truth (1/7 threshold): detail
  that agrees with the sample;
- ``sr_band_power``: the output's power over the truth's in the band only SR reaches (1-2x
  the widefield cutoff 2 NA / wavelength), after the fit: above 1, more fine texture than
  the sample has. (An FRC between the outputs of two noise realisations was tried first: it
  stays above 1/7 up to Nyquist for both models, since their fine texture is deterministic
  given the structure, so it could not tell painted detail from real.)
- ``background_error_pct``: mean |fitted output − truth| where the truth is below 5 % of its
  peak, in percent of the peak: structure put into the dark background.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from live_restore.inference import ModelSession, load_model
from live_restore.metrics import fit_to_truth, frc_resolution_um, psnr
from live_restore.simulate import STRUCTURES, OpticsParams

from ._evaluate import EvalRow, sr_cells

__all__ = ["BACKGROUND_FRACTION", "compare_generators", "generator_scores"]

BACKGROUND_FRACTION = 0.05  # truth below this share of its peak is background


def _band_power(image: np.ndarray, pixel_um: float) -> float:
    """Power of ``image`` between 1x and 2x the widefield cutoff (cycles per µm)."""
    optics = OpticsParams()
    cutoff = 2 * optics.na / (optics.emission_wavelength_nm / 1000)
    fy = np.fft.fftfreq(image.shape[0], pixel_um)[:, None]
    fx = np.fft.rfftfreq(image.shape[1], pixel_um)[None, :]
    radius = np.hypot(fy, fx)
    band = (radius >= cutoff) & (radius < 2 * cutoff)
    spectrum = np.fft.rfft2(image - image.mean())
    return float((np.abs(spectrum[band]) ** 2).sum())


def generator_scores(image: np.ndarray, truth: np.ndarray, sr_pixel_um: float) -> dict[str, float]:
    """PSNR, FRC resolution to truth (nm), SR-band power ratio, background error (% of peak)."""
    fitted = fit_to_truth(image, truth)
    peak = float(truth.max())
    background = truth < BACKGROUND_FRACTION * peak
    return {
        "psnr": psnr(fitted, truth),
        "frc_truth_nm": 1000 * frc_resolution_um(image, truth, sr_pixel_um),
        "sr_band_power": _band_power(fitted, sr_pixel_um) / _band_power(truth, sr_pixel_um),
        "background_error_pct": 100 * float(np.abs(fitted - truth)[background].mean()) / peak,
    }


def compare_generators(
    names: Sequence[str],
    structures: Sequence[str] = STRUCTURES,
    photon_levels: Sequence[float] = (20.0, 50.0, 100.0),
    fields: int = 2,
    frame_size: int = 128,
    seed: int = 0,
) -> list[EvalRow]:
    """One row per structure x light: each model's scores, mean over ``fields`` fields."""
    sessions = {}  # keyed by the model's name (a folder given as a path: its last part)
    for name in names:
        session = load_model(name, backend="torch-cpu", cpu_variant=False)
        if not isinstance(session, ModelSession) or session.scale != 2:
            raise ValueError(f"{name!r} is not a 2x super-resolution model")
        sessions[Path(name).name] = session
    sr_pixel_um = OpticsParams().sr_pixel_um

    def scores(counts: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        return {
            f"{name}_{key}": value
            for name, session in sessions.items()
            for key, value in generator_scores(session(counts), truth, sr_pixel_um).items()
        }

    return sr_cells(scores, structures, photon_levels, fields, frame_size, seed)
