"""The run record: what one acquisition leaves on disk beside its raw store.

Per acquisition, under its folder: ``<stage>.ome.zarr`` per stage (opened at the stage's
first output), ``frames.csv`` (one row per frame and stage, written as it happens) and
``summary.json`` (at the end). Without a folder the record only counts: restorations are
shown, not saved. A write that fails is reported through ``on_error`` and that store is
closed; the record never raises into the worker.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, TextIO

import numpy as np

from live_restore._version import __version__
from live_restore.frames import (
    FrameGroup,
    FrameIndex,
    FrameStatus,
    IndexKey,
    Policy,
    format_index,
    index_key,
)

from ._full_rate_sink import FullRateSink
from ._intake import SkippedRun
from ._sinks import FrameTable, MisplacedOutput, RestoredSink, SinkError
from ._stage import StageOutcome, StageRunner

__all__ = ["ErrorReporter", "RunRecord"]


def _weights_of(provenance: dict[str, str]) -> dict[str, str]:
    return {k: provenance[k] for k in ("model", "weights_sha256") if k in provenance}


ErrorReporter = Callable[[str, "int | None", str, str], None]
"""``(stage, frame number or None, kind, message)``: how the record reports a failure."""


@dataclass
class RunRecord:
    """One acquisition's stores, frame table and summary (written by the worker only)."""

    number: int
    folder: Path | None
    sequence: Any
    meta: dict[str, Any]
    raw_view: Any  # the raw store being written (ome-writers StreamView), or None
    started_s: float
    policy: Policy
    on_error: ErrorReporter
    frames: int = 0
    raw_shape: tuple[int, ...] | None = None  # (rows, columns) of the camera's frames, once seen
    refused: dict[str, str] = field(default_factory=dict)  # stage -> why it sits this one out
    sinks: dict[str, RestoredSink | FullRateSink | None] = field(default_factory=dict)
    views: dict[str, Any] = field(default_factory=dict)  # stage -> live view of its store
    unsaved: dict[str, list[str]] = field(default_factory=dict)  # stage -> outputs not on disk
    why_unsaved: dict[str, str] = field(default_factory=dict)  # stage -> what stopped its store
    lost: dict[str, RestoredSink | FullRateSink] = field(default_factory=dict)  # stopped stores
    # stage -> status -> rows: what summary.json counts, the same rows frames.csv holds
    statuses: dict[str, Counter[str]] = field(default_factory=dict)
    _table: FrameTable | None = None
    _log: TextIO | None = None
    _log_failed: bool = False
    stalled: str | None = None  # a stage that never returned (set when close() gives up)
    adapted_at_start: set[str] = field(default_factory=set)  # stages adapted before it began

    def open(self, stages: list[str]) -> None:
        """Create the folder, the frame table and a first summary.json (none without a folder).

        The first summary says what the run is, so one that never finishes (a crash, a kill)
        still does; the run's end replaces it.
        """
        if self.folder is None:
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        try:
            self._table = FrameTable(self.folder / "frames.csv")
        except SinkError as e:
            self.on_error("frames.csv", None, "sink", str(e))
        dump = getattr(self.sequence, "model_dump", None)
        started = {
            "finished": None,
            "state": "running (a summary.json that stays so: the run never finished)",
            "started": datetime.now().isoformat(timespec="seconds"),
            "stages": stages,
            "policy": str(self.policy),
            "sequence": dump(mode="json", exclude_unset=True) if callable(dump) else None,
            "live_restore_version": __version__,
        }
        self._write_summary(started)

    def _write_summary(self, document: dict[str, Any]) -> None:
        if self.folder is None:
            return
        try:
            (self.folder / "summary.json").write_text(json.dumps(document, indent=2, default=str))
        except OSError as e:
            self.on_error("summary.json", None, "sink", f"cannot write summary: {e}")

    def _provenance(self, stage: StageRunner) -> dict[str, Any]:
        """The stage's provenance; one whose provenance() fails still gets its records."""
        if stage.name == self.stalled:  # it never returned: do not call into it again
            sink = self.sinks.get(stage.name)
            return dict(sink.provenance) if sink else {"model": stage.name}
        try:
            provenance = dict(stage.restorer.provenance())
        except Exception as e:
            return {"model": stage.name, "provenance_error": f"{type(e).__name__}: {e}"}
        parent = stage.parent_provenance
        if parent is None:
            return provenance
        # adapted weights took over (HookConfig.adapt): the top level names the weights that
        # made this acquisition's first outputs, the other ones beside them
        where = "summary.json adapt.adapted_from_frame; frames.csv column weights"
        if stage.name in self.adapted_at_start:
            return {**provenance, "adapted_from": {**_weights_of(parent), "from": where}}
        return {**parent, "adapted": {**_weights_of(provenance), "from": where}}

    def log(self, line: str, trace: str = "") -> None:
        """One line (and a traceback, if any) in run.log, opened at the first failure."""
        if self.folder is None or self._log_failed:
            return
        try:
            if self._log is None:
                path = self.folder / "run.log"
                self._log = path.open("a", encoding="utf-8", errors="backslashreplace")
            stamp = datetime.now().isoformat(timespec="milliseconds")
            self._log.write(f"{stamp} {line}\n")
            if trace:
                self._log.write(trace if trace.endswith("\n") else trace + "\n")
            self._log.flush()
        except OSError as e:  # reported once; the table and the events still say it all
            self._log_failed = True
            self.on_error("run.log", None, "sink", f"cannot write {self.folder / 'run.log'}: {e}")

    def row(self, **row: Any) -> None:
        """One frames.csv row (see ``TABLE_COLUMNS``); a failed write closes the table."""
        stage, status = str(row.get("stage", "")), str(row.get("status", ""))
        self.statuses.setdefault(stage, Counter())[status] += 1
        if self._table is None:
            return
        try:
            self._table.add(**row)
        except SinkError as e:
            self._table = None
            self.on_error("frames.csv", None, "sink", str(e))

    # -- restored stores ------------------------------------------------------------------

    def save(self, stage: StageRunner, group: FrameGroup, restored: np.ndarray) -> FrameStatus:
        """Write one output; ``RESTORED`` once the store took it, else ``UNSAVED``."""
        if self.folder is None:
            return FrameStatus.RESTORED
        if stage.name not in self.sinks:
            rows, columns = restored.shape[-2] // stage.scale, restored.shape[-1] // stage.scale
            self._open_sink(stage, (rows, columns))
        sink = self.sinks.get(stage.name)
        if sink is not None:
            try:
                assert isinstance(sink, RestoredSink)  # full-rate stores: save_full_rate
                sink.append(restored, group.index)
                return FrameStatus.RESTORED
            except MisplacedOutput as e:  # this output only: the store goes on
                self.why_unsaved[stage.name] = str(e)
                self.unsaved.setdefault(stage.name, []).append(format_index(group.index))
                return FrameStatus.UNSAVED
            except SinkError as e:
                self._lose_sink(
                    stage.name,
                    sink,
                    group.numbers[-1],
                    f"{e}; no more frames are saved for this stage (raw frames are not affected)",
                )
        self.unsaved.setdefault(stage.name, []).append(format_index(group.index))
        return FrameStatus.UNSAVED

    def mark_missing(
        self, stage: StageRunner, group: FrameGroup, raw_shape: tuple[int, ...] | None
    ) -> None:
        """Leave the group's output position as fill, listed in the store's ``missing``."""
        if self.folder is None:
            return
        raw_shape = raw_shape or self.raw_shape
        if stage.name not in self.sinks and raw_shape is not None:
            self._open_sink(stage, (raw_shape[-2], raw_shape[-1]))
        sink = self.sinks.get(stage.name)
        if sink is None:
            if stage.name in self.why_unsaved:  # its store stopped: summary.json names it
                self.unsaved.setdefault(stage.name, []).append(format_index(group.index))
            return
        if isinstance(sink, FullRateSink):  # positions never written are listed at close
            return
        try:
            sink.skip(group.index)
        except SinkError as e:
            self._lose_sink(stage.name, sink, group.numbers[-1], str(e))

    def _open_sink(self, stage: StageRunner, raw_shape: tuple[int, int]) -> None:
        if self.folder is None or stage.name in self.sinks:
            return
        info = (self.meta.get("image_infos") or [{}])[0]
        raw_pixel_um = float(info.get("pixel_size_um") or 0.0) or None
        provenance = {
            **self._provenance(stage),
            "stage": stage.name,
            "scale": stage.scale,
            "raw_pixel_size_um": raw_pixel_um,
            "policy": str(self.policy),
            "live_restore_version": __version__,
        }
        sink: RestoredSink | FullRateSink
        if stage.grouping.full_rate is not None:
            axis, factor = stage.grouping.full_rate
            sink = FullRateSink(
                self.folder / f"{stage.name}.ome.zarr",
                raw_shape,
                raw_pixel_um,
                axis,
                factor,
                provenance,
            )
        else:
            sink = RestoredSink(
                self.folder / f"{stage.name}.ome.zarr",
                (raw_shape[0] * stage.scale, raw_shape[1] * stage.scale),
                None if raw_pixel_um is None else raw_pixel_um / stage.scale,
                stage.grouping.removed_axis,
                provenance,
            )
        try:
            sink.setup(self.sequence, self.meta)
        except (SinkError, ValueError) as e:
            self.sinks[stage.name] = None
            self.why_unsaved[stage.name] = f"{sink.path.name} could not be created"
            self.on_error(stage.name, None, "sink", f"{e}; restored frames are shown, not saved")
            return
        self.sinks[stage.name] = sink
        self.views = {**self.views, stage.name: sink.view}  # readers see a whole dict

    def _lose_sink(
        self, stage: str, sink: RestoredSink | FullRateSink, frame: int, message: str
    ) -> None:
        self.sinks[stage] = None
        self.lost[stage] = sink
        self.why_unsaved[stage] = f"{sink.path.name} stopped taking frames at frame {frame}"
        self.on_error(stage, frame, "sink", message)
        try:
            sink.close({"finished": "write failed"})
        except SinkError:
            pass

    def save_full_rate(
        self,
        stage: StageRunner,
        outcome: StageOutcome,
        timing: dict[str, str],
    ) -> FrameStatus:
        """Write an interpolation group's full-rate frames, a frames.csv row each.

        RESTORED once every one is in the store, else UNSAVED (each row says which).
        """
        group, restored, grouping = outcome.group, outcome.restored, stage.grouping
        assert restored is not None
        self.gap_rows(stage, group)
        if self.folder is not None and stage.name not in self.sinks:
            self._open_sink(stage, (restored.shape[-2], restored.shape[-1]))
        sink = self.sinks.get(stage.name)
        overall = FrameStatus.RESTORED
        for image, output in zip(restored, grouping.outputs(group), strict=True):
            status, message = FrameStatus.RESTORED, ""
            if self.folder is not None:
                try:
                    if not isinstance(sink, FullRateSink):
                        raise SinkError(self.why_unsaved.get(stage.name, "no store"))
                    sink.write(image, output)
                except MisplacedOutput as e:  # this output only: the store goes on
                    status, message = FrameStatus.UNSAVED, str(e)
                except SinkError as e:
                    status, message = FrameStatus.UNSAVED, str(e)
                    if isinstance(sink, FullRateSink):
                        lost = f"{e}; no more frames are saved for this stage (raw is not affected)"
                        self._lose_sink(stage.name, sink, group.numbers[-1], lost)
                        sink = None
            if status is not FrameStatus.RESTORED:
                overall = status
                self.why_unsaved[stage.name] = message
                self.unsaved.setdefault(stage.name, []).append(format_index(output.index))
            self.row(
                frame=group.numbers[-1],
                index=format_index(group.index),
                output_index=format_index(output.index),
                stage=stage.name,
                status=status,
                **timing,
                compute_ms=f"{outcome.compute_ms:.2f}" if outcome.compute_ms else "",
                batch=outcome.batch,
                flags="interpolated" if output.interpolated else "acquired",
                error=message,
                weights=outcome.weights,
            )
        return overall

    def gap_rows(self, stage: StageRunner, group: FrameGroup) -> None:
        """Rows for the full-rate positions a missing predecessor leaves empty (never guessed)."""
        grouping = stage.grouping
        index = format_index(group.index)
        axis = grouping.full_rate[0] if grouping.full_rate is not None else ""
        for gap in grouping.gap_before(group):
            self.row(
                frame=group.numbers[-1],
                index=index,
                output_index=format_index(gap),
                stage=stage.name,
                status=FrameStatus.INCOMPLETE_GROUP,
                error=f"the acquired frame before {index} along '{axis}' did not "
                "arrive: nothing interpolated here",
            )

    # -- rows for frames no stage ran on ----------------------------------------------------

    def refused_rows(
        self, stage: StageRunner, frames: list[tuple[int, dict[str, int], str]]
    ) -> None:
        """frames.csv rows for a stage that refused this acquisition's sequence."""
        for number, index, source in frames:
            self.row(
                frame=number,
                index=format_index(index),
                source=source,
                stage=stage.name,
                status=FrameStatus.REFUSED,
                error=self.refused[stage.name],
            )

    def skipped_rows(self, stages: list[StageRunner], skipped: SkippedRun) -> None:
        """Rows (and missing outputs) for frames the "latest" policy skipped."""
        for offset, index in enumerate(skipped.indices):
            for stage in stages:
                if stage.grouping.group_size == 1:  # its own output is missing
                    group = FrameGroup((skipped.first + offset,), index, None)
                    self.mark_missing(stage, group, None)
                self.row(
                    frame=skipped.first + offset,
                    index=format_index(index),
                    source="skipped",
                    stage=stage.name,
                    status=FrameStatus.SKIPPED,
                )
        if skipped.count > len(skipped.indices):
            first = skipped.first + len(skipped.indices)
            last = skipped.first + skipped.count - 1
            self.row(
                frame=f"{first}-{last}", source="skipped", stage="*", status=FrameStatus.SKIPPED
            )

    def undone(self, stage: StageRunner, frames: list[tuple[int, FrameIndex]], why: str) -> None:
        """Rows and missing outputs for frames ``stage`` will never restore (close gave up)."""
        outputs: dict[IndexKey, FrameIndex] = {}  # a set's frames share one output
        for number, index in frames:
            self.row(
                frame=number,
                index=format_index(index),
                stage=stage.name,
                status=FrameStatus.UNDONE,
                error=why,
            )
            removed = stage.grouping.removed_axis
            output = {k: v for k, v in index.items() if k != removed}
            outputs.setdefault(index_key(output), output)
        for output in outputs.values():
            self.mark_missing(stage, FrameGroup((-1,), output, None), None)

    # -- the end ----------------------------------------------------------------------------

    def finish(
        self,
        stages: list[StageRunner],
        summary: dict[str, Any],
        report: dict[str, Any],
    ) -> None:
        """Close the stores (each with ``summary``), the table, and write summary.json."""
        provenance = {s.name: self._provenance(s) for s in stages}
        for name, sink in self.sinks.items():
            if sink is None:
                continue
            # what a stage learned while running (SIM pattern parameters) reaches the store
            sink.provenance.update(provenance.get(name, {}))
            try:
                sink.close(summary)
            except SinkError as e:
                self.on_error(name, None, "sink", str(e))
        if self._table is not None:
            table, self._table = self._table, None
            try:
                table.close()
            except SinkError as e:
                self.on_error("frames.csv", None, "sink", str(e))
        if self._log is not None:
            log, self._log = self._log, None
            try:
                log.close()
            except OSError:
                pass  # its failure was reported when the line did not fit
        if self.folder is None:
            return
        per_stage = {}
        for s in stages:
            sink = self.sinks.get(s.name) or self.lost.get(s.name)
            counted = self.statuses.get(s.name, Counter())
            per_stage[s.name] = {
                "provenance": provenance[s.name],
                "scale": s.scale,
                # this acquisition's outputs by status, as frames.csv's rows: restored = on disk
                "restored": counted[str(FrameStatus.RESTORED)],
                "outputs_by_status": dict(sorted(counted.items())),
                "disabled": s.disabled_reason,
                "refused": self.refused.get(s.name),
                "store": sink.path.name if sink else None,
                "store_stopped": self.why_unsaved.get(s.name) if s.name in self.lost else None,
                "missing": sink.missing if sink else None,
                "unsaved": self.unsaved.get(s.name, []),
            }
        document = {
            **summary,
            "policy": str(self.policy),
            "report": report,
            "stages": per_stage,
            "live_restore_version": __version__,
        }
        self._write_summary(document)
