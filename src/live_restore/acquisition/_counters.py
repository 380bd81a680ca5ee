"""The hook's counts: one :class:`Counters`, written by the worker; reports are its snapshots.

Only the worker thread writes :class:`Counters` (and ``close()``, once it has given up on a
worker that never returned). What the acquisition side counts (frames received, skipped,
dropped, spilled to the raw store) lives in the intake under its lock. :class:`HookReport`
and :class:`~._events.HookStats` are copies taken from both; nobody writes into them.
"""

from __future__ import annotations

import time
from collections.abc import Iterable
from dataclasses import dataclass, field

from ._events import HookStats, LatencyWindow
from ._intake import Intake

__all__ = ["Counters", "HookReport", "report_of", "stats_of"]


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


def report_of(counters: Counters, intake: Intake, disabled: dict[str, str]) -> HookReport:
    """The report now: the worker's counters and the intake's (``disabled``: stage -> why)."""
    c = counters
    numbers = {status: tuple(sorted(n)) for status, n in c.numbers.items()}
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
        frames_received=report.frames_received,
        frames_done=report.frames_done,
        frames_restored=report.frames_restored,
        frames_skipped=report.frames_skipped,
        frames_pending=intake.frames_waiting,
        frames_from_raw_store=report.frames_from_raw_store,
        frames_failed=report.frames_failed,
        frames_dropped=report.frames_dropped,
        held_mb=intake.held_bytes / 2**20,
        peak_held_mb=report.peak_held_mb,
        throughput_fps=latency.throughput_fps(time.perf_counter()),
        latency_p50_ms=p50,
        latency_p99_ms=p99,
        paused=paused,
        disabled_stages=tuple(report.disabled_stages),
    )
