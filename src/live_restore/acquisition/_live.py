"""Live mode: pymmcore-plus emits no per-frame signal, so a thread watches the core's buffer.

While a continuous sequence acquisition runs (and no MDA does), the poller peeks at the newest
image about once per exposure and offers it to a one-slot mailbox (newest wins): live frames are
for the eye, not saved, so a slow model just shows fewer of them. Peeking (``getLastImage``)
leaves the buffer to whoever else is reading it, like napari-micromanager's live view.
"""

from __future__ import annotations

import copy
import threading
import time
from typing import Any

import numpy as np

from live_restore.frames import FrameGroup, Grouping

__all__ = ["LiveGroups", "LivePoller"]


def _fingerprint(image: np.ndarray) -> bytes:
    # camera noise makes consecutive frames differ in a sparse sample; a repeat is the same frame
    flat = image.reshape(-1)
    return flat[:: max(1, flat.size // 4096)].tobytes()


class LivePoller:
    """Polls ``core.getLastImage()`` on its own thread while live mode runs."""

    def __init__(self, core: Any, min_period_s: float = 0.005, max_period_s: float = 0.1) -> None:
        self._core = core
        self._min_period_s = min_period_s
        self._max_period_s = max_period_s
        self._lock = threading.Lock()
        self._slot: tuple[np.ndarray, float, int] | None = None
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.frames_seen = 0
        self.frames_replaced = 0
        self.session = 0  # counts live sessions: a new one starts a new time series

    def start(self) -> None:
        """Start watching (idempotent)."""
        if self._thread is not None and self._thread.is_alive():
            return
        self.session += 1
        self._stop.clear()
        self._thread = threading.Thread(target=self._poll, name="live-restore-live", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 2.0) -> None:
        """Stop watching and wait for the thread."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            self._thread = None

    def take(self) -> tuple[np.ndarray, float, int] | None:
        """The newest live frame not yet taken, its receipt time and session, or None."""
        with self._lock:
            slot, self._slot = self._slot, None
            return slot

    def _period_s(self) -> float:
        try:
            exposure_s = float(self._core.getExposure()) / 1000
        except Exception:
            exposure_s = self._max_period_s
        return min(max(exposure_s, self._min_period_s), self._max_period_s)

    def _poll(self) -> None:
        last: bytes | None = None
        while not self._stop.is_set():
            period_s = self._period_s()
            try:
                live = self._core.isSequenceRunning() and not self._core.mda.is_running()
                image = self._core.getLastImage() if live else None
            except Exception:
                image = None  # buffer empty or camera busy: try again next period
            if image is not None and image.ndim == 2:
                mark = _fingerprint(image)
                if mark != last:
                    last = mark
                    with self._lock:
                        if self._slot is not None:
                            self.frames_replaced += 1
                        received_s = time.perf_counter()
                        self._slot = (np.array(image, copy=True), received_s, self.session)
                    self.frames_seen += 1
            self._stop.wait(period_s)


class LiveGroups:
    """Each stage's grouping over the current live session: live frames as a time series.

    A session's k-th frame taken is ``t=k``, so windows (mfsr) and pairs along t (interp-t)
    form as they do in an MDA. Every new session starts from fresh groupings (copies of the
    stages' own, made before any frame), so no group spans two sessions.
    """

    def __init__(self, groupings: dict[str, Grouping]) -> None:
        self._templates = {name: copy.deepcopy(g) for name, g in groupings.items()}
        self._current: dict[str, Grouping] = {}
        self.session = -1
        self._count = 0

    def begin(self, session: int) -> bool:
        """Start ``session`` if it is new (fresh groupings); whether it was."""
        if session == self.session:
            return False
        self.session, self._count = session, 0
        self._current = {name: copy.deepcopy(g) for name, g in self._templates.items()}
        return True

    def next_number(self) -> int:
        """The next frame's number (its t) in this session."""
        number, self._count = self._count, self._count + 1
        return number

    def add(self, stage: str, number: int, image: np.ndarray) -> list[FrameGroup]:
        """The groups of ``stage`` this frame completes."""
        return self._current[stage].add(number, {"t": number}, image)
