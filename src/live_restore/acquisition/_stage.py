"""One restoration stage in the hook: a restorer, its grouping, its failure accounting.

The stage runs on the worker thread only. Each call's output is checked (2-D, the expected
scaled shape, finite) before anything downstream sees it; a failure is returned, not raised, so
the worker can record it with the frame number and go on. After ``max_consecutive_failures``
failures in a row the stage disables itself and says why.
"""

from __future__ import annotations

import logging
import time
import traceback
from dataclasses import dataclass

import numpy as np

from live_restore.frames import (
    Executor,
    FrameGroup,
    FrameStatus,
    Restorer,
    check_restorer,
    output_kind_of,
)

from ._executor import InThreadExecutor

__all__ = ["StageOutcome", "StageRunner"]

logger = logging.getLogger("live_restore")


@dataclass(frozen=True)
class StageOutcome:
    """The result of one group: an output, or why there is none."""

    group: FrameGroup
    restored: np.ndarray | None
    status: FrameStatus  # RESTORED | ERROR | DISABLED | INCOMPLETE_GROUP
    kind: str = ""  # for errors: exception | bad-output | out-of-memory
    message: str = ""
    compute_ms: float = 0.0
    batch: int = 1
    traceback: str = ""  # the full traceback of a failure (run.log keeps it)
    weights: str = ""  # a stage under HookConfig.adapt: the weights that ran ("parent", "adapted")


def _failure_kind(error: BaseException) -> str:
    if isinstance(error, MemoryError) or "out of memory" in str(error).lower():
        return "out-of-memory"
    if getattr(error, "transient", False):
        return "unreachable"
    return "exception"


