"""What the hook tells the world: ``hook.events.restored``, ``.error``, ``.stats``.

The signals are emitted from the hook's worker thread. A GUI must not touch widgets in a slot
directly: connect with ``thread="main"`` (psygnal queues it to the Qt main thread) or read the
hook's display mailbox from a main-thread timer.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal, SignalGroup

from live_restore.focus import DefocusReading

__all__ = [
    "HookEvents",
    "HookStats",
    "LatencyWindow",
    "RawFrame",
    "RestoredFrame",
    "StageError",
]


@dataclass(frozen=True)
class RestoredFrame:
    """One stage's output for one frame (or frame group)."""

    stage: str
    numbers: tuple[int, ...]  # arrival numbers of the input frames
    index: dict[str, int]  # where the output belongs (MDA event index)
    raw: np.ndarray = field(repr=False)  # the newest input frame, as acquired
    restored: np.ndarray = field(repr=False)  # float32, scaled by the stage's factor
    latency_ms: float
    live: bool = False  # from live mode (not saved)


@dataclass(frozen=True)
class RawFrame:
    """The newest frame the worker finished with (whatever its stages did with it)."""

    number: int  # arrival number (-1 in live mode)
    index: dict[str, int]
    image: np.ndarray = field(repr=False)
    received_s: float  # time.perf_counter() when the hook received it
    live: bool = False


@dataclass(frozen=True)
class StageError:
    """A stage (or a sink) failed on a frame; the acquisition went on."""

    stage: str
    frame: int | None  # arrival number; None when not tied to one frame
    kind: str  # exception | bad-output | out-of-memory | disabled | sink | no-raw-store | ...
    message: str


@dataclass(frozen=True)
class HookStats:
    """A snapshot of the hook's progress."""

    frames_received: int
    frames_done: int  # the worker finished with them (restored or failed)
    frames_restored: int  # every enabled stage restored them
    frames_skipped: int  # "latest": replaced by newer frames before the worker got to them
    frames_pending: int  # waiting, in memory or as raw-store references
    frames_from_raw_store: int  # "all": frames read back from the raw store
    frames_failed: int
    frames_dropped: int  # "all" without a raw store: could not be held or read back
    held_mb: float  # memory the intake holds now
    peak_held_mb: float
    throughput_fps: float  # restored frames per second over the last few seconds
    latency_p50_ms: float
    latency_p99_ms: float
    paused: bool
    disabled_stages: tuple[str, ...]


class HookEvents(SignalGroup):
    """The hook's signals (psygnal), emitted from its worker thread."""

    restored = Signal(RestoredFrame)
    error = Signal(StageError)
    stats = Signal(HookStats)
    defocus = Signal(DefocusReading)


class LatencyWindow:
    """Latencies and completion times of the most recent outputs (bounded)."""

    def __init__(self, size: int = 2048) -> None:
        self._latency_ms: deque[float] = deque(maxlen=size)
        self._done_s: deque[float] = deque(maxlen=size)

    def add(self, latency_ms: float, done_s: float) -> None:
        """Record one output."""
        self._latency_ms.append(latency_ms)
        self._done_s.append(done_s)

    def percentiles_ms(self) -> tuple[float, float]:
        """(p50, p99) of the window, or (nan, nan) when empty."""
        if not self._latency_ms:
            return float("nan"), float("nan")
        p50, p99 = np.percentile(np.fromiter(self._latency_ms, float), [50, 99])
        return float(p50), float(p99)

    def throughput_fps(self, now_s: float, span_s: float = 3.0) -> float:
        """Outputs per second over the last ``span_s`` seconds."""
        recent = [t for t in self._done_s if now_s - t <= span_s]
        if len(recent) < 2:
            return 0.0
        elapsed = max(now_s - recent[0], 1e-6)
        return len(recent) / elapsed
