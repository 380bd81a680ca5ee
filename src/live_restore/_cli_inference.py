"""``live-restore engines build|list|clear`` and ``live-restore bench``."""

from __future__ import annotations

import csv
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail, print_wide

if TYPE_CHECKING:
    from .inference import BenchRow

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
        typer.Option(
            help="onnxruntime or openvino (CPU), or tensorrt (needs TensorRT and a CUDA GPU)."
        ),
    ] = "onnxruntime",
    precision: Annotated[
        str, typer.Option(help="auto, fp32, fp16 (TensorRT), bf16 or int8 (CPU runtimes).")
    ] = "auto",
    frame_size: Annotated[
        int | None,
        typer.Option(
            min=16,
            help="Build for frames of this side (px) instead of the model's tile: a whole-frame "
            "model (dfcan-sr2x-tiny) has one graph per frame size up to its tile.",
        ),
    ] = None,
) -> None:
    """Build each model's engine for its session tile now, instead of on first use.

    The graph is checked against torch on a random tile, and the largest difference is printed.
    """
    import numpy as np
    import torch

    from .inference import EngineCache, create_backend, session_tile, tile_run_shape
    from .models import load_network

    if backend not in ("onnxruntime", "openvino", "tensorrt"):
        raise fail(
            "--backend must be onnxruntime, openvino or tensorrt (torch builds nothing), "
            f"not {backend!r}"
        )
    cache = EngineCache()
    failed = []
    for name in names or _shipped():
        try:
            spec, network, _ = load_network(name)
            tile = session_tile(spec)
            if frame_size is not None:
                side = tile_run_shape((frame_size, frame_size), tile[1], spec.multiple_of)
                tile = (tile[0], *side)
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
            "--precision",
            help="auto, fp32, fp16, bf16, int8 (repeat; cells a backend cannot run skip).",
        ),
    ] = None,
    repeats: Annotated[int, typer.Option(min=1, help="Timed calls per cell.")] = 10,
    warmup: Annotated[int, typer.Option(min=0, help="Untimed calls first per cell.")] = 2,
    tile: Annotated[
        int | None,
        typer.Option(min=16, help="Tile side in px (default: twice each model's training patch)."),
    ] = None,
    out_csv: Annotated[Path | None, typer.Option("--csv", help="Also write the rows here.")] = None,
    plot: Annotated[
        Path | None, typer.Option(help="Also plot ms per frame against frame size (PNG).")
    ] = None,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Keep each model's fastest CPU backend and precision (among those its "
            "model.yaml allows) in the engine cache: what 'auto' runs on this machine from now.",
        ),
    ] = False,
) -> None:
    """Time restoration per frame: model x backend x frame size x precision.

    Each cell times the whole session call (normalisation, tiling, copies, network, blending)
    after a warm-up; prints median and p99 latency, frames/s, the speed-up over torch-cpu, the
    counted GFLOP per frame and the share of the FLOP floor (that work at this device's measured
    matmul rate; fp32's on a CPU). Never asserts anything: record what it prints in
    benchmarks/RESULTS.md.

    Example, the CPU table of benchmarks/RESULTS.md, and this machine's choice for auto:
    live-restore bench -m dfcan-sr2x-tiny --size 256 --size 512 --size 1024 --size 2048
    --precision fp32 --precision bf16 --precision int8 --plot bench.png --record
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
    if plot is not None:
        from .inference import plot_bench

        console.print(f"plot written to {plot_bench(rows, plot)}")
    if record:
        _record_choices(rows)
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


def _record_choices(rows: list[BenchRow]) -> None:
    """Each timed model's fastest allowed CPU cell, kept in the engine cache for ``auto``."""
    import torch

    from .inference import EngineCache, record_cpu_choice
    from .models import ModelLoadError, model_dir, read_spec

    cache = EngineCache()
    for model in dict.fromkeys(r.model for r in rows):
        try:
            spec = read_spec(model_dir(model))
        except ModelLoadError:
            continue  # the published-size stand-in: timed, not shipped, nothing to choose
        timings = [
            (r.backend, r.precision, r.frame_px, r.median_ms) for r in rows if r.model == model
        ]
        try:
            (backend, precision), path = record_cpu_choice(
                spec, cache, torch.get_num_threads(), timings
            )
        except ValueError:
            console.print(
                f"{model}: no CPU cell at its allowed precisions "
                f"({', '.join(spec.cpu_precisions)}) was timed; nothing recorded"
            )
            continue
        console.print(f"{model}: auto runs {backend} {precision} on this machine ({path})")


def precision_check_command(
    name: Annotated[str, typer.Argument(help="Shipped model name or model folder.")],
    backend: Annotated[
        str, typer.Option("--backend", "-b", help="CPU runtime: openvino or onnxruntime.")
    ] = "openvino",
    precisions: Annotated[
        list[str] | None,
        typer.Option("--precision", "-p", help="bf16 and/or int8 (repeat). Default: both."),
    ] = None,
    fields: Annotated[int, typer.Option(min=1, help="Held-out fields per structure.")] = 3,
    record: Annotated[
        bool,
        typer.Option(
            "--record",
            help="Write the passing precisions into the model's model.yaml (cpu_precisions, "
            "which 'auto' reads) and every cell into evaluation.cpu_precision.",
        ),
    ] = False,
) -> None:
    """Check that a reduced CPU precision costs nothing you can see, before 'auto' may use it.

    Scores the model at each precision on the held-out simulated frames of 'live-restore eval'
    (every structure x light, against the noise-free truth), beside itself in float32 torch.
    A precision passes only if every cell loses at most 0.1 dB PSNR and 0.002 MS-SSIM. For
    single-frame super-resolution and refocus models. Prints the worst cell of each.
    """
    from .models import ModelLoadError
    from .training import check_precision, record_precisions

    checks = []
    for precision in precisions or ["bf16", "int8"]:
        try:
            check = check_precision(name, backend, precision, fields=fields)
        except (ModelLoadError, ValueError, RuntimeError) as error:
            raise fail(str(error)) from None
        checks.append(check)
        table = Table(title=f"{Path(name).name} on {check.backend} {check.precision}: loss "
                      "against float32 torch (positive: worse)")  # fmt: skip
        for column in ("structure", "photons", "PSNR ref dB", "PSNR dB", "PSNR loss dB",
                       "MS-SSIM loss"):  # fmt: skip
            table.add_column(column)
        for row in check.rows:
            table.add_row(
                str(row.condition["structure"]), f"{float(row.condition['photons']):g}",
                f"{row.scores['psnr_reference']:.2f}", f"{row.scores['psnr_candidate']:.2f}",
                f"{row.scores['psnr_loss_db']:+.3f}", f"{row.scores['ms_ssim_loss']:+.4f}",
            )  # fmt: skip
        print_wide(table, 110)
        verdict = "passes" if check.passed else "fails"
        console.print(
            f"{check.precision} {verdict}: worst cell loses {check.worst_psnr_loss_db:.3f} dB "
            f"PSNR and {check.worst_ms_ssim_loss:.4f} MS-SSIM (allowed: 0.1 dB, 0.002)"
        )
    if record:
        path = record_precisions(name, checks)
        console.print(f"recorded in {path}")
