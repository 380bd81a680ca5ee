"""The ``live-restore`` command line (typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from ._version import __version__

app = typer.Typer(
    name="live-restore",
    help="Real-time restoration of Micro-Manager acquisitions, with a simulated microscope.",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


def _progress() -> Progress:
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def _fail(message: str) -> typer.Exit:
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)


@app.callback(invoke_without_command=True)
def _main(
    version: Annotated[bool, typer.Option("--version", help="Print the version and exit.")] = False,
) -> None:
    if version:
        console.print(f"live-restore {__version__}")
        raise typer.Exit()


def _model_names() -> list[str]:
    from .acquisition._registry import RESTORERS

    return list(RESTORERS)


# options shared by `demo` and `acquire`
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Restoration model (repeat for several): " + ", ".join(sorted(_model_names())) + ".",
    ),
]
OutFolderOption = Annotated[
    Path, typer.Option(help="Output folder: raw.ome.zarr, <model>.ome.zarr, frames.csv.")
]
ProcessOption = Annotated[
    str, typer.Option(help="all: restore every frame; latest: newest frame wins (display).")
]
MemoryOption = Annotated[
    float, typer.Option(min=1.0, help="Most memory the hook holds frames in (MB).")
]
OverwriteOption = Annotated[bool, typer.Option(help="Replace an existing output.")]


def _check_policy(process: str) -> None:
    if process not in ("all", "latest"):
        raise _fail(f"--process must be 'all' or 'latest', got {process!r}")


def _prepare_out(out: Path, overwrite: bool) -> None:
    if out.exists():
        if not overwrite:
            raise _fail(f"{out} already exists; choose another path or pass --overwrite")
        import shutil

        shutil.rmtree(out) if out.is_dir() else out.unlink()


@app.command()
def demo(
    out: OutFolderOption = Path("demo-output"),
    frames: Annotated[int, typer.Option(min=1, help="Number of time points.")] = 50,
    headless: Annotated[
        bool, typer.Option(help="Run without the napari window (the viewer is not built yet).")
    ] = False,
    structure: Annotated[
        str, typer.Option(help="Sample: microtubules, clathrin, er, f-actin, mitochondria, nuclei.")
    ] = "microtubules",
    light: Annotated[
        str, typer.Option(help="Light level preset: VeryLow, Low, Medium, High.")
    ] = "Low",
    exposure_ms: Annotated[float, typer.Option(min=0.01, help="Camera exposure (ms).")] = 10.0,
    interval_s: Annotated[
        float, typer.Option(min=0.0, help="Time between frames (s); 0 = as fast as possible.")
    ] = 0.0,
    frame_size: Annotated[
        int, typer.Option(help="Square frame side in pixels (even, 32-4096).")
    ] = 512,
    seed: Annotated[int, typer.Option(help="Sample and noise seed.")] = 0,
    drift: Annotated[float, typer.Option(help="Focus drift of the sample (µm/min).")] = 0.0,
    model: ModelsOption = None,
    process: ProcessOption = "all",
    memory_mb: MemoryOption = 512.0,
    overwrite: OverwriteOption = False,
) -> None:
    """Simulated low-light time-lapse, restored while it acquires, saved as OME-Zarr.

    The sample is rendered from physics (NA 1.49 oil, 525 nm, 65 nm pixels) with Poisson shot
    noise and camera read noise; the light level sets the photon budget. Each frame is restored
    off the acquisition thread (default: Richardson-Lucy deconvolution; the deep models come
    with a later release) and the last frame is scored against the simulator's ground truth.
    """
    from ._demo import run_demo

    if not headless:
        raise _fail(
            "the live napari view is not part of this release yet; "
            "run `live-restore demo --headless`"
        )
    _check_policy(process)
    models = model or ["richardson-lucy"]
    _prepare_out(out, overwrite)
    with _progress() as progress:
        acquiring = progress.add_task("acquiring", total=frames)
        restoring = progress.add_task(f"restoring ({models[0]})", total=frames)
        try:
            result = run_demo(
                out,
                frames=frames,
                structure=structure,
                light_level=light,
                exposure_ms=exposure_ms,
                interval_s=interval_s,
                frame_size=frame_size,
                seed=seed,
                focus_drift_um_per_min=drift,
                models=models,
                process=process,  # type: ignore[arg-type]
                memory_mb=memory_mb,
                on_frame=lambda n: progress.update(acquiring, completed=n),
                on_restored=lambda n: progress.update(restoring, completed=n),
                progress=False,
            )
        except (ValueError, FileExistsError, RuntimeError) as e:
            raise _fail(str(e)) from None
    table = Table(title="live-restore demo", show_header=False)
    table.add_row("frames", f"{result.frames} x {result.frame_shape[0]}x{result.frame_shape[1]}")
    table.add_row(
        "acquired in", f"{result.seconds:.2f} s ({result.frames / result.seconds:.1f} frames/s)"
    )
    table.add_row("sample", f"{structure}, light {light}, exposure {exposure_ms} ms")
    table.add_row(
        "peak signal", f"{result.peak_photons:.1f} photons/pixel (brightest in-focus pixel)"
    )
    table.add_row("mean counts", f"{result.mean_counts:.1f} (offset 100)")
    table.add_row("defocus at end", f"{result.final_defocus_um:+.3f} µm")
    table.add_row(
        "restored",
        f"{result.frames_restored} of {result.frames} with {', '.join(result.models)} "
        f"({result.frames_from_raw_store} read back from the raw store)",
    )
    table.add_row(
        "latency",
        f"p50 {result.latency_p50_ms:.0f} ms, p99 {result.latency_p99_ms:.0f} ms "
        f"(receipt -> restored); {result.finish_seconds:.1f} s to finish after acquisition",
    )
    table.add_row(
        "vs ground truth",
        f"NRMSE raw {result.nrmse_raw:.4f} -> {result.models[0]} {result.nrmse_restored:.4f} "
        "(last frame)",
    )
    table.add_row("saved", str(result.out))
    console.print(table)


@app.command()
def acquire(
    config: Annotated[
        Path | None,
        typer.Option(help="Micro-Manager config (default: the simulated microscope)."),
    ] = None,
    sequence: Annotated[
        Path, typer.Option(help="useq-schema MDA sequence (.yaml, .yml or .json).")
    ] = Path("sequence.yaml"),
    model: ModelsOption = None,
    out: OutFolderOption = Path("acquisition"),
    process: ProcessOption = "all",
    memory_mb: MemoryOption = 512.0,
    overwrite: OverwriteOption = False,
) -> None:
    """Run any MDA on any Micro-Manager config, restoring every frame while it acquires.

    Raw frames are saved by pymmcore-plus as OUT/raw.ome.zarr; each model's output goes to
    OUT/<model>.ome.zarr (pixel size divided by the model's scale), with OUT/frames.csv (one
    row per frame and model: latency, status, errors) and OUT/summary.json (provenance).
    """
    import useq

    from .acquisition import RestoreHook
    from .acquisition._registry import make_restorer
    from .devices import demo_core, release_core

    _check_policy(process)
    models = model or ["richardson-lucy"]
    if not sequence.is_file():
        raise _fail(f"sequence file not found: {sequence}")
    try:
        mda = useq.MDASequence.from_file(sequence)
    except Exception as e:
        raise _fail(f"{sequence} is not a valid useq-schema MDA sequence: {e}") from None
    _prepare_out(out, overwrite)
    try:
        core = demo_core(config)
    except (FileNotFoundError, RuntimeError) as e:
        raise _fail(str(e)) from None
    try:
        try:
            stages = [make_restorer(name, core) for name in models]
        except ValueError as e:
            raise _fail(str(e)) from None
        total = len(list(mda.iter_events()))
        with _progress() as progress:
            acquiring = progress.add_task("acquiring", total=total)
            restoring = progress.add_task(f"restoring ({models[0]})", total=total)
            hook = RestoreHook(
                core,
                stages,
                output=out,
                process=process,  # type: ignore[arg-type]
                memory_mb=memory_mb,
                progress=False,
            )
            done = {"acquired": 0, "restored": 0}

            def _acquired(*_: Any) -> None:
                done["acquired"] += 1
                progress.update(acquiring, completed=done["acquired"])

            def _restored(frame: Any) -> None:
                if frame.stage == stages[0].name:
                    done["restored"] += 1
                    progress.update(restoring, completed=done["restored"])

            core.mda.events.frameReady.connect(_acquired)
            hook.events.restored.connect(_restored)
            hook.events.error.connect(
                lambda e: console.print(f"[yellow]{e.stage}[/] frame {e.frame}: {e.message}")
            )
            with hook:
                hook.run(mda)
            core.mda.events.frameReady.disconnect(_acquired)
    finally:
        release_core(core)
    report = hook.report
    table = Table(title="live-restore acquire", show_header=False)
    table.add_row("frames acquired", str(report.frames_received))
    table.add_row("restored", f"{report.frames_restored} ({', '.join(models)})")
    table.add_row("failed / skipped", f"{report.frames_failed} / {report.frames_skipped}")
    table.add_row("read back from raw store", str(report.frames_from_raw_store))
    table.add_row("saved", str(out))
    console.print(table)
    if report.frames_failed or report.disabled_stages:
        raise typer.Exit(code=1)


@app.command("models")
def models_list() -> None:
    """List the restoration models this installation can run."""
    from .acquisition._registry import RESTORERS

    table = Table(title="models")
    table.add_column("name")
    table.add_column("what it does")
    for name, (_, description) in RESTORERS.items():
        table.add_row(name, description)
    console.print(table)


@app.command()
def simulate(
    kind: Annotated[str, typer.Argument(help="sr-pairs | defocus | sim")],
    out: Annotated[Path, typer.Option(help="Output folder (must not exist).")],
    structures: Annotated[str, typer.Option(help="Comma-separated structures.")] = "microtubules",
    photons: Annotated[
        str, typer.Option(help="Comma-separated peak photons per pixel.")
    ] = "20,50,100",
    n: Annotated[int, typer.Option(help="Samples per structure x photon level.")] = 4,
    frame_size: Annotated[int, typer.Option(help="Square frame side (even, 32-4096).")] = 128,
    seed: Annotated[int, typer.Option(help="Seed: the same seed gives the same dataset.")] = 0,
    fmt: Annotated[
        str, typer.Option("--format", help="zarr (OME-Zarr) or tiff (OME-TIFF).")
    ] = "zarr",
    defocus_range_um: Annotated[float, typer.Option(help="Focus series: ± range (µm).")] = 2.0,
    defocus_step_um: Annotated[float, typer.Option(help="Focus series: step (µm).")] = 0.25,
) -> None:
    """Write a simulated dataset with ground truth, for training and evaluation.

    sr-pairs: low-light widefield frames + in-focus widefield + 2x SR ground truth.
    defocus: focus series through known defocus. sim: 9-frame SIM raw sets + 2x ground truth.
    """
    from .simulate import DatasetKind, DatasetSpec, write_dataset

    try:
        spec = DatasetSpec(
            kind=DatasetKind(kind),
            structures=[s.strip() for s in structures.split(",") if s.strip()],
            photon_levels=[float(p) for p in photons.split(",") if p.strip()],
            samples_per_combination=n,
            frame_size=frame_size,
            seed=seed,
            defocus_range_um=defocus_range_um,
            defocus_step_um=defocus_step_um,
        )
        spec.validate()
    except ValueError as e:
        allowed = ", ".join(k.value for k in DatasetKind)
        raise _fail(f"{e} (dataset kinds: {allowed})") from None
    with _progress() as progress:
        task = progress.add_task(f"rendering {kind}", total=spec.count)
        try:
            path = write_dataset(
                spec, out, fmt, lambda done, _total: progress.update(task, completed=done)
            )
        except (ValueError, FileExistsError) as e:
            raise _fail(str(e)) from None
    console.print(f"wrote {spec.count} samples to [bold]{path}[/]")
