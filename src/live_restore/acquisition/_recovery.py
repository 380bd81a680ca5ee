"""When things go wrong in the worker: an internal failure, and close() giving up.

Both name every frame they leave behind: a frames.csv row, a ``missing`` entry where a store
lacks its output, an error event, and the report's frame numbers. They act on the worker's
state, kept apart from its normal path.
"""

from __future__ import annotations

import logging
import traceback
from typing import TYPE_CHECKING

from live_restore.frames import FrameStatus, format_index

from ._intake import IntakeFrame
from ._stage import StageOutcome

if TYPE_CHECKING:
    from ._worker import Worker

__all__ = ["LOCK_TIMEOUT_S", "Recovery"]

logger = logging.getLogger("live_restore")

# how long close() waits for the records' lock before it names what is left without them
LOCK_TIMEOUT_S = 10.0


class Recovery:
    """The worker's ways out (see module docstring): it acts on ``worker``'s state."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker

    def internal_error(self, error: BaseException) -> None:
        """Name this batch's frames as failed, hand the rest of the batch back, and go on."""
        w = self.worker
        trace = traceback.format_exc()
        message = f"internal error, these frames are not restored: {type(error).__name__}: {error}"
        with w.lock:
            w.current_stage = None
            if w.abandoned.is_set():
                return
            try:
                self._name_failed_batch(message, trace)
            except BaseException:  # naming them failed too: the log has both tracebacks
                logger.exception("live-restore could not record an internal error")
            finally:
                w.unhandled, w.batch_entered = [], set()

    def _name_failed_batch(self, message: str, trace: str) -> None:
        w = self.worker
        w.error("hook", None, "internal", message, trace)
        # from the first sequence boundary on, the batch belongs to what comes next: back to
        # the intake, in order, to be handled next time round
        rest = w.unhandled
        boundary = next(
            (i for i, item in enumerate(rest) if not isinstance(item, IntakeFrame)), None
        )
        later = rest[boundary:] if boundary is not None else []
        w.intake.put_back(later)
        w.in_hand = [f for f in w.in_hand if f not in later]
        batch = {f.number for f in w.in_hand} | w.batch_entered
        names = [s.name for s in w.stages]
        for frame in w.in_hand:
            w.fates.enter(frame.number, frame.index, names)
        w.in_hand = []
        self.end_groups()  # sets holding these frames can never complete now
        for number, index, owed in w.fates.owed():
            if number not in batch:
                continue
            for stage_name in owed:
                if w.run is not None:
                    w.run.row(
                        frame=number,
                        index=format_index(index),
                        stage=stage_name,
                        status=FrameStatus.ERROR,
                        error=message,
                    )
                w.fates.resolve(stage_name, [number], FrameStatus.ERROR)

    def end_groups(self) -> None:
        """Record every stage's unfinished group as incomplete (they can never complete)."""
        w = self.worker
        for stage in w.stages:
            if w.run is not None and stage.name in w.run.refused:
                continue
            leftovers = stage.grouping.finish()
            outcomes = [StageOutcome(g, None, FrameStatus.INCOMPLETE_GROUP) for g in leftovers]
            w.outcomes.record(w.run, stage, outcomes, {})

    def abandon(self, reason: str) -> None:
        """Stop: close() gives up. Every frame not finished is recorded as undone.

        Each gets a frames.csv row (status ``undone``) for every stage that still owed it an
        outcome, a ``missing`` entry in those stages' stores and one error event naming the
        stage that never returned; then the run's records are closed. The thread, if it ever
        comes back, writes nothing more. If the records' lock cannot be had (a write that never
        returns), the frames are still counted and named in events and the log.
        """
        w = self.worker
        locked = w.lock.acquire(timeout=LOCK_TIMEOUT_S)
        try:
            w.abandoned.set()
            stalled = w.current_stage
            w.counters.stalled_stage = stalled
            why = f"stage {stalled!r} never returned; {reason}" if stalled else reason
            if not locked:
                why += "; the records could not be completed (a write never returned)"
            names = [s.name for s in w.stages]
            owed = w.fates.owed()
            entered = {number for number, _index, _owed in owed}
            taken = [f for f in w.in_hand if f.number not in entered]
            taken += [i for i in w.intake.drop_all() if isinstance(i, IntakeFrame)]
            owed += [(f.number, f.index, list(names)) for f in taken]
            if locked and w.run is not None:
                w.run.stalled = stalled  # its restorer is not asked for anything any more
                for stage in w.stages:
                    frames = [(n, index) for n, index, by in owed if stage.name in by]
                    w.run.undone(stage, frames, why)
            w.fates.forget(number for number, _index, _owed in owed)
            undone = [number for number, _index, _owed in owed]
            w.counters.note(FrameStatus.UNDONE, undone)
            w.counters.undone.extend(undone)
            for number in undone:
                w.error(stalled or "hook", number, "undone", f"not restored: {why}")
            if locked:
                w.finish_run(canceled=False, reason="closed before restoration finished")
        finally:
            if locked:
                w.lock.release()
        logger.warning("RestoreHook closed with %d frames not restored (%s)", len(undone), why)
