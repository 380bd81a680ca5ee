"""Held-out evaluation of SIM reconstruction: widefield vs classical vs ``dfcan-sim``.

Per structure x photon level, on simulated raw sets whose sample seeds training never used:

- **widefield**: the mean of the 9 frames (the patterns average to uniform light), bicubic 2x;
- **classical**: parameters estimated from each set (near the nominal pattern), generalised
  Wiener; the Wiener constant is chosen per photon level from 0.05 / 0.2 / 0.5 by the best mean
  PSNR (the baseline at its best, not at one setting tuned for bright samples);
- **model**: the learned reconstruction.

Every image is put on the 2x truth's scale by a least-squares affine fit before PSNR / MS-SSIM /
NRMSE, so no method gains by its units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
from scipy import ndimage

from live_restore.simulate import STRUCTURES, CameraParams, OpticsParams, SimPatternParams, expose

from ._evaluate import EVALUATION_SEED_OFFSET, EvalRow, truth_scores
from ._sim_data import render_sim_fields

__all__ = ["CLASSICAL_WIENER", "evaluate_sim", "summarise_sim"]

CLASSICAL_WIENER = (0.05, 0.2, 0.5)


def evaluate_sim(
    session: object | Mapping[str, object],
    structures: Sequence[str] = STRUCTURES,
    photon_levels: Sequence[float] = (10.0, 20.0, 50.0, 200.0),
    fields: int = 2,
    frame_size: int = 256,
    seed: int = 0,
) -> list[EvalRow]:
    """Scores per structure x photon level (mean over ``fields`` held-out fields).

    ``session``: a SIM reconstruction session (``load_model("dfcan-sim")``), called on the
    ``(9, H, W)`` raw counts; or several by name (an ablation), scored as ``model_<name>`` on
    the same sets, so the data and the classical baseline are computed once.
    """
    from live_restore.sim_recon import estimate_parameters, reconstruct_sim

    camera, optics, pattern = CameraParams(), OpticsParams(), SimPatternParams()
    models = (
        {f"model_{name}": model for name, model in session.items()}
        if isinstance(session, Mapping)
        else {"model": session}
    )
    stacks = render_sim_fields(structures, fields, frame_size, seed + EVALUATION_SEED_OFFSET)
    cells: dict[tuple[str, float], dict[str, list[float]]] = {}
    for index, stack in enumerate(stacks):
        for photons in photon_levels:
            rng = np.random.default_rng([seed, index, int(photons * 10)])
            counts = np.stack([expose(f * photons, camera, rng) for f in stack.raw]).astype(
                np.float32
            )
            truth = stack.sr * np.float32(photons)
            cell = cells.setdefault((stack.structure, photons), {})
            measured = camera.photon_conversion.photons(counts)
            candidates = {"widefield": ndimage.zoom(counts.mean(axis=0), 2, order=3)}
            for method, model in models.items():
                candidates[method] = model(counts)  # type: ignore[operator]
            parameters = estimate_parameters(measured, optics, pattern)
            for wiener in CLASSICAL_WIENER:
                image, _ = reconstruct_sim(measured, optics, parameters, wiener=wiener)
                candidates[f"classical_w{wiener:g}"] = image
            for method, image in candidates.items():
                for metric, value in truth_scores(image, truth).items():
                    cell.setdefault(f"{metric}_{method}", []).append(value)
    rows = [
        EvalRow({"structure": s, "photons": p}, {k: float(np.mean(v)) for k, v in c.items()})
        for (s, p), c in cells.items()
    ]
    return _with_best_classical(rows, photon_levels)


def _with_best_classical(rows: list[EvalRow], photon_levels: Sequence[float]) -> list[EvalRow]:
    """Fold the Wiener variants into one ``classical`` column: the best per photon level."""
    out = []
    for photons in photon_levels:
        level = [r for r in rows if float(r.condition["photons"]) == photons]
        best = max(
            CLASSICAL_WIENER,
            key=lambda w: np.mean([r.scores[f"psnr_classical_w{w:g}"] for r in level]),
        )
        for row in level:
            scores = {k: v for k, v in row.scores.items() if "_classical_w" not in k}
            for metric in ("psnr", "ms_ssim", "nrmse"):
                scores[f"{metric}_classical"] = row.scores[f"{metric}_classical_w{best:g}"]
            scores["classical_wiener"] = best
            out.append(EvalRow(row.condition, scores))
    return out


def summarise_sim(rows: list[EvalRow]) -> dict[str, object]:
    """The few numbers model.yaml keeps.

    Means at low light (<= 50 photons), and whether the model beats the classical
    reconstruction there in both PSNR and MS-SSIM, in every cell.
    """
    low = [r for r in rows if float(r.condition["photons"]) <= 50]
    methods = ("widefield", "classical", "model")

    def mean(key: str) -> float:
        return round(float(np.mean([r.scores[key] for r in low])), 4)

    return {
        "held_out": "simulated SIM raw sets, seeds never used in training; 10-50 photons",
        "psnr_db": {m: mean(f"psnr_{m}") for m in methods},
        "ms_ssim": {m: mean(f"ms_ssim_{m}") for m in methods},
        "beats_classical_everywhere_at_low_light": all(
            r.scores[f"{metric}_model"] > r.scores[f"{metric}_classical"]
            for r in low
            for metric in ("psnr", "ms_ssim")
        ),
    }
