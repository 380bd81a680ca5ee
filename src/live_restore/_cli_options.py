"""Options and checks that several ``live-restore`` commands share.

Nothing here imports torch, Qt or napari at import time: ``live-restore --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from ._cli_common import console, fail

if TYPE_CHECKING:
    from ._demo import DemoSettings

__all__ = [
    "BackendOption",
    "ConfigOption",
    "MemoryOption",
    "ModelsOption",
    "OutFolderOption",
    "OverwriteOption",
    "ProcessOption",
    "ScreenshotOption",
    "check_backend",
    "check_policy",
    "open_window",
    "prepare_out",
]

# options shared by `demo` and `acquire`
ModelsOption = Annotated[
    list[str] | None,
    typer.Option(
        "--model",
        "-m",
        help="Restoration model (repeat for several); `live-restore models` lists them. "
        "MODEL+trust (e.g. dfcan-sr2x-tiny+trust) adds MODEL's per-pixel trust map, sigma, "
        "saved beside it and shown red over it (with MODEL beside it, about 0.3x MODEL's time).",
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
ConfigOption = Annotated[
    Path | None,
    typer.Option(help="Micro-Manager config (default: the simulated microscope)."),
]
BackendOption = Annotated[
    str,
    typer.Option(
        help="Where trained models run: auto (the fastest here: tensorrt, torch-cuda, "
        "torch-cpu, in that order), tensorrt, torch-cuda, torch-cpu, onnxruntime."
    ),
]
ScreenshotOption = Annotated[
    Path | None,
    typer.Option(help="Save the window as PNG here once the frames are restored, then close it."),
]


def check_backend(backend: str) -> None:
    """Refuse an unknown backend, or one this machine cannot run, before anything starts."""
    from .inference import resolve_backend

    try:
        resolve_backend(backend)
    except (ValueError, RuntimeError) as error:
        raise fail(str(error)) from None


def open_window(
    config: Path | None,
    out: Path | None,
    models: list[str] | None,
    backend: str,
    process: str,
    demo: DemoSettings | None,
    screenshot: Path | None,
) -> None:
    """Run the napari window (the gui command, and the demo without --headless)."""
    try:
        from .viewer import run_window
    except ImportError as e:
        raise fail(
            f"the napari window needs the GUI extras ({e.name} is missing): "
            "pip install 'live-restore[gui]', or use --headless"
        ) from None
    try:
        result = run_window(
            config,
            output=out,
            models=models,
            backend=backend,
            process=process,
            demo=demo,
            screenshot=screenshot,
        )
    except (ValueError, FileNotFoundError, RuntimeError) as e:
        raise fail(str(e)) from None
    console.print(
        f"window closed: {result.frames_restored} of {result.frames_received} frames restored, "
        f"{result.display_updates} display updates"
        + (f", screenshot {result.screenshot}" if result.screenshot else "")
        + (f", saved in {out}" if out else "")
    )


def check_policy(process: str) -> None:
    if process not in ("all", "latest"):
        raise fail(f"--process must be 'all' or 'latest', got {process!r}")


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that exists (without --overwrite) or cannot be made; nothing is created."""
    if out.exists():
        if not overwrite:
            raise fail(f"{out} already exists; choose another path or pass --overwrite")
        import shutil

        shutil.rmtree(out) if out.is_dir() else out.unlink()
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise fail(f"cannot create {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise fail(f"cannot create {out}: {parent} is not writable")
