"""Cost of the focus monitor per frame, and what each part of it costs.

Frames from the simulated microscope (microtubules, Low light) at a few defocus values; each
row times ``FocusMonitor.observe`` (estimator + focus score + flag) and its parts alone. Prints a
table; no assertion (speed is measured, not asserted). ``make bench-focus``.
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch
from rich.console import Console
from rich.table import Table

from live_restore.focus import SCORES, FocusMonitor
from live_restore.inference import load_model
from live_restore.simulate import ManualClock, SimMicroscope


def _frames(size: int, count: int) -> list[np.ndarray]:
    scope = SimMicroscope(
        "microtubules", frame_shape=(size, size), clock=ManualClock(), peak_photons_per_ms=20.0
    )
    scope.exposure_ms, scope.excitation_percent = 10.0, 10.0
    frames = []
    for i in range(count):
        scope.stage_um[2] = (i % 9 - 4) * 0.25
        frames.append(scope.snap(np.random.default_rng(i)))
    return frames


def _median_ms(function, frames: list[np.ndarray], repeats: int) -> float:
    function(frames[0])  # warm-up (first call allocates)
    times = []
    for _ in range(repeats):
        for frame in frames:
            started = time.perf_counter()
            function(frame)
            times.append((time.perf_counter() - started) * 1000)
    return float(np.median(times))


def _observer(monitor: FocusMonitor):
    numbers = iter(range(10**9))
    return lambda frame: monitor.observe(frame, next(numbers), {"t": 0})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024])
    parser.add_argument("--backend", default="auto")
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    estimator = load_model("focus-est", args.backend)
    device = "cuda" if torch.cuda.is_available() and args.backend != "torch-cpu" else "cpu"
    table = Table(
        title=f"focus monitor per frame (median ms; {device}, {torch.get_num_threads()} threads)"
    )
    for column in ("frame", "monitor (all)", "focus-est", *SCORES, "frames/s"):
        table.add_column(column, justify="right")
    for size in args.sizes:
        frames = _frames(size, 9)
        monitor = FocusMonitor(estimator)
        monitor.begin(None)
        whole = _median_ms(_observer(monitor), frames, args.repeats)
        model = _median_ms(estimator, frames, args.repeats)
        scores = [_median_ms(score, frames, args.repeats) for score in SCORES.values()]
        table.add_row(
            f"{size}x{size}",
            f"{whole:.1f}",
            f"{model:.1f}",
            *(f"{s:.1f}" for s in scores),
            f"{1000 / whole:.0f}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
