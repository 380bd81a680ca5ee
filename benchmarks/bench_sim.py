"""SIM reconstructions per second: 9 raw frames of 512x512 -> one 1024x1024 image.

Classical: parameter estimation + reconstruction (a new set whose pattern may have drifted) and
reconstruction alone (parameters kept from the first set, as the live stage does between
re-estimates). Learned: dfcan-sim through ``load_model`` (its tiles, normalisation and backend).
On the CPU and, when torch sees one, on a CUDA device. Prints a table; asserts nothing.

    python benchmarks/bench_sim.py [--size 512] [--repeats 5]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from live_restore.inference import load_model
from live_restore.sim_recon import estimate_parameters, reconstruct_sim
from live_restore.simulate import ManualClock, SimMicroscope, expose


def _raw_set(size: int) -> tuple[np.ndarray, SimMicroscope]:
    scope = SimMicroscope("microtubules", seed=1, frame_shape=(size, size), clock=ManualClock())
    scope.excitation_percent = 100.0
    rng = np.random.default_rng(0)
    frames = []
    for index in range(1, 10):
        scope.pattern_index = index
        frames.append(expose(scope.expected_photons(scope.record_exposure()), scope.camera, rng))
    return np.stack(frames), scope


def _median_s(call, repeats: int, device: str) -> float:
    call()  # warm-up: allocator, FFT plans
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=512)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    raw, scope = _raw_set(args.size)
    devices = ["cpu", *(["cuda"] if torch.cuda.is_available() else [])]
    out = 2 * args.size
    print(f"| device | step | {args.size}² x 9 -> {out}² median s | reconstructions/s |")
    print("| --- | --- | --- | --- |")
    for device in devices:
        parameters = estimate_parameters(raw, scope.optics, scope.sim, device)
        cells = {
            "estimate + reconstruct": lambda d=device: reconstruct_sim(
                raw, scope.optics, guess=scope.sim, device=d
            ),
            "reconstruct (known parameters)": lambda d=device, known=parameters: reconstruct_sim(
                raw, scope.optics, known, device=d
            ),
        }
        backend = "torch-cuda" if device == "cuda" else "torch-cpu"
        session = load_model("dfcan-sim", backend=backend)
        cells[f"dfcan-sim ({session.backend}, {session.precision})"] = lambda s=session: s(raw)
        for step, call in cells.items():
            seconds = _median_s(call, args.repeats, device)
            print(f"| {device} | {step} | {seconds:.3f} | {1.0 / seconds:.2f} |")
    print(f"torch {torch.__version__}, {torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
