"""The worker: one thread that takes frames from the intake and runs the stages on them.

It owns the stages, the run record, the :class:`~._counters.Counters` and the frames' fates.
Per batch it reads back frames the intake did not hold (catch-up from the raw store), scores
focus, groups and restores per stage, records every outcome (stores, frames.csv, run.log,
error events) and publishes the newest results to the display. Stages receive read-only
frames: the camera's buffer, which pymmcore-plus's raw writer may still be writing, is never
theirs to change. Records are written under ``lock``; stages run outside it, so ``close()``
can always take over from a stage that never returns.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from live_restore.focus import FocusHold, FocusMonitor
from live_restore.frames import FrameGroup, FrameStatus, read_only

from ._counters import Counters, HookReport, HookStats, report_of, stats_of
from ._display import Display
from ._events import HookEvents, RawFrame, StageError
from ._fates import FrameFates
from ._focus_watch import FocusWatch
from ._intake import Intake, IntakeFrame, IntakeItem, SequenceEnd, SequenceStart, SkippedRun
from ._live import LiveGroups, LivePoller
from ._outcomes import Outcomes
from ._raw_reader import NoRawStore, RawReader
from ._record import RunRecord
from ._recovery import Recovery
from ._sinks import known_sequence
from ._stage import StageOutcome, StageRunner

if TYPE_CHECKING:
    from ._adaptation import StageAdaptation

__all__ = ["Worker"]

logger = logging.getLogger("live_restore")

# a frame taken, the image to restore, and where the image came from (memory | raw-store)
_Taken = tuple[IntakeFrame, np.ndarray, str]


class Worker:
    """The hook's worker thread and everything only it touches (see module docstring)."""

    def __init__(
        self,
        stages: list[StageRunner],
        intake: Intake,
        events: HookEvents,
        run_folder: Callable[[int], Path | None],
        max_batch: int,
        stats_interval_s: float,
        focus: FocusMonitor | None,
        hold: FocusHold | None,
        live: LivePoller | None,
        live_refused: dict[str, str] | None = None,
        adaptation: StageAdaptation | None = None,
    ) -> None:
        self.stages = stages
        self.intake = intake
        self.display = Display(events)
        self.counters = Counters()
        self.fates = FrameFates(self.counters)
        self.focus = focus
        self.hold = hold
        self._run_folder = run_folder
        self._max_batch = max_batch
        self._stats_interval_s = stats_interval_s
        self._live = live
        # live mode: stages whose groups cannot form from one stream (refused at build)
        self.live_refused = dict(live_refused or {})
        self._live_groups = LiveGroups({s.name: s.grouping for s in stages})
        self.adaptation = adaptation  # HookConfig.adapt: one stage learning from the frames
        self._thread: threading.Thread | None = None
        self.closing = threading.Event()  # finish what is queued, then stop
        self.abandoned = threading.Event()  # stop now; close() took over the records
        self.lock = threading.RLock()  # the records: the worker's writes vs close() giving up
        self.paused: Callable[[], bool] = lambda: False  # set by the hook: is the MDA paused
        self.acquisitions_ended = 0  # set by the hook's acquisition side as each one ends
        self.run: RunRecord | None = None
        self.current_stage: str | None = None  # the stage being called, while it runs
        self.in_hand: list[IntakeFrame] = []  # taken, not yet entered (raw read-back)
        self.unhandled: list[IntakeItem] = []  # the rest of the batch being handled
        self.batch_entered: set[int] = set()  # frames of that batch entered so far
        self.progress = 0  # counts finished stage calls and taken items: close() watches it
        self.slowest_frame_s = 0.0  # the slowest stage call so far, per group it restored
        self.call_size = 0  # groups in the stage call running now
        self._dropped_reported = 0
        self._raw = RawReader()
        self.outcomes = Outcomes(self.display, self.fates, self.lock, self.abandoned, self.error)
        self.recovery = Recovery(self)
        self.focus_watch = (
            FocusWatch(focus, hold, self.display, self.lock, self.error) if focus else None
        )

    # -- the thread -------------------------------------------------------------------------

    def start(self) -> None:
        """Start the thread."""
        self._thread = threading.Thread(target=self._loop, name="live-restore-worker", daemon=True)
        self._thread.start()

    def join(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the thread to end; whether it has."""
        if self._thread is None:
            return True
        self._thread.join(timeout_s)
        return not self._thread.is_alive()

    def _loop(self) -> None:
        next_stats = time.perf_counter() + self._stats_interval_s
        while not self.abandoned.is_set():
            self.unhandled, self.batch_entered = [], set()
            try:
                with self.lock:  # taken and in hand at once: abandon() sees one or the other
                    items = self.intake.take(self._max_batch, timeout_s=0.0)
                    self.in_hand = [i for i in items if isinstance(i, IntakeFrame)]
                if items:
                    self.progress += 1
                    self._handle(items)
                elif self._live is not None and (live := self._live.take()) is not None:
                    self._restore_live(*live)
                elif self.closing.is_set():
                    break
                else:
                    self._poll_adaptation()  # its verdict is read while frames are awaited too
                    self.intake.wait(timeout_s=0.05)
                if time.perf_counter() >= next_stats:
                    next_stats = time.perf_counter() + self._stats_interval_s
                    self._emit_stats()
            except BaseException as e:  # our own bug or a broken disk: name the frames, go on
                self.recovery.internal_error(e)
        if not self.abandoned.is_set():
            self._emit_stats()

    # -- counts and events ------------------------------------------------------------------

    def report(self) -> HookReport:
        """A snapshot of the counts."""
        disabled = {s.name: s.disabled_reason for s in self.stages if s.disabled_reason}
        return report_of(self.counters, self.intake, disabled)

    def stats(self) -> HookStats:
        """A snapshot of progress (also emitted as ``events.stats``)."""
        return stats_of(self.report(), self.intake, self.display.latency, self.paused())

    def error(
        self, stage: str, frame: int | None, kind: str, message: str, trace: str = ""
    ) -> None:
        """Count, log (and write to the run's run.log, traceback included) and emit a failure."""
        self.counters.errors += 1
        where = f" on frame {frame}" if frame is not None else ""
        logger.warning("%s%s: %s: %s", stage, where, kind, message)
        if self.run is not None:
            self.run.log(f"{stage}{where}: {kind}: {message}", trace)
        self.display.emit("error", StageError(stage, frame, kind, message))

    def _emit_stats(self) -> None:
        dropped = self.intake.frames_dropped
        if dropped > self._dropped_reported:
            self.error(
                "hook",
                None,
                "no-raw-store",
                f"{dropped - self._dropped_reported} frames could not be held (memory bound "
                "reached) nor read back (the MDA writes no raw store): run the MDA with "
                "output=... so that policy 'all' can catch up",
            )
            self._dropped_reported = dropped
        self.display.emit("stats", self.stats())

    # -- taking items -----------------------------------------------------------------------

    def _handle(self, items: list[IntakeItem]) -> None:
        self.batch_entered = set()
        frames: list[_Taken] = []
        for position, item in enumerate(items):
            self.unhandled = items[position + 1 :]
            if self.abandoned.is_set():
                return
            if isinstance(item, IntakeFrame):
                image, source = item.image, "memory"
                if image is None:
                    try:
                        image, source = self._read_raw(item), "raw-store"
                    except NoRawStore:
                        with self.lock:
                            self.intake.note_dropped(item.number)
                            self.in_hand = [f for f in self.in_hand if f is not item]
                        continue
                    if image is None:  # not written yet: try again shortly
                        self.unhandled = items[position:]
                        self._restore(frames)
                        with self.lock:
                            rest, self.unhandled = items[position:], []
                            self.in_hand = [f for f in self.in_hand if f not in rest]
                            self.intake.put_back(rest)
                        time.sleep(0.01)
                        return
                # stages get a view they cannot write through: the raw writer may still hold
                # this very buffer, and the display shows what the camera delivered
                frames.append((item, read_only(image), source))
                continue
            self.unhandled = items[position:]  # this marker too, until its frames are done
            self._restore(frames)
            frames = []
            self.unhandled = items[position + 1 :]
            if isinstance(item, SequenceStart):
                self._begin_run(item)
            elif isinstance(item, SequenceEnd):
                self._end_run(item)
            elif isinstance(item, SkippedRun):
                self._record_skipped(item)
        self._restore(frames)
        self.unhandled = []

    def _read_raw(self, frame: IntakeFrame) -> np.ndarray | None:
        run = self.run
        if run is None or run.raw_view is None:  # the intake does not spill without a store
            raise NoRawStore
        return self._raw.read(run.raw_view, frame, run.number > self.acquisitions_ended)

    # -- runs -------------------------------------------------------------------------------

    def _begin_run(self, start: SequenceStart) -> None:
        with self.lock:
            if self.abandoned.is_set():
                return
            if self.run is not None:
                self.recovery.end_groups()
                self.finish_run(canceled=False, reason="a new acquisition started")
            number = len(self.counters.runs) + 1
            folder = self._run_folder(number)
            self.display.store_views = {}
            self.run = run = RunRecord(
                number,
                folder,
                start.sequence,
                start.meta,
                start.raw_view,
                start.started_s,
                self.intake.policy,
                self.error,
            )
            self.counters.runs.append(str(folder) if folder else "")
            run.adapted_at_start = {s.name for s in self.stages if s.weights == "adapted"}
            if self.focus is not None:
                self.focus.begin(start.sequence)
            known = known_sequence(start.sequence)  # not a list or generator of events
            if self.adaptation is not None:
                note = self.adaptation.new_run(start.sequence if known else None)
                if note:
                    self.error(self.adaptation.stage.name, None, "adapt", note)
            for stage in self.stages:
                problem = stage.grouping.sequence_problem(start.sequence) if known else None
                if problem:
                    # refused up front: restoring would only report every set as incomplete
                    run.refused[stage.name] = problem
                    self.error(
                        stage.name,
                        None,
                        "bad-sequence",
                        f"{problem}; this stage restores nothing in this acquisition (raw "
                        "frames are saved as always)",
                    )
            run.open([s.name for s in self.stages])

    def _end_run(self, end: SequenceEnd) -> None:
        self._finish_groups()
        with self.lock:
            if self.run is None or self.abandoned.is_set():
                return
            reason = end.reason or ("canceled" if end.canceled else "completed")
            self.finish_run(end.canceled, reason)

    def _finish_groups(self) -> None:
        """The run ended: restore each grouping's complete leftovers, report the rest.

        Complete: a centred window's last outputs (padded); incomplete: a SIM set cut short.
        """
        for stage in self.stages:
            if self.run is None or stage.name in self.run.refused:
                continue
            leftovers = stage.grouping.finish()
            complete = [g for g in leftovers if g.complete]
            if complete and not self._run_groups(stage, complete, {}):
                return
            cut = [StageOutcome(g, None, FrameStatus.INCOMPLETE_GROUP) for g in leftovers]
            self.outcomes.record(self.run, stage, [o for o in cut if not o.group.complete], {})

    def finish_run(self, canceled: bool, reason: str) -> None:
        """Close the current run's records (stores, table, summary.json)."""
        self._poll_adaptation()  # a failure it reports still has this run's run.log
        run, self.run = self.run, None
        if run is None:
            return
        summary: dict[str, Any] = {
            "finished": reason,
            "canceled": canceled,
            "frames_received": run.frames,
        }
        if self.focus is not None:
            summary["focus"] = self.focus.summary()
            if self.hold is not None:
                summary["focus"]["hold"] = self.hold.summary()
        if self.outcomes.light is not None:
            summary["light"] = self.outcomes.light.summary()
        if self.adaptation is not None:
            summary["adapt"] = self.adaptation.summary(run.number)
        run.finish(self.stages, summary, asdict(self.report()))

    # -- restoring --------------------------------------------------------------------------

    def _restore(self, frames: list[_Taken]) -> None:
        if not frames:
            return
        if self.run is None:  # frames without a start marker cannot happen; be safe
            self._begin_run(SequenceStart(None, {}, None, time.perf_counter()))
        run = self.run
        if run is None:  # abandoned meanwhile
            return
        with self.lock:
            if self.abandoned.is_set():
                return
            run.frames += len(frames)
            run.raw_shape = frames[0][1].shape
            names = [s.name for s in self.stages]
            for f, _image, _source in frames:
                self.fates.enter(f.number, f.index, names)
            entered = {f.number for f, _image, _source in frames}
            self.batch_entered |= entered
            self.in_hand = [f for f in self.in_hand if f.number not in entered]
            self.current_stage = "focus"  # the estimator can hang as well as a stage
        if self.focus_watch is not None:
            self.focus_watch.batch(frames, run)
        by_number = {f.number: (f, image, source) for f, image, source in frames}
        swap_at = None
        if (adapting := self.adaptation) is not None:
            self._poll_adaptation()
            swap_at = adapting.swap_point([(f.number, f.index) for f, _image, _source in frames])
        for stage in self.stages:
            with self.lock:
                self.current_stage = None
                if self.abandoned.is_set():
                    return
                if stage.name in run.refused:
                    run.refused_rows(stage, [(f.number, f.index, s) for f, _i, s in frames])
                    self.fates.resolve(stage.name, by_number, FrameStatus.REFUSED)
                    continue
            groups: list[FrameGroup] = []
            before_swap = 0  # the groups completed by frames before the boundary
            for f, image, _source in frames:
                groups += stage.grouping.add(f.number, f.index, image)
                if swap_at is not None and f.number < swap_at:
                    before_swap = len(groups)
            if swap_at is not None and adapting is not None and stage is adapting.stage:
                # a group is the parent's when a frame before the boundary completed it, and
                # the adapted weights' when the boundary frame or a later one did: the same
                # split whichever batches the frames came in
                if not self._run_groups(stage, groups[:before_swap], by_number):
                    return
                if not self._swap(adapting, run.number, by_number[swap_at][0]):
                    return
                groups = groups[before_swap:]
            if groups and not self._run_groups(stage, groups, by_number):
                return
        newest, image, _source = frames[-1]
        self.display.latest_raw = RawFrame(newest.number, newest.index, image, newest.received_s)
        if adapting is not None and adapting.stage.name not in run.refused:
            if not self.abandoned.is_set():
                adapting.collect(run.number, [(f.number, f.index, i) for f, i, _s in frames])

    def _poll_adaptation(self) -> None:
        adapting = self.adaptation
        if adapting is not None and (failed := adapting.poll()) is not None:
            self.error(adapting.stage.name, None, "adapt", failed)

    def _swap(self, adapting: StageAdaptation, run: int | str, frame: IntakeFrame | None) -> bool:
        """Load the adapted weights into their stage (close() sees it as that stage's call)."""
        with self.lock:
            if self.abandoned.is_set():
                return False
            self.current_stage = f"{adapting.stage.name} (loading its adapted weights)"
            self.call_size = 1
        number, index = (frame.number, frame.index) if frame is not None else (-1, {})
        failed = adapting.swap(run, number, index)
        with self.lock:
            self.current_stage = None
            self.progress += 1
            if self.abandoned.is_set():
                return False
        if failed is not None:
            self.error(adapting.stage.name, None, "adapt", failed)
        return True

    def _run_groups(
        self, stage: StageRunner, groups: list[FrameGroup], by_number: dict[int, Any]
    ) -> bool:
        """Restore and record ``groups``; False if close() gave up meanwhile."""
        # a stage that cannot batch is called a group at a time, so each output is saved
        # as soon as it exists (and a call that hangs costs its own frame, not the ones
        # restored before it in the same hand-over)
        size = len(groups) if stage.restorer.max_batch > 1 else 1
        for start in range(0, len(groups), max(1, size)):
            outcomes = self._call(stage, groups[start : start + size])
            if outcomes is None:
                return False
            self.outcomes.record(self.run, stage, outcomes, by_number)
            adapting, run = self.adaptation, self.run
            if adapting is not None and run is not None and stage is adapting.stage:
                for outcome in outcomes:  # its row is the newest frame's
                    if outcome.weights == "adapted" and outcome.status is FrameStatus.RESTORED:
                        adapting.restored_adapted(run.number, outcome.group.numbers[-1])
        return True

    def _call(self, stage: StageRunner, groups: list[FrameGroup]) -> list[StageOutcome] | None:
        """Run ``stage`` on ``groups``; None if close() gave up meanwhile.

        The call is made outside the lock: it may never return, and close() must still be able
        to take over the records.
        """
        with self.lock:
            if self.abandoned.is_set():
                return None
            self.current_stage, self.call_size = stage.name, len(groups)
        started_s = time.perf_counter()
        outcomes = stage.run(groups)
        with self.lock:
            self.current_stage = None
            if self.abandoned.is_set():
                return None
            per_group_s = (time.perf_counter() - started_s) / max(1, len(groups))
            self.slowest_frame_s = max(self.slowest_frame_s, per_group_s)
            self.progress += 1
        return outcomes

    def _record_skipped(self, skipped: SkippedRun) -> None:
        with self.lock:
            if self.run is not None:
                self.run.skipped_rows(self.stages, skipped)
            numbers = range(skipped.first, skipped.first + skipped.count)
            self.counters.note(FrameStatus.SKIPPED, numbers)

    def abandon(self, reason: str) -> None:
        """close() gives up: every frame not finished is recorded as undone (see Recovery)."""
        self.recovery.abandon(reason)

    # -- live mode ----------------------------------------------------------------

    def _restore_live(self, image: np.ndarray, received_s: float, session: int) -> None:
        """One live frame through the same stages and groupings as an MDA's, display only."""
        image = read_only(image)
        if self._live_groups.begin(session):  # refused stages are named once per session
            for name, why in self.live_refused.items():
                message = f"not restored in live mode: {why}"
                self.display.emit("error", StageError(name, None, "live-refused", message))
        number = self._live_groups.next_number()
        with self.lock:
            self.current_stage = "focus"
        if self.focus_watch is not None:
            self.focus_watch.watch(image, -1, {}, None, None, live=True)
        with self.lock:
            self.current_stage = None
        if (adapting := self.adaptation) is not None:
            self._poll_adaptation()
            # a live frame is a time point of its own
            if adapting.state == "ready" and not self._swap(adapting, "live", None):
                return
        for stage in self.stages:
            if stage.disabled or stage.name in self.live_refused:
                continue
            for group in self._live_groups.add(stage.name, number, image):
                outcomes = self._call(stage, [group])
                if outcomes is None:
                    return
                outcome = outcomes[0]
                if outcome.restored is None:
                    self.error(stage.name, None, outcome.kind or "live", outcome.message)
                    continue
                latency_ms = (time.perf_counter() - received_s) * 1000
                self.display.publish(
                    stage.name, group, image, outcome.restored, latency_ms, True, stage.kind
                )
        self.display.latest_raw = RawFrame(-1, {}, image, received_s, live=True)
