"""The worker's focus readings: estimate, flag, hold, record a row, tell the display."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from live_restore.frames import format_index

if TYPE_CHECKING:
    from live_restore.focus import FocusHold, FocusMonitor

    from ._display import Display
    from ._record import RunRecord

__all__ = ["FocusWatch"]


class FocusWatch:
    """What the worker does with each focus reading: flag, hold, row, display."""

    def __init__(
        self,
        focus: FocusMonitor,
        hold: FocusHold | None,
        display: Display,
        lock: threading.RLock,
        error: Callable[..., None],
    ) -> None:
        self.focus = focus
        self.hold = hold
        self.display = display
        self.lock = lock
        self.error = error

    def batch(self, frames: list[Any], run: RunRecord | None) -> None:
        """Focus over a batch of (frame, image, source) the worker took, oldest first."""
        focus = self.focus
        # the monitor may estimate only every Nth frame of a series while catching up: focus
        # is about now, and the estimator's time goes to restoring (and the display)
        newest = {focus.series_of(f.index): f.number for f, _image, _source in frames}
        for f, image, _source in frames:
            if focus.wanted(f.index, newest[focus.series_of(f.index)] == f.number):
                self.watch(image, f.number, f.index, f.z_um, run)

    def watch(
        self,
        image: np.ndarray,
        number: int,
        index: dict[str, int],
        z_um: float | None,
        run: RunRecord | None,
        live: bool = False,
    ) -> None:
        """Estimate one frame's defocus; flag, hold, row and display it."""
        try:
            reading = self.focus.observe(image, number, index, z_um, live=live)
        except Exception as e:  # a focus model must never stop restoration
            self.error("focus", number if number >= 0 else None, "exception", f"{e!r}")
            return
        self.display.latest_defocus = reading
        if self.hold is not None:
            try:
                self.hold.offer(reading)
            except Exception as e:  # nor may a stage that refuses to move
                self.error("focus-hold", number if number >= 0 else None, "exception", f"{e!r}")
        if not live and run is not None:
            with self.lock:
                run.row(
                    frame=number,
                    index=format_index(index),
                    stage="focus",
                    status=reading.state,
                    defocus_um=_format_um(reading.defocus_um),
                    flags="out-of-focus" if reading.flagged else "",
                    error=reading.note,
                )
        self.display.emit("defocus", reading)


def _format_um(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"
