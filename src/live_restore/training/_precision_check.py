"""Does a reduced precision cost anything you can see? The check that lets ``auto`` use it.

A model at a reduced precision (bf16, int8) on a CPU runtime is scored on the same held-out
simulated frames as ``live-restore eval`` (every structure x light, against the noise-free
truth), beside the same model in float32 torch. It passes only where, in every cell, it loses
at most ``MAX_PSNR_LOSS_DB`` PSNR and ``MAX_MS_SSIM_LOSS`` MS-SSIM: a mean would hide one
structure or one light level where it fails. ``--record`` writes the passing precisions into
model.yaml's ``cpu_precisions`` (which ``auto`` reads) and every cell into
``evaluation.cpu_precision``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from live_restore.inference import ModelSession, load_model
from live_restore.simulate import STRUCTURES

from ._evaluate import EvalRow, sr_cells, truth_scores

__all__ = [
    "MAX_MS_SSIM_LOSS",
    "MAX_PSNR_LOSS_DB",
    "PrecisionCheck",
    "check_precision",
    "record_precisions",
]

MAX_PSNR_LOSS_DB = 0.1
MAX_MS_SSIM_LOSS = 0.002
PHOTON_LEVELS = (20.0, 50.0, 100.0, 300.0)


@dataclass(frozen=True)
class PrecisionCheck:
    """One backend x precision against float32 torch, per structure x light."""

    model: str
    backend: str
    precision: str
    rows: list[EvalRow]  # scores: psnr/ms_ssim of reference and candidate, and the losses

    @property
    def worst_psnr_loss_db(self) -> float:
        return max(r.scores["psnr_loss_db"] for r in self.rows)

    @property
    def worst_ms_ssim_loss(self) -> float:
        return max(r.scores["ms_ssim_loss"] for r in self.rows)

    @property
    def passed(self) -> bool:
        return (
            self.worst_psnr_loss_db <= MAX_PSNR_LOSS_DB
            and self.worst_ms_ssim_loss <= MAX_MS_SSIM_LOSS
        )

    def summary(self) -> dict[str, object]:
        """What model.yaml keeps of it."""
        return {
            "backend": self.backend,
            "passed": self.passed,
            "worst_psnr_loss_db": round(self.worst_psnr_loss_db, 4),
            "worst_ms_ssim_loss": round(self.worst_ms_ssim_loss, 5),
            "cells": {
                f"{r.condition['structure']} {int(float(r.condition['photons']))} photons": {
                    "psnr_loss_db": round(r.scores["psnr_loss_db"], 4),
                    "ms_ssim_loss": round(r.scores["ms_ssim_loss"], 5),
                }
                for r in self.rows
            },
        }


def check_precision(
    model: str,
    backend: str,
    precision: str,
    structures: Sequence[str] = STRUCTURES,
    photon_levels: Sequence[float] = PHOTON_LEVELS,
    fields: int = 3,
    frame_size: int = 256,
    seed: int = 0,
    reference: ModelSession | None = None,
) -> PrecisionCheck:
    """Score ``model`` on ``backend`` at ``precision`` against itself in float32 torch."""
    reference = reference or _single_frame(load_model(model, backend="torch-cpu"), model)
    candidate = _single_frame(load_model(model, backend=backend, precision=precision), model)

    def scores(counts: np.ndarray, truth: np.ndarray) -> dict[str, float]:
        ours = truth_scores(reference(counts), truth)
        theirs = truth_scores(candidate(counts), truth)
        return {
            "psnr_reference": ours["psnr"],
            "psnr_candidate": theirs["psnr"],
            "ms_ssim_reference": ours["ms_ssim"],
            "ms_ssim_candidate": theirs["ms_ssim"],
            "psnr_loss_db": ours["psnr"] - theirs["psnr"],
            "ms_ssim_loss": ours["ms_ssim"] - theirs["ms_ssim"],
        }

    rows = sr_cells(scores, structures, photon_levels, fields, frame_size, seed)
    return PrecisionCheck(model, candidate.backend, candidate.precision, rows)


def _single_frame(session: object, model: str) -> ModelSession:
    if not isinstance(session, ModelSession) or session.spec.task.value not in (
        "super-resolution",
        "refocus",
    ):
        raise ValueError(
            f"{model}: the precision check scores single-frame super-resolution and refocus "
            "models (reduced precision is calibrated for those)"
        )
    return session


def record_precisions(model: str, checks: list[PrecisionCheck]) -> Path:
    """Write the passing precisions (fastest first: int8, bf16) and every cell into model.yaml."""
    from live_restore.models import model_dir, read_spec, write_spec

    folder = model_dir(model)
    spec = read_spec(folder)
    order: Callable[[str], int] = ["int8", "bf16", "fp32"].index
    passed = sorted({c.precision for c in checks if c.passed} | {"fp32"}, key=order)
    spec.cpu_precisions = passed  # type: ignore[assignment]
    spec.evaluation = spec.evaluation | {
        "cpu_precision": {
            "rule": f"every structure x light cell loses at most {MAX_PSNR_LOSS_DB} dB PSNR and "
            f"{MAX_MS_SSIM_LOSS} MS-SSIM against float32 torch (held-out simulated frames)",
            **{c.precision: c.summary() for c in checks},
        }
    }
    return write_spec(folder, spec)