class StageRunner:
    """A restorer with its grouping, the executor its calls run on, and its failures."""

    def __init__(
        self,
        restorer: Restorer,
        max_consecutive_failures: int = 5,
        executor: Executor | None = None,
        unreachable_grace_s: float = 60.0,
    ) -> None:
        self.restorer = check_restorer(restorer)
        self.name = restorer.name
        self.kind = output_kind_of(restorer)  # "image", or "sigma" (a trust map)
        self.grouping = restorer.grouping
        self.executor: Executor = executor or InThreadExecutor()
        self.max_consecutive_failures = max_consecutive_failures
        # a server that is down (an error that says it is transient) may come back: its frames
        # fail, named, but the stage is disabled only once it has been down this long
        self.unreachable_grace_s = unreachable_grace_s
        self.unreachable_since: float | None = None
        self.consecutive_failures = 0
        self.failures = 0
        self.restored = 0
        self.disabled_reason: str | None = None
        self.disable_reported = False
        self.weights = ""  # "parent" while an adaptation is pending, "adapted" once swapped
        self.parent_provenance: dict[str, str] | None = None  # the restorer before a swap

    def swap_restorer(self, restorer: Restorer) -> None:
        """Run ``restorer`` from the next call on (adapted weights); the grouping stays.

        The grouping holds frames waiting for their group, so it is the stage's, not the
        restorer's. The old restorer is closed (a worker process's is replaced there).
        """
        parent = self.parent_provenance or dict(self.restorer.provenance())
        old, self.restorer = self.restorer, check_restorer(restorer)
        self.weights, self.parent_provenance = "adapted", parent
        if old is not restorer:
            try:
                old.close()
            except Exception:  # the old model's clean-up must not undo the swap
                logger.exception("closing %s's parent restorer", self.name)

    @property
    def scale(self) -> int:
        """The restorer's (a plain function's is known from its first output)."""
        return int(self.restorer.scale)

    @property
    def disabled(self) -> bool:
        """Whether the stage has given up (too many failures in a row)."""
        return self.disabled_reason is not None

    def run(self, groups: list[FrameGroup]) -> list[StageOutcome]:
        """Restore complete groups, in order; up to ``max_batch`` per call when it batches.

        A restorer whose ``max_batch`` is above 1 gets the inputs stacked along a new first
        axis (``restore_batch``). If a batch call fails, each group is retried alone so that
        one bad frame does not take its neighbours down with it.
        """
        batched: dict[int, StageOutcome] = {}
        ready = [g for g in groups if g.complete]
        size = self.restorer.max_batch
        if len(ready) > 1 and size > 1 and not self.disabled:
            for start in range(0, len(ready), size):
                chunk = ready[start : start + size]
                if len(chunk) > 1:
                    batched |= self._run_batch(chunk)
        outcomes: list[StageOutcome] = []
        for group in groups:
            if not group.complete:
                outcomes.append(StageOutcome(group, None, FrameStatus.INCOMPLETE_GROUP))
            elif id(group) in batched:
                outcomes.append(batched[id(group)])
            elif self.disabled:
                outcomes.append(StageOutcome(group, None, FrameStatus.DISABLED, "disabled", ""))
            else:
                outcomes.append(self._run_one(group, batch=1))
        return outcomes

    def _run_batch(self, groups: list[FrameGroup]) -> dict[int, StageOutcome]:
        started = time.perf_counter()
        try:
            stack = np.stack([g.frames for g in groups if g.frames is not None])  # a copy
            outputs = self.executor.run(self.restorer, stack, batched=True)
            restored = [self._checked(out, stack.shape[-2:]) for out in outputs]
            if len(restored) != len(groups):
                raise _BadOutput(f"returned {len(restored)} outputs for {len(groups)} inputs")
        except Exception:
            return {}  # retried one by one, where each failure is recorded
        per_frame_ms = (time.perf_counter() - started) * 1000 / len(groups)
        self.consecutive_failures = 0
        self.restored += len(groups)
        return {
            id(g): StageOutcome(
                g,
                r,
                FrameStatus.RESTORED,
                compute_ms=per_frame_ms,
                batch=len(groups),
                weights=self.weights,
            )
            for g, r in zip(groups, restored, strict=True)
        }

    def _run_one(self, group: FrameGroup, batch: int) -> StageOutcome:
        frames = group.frames
        assert frames is not None  # complete groups carry frames
        started = time.perf_counter()
        try:
            if self.restorer.writes_input:  # its own copy: camera memory stays as delivered
                frames = np.array(frames, copy=True)
            output = self.executor.run(self.restorer, frames, batched=False)
            # an interpolation stage returns its group's full-rate frames, stacked
            count = self.grouping.stacked_outputs(len(group.numbers))
            restored = self._checked(output, frames.shape[-2:], count)
        except _BadOutput as e:
            return self._failed(group, "bad-output", str(e), started)
        except Exception as e:  # MemoryError included: _failure_kind names it
            return self._failed(group, _failure_kind(e), f"{type(e).__name__}: {e}", started)
        compute_ms = (time.perf_counter() - started) * 1000
        self.consecutive_failures = 0
        self.unreachable_since = None
        self.restored += 1
        return StageOutcome(
            group,
            restored,
            FrameStatus.RESTORED,
            compute_ms=compute_ms,
            batch=batch,
            weights=self.weights,
        )

    def _checked(
        self, output: object, input_shape: tuple[int, ...], count: int | None = None
    ) -> np.ndarray:
        expected: tuple[int, ...] = (input_shape[0] * self.scale, input_shape[1] * self.scale)
        if count is not None:
            expected = (count, *expected)
        if not isinstance(output, np.ndarray):
            raise _BadOutput(f"returned {type(output).__name__}, not a numpy array")
        if output.shape != expected:
            raise _BadOutput(f"returned shape {output.shape}, expected {expected}")
        if output.dtype.kind not in "uif":
            raise _BadOutput(f"returned dtype {output.dtype}")
        restored = output.astype(np.float32, copy=False)
        finite = np.isfinite(restored)
        if not finite.all():
            raise _BadOutput(f"returned {int((~finite).sum())} non-finite pixels (NaN/inf)")
        return restored

    def _failed(self, group: FrameGroup, kind: str, message: str, started: float) -> StageOutcome:
        self.failures += 1
        if kind == "unreachable":  # the frame fails, named; the stage waits for the server
            now = time.monotonic()
            self.unreachable_since = self.unreachable_since or now
            down_s = now - self.unreachable_since
            if down_s >= self.unreachable_grace_s:
                self.disabled_reason = (
                    f"stage {self.name!r} disabled: its server has been unreachable for "
                    f"{down_s:.0f} s (last, on frame {group.numbers[-1]}: {message}); raw "
                    "frames are still saved"
                )
        else:
            self.unreachable_since = None
            self.consecutive_failures += 1
        if self.consecutive_failures >= self.max_consecutive_failures:
            self.disabled_reason = (
                f"stage {self.name!r} disabled after {self.consecutive_failures} consecutive "
                f"failures (last, on frame {group.numbers[-1]}: {message}); raw frames are "
                "still saved"
            )
        compute_ms = (time.perf_counter() - started) * 1000
        trace = traceback.format_exc() if kind != "bad-output" else ""
        return StageOutcome(
            group,
            None,
            FrameStatus.ERROR,
            kind,
            message,
            compute_ms,
            traceback=trace,
            weights=self.weights,
        )


class _BadOutput(ValueError):
    """The stage returned something that is not a restored frame."""
