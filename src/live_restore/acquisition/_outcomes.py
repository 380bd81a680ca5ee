"""What became of each group a stage was given: outputs saved, rows written, frames resolved.

The records side of the worker: for each outcome it writes the output (one store, or a
full-rate store for interpolation), the frames.csv row, the display's mailbox and signal, the
failure's error event, and resolves the frames' fates. It writes under the worker's lock and
stops as soon as ``close()`` has abandoned the worker (the records are then close()'s).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from live_restore.frames import FrameStatus, format_index

from ._trust_stage import untrusted_fraction

if TYPE_CHECKING:
    from ._adaptive_light import AdaptiveLight
    from ._display import Display
    from ._fates import FrameFates
    from ._record import RunRecord
    from ._stage import StageOutcome, StageRunner

__all__ = ["Outcomes"]


class Outcomes:
    """Records stage outcomes (see the module docstring)."""

    def __init__(
        self,
        display: Display,
        fates: FrameFates,
        lock: threading.RLock,
        abandoned: threading.Event,
        error: Callable[..., None],
    ) -> None:
        self.display = display
        self.fates = fates
        self.lock = lock
        self.abandoned = abandoned
        self.error = error
        self.light: AdaptiveLight | None = None  # fed each trust reading

    def record(
        self,
        run: RunRecord | None,
        stage: StageRunner,
        outcomes: list[StageOutcome],
        frames: dict[int, Any],
    ) -> None:
        """Write outputs, rows and events for one stage's outcomes; resolve their frames."""
        if run is None:
            return
        now = time.perf_counter()
        with self.lock:
            for outcome in outcomes:
                if self.abandoned.is_set():  # close() took over the records meanwhile
                    return
                group = outcome.group
                newest = group.numbers[-1]
                frame, raw, source = frames.get(newest, (None, None, "memory"))
                received = frame.received_s if frame is not None else now
                latency_ms = (now - received) * 1000
                status, message = outcome.status, outcome.message
                full_rate = stage.grouping.full_rate is not None
                if status is FrameStatus.RESTORED and outcome.restored is not None:
                    if full_rate:  # a row per full-rate frame
                        at, ms = f"{received - run.started_s:.4f}", f"{latency_ms:.2f}"
                        timing = {"received_s": at, "source": source, "latency_ms": ms}
                        status = run.save_full_rate(stage, outcome, timing)
                    else:
                        status = run.save(stage, group, outcome.restored)
                    self.display.store_views = run.views
                    if status is FrameStatus.UNSAVED:
                        message = f"restored and shown, not saved: {run.why_unsaved[stage.name]}"
                        self.error(stage.name, newest, "unsaved", message)
                    shown = raw if raw is not None else np.zeros((0, 0))
                    self.display.publish(
                        stage.name, group, shown, outcome.restored, latency_ms, kind=stage.kind
                    )
                    if full_rate:
                        self.fates.resolve(stage.name, group.numbers, status)
                        continue
                else:
                    run.mark_missing(stage, group, None if raw is None else raw.shape)
                    run.gap_rows(stage, group)
                    self._report_failure(stage, outcome)
                self.fates.resolve(stage.name, group.numbers, status)
                run.row(
                    frame=newest,
                    index=format_index(group.index),
                    received_s=f"{received - run.started_s:.4f}",
                    source=source,
                    stage=stage.name,
                    status=status,
                    latency_ms=f"{latency_ms:.2f}" if status is FrameStatus.RESTORED else "",
                    compute_ms=f"{outcome.compute_ms:.2f}" if outcome.compute_ms else "",
                    batch=outcome.batch,
                    flags=f"fused {','.join(map(str, group.sources))}"
                    if group.sources
                    else self._trust(stage, newest, group.index, raw, outcome.restored),
                    error=message,
                    weights=outcome.weights,
                )

    def _trust(self, stage: StageRunner, frame: int, index: Any, raw: Any, output: Any) -> str:
        """A trust stage's flag for frames.csv; its share goes to the adaptive light."""
        if stage.kind != "sigma" or raw is None or output is None or raw.size == 0:
            return ""
        share = untrusted_fraction(output, raw)
        if self.light is not None:
            self.light.offer(frame, index, share)
        return f"untrusted {100 * share:.1f}%"

    def _report_failure(self, stage: StageRunner, outcome: StageOutcome) -> None:
        group, newest = outcome.group, outcome.group.numbers[-1]
        if outcome.status is FrameStatus.ERROR:
            self.error(stage.name, newest, outcome.kind, outcome.message, outcome.traceback)
            if stage.disabled_reason and not stage.disable_reported:
                stage.disable_reported = True
                self.error(stage.name, newest, "disabled", stage.disabled_reason)
        elif outcome.status is FrameStatus.INCOMPLETE_GROUP:
            self.error(
                stage.name,
                newest,
                "incomplete-group",
                f"frames {list(group.numbers)} do not form a complete group at "
                f"{format_index(group.index)}; not restored",
            )
