"""RestoreHook: every frame of an MDA (and of live mode) restored off the acquisition thread.

The hook's slots run on whichever thread pymmcore-plus delivers signals on (the MDA thread
with psygnal, the Qt main thread with Qt) and do O(1) work: wrap the frame, hand it to the
:class:`~._intake.Intake`. One worker thread owns the stages, the restored stores and the
frame table. Raw frames are pymmcore-plus's business (its own OME-Zarr sink); the hook only
reads them back when it fell behind past its memory bound.

Per acquisition the hook writes, under ``output`` (``output/run-N`` from the second one on):
``<stage>.ome.zarr`` per stage, ``frames.csv`` (one row per frame and stage) and
``summary.json``. ``hook.run(sequence)`` also puts the raw store there as ``raw.ome.zarr``.
"""

from __future__ import annotations

import json
import logging
import math
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from live_restore._version import __version__
from live_restore.focus import FocusHold, FocusMonitor

from ._events import (
    DefocusReading,
    HookEvents,
    HookStats,
    LatencyWindow,
    RawFrame,
    RestoredFrame,
    StageError,
)
from ._grouping import FrameGroup, SingleFrame
from ._intake import (
    Intake,
    IntakeFrame,
    IntakeItem,
    Policy,
    SequenceEnd,
    SequenceStart,
    SkippedRun,
)
from ._live import LivePoller
from ._restorers import Restorer
from ._sinks import FrameTable, RestoredSink, SinkError, format_index
from ._stage import StageOutcome, StageRunner

__all__ = ["HookReport", "RestoreHook"]

logger = logging.getLogger("live_restore")


@dataclass
class HookReport:
    """What the hook did, as it closed."""

    frames_received: int = 0
    frames_done: int = 0  # the worker finished with them (restored or failed)
    frames_restored: int = 0  # every enabled stage restored them
    frames_failed: int = 0
    frames_skipped: int = 0  # "latest" policy
    frames_dropped: int = 0  # "all" without a raw store, memory full
    frames_from_raw_store: int = 0
    undone: list[int] = field(default_factory=list)  # arrival numbers left when it gave up
    stalled_stage: str | None = None  # a stage that never returned
    runs: list[str] = field(default_factory=list)  # output folders
    errors: int = 0
    disabled_stages: dict[str, str] = field(default_factory=dict)
    peak_held_mb: float = 0.0

    @property
    def complete(self) -> bool:
        """Whether nothing was left undone."""
        return not self.undone and self.stalled_stage is None


@dataclass
class _Run:
    """The worker's state for one acquisition."""

    number: int
    sequence: Any
    meta: dict[str, Any]
    raw_view: Any
    started_s: float
    folder: Path | None
    sinks: dict[str, RestoredSink | None] = field(default_factory=dict)
    table: FrameTable | None = None
    frames: int = 0
    failed_groups: int = 0
    refused: dict[str, str] = field(default_factory=dict)  # stage -> why it sits this one out


class _NoRawStore(Exception):
    """A frame was not held in memory and there is no raw store to read it from."""


