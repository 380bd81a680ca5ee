"""What does adapting during an acquisition (HookConfig.adapt) cost the acquisition and restoring?

The simulated microscope's MDA (a time-lapse at a fixed interval) restored by dfcan-sr2x-tiny,
once as is and once with ``adapt`` (after the first frames, ``live-restore adapt`` runs in its
own process at idle priority). Per run: the MDA's wall time against its nominal length (the
acquisition must not slow), restoration latency (receipt -> restored output, frames.csv), frames
restored, and what the adapt process got done (steps, verdict, the frame the weights swapped at).
Each configuration runs in a fresh process, alone.

    python benchmarks/bench_adapt_in_hook.py [--frames 160] [--interval-s 0.25] [--size 256]
        [--minutes 0.5] [--executor thread]
"""

from __future__ import annotations

import argparse
import csv
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table


def one_run(args: argparse.Namespace, adapt: bool, out: Path) -> dict[str, object]:
    import useq

    from live_restore import HookConfig, build_hook, demo_core

    core = demo_core()
    core.setProperty("Camera", "FrameSize", args.size)
    core.setExposure(20.0)
    model = "dfcan-sr2x-tiny"
    config = HookConfig(
        models=[model],
        backend="torch-cpu",
        executor=args.executor,
        output=out,
        live=False,
        progress=False,
        adapt={"stage": model, "after_frames": 12, "minutes": args.minutes, "na": 1.2}
        if adapt
        else None,
    )
    sequence = useq.MDASequence(time_plan={"interval": args.interval_s, "loops": args.frames})
    with build_hook(core, config):
        started = time.perf_counter()
        core.mda.run(sequence, output=str(out / "raw.ome.zarr"))
        acquired_s = time.perf_counter() - started
    with (out / "frames.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == model]
    latency = np.array([float(r["latency_ms"]) for r in rows if r["latency_ms"]])
    summary = json.loads((out / "summary.json").read_text())
    adapted = summary.get("adapt", {})
    return {
        "acquired_s": acquired_s,
        "nominal_s": args.frames * args.interval_s,
        "restored": sum(r["status"] == "restored" for r in rows),
        "p50_ms": float(np.percentile(latency, 50)),
        "p95_ms": float(np.percentile(latency, 95)),
        "adapt_state": adapted.get("state", "-"),
        "adapt_steps": adapted.get("result", {}).get("steps", "-"),
        "swapped_at": adapted.get("swapped_at_index", "-"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=160)
    parser.add_argument("--interval-s", type=float, default=0.25)
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--minutes", type=float, default=0.5)
    parser.add_argument("--executor", default="thread")
    parser.add_argument("--one", choices=["off", "on"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:  # a child: one configuration, its result as JSON on the last line
        with tempfile.TemporaryDirectory() as folder:
            print(json.dumps(one_run(args, args.one == "on", Path(folder) / "run")))
        return
    results = {}
    for mode in ("off", "on"):
        command = [sys.executable, __file__, "--one", mode, *sys.argv[1:]]
        done = subprocess.run(command, capture_output=True, text=True, check=True)
        results[mode] = json.loads(done.stdout.strip().splitlines()[-1])
    table = Table(
        title=f"adapting during an MDA: {args.frames} frames of {args.size} px every "
        f"{args.interval_s} s, dfcan-sr2x-tiny, executor {args.executor}, adapt "
        f"{args.minutes} min after 12 frames"
    )
    for column in ("adapt", "MDA s (nominal)", "restored", "latency p50 / p95 ms", "adapt steps",
                   "state", "swapped at"):  # fmt: skip
        table.add_column(column)
    for mode, r in results.items():
        table.add_row(
            mode, f"{r['acquired_s']:.1f} ({r['nominal_s']:.1f})", str(r["restored"]),
            f"{r['p50_ms']:.0f} / {r['p95_ms']:.0f}", str(r["adapt_steps"]),
            str(r["adapt_state"]), str(r["swapped_at"]),
        )  # fmt: skip
    Console().print(table)
    off, on = results["off"], results["on"]
    print(
        f"MDA time on/off {on['acquired_s'] / off['acquired_s']:.3f}; latency p50 on/off "  # type: ignore[operator]
        f"{on['p50_ms'] / off['p50_ms']:.2f}"  # type: ignore[operator]
    )


if __name__ == "__main__":
    main()
