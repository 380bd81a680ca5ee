"""Build, calibrate and compare a model's trust candidates; keep the best as its trust map.

``live-restore calibrate-trust MODEL``. For one single-frame model: trains its heteroscedastic
trust head (frozen model, Laplace NLL), calibrates each candidate's scale on simulated fields so
that 95 % of pixels have |error| <= 2 sigma, checks it on held-out fields, measures each
candidate's cost per 512x512 frame on the model's default runtime, and writes
``<model folder>/trust.yaml`` for the chosen default (and ``trust-head.safetensors``).
Candidates (``inference/_trust.py``): ``head`` (one pass + the trust head), ``tta`` (8 passes,
the square's symmetries) and ``pair`` (two independent frames of a still field, each restored
once: measured, not offered).

The default is the cheapest single-frame candidate whose held-out coverage lies in 0.90-0.98
and whose median block Spearman is within 0.05 of the best candidate's: rank first, then cost.
"""

from __future__ import annotations

import platform
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from live_restore._version import __version__
from live_restore.inference import SINGLE_FRAME_METHODS, TRUST_METHODS

__all__ = ["TrustCandidates", "calibrate_model_trust"]

STRUCTURES_CALIBRATED = ("microtubules", "clathrin", "er", "f-actin", "mitochondria", "nuclei")


def _cost_ms(model: str, head: Any) -> dict[str, float]:
    """Median ms per 512x512 frame of each candidate on the model's default runtime."""
    from live_restore.inference import (
        ModelSession,
        dihedral_passes,
        head_spread,
        load_model,
        pair_spread,
    )
    from live_restore.simulate import CameraParams, expose

    session = load_model(model, cpu_variant=False)  # this model, not its CPU tier
    assert isinstance(session, ModelSession)  # checked by the caller
    rng = np.random.default_rng(0)
    frame = expose(np.full((512, 512), 50.0), CameraParams(), rng).astype(np.float32)
    restored = session(frame)  # warm-up (and the graph's export)

    def timed(run: Any) -> float:
        times = []
        for _ in range(3):
            started = time.perf_counter()
            run()
            times.append(1000 * (time.perf_counter() - started))
        return statistics.median(times)

    plain = timed(lambda: session(frame))
    return {
        "plain": plain,
        "head": plain + timed(lambda: head_spread(head, frame, restored)),
        "tta": timed(lambda: dihedral_passes(session, frame)),
        # in a time-lapse the previous frame's restoration exists already
        "pair": plain + timed(lambda: pair_spread(restored, restored)),
        "backend": session.backend,  # type: ignore[dict-item]  # a name, for the header
    }


def _choose(summary: dict[str, dict[str, float]]) -> str:
    best_rank = max(s["spearman_median"] for s in summary.values())
    fitting = [
        m
        for m in SINGLE_FRAME_METHODS
        if m in summary
        and 0.90 <= summary[m]["coverage_2sigma"] <= 0.98
        and summary[m]["spearman_median"] >= best_rank - 0.05
    ]
    if not fitting:
        fitting = [m for m in SINGLE_FRAME_METHODS if m in summary]
    return min(fitting, key=lambda m: summary[m]["cost_ratio"])


@dataclass(frozen=True)
class TrustCandidates:
    """What a calibration measured, the default it chose, and where it wrote it (or None)."""

    summary: dict[str, dict[str, float]]
    default: str
    written: Any


