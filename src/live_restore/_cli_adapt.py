"""``live-restore adapt``: a shipped model fine-tuned on the user's own stack, no ground truth."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from ._cli_common import console, fail

__all__ = ["adapt"]


def adapt(
    model: Annotated[
        str,
        typer.Argument(
            help="interp-t, interp-z or a super-resolution model (dfcan-sr2x-*, mfsr-sr2x): "
            "a name or a model folder."
        ),
    ],
    input_path: Annotated[
        Path,
        typer.Argument(
            metavar="INPUT",
            help="Your stack: an OME-Zarr image (NGFF 0.4/0.5, a raw store of acquire) or an "
            "OME-TIFF, with the axis to interpolate along.",
        ),
    ],
    out: Annotated[Path, typer.Option(help="The adapted model's folder (must not exist).")],
    minutes: Annotated[
        float, typer.Option(min=0.01, help="Stop fine-tuning after this long.")
    ] = 10.0,
    steps: Annotated[
        int | None,
        typer.Option(min=1, help="Stop after this many steps if sooner (a reproducible run)."),
    ] = None,
    axis: Annotated[
        str | None, typer.Option(help="t or z (default: the model's own axis).")
    ] = None,
    method: Annotated[
        str | None,
        typer.Option(
            help="pairs: neighbouring planes recorrupted, their noise fitted from the stack "
            "(default along z); triplets: each frame the target of the two around it "
            "(default along t); consistency: the super-resolution models' only one."
        ),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="The adapted model's name (default: MODEL-adapted).")
    ] = None,
    na: Annotated[
        float | None,
        typer.Option(help="Super-resolution: your objective's NA (default: the model's, 1.49)."),
    ] = None,
    emission_nm: Annotated[
        float | None,
        typer.Option(help="Super-resolution: your emission wavelength, nm (default: 525)."),
    ] = None,
    pixel_um: Annotated[
        float | None,
        typer.Option(
            help="Super-resolution: your camera pixel at the sample, µm (default: 0.065)."
        ),
    ] = None,
) -> None:
    """Fine-tune a model on your own stack, with no ground truth.

    pairs (z): each pair of neighbouring planes is recorrupted with the camera noise fitted
    from the stack, and the network learns the half-way blend of the clean planes (its target's
    noise is independent of its input's). triplets (t): each acquired frame is the target for
    the two around it (Noise2Noise). consistency (dfcan-sr2x-*, mfsr-sr2x on windows of time
    points): each frame is recorrupted and
    the 2x output, blurred by your optics' widefield kernel and binned, must give the clean
    frame (ZS-DeconvNet), staying near the parent's output. The last fifth is held out; the
    held-out error is measured before and after, and if adapting did not lower it the parent's
    weights are kept. The folder works wherever a model name does: -m OUT, load_model(OUT).
    """
    from .training import adapt_model

    try:
        result = adapt_model(
            model,
            input_path,
            out,
            minutes=minutes,
            **({"max_steps": steps} if steps is not None else {}),
            axis=axis,
            method=method,
            name=name,
            na=na,
            emission_nm=emission_nm,
            pixel_um=pixel_um,
            progress=True,
        )
    except ValueError as e:
        raise fail(str(e)) from None
    table = Table(title=f"live-restore adapt {model}", show_header=False)
    table.add_row(f"{result.method}: training / held out", f"{result.training_examples} / "
                  f"{result.held_out_examples}")  # fmt: skip
    table.add_row("steps, minutes", f"{result.steps}, {result.seconds / 60:.1f}")
    table.add_row(
        "held-out error: before / after",
        f"{result.held_out_before:.5f} / {result.held_out_after:.5f} "
        f"({result.reference_name} {result.held_out_reference:.5f})",
    )
    verdict = (
        "the adapted weights (the held-out error fell by over 2 standard errors)"
        if result.kept == "adapted"
        else "the parent's weights (the held-out error did not fall by over 2 standard errors)"
    )
    table.add_row("kept", verdict)
    table.add_row("saved", str(result.folder))
    console.print(table)
