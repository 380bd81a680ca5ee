"""The ``live-restore`` command line (typer)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

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


@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Where to save the raw frames (.ome.zarr).")] = Path(
        "demo-output/demo.ome.zarr"
    ),
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
    overwrite: Annotated[bool, typer.Option(help="Replace an existing output.")] = False,
) -> None:
    """Simulated low-light time-lapse on the simulated microscope, saved as OME-Zarr.

    The sample is rendered from physics (NA 1.49 oil, 525 nm, 65 nm pixels) with Poisson shot
    noise and camera read noise; the light level sets the photon budget. Restoration and the live
    napari view are added by later releases; today the demo acquires and saves the raw data.
    """
    from ._demo import run_demo

    if not headless:
        raise _fail(
            "the live napari view is not part of this release yet; "
            "run `live-restore demo --headless`"
        )
    if overwrite and out.exists():
        import shutil

        shutil.rmtree(out)
    with _progress() as progress:
        task = progress.add_task("acquiring", total=frames)
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
                on_frame=lambda n: progress.update(task, completed=n),
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
    table.add_row("saved", str(result.out))
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
