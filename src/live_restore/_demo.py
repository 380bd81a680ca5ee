"""The simulated low-light time-lapse: an MDA on the demo core, restored while it acquires.

Everything lands in one folder: ``raw.ome.zarr`` (pymmcore-plus's writer), one
``<model>.ome.zarr`` per model, ``frames.csv`` and ``summary.json`` (the hook's). The folder is
written under a temporary name and renamed only when every frame has arrived, so a failed or
interrupted demo never leaves a folder that looks complete.
"""

from __future__ import annotations

import math
import shutil
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import useq

from .acquisition import (
    FocusConfig,
    HoldConfig,
    HookConfig,
    HookStats,
    IdentityRestorer,
    RichardsonLucyRestorer,
    build_hook,
)
from .devices import demo_core, microscope_of, release_core
from .simulate import ManualClock

__all__ = [
    "LIGHT_LEVELS",
    "DemoResult",
    "DemoSettings",
    "configure_demo_core",
    "demo_sequence",
    "run_demo",
]

LIGHT_LEVELS = ("VeryLow", "Low", "Medium", "High")


@dataclass(frozen=True)
class DemoResult:
    """What the demo acquired and restored."""

    out: Path
    frames: int
    frame_shape: tuple[int, int]
    seconds: float  # the acquisition alone
    finish_seconds: float  # restoration still running after the acquisition ended
    peak_photons: float  # expected photons at the brightest in-focus pixel of one frame
    mean_counts: float
    final_defocus_um: float
    models: tuple[str, ...]
    stats: HookStats  # the hook's last snapshot: its report (counts) and latencies
    # last frame against the simulator's ground truth on the restored grid (the 2x truth,
    # binned for a 1x model); raw upsampled bicubically; both affinely fitted to the truth
    nrmse_raw: float
    nrmse_restored: float
    nrmse_richardson_lucy: float  # the classical baseline on the same frame and grid
    # focus (with the monitor on): frames flagged, the first one, the largest true |defocus|
    # over the run (simulator ground truth), and how often focus hold moved the stage
    frames_flagged: int = 0
    first_flagged_frame: int | None = None
    max_true_defocus_um: float = 0.0
    focus_moves: int = 0
    sample_minutes: float = 0.0  # sample time the run covered (simulated or wall clock)

    @property
    def frames_restored(self) -> int:
        """Frames every stage restored."""
        return self.stats.report.frames_restored

    @property
    def frames_from_raw_store(self) -> int:
        """Frames read back from the raw store (the worker fell behind its memory bound)."""
        return self.stats.report.frames_from_raw_store


def _partial_path(out: Path) -> Path:
    return out.with_name(out.name + ".partial")


def _scores_against_truth(
    images: dict[str, np.ndarray], grid_factor: int, sr_truth: np.ndarray
) -> dict[str, float]:
    """NRMSE of each image against the truth on the restored grid, each fitted to it.

    The grid is ``grid_factor`` x the camera's: the 2x truth, or it binned. Coarser images are
    upsampled bicubically first, as ``live-restore eval`` does.
    """
    from scipy import ndimage

    from .metrics import fit_to_truth, nrmse

    n = sr_truth.shape[0] // 2
    target = sr_truth if grid_factor == 2 else sr_truth.reshape(n, 2, n, 2).mean(axis=(1, 3))
    scores = {}
    for name, image in images.items():
        zoom = target.shape[0] // image.shape[0]
        on_grid = ndimage.zoom(image, zoom, order=3) if zoom > 1 else image
        scores[name] = nrmse(fit_to_truth(on_grid, target), target)
    return scores


@dataclass(frozen=True)
class DemoSettings:
    """The simulated low-light time-lapse: how long, which sample, how much light."""

    frames: int = 50
    structure: str = "microtubules"
    light_level: str = "Low"
    exposure_ms: float = 10.0
    interval_s: float = 0.0
    frame_size: int = 512
    seed: int = 0
    focus_drift_um_per_min: float = 0.0
    # > 0: the sample's clock advances this much per frame (a long time-lapse in seconds of
    # wall time: drift shows within one demo); 0: the sample lives on the wall clock
    sample_seconds_per_frame: float = 0.0

    def __post_init__(self) -> None:
        if self.sample_seconds_per_frame < 0:
            raise ValueError(
                f"sample_seconds_per_frame must be >= 0, got {self.sample_seconds_per_frame}"
            )
        if self.frames < 1:
            raise ValueError(f"frames must be >= 1, got {self.frames}")
        if self.light_level not in LIGHT_LEVELS:
            raise ValueError(
                f"light level {self.light_level!r} is not one of {', '.join(LIGHT_LEVELS)}"
            )


def configure_demo_core(core: Any, settings: DemoSettings) -> None:
    """Set the demo core's sample, camera and light for the low-light time-lapse."""
    core.setProperty("SimScope", "Structure", settings.structure)
    core.setProperty("SimScope", "Seed", settings.seed)
    core.setProperty("Camera", "FrameSize", settings.frame_size)
    core.setProperty("Z", "FocusDriftUmPerMin", settings.focus_drift_um_per_min)
    core.setExposure(settings.exposure_ms)
    core.setConfig("LightLevel", settings.light_level)
    if settings.sample_seconds_per_frame > 0:
        scope = microscope_of(core)
        clock = ManualClock()
        scope.clock = clock
        step_s = settings.sample_seconds_per_frame
        core.mda.events.frameReady.connect(lambda *_: clock.advance(step_s))
    # draw the sample now (no light, no time): at 1024 px it takes seconds, and at the first
    # frame it would make the MDA fire the time points it missed in a burst
    scope = microscope_of(core)
    scope.frame_shape = (settings.frame_size, settings.frame_size)  # what the camera's snap sets
    _ = scope.sample


