"""Leave one family out: does interp-z trained on a wider world generalise to a family it never saw?

Issue 43's table. From the shipped interp-z (trained on ``layers`` alone, one microscope),
fine-tune on the wider world (``simulate/_world.py``: four sample families, NA 0.8-1.49 with
its immersion, 450-680 nm, sCMOS maps or EMCCD, autofluorescence) once with every family and
once without each family in turn, the same steps each (a CPU budget: a warm start, not a
retrain). Test every model on user stacks of every family (planes 0.5 µm apart, 60-300 photons,
each stack's own optics and camera): stack PSNR of the in-between planes against the truth,
beside the Gaussian-smoothed blend at the best sigma per stack and per pair.

    python benchmarks/loo_interp_z.py [--steps 500] [--examples 800] [--stacks 3] [--keep DIR]
"""

from __future__ import annotations

import argparse
import csv
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from bench_adapt import interpolated, smoothed_blends, stack_psnr_db
from live_restore.frames import PhotonConversion
from live_restore.simulate import FAMILIES, draw_world, world_stack
from live_restore.training import finetune_world, render_world_examples

STEP_UM = 0.5


def test_stacks(family: str, count: int, size: int, planes: int) -> list[tuple]:
    stacks = []
    for seed in range(count):
        draw = draw_world(np.random.default_rng([seed, 4301]), family, photon_range=(60.0, 300.0))
        acquired, truth, camera = world_stack(draw, size, planes, STEP_UM)
        stacks.append((acquired, truth[1::2], camera))
    return stacks


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--steps", type=int, default=500, help="Fine-tuning steps per model.")
    parser.add_argument("--examples", type=int, default=800, help="World triplets (all families).")
    parser.add_argument("--stacks", type=int, default=3, help="Test stacks per family.")
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--planes", type=int, default=11)
    parser.add_argument("--keep", type=Path, default=None, help="Keep the model folders here.")
    parser.add_argument("--csv", type=Path, default=None)
    parser.add_argument(
        "--also", action="append", default=[], metavar="LABEL=MODEL",
        help="Another model to test beside them (a name or folder).",
    )  # fmt: skip
    args = parser.parse_args()
    started = time.monotonic()
    examples = None  # rendered when a model must be trained (--keep holds the others)
    folder = args.keep or Path(tempfile.mkdtemp())
    models: dict[str, Path] = {"interp-z (shipped)": Path("interp-z")}
    for left_out in (None, *FAMILIES):
        label = "world, all families" if left_out is None else f"world without {left_out}"
        out = folder / ("world-all" if left_out is None else f"world-no-{left_out}")
        if not (out / "model.yaml").is_file():
            examples = examples or render_world_examples(args.examples, seed=0, progress=True)
            finetune_world(
                "interp-z", out, examples, exclude=(left_out,) if left_out else (),
                steps=args.steps, name=out.name,
            )  # fmt: skip
        models[label] = out
    for extra in args.also:
        label, _, model = extra.partition("=")
        models[label] = Path(model)
    rows = []
    for family in FAMILIES:
        stacks = test_stacks(family, args.stacks, args.size, args.planes)
        scores: dict[str, list[float]] = {}
        for acquired, middles, camera in stacks:
            photons = camera.to_photons(acquired)
            blends = 0.5 * (photons[:-1] + photons[1:])
            per_stack, per_pair = smoothed_blends(blends, middles)
            scores.setdefault("gauss_stack", []).append(stack_psnr_db(per_stack, middles))
            scores.setdefault("gauss_pair", []).append(stack_psnr_db(per_pair, middles))
            conversion = PhotonConversion(camera.mean_offset_adu, camera.mean_gain_adu_per_e)
            for label, model in models.items():
                frames = interpolated(model, acquired, conversion)
                scores.setdefault(label, []).append(stack_psnr_db(frames, middles))
        row = {"family": family, **{k: float(np.mean(v)) for k, v in scores.items()}}
        row["left out (its own LOO model)"] = row[f"world without {family}"]
        rows.append(row)
        print({k: round(v, 2) if isinstance(v, float) else v for k, v in row.items()})
    methods = ["gauss_stack", "gauss_pair", *models, "left out (its own LOO model)"]
    table = Table(
        title=f"interp-z, leave one family out: stack PSNR (dB) of in-between planes, "
        f"{args.stacks} stacks per family, {args.planes} planes {STEP_UM} µm apart, "
        f"{args.size} px, 60-300 photons; {args.steps} steps per model"
    )
    table.add_column("model \\ test family")
    for row in rows:
        table.add_column(str(row["family"]), justify="right")
    for method in methods:
        table.add_row(method, *(f"{row[method]:.2f}" for row in rows))
    Console(width=140).print(table)
    print(f"{time.monotonic() - started:.0f} s; models in {folder}")
    if args.csv:
        with args.csv.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["family", *methods])
            writer.writeheader()
            writer.writerows(
                {k: (round(v, 3) if isinstance(v, float) else v) for k, v in r.items()}
                for r in rows
            )


if __name__ == "__main__":
    main()
