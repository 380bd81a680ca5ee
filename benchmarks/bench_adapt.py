"""Does `live-restore adapt` make interp-z beat smoothing on a stack it never saw? Against truth.

Issue 43's check. Each stack is a user's z-stack from the wider world (``simulate/_world.py``),
drawn from a family left out of interp-z's training (default ``filaments``: 5-7 filament layers
under out-of-focus haze; interp-z learned from ``layers`` alone), with its own optics (NA
0.8-1.49, 450-680 nm), camera (sCMOS maps or EMCCD) and autofluorescence, 60-300 photons at the
peak, planes 0.5 µm apart, written as an NGFF OME-Zarr (axes z, y, x in µm). For each:

1. ``live-restore adapt interp-z STACK.ome.zarr --out DIR --minutes M`` (the command itself);
2. the frames half-way between each pair of acquired planes, from: the linear blend; the
   Gaussian-smoothed blend at the best sigma for the whole stack, and at the best sigma for
   each pair (both chosen with the truth: the strongest smoothing a user could not tune
   better); the shipped interp-z; the adapted model;
3. stack PSNR of those frames against the noise-free truth (photons, the camera's mean offset
   and gain; the peak is the truth's range).

    python benchmarks/bench_adapt.py [--stacks 3] [--minutes 3] [--family filaments]
"""

from __future__ import annotations

import argparse
import csv
import itertools
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import yaml
from rich.console import Console
from rich.table import Table
from scipy import ndimage

from live_restore.frames import PhotonConversion
from live_restore.inference import InterpSession, load_model
from live_restore.simulate import FAMILIES, draw_world, world_stack, write_stack_ome_zarr

SIGMAS_PX = (0.5, 0.75, 1.0, 1.25, 1.5, 2.0, 2.5, 3.0)
STEP_UM = 0.5
COLUMNS = ("linear", "gauss_stack", "gauss_pair", "interp-z", "adapted")


def stack_psnr_db(frames: np.ndarray, truth: np.ndarray) -> float:
    """PSNR of a stack of frames, the peak being the truth stack's range."""
    error = np.mean((np.asarray(frames, np.float64) - truth) ** 2)
    return float(10 * np.log10(float(np.ptp(truth)) ** 2 / error))


