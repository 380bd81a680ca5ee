"""Batch restoration on Dask: frames/s with 1 and 2 local workers, against one in-process loop.

Makes a raw store on the simulated camera (pymmcore-plus's own writer), then restores it with
``restore_store`` on a LocalCluster of 1 and 2 worker processes, and with the model called
in a plain loop in this process (the baseline: what ``load_model(name)(frame)`` does).
Each worker's torch gets cores / workers threads. Cluster start and model loading are
included in the Dask times (as a user meets them) and shown separately as "start s".

    python benchmarks/bench_batch.py [--frames 24] [--frame-size 512]
                                     [--models richardson-lucy dfcan-sr2x-tiny]
"""

from __future__ import annotations

import argparse
import os
import platform
import tempfile
import time
from pathlib import Path

import numpy as np
import useq

from live_restore import __version__


def _raw_store(folder: Path, frames: int, size: int) -> Path:
    from live_restore import demo_core, release_core

    core = demo_core()
    try:
        core.setProperty("Camera", "FrameSize", size)
        core.setExposure(10.0)
        path = folder / "raw.ome.zarr"
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": frames}), output=str(path))
    finally:
        release_core(core)
    return path


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--frames", type=int, default=24)
    parser.add_argument("--frame-size", type=int, default=512)
    parser.add_argument("--models", nargs="+", default=["richardson-lucy", "dfcan-sr2x-tiny"])
    args = parser.parse_args()

    from live_restore.acquisition import make_restorer
    from live_restore.serving import open_inputs, restore_store

    folder = Path(tempfile.mkdtemp(prefix="bench-batch-"))
    raw = _raw_store(folder, args.frames, args.frame_size)
    frames = np.asarray(next(iter(open_inputs(raw).values())).array()[:])
    rows = []
    for model in args.models:
        started = time.perf_counter()
        restorer = make_restorer(model)
        restorer(frames[0])  # warm, as a worker's first frame is
        loaded_s = time.perf_counter() - started
        started = time.perf_counter()
        for frame in frames:
            restorer(frame)
        loop_s = time.perf_counter() - started
        restorer.close()
        rows.append((model, "in-process loop", loaded_s, loop_s + loaded_s, args.frames / loop_s))
        for workers in (1, 2):
            out = folder / f"{model}-{workers}.ome.zarr"
            seen: list[float] = []
            started = time.perf_counter()
            restore_store(
                raw,
                model,
                out,
                workers=workers,
                on_progress=lambda _done, _total, seen=seen: seen.append(time.perf_counter()),
            )
            total_s = time.perf_counter() - started
            # from the first frame done to the last: the steady rate, start-up excluded
            steady = (len(seen) - 2) / (seen[-1] - seen[1]) if len(seen) > 3 else float("nan")
            rows.append((model, f"dask, {workers} worker(s)", seen[1] - started, total_s, steady))
    print(
        f"live-restore {__version__} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} cores | python {platform.python_version()} | {args.frames} frames "
        f"{args.frame_size}^2"
    )
    header = f"{'model':18} {'how':22} {'start s':>8} {'total s':>8} {'frames/s':>9}"
    print(header)
    print("-" * len(header))
    for model, how, start_s, total_s, rate in rows:
        print(f"{model:18} {how:22} {start_s:8.1f} {total_s:8.1f} {rate:9.2f}")


if __name__ == "__main__":
    main()
