"""A stage adapted to the acquisition's own frames while it runs (``HookConfig.adapt``).

The stage's first frames of an MDA (``after_frames`` positions along its axis) are copied (the
camera's buffers are never kept), written as an OME-TIFF under ``OUTPUT/adapt-<stage>/``, and
``live-restore adapt`` runs on them in a process of its own, at idle priority and on one
thread (``_adapt_child``): the camera and restoration keep their cores, and what it learns,
checks and records is exactly what the command would (the same code, the same model.yaml).
The worker looks in on it at each batch and while it waits for frames, and never waits on it.
When the process has ended, the folder's model.yaml says whether the held-out error fell (the
command's two-standard-error rule):

- it fell: the adapted restorer is made (off the worker thread where the stage lives in this
  process) and takes over at the next time-point boundary: the first frame of a new ``t`` when
  t is the outermost axis that varies, else of the next acquisition, so that no time point and
  no z-stack is restored half by one model and half by the other. A group is the adapted
  weights' when the boundary frame or a later one completed it, whatever the batches;
- it did not: the parent's weights stay, and the record says so.

frames.csv marks each of the stage's rows ``parent`` or ``adapted`` (column ``weights``), and
summary.json's ``adapt`` says what happened and from which frame on the adapted weights ran.
An acquisition too short leaves collecting to the next one (frames of two acquisitions are
never mixed). Live mode restores with the weights of the moment and swaps at its next frame.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import threading
import weakref
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import FrameIndex, Restorer, format_index

from ._config import AdaptConfig
from ._process import child_environment
from ._stage import StageRunner

__all__ = ["StageAdaptation", "adapt_problem", "optics_options"]

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
_MOST_BYTES = 512 * 2**20  # frames held to learn from: adapting starts on what is there then
_TOO_MANY = (
    "512 MB of this acquisition's frames held no run long enough along the model's axis (is it "
    "an outer axis?): it learns from a later acquisition"
)


def optics_options(config: AdaptConfig) -> list[tuple[str, float]]:
    """The optics the config gives, as the adapt command's options."""
    names = (("--na", config.na), ("--emission-nm", config.emission_nm),
             ("--pixel-um", config.pixel_um))  # fmt: skip
    return [(flag, value) for flag, value in names if value is not None]


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
    optics = [flag for flag, _value in optics_options(config)]
    if model.endswith(TRUST_SUFFIX):
        return f"adapt: {model} is a trust map; adapt {spec.name} itself"
    try:
        adapt_plan(spec, None, config.method, optics)
    except ValueError as e:
        return f"adapt: {e}"
    return None


