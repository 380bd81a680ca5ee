"""Does `live-restore adapt` help a super-resolution model on another microscope? Against truth.

dfcan-sr2x-tiny learned from the simulated microscope at NA 1.49, 525 nm, an ideal sCMOS at
gain 1. Here the same simulator is set up as another microscope: a water objective (NA 1.2),
600 nm emission, another camera (offset 300, gain 2.2, read noise 1.8 e-), dimmer light and a
structure per run. A time-lapse of it is written as an OME-TIFF and adapted with
``live-restore adapt dfcan-sr2x-tiny SERIES.ome.tif --na 1.2 --emission-nm 600`` (the command
itself, ``consistency``: recorrupted deconvolution). Parent and adapted model are scored on the
held-out frames (the last fifth, never trained on) against the simulator's 2x truth (PSNR and
MS-SSIM after the affine fit every SR evaluation here uses).

    python benchmarks/bench_adapt_sr.py [--minutes 3] [--frames 12] [--size 192]
    python benchmarks/bench_adapt_sr.py --model mfsr-sr2x --frames 30  # held-out windows
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import tifffile
import yaml
from rich.console import Console
from rich.table import Table

from live_restore.frames import PhotonConversion
from live_restore.inference import MFSRSession, ModelSession, load_model
from live_restore.simulate import (
    CameraParams,
    ManualClock,
    OpticsParams,
    SimMicroscope,
    SimPatternParams,
)
from live_restore.training._evaluate import truth_scores

OPTICS = OpticsParams(na=1.2, immersion_index=1.333, emission_wavelength_nm=600.0)
CAMERA = CameraParams(offset_adu=300.0, gain_adu_per_e=2.2, read_noise_e=1.8)


def series(structure: str, frames: int, size: int, photons_per_ms: float, seed: int) -> tuple:
    clock = ManualClock()
    scope = SimMicroscope(
        structure, seed, (size, size), OPTICS, CAMERA, SimPatternParams(period_nm=300.0),
        peak_photons_per_ms=photons_per_ms,
        motion_um_per_min=3.0, clock=clock,
    )  # fmt: skip
    raw, truth = [], []
    for _ in range(frames):
        raw.append(scope.snap(np.random.default_rng([seed, len(raw)])))
        truth.append(scope.ground_truth().sr_2x)
        clock.advance(2.0)
    return np.stack(raw), truth


def scores(model: str | Path, raw: np.ndarray, truth: list, frames: range) -> tuple[float, float]:
    session = load_model(model, "torch-cpu", tile_px=raw.shape[-1])
    assert isinstance(session, ModelSession)
    session.camera = PhotonConversion(CAMERA.offset_adu, CAMERA.gain_adu_per_e)
    if isinstance(session, MFSRSession):  # the centred window of 5 around each scored frame
        half = session.window // 2
        rows = [truth_scores(session(raw[i - half : i + half + 1]), truth[i]) for i in frames]
    else:
        rows = [truth_scores(session(raw[i]), truth[i]) for i in frames]
    return float(np.mean([r["psnr"] for r in rows])), float(np.mean([r["ms_ssim"] for r in rows]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="dfcan-sr2x-tiny")
    parser.add_argument("--minutes", type=float, default=3.0)
    parser.add_argument("--frames", type=int, default=12)
    parser.add_argument("--size", type=int, default=192)
    parser.add_argument("--structures", default="er,mitochondria,f-actin")
    parser.add_argument("--photons-per-ms", type=float, default=3.0, help="Peak, at 10 ms.")
    args = parser.parse_args()
    table = Table(
        title=f"{args.model} adapted on {args.frames} frames of another microscope "
        f"(NA 1.2 water, 600 nm, gain 2.2), {args.minutes} min: held-out frames vs 2x truth"
    )
    for column in ("structure", "parent PSNR", "adapted PSNR", "gain dB", "parent MS-SSIM",
                   "adapted MS-SSIM", "kept", "steps"):  # fmt: skip
        table.add_column(column, justify="right")
    with tempfile.TemporaryDirectory() as folder:
        for k, structure in enumerate(args.structures.split(",")):
            raw, truth = series(structure, args.frames, args.size, args.photons_per_ms, k)
            path = Path(folder) / f"{structure}.ome.tif"
            tifffile.imwrite(path, raw, metadata={"axes": "TYX"}, ome=True)
            out = Path(folder) / f"adapted-{structure}"
            command = [sys.executable, "-m", "live_restore", "adapt", args.model, str(path),
                       "--out", str(out), "--minutes", str(args.minutes), "--na", "1.2",
                       "--emission-nm", "600"]  # fmt: skip
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            record = yaml.safe_load((out / "model.yaml").read_text())["training"]["adapted"]
            if args.model.startswith("mfsr"):  # held out: the last fifth (at least a window)
                cut = args.frames - max(5, round(0.2 * args.frames))
                held = range(cut + 2, args.frames - 2)  # whole windows inside it
            else:
                held = range(args.frames - max(1, round(0.2 * args.frames)), args.frames)
            parent = scores(args.model, raw, truth, held)
            adapted = scores(out, raw, truth, held)
            table.add_row(
                structure, f"{parent[0]:.2f}", f"{adapted[0]:.2f}",
                f"{adapted[0] - parent[0]:+.2f}", f"{parent[1]:.4f}", f"{adapted[1]:.4f}",
                record["kept"], str(record["steps"]),
            )  # fmt: skip
            print(structure, parent, adapted, record["kept"], record["held_out_error_before"],
                  record["held_out_error_after"], flush=True)  # fmt: skip
    Console(width=160).print(table)


if __name__ == "__main__":
    main()
