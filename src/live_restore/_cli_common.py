"""What every ``live-restore`` command shares: the console, progress bars, the error exit."""

from __future__ import annotations

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

__all__ = ["console", "fail", "print_wide", "progress"]

console = Console()


def progress() -> Progress:
    """A progress bar with a description, count and time left."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=console,
    )


def print_wide(renderable: object, width: int) -> None:
    """Print a wide table unsqueezed: logs and CI output are often 80 columns by default."""
    Console(width=max(console.width, width)).print(renderable)


def fail(message: str) -> typer.Exit:
    """Print ``message`` as an error; the exit (code 2) to raise."""
    console.print(f"[bold red]error:[/] {message}")
    return typer.Exit(code=2)