class RestoreHook:
    """Restore every frame of the core's acquisitions while they run.

    Parameters
    ----------
    core : CMMCorePlus
        Any pymmcore-plus core (UniMMCore with the simulated microscope, or real hardware).
    models : Restorer or sequence of Restorer
        The stages; each restores the raw frame (or its group) independently into its own store.
    output : path, optional
        Folder for restored stores, frame table and summary. None: restore for display only.
    process : "all" or "latest"
        "all": every frame restored eventually (memory bounded; catch-up from the raw store).
        "latest": for display; the newest frame wins, skipped frames are counted.
    memory_mb : float
        Bound on the frames the hook holds in memory.
    max_batch : int
        Most frames handed to a stage at once when the worker is behind.
    max_consecutive_failures : int
        A stage that fails this many frames in a row is disabled (raw is unaffected).
    drain_timeout_s : float or None
        On close, how long to finish pending work (None: until done). What is left is reported.
    progress : bool
        Show a progress bar while finishing pending work on close.
    live : bool
        Also restore live mode (continuous acquisition), for display only.
    stats_interval_s : float
        How often ``events.stats`` is emitted while working.
    focus : FocusMonitor or callable, optional
        A :class:`~live_restore.focus.FocusMonitor`, or a bare focus estimator
        (``load_model("focus-est")``) that gets a monitor with the default policy. Every frame
        the worker takes is scored before the stages run (so focus hold hears of drift even
        when restoration is slow); each reading is emitted as ``events.defocus``, kept in
        :meth:`latest_defocus`, written to the frame table (stage ``focus``) and, with its
        flag changes, to summary.json and every restored store's attributes. Its failures are
        reported as errors of stage ``focus`` and never stop restoration.
    hold : FocusHold, optional
        Opt-in focus hold (needs ``focus``): attached to the core's MDA engine while the hook is
        open; moves the focus by the drift the monitor trusts, at the next time point.
    """

    def __init__(
        self,
        core: Any,
        models: Restorer | Sequence[Restorer] = (),
        output: str | Path | None = None,
        process: Policy = "all",
        memory_mb: float = 512.0,
        max_batch: int = 8,
        max_consecutive_failures: int = 5,
        drain_timeout_s: float | None = None,
        progress: bool = True,
        live: bool = True,
        stats_interval_s: float = 0.5,
        focus: FocusMonitor | Callable[[np.ndarray], Any] | None = None,
        hold: FocusHold | None = None,
    ) -> None:
        stages = [models] if not isinstance(models, Sequence) else list(models)
        if not stages:
            raise ValueError("RestoreHook needs at least one model (a Restorer)")
        self._stages = [StageRunner(s, max_consecutive_failures) for s in stages]
        names = [s.name for s in self._stages]
        if len(set(names)) != len(names):
            raise ValueError(f"stage names must be unique, got {names}")
        if max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {max_batch}")
        if memory_mb <= 0:
            raise ValueError(f"memory_mb must be positive, got {memory_mb}")
        self.core = core
        self.output = Path(output) if output is not None else None
        self.process: Policy = process
        self.max_batch = int(max_batch)
        self.drain_timeout_s = drain_timeout_s
        self.progress = progress
        self.stats_interval_s = stats_interval_s
        self.events = HookEvents()
        self._intake = Intake(process, int(memory_mb * 2**20))
        self._live = LivePoller(core) if live else None
        self._connections: list[tuple[Any, Callable[..., Any]]] = []
        self._worker: threading.Thread | None = None
        self._closing = threading.Event()
        self._abandoned = threading.Event()
        self._output_lock = threading.RLock()  # worker writes vs close() giving up
        self._latency = LatencyWindow()
        self._mailbox: dict[str, RestoredFrame] = {}
        if hold is not None and focus is None:
            raise ValueError("focus hold needs a focus monitor: pass focus= as well")
        self.focus: FocusMonitor | None = (
            focus if isinstance(focus, FocusMonitor) or focus is None else FocusMonitor(focus)
        )
        self.hold = hold
        self._latest_defocus: DefocusReading | None = None
        self._latest_raw: RawFrame | None = None
        self._store_views: dict[str, Any] = {}  # stage -> view of its store in the last run
        self._report = HookReport()
        # (stage, arrival numbers of its batch) while a stage runs
        self._current_call: tuple[str, list[int]] | None = None
        # acquisition-side state: touched only by the thread that delivers the MDA signals
        self._runs_started = 0
        self._acquiring = False
        self._canceled = False
        self._next_number = 0
        self._paused = False
        self._dropped_reported = 0
        self._run: _Run | None = None  # worker-side

    # -- lifecycle ------------------------------------------------------------------------

    def __enter__(self) -> RestoreHook:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def open(self) -> None:
        """Connect to the core's signals and start the worker."""
        if self._worker is not None:
            raise RuntimeError("this RestoreHook is already open")
        if self.output is not None:
            self.output.mkdir(parents=True, exist_ok=True)
        mda = self.core.mda.events
        self._connect(mda.sequenceStarted, self._on_sequence_started)
        self._connect(mda.frameReady, self._on_frame)
        self._connect(mda.sequenceCanceled, self._on_sequence_canceled)
        self._connect(mda.sequenceFinished, self._on_sequence_finished)
        self._connect(mda.sequencePauseToggled, self._on_pause_toggled)
        if self._live is not None:
            self._connect(self.core.events.continuousSequenceAcquisitionStarted, self._live_on)
            self._connect(self.core.events.sequenceAcquisitionStopped, self._live_off)
        if self.hold is not None:
            self.hold.attach(self.core)
        self._worker = threading.Thread(target=self._work, name="live-restore-worker", daemon=True)
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
            self._intake.put_marker(SequenceEnd(None, canceled=False))
        self._closing.set()
        if self._worker is not None:
            self._drain()
            self._worker = None
        if self.hold is not None:
            self.hold.detach()
        return self.report

    def _drain(self) -> None:
        assert self._worker is not None
        deadline = None if self.drain_timeout_s is None else time.monotonic() + self.drain_timeout_s
        pending = self._intake.frames_waiting
        bar = None
        if self.progress and pending > 0:
            from rich.progress import Progress

            bar = Progress(transient=False)
            bar.start()
            task = bar.add_task("finishing restoration", total=pending)
        try:
            while self._worker.is_alive():
                self._worker.join(0.1)
                if bar is not None:
                    bar.update(task, completed=pending - self._intake.frames_waiting)
                if deadline is not None and time.monotonic() > deadline:
                    self._give_up()
                    break
        finally:
            if bar is not None:
                bar.stop()

    def _give_up(self) -> None:
        with self._output_lock:
            self._abandoned.set()
            for item in self._intake.drop_all():
                if isinstance(item, IntakeFrame):
                    self._report.undone.append(item.number)
            if self._current_call is not None:
                stage, frames = self._current_call
                self._report.stalled_stage = stage
                self._report.undone[:0] = [f for f in frames if f not in self._report.undone]
            self._finish_run(canceled=False, reason="closed before restoration finished")
        logger.warning(
            "RestoreHook closed with %d frames not restored%s",
            len(self._report.undone),
            f" (stage {self._report.stalled_stage!r} never returned)"
            if self._report.stalled_stage
            else "",
        )

    @property
    def report(self) -> HookReport:
        """What the hook has done so far (final after close)."""
        r = self._report
        r.frames_received = self._intake.frames_received
        r.frames_skipped = self._intake.frames_skipped
        r.frames_from_raw_store = self._intake.frames_spilled
        r.peak_held_mb = self._intake.peak_bytes_held / 2**20
        r.disabled_stages = {s.name: s.disabled_reason for s in self._stages if s.disabled_reason}
        return r

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

    def latest(self, stage: str | None = None) -> RestoredFrame | None:
        """The newest restored frame (of ``stage``, default the first): the display mailbox."""
        return self._mailbox.get(stage or self._stages[0].name)

    @property
    def stages(self) -> list[tuple[str, int]]:
        """(name, scale) of each stage, in order."""
        return [(s.name, s.scale) for s in self._stages]

    def latest_raw(self) -> RawFrame | None:
        """The newest frame the worker is done with, after its stages ran (raw display)."""
        return self._latest_raw

    def latest_defocus(self) -> DefocusReading | None:
        """The newest focus estimate (None without a ``focus`` estimator or before the first)."""
        return self._latest_defocus

    def restored_view(self, stage: str | None = None) -> Any:
        """A read-only live view of ``stage``'s store in the current (or last) acquisition.

        Array-like (ome-writers ``StreamView``: ``shape``, ``dtype``, ``dims``, integer and
        slice indexing), reading frames from disk as they land; for a viewer whose memory must
        not grow with the acquisition. None without an output folder or before the stage's
        first output; it stays readable after the acquisition ends, until the next one starts.
        """
        return self._store_views.get(stage or self._stages[0].name)

    def stats(self) -> HookStats:
        """A snapshot of progress (also emitted as ``events.stats``)."""
        p50, p99 = self._latency.percentiles_ms()
        r = self.report
        return HookStats(
            frames_received=r.frames_received,
            frames_done=r.frames_done,
            frames_restored=r.frames_restored,
            frames_skipped=r.frames_skipped,
            frames_pending=self._intake.frames_waiting,
            frames_from_raw_store=r.frames_from_raw_store,
            frames_failed=r.frames_failed,
            frames_dropped=r.frames_dropped,
            held_mb=self._intake.held_bytes / 2**20,
            peak_held_mb=r.peak_held_mb,
            throughput_fps=self._latency.throughput_fps(time.perf_counter()),
            latency_p50_ms=p50,
            latency_p99_ms=p99,
            paused=self._paused,
            disabled_stages=tuple(r.disabled_stages),
        )

    # -- acquisition side: O(1) slots -----------------------------------------------------

    def _run_folder(self, number: int) -> Path | None:
        if self.output is None:
            return None
        return self.output if number == 1 else self.output / f"run-{number}"

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
            z = getattr(event, "z_pos", None)
        z_um = float(z) if z is not None else None
        frame = IntakeFrame(number, dict(event.index), time.perf_counter(), runner_ms, image, z_um)
        if not self._intake.put_frame(frame):
            self._report.frames_dropped += 1

    def _on_sequence_canceled(self, sequence: Any) -> None:
        self._canceled = True

    def _on_sequence_finished(self, sequence: Any) -> None:
        if self._acquiring:
            self._acquiring = False
            self._intake.put_marker(SequenceEnd(sequence, canceled=self._canceled))

    def _on_pause_toggled(self, paused: bool) -> None:
        self._paused = bool(paused)

    def _live_on(self) -> None:
        if self._live is not None:
            self._live.start()

    def _live_off(self, *args: Any) -> None:
        if self._live is not None:
            self._live.stop(timeout_s=0.5)

    # -- worker ---------------------------------------------------------------------------

    def _work(self) -> None:
        next_stats = time.perf_counter() + self.stats_interval_s
        while not self._abandoned.is_set():
            items = self._intake.take(self.max_batch, timeout_s=0.05)
            if items:
                self._handle(items)
            elif self._live is not None and (live := self._live.take()) is not None:
                self._restore_live(*live)
            elif self._closing.is_set():
                break
            if time.perf_counter() >= next_stats:
                next_stats = time.perf_counter() + self.stats_interval_s
                self._emit_stats()
        if not self._abandoned.is_set():
            self._emit_stats()

    def _emit_stats(self) -> None:
        dropped = self._report.frames_dropped
        if dropped > self._dropped_reported:
            self._error(
                "hook",
                None,
                "no-raw-store",
                f"{dropped - self._dropped_reported} frames could not be held (memory bound "
                "reached) nor read back (the MDA writes no raw store): run the MDA with "
                "output=... so that process='all' can catch up",
            )
            self._dropped_reported = dropped
        self.events.stats.emit(self.stats())

    def _handle(self, items: list[IntakeItem]) -> None:
        frames: list[tuple[IntakeFrame, np.ndarray, str]] = []
        for position, item in enumerate(items):
            if isinstance(item, IntakeFrame):
                image, source = item.image, "memory"
                if image is None:
                    try:
                        image, source = self._read_raw(item), "raw-store"
                    except _NoRawStore:
                        self._report.frames_dropped += 1
                        continue
                    if image is None:  # not written yet: try again shortly
                        self._restore(frames)
                        self._intake.put_back(items[position:])
                        time.sleep(0.01)
                        return
                frames.append((item, image, source))
                continue
            self._restore(frames)
            frames = []
            if isinstance(item, SequenceStart):
                self._begin_run(item)
            elif isinstance(item, SequenceEnd):
                self._end_run(item)
            elif isinstance(item, SkippedRun):
                self._record_skipped(item)
        self._restore(frames)

    def _read_raw(self, frame: IntakeFrame) -> np.ndarray | None:
        run = self._run
        view = run.raw_view if run is not None else None
        if run is None or view is None:  # the intake does not spill without a store
            raise _NoRawStore
        key = tuple(frame.index.get(dim, 0) for dim in view.dims[:-2])
        image = np.asarray(view[key])
        # the writer is asynchronous: an unwritten frame reads as fill until it lands; once
        # its acquisition has ended the store is closed and every read is final
        still_writing = self._acquiring and self._runs_started == run.number
        if not image.any() and still_writing:
            return None
        return image

    # -- runs -----------------------------------------------------------------------------

    def _begin_run(self, start: SequenceStart) -> None:
        with self._output_lock:
            if not self._abandoned.is_set():
                self._begin_run_locked(start)

    def _begin_run_locked(self, start: SequenceStart) -> None:
        if self._run is not None:
            self._finish_run(canceled=False, reason="a new acquisition started")
        number = len(self._report.runs) + 1
        folder = self._run_folder(number)
        self._store_views = {}
        self._run = run = _Run(
            number, start.sequence, start.meta, start.raw_view, start.started_s, folder
        )
        self._report.runs.append(str(folder) if folder else "")
        if self.focus is not None:
            self.focus.begin(start.sequence)
        for stage in self._stages:
            check = getattr(stage.grouping, "sequence_problem", None)
            problem = check(start.sequence) if callable(check) else None
            if problem:
                # refused up front: restoring would only report every set as incomplete
                run.refused[stage.name] = problem
                self._error(
                    stage.name,
                    None,
                    "bad-sequence",
                    f"{problem}; this stage restores nothing in this acquisition (raw frames "
                    "are saved as always)",
                )
        if folder is None:
            return
        folder.mkdir(parents=True, exist_ok=True)
        try:
            run.table = FrameTable(folder / "frames.csv")
        except SinkError as e:
            self._error("frames.csv", None, "sink", str(e))

    def _open_sink(self, run: _Run, stage: StageRunner, raw_shape: tuple[int, int]) -> None:
        if run.folder is None or stage.name in run.sinks:
            return
        info = (run.meta.get("image_infos") or [{}])[0]
        raw_pixel_um = float(info.get("pixel_size_um") or 0.0) or None
        provenance = {
            **stage.restorer.provenance(),
            "stage": stage.name,
            "scale": stage.scale,
            "raw_pixel_size_um": raw_pixel_um,
            "policy": self.process,
            "live_restore_version": __version__,
        }
        try:
            run.sinks[stage.name] = sink = RestoredSink(
                run.folder / f"{stage.name}.ome.zarr",
                run.sequence,
                (raw_shape[0] * stage.scale, raw_shape[1] * stage.scale),
                None if raw_pixel_um is None else raw_pixel_um / stage.scale,
                stage.grouping.removed_axis,
                provenance,
            )
            self._store_views = {
                **self._store_views,
                stage.name: sink.view,
            }  # readers see a whole dict
        except (SinkError, ValueError) as e:
            run.sinks[stage.name] = None
            self._error(stage.name, None, "sink", f"{e}; restored frames are shown, not saved")

    def _end_run(self, end: SequenceEnd) -> None:
        if self._run is None or self._abandoned.is_set():
            return
        with self._output_lock:
            # groups cut short (a SIM set at cancel) are reported, never restored
            for stage in self._stages:
                if stage.name in self._run.refused:
                    continue
                leftovers = stage.grouping.finish()
                outcomes = [StageOutcome(g, None, "incomplete-group") for g in leftovers]
                self._record(stage, outcomes)
            self._finish_run(end.canceled, "canceled" if end.canceled else "completed")

    def _finish_run(self, canceled: bool, reason: str) -> None:
        run, self._run = self._run, None
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
        provenance = {s.name: s.restorer.provenance() for s in self._stages}
        for name, sink in run.sinks.items():
            if sink is None:
                continue
            # what a stage learned while running (SIM pattern parameters) reaches the store
            sink.provenance.update(provenance.get(name, {}))
            try:
                sink.close(summary)
            except SinkError as e:
                self._error(name, None, "sink", str(e))
        if run.table is not None:
            run.table.close()
        if run.folder is not None:
            stages = {}
            for s in self._stages:
                sink = run.sinks.get(s.name)
                stages[s.name] = {
                    "provenance": provenance[s.name],
                    "scale": s.scale,
                    "restored": s.restored,
                    "failures": s.failures,
                    "disabled": s.disabled_reason,
                    "refused": run.refused.get(s.name),
                    "store": sink.path.name if sink else None,
                    "missing": sink.missing if sink else None,
                }
            document = {
                **summary,
                "policy": self.process,
                "report": asdict(self.report),
                "stages": stages,
                "live_restore_version": __version__,
            }
            try:
                (run.folder / "summary.json").write_text(
                    json.dumps(document, indent=2, default=str)
                )
            except OSError as e:
                self._error("summary.json", None, "sink", f"cannot write summary: {e}")

    # -- restoring ------------------------------------------------------------------------

    def _restore(self, frames: list[tuple[IntakeFrame, np.ndarray, str]]) -> None:
        if not frames:
            return
        if self._run is None:  # frames without a start marker cannot happen; be safe
            self._begin_run(SequenceStart(None, {}, None, time.perf_counter()))
        run = self._run
        assert run is not None
        run.frames += len(frames)
        for f, image, _source in frames:
            self._watch_focus(image, f.number, f.index, f.z_um)
        by_number = {f.number: (f, image, source) for f, image, source in frames}
        failed_frames: set[int] = set()
        for stage in self._stages:
            if stage.name in run.refused:
                self._record_refused(run, stage, frames)
                continue
            groups: list[FrameGroup] = []
            for f, image, _source in frames:
                groups += stage.grouping.add(f.number, f.index, image)
            if not groups:
                continue
            # every frame of the batch, not only the newest: a batch that never returns
            # leaves all of them undone
            batch = sorted({n for g in groups for n in g.numbers})
            self._current_call = (stage.name, batch)
            outcomes = stage.run(groups)
            self._current_call = None
            if self._abandoned.is_set():
                return
            failed_frames |= self._record(stage, outcomes, by_number)
        newest, image, _source = frames[-1]
        self._latest_raw = RawFrame(newest.number, newest.index, image, newest.received_s)
        self._report.frames_done += len(frames)
        self._report.frames_failed += len(failed_frames & by_number.keys())
        self._report.frames_restored += len(by_number.keys() - failed_frames)

    def _record_refused(
        self, run: _Run, stage: StageRunner, frames: list[tuple[IntakeFrame, np.ndarray, str]]
    ) -> None:
        with self._output_lock:
            for f, _image, source in frames:
                self._table_row(
                    run,
                    frame=f.number,
                    index=format_index(f.index),
                    source=source,
                    stage=stage.name,
                    status="refused",
                    error=run.refused[stage.name],
                )

    def _record(
        self,
        stage: StageRunner,
        outcomes: list[StageOutcome],
        frames: dict[int, tuple[IntakeFrame, np.ndarray, str]] | None = None,
    ) -> set[int]:
        """Write outputs, table rows and events for one stage's outcomes; return failed frames."""
        failed: set[int] = set()
        run = self._run
        if run is None:
            return failed
        now = time.perf_counter()
        with self._output_lock:
            if self._abandoned.is_set():
                return failed
            for outcome in outcomes:
                group = outcome.group
                newest = group.numbers[-1]
                frame, raw, source = (frames or {}).get(newest, (None, None, "memory"))
                received = frame.received_s if frame is not None else now
                latency_ms = (now - received) * 1000
                status = outcome.status
                if status == "restored" and outcome.restored is not None:
                    status = self._save(run, stage, group, outcome.restored, raw)
                    shown = raw if raw is not None else np.zeros((0, 0))
                    self._publish(stage, group, shown, outcome.restored, latency_ms, now)
                else:
                    failed.update(group.numbers)
                    self._mark_missing(run, stage, group, raw)
                    if status == "error":
                        self._error(stage.name, newest, outcome.kind, outcome.message)
                        if stage.disabled_reason and not stage.disable_reported:
                            stage.disable_reported = True
                            self._error(stage.name, newest, "disabled", stage.disabled_reason)
                    elif status == "incomplete-group":
                        self._error(
                            stage.name,
                            newest,
                            "incomplete-group",
                            f"frames {list(group.numbers)} do not form a complete group at "
                            f"{format_index(group.index)}; not restored",
                        )
                self._table_row(
                    run,
                    frame=newest,
                    index=format_index(group.index),
                    received_s=f"{received - run.started_s:.4f}",
                    source=source,
                    stage=stage.name,
                    status=status,
                    latency_ms=f"{latency_ms:.2f}" if status == "restored" else "",
                    compute_ms=f"{outcome.compute_ms:.2f}" if outcome.compute_ms else "",
                    batch=outcome.batch,
                    error=outcome.message,
                )
        return failed

    def _save(
        self,
        run: _Run,
        stage: StageRunner,
        group: FrameGroup,
        restored: np.ndarray,
        raw: np.ndarray | None,
    ) -> str:
        if run.folder is None:
            return "restored"
        if stage.name not in run.sinks:
            rows, columns = restored.shape[-2] // stage.scale, restored.shape[-1] // stage.scale
            self._open_sink(run, stage, (rows, columns))
        sink = run.sinks.get(stage.name)
        if sink is None:
            return "unsaved"
        try:
            sink.write(group.index, restored)
        except SinkError as e:
            run.sinks[stage.name] = None
            self._error(
                stage.name,
                group.numbers[-1],
                "sink",
                f"{e}; no more frames are saved for this stage (raw frames are not affected)",
            )
            self._close_quietly(sink)
            return "unsaved"
        return "restored"

    def _mark_missing(
        self, run: _Run, stage: StageRunner, group: FrameGroup, raw: np.ndarray | None
    ) -> None:
        if run.folder is None:
            return
        if stage.name not in run.sinks and raw is not None:
            self._open_sink(run, stage, (raw.shape[-2], raw.shape[-1]))
        sink = run.sinks.get(stage.name)
        if sink is None:
            return
        try:
            sink.mark_missing(group.index)
        except SinkError as e:
            run.sinks[stage.name] = None
            self._error(stage.name, group.numbers[-1], "sink", str(e))
            self._close_quietly(sink)

    @staticmethod
    def _close_quietly(sink: RestoredSink) -> None:
        try:
            sink.close({"finished": "write failed"})
        except SinkError:
            pass

    def _record_skipped(self, skipped: SkippedRun) -> None:
        run = self._run
        if run is None:
            return
        with self._output_lock:
            for offset, index in enumerate(skipped.indices):
                for stage in self._stages:
                    if isinstance(stage.grouping, SingleFrame):
                        group = FrameGroup((skipped.first + offset,), index, None)
                        self._mark_missing(run, stage, group, None)
                    self._table_row(
                        run,
                        frame=skipped.first + offset,
                        index=format_index(index),
                        source="skipped",
                        stage=stage.name,
                        status="skipped",
                    )
            if skipped.count > len(skipped.indices):
                first = skipped.first + len(skipped.indices)
                last = skipped.first + skipped.count - 1
                self._table_row(
                    run, frame=f"{first}-{last}", source="skipped", stage="*", status="skipped"
                )

    def _table_row(self, run: _Run, **row: Any) -> None:
        if run.table is None:
            return
        try:
            run.table.add(**row)
        except SinkError as e:
            run.table = None
            self._error("frames.csv", None, "sink", str(e))

    def _error(self, stage: str, frame: int | None, kind: str, message: str) -> None:
        self._report.errors += 1
        where = f" on frame {frame}" if frame is not None else ""
        logger.warning("%s%s: %s: %s", stage, where, kind, message)
        self.events.error.emit(StageError(stage, frame, kind, message))

    def _watch_focus(
        self,
        image: np.ndarray,
        number: int,
        index: dict[str, int],
        z_um: float | None,
        live: bool = False,
    ) -> None:
        if self.focus is None:
            return
        try:
            reading = self.focus.observe(image, number, index, z_um, live=live)
        except Exception as e:  # a focus model must never stop restoration
            self._error("focus", number if number >= 0 else None, "exception", f"{e!r}")
            return
        self._latest_defocus = reading
        if self.hold is not None:
            try:
                self.hold.offer(reading)
            except Exception as e:  # nor may a stage that refuses to move
                self._error("focus-hold", number if number >= 0 else None, "exception", f"{e!r}")
        if not live and self._run is not None:
            with self._output_lock:
                self._table_row(
                    self._run,
                    frame=number,
                    index=format_index(index),
                    stage="focus",
                    status=reading.state,
                    defocus_um=_format_um(reading.defocus_um),
                    flags="out-of-focus" if reading.flagged else "",
                    error=reading.note,
                )
        self.events.defocus.emit(reading)

    def _restore_live(self, image: np.ndarray, received_s: float) -> None:
        self._watch_focus(image, -1, {}, None, live=True)
        for stage in self._stages:
            if not isinstance(stage.grouping, SingleFrame) or stage.disabled:
                continue
            group = FrameGroup((-1,), {}, image)
            outcome = stage.run([group])[0]
            now = time.perf_counter()
            if outcome.restored is None:
                self._error(stage.name, None, outcome.kind or "live", outcome.message)
                continue
            latency_ms = (now - received_s) * 1000
            self._publish(stage, group, image, outcome.restored, latency_ms, now, live=True)
        self._latest_raw = RawFrame(-1, {}, image, received_s, live=True)

    def _publish(
        self,
        stage: StageRunner,
        group: FrameGroup,
        raw: np.ndarray,
        restored: np.ndarray,
        latency_ms: float,
        now_s: float,
        live: bool = False,
    ) -> None:
        """Count the latency, fill the display mailbox and emit ``restored``."""
        self._latency.add(latency_ms, now_s)
        frame = RestoredFrame(
            stage.name, group.numbers, group.index, raw, restored, latency_ms, live
        )
        self._mailbox[stage.name] = frame
        self.events.restored.emit(frame)


def _format_um(value: float) -> str:
    return "" if math.isnan(value) else f"{value:.3f}"
