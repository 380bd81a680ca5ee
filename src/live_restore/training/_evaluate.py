"""Held-out evaluation of the shipped models on the simulator (never the training seeds).

- super-resolution: per structure x photon level, PSNR / MS-SSIM / NRMSE against the 2x truth of
  the input (bicubic-upsampled widefield), the Richardson-Lucy baseline (bicubic-upsampled) and
  the model; every image is put on the truth's scale by a least-squares affine fit first, so no
  method gains by its units. A BioSR-style evaluation matrix (PNG) shows the model's margin.
- focus estimation: mean absolute error within ±2 µm and in/out-of-focus accuracy, per light level.
- refocus: PSNR of the defocused input and of the refocused output against the in-focus truth,
  per |defocus|.
- SIM reconstruction: widefield vs classical vs the model (``_sim_evaluate.py``).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from live_restore.acquisition import RichardsonLucyRestorer
from live_restore.inference import FocusSession, ModelSession, SimSession, load_model
from live_restore.metrics import fit_to_truth, ms_ssim, nrmse, psnr
from live_restore.simulate import STRUCTURES, CameraParams, OpticsParams, expose

from ._simulated import render_fields

__all__ = [
    "EvalRow",
    "evaluate",
    "evaluate_focus",
    "evaluate_refocus",
    "evaluate_sr",
    "plot_sr_matrix",
    "record_summary",
    "write_table",
]

EVALUATION_SEED_OFFSET = 20_000
IN_FOCUS_UM = 0.5


@dataclass(frozen=True)
class EvalRow:
    """One cell of an evaluation table: a condition and its scores per method."""

    condition: dict[str, float | str]
    scores: dict[str, float]


def _counts(photons: np.ndarray, camera: CameraParams, rng: np.random.Generator) -> np.ndarray:
    return expose(photons, camera, rng).astype(np.float32)


def truth_scores(image: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    """PSNR, MS-SSIM and NRMSE of ``image`` after its affine fit to ``truth``."""
    fitted = fit_to_truth(image, truth)
    return {
        "psnr": psnr(fitted, truth),
        "ms_ssim": ms_ssim(fitted, truth),
        "nrmse": nrmse(fitted, truth),
    }


def evaluate_sr(
    session: ModelSession,
    structures: Sequence[str] = STRUCTURES,
    photon_levels: Sequence[float] = (20.0, 50.0, 100.0, 300.0),
    fields: int = 3,
    frame_size: int = 256,
    seed: int = 0,
) -> list[EvalRow]:
    """Input vs Richardson-Lucy vs model, mean over ``fields`` held-out fields per cell."""
    baseline = RichardsonLucyRestorer(OpticsParams(), CameraParams())

    def scores(counts: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        candidates = {
            "input": ndimage.zoom(counts, 2, order=3),
            "richardson-lucy": ndimage.zoom(baseline(counts), 2, order=3),
            "model": session(counts),
        }
        return {
            f"{metric}_{method}": value
            for method, image in candidates.items()
            for metric, value in truth_scores(image, truth).items()
        }

    return sr_cells(scores, structures, photon_levels, fields, frame_size, seed)


def sr_cells(
    scores: Callable[[np.ndarray, np.ndarray], dict[str, float]],
    structures: Sequence[str],
    photon_levels: Sequence[float],
    fields: int,
    frame_size: int,
    seed: int,
) -> list[EvalRow]:
    """One row per structure x light: ``scores(counts, 2x truth)`` averaged over held-out fields.

    The fields use seeds never trained on; each gets its camera noise from
    ``[seed, field, photons]``, so every SR evaluation here sees the same frames.
    """
    camera = CameraParams()
    stacks = render_fields(structures, fields, frame_size, seed + EVALUATION_SEED_OFFSET)
    rows = []
    for structure in structures:
        mine = [s for s in stacks if s.structure == structure]
        for photons in photon_levels:
            cell: dict[str, list[float]] = {}
            for index, stack in enumerate(mine):
                rng = np.random.default_rng([seed, index, int(photons)])
                counts = _counts(stack.widefield[stack.focus_index] * photons, camera, rng)
                for key, value in scores(counts, stack.sr * photons).items():
                    cell.setdefault(key, []).append(value)
            rows.append(
                EvalRow(
                    {"structure": structure, "photons": photons},
                    {k: float(np.mean(v)) for k, v in cell.items()},
                )
            )
    return rows


def evaluate_focus(
    session: FocusSession,
    structures: Sequence[str] = STRUCTURES,
    photon_levels: Sequence[float] = (20.0, 100.0, 1000.0),
    defocus_um: Sequence[float] = tuple(np.arange(-2.0, 2.001, 0.25)),
    fields: int = 2,
    frame_size: int = 256,
    seed: int = 0,
) -> list[EvalRow]:
    """Error and in/out-of-focus accuracy per light level.

    The signed error splits into the magnitude's error and the sign. ``sign_accuracy`` counts
    the out-of-focus frames (beyond ``IN_FOCUS_UM``), those a focus hold would act on: a wrong
    sign there costs twice the defocus and sends the stage the wrong way.
    """
    camera = CameraParams()
    stacks = render_fields(
        structures, fields, frame_size, seed + EVALUATION_SEED_OFFSET, defocus_um
    )
    rows = []
    for photons in photon_levels:
        errors, magnitude_errors, correct, confidences = [], [], [], []
        sign_right = []
        for index, stack in enumerate(stacks):
            for plane, z in enumerate(stack.defocus_um):
                rng = np.random.default_rng([seed, index, plane, int(photons)])
                estimate = session(_counts(stack.widefield[plane] * photons, camera, rng))
                errors.append(abs(estimate.defocus_um - z))
                magnitude_errors.append(abs(estimate.magnitude_um - abs(z)))
                correct.append((abs(estimate.defocus_um) <= IN_FOCUS_UM) == (abs(z) <= IN_FOCUS_UM))
                confidences.append(estimate.confidence)
                if abs(z) > IN_FOCUS_UM:
                    sign_right.append((estimate.defocus_um > 0) == (z > 0))
        rows.append(
            EvalRow(
                {"photons": photons},
                {
                    "mae_um": float(np.mean(errors)),
                    "p90_error_um": float(np.percentile(errors, 90)),
                    "magnitude_mae_um": float(np.mean(magnitude_errors)),
                    "sign_accuracy": float(np.mean(sign_right)) if sign_right else math.nan,
                    "in_focus_accuracy": float(np.mean(correct)),
                    "mean_confidence": float(np.mean(confidences)),
                    "frames": float(len(errors)),
                },
            )
        )
    return rows


def evaluate_refocus(
    session: ModelSession,
    structures: Sequence[str] = STRUCTURES,
    defocus_um: Sequence[float] = (-2.0, -1.5, -1.0, -0.5, 0.5, 1.0, 1.5, 2.0),
    photons: float = 200.0,
    fields: int = 2,
    frame_size: int = 256,
    seed: int = 0,
) -> list[EvalRow]:
    """PSNR of input and output against the in-focus truth, per |defocus|."""
    camera = CameraParams()
    stacks = render_fields(
        structures, fields, frame_size, seed + EVALUATION_SEED_OFFSET, defocus_um
    )
    by_distance: dict[float, dict[str, list[float]]] = {}
    for index, stack in enumerate(stacks):
        truth = stack.in_focus * photons
        for plane, z in enumerate(stack.defocus_um):
            rng = np.random.default_rng([seed, index, plane])
            counts = _counts(stack.widefield[plane] * photons, camera, rng)
            cell = by_distance.setdefault(abs(float(z)), {})
            for method, image in (("input", counts), ("model", session(counts))):
                fitted = fit_to_truth(image, truth)
                cell.setdefault(f"psnr_{method}", []).append(psnr(fitted, truth))
    rows = []
    for distance in sorted(by_distance):
        scores = {k: float(np.mean(v)) for k, v in by_distance[distance].items()}
        scores["psnr_gain_db"] = scores["psnr_model"] - scores["psnr_input"]
        rows.append(EvalRow({"abs_defocus_um": distance, "photons": photons}, scores))
    return rows


def plot_sr_matrix(rows: list[EvalRow], path: Path, title: str) -> Path:
    """BioSR-style evaluation matrix: structure x photons, with the model's scores.

    Colour: the model's margin over the better baseline (input or Richardson-Lucy) in PSNR (dB)
    and MS-SSIM; every cell shows the model's score and that margin.
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    structures = list(dict.fromkeys(str(r.condition["structure"]) for r in rows))
    levels = list(dict.fromkeys(float(r.condition["photons"]) for r in rows))
    figure, axes = plt.subplots(1, 2, figsize=(4 + 1.6 * len(levels), 1.2 + 0.6 * len(structures)))
    for axis, metric, unit in zip(axes, ("psnr", "ms_ssim"), ("dB", ""), strict=True):
        margin = np.zeros((len(structures), len(levels)))
        for r in rows:
            i = structures.index(str(r.condition["structure"]))
            j = levels.index(float(r.condition["photons"]))
            best = max(r.scores[f"{metric}_input"], r.scores[f"{metric}_richardson-lucy"])
            margin[i, j] = r.scores[f"{metric}_model"] - best
            axis.text(
                j,
                i,
                f"{r.scores[f'{metric}_model']:.3g}\n{margin[i, j]:+.2g}",
                ha="center",
                va="center",
                fontsize=8,
            )
        limit = float(np.abs(margin).max()) or 1.0
        axis.imshow(margin, cmap="RdYlGn", vmin=-limit, vmax=limit)
        axis.set_xticks(range(len(levels)), [f"{v:g}" for v in levels])
        axis.set_yticks(range(len(structures)), structures)
        axis.set_xlabel("peak photons per pixel")
        axis.set_title(f"{metric.upper().replace('_', '-')} {unit}: model (margin)")
    figure.suptitle(title, fontsize=10)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path


