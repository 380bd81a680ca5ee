"""Options and checks that several ``live-restore`` commands share.

Nothing here imports torch, Qt or napari at import time: ``live-restore --help`` stays fast.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from ._cli_common import console, fail

if TYPE_CHECKING:
    from ._demo import DemoSettings
    from .acquisition import HookConfig

__all__ = [
    "BackendOption",
    "ConfigOption",
    "MemoryOption",
    "ModelsOption",
    "OldProcessOption",
    "OutFolderOption",
    "OverwriteOption",
    "PolicyOption",
    "ScreenshotOption",
    "check_backend",
    "check_policy",
    "config_from_options",
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
PolicyOption = Annotated[
    str,
    typer.Option(
        "--policy", help="Which frames: all, every one restored; latest, the newest wins (display)."
    ),
]
OldProcessOption = Annotated[
    str | None, typer.Option("--process", hidden=True, help="The old name of --policy.")
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
    policy: str,
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
            policy=policy,
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


def check_policy(policy: str, old_process: str | None = None) -> str:
    """The frame policy, from --policy or its old name --process (with a warning)."""
    if old_process is not None:
        console.print(
            "[yellow]--process is now --policy; --process goes in the next release[/yellow]"
        )
        policy = old_process
    if policy not in ("all", "latest"):
        raise fail(f"--policy must be 'all' or 'latest', got {policy!r}")
    return policy


def config_from_options(values: dict[str, Any], flags: dict[str, str]) -> HookConfig:
    """A HookConfig from a command's options; a bad one fails naming its option.

    ``flags``: the option of a field whose name is not ``--field-name`` (e.g. models: -m).
    """
    from pydantic import ValidationError

    from .acquisition import HookConfig

    try:
        return HookConfig.model_validate(values)
    except ValidationError as e:
        problems = []
        for error in e.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            flag = flags.get(field, "--" + field.replace("_", "-"))
            value = values.get(field)
            message = str(error["msg"]).removeprefix("Value error, ")
            problems.append(f"{flag} {value!r}: {message}")
        raise fail("; ".join(problems)) from None


def prepare_out(out: Path, overwrite: bool) -> None:
    """Refuse an output that exists (without --overwrite) or cannot be made; nothing is created."""
    if out.exists():
        if not out.is_dir():
            raise fail(f"{out} is a file, not a folder; choose another output")
        if not overwrite:
            raise fail(f"{out} already exists; choose another path or pass --overwrite")
        import shutil

        shutil.rmtree(out)
        return
    parent = out.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise fail(f"cannot create {out}: {parent} is a file, not a folder")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise fail(f"cannot create {out}: {parent} is not writable")
