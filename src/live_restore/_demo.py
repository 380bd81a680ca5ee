"""The simulated low-light time-lapse: an MDA on the demo core, saved as OME-Zarr.

The store is written under a temporary name and renamed only when every frame has arrived, so
a failed or interrupted demo never leaves a store that looks complete.
"""

from __future__ import annotations

import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import useq

from .devices import demo_core, microscope_of, release_core

__all__ = ["LIGHT_LEVELS", "DemoResult", "run_demo"]

LIGHT_LEVELS = ("VeryLow", "Low", "Medium", "High")


@dataclass(frozen=True)
class DemoResult:
    """What the demo acquired."""

    out: Path
    frames: int
    frame_shape: tuple[int, int]
    seconds: float
    peak_photons: float  # expected photons at the brightest in-focus pixel of one frame
    mean_counts: float
    final_defocus_um: float


def _partial_path(out: Path) -> Path:
    # ome-writers picks the format from the suffix, so the temporary name keeps ".ome.zarr"
    return out.with_name(out.name.removesuffix(".ome.zarr") + ".partial.ome.zarr")


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
    on_frame: Callable[[int], None] | None = None,
) -> DemoResult:
    """Acquire ``frames`` time points of the simulated sample at low light and save them."""
    if frames < 1:
        raise ValueError(f"frames must be >= 1, got {frames}")
    if light_level not in LIGHT_LEVELS:
        raise ValueError(f"light level {light_level!r} is not one of {', '.join(LIGHT_LEVELS)}")
    if not str(out).endswith(".ome.zarr"):
        raise ValueError(f"output {out} must end in .ome.zarr")
    if out.exists():
        raise FileExistsError(f"{out} already exists; choose another path or remove it")
    partial = _partial_path(out)
    if partial.exists():
        shutil.rmtree(partial)

    core = demo_core()
    try:
        core.setProperty("SimScope", "Structure", structure)
        core.setProperty("SimScope", "Seed", seed)
        core.setProperty("Camera", "FrameSize", frame_size)
        core.setProperty("Z", "FocusDriftUmPerMin", focus_drift_um_per_min)
        core.setExposure(exposure_ms)
        core.setConfig("LightLevel", light_level)
        scope = microscope_of(core)
        received: list[float] = []

        def _count(image: np.ndarray, event: Any, meta: Any) -> None:
            received.append(float(image.mean()))
            if on_frame is not None:
                on_frame(len(received))

        sequence = useq.MDASequence(
            time_plan={"interval": interval_s, "loops": frames},
            channels=[{"config": "Widefield", "group": "Channel"}],
        )
        core.mda.events.frameReady.connect(_count)
        started = time.perf_counter()
        core.mda.run(sequence, output=str(partial))
        seconds = time.perf_counter() - started
        core.mda.events.frameReady.disconnect(_count)
        if len(received) != frames:
            raise RuntimeError(
                f"the acquisition delivered {len(received)} of {frames} frames; "
                f"the incomplete store is kept at {partial}"
            )
        record = scope.last_record
        truth = scope.ground_truth(record) if record is not None else None
        peak = float(np.percentile(truth.in_focus_widefield, 99.9)) if truth is not None else 0.0
        final_defocus = record.defocus_um if record is not None else 0.0
    finally:
        release_core(core)
    partial.rename(out)
    return DemoResult(
        out=out,
        frames=frames,
        frame_shape=(frame_size, frame_size),
        seconds=seconds,
        peak_photons=peak,
        mean_counts=float(np.mean(received)),
        final_defocus_um=final_defocus,
    )