def demo_sequence(settings: DemoSettings) -> useq.MDASequence:
    """The demo's time-lapse: ``settings.frames`` widefield time points."""
    return useq.MDASequence(
        time_plan={"interval": settings.interval_s, "loops": settings.frames},
        channels=[{"config": "Widefield", "group": "Channel"}],
    )


def run_demo(
    out: Path,
    frames: int = 50,
    structure: str = "microtubules",
    light_level: str = "Low",
    exposure_ms: float = 10.0,
    interval_s: float = 0.0,
    frame_size: int = 512,
    seed: int = 0,
    focus_drift_um_per_min: float = 0.0,
    sample_seconds_per_frame: float = 0.0,
    watch_focus: bool = False,
    hold_focus: bool = False,
    models: Sequence[str] = ("richardson-lucy",),
    backend: str = "auto",
    policy: str = "all",
    memory_mb: float = 512.0,
    on_frame: Callable[[int], None] | None = None,
    on_restored: Callable[[int], None] | None = None,
    progress: bool = True,
    on_ready: Callable[[tuple[str, ...]], None] | None = None,
) -> DemoResult:
    """Acquire ``frames`` time points of the simulated sample at low light, restore and save."""
    settings = DemoSettings(
        frames,
        structure,
        light_level,
        exposure_ms,
        interval_s,
        frame_size,
        seed,
        focus_drift_um_per_min,
        sample_seconds_per_frame,
    )
    if not models:
        raise ValueError("the demo needs at least one model")
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another path or remove it")
    partial = _partial_path(out)
    if partial.exists():
        shutil.rmtree(partial)

    core = demo_core()
    try:
        configure_demo_core(core, settings)
        scope = microscope_of(core)
        focus = None
        if watch_focus or hold_focus:
            focus = FocusConfig(hold=HoldConfig() if hold_focus else None)
        config = HookConfig.model_validate(
            {
                "models": list(models),
                "backend": backend,
                "policy": policy,
                "memory_mb": memory_mb,
                "output": partial,
                "progress": progress,
                "focus": focus,
            }
        )
        hook = build_hook(core, config)
        if on_ready is not None:  # the stages as loaded (a CPU may have swapped in a variant)
            on_ready(tuple(name for name, _scale in hook.stages))
        monitor, hold = hook.focus, hook.hold
        received: list[float] = []
        true_defocus_um: list[float] = []

        def _count(image: np.ndarray, event: Any, meta: Any) -> None:
            received.append(float(image.mean()))
            if scope.last_record is not None:
                true_defocus_um.append(scope.last_record.defocus_um)
            if on_frame is not None:
                on_frame(len(received))

        sequence = demo_sequence(settings)
        core.mda.events.frameReady.connect(_count)
        sample_started_s = scope.clock()
        if on_restored is not None:
            first_stage = hook.stages[0][0]
            restored = 0

            def _restored(frame: Any) -> None:
                nonlocal restored
                if frame.stage == first_stage:
                    restored += 1
                    on_restored(restored)

            hook.events.restored.connect(_restored)
        with hook:
            started = time.perf_counter()
            hook.run(sequence)
            seconds = time.perf_counter() - started
        finish_seconds = time.perf_counter() - started - seconds
        core.mda.events.frameReady.disconnect(_count)
        if len(received) != frames:
            raise RuntimeError(
                f"the acquisition delivered {len(received)} of {frames} frames; "
                f"what was acquired is kept in {partial}"
            )
        record = scope.last_record
        truth = scope.ground_truth(record) if record is not None else None
        peak = float(np.percentile(truth.in_focus_widefield, 99.9)) if truth is not None else 0.0
        final_defocus = record.defocus_um if record is not None else 0.0
        nrmse_raw = nrmse_restored = nrmse_rl = math.nan
        latest = hook.latest()
        if truth is not None and latest is not None and latest.numbers[-1] == frames - 1:
            # the classical baseline on the same frame: a model is worth running only above it
            baseline = RichardsonLucyRestorer(scope.optics, scope.camera)
            scores = _scores_against_truth(
                {
                    "raw": IdentityRestorer(scope.camera)(latest.raw),
                    "richardson-lucy": baseline(latest.raw),
                    "restored": latest.restored,
                },
                latest.restored.shape[0] // latest.raw.shape[0],
                truth.sr_2x,
            )
            nrmse_raw, nrmse_rl = scores["raw"], scores["richardson-lucy"]
            nrmse_restored = scores["restored"]
        stats = hook.stats()
        sample_minutes = (scope.clock() - sample_started_s) / 60.0
    finally:
        release_core(core)
    partial.rename(out)
    return DemoResult(
        out=out,
        frames=frames,
        frame_shape=(frame_size, frame_size),
        seconds=seconds,
        finish_seconds=finish_seconds,
        peak_photons=peak,
        mean_counts=float(np.mean(received)),
        final_defocus_um=final_defocus,
        models=tuple(name for name, _scale in hook.stages),
        stats=stats,
        nrmse_raw=nrmse_raw,
        nrmse_restored=nrmse_restored,
        nrmse_richardson_lucy=nrmse_rl,
        frames_flagged=monitor.frames_flagged if monitor else 0,
        first_flagged_frame=next(
            (c["frame"] for c in monitor.flag_changes if c["state"] == "out-of-focus"), None
        )
        if monitor
        else None,
        max_true_defocus_um=max((abs(d) for d in true_defocus_um), default=0.0),
        focus_moves=len(hold.moves) if hold else 0,
        sample_minutes=sample_minutes,
    )
