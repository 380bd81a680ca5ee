"""A stage adapted to the acquisition's own frames while it runs (``HookConfig.adapt``).

The stage's first ``after_frames`` input frames of an MDA are copied (the camera's buffers are
never kept), written as an OME-TIFF under ``OUTPUT/adapt-<stage>/``, and ``live-restore adapt``
runs on them in a process of its own, at idle priority and on one thread: the camera and
restoration keep their cores, and what it learns, checks and records is exactly what the
command would (the same code, the same model.yaml). The worker looks in at each batch, never
waits on it. When the process has finished, the folder's model.yaml says whether the held-out
error fell (the command's two-standard-error rule):

- it fell: the adapted weights are loaded and take over at the next time-point boundary (a new
  ``t``, or a new acquisition), so that no time point, and no z-stack, is restored half by one
  model and half by the other;
- it did not: the parent's weights stay, and the record says so.

frames.csv marks each of the stage's rows ``parent`` or ``adapted`` (column ``weights``), and
summary.json's ``adapt`` says what happened and from which frame on the adapted weights ran.
A sequence with fewer frames than ``after_frames`` leaves collecting to the next acquisition
(frames of two acquisitions are never mixed). Live mode restores with the weights of the moment.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import FrameIndex, Restorer, format_index

from ._config import AdaptConfig
from ._stage import StageRunner

__all__ = ["StageAdaptation", "adapt_problem"]

logger = logging.getLogger("live_restore")

# what summary.json repeats of the adapted model's record (model.yaml has it all)
_RESULT_KEYS = (
    "method",
    "kept",
    "held_out_error_before",
    "held_out_error_after",
    "held_out_change_standard_error",
    "steps",
    "minutes",
    "training_examples",
    "held_out_examples",
)
# the series' axis letter in the OME-TIFF the adapt process reads, and the other axis's
_TIFF_AXES = {"z": "TZYX", "t": "ZTYX", None: "TYX"}


def adapt_problem(config: AdaptConfig, model: str, executor: str, models: list[str]) -> str | None:
    """Why ``model`` cannot adapt in this hook, in one line; None when it can."""
    from live_restore.models import ModelLoadError, adapt_plan, model_dir, read_spec

    from ._trust_stage import TRUST_SUFFIX

    if executor.startswith("grpc://"):
        return (
            "adapt: a served stage's weights are the Triton server's, not this hook's; adapt "
            "with `live-restore adapt`, then serve the adapted folder"
        )
    if f"{model}{TRUST_SUFFIX}" in models:
        return (
            f"adapt: {model}{TRUST_SUFFIX}'s trust calibration was measured for {model}'s own "
            "weights and would not hold for adapted ones"
        )
    try:
        spec = read_spec(model_dir(model.removesuffix(TRUST_SUFFIX)))
    except ModelLoadError:
        return f"adapt: {model!r} is not a trained model (nothing to fine-tune)"
    optics = [f"--{n.replace('_', '-')}" for n in ("na", "emission_nm", "pixel_um")
              if getattr(config, n) is not None]  # fmt: skip
    if model.endswith(TRUST_SUFFIX):
        return f"adapt: {model} is a trust map; adapt {spec.name} itself"
    try:
        adapt_plan(spec, None, config.method, optics)
    except ValueError as e:
        return f"adapt: {e}"
    return None


class StageAdaptation:
    """Collect, adapt in the background, swap at a boundary (see the module docstring).

    Used by the worker thread only. ``build`` makes the restorer of a model folder in the
    stage's venue (this process, or the worker process's slot).
    """

    def __init__(
        self,
        config: AdaptConfig,
        stage: StageRunner,
        model: str,
        axis: str | None,
        folder: Path,
        build: Callable[[Path], Restorer],
    ) -> None:
        self.config = config
        self.stage = stage
        self.model = model
        self.axis = axis  # "t" or "z" for an interpolation model; None: every frame
        self.folder = folder
        self._build = build
        self.state = "collecting"
        self.message = ""
        self._frames: list[tuple[int, FrameIndex, np.ndarray]] = []
        self._collecting_run: int | None = None
        self.learned_from: dict[str, Any] | None = None
        self._process: subprocess.Popen[bytes] | None = None
        self._log: Any = None
        self.result: dict[str, Any] = {}
        self.swapped: dict[str, Any] | None = None  # run, frame and index of the swap
        self.first_adapted: dict[int, int] = {}  # run -> first frame restored adapted in it
        self._last_t: int | None = None
        self._begun = threading.Event()  # the process started, or adapting failed before it
        stage.weights = "parent"

    # -- collecting -------------------------------------------------------------------------

    def collect(self, run: int, frames: list[tuple[int, FrameIndex, np.ndarray]]) -> None:
        """Copy the run's frames until ``after_frames``; then start adapting on them."""
        if self.state != "collecting":
            return
        if self._collecting_run != run:  # a new acquisition: never mix two
            self._frames, self._collecting_run = [], run
        wanted = self.config.after_frames - len(self._frames)
        for number, index, image in frames[:wanted]:
            self._frames.append((number, dict(index), np.array(image, copy=True)))
        if len(self._frames) >= self.config.after_frames:
            self._start(run)

    def _stack(self) -> np.ndarray:
        """The collected frames as the adapt command reads them (axes ``_TIFF_AXES``)."""
        if self.axis is None:
            return np.stack([image for _n, _i, image in self._frames])
        runs: dict[tuple[tuple[str, int], ...], list[tuple[int, np.ndarray]]] = {}
        for _number, index, image in self._frames:
            rest = tuple(sorted((k, v) for k, v in index.items() if k != self.axis))
            runs.setdefault(rest, []).append((index.get(self.axis, 0), image))
        longest = max(len(r) for r in runs.values())
        if longest < 6:
            raise ValueError(
                f"the first {len(self._frames)} frames hold no run of 6 positions along "
                f"'{self.axis}' (the longest has {longest}); give an acquisition with more"
            )
        # only complete runs: a z-stack cut short by the frame count is left out
        series = [sorted(r, key=lambda p: p[0]) for r in runs.values() if len(r) == longest]
        return np.stack([np.stack([image for _p, image in s]) for s in series])

    def _start(self, run: int) -> None:
        import tifffile

        try:
            stack = self._stack()
            self.folder.mkdir(parents=True, exist_ok=False)
            source = self.folder / "input.ome.tif"
            tifffile.imwrite(source, stack, metadata={"axes": _TIFF_AXES[self.axis]}, ome=True)
        except (OSError, ValueError) as e:
            self._fail(f"could not keep the frames to learn from: {e}")
            return
        numbers = [n for n, _i, _image in self._frames]
        self.learned_from = {
            "acquisition": run,
            "frames": f"{numbers[0]}-{numbers[-1]}",
            "input": str(source),
            "input_shape": list(stack.shape),
        }
        self._frames = []  # on disk now
        command = [
            sys.executable, "-m", "live_restore", "adapt", self.model, str(source),
            "--out", str(self.folder / "model"), "--minutes", str(self.config.minutes),
        ]  # fmt: skip
        if self.config.steps is not None:
            command += ["--steps", str(self.config.steps)]
        if self.config.method:
            command += ["--method", self.config.method]
        for option in ("na", "emission_nm", "pixel_um"):
            if (value := getattr(self.config, option)) is not None:
                command += [f"--{option.replace('_', '-')}", str(value)]
        paths = os.pathsep.join(p for p in sys.path if p)
        env = {**os.environ, "PYTHONPATH": paths, "OMP_NUM_THREADS": "1", "COLUMNS": "100"}
        try:
            self._log = (self.folder / "adapt.log").open("wb")
            self._process = subprocess.Popen(
                command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                env=env,
            )  # fmt: skip
        except OSError as e:
            self._fail(f"could not start the adapt process: {e}")
            return
        _lower_priority(self._process.pid)
        self.state = "adapting"
        self._begun.set()
        logger.info("adapting %s on frames %s", self.stage.name, self.learned_from["frames"])

    # -- waiting, swapping ------------------------------------------------------------------

    def poll(self) -> None:
        """Look in on the adapt process (never waits); read its verdict once it has ended."""
        if self.state != "adapting" or self._process is None:
            return
        code = self._process.poll()
        if code is None:
            return
        self._log.close()
        if code != 0:
            lines = (self.folder / "adapt.log").read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {code}"
            self._fail(f"the adapt process failed: {last}")
            return
        from live_restore.models import ModelLoadError, read_spec

        try:
            record = read_spec(self.folder / "model").training["adapted"]
        except (ModelLoadError, KeyError) as e:
            self._fail(f"the adapted model's record cannot be read: {e}")
            return
        self.result = {k: record[k] for k in _RESULT_KEYS if k in record}
        if record.get("kept") == "adapted":
            self.state = "ready"
        else:
            self.state = "kept the parent's weights"
            self.message = (
                "the held-out error did not fall by over 2 standard errors "
                f"({record.get('held_out_error_before')} -> {record.get('held_out_error_after')})"
            )
            logger.info("%s keeps its weights: %s", self.stage.name, self.message)

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the adapt process to end (any thread); whether it has.

        The worker reads its verdict at its next batch; this only waits.
        """
        deadline = time.monotonic() + timeout_s
        if not self._begun.wait(timeout_s):  # still collecting
            return False
        process = self._process
        if process is None:  # it failed before a process started
            return True
        try:
            process.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            return False
        return True

    def new_run(self) -> None:
        """An acquisition starts: its first frame is a boundary."""
        self._last_t = None

    def swap_point(self, frames: list[tuple[int, FrameIndex]]) -> int | None:
        """The number of the first of ``frames`` that starts a new time point, once ready.

        Every frame passes through here (in order), so a boundary is seen against the frame
        before it, in this batch or an earlier one.
        """
        found = None
        for number, index in frames:
            t = index.get("t", 0)
            if (
                found is None
                and self.state == "ready"
                and (self._last_t is None or t != self._last_t)
            ):
                found = number
            self._last_t = t
        return found

    def swap(self, run: int, number: int, index: FrameIndex) -> str | None:
        """Load the adapted weights into the stage; the failure's message, if it failed."""
        try:
            restorer = self._build(self.folder / "model")
        except Exception as e:  # a folder that cannot load: the parent's weights stay
            self._fail(f"the adapted weights could not be loaded: {type(e).__name__}: {e}")
            return self.message
        self.stage.swap_restorer(restorer)
        self.state = "adapted"
        self.swapped = {"acquisition": run, "from_frame": number, "from_index": format_index(index)}
        logger.info("%s runs adapted weights from frame %d (%s)", self.stage.name, number,
                    format_index(index))  # fmt: skip
        return None

    def restored_adapted(self, run: int, number: int) -> None:
        """An output of frame ``number`` ran with the adapted weights (what the record says).

        Usually the boundary frame first; a centred window (mfsr-sr2x) around a frame just
        before it completes after the swap, and its output is the adapted weights' too.
        """
        if number < self.first_adapted.get(run, number + 1):
            self.first_adapted[run] = number

    def _fail(self, message: str) -> None:
        self.state, self.message = "failed", message
        self._begun.set()
        logger.warning("adapting %s: %s; its weights stay the parent's", self.stage.name, message)

    # -- the record -------------------------------------------------------------------------

    def summary(self, run: int) -> dict[str, Any]:
        """summary.json's ``adapt`` for acquisition ``run``."""
        document: dict[str, Any] = {
            "stage": self.stage.name,
            "model": self.model,
            "state": self.state,
            "after_frames": self.config.after_frames,
            "minutes": self.config.minutes,
            "folder": str(self.folder),
        }
        if self.state == "collecting":
            document["collected"] = len(self._frames) if self._collecting_run == run else 0
        if self.state == "adapting":
            document["message"] = (
                "still adapting when this acquisition ended: a later acquisition's summary, or "
                "adapt.log, says how it ended"
            )
        if self.learned_from is not None:
            document["learned_from"] = self.learned_from
        if self.result:
            document["result"] = self.result
        if self.message:
            document["message"] = self.message
        if self.swapped is not None:
            if self.swapped["acquisition"] == run:
                # the first output restored adapted (frames.csv's weights column, row by row)
                document["adapted_from_frame"] = self.first_adapted.get(
                    run, self.swapped["from_frame"]
                )
                document["swapped_at_index"] = self.swapped["from_index"]
            else:  # an earlier acquisition swapped: this one ran adapted from its start
                document["adapted_from_frame"] = 0
                document["adapted_since"] = self.swapped
        return document

    def close(self) -> None:
        """Stop an adapt process still running (the hook is closing)."""
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(5.0)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
            self.state, self.message = "stopped", "the hook closed before adapting finished"
            logger.warning("adapting %s: %s", self.stage.name, self.message)
        if self._log is not None and not self._log.closed:
            if self.state == "stopped":
                self._log.write(f"\n{self.message}\n".encode())
            self._log.close()


def _lower_priority(pid: int) -> None:
    """Idle priority, set before the process has imported torch (its threads inherit it)."""
    try:
        if hasattr(os, "SCHED_IDLE"):
            os.sched_setscheduler(pid, os.SCHED_IDLE, os.sched_param(0))
        else:
            os.setpriority(os.PRIO_PROCESS, pid, 19)
    except OSError:  # it has already ended, or the system does not let us: it runs as is
        pass
