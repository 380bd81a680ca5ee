"""When things go wrong in the worker: an internal failure, and close() giving up.

Both name every frame they leave behind: a frames.csv row, a ``missing`` entry where a store
lacks its output, an error event, and the report's frame numbers. They are the worker's
methods (a mixin), kept apart from the normal path.
"""

from __future__ import annotations

import logging
import threading
import traceback
from typing import TYPE_CHECKING, Any

from live_restore.frames import FrameStatus, format_index

from ._intake import IntakeFrame
from ._stage import StageOutcome

if TYPE_CHECKING:
    from ._counters import Counters
    from ._fates import FrameFates
    from ._intake import Intake, IntakeItem
    from ._record import RunRecord
    from ._stage import StageRunner

__all__ = ["LOCK_TIMEOUT_S", "Recovery"]

logger = logging.getLogger("live_restore")

# how long close() waits for the records' lock before it names what is left without them
LOCK_TIMEOUT_S = 10.0


class Recovery:
    """The worker's ways out (see module docstring); :class:`~._worker.Worker` has the state."""

    stages: list[StageRunner]
    intake: Intake
    counters: Counters
    fates: FrameFates
    lock: threading.RLock
    abandoned: threading.Event
    run: RunRecord | None
    current_stage: str | None
    in_hand: list[IntakeFrame]
    _unhandled: list[IntakeItem]
    _batch_entered: set[int]

    def error(
        self, stage: str, frame: int | None, kind: str, message: str, trace: str = ""
    ) -> None:
        """Report a failure (the worker's)."""
        raise NotImplementedError

    def finish_run(self, canceled: bool, reason: str) -> None:
        """Close the current run's records (the worker's)."""
        raise NotImplementedError

    def _record(
        self, stage: StageRunner, outcomes: list[StageOutcome], frames: dict[int, Any]
    ) -> None:
        raise NotImplementedError

    def _internal_error(self, error: BaseException) -> None:
        """Name this batch's frames as failed, hand the rest of the batch back, and go on."""
        trace = traceback.format_exc()
        message = f"internal error, these frames are not restored: {type(error).__name__}: {error}"
        with self.lock:
            self.current_stage = None
            if self.abandoned.is_set():
                return
            try:
                self._name_failed_batch(message, trace)
            except BaseException:  # naming them failed too: the log has both tracebacks
                logger.exception("live-restore could not record an internal error")
            finally:
                self._unhandled, self._batch_entered = [], set()

    def _name_failed_batch(self, message: str, trace: str) -> None:
        self.error("hook", None, "internal", message, trace)
        # from the first sequence boundary on, the batch belongs to what comes next: back to
        # the intake, in order, to be handled next time round
        rest = self._unhandled
        boundary = next(
            (i for i, item in enumerate(rest) if not isinstance(item, IntakeFrame)), None
        )
        later = rest[boundary:] if boundary is not None else []
        self.intake.put_back(later)
        self.in_hand = [f for f in self.in_hand if f not in later]
        batch = {f.number for f in self.in_hand} | self._batch_entered
        names = [s.name for s in self.stages]
        for frame in self.in_hand:
            self.fates.enter(frame.number, frame.index, names)
        self.in_hand = []
        self._end_groups()  # sets holding these frames can never complete now
        for number, index, owed in self.fates.owed():
            if number not in batch:
                continue
            for stage_name in owed:
                if self.run is not None:
                    self.run.row(
                        frame=number,
                        index=format_index(index),
                        stage=stage_name,
                        status=FrameStatus.ERROR,
                        error=message,
                    )
                self.fates.resolve(stage_name, [number], FrameStatus.ERROR)

    def _end_groups(self) -> None:
        """Record every stage's unfinished group as incomplete (they can never complete)."""
        for stage in self.stages:
            if self.run is not None and stage.name in self.run.refused:
                continue
            leftovers = stage.grouping.finish()
            outcomes = [StageOutcome(g, None, FrameStatus.INCOMPLETE_GROUP) for g in leftovers]
            self._record(stage, outcomes, {})

    def abandon(self, reason: str) -> None:
        """Stop: close() gives up. Every frame not finished is recorded as undone.

        Each gets a frames.csv row (status ``undone``) for every stage that still owed it an
        outcome, a ``missing`` entry in those stages' stores and one error event naming the
        stage that never returned; then the run's records are closed. The thread, if it ever
        comes back, writes nothing more. If the records' lock cannot be had (a write that never
        returns), the frames are still counted and named in events and the log.
        """
        locked = self.lock.acquire(timeout=LOCK_TIMEOUT_S)
        try:
            self.abandoned.set()
            stalled = self.current_stage
            self.counters.stalled_stage = stalled
            why = f"stage {stalled!r} never returned; {reason}" if stalled else reason
            if not locked:
                why += "; the records could not be completed (a write never returned)"
            names = [s.name for s in self.stages]
            owed = self.fates.owed()
            entered = {number for number, _index, _owed in owed}
            taken = [f for f in self.in_hand if f.number not in entered]
            taken += [i for i in self.intake.drop_all() if isinstance(i, IntakeFrame)]
            owed += [(f.number, f.index, list(names)) for f in taken]
            if locked and self.run is not None:
                self.run.stalled = stalled  # its restorer is not asked for anything any more
                for stage in self.stages:
                    frames = [(n, index) for n, index, by in owed if stage.name in by]
                    self.run.undone(stage, frames, why)
            self.fates.forget(number for number, _index, _owed in owed)
            undone = [number for number, _index, _owed in owed]
            self.counters.note(FrameStatus.UNDONE, undone)
            self.counters.undone.extend(undone)
            for number in undone:
                self.error(stalled or "hook", number, "undone", f"not restored: {why}")
            if locked:
                self.finish_run(canceled=False, reason="closed before restoration finished")
        finally:
            if locked:
                self.lock.release()
        logger.warning("RestoreHook closed with %d frames not restored (%s)", len(undone), why)
