"""``live-restore restore``: batch restoration of a finished acquisition on Dask."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail, progress
from ._cli_options import BackendOption, check_backend

__all__ = ["restore"]


def restore(
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT.ome.zarr",
            help="An OME-Zarr image: a raw store of `acquire` or the demo, or any pymmcore-plus "
            "or OME-Zarr writer's (last two axes y, x).",
        ),
    ],
    model: Annotated[
        str, typer.Option("-m", "--model", help="The restorer or shipped model to run.")
    ],
    out: Annotated[
        Path,
        typer.Option("--out", metavar="OUTPUT.ome.zarr", help="Where the restored image goes."),
    ],
    scheduler: Annotated[
        str,
        typer.Option(
            help="'local': a Dask LocalCluster on loopback; or a running scheduler's address "
            "(tcp://HOST:8786), whose workers must see INPUT and OUTPUT at the same paths."
        ),
    ] = "local",
    workers: Annotated[int, typer.Option(min=1, help="Worker processes of the local cluster.")] = 1,
    frames_per_task: Annotated[int, typer.Option(min=1, help="Output frames per Dask task.")] = 1,
    backend: BackendOption = "auto",
    overwrite: Annotated[
        bool, typer.Option(help="Replace OUTPUT; without it a rerun resumes where it stopped.")
    ] = False,
) -> None:
    """Restore every frame of a finished acquisition with any model, on Dask.

    Each frame is one task: workers read it from INPUT, restore it (a large frame in tiles
    with blended halos, as live) and write it to its own chunk of OUTPUT, with the model's
    provenance. Rerun the same command to resume after an interruption: frames already
    written are skipped. Exits 1 when any frame failed; they are named.
    """
    from .serving import ZarrImageError, restore_store

    check_backend(backend)
    if out.exists() and overwrite:
        shutil.rmtree(out)
    with progress() as bar:
        task = bar.add_task(f"restoring ({model})", total=None)
        try:
            report = restore_store(
                input_path,
                model,
                out,
                scheduler=scheduler,
                workers=workers,
                backend=backend,
                frames_per_task=frames_per_task,
                on_progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
        except (ZarrImageError, ValueError, ConnectionError) as e:
            raise fail(str(e)) from None
    table = Table(title="live-restore restore", show_header=False)
    table.add_row("frames", str(report.total))
    table.add_row("written now / resumed", f"{report.written_now} / {report.resumed}")
    table.add_row("failed", str(len(report.failed)))
    table.add_row("saved", str(report.output))
    console.print(table)
    for label, why in report.failed.items():
        console.print(f"failed {label}: {why}", soft_wrap=True, markup=False)
    if not report.complete:
        raise typer.Exit(code=1)
