"""Calibrate a model's trust map on simulated data and check it on held-out fields.

Writes ``engines/<model>/trust.yaml`` (the sigma scale and what it was measured to mean) and
prints, per structure and light level on held-out fields: the fraction of pixels with
|error| <= 2 sigma (target 0.90-0.98), mean |error| / mean sigma, and the Spearman correlation
between sigma and |error| over 8x8 blocks. Trust is TTA: 8 passes per frame.

    python benchmarks/calibrate_trust.py dfcan-sr2x-tiny [--fields 2] [--frame-size 128]
                                         [--structures microtubules clathrin er mitochondria]
"""

from __future__ import annotations

import argparse
import platform
import time

from live_restore import __version__


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("model")
    parser.add_argument("--fields", type=int, default=2)
    parser.add_argument("--frame-size", type=int, default=128)
    parser.add_argument(
        "--structures", nargs="+", default=["microtubules", "clathrin", "er", "mitochondria"]
    )
    parser.add_argument("--no-write", action="store_true", help="Print only.")
    args = parser.parse_args()

    from live_restore.inference import ModelSession, load_model
    from live_restore.training._trust_calibration import calibrate_trust

    session = load_model(args.model, "torch-cpu", cpu_variant=False)
    assert isinstance(session, ModelSession)
    started = time.perf_counter()
    calibration, rows = calibrate_trust(
        session, args.structures, fields=args.fields, frame_size=args.frame_size
    )
    took_s = time.perf_counter() - started
    if not args.no_write:
        print(f"wrote {calibration.write(session.folder)}")
    print(
        f"live-restore {__version__} | {platform.machine()} | python {platform.python_version()}"
        f" | {args.model} | {args.fields} fields of {args.frame_size}^2 per structure, "
        f"calibration + held-out in {took_s:.0f} s"
    )
    print(
        f"sigma scale {calibration.sigma_scale:.3f} | held-out coverage (|error| <= 2 sigma) "
        f"{calibration.coverage_2sigma:.3f} (target 0.90-0.98)"
    )
    header = f"{'structure':14} {'photons':>7} {'coverage':>9} {'|e|/sigma':>10} {'Spearman':>9}"
    print(header)
    print("-" * len(header))
    for r in rows:
        print(
            f"{r.structure:14} {r.photons:7.0f} {r.coverage_2sigma:9.3f} "
            f"{r.error_over_sigma:10.2f} {r.spearman_blocks:9.2f}"
        )


if __name__ == "__main__":
    main()
