"""In-process vs a Triton server on loopback: per-frame latency and throughput, batch 1/4/8.

Starts `live-restore serve` (the server environment of `make serve-env`) with the model on the
same backend as the in-process session, then times ``restore_batch`` of batches of 1, 4 and 8
frames both ways, after one untimed warm-up call. On one machine the two share the cores, so
this measures what the network path costs, not what a separate GPU server gains.

    python benchmarks/bench_serve.py [--model dfcan-sr2x-tiny] [--size 512] [--repeats 5]
                                     [--backend torch-cpu]
"""

from __future__ import annotations

import argparse
import os
import platform
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

from live_restore import __version__
from live_restore.serving import free_ports


def _median_ms_per_frame(call, batch: np.ndarray, repeats: int) -> float:
    call(batch)  # warm
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        call(batch)
        times.append((time.perf_counter() - started) * 1000 / len(batch))
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model", default="dfcan-sr2x-tiny")
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--backend", default="torch-cpu")
    args = parser.parse_args()

    from live_restore.inference import load_model

    grpc, http, metrics = free_ports(3)
    log = Path(tempfile.mkdtemp()) / "serve.log"
    command = [sys.executable, "-m", "live_restore", "serve", "-m", args.model]
    command += ["--backend", args.backend, "--grpc-port", str(grpc), "--http-port", str(http)]
    command += ["--metrics-port", str(metrics)]
    with log.open("w") as out:
        server = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT)
    try:
        while "serve: ready" not in log.read_text():
            if server.poll() is not None:
                raise RuntimeError(log.read_text()[-2000:])
            time.sleep(0.2)
        local = load_model(args.model, args.backend, cpu_variant=False)
        remote = load_model(args.model, server=f"grpc://127.0.0.1:{grpc}")
        rng = np.random.default_rng(0)
        rows = []
        for size in (1, 4, 8):
            batch = (rng.poisson(50, (size, args.size, args.size)) + 100).astype(np.uint16)
            here = _median_ms_per_frame(local.restore_batch, batch, args.repeats)
            there = _median_ms_per_frame(remote.restore_batch, batch, args.repeats)
            rows.append((size, here, there))
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
    print(
        f"live-restore {__version__} | {platform.processor() or platform.machine()} | "
        f"{os.cpu_count()} cores | python {platform.python_version()} | {args.model} on "
        f"{args.backend} | {args.size}x{args.size} | median of {args.repeats}"
    )
    header = (
        f"{'batch':>5} {'in-process ms/frame':>20} {'Triton ms/frame':>16} {'frames/s':>9} "
        f"{'ratio':>6}"
    )
    print(header)
    print("-" * len(header))
    for size, here, there in rows:
        print(f"{size:5d} {here:20.1f} {there:16.1f} {1000 / there:9.2f} {there / here:6.2f}")


if __name__ == "__main__":
    main()
