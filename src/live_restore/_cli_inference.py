"""``live-restore engines build|list|clear`` and ``live-restore bench``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail, print_wide

__all__ = ["bench_command", "engines_app"]

engines_app = typer.Typer(
    help="Build, list and clear the engine cache (ONNX graphs, TensorRT plans).",
    no_args_is_help=True,
)


def _shipped() -> list[str]:
    from .acquisition import shipped_model_names

    return shipped_model_names()


@engines_app.command("build")
def engines_build(
    names: Annotated[
        list[str] | None,
        typer.Argument(metavar="MODEL", help="Models to build (default: every shipped model)."),
    ] = None,
    backend: Annotated[
        str,
        typer.Option(help="onnxruntime (CPU) or tensorrt (needs TensorRT and a CUDA GPU)."),
    ] = "onnxruntime",
    precision: Annotated[str, typer.Option(help="auto, fp32 or fp16 (TensorRT).")] = "auto",
) -> None:
    """Build each model's engine for its session tile now, instead of on first use.

    The graph is checked against torch on a random tile, and the largest difference is printed.
    """
    import numpy as np
    import torch

    from .inference import EngineCache, create_backend, session_tile
    from .models import load_network

    if backend not in ("onnxruntime", "tensorrt"):
        raise fail(
            f"--backend must be onnxruntime or tensorrt (torch builds nothing), not {backend!r}"
        )
    cache = EngineCache()
    failed = []
    for name in names or _shipped():
        try:
            spec, network, _ = load_network(name)
            tile = session_tile(spec)
            runtime = create_backend(network, spec, backend, precision, cache, tile_shape=tile)
            batch = torch.from_numpy(np.random.default_rng(0).random((2, *tile), np.float32))
            with torch.no_grad():
                expected = network(batch).float()
            difference = float((runtime(batch).float().cpu() - expected).abs().max())
        except Exception as error:  # a model that fails is reported; the others still build
            console.print(f"[red]{name}: not built: {error}[/]")
            failed.append(name)
            continue
        console.print(
            f"{name}: {backend} {runtime.precision} engine for input {tile} ready; "
            f"largest difference from torch on a random tile {difference:.2e}"
        )
    console.print(f"engine cache: {cache.folder}")
    if failed:
        raise typer.Exit(code=1)


@engines_app.command("list")
def engines_list() -> None:
    """List the cached engines, what they were built for, and whether each is intact."""
    from .inference import EngineCache

    cache = EngineCache()
    entries = cache.entries()
    table = Table(title=f"engine cache: {cache.folder}")
    for column in ("model", "kind", "built for", "MB", "created", "state"):
        table.add_column(column)
    for entry in entries:
        fields = (entry.record or {}).get("fields", {})
        built_for = ", ".join(
            [f"input {'x'.join(str(n) for n in fields['input_chw'])}"]
            if "input_chw" in fields
            else []
        ) + "".join(
            f", {key} {fields[key]}" for key in ("precision", "gpu", "tensorrt") if key in fields
        )
        problem = entry.problem()
        table.add_row(
            entry.model,
            entry.kind,
            built_for,
            f"{entry.size_bytes / 1e6:.1f}",
            str((entry.record or {}).get("created", "?")),
            "[green]ok[/]" if problem is None else f"[red]{problem}[/]",
        )
    if entries:
        print_wide(table, 140)
    else:
        console.print(f"the engine cache ({cache.folder}) is empty")


@engines_app.command("clear")
def engines_clear(
    name: Annotated[
        str | None, typer.Argument(metavar="MODEL", help="Only this model's engines.")
    ] = None,
) -> None:
    """Delete cached engines (all, or one model's); they are rebuilt when next needed."""
    from .inference import EngineCache

    cache = EngineCache()
    removed = cache.clear(name)
    console.print(f"removed {removed} engine(s) from {cache.folder}")


def bench_command(
    models: Annotated[
        list[str] | None,
        typer.Option(
            "--model",
            "-m",
            help="Model (repeat). Default: the shipped models; on a CPU without the "
            "published-size dfcan-sr2x (seconds per frame there: live use swaps in its CPU "
            "variant).",
        ),
    ] = None,
    backends: Annotated[
        list[str] | None,
        typer.Option("--backend", "-b", help="Backend (repeat). Default: every one available."),
    ] = None,
    sizes: Annotated[
        list[int] | None, typer.Option("--size", help="Square frame side in px (repeat).")
    ] = None,
    precisions: Annotated[
        list[str] | None,
        typer.Option(
            "--precision", help="auto, fp32, fp16, bf16 (repeat; cells a backend cannot run skip)."
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per cell.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls first per cell.")] = 2,
    tile: Annotated[
        int | None,
        typer.Option(min=16, help="Tile side in px (default: twice each model's training patch)."),
    ] = None,
    out_csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows here.")] = None,
) -> None:
    """Time restoration per frame: model x backend x frame size x precision.

    Each cell times the whole session call (normalisation, tiling, copies, network, blending)
    after a warm-up; prints median and p99 latency, frames/s, the speed-up over torch-cpu, the
    counted GFLOP per frame and the share of the FLOP floor (that work at this device's measured
    matmul rate). Never asserts anything: record what it prints in benchmarks/RESULTS.md.
    """
    import torch

    from .inference import CPU_VARIANTS, available_backends, bench

    # on a CPU, leave out the published-size models that live use swaps for a CPU variant
    gpu, shipped = torch.cuda.is_available(), _shipped()
    chosen_models = models or [
        *[n for n in shipped if gpu or n not in CPU_VARIANTS],
        *(["dfcan-sr2x"] if gpu and "dfcan-sr2x" not in shipped else []),
    ]
    try:
        rows = bench(
            chosen_models,
            backends or available_backends(),
            sizes or [256, 512],
            precisions or ["auto"] + (["fp32"] if torch.cuda.is_available() else []),
            repeats=repeats,
            warmup=warmup,
            tile_px=tile,
            progress=lambda cell: console.print(f"[dim]timing {cell}[/]"),
        )
    except (ValueError, RuntimeError) as error:
        raise fail(str(error)) from None
    baseline = {(r.model, r.frame_px): r.median_ms for r in rows if r.backend == "torch-cpu"}
    table = Table(title=f"restoration per frame ({repeats} timed calls per cell)")
    for column in (
        "model",
        "backend",
        "precision",
        "frame",
        "tiles",
        "median ms",
        "p99 ms",
        "frames/s",
        "x torch-cpu",
        "GFLOP/frame",
        "floor ms",
        "floor share",
        "note",
    ):
        table.add_column(column)
    for r in rows:
        base = baseline.get((r.model, r.frame_px))
        table.add_row(
            r.model, r.backend, r.precision, f"{r.frame_px}²", str(r.tiles),
            f"{r.median_ms:.1f}", f"{r.p99_ms:.1f}", f"{r.frames_per_s:.1f}",
            f"{base / r.median_ms:.2f}" if base else "-", f"{r.gflop_per_frame:.1f}",
            f"{r.floor_ms:.2f}", f"{100 * r.floor_share:.1f} %", r.note,
        )  # fmt: skip
    print_wide(table, 170)
    console.print(
        f"torch {torch.__version__}; "
        + (torch.cuda.get_device_name() if torch.cuda.is_available() else "no CUDA device")
    )
    if out_csv is not None:
        with out_csv.open("w", newline="") as stream:
            writer = csv.writer(stream)
            writer.writerow(
                ["model", "backend", "precision", "frame_px", "tiles", "median_ms", "p99_ms",
                 "frames_per_s", "gflop_per_frame", "floor_ms", "floor_share", "note"]
            )  # fmt: skip
            for r in rows:
                writer.writerow(
                    [r.model, r.backend, r.precision, r.frame_px, r.tiles, f"{r.median_ms:.3f}",
                     f"{r.p99_ms:.3f}", f"{r.frames_per_s:.2f}", f"{r.gflop_per_frame:.3f}",
                     f"{r.floor_ms:.4f}", f"{r.floor_share:.4f}", r.note]
                )  # fmt: skip
        console.print(f"rows written to {out_csv}")
