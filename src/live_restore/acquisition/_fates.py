"""What became of each frame: counted once every stage has resolved it.

A frame enters when the worker takes it, with the stages that still owe it an outcome. Each
stage resolves it when the group holding it is recorded (a SIM set may resolve its frames
batches later). When no stage owes it anything, it is counted once: restored (on disk, or
shown without an output folder, in every stage), unsaved (restored but a store failed), or
failed. Frames still owed when the hook gives up are what it names as undone.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field

from live_restore.frames import FrameIndex, FrameStatus

from ._counters import Counters

__all__ = ["FrameFates"]

_FAILED = {
    FrameStatus.ERROR,
    FrameStatus.DISABLED,
    FrameStatus.INCOMPLETE_GROUP,
    FrameStatus.REFUSED,
}


@dataclass
class _Fate:
    index: FrameIndex
    owed_by: list[str]  # stages that have not resolved the frame, in stage order
    outcomes: set[FrameStatus] = field(default_factory=set)


class FrameFates:
    """Frames the worker has taken and not yet counted (worker thread, under its lock)."""

    def __init__(self, counters: Counters) -> None:
        self._counters = counters
        self._open: dict[int, _Fate] = {}

    def enter(self, number: int, index: FrameIndex, stages: list[str]) -> None:
        """The worker took frame ``number``; each of ``stages`` owes it an outcome."""
        self._open[number] = _Fate(dict(index), list(stages))

    def resolve(self, stage: str, numbers: Iterable[int], status: FrameStatus) -> None:
        """``stage`` is done with these frames; count each one no stage owes anything now."""
        for number in numbers:
            fate = self._open.get(number)
            if fate is None or stage not in fate.owed_by:
                continue
            fate.owed_by.remove(stage)
            fate.outcomes.add(FrameStatus(status))
            self._counters.note(status, [number])
            if not fate.owed_by:
                del self._open[number]
                self._count(fate)

    def forget(self, numbers: Iterable[int]) -> None:
        """Frames handed back to the intake: they enter again when taken again."""
        for number in numbers:
            self._open.pop(number, None)

    def owed(self) -> list[tuple[int, FrameIndex, list[str]]]:
        """(number, index, stages that owe it) of every frame not counted yet, oldest first."""
        return [(n, f.index, list(f.owed_by)) for n, f in sorted(self._open.items())]

    def _count(self, fate: _Fate) -> None:
        c = self._counters
        c.frames_done += 1
        if fate.outcomes & _FAILED:
            c.frames_failed += 1
        elif FrameStatus.UNSAVED in fate.outcomes:
            c.frames_unsaved += 1
        else:
            c.frames_restored += 1
