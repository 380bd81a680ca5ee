"""``live-restore export``: a trained model in another ecosystem's format."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._cli_common import console, fail

__all__ = ["export_app"]

export_app = typer.Typer(
    help="Export a trained model for other software (BioImage Model Zoo).", no_args_is_help=True
)


@export_app.command("bmz")
def export_bmz_command(
    name: Annotated[
        str, typer.Argument(help="Shipped model name (e.g. dfcan-sr2x-tiny) or folder.")
    ],
    out: Annotated[
        Path | None, typer.Option(help="The package to write (default: NAME.zip here).")
    ] = None,
    test: Annotated[
        bool, typer.Option(help="Run bioimageio.core's own test on the package (offline).")
    ] = True,
) -> None:
    """Write a BioImage Model Zoo package (bioimageio.spec 0.5) of a restoration model.

    It holds the weights as a PyTorch state dict with the architecture's source, and as ONNX;
    a simulated test input and the model's output for it; our normalisation as
    preprocessing; documentation, citation and cover; and the model.yaml provenance in
    config. Opens in deepImageJ, ilastik and bioimageio.core. Needs the bmz extra:
    pip install -e ".[bmz]".
    """
    from .models import ModelLoadError

    try:
        from .bmz import export_bmz, test_package
    except ImportError as e:
        raise fail(
            f'the zoo export needs bioimageio.core ({e.name} is missing): pip install -e ".[bmz]"'
        ) from None
    path = out or Path(f"{Path(name).name}.zip")
    try:
        written = export_bmz(name, path)
    except (ModelLoadError, ValueError) as e:
        raise fail(str(e)) from None
    console.print(f"written {written} ({written.stat().st_size / 1e6:.1f} MB)")
    if test:
        passed, summary = test_package(written)
        if not passed:
            console.print(summary)
            failed = written.replace(written.with_suffix(".failed.zip"))
            raise fail(
                f"bioimageio.core's test failed on the package (its report is above); kept as "
                f"{failed} so that it is not taken for a good one"
            )
        console.print(
            "bioimageio.core test: passed (both weight formats reproduce the test output)"
        )
