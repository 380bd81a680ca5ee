"""Held-out evaluation of ``interp-t`` / ``interp-z``: the network against two baselines.

Per cell (time: structure x motion per interval x light; z: the step x light, each sample a mix
of 3-6 structures at different depths), a triplet is rendered with seeds never used in training
(``render_interp_examples`` with the evaluation seed), the two real frames get camera noise, and
three methods make the middle frame (fraction 1/2), in photons:
- ``linear``: the blend ``(1 - f)·before + f·after``;
- ``tv-l1``: classical optical flow (scikit-image's TV-L1 on lightly smoothed frames), both
  frames warped to the fraction along it and blended;
- ``network``: the model.

Scores against the noise-free truth, no fitting (every method is in photons already): PSNR
(peak: the truth's range) and MS-SSIM. Images are 176 px, above MS-SSIM's 161 px minimum.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np
from scipy import ndimage

from live_restore.inference import InterpSession, load_model
from live_restore.metrics import ms_ssim, psnr
from live_restore.simulate import STRUCTURES, CameraParams, expose

from ._evaluate import EvalRow
from ._interp import render_interp_examples

__all__ = ["evaluate_interp", "linear_blend", "plot_interp", "tvl1_interpolate"]

EVALUATION_SEED = 30_000
_SIDE_PX = 176
_METHODS = ("linear", "tv-l1", "network")


def linear_blend(before: np.ndarray, after: np.ndarray, fraction: float) -> np.ndarray:
    """The frame at ``fraction`` as a weighted mean of the two."""
    blended: np.ndarray = ((1.0 - fraction) * before + fraction * after).astype(np.float32)
    return blended


def tvl1_interpolate(before: np.ndarray, after: np.ndarray, fraction: float) -> np.ndarray:
    """Classical flow interpolation: TV-L1 flow before -> after, both warped to ``fraction``.

    ``after(x + u(x)) ≈ before(x)``; the frame at f takes ``before`` from ``x - f·u`` and
    ``after`` from ``x + (1 - f)·u`` (the flow at x standing in for the flow along the path)
    and blends them with weights ``1 - f`` and ``f``. The flow is estimated on frames smoothed
    by a 1 px Gaussian (shot noise otherwise dominates its data term) and scaled to 0-1 (the
    range its default weights are set for); the warps use the frames.
    """
    from skimage.registration import optical_flow_tvl1

    peak = max(float(np.percentile(before, 99.9)), float(np.percentile(after, 99.9)), 1e-6)
    smooth = [
        ndimage.gaussian_filter(np.asarray(a, np.float32) / peak, 1.0) for a in (before, after)
    ]
    flow = optical_flow_tvl1(smooth[0], smooth[1])
    rows, cols = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in before.shape), indexing="ij")
    taken_before = ndimage.map_coordinates(
        before, [rows - fraction * flow[0], cols - fraction * flow[1]], order=1, mode="nearest"
    )
    taken_after = ndimage.map_coordinates(
        after,
        [rows + (1 - fraction) * flow[0], cols + (1 - fraction) * flow[1]],
        order=1,
        mode="nearest",
    )
    return linear_blend(taken_before, taken_after, fraction)


def _scores(image: np.ndarray, truth: np.ndarray) -> dict[str, float]:
    return {"psnr_db": psnr(image, truth), "ms_ssim": ms_ssim(image, truth)}


def evaluate_interp(
    name: str,
    examples_per_cell: int | None = None,
    photons: Sequence[float] = (20.0, 100.0, 1000.0),
    motions_px: Sequence[float] = (1.0, 2.0, 3.0, 4.0),
    steps_um: Sequence[float] = (0.43, 0.65),
    seed: int = EVALUATION_SEED,
    progress: bool = True,
) -> list[EvalRow]:
    """Rows of (condition, scores per method) for ``name`` (``interp-t`` or ``interp-z``).

    ``examples_per_cell``: default 1 for time (72 cells: 6 structures x 4 motions x 3 lights),
    6 for z (6 cells: 2 steps x 3 lights, each example a new mix of structures).
    """
    session = load_model(name, tile_px=_SIDE_PX)
    if not isinstance(session, InterpSession):
        raise ValueError(f"{name!r} is not an interpolation model (interp-t, interp-z)")
    camera = CameraParams()
    conversion = camera.photon_conversion
    axis = session.axis
    cells: list[tuple[str, float, float]] = []
    if axis == "t":
        cells = [(s, m, p) for s in STRUCTURES for m in motions_px for p in photons]
    else:
        cells = [("mixed", z, p) for z in steps_um for p in photons]
    per_cell = examples_per_cell or (1 if axis == "t" else 6)
    from rich.progress import track

    rows = []
    for i, (structure, moved, light) in enumerate(
        track(cells, description=f"evaluating {name}", disable=not progress)
    ):
        totals: dict[str, dict[str, list[float]]] = {m: {} for m in _METHODS}
        for j in range(per_cell):
            example = render_interp_examples(
                axis,
                1,
                seed + 1000 * i + j,
                size_px=_SIDE_PX,
                photon_range=(light, light),
                motion_px=(moved, moved),
                step_um=(moved, moved),
                fractions=(0.5,),
                structure=None if structure == "mixed" else structure,
            )
            rng = np.random.default_rng([seed, i, j])
            counts = [expose(a[0], camera, rng) for a in (example.before, example.after)]
            frames = [conversion.photons(c) for c in counts]
            made = {
                "linear": linear_blend(frames[0], frames[1], 0.5),
                "tv-l1": tvl1_interpolate(frames[0], frames[1], 0.5),
                "network": session(counts[0], counts[1], 0.5),
            }
            for method, image in made.items():
                for key, value in _scores(image, example.truth[0]).items():
                    totals[method].setdefault(key, []).append(value)
        condition: dict[str, float | str] = {
            "structure": structure,
            ("motion_px" if axis == "t" else "step_um"): moved,
            "photons": light,
        }
        scores = {
            f"{method}_{key}": float(np.mean(values))
            for method in _METHODS
            for key, values in totals[method].items()
        }
        rows.append(EvalRow(condition, scores))
    return rows


def plot_interp(rows: list[EvalRow], path: Path, title: str) -> Path:
    """PSNR of each method against motion (or step), one panel per light level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    key = "motion_px" if "motion_px" in rows[0].condition else "step_um"
    lights = sorted({float(r.condition["photons"]) for r in rows})
    figure, axes = plt.subplots(1, len(lights), figsize=(4.2 * len(lights), 3.6), squeeze=False)
    for ax, light in zip(axes[0], lights, strict=True):
        chosen = [r for r in rows if float(r.condition["photons"]) == light]
        xs = sorted({float(r.condition[key]) for r in chosen})
        for method in _METHODS:
            ys = [
                np.mean([r.scores[f"{method}_psnr_db"] for r in chosen if r.condition[key] == x])
                for x in xs
            ]
            ax.plot(xs, ys, marker="o", label=method)
        ax.set_title(f"{light:g} photons (peak)")
        ax.set_xlabel("motion per real interval (px)" if key == "motion_px" else "z step (µm)")
        ax.set_ylabel("PSNR vs truth (dB)")
        ax.grid(alpha=0.3)
    axes[0][0].legend()
    figure.suptitle(title)
    figure.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return path
