"""Cost of rendering simulated frames on the CPU (the demo camera must keep up with video rate).

Prints a table: median and p90 milliseconds per operation for a 512x512 camera frame, pinned to
one core by default (the issue's target: a widefield frame below 25 ms on one core).

    python benchmarks/bench_simulator.py [--frame-size 512] [--cores 1] [--repeats 30]
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import platform
import time
from collections.abc import Callable

import numpy as np
import scipy

from live_restore import __version__
from live_restore.simulate import (
    STRUCTURES,
    CameraParams,
    ManualClock,
    SimMicroscope,
    expose,
    expose_frame,
    make_sample,
)


def _time_ms(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    fn()  # warm caches (OTFs, FFT plans)
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - start) * 1e3)
    return float(np.median(samples)), float(np.percentile(samples, 90))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frame-size", type=int, default=512)
    parser.add_argument("--cores", type=int, default=1, help="pin to this many cores (0 = all)")
    parser.add_argument("--repeats", type=int, default=30)
    args = parser.parse_args()
    if args.cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, set(range(args.cores)))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()

    size = args.frame_size
    scope = SimMicroscope("microtubules", frame_shape=(size, size), clock=ManualClock())
    started = time.perf_counter()
    _ = scope.sample
    build_s = time.perf_counter() - started
    record = scope.record_exposure()
    photons = scope.expected_photons(record)
    rng = np.random.default_rng(0)
    camera = CameraParams()
    defocused = dataclasses.replace(record, defocus_um=1.5)
    sim_records = [dataclasses.replace(record, pattern_index=k) for k in range(1, 10)]

    rows = [
        ("widefield render (expected photons)", lambda: scope.expected_photons(record)),
        ("widefield render, 1.5 µm defocus", lambda: scope.expected_photons(defocused)),
        ("camera noise (Poisson + read, uint16)", lambda: expose(photons, camera, rng)),
        ("camera noise, half on a helper thread", lambda: expose_frame(photons, camera, (0, 1))),
        ("full snap (state + render + noise)", scope.snap),
        ("one SIM raw frame (fine grid)", lambda: scope.expected_photons(sim_records[0])),
        ("9-frame SIM set, noise-free", lambda: [scope.expected_photons(r) for r in sim_records]),
        ("ground truth (WF in focus + 2x SR)", lambda: scope.ground_truth(record)),
    ]
    print(f"live-restore {__version__} simulator benchmark: {size}x{size} frame, {cores} core(s)")
    print(
        f"python {platform.python_version()}, numpy {np.__version__}, "
        f"scipy {scipy.__version__}, {platform.machine()}"
    )
    print(f"sample build (band-limited layers, first use): {build_s * 1e3:.0f} ms")
    print()
    print(f"| {'operation':<40} | {'median ms':>9} | {'p90 ms':>7} | {'per s':>7} |")
    print(f"|{'-' * 42}|{'-' * 11}|{'-' * 9}|{'-' * 9}|")
    results = {}
    for name, fn in rows:
        repeats = (
            max(3, args.repeats // 5) if "SIM set" in name or "truth" in name else args.repeats
        )
        median, p90 = _time_ms(fn, repeats)
        results[name] = median
        print(f"| {name:<40} | {median:>9.1f} | {p90:>7.1f} | {1e3 / median:>7.1f} |")
    snap = results["full snap (state + render + noise)"]
    verdict = "meets" if snap < 25 else "misses"
    print(
        f"\nfull widefield snap: {snap:.1f} ms -> {verdict} the 25 ms/frame target "
        f"on {cores} core(s)"
    )
    print()
    print("sample generation per structure (fine grid = 4x the frame side):")
    for structure in STRUCTURES:
        start = time.perf_counter()
        make_sample(structure, (4 * size, 4 * size), scope.optics.sr_pixel_um, seed=0)
        print(f"  {structure:<13} {(time.perf_counter() - start) * 1e3:7.0f} ms")


if __name__ == "__main__":
    main()
