"""LiveView: napari fed from a RestoreHook's mailboxes by a timer on the Qt main thread.

The viewer never waits for anything: every tick (at most ~30 per second) reads the newest
restored frame, focus estimate and statistics the hook has published, and shows them if they
are new. The hook's worker and the acquisition never wait for the viewer either: a mailbox is
a dictionary slot the worker overwrites, so frames the viewer had no time to show are simply
replaced (the stores keep every one of them).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
from qtpy.QtCore import QObject, QTimer

from live_restore.acquisition import HookStats, RawFrame, RestoreHook
from live_restore.focus import DefocusReading

from ._layers import RAW_LAYER, StreamLayers

__all__ = ["DisplayStats", "LiveView"]

CONTRAST_INTERVAL_S = 1.0  # contrast limits follow the data, but not every frame (no flicker)
STATS_INTERVAL_S = 0.5


@dataclass(frozen=True)
class DisplayStats:
    """What the viewer itself achieves."""

    updates: int  # frames shown since start
    updates_per_s: float  # over the few seconds up to the newest update (kept after a run)
    idle_s: float  # since the newest update (inf before the first)
    screen_latency_p50_ms: float  # frame received by the hook -> its layers updated
    screen_latency_p99_ms: float


class _DisplayMeter:
    def __init__(self, size: int = 512, span_s: float = 3.0) -> None:
        self.updates = 0
        self._times_s: deque[float] = deque(maxlen=size)
        self._latency_ms: deque[float] = deque(maxlen=size)
        self._span_s = span_s

    def add(self, now_s: float, latency_ms: float) -> None:
        self.updates += 1
        self._times_s.append(now_s)
        self._latency_ms.append(latency_ms)

    def stats(self, now_s: float) -> DisplayStats:
        # the rate over the last few updates (up to span_s before the newest, at least the last
        # two), not over the span up to now: after a run the dock shows the rate it ran at, and
        # a slow time-lapse (one frame every 5 s) reads 0.2 updates/s, not 0
        newest = self._times_s[-1] if self._times_s else -np.inf
        recent = [t for t in self._times_s if newest - t <= self._span_s]
        if len(recent) < 2:
            recent = list(self._times_s)[-2:]
        rate = (len(recent) - 1) / max(recent[-1] - recent[0], 1e-6) if len(recent) > 1 else 0.0
        if self._latency_ms:
            p50, p99 = np.percentile(np.fromiter(self._latency_ms, float), [50, 99])
        else:
            p50 = p99 = float("nan")
        return DisplayStats(self.updates, rate, now_s - newest, float(p50), float(p99))


class LiveView(QObject):
    """Shows a hook's raw and restored frames in a napari viewer while it acquires.

    Parameters
    ----------
    viewer : napari.Viewer
    hook : RestoreHook
        An open hook on ``core``.
    core : CMMCorePlus
        The core the hook listens to (for the raw store of each MDA and the pixel size).
    interval_ms : int
        Timer period; 33 ms caps the display at about 30 updates per second.
    on_stats, on_defocus, on_error : callables, optional
        Called on the main thread with ``(HookStats, DisplayStats)``, each new
        ``DefocusReading``, and each ``StageError`` the hook reported.
    parent : QObject, optional
        The widget whose lifetime bounds the view's (the dock).
    """

    def __init__(
        self,
        viewer: Any,
        hook: RestoreHook,
        core: Any,
        interval_ms: int = 33,
        on_stats: Callable[[HookStats, DisplayStats], None] | None = None,
        on_defocus: Callable[[DefocusReading], None] | None = None,
        on_error: Callable[[Any], None] | None = None,
        parent: QObject | None = None,
    ) -> None:
        super().__init__(parent)  # parented to a widget: the timer dies with it
        self.viewer = viewer
        self.hook = hook
        self.core = core
        pixel_um = float(core.getPixelSizeUm() or 0.0)
        self.layers = StreamLayers(viewer, pixel_um, hook.stages, hook.trust_stages)
        self.on_stats = on_stats
        self.on_defocus = on_defocus
        self.on_error = on_error
        self.meter = _DisplayMeter()
        self._timer = QTimer(self)
        self._timer.setInterval(interval_ms)
        self._timer.timeout.connect(self.tick)
        self._shown: RawFrame | None = None
        self._shown_defocus: DefocusReading | None = None
        self._contrast_at_s = -np.inf
        self._stats_at_s = -np.inf
        # per acquisition: the stores' views, taken once (each get_view() adds a listener)
        self._new_run = True
        self._raw_view: Any = None
        self._restored_views: dict[str, Any] = {}
        # filled from the hook's worker thread, drained on the main thread
        self._errors: deque[Any] = deque(maxlen=100)
        self._connections: list[tuple[Any, Callable[..., Any]]] = []

    def start(self) -> None:
        """Connect and start the timer."""
        for signal, slot in (
            (self.core.mda.events.sequenceStarted, self._on_sequence_started),
            (self.hook.events.error, self._on_error),
        ):
            signal.connect(slot)
            self._connections.append((signal, slot))
        self._timer.start()

    def stop(self) -> None:
        """Stop the timer and disconnect; the layers stay as they are."""
        self._timer.stop()
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections.clear()

    # -- slots (any thread): O(1) ------------------------------------------------------------

    def _on_sequence_started(self, *args: Any) -> None:
        self._new_run = True

    def _on_error(self, error: Any) -> None:
        self._errors.append(error)

    # -- the timer (main thread) -------------------------------------------------------------

    def tick(self) -> None:
        """Show what is new: frames, focus, errors, and (twice a second) statistics."""
        now = time.perf_counter()
        while self._errors and self.on_error is not None:
            self.on_error(self._errors.popleft())
        self._show_frames(now)
        reading = self.hook.latest_defocus()
        if reading is not None and reading is not self._shown_defocus:
            self._shown_defocus = reading
            if self.on_defocus is not None:
                self.on_defocus(reading)
        if now - self._stats_at_s >= STATS_INTERVAL_S:
            self._stats_at_s = now
            if self.on_stats is not None:
                self.on_stats(self.hook.stats(), self.meter.stats(now))

    def refresh(self) -> None:
        """Show everything now, statistics included (before a screenshot)."""
        self._stats_at_s = -np.inf
        self.tick()

    def _show_frames(self, now: float) -> None:
        # driven by the raw mailbox: raw is shown even when every stage fails on it
        raw = self.hook.latest_raw()
        if raw is None or raw is self._shown:
            return
        names = [name for name, _ in self.hook.stages]
        if self._new_run and not raw.live:
            self._new_run = False
            self._raw_view = None
            self._restored_views = {}
            self.layers.clear()
        restored = {n: f.restored for n in names if (f := self.hook.latest(n)) is not None}
        contrast = now - self._contrast_at_s >= CONTRAST_INTERVAL_S
        if contrast:
            self._contrast_at_s = now
        views = None if raw.live else self._views(names)
        if views is not None:
            raw_view, restored_views = views
            latest = {RAW_LAYER: raw.image, **restored}
            self.layers.show_stores(raw_view, restored_views, raw.index, latest, contrast)
        else:
            self.layers.show_frames(raw.image, restored, contrast)
        self._shown = raw
        shown_s = time.perf_counter()
        self.meter.add(shown_s, (shown_s - raw.received_s) * 1000)

    def _views(self, names: list[str]) -> tuple[Any, dict[str, Any]] | None:
        """The raw and restored store views of this acquisition, once all exist."""
        if self._raw_view is None:
            try:  # once per run: each call adds a listener to the raw stream
                self._raw_view = self.core.mda.get_view()
            except Exception:  # a closed or unreadable raw store: show frames instead
                self._raw_view = None
        restored = {n: v for n in names if (v := self.hook.restored_view(n)) is not None}
        self._restored_views.update(restored)
        if self._raw_view is None or len(self._restored_views) < len(names):
            return None
        return self._raw_view, self._restored_views
