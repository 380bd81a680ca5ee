"""Dose: every frame at full light, against every other frame + interp-t, on one moving sample.

Three runs of the simulated microscope over the same time points (one sample, one seed, its
structures moving: the field drifts 1 px per time step and the mobile part moves relative to
it; the sample bleaches with every exposure):
- ``every frame``: all 2N+1 time points exposed at the chosen light;
- ``every other + interp-t``: time points 0, 2, 4, ... exposed at that light, the others made by
  interp-t from their two neighbours (half the photons, half the bleaching);
- ``every frame, half light``: all 2N+1 at half the exposure (the same dose as the second).

Per run: PSNR of each time point's image (the raw frame in photons, or the interpolated one)
against the noise-free truth of that run's sample at that time (bleached by that run's own
exposures), the photons the sample absorbed (relative to the first run) and the fluorophores
left at the end. Prints a table. ``python benchmarks/bench_interp_dose.py``.
"""

from __future__ import annotations

import argparse
from dataclasses import replace

import numpy as np
from rich.console import Console
from rich.table import Table

from live_restore import load_model
from live_restore.metrics import psnr
from live_restore.simulate import ManualClock, SimMicroscope


def _scope(args: argparse.Namespace, exposure_ms: float) -> tuple[SimMicroscope, ManualClock]:
    clock = ManualClock()
    pixel_nm = 65.0
    scope = SimMicroscope(
        args.structure,
        seed=args.seed,
        frame_shape=(args.size, args.size),
        clock=clock,
        peak_photons_per_ms=args.photons / 10.0,  # at 10 ms and 100 % excitation
        motion_um_per_min=args.mobile_px_per_step * pixel_nm / 1000 * 60 / args.interval_s,
        bleach_half_dose_s=args.bleach_half_dose_s,
    )
    scope.xy_drift_nm_per_min = (args.drift_px_per_step * pixel_nm * 60 / args.interval_s, 0.0)
    scope.excitation_percent, scope.exposure_ms = 100.0, exposure_ms
    return scope, clock


def _truth(scope: SimMicroscope, exposure_ms: float) -> np.ndarray:
    """The noise-free frame now, without exposing the sample (no bleaching)."""
    scope.shutter_open = False
    record = scope.record_exposure()
    scope.shutter_open = True
    return scope.expected_photons(replace(record, shutter_open=True, exposure_ms=exposure_ms))


def _run(args: argparse.Namespace, every: int, exposure_ms: float, session) -> dict[str, float]:
    scope, clock = _scope(args, exposure_ms)
    rng = np.random.default_rng(args.seed)
    steps = 2 * args.intervals + 1
    images, truths, raw = [], [], {}
    dose = 0.0
    for t in range(steps):
        clock.set(t * args.interval_s)
        if t % every == 0:
            truths.append(_truth(scope, exposure_ms))
            raw[t] = scope.snap(rng)
            dose += exposure_ms
            images.append(scope.camera.photon_conversion.photons(raw[t]))
        else:
            truths.append(_truth(scope, exposure_ms))
            images.append(None)
    for t in range(steps):
        if images[t] is None:
            images[t] = session(raw[t - 1], raw[t + 1], 0.5)
    scores = [psnr(image, truth) for image, truth in zip(images, truths, strict=True)]
    left = float(_truth(scope, exposure_ms).sum() / (truths[0].sum() or 1.0))
    return {
        "psnr": float(np.mean(scores)),
        "psnr_real": float(np.mean(scores[::every])),
        "psnr_made": float(np.mean(scores[1::2])) if every == 2 else float("nan"),
        "dose": dose,
        "left": left,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--structure", default="er")
    parser.add_argument("--size", type=int, default=256)
    parser.add_argument("--intervals", type=int, default=10, help="N: the runs have 2N+1 steps")
    parser.add_argument("--photons", type=float, default=100.0, help="peak photons, full light")
    parser.add_argument("--interval-s", type=float, default=10.0)
    parser.add_argument("--drift-px-per-step", type=float, default=1.0)
    parser.add_argument("--mobile-px-per-step", type=float, default=1.0)
    parser.add_argument("--bleach-half-dose-s", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--model", default="interp-t", help="model name or folder")
    args = parser.parse_args()
    session = load_model(args.model)
    runs = {
        "every frame": _run(args, 1, 10.0, session),
        "every other + interp-t": _run(args, 2, 10.0, session),
        "every frame, half light": _run(args, 1, 5.0, session),
    }
    reference = runs["every frame"]
    table = Table(
        title=f"{args.structure}, {2 * args.intervals + 1} time points, {args.photons:g} peak "
        f"photons at full light, {args.drift_px_per_step:g} px drift + "
        f"{args.mobile_px_per_step:g} px mobile motion per step"
    )
    for column in ("run", "PSNR all (dB)", "acquired", "interpolated", "photons", "left"):
        table.add_column(column)
    for name, run in runs.items():
        table.add_row(
            name,
            f"{run['psnr']:.2f}",
            f"{run['psnr_real']:.2f}",
            "" if np.isnan(run["psnr_made"]) else f"{run['psnr_made']:.2f}",
            f"{run['dose'] / reference['dose']:.0%}",
            f"{run['left']:.1%}",
        )
    Console().print(table)


if __name__ == "__main__":
    main()
