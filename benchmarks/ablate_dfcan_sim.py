"""What each part of dfcan-sim's loss buys: train one variant per loss, score them held out.

Variants (``training/_physics_prior.py``): DFCAN's MSE + SSIM; + the Charbonnier frequency loss;
+ the OIDN-style physics prior (learnable kernel with degradation consistency, energy
conservation and rotational symmetry). Same data, seed, steps and schedule for each. Then every
variant, the classical reconstruction (parameters estimated from each raw set) and widefield
are scored on held-out simulated SIM sets (``live-restore eval`` for dfcan-sim, see
``training/_sim_evaluate.py``). Prints a markdown table; asserts nothing.

    python benchmarks/ablate_dfcan_sim.py --steps 500 --out benchmarks/dfcan-sim-ablation
    python benchmarks/ablate_dfcan_sim.py --skip-training ...   # score folders already trained
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from live_restore.inference import load_model
from live_restore.training import train_model
from live_restore.training._evaluate import write_table
from live_restore.training._physics_prior import SIM_LOSS_TERMS
from live_restore.training._sim_evaluate import evaluate_sim


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=500)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/dfcan-sim-ablation"))
    parser.add_argument("--fields", type=int, default=1, help="held-out fields per structure")
    parser.add_argument("--skip-training", action="store_true")
    parser.add_argument("--variants", default=",".join(SIM_LOSS_TERMS))
    args = parser.parse_args()
    variants = args.variants.split(",")
    if not args.skip_training:
        for variant in variants:
            print(f"training {variant} ({args.steps} steps)", flush=True)
            spec, result = train_model(
                "dfcan-sim",
                args.out / variant,
                steps=args.steps,
                loss_terms=SIM_LOSS_TERMS[variant],
                progress=False,
            )
            kernel = spec.training.get("learned_kernel_fwhm_nm")
            print(
                f"  {result.seconds:.0f} s, validation {result.validation}"
                + (f", learned kernel FWHM {kernel} nm" if kernel else ""),
                flush=True,
            )
    sessions = {v: load_model(args.out / v, backend="torch-cpu") for v in variants}
    rows = evaluate_sim(sessions, fields=args.fields)
    write_table(rows, args.out / "ablation.csv")
    levels = sorted({float(r.condition["photons"]) for r in rows})
    print("\n| method | " + " | ".join(f"{p:g} photons: PSNR / MS-SSIM" for p in levels) + " |")
    print("| --- |" + " --- |" * len(levels))

    def cells(method: str) -> str:
        out = []
        for level in levels:
            mine = [r for r in rows if float(r.condition["photons"]) == level]
            psnr = np.mean([r.scores[f"psnr_{method}"] for r in mine])
            ssim = np.mean([r.scores[f"ms_ssim_{method}"] for r in mine])
            out.append(f"{psnr:.2f} dB / {ssim:.4f}")
        return " | ".join(out)

    print(f"| widefield (mean of the 9 frames, bicubic 2x) | {cells('widefield')} |")
    wiener = {float(r.condition["photons"]): r.scores["classical_wiener"] for r in rows}
    print(f"| classical (Wiener w per level: {wiener}) | {cells('classical')} |")
    for variant in variants:
        print(f"| dfcan-sim, {variant} | {cells(f'model_{variant}')} |")


if __name__ == "__main__":
    main()
