"""The hook's counts: one :class:`Counters`, written by the worker; reports are its snapshots.

Only the worker thread writes :class:`Counters` (and ``close()``, once it has given up on a
worker that never returned). What the acquisition side counts (frames received, skipped,
dropped, spilled to the raw store) lives in the intake under its lock. :class:`HookReport`
and :class:`~._events.HookStats` are copies taken from both; nobody writes into them.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

__all__ = ["Counters", "HookReport"]


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
