"""The worker's focus readings: estimate, flag, hold, record a row, tell the display."""

from __future__ import annotations

import math
import threading
from typing import TYPE_CHECKING, Any

import numpy as np

from live_restore.frames import format_index

if TYPE_CHECKING:
    from live_restore.focus import FocusHold, FocusMonitor

    from ._display import Display
    from ._record import RunRecord

__all__ = ["FocusWatch"]


class FocusWatch:
    """Part of :class:`~._worker.Worker`: what it does with each focus reading."""

    focus: FocusMonitor | None
    hold: FocusHold | None
    display: Display
    run: RunRecord | None
    lock: threading.RLock

    def error(
        self, stage: str, frame: int | None, kind: str, message: str, trace: str = ""
    ) -> None:
        """Report a failure (the worker's)."""
        raise NotImplementedError

    def _watch_batch_focus(self, focus: FocusMonitor, frames: list[Any]) -> None:
        """Focus over a batch of (frame, image, source) the worker took, oldest first."""
        # the monitor may estimate only every Nth frame of a series while catching up: focus
        # is about now, and the estimator's time goes to restoring (and the display)
        newest = {focus.series_of(f.index): f.number for f, _image, _source in frames}
        for f, image, _source in frames:
            if focus.wanted(f.index, newest[focus.series_of(f.index)] == f.number):
                self._watch_focus(image, f.number, f.index, f.z_um)

    def _watch_focus(
        self,
        image: np.ndarray,
        number: int,
        index: dict[str, int],
        z_um: float | None,
        live: bool = False,
    ) -> None:
        if self.focus is None:
            return
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
        if not live and self.run is not None:
            with self.lock:
                self.run.row(
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
