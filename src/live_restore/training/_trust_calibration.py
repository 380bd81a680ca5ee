"""Calibrating and checking a model's trust map against the simulator's truth.

Error is measured in the output's units: the truth is mapped onto the output by the affine fit
the evaluation uses (``fit_to_truth``, inverted), so sigma and |error| compare directly.
Each method's scale is chosen on calibration fields so that 95 % of pixels have
|error| <= 2 sigma; it is then checked on held-out fields (other seeds): the coverage there,
the ratio of mean |error| to mean sigma, and the Spearman correlation between sigma and |error|
over 8x8 blocks, per structure and light level.
"""

from __future__ import annotations

import datetime
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

from live_restore.inference import (
    METHOD_NOTES,
    ModelSession,
    TrustCalibration,
    dihedral_passes,
    head_spread,
    pair_spread,
    trust_of,
)
from live_restore.models import TrustHead
from live_restore.simulate import CameraParams, expose

from ._evaluate import EVALUATION_SEED_OFFSET
from ._simulated import render_fields

__all__ = ["TrustRow", "block_spearman", "calibrate_trust", "error_in_output_units"]

TARGET_COVERAGE = 0.95
BLOCK_PX = 8


@dataclass(frozen=True)
class TrustRow:
    """Held-out trust quality of one method for one structure and light level."""

    method: str
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
    """Spearman correlation of block means of sigma and |error| (of one or several frames)."""
    rows, cols = (s - s % block for s in sigma.shape[-2:])

    def _blocks(a: np.ndarray) -> np.ndarray:
        cut = a[..., :rows, :cols]
        shape = (*cut.shape[:-2], rows // block, block, cols // block, block)
        return cut.reshape(shape).mean(axis=(-3, -1)).ravel()

    rho = stats.spearmanr(_blocks(sigma), _blocks(np.abs(error))).statistic
    return float(rho)


@dataclass(frozen=True)
class _Case:
    """Two independent exposures of one field at one light, and the truth in the output grid."""

    structure: str
    photons: float
    first: np.ndarray
    second: np.ndarray
    truth: np.ndarray


def _cases(
    structures: Sequence[str],
    photon_levels: Sequence[float],
    fields: int,
    frame_size: int,
    seed: int,
) -> list[_Case]:
    camera = CameraParams()
    cases = []
    for index, stack in enumerate(render_fields(structures, fields, frame_size, seed)):
        for photons in photon_levels:
            rng = np.random.default_rng([seed, index, int(photons)])
            mean = stack.widefield[stack.focus_index] * photons
            first, second = (expose(mean, camera, rng).astype(np.float32) for _ in range(2))
            cases.append(_Case(stack.structure, photons, first, second, stack.sr * photons))
    return cases


def _estimates(
    session: ModelSession, case: _Case, methods: Sequence[str], head: TrustHead | None
) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """(image, uncalibrated spread) of each method for one case."""
    out: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    first = session(case.first)
    if "head" in methods:
        if head is None:
            raise ValueError("the head method needs a trained trust head")
        out["head"] = (first, head_spread(head, case.first, first))
    if "tta" in methods:
        unit = trust_of(dihedral_passes(session, case.first), 1.0)
        out["tta"] = (unit.image, unit.sigma)
    if "pair" in methods:
        out["pair"] = (first, pair_spread(first, session(case.second)))
    return out


def calibrate_trust(
    session: ModelSession,
    structures: Sequence[str],
    methods: Sequence[str] = ("tta",),
    head: TrustHead | None = None,
    photon_levels: Sequence[float] = (20.0, 50.0, 100.0, 300.0),
    fields: int = 2,
    frame_size: int = 128,
    seed: int = 0,
) -> dict[str, tuple[TrustCalibration, list[TrustRow]]]:
    """Per method: the scale from calibration fields, and its check on held-out ones."""
    calibration_seed = seed + EVALUATION_SEED_OFFSET
    ratios: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    for case in _cases(structures, photon_levels, fields, frame_size, calibration_seed):
        for method, (image, spread) in _estimates(session, case, methods, head).items():
            error = np.abs(error_in_output_units(image, case.truth))
            ratios[method].append((error / (2 * np.maximum(spread, 1e-6))).ravel())
    scales = {m: float(np.quantile(np.concatenate(r), TARGET_COVERAGE)) for m, r in ratios.items()}
    # held out: per method and (structure, photons), the fields' sigma and error together
    cells: dict[tuple[str, str, float], list[tuple[np.ndarray, np.ndarray]]] = {}
    held_out = seed + 2 * EVALUATION_SEED_OFFSET
    for case in _cases(structures, photon_levels, fields, frame_size, held_out):
        for method, (image, spread) in _estimates(session, case, methods, head).items():
            error = error_in_output_units(image, case.truth)
            key = (method, case.structure, case.photons)
            cells.setdefault(key, []).append((scales[method] * spread, error))
    rows: dict[str, list[TrustRow]] = {m: [] for m in methods}
    counts = {m: [0, 0] for m in methods}  # pixels covered, pixels
    for (method, structure, photons), pairs in cells.items():
        sigma = np.stack([p[0] for p in pairs])
        error = np.stack([p[1] for p in pairs])
        inside = np.abs(error) <= 2 * sigma
        counts[method][0] += int(inside.sum())
        counts[method][1] += inside.size
        rows[method].append(
            TrustRow(
                method,
                structure,
                photons,
                float(inside.mean()),
                float(np.abs(error).mean() / max(float(sigma.mean()), 1e-12)),
                block_spearman(sigma, error),
            )
        )
    facts = {
        "model": session.name,
        "weights_sha256": session.spec.weights_sha256,
        "target_coverage_2sigma": TARGET_COVERAGE,
        "calibration_seed": calibration_seed,
        "held_out_seed": held_out,
        "structures": list(structures),
        "photons": [float(p) for p in photon_levels],
        "fields": fields,
        "frame_size": frame_size,
        "date": datetime.date.today().isoformat(),
    }
    return {
        m: (
            TrustCalibration(
                m, scales[m], counts[m][0] / counts[m][1], {**facts, "how": METHOD_NOTES[m]}
            ),
            rows[m],
        )
        for m in methods
    }