def smoothed_blends(blends: np.ndarray, truth: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The blend smoothed at the best sigma for the stack, and at the best for each pair."""
    candidates = np.stack([[ndimage.gaussian_filter(b, s) for b in blends] for s in SIGMAS_PX])
    errors = ((candidates - truth[None]) ** 2).mean(axis=(-2, -1))  # (sigma, pair)
    per_stack = candidates[int(np.argmin(errors.mean(axis=1)))]
    per_pair = candidates[np.argmin(errors, axis=0), np.arange(len(blends))]
    return per_stack, per_pair


def interpolated(model: str | Path, planes: np.ndarray, camera: PhotonConversion) -> np.ndarray:
    """The model's frame half-way between each pair of planes, in photons."""
    session = load_model(model, "torch-cpu")
    assert isinstance(session, InterpSession)
    session.camera = camera
    return np.stack([session.between(a, b, [0.5])[0] for a, b in itertools.pairwise(planes)])


def run_stack(args: argparse.Namespace, seed: int, work: Path) -> dict[str, object]:
    rng = np.random.default_rng([seed, 43])
    draw = draw_world(rng, args.family, photon_range=(60.0, 300.0))
    planes, truth, camera = world_stack(draw, args.size, args.planes, STEP_UM)
    stack = write_stack_ome_zarr(
        work / f"stack{seed}.ome.zarr", planes, STEP_UM, draw.optics.pixel_um
    )
    out = work / f"adapted{seed}"
    started = time.monotonic()
    command = [sys.executable, "-m", "live_restore", "adapt", "interp-z", str(stack)]
    command += ["--out", str(out), "--minutes", str(args.minutes)]
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    seconds = time.monotonic() - started
    record = yaml.safe_load((out / "model.yaml").read_text())["training"]["adapted"]
    conversion = PhotonConversion(camera.mean_offset_adu, camera.mean_gain_adu_per_e)
    middles = truth[1::2]
    photons = camera.to_photons(planes)
    blends = 0.5 * (photons[:-1] + photons[1:])
    per_stack, per_pair = smoothed_blends(blends, middles)
    row: dict[str, object] = {
        "seed": seed,
        "family": draw.family,
        "camera": camera.kind,
        "na": round(draw.optics.na, 2),
        "emission_nm": round(draw.optics.emission_wavelength_nm),
        "peak_photons": round(draw.peak_photons),
        "autofluorescence": round(draw.autofluorescence, 3),
        "linear": stack_psnr_db(blends, middles),
        "gauss_stack": stack_psnr_db(per_stack, middles),
        "gauss_pair": stack_psnr_db(per_pair, middles),
        "interp-z": stack_psnr_db(interpolated("interp-z", planes, conversion), middles),
        "adapted": stack_psnr_db(interpolated(out, planes, conversion), middles),
        **{
            label: stack_psnr_db(interpolated(Path(model), planes, conversion), middles)
            for label, _, model in (extra.partition("=") for extra in args.also)
        },
        "kept": record["kept"],
        "steps": record["steps"],
        "adapt_s": round(seconds, 1),
        "held_out_before": record["held_out_error_before"],
        "held_out_after": record["held_out_error_after"],
    }
    row["vs_gauss_stack_db"] = float(row["adapted"]) - float(row["gauss_stack"])  # type: ignore[arg-type]
    row["vs_parent_db"] = float(row["adapted"]) - float(row["interp-z"])  # type: ignore[arg-type]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--stacks", type=int, default=3, help="User stacks (one seed each).")
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--minutes", type=float, default=3.0, help="adapt's --minutes.")
    parser.add_argument("--family", choices=FAMILIES, default="filaments")
    parser.add_argument("--size", type=int, default=256, help="Frame side, px.")
    parser.add_argument("--planes", type=int, default=15, help="Acquired planes per stack.")
    parser.add_argument("--csv", type=Path, default=None, help="Append the rows here.")
    parser.add_argument(
        "--also", action="append", default=[], metavar="LABEL=MODEL",
        help="Another model to score beside them (a name or folder), e.g. an earlier interp-z.",
    )  # fmt: skip
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for seed in range(args.first_seed, args.first_seed + args.stacks):
            rows.append(run_stack(args, seed, Path(folder)))
            print({k: round(v, 6) if isinstance(v, float) else v for k, v in rows[-1].items()})
    table = Table(
        title=f"interp-z on {args.family} stacks, {args.planes} planes {STEP_UM} µm apart, "
        f"{args.size} px: stack PSNR (dB) of the in-between planes vs truth"
    )
    extra = [e.partition("=")[0] for e in args.also]
    gains = ("vs_gauss_stack_db", "vs_parent_db")
    for name in ("seed", "camera", "NA", "nm", "photons", *COLUMNS, *extra, "kept", *gains):
        table.add_column(name, justify="right")
    for row in rows:
        table.add_row(
            str(row["seed"]), str(row["camera"]), str(row["na"]), str(row["emission_nm"]),
            str(row["peak_photons"]), *(f"{float(row[c]):.2f}" for c in (*COLUMNS, *extra)),  # type: ignore[arg-type]
            str(row["kept"]), *(f"{float(row[g]):+.2f}" for g in gains),  # type: ignore[arg-type]
        )  # fmt: skip
    means = {c: float(np.mean([float(r[c]) for r in rows])) for c in (*COLUMNS, *extra, *gains)}  # type: ignore[arg-type]
    table.add_row("mean", "", "", "", "", *(f"{means[c]:.2f}" for c in (*COLUMNS, *extra)), "",
                  *(f"{means[g]:+.2f}" for g in gains))  # fmt: skip
    Console(width=160).print(table)
    if args.csv:
        new = not args.csv.exists()
        with args.csv.open("a", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
            if new:
                writer.writeheader()
            writer.writerows(rows)


if __name__ == "__main__":
    main()
