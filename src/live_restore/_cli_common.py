"""What every ``live-restore`` command shares: the console, progress bars, the error exit."""

from __future__ import annotations

from typing import Any

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.text import Text

__all__ = ["RepeatedErrors", "console", "fail", "grouped_lines", "print_wide", "progress"]

# no file=: rich looks sys.stdout up at each print, so output goes wherever stdout is then
# (typer's CliRunner swaps it to capture a command run in-process)
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
    """Print ``message`` as an error; the exit (code 2) to raise.

    The message is printed on one line (its own line breaks joined) however narrow the
    terminal: rich would otherwise break it at the console width, inside a long path or between
    the words someone searches the log for (the terminal still wraps it on screen). It is plain
    text, not markup, so brackets in a path or a value are printed, not read as styles.
    """
    one_line = " ".join(part.strip() for part in message.splitlines() if part.strip())
    console.print(Text.assemble(("error:", "bold red"), " ", one_line), soft_wrap=True)
    return typer.Exit(code=2)


def grouped_lines(what: str, reasons: dict[str, str]) -> list[str]:
    """One line per cause: ``failed 57 frames (t=3 .. t=59): why``, not 57 lines.

    ``reasons``: frame label -> why, in frame order; runs of the same why become one line.
    """
    lines: list[str] = []
    run: list[str] = []
    for label, why in [*reasons.items(), ("", "\0")]:
        if run and why != reasons.get(run[-1]):
            count = f"{len(run)} frames ({run[0]} .. {run[-1]})" if len(run) > 1 else run[0]
            lines.append(f"{what} {count}: {reasons[run[0]]}")
            run = []
        run.append(label)
    return lines


class RepeatedErrors:
    """Prints a hook's error events, a run of the same error as one line and a count.

    The first of a run is printed as it happens; repeats (same stage, kind and message, on
    later frames) are counted and printed as one line when the run ends (``flush``). run.log
    keeps every one in full.
    """

    def __init__(self) -> None:
        self._key: tuple[str, str, str] | None = None
        self._frames: list[int | None] = []

    def __call__(self, error: Any) -> None:
        key = (error.stage, error.kind, error.message)
        if key == self._key:
            self._frames.append(error.frame)
            return
        self.flush()
        self._key, self._frames = key, []
        console.print(
            Text.assemble((error.stage, "yellow"), f" frame {error.frame}: {error.message}"),
            soft_wrap=True,
        )

    def flush(self) -> None:
        """Print the count of the run of repeats just ended, if any."""
        if self._key is not None and self._frames:
            frames = [f for f in self._frames if f is not None]
            where = f" (frames {frames[0]}..{frames[-1]})" if frames else ""
            console.print(
                Text.assemble(
                    (self._key[0], "yellow"),
                    f" the same on {len(self._frames)} more frames{where}; all in run.log",
                ),
                soft_wrap=True,
            )
        self._frames = []
