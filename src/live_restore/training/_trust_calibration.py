"""Calibrating and checking a model's trust map against the simulator's truth.

Error is measured in the output's units: the truth is mapped onto the output by the affine fit
the evaluation uses (``fit_to_truth``, inverted), so sigma and |error| compare directly.
The scale is chosen on calibration fields so that 95 % of pixels have |error| <= 2 sigma; it is
then checked on held-out fields (other seeds): the coverage there, the ratio of mean |error| to
mean sigma, and the Spearman correlation between sigma and |error| over 8x8 blocks, per
structure and light level.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from live_restore.inference import ModelSession, TrustCalibration, dihedral_passes, trust_of
from live_restore.simulate import CameraParams, expose

from ._evaluate import EVALUATION_SEED_OFFSET
from ._simulated import render_fields

__all__ = ["TrustRow", "block_spearman", "calibrate_trust", "error_in_output_units"]

TARGET_COVERAGE = 0.95
BLOCK_PX = 8


@dataclass(frozen=True)
class TrustRow:
    """Held-out trust quality for one structure and light level."""

    structure: str
    photons: float
    coverage_2sigma: float
    error_over_sigma: float  # mean |error| / mean sigma (1: sigma is the expected |error|)
    spearman_blocks: float


def error_in_output_units(image: np.ndarray, truth: np.ndarray) -> np.ndarray:
    """``image`` minus the truth mapped onto the image's scale (least squares, affine)."""
    design = np.stack([truth.ravel(), np.ones(truth.size)], axis=1)
    (gain, offset), *_ = np.linalg.lstsq(design, image.ravel().astype(np.float64), rcond=None)
    mapped: np.ndarray = gain * truth + offset
    return image - mapped


def block_spearman(sigma: np.ndarray, error: np.ndarray, block: int = BLOCK_PX) -> float:
    """Spearman correlation of block means of sigma and |error|."""
    rows, cols = (s - s % block for s in sigma.shape)

    def _blocks(a: np.ndarray) -> np.ndarray:
        cut = a[:rows, :cols]
        return cut.reshape(rows // block, block, cols // block, block).mean(axis=(1, 3)).ravel()

    rho = stats.spearmanr(_blocks(sigma), _blocks(np.abs(error))).statistic
    return float(rho)


def _cases(
    session: ModelSession,
    structures: Sequence[str],
    photon_levels: Sequence[float],
    fields: int,
    frame_size: int,
    seed: int,
) -> list[tuple[str, float, np.ndarray, np.ndarray]]:
    """(structure, photons, TTA passes, truth in the output's grid) per field and light."""
    camera = CameraParams()
    cases = []
    for index, stack in enumerate(render_fields(structures, fields, frame_size, seed)):
        for photons in photon_levels:
            rng = np.random.default_rng([seed, index, int(photons)])
            counts = expose(stack.widefield[stack.focus_index] * photons, camera, rng)
            passes = dihedral_passes(session, counts.astype(np.float32))
            cases.append((stack.structure, photons, passes, stack.sr * photons))
    return cases


def calibrate_trust(
    session: ModelSession,
    structures: Sequence[str],
    photon_levels: Sequence[float] = (20.0, 50.0, 100.0, 300.0),
    fields: int = 2,
    frame_size: int = 128,
    seed: int = 0,
) -> tuple[TrustCalibration, list[TrustRow]]:
    """The scale from calibration fields, and its check on held-out ones."""
    ratios = []
    for _, _, passes, truth in _cases(
        session, structures, photon_levels, fields, frame_size, seed + EVALUATION_SEED_OFFSET
    ):
        unit = trust_of(passes, 1.0)
        error = np.abs(error_in_output_units(unit.image, truth))
        spread = np.maximum(unit.sigma, 1e-6)
        ratios.append((error / (2 * spread)).ravel())
    scale = float(np.quantile(np.concatenate(ratios), TARGET_COVERAGE))
    rows, covered, total = [], 0, 0
    held_out = seed + 2 * EVALUATION_SEED_OFFSET
    for structure, photons, passes, truth in _cases(
        session, structures, photon_levels, fields, frame_size, held_out
    ):
        trust = trust_of(passes, scale)
        error = error_in_output_units(trust.image, truth)
        inside = np.abs(error) <= 2 * trust.sigma
        covered, total = covered + int(inside.sum()), total + inside.size
        rows.append(
            TrustRow(
                structure,
                photons,
                float(inside.mean()),
                float(np.abs(error).mean() / max(float(trust.sigma.mean()), 1e-12)),
                block_spearman(trust.sigma, error),
            )
        )
    calibration = TrustCalibration(
        sigma_scale=scale,
        coverage_2sigma=covered / total,
        details={
            "method": "dihedral test-time augmentation (8 passes): sigma = scale x std",
            "model": session.name,
            "weights_sha256": session.spec.weights_sha256,
            "target_coverage_2sigma": TARGET_COVERAGE,
            "calibration_seed": seed + EVALUATION_SEED_OFFSET,
            "held_out_seed": held_out,
            "structures": list(structures),
            "photons": [float(p) for p in photon_levels],
            "fields": fields,
            "frame_size": frame_size,
            "date": datetime.date.today().isoformat(),
        },
    )
    return calibration, rows
