"""The hook's counts: one :class:`Counters`, written by the worker; reports are its snapshots.

Only the worker thread writes :class:`Counters` (and ``close()``, once it has given up on a
worker that never returned). What the acquisition side counts (frames received, skipped,
dropped, spilled to the raw store) lives in the intake under its lock. :class:`HookReport`
and :class:`~._events.HookStats` are copies taken from both; nobody writes into them.
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np

from ._intake import Intake

__all__ = ["Counters", "HookReport", "HookStats", "LatencyWindow", "report_of", "stats_of"]


@dataclass
class Counters:
    """What the worker has done so far (all acquisitions of the hook's life)."""

    frames_done: int = 0  # the worker finished with them (restored or failed)
    frames_restored: int = 0  # every enabled stage restored them
    frames_failed: int = 0
    frames_unsaved: int = 0  # restored and shown, but a store could not take them
    errors: int = 0
    runs: list[str] = field(default_factory=list)  # output folders
    undone: list[int] = field(default_factory=list)  # arrival numbers left when it gave up
    stalled_stage: str | None = None  # a stage that never returned
    numbers: dict[str, set[int]] = field(default_factory=dict)  # status -> frames (any stage)

    def note(self, status: str, numbers: Iterable[int]) -> None:
        """Frames that ended in ``status`` in some stage."""
        self.numbers.setdefault(str(status), set()).update(numbers)


@dataclass(frozen=True)
class HookReport:
    """What the hook did: a snapshot (final once the hook is closed)."""

    frames_received: int = 0
    frames_done: int = 0  # the worker finished with them (restored or failed)
    frames_restored: int = 0  # every enabled stage restored them
    frames_failed: int = 0
    frames_unsaved: int = 0  # restored and shown, but a store could not take them
    frames_skipped: int = 0  # "latest" policy
    frames_dropped: int = 0  # "all" without a raw store, memory full
    frames_from_raw_store: int = 0
    undone: tuple[int, ...] = ()  # arrival numbers left when it gave up
    stalled_stage: str | None = None  # a stage that never returned
    runs: tuple[str, ...] = ()  # output folders
    errors: int = 0
    disabled_stages: dict[str, str] = field(default_factory=dict)
    peak_held_mb: float = 0.0
    frames_by_status: dict[str, tuple[int, ...]] = field(default_factory=dict)
    """Arrival numbers per status (restored, error, unsaved, skipped, undone, dropped, ...):
    a frame is listed under each status it ended in, in any stage."""

    @property
    def complete(self) -> bool:
        """Whether nothing was left undone."""
        return not self.undone and self.stalled_stage is None


@dataclass(frozen=True)
class HookStats:
    """The live view of the hook's progress: its report, and what only makes sense live."""

    report: HookReport
    frames_pending: int  # waiting, in memory or as raw-store references
    held_mb: float  # memory the intake holds now
    throughput_fps: float  # restored frames per second over the last few seconds
    latency_p50_ms: float
    latency_p99_ms: float
    paused: bool  # the runner is paused now (not merely asked to pause)


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


def report_of(counters: Counters, intake: Intake, disabled: dict[str, str]) -> HookReport:
    """The report now: the worker's counters and the intake's (``disabled``: stage -> why)."""
    c = counters
    # copied first: the worker may add a status while another thread takes a report
    numbers = {status: tuple(sorted(n)) for status, n in list(c.numbers.items())}
    if intake.dropped_numbers:
        numbers["dropped"] = tuple(intake.dropped_numbers)
    return HookReport(
        frames_received=intake.frames_received,
        frames_done=c.frames_done,
        frames_restored=c.frames_restored,
        frames_failed=c.frames_failed,
        frames_unsaved=c.frames_unsaved,
        frames_skipped=intake.frames_skipped,
        frames_dropped=intake.frames_dropped,
        frames_from_raw_store=intake.frames_spilled,
        undone=tuple(c.undone),
        stalled_stage=c.stalled_stage,
        runs=tuple(c.runs),
        errors=c.errors,
        disabled_stages=disabled,
        peak_held_mb=intake.peak_bytes_held / 2**20,
        frames_by_status=numbers,
    )


def stats_of(report: HookReport, intake: Intake, latency: LatencyWindow, paused: bool) -> HookStats:
    """The live statistics now (``events.stats``, the dock)."""
    p50, p99 = latency.percentiles_ms()
    return HookStats(
        report=report,
        frames_pending=intake.frames_waiting,
        held_mb=intake.held_bytes / 2**20,
        throughput_fps=latency.throughput_fps(time.perf_counter()),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        paused=paused,
    )
