"""Held-out evaluation of ``mfsr-sr2x`` against single-frame DFCAN, per motion and light.

Per cell (structure x motion per frame x peak photons), a window of 5 frames is rendered with
seeds never used in training, each frame gets camera noise, and four methods make the centre
frame's 2x image:
- ``dfcan``: ``dfcan-sr2x-tiny`` (the CPU tier of single-frame DFCAN) on the centre frame;
- ``dfcan-mean``: the same on the mean of the 5 frames (what averaging buys, and blurs);
- ``mfsr``: the model, centred window;
- ``mfsr-causal``: the model with the centre's future replaced by itself (no added latency).

Scores against the 2x truth after the least-squares affine fit every SR evaluation here uses
(``truth_scores``): PSNR and MS-SSIM. Frames are 128 px (256 px outputs, above MS-SSIM's 161).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from live_restore.inference import MFSRSession, ModelSession, load_model
from live_restore.simulate import STRUCTURES, CameraParams, expose

from ._evaluate import EvalRow, truth_scores
from ._mfsr import WINDOW, render_windows

__all__ = ["evaluate_mfsr"]

EVALUATION_SEED = 50_000
_SIDE_PX = 128
_METHODS = ("dfcan", "dfcan-mean", "mfsr", "mfsr-causal")


def evaluate_mfsr(
    name: str = "mfsr-sr2x",
    photons: Sequence[float] = (10.0, 20.0, 30.0),
    motions_px: Sequence[float] = (0.5, 1.5),
    structures: Sequence[str] = STRUCTURES,
    seed: int = EVALUATION_SEED,
    progress: bool = True,
) -> list[EvalRow]:
    """Rows of (condition, scores per method) for the multi-frame model ``name``."""
    session = load_model(name, tile_px=_SIDE_PX, cpu_variant=False)
    if not isinstance(session, MFSRSession):
        raise ValueError(f"{name!r} is not a multi-frame SR model (mfsr-sr2x)")
    single = load_model("dfcan-sr2x-tiny", tile_px=_SIDE_PX)
    assert isinstance(single, ModelSession)
    camera = CameraParams()
    centre = WINDOW // 2
    cells = [(s, m, p) for s in structures for m in motions_px for p in photons]
    from rich.progress import track

    rows = []
    for i, (structure, moved, light) in enumerate(
        track(cells, description=f"evaluating {name}", disable=not progress)
    ):
        example = render_windows(
            1, seed + i, size_px=_SIDE_PX, photon_range=(light, light),
            motion_px=(moved, moved), structure=structure,
        )  # fmt: skip
        rng = np.random.default_rng([seed, i])
        counts = np.stack([expose(f, camera, rng) for f in example.frames[0]])
        causal = counts.copy()
        causal[centre + 1 :] = counts[centre]
        made = {
            "dfcan": single(counts[centre]),
            "dfcan-mean": single(counts.astype(np.float32).mean(axis=0)),
            "mfsr": session(counts),
            "mfsr-causal": session(causal),
        }
        truth = camera.photon_conversion.counts(example.truth[0])
        scores: dict[str, float] = {}
        for method, image in made.items():
            for key, value in truth_scores(image, truth).items():
                scores[f"{method}_{key}"] = value
        condition: dict[str, float | str] = {
            "structure": structure,
            "motion_px_per_frame": moved,
            "photons": light,
        }
        rows.append(EvalRow(condition, scores))
    return rows