def evaluate(
    name: str, fields: int, seed: int = 0, structures: Sequence[str] = STRUCTURES
) -> tuple[str, list[EvalRow]]:
    """The evaluation that fits model ``name``: (kind, rows)."""
    # the model asked for, even where live use would swap in a lighter CPU variant
    session = load_model(name, backend="torch-cpu", cpu_variant=False)
    if isinstance(session, SimSession):
        from ._sim_evaluate import evaluate_sim

        return "sim", evaluate_sim(session, structures, fields=fields, seed=seed)
    if isinstance(session, FocusSession):
        return "focus", evaluate_focus(session, structures, fields=fields, seed=seed)
    if not isinstance(session, ModelSession):
        raise ValueError(f"{name} is evaluated locally, not on a server")
    if session.scale == 1:
        return "refocus", evaluate_refocus(session, structures, fields=fields, seed=seed)
    return "sr", evaluate_sr(session, structures, fields=fields, seed=seed)


def write_table(rows: list[EvalRow], path: Path) -> Path:
    """The rows as CSV (conditions then scores)."""
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="", encoding="utf-8") as stream:
        writer = csv.writer(stream)
        writer.writerow([*rows[0].condition, *rows[0].scores])
        for row in rows:
            writer.writerow([*row.condition.values(), *(f"{v:.5g}" for v in row.scores.values())])
    return path