class StageAdaptation:
    """Collect, adapt in the background, swap at a boundary (see the module docstring).

    The worker thread collects, polls and swaps; ``close`` (the hook's, any thread) stops the
    adapt process, and a lock keeps it from starting one after that. ``build`` makes the
    restorer of a model folder in the stage's venue (this process, or the worker process's
    slot); with ``prebuild`` it is made in a thread of its own as soon as the verdict is in, so
    that the swap itself is only an assignment.
    """

    def __init__(
        self,
        config: AdaptConfig,
        stage: StageRunner,
        model: str,
        axis: str | None,
        least: int,
        folder: Path,
        build: Callable[[Path], Restorer],
        prebuild: bool = False,
    ) -> None:
        self.config = config
        self.stage = stage
        self.model = model
        self.axis = axis  # the series' axis ("t" or "z"); None: every frame on its own
        self.least = least  # the fewest positions along the axis the adapt command takes
        self.folder = folder
        self._build = build
        self._prebuild = prebuild
        self.state = "collecting"
        self.message = ""
        self._frames: list[tuple[int, FrameIndex, np.ndarray]] = []
        self._collecting_run: int | None = None
        self._wanted = config.after_frames  # this acquisition's (fewer when its axis is shorter)
        self.learned_from: dict[str, Any] | None = None
        self._held: dict[str, Any] = {"process": None}  # what the finaliser kills
        self._log: Any = None
        self._built: Restorer | None = None
        self.result: dict[str, Any] = {}
        self.swapped: dict[str, Any] | None = None  # acquisition, frame and index of the swap
        self.first_adapted: dict[int, int] = {}  # acquisition -> first frame restored adapted
        self._last_t: int | None = None
        self._t_outermost = False  # whether a new t starts a time point (the axis order says)
        self._skip_run = False  # this acquisition cannot serve: nothing of it is copied
        self._pending_failure: str | None = None  # a failure off the worker thread, to report
        self._lock = threading.Lock()  # the worker starting the process vs close()
        self._closed = False
        self._settled = threading.Event()  # ready to swap, or the parent's weights stay
        stage.weights = "parent"
        # a hook dropped without close() leaves no adapt process behind
        self._finalizer = weakref.finalize(self, _reap, self._held)

    @property
    def _process(self) -> subprocess.Popen[bytes] | None:
        process: subprocess.Popen[bytes] | None = self._held["process"]
        return process

    # -- collecting -------------------------------------------------------------------------

    def new_run(self, sequence: Any) -> str | None:
        """An acquisition starts (its first frame is a boundary); a note if it cannot serve.

        ``sequence`` is the MDA's when it says its events (None otherwise). A new ``t`` is a
        time-point boundary only when t is the outermost axis that varies: with positions or
        z outside it, the swap waits for the next acquisition.
        """
        self._last_t = None
        self._wanted = self.config.after_frames
        self._t_outermost = False
        self._skip_run = False
        if sequence is None:
            return None
        sizes = {str(a): int(n) for a, n in sequence.sizes.items() if n}
        varying = [str(a) for a in sequence.axis_order if sizes.get(str(a), 0) > 1]
        self._t_outermost = bool(varying) and varying[0] == "t"
        if self.state != "collecting" or self.axis is None:
            return None
        along = sizes.get(self.axis, 1)
        if along < self.least:
            self._skip_run = True  # nothing of it is copied
            return (
                f"this acquisition has {along} positions along '{self.axis}'; adapting "
                f"{self.model} needs runs of at least {self.least}: it learns from a later one"
            )
        self._wanted = min(self.config.after_frames, along)
        return None

    def collect(self, run: int, frames: list[tuple[int, FrameIndex, np.ndarray]]) -> None:
        """Copy the run's frames until there are enough; then start adapting on them."""
        if self.state != "collecting" or self._closed or self._skip_run:
            return
        if self._collecting_run != run:  # a new acquisition: never mix two
            self._frames, self._collecting_run = [], run
        for number, index, image in frames:
            self._frames.append((number, dict(index), np.array(image, copy=True)))
            if self._enough():
                self._start(run)
                return
            if sum(image.nbytes for _n, _i, image in self._frames) > _MOST_BYTES:
                if self.axis is not None and max(map(len, self._runs())) < self.least:
                    # no run long enough within the bound (an outer axis): a later one may be
                    self._frames, self._skip_run = [], True
                    logger.warning("adapting %s: %s", self.stage.name, _TOO_MANY)
                    return
                self._start(run)
                return

    def _enough(self) -> bool:
        if self.axis is None:
            return len(self._frames) >= self.config.after_frames
        return max(len(r) for r in self._runs()) >= self._wanted

    def _runs(self) -> list[list[tuple[int, np.ndarray]]]:
        """Runs of consecutive positions along the axis, each (frame number, image) in order.

        One series per combination of the other axes; a gap (a frame skipped or dropped) ends
        a run, so that pairs and windows keep the acquisition's own step.
        """
        series: dict[tuple[tuple[str, int], ...], list[tuple[int, int, np.ndarray]]] = {}
        for number, index, image in self._frames:
            rest = tuple(sorted((k, v) for k, v in index.items() if k != self.axis))
            series.setdefault(rest, []).append((index.get(str(self.axis), 0), number, image))
        runs: list[list[tuple[int, np.ndarray]]] = []
        for members in series.values():
            members.sort(key=lambda m: m[0])
            run = [members[0]]
            for member in members[1:]:
                if member[0] != run[-1][0] + 1:
                    runs.append([(n, i) for _p, n, i in run])
                    run = []
                run.append(member)
            runs.append([(n, i) for _p, n, i in run])
        return runs

    def _stack(self) -> tuple[np.ndarray, list[int]]:
        """The frames to learn from (axes ``_TIFF_AXES``), and their numbers."""
        if self.axis is None:
            numbers = [n for n, _i, _image in self._frames]
            return np.stack([image for _n, _i, image in self._frames]), numbers
        runs = self._runs()
        longest = max(len(r) for r in runs)
        if longest < self.least:
            raise ValueError(
                f"the frames collected hold no run of {self.least} consecutive positions along "
                f"'{self.axis}' (the longest has {longest})"
            )
        # runs of the longest length only (one array); shorter ones are a stack or a series
        # cut short by the end of collecting, or by a gap
        kept = [r[: self._wanted] for r in runs if len(r) == longest]
        numbers = sorted(n for r in kept for n, _image in r)
        return np.stack([np.stack([image for _n, image in r]) for r in kept]), numbers

    def _start(self, run: int) -> None:
        """Stack the frames here; write them and start the process in a thread of its own."""
        try:
            stack, numbers = self._stack()
        except ValueError as e:
            self._fail(f"could not keep the frames to learn from: {e}")
            return
        self._frames = []
        self.state = "starting"  # collecting is over
        source = self.folder / "input.ome.tif"
        self.learned_from = {
            "acquisition": run,
            "frames": numbers,
            "input": str(source),
            "input_shape": list(stack.shape),
        }
        # writing up to 512 MB must not hold up restoring
        threading.Thread(
            target=self._launch, args=(stack, source), name="live-restore-adapt-start", daemon=True
        ).start()

    def _launch(self, stack: np.ndarray, source: Path) -> None:
        import tifffile

        try:
            self.folder.mkdir(parents=True, exist_ok=False)
            tifffile.imwrite(source, stack, metadata={"axes": _TIFF_AXES[self.axis]}, ome=True)
        except (OSError, ValueError) as e:
            self._pending_failure = self._fail(f"could not keep the frames to learn from: {e}")
            return
        command = [
            sys.executable, "-m", "live_restore._adapt_child", "adapt", self.model, str(source),
            "--out", str(self.folder / "model"), "--minutes", str(self.config.minutes),
        ]  # fmt: skip
        if self.config.steps is not None:
            command += ["--steps", str(self.config.steps)]
        if self.config.method:
            command += ["--method", self.config.method]
        for flag, value in optics_options(self.config):
            command += [flag, str(value)]
        threads = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
        one_thread = dict.fromkeys(threads, "1")  # set before numpy and torch start any
        with self._lock:  # close() may have come meanwhile: then nothing starts
            if self._closed:
                return
            try:
                self._log = (self.folder / "adapt.log").open("wb")
                self._held["process"] = subprocess.Popen(
                    command, stdin=subprocess.DEVNULL, stdout=self._log,
                    stderr=subprocess.STDOUT, env=child_environment(COLUMNS="100", **one_thread),
                )  # fmt: skip
            except OSError as e:
                self._pending_failure = self._fail(f"could not start the adapt process: {e}")
                return
            self.state = "adapting"
        logger.info("adapting %s on %s", self.stage.name, source)

    # -- waiting, swapping ------------------------------------------------------------------

    def wait(self, timeout_s: float) -> bool:
        """Wait up to ``timeout_s`` for the verdict (any thread); whether it is in.

        In: the adapted weights are loaded and wait for the next boundary, or the parent's
        stay (kept, failed). The worker reads the verdict while it waits for frames too.
        """
        return self._settled.wait(timeout_s)

    def poll(self) -> str | None:
        """Look in on the adapt process (never waits); a failure to report, once, if any.

        Safe from two threads (the worker, and close() giving up on it): the verdict is
        read by one of them.
        """
        with self._lock:
            failure, self._pending_failure = self._pending_failure, None
            if failure is not None:
                return failure
            process = self._process
            if self.state != "adapting" or process is None or process.poll() is None:
                return None
            self.state = "reading its verdict"
            self._log.close()
        try:
            return self._verdict(int(process.returncode))
        except Exception as e:  # an unreadable log or record must not reach the worker's loop
            return self._fail(f"the adapt process's result cannot be read: {e}")

    def _verdict(self, code: int) -> str | None:
        if code != 0:
            lines = (self.folder / "adapt.log").read_text(errors="replace").strip().splitlines()
            last = lines[-1] if lines else f"exit code {code}"
            return self._fail(f"the adapt process failed: {last}")
        from live_restore.models import read_spec

        record = read_spec(self.folder / "model").training["adapted"]
        self.result = {k: record[k] for k in _RESULT_KEYS if k in record}
        if record.get("kept") != "adapted":
            self.state = "kept the parent's weights"
            self.message = (
                "the held-out error did not fall by over 2 standard errors "
                f"({record.get('held_out_error_before')} -> {record.get('held_out_error_after')})"
            )
            logger.info("%s keeps its weights: %s", self.stage.name, self.message)
            self._settled.set()
            return None
        if not self._prebuild:
            self.state = "ready"
            self._settled.set()
            return None
        self.state = "loading"  # the adapted restorer is made off the worker thread
        threading.Thread(target=self._prepare, name="live-restore-adapt-load", daemon=True).start()
        return None

    def _prepare(self) -> None:
        try:
            built = self._build(self.folder / "model")
        except Exception as e:
            message = f"the adapted weights could not be loaded: {type(e).__name__}: {e}"
            self._pending_failure = self._fail(message)
            return
        with self._lock:
            if not self._closed:
                self._built, self.state = built, "ready"
                self._settled.set()
                return
        built.close()  # the hook closed while it loaded

    def swap_point(self, frames: list[tuple[int, FrameIndex]]) -> int | None:
        """The number of the first of ``frames`` that starts a new time point, once ready.

        Every frame passes through here (in order), so a boundary is seen against the frame
        before it, in this batch or an earlier one: the first frame of an acquisition, or of a
        new ``t`` when t is the outermost axis (:meth:`new_run`).
        """
        found = None
        for number, index in frames:
            t = index.get("t", 0)
            new = self._last_t is None or (self._t_outermost and t != self._last_t)
            if found is None and self.state == "ready" and new:
                found = number
            self._last_t = t
        return found

    def swap(self, run: int | str, number: int, index: FrameIndex) -> str | None:
        """Put the adapted weights into the stage; the failure's message, if it failed."""
        try:
            restorer = self._built or self._build(self.folder / "model")
            self._built = None
            self.stage.swap_restorer(restorer)
        except Exception as e:  # a folder that cannot load: the parent's weights stay
            return self._fail(f"the adapted weights could not be loaded: {type(e).__name__}: {e}")
        self.state = "adapted"
        where = format_index(index) if index else "live mode"
        self.swapped = {"acquisition": run, "from_frame": number, "from_index": where}
        logger.info("%s runs adapted weights from frame %d (%s)", self.stage.name, number, where)
        return None

    def restored_adapted(self, run: int, number: int) -> None:
        """Frame ``number``'s output (its frames.csv row) is the adapted weights'."""
        if number < self.first_adapted.get(run, number + 1):
            self.first_adapted[run] = number

    def _fail(self, message: str) -> str:
        self.state, self.message = "failed", message
        self._settled.set()
        logger.warning("adapting %s: %s; its weights stay the parent's", self.stage.name, message)
        return f"{message}; its weights stay the parent's"

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
        if self.state in ("starting", "adapting", "reading its verdict", "loading"):
            document["message"] = (
                "still adapting when this acquisition ended: a later acquisition's summary, or "
                "adapt.log, says how it ended (closing the hook stops it)"
            )
        if self.learned_from is not None:
            document["learned_from"] = self.learned_from
        if self.result:
            document["result"] = self.result
        if self.message:
            document["message"] = self.message
        if self.swapped is not None:
            if run in self.first_adapted:  # the first output the adapted weights made here
                document["adapted_from_frame"] = self.first_adapted[run]
            if self.swapped["acquisition"] == run:
                document["swapped_at_index"] = self.swapped["from_index"]
            else:  # an earlier acquisition (or live mode) swapped
                document["adapted_since"] = self.swapped
        return document

    def close(self) -> None:
        """Stop an adapt process still running (the hook is closing); none starts after."""
        with self._lock:
            self._closed = True
            process, built, self._built = self._process, self._built, None
            running = process is not None and process.poll() is None
            if running or self.state == "starting":  # a process not started yet never will
                _reap(self._held)
                self.state, self.message = "stopped", "the hook closed before adapting finished"
                logger.warning("adapting %s: %s", self.stage.name, self.message)
                if self._log is not None and not self._log.closed:
                    self._log.write(f"\n{self.message}\n".encode())
            if self._log is not None and not self._log.closed:
                self._log.close()
        if built is not None:  # loaded, never swapped in
            built.close()
        self._settled.set()  # nothing more will come: no wait() hangs
        self._finalizer.detach()


def _reap(held: dict[str, Any]) -> None:
    """Stop the adapt process: politely, then for good."""
    process = held.get("process")
    if process is None or process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(5.0)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