def calibrate_model_trust(
    model: str,
    *,
    fields: int = 2,
    frame_size: int = 128,
    structures: tuple[str, ...] = STRUCTURES_CALIBRATED,
    methods: tuple[str, ...] = TRUST_METHODS,
    head_steps: int = 3000,
    head_fields: int = 6,
    reuse_head: bool = False,
    write: bool = True,
    say: Callable[[str], None] = print,
) -> TrustCandidates:
    """Calibrate ``model``'s trust candidates (see the module docstring).

    ValueError when it cannot be: not a single-frame model, no head to reuse.
    """
    from safetensors.torch import save_file

    from live_restore.inference import (
        TRUST_HEAD_FILE,
        ModelSession,
        TrustCalibration,
        load_model,
        load_trust_head,
    )
    from live_restore.models import file_sha256
    from live_restore.simulate import STRUCTURES

    from ._trust_calibration import calibrate_trust
    from ._trust_head import head_examples, train_trust_head

    unknown = sorted(set(methods) - set(TRUST_METHODS))
    if unknown:
        raise ValueError(f"unknown trust methods {unknown}; known: {', '.join(TRUST_METHODS)}")
    session = load_model(model, "torch-cpu", cpu_variant=False)
    if type(session) is not ModelSession:
        raise ValueError(f"{model} is not a single-frame restoration model; it has no trust map")
    started = time.perf_counter()
    head, head_facts, head_sha = None, {}, None
    if "head" in methods and reuse_head:
        previous = TrustCalibration.read(session.folder).details
        if "head_sha256" not in previous:
            raise ValueError(f"{session.folder / 'trust.yaml'} names no trust head to reuse")
        head_sha = previous["head_sha256"]
        head = load_trust_head(session.folder, session.scale, head_sha)
        head_facts = previous["head_training"]
    elif "head" in methods:
        examples = head_examples(session, list(STRUCTURES), head_fields)
        head, head_facts = train_trust_head(examples, session.scale, steps=head_steps)
        head_facts["examples"] = len(examples)
        say(f"trust head: {head_facts}")
    results = calibrate_trust(
        session, list(structures), list(methods), head, fields=fields, frame_size=frame_size
    )
    took_s = time.perf_counter() - started
    cost = _cost_ms(model, head)
    summary = {
        m: {
            "sigma_scale": round(c.sigma_scale, 5),
            "coverage_2sigma": round(c.coverage_2sigma, 4),
            "coverage_cells_min": round(min(r.coverage_2sigma for r in rows), 3),
            "spearman_median": round(statistics.median(r.spearman_blocks for r in rows), 3),
            "spearman_min": round(min(r.spearman_blocks for r in rows), 3),
            "error_over_sigma_median": round(
                statistics.median(r.error_over_sigma for r in rows), 3
            ),
            "ms_per_512px_frame": round(cost[m], 1),
            "cost_ratio": round(cost[m] / cost["plain"], 2),
        }
        for m, (c, rows) in results.items()
    }
    default = _choose(summary)
    say(
        f"live-restore {__version__} | {platform.machine()} | python {platform.python_version()}"
        f" | {model} | {fields} fields of {frame_size}^2 per structure and set"
        f" | {took_s:.0f} s | cost on {cost['backend']}, plain {cost['plain']:.0f} ms"
    )
    header = (
        f"{'method':6} {'structure':13} {'photons':>7} {'coverage':>9} {'|e|/sigma':>10} "
        f"{'Spearman':>9}"
    )
    say(header)
    say("-" * len(header))
    for method, (_, rows) in results.items():
        for r in rows:
            say(
                f"{method:6} {r.structure:13} {r.photons:7.0f} {r.coverage_2sigma:9.3f} "
                f"{r.error_over_sigma:10.2f} {r.spearman_blocks:9.2f}"
            )
    keys = list(next(iter(summary.values())))
    say(f"{'method':6} " + " ".join(f"{k:>24}" for k in keys))
    for method, row in summary.items():
        say(f"{method:6} " + " ".join(f"{row[k]:>24}" for k in keys))
    say(f"default: {default}")
    written = None
    if write:
        # the head and the calibration naming its hash are written together, at the end, so
        # an interrupted run leaves the model's previous pair intact
        if head is not None and not reuse_head:
            staged = session.folder / f".{TRUST_HEAD_FILE}.new"
            save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(staged))
            head_sha = file_sha256(staged)
            staged.replace(session.folder / TRUST_HEAD_FILE)
        chosen = results[default][0]
        details = {**chosen.details, "candidates": summary}
        if head_sha:  # kept whichever is the default: the head candidate stays usable
            details["head_sha256"] = head_sha
            details["head_training"] = head_facts
        calibration = type(chosen)(default, chosen.sigma_scale, chosen.coverage_2sigma, details)
        written = calibration.write(session.folder)
        say(f"wrote {written}")
    return TrustCandidates(summary, default, written)
