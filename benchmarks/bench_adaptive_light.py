"""Does light that follows trust buy high light's quality for fewer photons? On the simulator.

Three runs of the same time-lapse on the simulated microscope (bleaching, moving sample), each
restored live by ``dfcan-sr2x-tiny`` with its trust stage:

- fixed low light (the ladder's bottom);
- fixed high light (its top);
- adaptive: starting low, one step up the ladder whenever more than ``--raise-above`` of a
  restored frame is untrusted, one step down below ``--lower-below``.

Per run: the restored frames' PSNR against the simulator's 2x truth of each frame (after the
affine fit every SR evaluation here uses), the light dose delivered (sum over frames of
exposure x excitation, in ms at 100 %; photons are proportional), the fraction of
fluorophores bleached at the end, and the light changes made.

    python benchmarks/bench_adaptive_light.py [--frames 16] [--frame-size 128] [--interval-s 1]
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import useq
import zarr

from live_restore.acquisition import RestoreHook
from live_restore.acquisition._config import LightConfig
from live_restore.acquisition._trust_stage import TrustStage
from live_restore.devices import demo_core, microscope_of, release_core
from live_restore.inference import load_model
from live_restore.training._evaluate import truth_scores


def _run(args: argparse.Namespace, level: str, light: LightConfig | None, out: Path) -> dict:
    core = demo_core()
    core.setProperty("Camera", "FrameSize", args.frame_size)
    core.setProperty("SimScope", "Structure", args.structure)
    core.setProperty("SimScope", "BleachHalfDoseS", args.bleach_half_dose_s)
    core.setConfig("LightLevel", level)
    scope = microscope_of(core)
    records = []
    core.mda.events.frameReady.connect(lambda *_: records.append(scope.last_record))
    session = load_model("dfcan-sr2x-tiny", tile_px=args.frame_size)
    trust = TrustStage(load_model("dfcan-sr2x-tiny", tile_px=args.frame_size))
    sequence = useq.MDASequence(time_plan={"interval": args.interval_s, "loops": args.frames})
    try:
        with RestoreHook(core, [session, trust], output=out, light=light, progress=False) as hook:
            hook.run(sequence)
        restored = np.asarray(zarr.open_group(str(out / "dfcan-sr2x-tiny.ome.zarr"))["0"][:])
        psnrs = [
            truth_scores(restored[i], scope.ground_truth(record).sr_2x)["psnr"]
            for i, record in enumerate(records)
        ]
        dose = sum(r.photon_scale for r in records)
        bleached = 1.0 - float(np.mean(records[-1].bleach_factor))
        summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
        with (out / "frames.csv").open(encoding="utf-8") as f:
            shares = [
                float(line.split("untrusted ")[1].split("%")[0])
                for line in f
                if "untrusted " in line
            ]
        return {
            "psnr_db": float(np.mean(psnrs)),
            "psnr_last_quarter_db": float(np.mean(psnrs[-max(1, len(psnrs) // 4) :])),
            "dose_ms_at_100": dose,
            "bleached": bleached,
            "untrusted_pct_mean": float(np.mean(shares)) if shares else float("nan"),
            "changes": summary.get("light", {}).get("changes", []),
        }
    finally:
        release_core(core)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=16)
    parser.add_argument("--frame-size", type=int, default=128)
    parser.add_argument("--interval-s", type=float, default=1.0)
    parser.add_argument("--low", default="Low")
    parser.add_argument("--high", default="High")
    parser.add_argument("--raise-above", type=float, default=0.10)
    parser.add_argument("--lower-below", type=float, default=0.02)
    parser.add_argument("--structure", default="microtubules")
    parser.add_argument(
        "--bleach-half-dose-s",
        type=float,
        default=1.0,
        help="Exposure at 100 %% that bleaches half the fluorophores (the demo's is 60 s).",
    )
    args = parser.parse_args()
    ladder = ["VeryLow", "Low", "Medium", "High"]
    adaptive = LightConfig(
        ladder=ladder,
        lowest=args.low,
        highest=args.high,
        raise_above=args.raise_above,
        lower_below=args.lower_below,
    )
    runs = {}
    with tempfile.TemporaryDirectory() as scratch:
        for name, level, light in (
            (f"fixed {args.low}", args.low, None),
            (f"fixed {args.high}", args.high, None),
            ("adaptive", args.low, adaptive),
        ):
            runs[name] = _run(args, level, light, Path(scratch) / name.replace(" ", "-"))
            print(f"{name}: done", flush=True)
    high = runs[f"fixed {args.high}"]
    print(
        f"\n{args.frames} frames of {args.frame_size} px, {args.structure}, interval "
        f"{args.interval_s} s; adaptive {args.low}..{args.high}, raise above "
        f"{args.raise_above:.0%} untrusted, lower below {args.lower_below:.0%}; bleaching "
        f"half at {args.bleach_half_dose_s} s of full excitation\n"
    )
    print(
        "| run | PSNR dB (all / last quarter) | dose vs high | bleached | untrusted % | changes |"
    )
    print("| --- | --- | --- | --- | --- | --- |")
    for name, r in runs.items():
        steps = ", ".join(f"t={c['time_index']} {c['to_level']}" for c in r["changes"]) or "-"
        print(
            f"| {name} | {r['psnr_db']:.2f} / {r['psnr_last_quarter_db']:.2f} | "
            f"{r['dose_ms_at_100'] / high['dose_ms_at_100']:.2f} | {r['bleached']:.3f} | "
            f"{r['untrusted_pct_mean']:.1f} | {steps} |"
        )


if __name__ == "__main__":
    main()
