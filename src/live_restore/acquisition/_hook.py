"""RestoreHook: every frame of an MDA (and of live mode) restored off the acquisition thread.

The hook is the lifecycle and the acquisition side. Its slots run on whichever thread
pymmcore-plus delivers signals on (the MDA thread with psygnal, the Qt main thread with Qt)
and do O(1) work: wrap the frame, hand it to the :class:`~._intake.Intake`. The
:class:`~._worker.Worker` thread does everything else and writes the
:class:`~._record.RunRecord`. Raw frames are pymmcore-plus's business (its own OME-Zarr sink);
the worker only reads them back when it fell behind past its memory bound.

Per acquisition the hook writes, under ``output`` (``output/run-N`` from the second one on):
``<stage>.ome.zarr`` per stage, ``frames.csv`` (one row per frame and stage) and
``summary.json``. ``hook.run(sequence)`` also puts the raw store there as ``raw.ome.zarr``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import useq

from live_restore.devices import core_problem
from live_restore.focus import DefocusReading, FocusHold, FocusMonitor
from live_restore.frames import Executor, Restorer, index_key

from ._build import HookParts, build_parts, parts_from_keywords
from ._config import HookConfig
from ._counters import HookReport, HookStats
from ._events import HookEvents, RawFrame, RestoredFrame
from ._intake import Intake, IntakeFrame, SequenceEnd, SequenceStart
from ._live import LivePoller
from ._stage import StageRunner
from ._worker import Worker

__all__ = ["RestoreHook", "build_hook"]

logger = logging.getLogger("live_restore")


class RestoreHook:
    """Restore every frame of the core's acquisitions while they run.

    Two ways to make one:

    - ``RestoreHook(core, config)`` with a :class:`HookConfig`: the stages (by name), focus
      monitor and hold are loaded from it (``build_hook(core, config)`` is the same).
    - ``RestoreHook(core, restorers, output=..., policy=..., focus=..., hold=...)``: stages
      you made yourself; the keywords are :class:`HookConfig`'s fields (see there), plus
      ``focus`` (a :class:`~live_restore.focus.FocusMonitor` or a bare estimator such as
      ``load_model("focus-est")``), ``hold`` (a :class:`~live_restore.focus.FocusHold`; needs
      ``focus``) and ``executor``.

    Every frame the worker takes is scored for focus before the stages run (so focus hold hears
    of drift even when restoration is slow; a monitor with ``every_nth_when_behind`` > 1 scores
    only every Nth of a series, and its newest, in a catch-up batch); readings are emitted as
    ``events.defocus``, kept in :meth:`latest_defocus` and written to frames.csv (stage
    ``focus``) and summary.json.
    Focus failures are reported as errors of stage ``focus`` and never stop restoration.
    """

    def __init__(
        self,
        core: Any,
        models: HookConfig | Restorer | Sequence[Restorer] = (),
        *,
        focus: FocusMonitor | Callable[[np.ndarray], Any] | None = None,
        hold: FocusHold | None = None,
        executor: Executor | None = None,
        **options: Any,
    ) -> None:
        if (problem := core_problem(core)) is not None:
            raise ValueError(problem)
        if isinstance(models, HookConfig):
            if options or focus is not None or hold is not None or executor is not None:
                raise TypeError("give either a HookConfig or keyword options, not both")
            config, parts = models, build_parts(core, models)
        else:
            config, parts = parts_from_keywords(models, focus, hold, executor, options)
        try:
            self._set_up(core, config, parts)
        except BaseException:
            parts.executor.close()  # a worker process must not outlive a hook that failed
            raise

    def _set_up(self, core: Any, config: HookConfig, parts: HookParts) -> None:
        self.config = config
        self.core = core
        self.output = config.output
        self.policy = config.policy
        self.drain_timeout_s = config.drain_timeout_s
        self.progress = config.progress
        self.events = HookEvents()
        runners = [
            StageRunner(s, config.max_consecutive_failures, parts.executor, config.server_grace_s)
            for s in parts.stages
        ]
        names = [s.name for s in runners]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        self.focus = parts.focus
        self.hold = parts.hold
        self.light = parts.light
        self._executor = parts.executor
        self._executor_closed = False
        self._intake = Intake(config.policy, int(config.memory_mb * 2**20))
        self._live = LivePoller(core) if config.live else None
        live_refused = {}
        if config.live:
            for runner in runners:
                if (why := runner.grouping.live_problem()) is not None:
                    live_refused[runner.name] = why
        if live_refused:  # refused here, once, in one line: never skipped silently
            logger.warning(
                "live mode will not run %s (MDA acquisitions restore it as always)",
                "; ".join(f"{name}: {why}" for name, why in live_refused.items()),
            )
        adaptation = None
        if parts.adapt is not None and self.output is not None:
            from ._adaptation import StageAdaptation

            runner = runners[parts.adapt.slot]
            folder = self.output / f"adapt-{runner.name}"
            for attempt in range(2, 1000):  # a second hook on the same output keeps the first's
                if not folder.exists():
                    break
                folder = self.output / f"adapt-{runner.name}-{attempt}"
            adaptation = StageAdaptation(
                config.adapt,  # type: ignore[arg-type]  # parts.adapt comes from it
                runner,
                parts.adapt.model,
                parts.adapt.axis,
                parts.adapt.least,
                folder,
                parts.adapt.build,
                parts.adapt.prebuild,
            )
        self.adaptation = adaptation
        self._worker = Worker(
            runners,
            self._intake,
            self.events,
            self._run_folder,
            config.max_batch,
            config.stats_interval_s,
            self.focus,
            self.hold,
            self._live,
            live_refused,
            adaptation,
        )
        # the runner's own state: a pause it has not honoured yet (mid-event, or a whole
        # hardware-sequenced burst) is not shown as paused, and a cancel clears it
        self._worker.paused = lambda: bool(core.mda.is_paused())
        self._worker.outcomes.light = self.light
        self._connections: list[tuple[Any, Callable[..., Any]]] = []
        self._open = False
        # acquisition-side state: touched only by the thread that delivers the MDA signals
        self._runs_started = 0
        self._acquiring = False
        self._canceled = False
        self._next_number = 0

    # -- lifecycle --------------------------------------------------------------------------

    def __enter__(self) -> RestoreHook:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect to the core's signals and start the worker."""
        if self._open:
            raise RuntimeError("this RestoreHook is already open")
        if self._worker.closing.is_set():
            raise RuntimeError("this RestoreHook was closed; make a new one to restore again")
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
        if self.hold is not None:  # first: it can refuse (an MDA running, a user's engine)
            self.hold.attach(self.core)
        if self.light is not None:  # after the hold: it rides on the hold's engine
            try:
                self.light.attach(self.core)
            except BaseException:
                if self.hold is not None:
                    self.hold.detach()
                raise
        mda = self.core.mda.events
        self._connect(mda.sequenceStarted, self._on_sequence_started)
        self._connect(mda.frameReady, self._on_frame)
        self._connect(mda.sequenceCanceled, self._on_sequence_canceled)
        self._connect(mda.sequenceFinished, self._on_sequence_finished)
        self._connect(mda.sequencePauseToggled, self._on_pause_toggled)
        if self._live is not None:
            self._connect(self.core.events.continuousSequenceAcquisitionStarted, self._live_on)
            self._connect(self.core.events.sequenceAcquisitionStopped, self._live_off)
        self._open = True
        self._worker.start()

    def _connect(self, signal: Any, slot: Callable[..., Any]) -> None:
        signal.connect(slot)
        self._connections.append((signal, slot))

    def close(self) -> HookReport:
        """Disconnect, finish pending work (or report what is left), close the stores."""
        for signal, slot in self._connections:
            signal.disconnect(slot)
        self._connections.clear()
        if self._live is not None:
            self._live.stop()
        if self._acquiring:  # closed while an MDA still runs: end our part of it here
            self._acquiring = False
            self._worker.acquisitions_ended = self._runs_started
            ended = SequenceEnd(None, canceled=False, reason="the hook closed during it")
            self._intake.put_marker(ended)
        self._worker.closing.set()
        try:
            if self._open:
                self._drain()  # a Ctrl-C here is re-raised, once the records are written
        finally:
            if self._open:
                self._open = False
                stalled = self._worker.counters.stalled_stage
                for stage in self._worker.stages:
                    # a stage that never returned may hold the very lock its close() needs
                    if stage.name != stalled:
                        self._close_quietly(stage.name, stage.restorer.close)
            # also for a hook never opened (or whose open failed): its worker process goes
            if not self._executor_closed:
                self._executor_closed = True
                self._close_quietly("executor", self._executor.close)
            if self.adaptation is not None:
                self._close_quietly("adapt", self.adaptation.close)
            if self.light is not None:
                self.light.detach()
            if self.hold is not None:
                self.hold.detach()
        return self.report

    def _close_quietly(self, what: str, close: Callable[[], None]) -> None:
        try:
            close()
        except Exception as e:  # one stage's clean-up must not keep the others open
            self._worker.error(what, None, "close", f"{type(e).__name__}: {e}")

    def _stall_window_s(self) -> float:
        """How long the running stage call may go without returning before close() gives up.

        5x what the slowest call so far took per frame, times the frames in this call (a
        catch-up batch of 8 takes 8x one frame), and never under ``stall_timeout_s``; before
        any call has returned (a first call may load and warm a model), 3x that.
        """
        worker, floor_s = self._worker, self.config.stall_timeout_s
        if worker.slowest_frame_s == 0.0:
            return 3 * floor_s
        return max(floor_s, 5 * worker.slowest_frame_s * max(1, worker.call_size))

    def _drain(self) -> None:
        """Wait while the worker makes progress; give up on a stall, a timeout or a Ctrl-C.

        The wait is bounded by the work itself: it ends when a stage call has run for longer
        than :meth:`_stall_window_s` without returning, or after ``drain_timeout_s`` when one
        is set. A Ctrl-C during the wait gives up at once.
        """
        worker = self._worker
        started = last_progress_s = time.monotonic()
        seen = worker.progress
        pending = self._intake.frames_waiting
        bar = None
        if self.progress and pending > 0:
            from rich.progress import Progress

            bar = Progress(transient=False)
            bar.start()
            task = bar.add_task("finishing restoration", total=pending)
        try:
            while not worker.join(0.1):
                if bar is not None:
                    bar.update(task, completed=pending - self._intake.frames_waiting)
                now = time.monotonic()
                if worker.progress != seen:
                    seen, last_progress_s = worker.progress, now
                stall_s = self._stall_window_s()
                if now - last_progress_s > stall_s:
                    worker.abandon(f"no progress for {stall_s:.0f} s when the hook closed")
                    break
                if self.drain_timeout_s is not None and now - started > self.drain_timeout_s:
                    worker.abandon(f"the drain timeout ({self.drain_timeout_s:g} s) ran out")
                    break
        except KeyboardInterrupt:
            worker.abandon("interrupted (Ctrl-C) while finishing")
            raise
        finally:
            if bar is not None:
                bar.stop()

    # -- queries ----------------------------------------------------------------------------

    @property
    def report(self) -> HookReport:
        """What the hook has done so far (final after close)."""
        return self._worker.report()

    def stats(self) -> HookStats:
        """A snapshot of progress (also emitted as ``events.stats``)."""
        return self._worker.stats()

    @property
    def stages(self) -> list[tuple[str, int]]:
        """(name, scale) of each stage, in order."""
        return [(s.name, s.scale) for s in self._worker.stages]

    @property
    def trust_stages(self) -> list[str]:
        """The stages whose output is a trust map (sigma), not an image."""
        return [s.name for s in self._worker.stages if s.kind == "sigma"]

    @property
    def live_refused(self) -> dict[str, str]:
        """Stages live mode does not run, each with why (refused when the hook was built)."""
        return dict(self._worker.live_refused)

    def latest(self, stage: str | None = None) -> RestoredFrame | None:
        """The newest restored frame (of ``stage``, default the first): the display mailbox."""
        return self._worker.display.latest_restored.get(stage or self._worker.stages[0].name)

    def latest_raw(self) -> RawFrame | None:
        """The newest frame the worker is done with, after its stages ran (raw display)."""
        return self._worker.display.latest_raw

    def latest_defocus(self) -> DefocusReading | None:
        """The newest focus estimate (None without a ``focus`` estimator or before the first)."""
        return self._worker.display.latest_defocus

    def restored_view(self, stage: str | None = None) -> Any:
        """A read-only live view of ``stage``'s store in the current (or last) acquisition.

        Array-like (ome-writers ``StreamView``: ``shape``, ``dtype``, ``dims``, integer and
        slice indexing), reading frames from disk as they land; for a viewer whose memory must
        not grow with the acquisition. None without an output folder or before the stage's
        first output; it stays readable after the acquisition ends, until the next one starts.
        """
        return self._worker.display.store_views.get(stage or self._worker.stages[0].name)

    def outputs_for(self, sequence: Any, stage: str | None = None) -> int:
        """How many outputs ``stage`` (default the first) makes for ``sequence``.

        A stage that restores sets (SIM: 9 frames along the channel axis) makes one per set.
        """
        runner = self._runner(stage)
        removed = runner.grouping.removed_axis
        events = sequence.iter_events() if isinstance(sequence, useq.MDASequence) else sequence
        return len({index_key(dict(e.index), removed) for e in events})

    def _runner(self, stage: str | None) -> StageRunner:
        stages = self._worker.stages
        if stage is None:
            return stages[0]
        for runner in stages:
            if runner.name == stage:
                return runner
        raise KeyError(f"no stage {stage!r}; stages: {', '.join(s.name for s in stages)}")

    def raw_path_for_next_run(self) -> Path | None:
        """Where :meth:`run` puts the raw store of the next acquisition."""
        folder = self._run_folder(self._runs_started + 1)
        return None if folder is None else folder / "raw.ome.zarr"

    def run(self, sequence: Any, **kwargs: Any) -> None:
        """Run ``sequence`` on the core (blocking), raw saved beside the restored stores."""
        raw = self.raw_path_for_next_run()
        if raw is not None:
            raw.parent.mkdir(parents=True, exist_ok=True)
        self.core.mda.run(sequence, output=None if raw is None else str(raw), **kwargs)

    def _run_folder(self, number: int) -> Path | None:
        if self.output is None:
            return None
        return self.output if number == 1 else self.output / f"run-{number}"

    # -- acquisition side: O(1) slots -------------------------------------------------------

    def _on_sequence_started(self, sequence: Any, meta: dict[str, Any]) -> None:
        self._runs_started += 1
        self._acquiring = True
        self._canceled = False
        self._next_number = 0
        view = self.core.mda.get_view()
        self._intake.can_spill = view is not None
        self._intake.put_marker(SequenceStart(sequence, meta, view, time.perf_counter()))

    def _on_frame(self, image: np.ndarray, event: Any, meta: Any) -> None:
        if not self._acquiring:  # hook opened mid-acquisition: treat it as a run of its own
            self._on_sequence_started(None, {})
        number = self._next_number
        self._next_number += 1
        runner_ms = meta.get("runner_time_ms") if isinstance(meta, dict) else None
        position = meta.get("position") if isinstance(meta, dict) else None
        z = position.get("z") if isinstance(position, dict) else None
        if z is None:
            z = event.z_pos
        z_um = float(z) if z is not None else None
        frame = IntakeFrame(number, dict(event.index), time.perf_counter(), runner_ms, image, z_um)
        self._intake.put_frame(frame)  # a frame it cannot hold is counted there, under its lock

    def _on_sequence_canceled(self, sequence: Any) -> None:
        self._canceled = True

    def _on_sequence_finished(self, sequence: Any) -> None:
        if self._acquiring:
            self._acquiring = False
            self._worker.acquisitions_ended = self._runs_started
            self._intake.put_marker(SequenceEnd(sequence, canceled=self._canceled))

    def _on_pause_toggled(self, paused: bool) -> None:
        if paused and not self.core.mda.is_paused():
            # the runner pauses only between events: say so instead of showing a pause
            logger.warning(
                "pause requested while an event is acquiring (a hardware-sequenced burst "
                "cannot be paused): the acquisition pauses when the event ends"
            )

    def _live_on(self) -> None:
        if self._live is not None:
            self._live.start()

    def _live_off(self, *args: Any) -> None:
        if self._live is not None:
            self._live.stop(timeout_s=0.5)


def build_hook(core: Any, config: HookConfig) -> RestoreHook:
    """A :class:`RestoreHook` on ``core`` built from ``config`` (open it, or use ``with``)."""
    return RestoreHook(core, config)
