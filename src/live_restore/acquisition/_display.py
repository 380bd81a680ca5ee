"""What the worker shows: the display mailboxes, the latencies and the hook's signals.

Mailboxes are replaced whole (never mutated), so any thread can read them without a lock: the
napari timer on the Qt main thread, ``hook.latest()``. Signals are emitted from the worker;
a slot that raises is logged and never stops the worker or changes a frame's record.
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np

from live_restore.focus import DefocusReading
from live_restore.frames import FrameGroup

from ._counters import LatencyWindow
from ._events import HookEvents, RawFrame, RestoredFrame

__all__ = ["Display"]

logger = logging.getLogger("live_restore")


class Display:
    """The newest outputs, raw frame and focus reading; latencies; safe signal emission."""

    def __init__(self, events: HookEvents) -> None:
        self.events = events
        self.latency = LatencyWindow()
        self.latest_restored: dict[str, RestoredFrame] = {}
        self.latest_raw: RawFrame | None = None
        self.latest_defocus: DefocusReading | None = None
        self.store_views: dict[str, Any] = {}  # stage -> live view of its store

    def emit(self, signal: str, value: Any) -> None:
        """``events.<signal>.emit(value)``; a slot that raises is logged, not propagated."""
        try:
            getattr(self.events, signal).emit(value)
        except Exception:  # a user's slot: its bug must not become a lost frame
            logger.exception("a slot connected to hook.events.%s raised", signal)

    def publish(
        self,
        stage: str,
        group: FrameGroup,
        raw: np.ndarray,
        restored: np.ndarray,
        latency_ms: float,
        live: bool = False,
        kind: str = "image",
    ) -> None:
        """Count the latency, fill the stage's mailbox and emit ``restored``.

        ``restored`` is 2-D, or an interpolation stage's full-rate frames ``(n, H, W)``: then
        the newest interpolated one (the one before the acquired frame) is shown.
        """
        if restored.ndim == 3:
            restored = restored[max(0, len(restored) - 2)]
        self.latency.add(latency_ms, time.perf_counter())
        frame = RestoredFrame(
            stage, group.numbers, group.index, raw, restored, latency_ms, live, kind
        )
        self.latest_restored = {**self.latest_restored, stage: frame}
        self.emit("restored", frame)