def summarise(kind: str, rows: list[EvalRow]) -> dict[str, object]:
    """The few numbers model.yaml keeps."""
    if kind == "sim":
        from ._sim_evaluate import summarise_sim

        return summarise_sim(rows)
    if kind == "sr":
        low = [r for r in rows if float(r.condition["photons"]) <= 100]
        beats = all(
            r.scores[f"{m}_model"] > max(r.scores[f"{m}_input"], r.scores[f"{m}_richardson-lucy"])
            for r in low
            for m in ("psnr", "ms_ssim")
        )
        mean = lambda key: round(float(np.mean([r.scores[key] for r in low])), 4)  # noqa: E731
        return {
            "held_out": "simulated, seeds never used in training; 20-100 photons",
            "psnr_db": {m: mean(f"psnr_{m}") for m in ("input", "richardson-lucy", "model")},
            "ms_ssim": {m: mean(f"ms_ssim_{m}") for m in ("input", "richardson-lucy", "model")},
            "beats_input_and_rl_everywhere_at_low_light": beats,
        }
    if kind == "focus":
        return {
            "held_out": "simulated, ±2 µm, seeds never used in training",
            **{
                f"photons_{int(float(r.condition['photons']))}": {
                    k: round(v, 4) for k, v in r.scores.items()
                }
                for r in rows
            },
        }
    return {
        "held_out": "simulated, seeds never used in training",
        **{
            f"defocus_{r.condition['abs_defocus_um']}_um_psnr_gain_db": round(
                r.scores["psnr_gain_db"], 3
            )
            for r in rows
        },
    }


def record_summary(name: str, kind: str, rows: list[EvalRow]) -> Path:
    """Write the summary into the model's model.yaml (the weights hash stays as it is)."""
    from live_restore.models import model_dir, read_spec, write_spec

    folder = model_dir(name)
    spec = read_spec(folder)
    # the reduced-precision check is a separate measurement of the same weights: kept
    kept = {k: v for k, v in spec.evaluation.items() if k == "cpu_precision"}
    spec.evaluation = summarise(kind, rows) | kept
    return write_spec(folder, spec)
