"""The process executor: stages run in a worker process that owns their models.

Why a process: a CPU-bound stage in the hook's thread shares the GIL with the camera thread and
the MDA runner (Richardson-Lucy slowed acquisition to 1.27x hook-off on 2 cores). In its own
process, lowered in priority (``nice``), the stage competes only for cores, and the camera wins.

How frames cross: the parent owns two shared-memory blocks per executor, one for inputs and one
for outputs, grown as needed. A call copies the input into the first, sends a few numbers down a
pipe, and copies the output back out of the second: no array is pickled. Since the parent
creates and unlinks every block, a worker that dies (SIGKILL, the OOM killer) leaks nothing.

What goes wrong is reported as the stage's failure, with the frames named by the stage runner:
a worker that dies or hangs past ``call_timeout_s`` is killed, and the next call starts a fresh
one after a back-off (0.5 s, 1 s, 2 s, ...). After ``max_restarts`` deaths without one call
succeeding in between, calls fail at once, and the stage runner disables the stage. The raw
data never pass through here, so they stay complete whatever happens.
"""

from __future__ import annotations

import itertools
import logging
import os
import pickle
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from live_restore.frames import Grouping, Restorer, check_restorer

__all__ = ["ProcessExecutor", "RemoteStage", "StageProcessError", "shared_memory_prefix"]

log = logging.getLogger(__name__)

_BLOCK_COUNTER = itertools.count()


def shared_memory_prefix() -> str:
    """The name prefix of this process's shared-memory blocks (``/dev/shm`` on Linux)."""
    return f"lr{os.getpid()}_"


class StageProcessError(RuntimeError):
    """The worker process died, hung, or will not start."""


class _RemoteTraceback(Exception):
    """The worker's traceback, chained under the error it raised (as concurrent.futures does)."""


@dataclass(frozen=True)
class _Described:
    """What the parent needs to know of a restorer that lives in the worker."""

    name: str
    scale: int
    grouping: Grouping
    max_batch: int
    writes_input: bool
    provenance: dict[str, str]


class RemoteStage:
    """A restorer whose model lives in a :class:`ProcessExecutor`'s worker.

    It carries the restorer's description (name, scale, grouping, provenance); calling it
    runs the real one in the worker.
    """

    def __init__(self, executor: ProcessExecutor, slot: int, described: _Described) -> None:
        self.executor = executor
        self.slot = slot
        self.name = described.name
        self.scale = described.scale
        self.grouping = described.grouping
        self.max_batch = described.max_batch
        self.writes_input = described.writes_input
        self._provenance = dict(described.provenance)

    def provenance(self) -> dict[str, str]:
        """The worker's restorer's provenance, and that it ran in a process."""
        return {**self._provenance, "executor": "process"}

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        """Restore one input in the worker."""
        return self.executor.run(self, frame, batched=False)

    def restore_batch(self, frames: np.ndarray, /) -> np.ndarray:
        """Restore stacked inputs in the worker."""
        return self.executor.run(self, frames, batched=True)

    def close(self) -> None:
        """The worker closes the real restorer when the executor closes."""


class ProcessExecutor:
    """Runs restorers in one worker process; see the module docstring.

    ``factories`` are picklable callables that build each restorer in the worker (a
    :class:`StageRecipe` for restorers by name, or a module-level function). :meth:`start`
    launches the worker and returns a :class:`RemoteStage` per factory.
    """

    name = "process"

    def __init__(
        self,
        factories: Sequence[Callable[[], Restorer]],
        *,
        call_timeout_s: float = 60.0,
        start_timeout_s: float = 120.0,
        max_restarts: int = 3,
        priority: str | int = "idle",
    ) -> None:
        if not factories:
            raise ValueError("a process executor needs at least one restorer factory")
        try:  # here, so that what cannot cross fails before any process starts
            self._factories_pickled = pickle.dumps(list(factories))
        except (pickle.PicklingError, AttributeError, TypeError) as e:
            raise ValueError(
                f"the stages cannot be sent to a worker process ({e}); give factories that "
                "can be pickled: a StageRecipe, or a function or class defined at module level"
            ) from None
        self.call_timeout_s = call_timeout_s
        self.start_timeout_s = start_timeout_s
        self.max_restarts = max_restarts
        self.priority = priority
        self.stages: list[RemoteStage] = []
        self.restarts = 0
        self._deaths_in_a_row = 0
        self._process: Any = None
        self._conn: Connection | None = None
        self._blocks: dict[str, SharedMemory | None] = {"in": None, "out": None}
        self._in_call = False
        self._closed = False

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> list[RemoteStage]:
        """Start the worker, build the restorers there, and return their stand-ins.

        ValueError carries the worker's message when a restorer cannot be built (unknown
        name, corrupt weights); StageProcessError when the worker does not come up.
        """
        described = self._launch()
        self.stages = [RemoteStage(self, slot, d) for slot, d in enumerate(described)]
        for stage in self.stages:
            check_restorer(stage)
        return list(self.stages)

    def _launch(self) -> list[_Described]:
        # A fresh interpreter, not multiprocessing's spawn: spawn re-runs the user's main
        # script (a script without ``if __name__ == "__main__"`` would start acquiring again),
        # and fork would copy Qt, torch and camera threads. The socket pair is the pipe.
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "live_restore._stage_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
            )
        conn = Connection(ours.detach())
        self._process, self._conn = process, conn
        # the worker imports the factories' modules from the same paths as this process
        conn.send(list(sys.path))
        conn.send((self._factories_pickled, self.priority))
        reply = self._await(self.start_timeout_s, "starting")
        if reply[0] == "failed":
            self._stop_process()
            raise ValueError(reply[1])
        described: list[_Described] = reply[1]
        return described

    def close(self) -> None:
        """Stop the worker (politely, then SIGKILL) and unlink the shared memory."""
        if self._closed:
            return
        self._closed = True
        self._stop_process()
        for key, block in self._blocks.items():
            if block is not None:
                block.close()
                block.unlink()
                self._blocks[key] = None

    @property
    def pid(self) -> int | None:
        """The worker's process id (None when none runs)."""
        process = self._process
        return int(process.pid) if process is not None and process.poll() is None else None

    def _stop_process(self) -> None:
        process, conn = self._process, self._conn
        self._process = self._conn = None
        if process is None:
            return
        if conn is not None and not self._in_call and process.poll() is None:
            try:
                conn.send(("close",))
            except OSError:
                pass
        for stop, grace_s in ((None, 5.0), (process.terminate, 2.0), (process.kill, None)):
            if stop is not None:
                stop()
            try:
                process.wait(grace_s)
                break
            except subprocess.TimeoutExpired:
                continue
        if conn is not None:
            conn.close()

    # -- calls --------------------------------------------------------------------------------

    def run(self, restorer: Restorer, inputs: np.ndarray, batched: bool) -> np.ndarray:
        """Run ``restorer`` on ``inputs`` in the worker; a restorer made elsewhere runs here."""
        if not isinstance(restorer, RemoteStage) or restorer.executor is not self:
            return restorer.restore_batch(inputs) if batched else restorer(inputs)
        if self._closed:
            raise StageProcessError("the stage process was closed")
        self._ensure_running(restorer.name)
        inputs = np.ascontiguousarray(inputs)
        height, width = inputs.shape[-2:]
        out_shape: tuple[int, ...] = (height * restorer.scale, width * restorer.scale)
        if batched:
            out_shape = (inputs.shape[0], *out_shape)
        block_in = self._block("in", inputs.nbytes)
        block_out = self._block("out", int(np.prod(out_shape)) * 4)
        np.ndarray(inputs.shape, inputs.dtype, buffer=block_in.buf)[...] = inputs
        message = (
            "call",
            restorer.slot,
            batched,
            (block_in.name, inputs.shape, inputs.dtype.str),
            (block_out.name, out_shape),
        )
        assert self._conn is not None
        self._in_call = True
        try:
            self._conn.send(message)
            timeout = self.call_timeout_s * (inputs.shape[0] if batched else 1)
            reply = self._await(timeout, f"restoring with {restorer.name!r}")
        finally:
            self._in_call = False
        self._deaths_in_a_row = 0
        if reply[0] == "raised":
            _, type_name, text, remote_trace = reply
            error: Exception = (
                MemoryError(text)
                if type_name == "MemoryError"
                else RuntimeError(f"{type_name}: {text}")
            )
            raise error from _RemoteTraceback(remote_trace)
        if reply[0] == "odd":  # not the expected array: the stage runner says what is wrong
            odd: np.ndarray = reply[1]
            return odd
        view = np.ndarray(out_shape, np.float32, buffer=block_out.buf)
        return np.array(view, copy=True)  # the block is reused by the next call

    def _block(self, key: str, nbytes: int) -> SharedMemory:
        block = self._blocks[key]
        if block is None or block.size < nbytes:
            if block is not None:
                block.close()
                block.unlink()
            name = f"{shared_memory_prefix()}{next(_BLOCK_COUNTER)}"
            block = SharedMemory(name=name, create=True, size=max(nbytes, 1))
            self._blocks[key] = block
        return block

    def _ensure_running(self, stage: str) -> None:
        if self._process is not None and self._process.poll() is None:
            return
        if self._deaths_in_a_row > self.max_restarts:
            raise StageProcessError(
                f"the stage process died {self._deaths_in_a_row} times in a row; "
                f"{stage!r} is given up"
            )
        backoff_s = min(0.5 * 2 ** max(self._deaths_in_a_row - 1, 0), 8.0)
        log.warning("restarting the stage process in %.1f s", backoff_s)
        time.sleep(backoff_s)
        self._stop_process()
        self.restarts += 1
        self._launch()  # the same factories: the same restorers in the same slots

    def _await(self, timeout_s: float, doing: str) -> tuple[Any, ...]:
        process, conn = self._process, self._conn
        assert process is not None and conn is not None
        # a worker that dies closes its end of the socket: the pipe turns readable at once
        ready = conn.poll(timeout_s)
        if ready:
            try:
                reply: tuple[Any, ...] = conn.recv()
                return reply
            except (EOFError, OSError):
                pass  # the worker went away mid-reply: reported below
        self._deaths_in_a_row += 1
        if not ready:
            self._kill()
            raise StageProcessError(
                f"the stage process hung ({doing} took over {timeout_s:.0f} s); it was killed "
                "and restarts on the next call"
            )
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            self._kill()
        raise StageProcessError(
            f"the stage process died while {doing} ({_exit_reason(process.returncode)}); it "
            "restarts on the next call"
        )

    def _kill(self) -> None:
        process = self._process
        if process is not None and process.poll() is None:
            process.kill()
            process.wait()


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        name = signal.Signals(-exitcode).name
        hint = ", perhaps out of memory" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"


# -- the worker -------------------------------------------------------------------------------


def _describe(restorer: Restorer) -> _Described:
    check_restorer(restorer)
    return _Described(
        restorer.name,
        restorer.scale,
        restorer.grouping,
        restorer.max_batch,
        restorer.writes_input,
        dict(restorer.provenance()),
    )


def _lower_priority(priority: str | int) -> None:
    """First thing in the worker, so that every thread it starts (torch's too) inherits it."""
    if priority == "idle" and hasattr(os, "SCHED_IDLE"):
        # the worker runs only on CPU time nothing else wants: the camera, the MDA runner and
        # the writer always come first (on a busy machine restoration falls behind instead)
        os.sched_setscheduler(0, os.SCHED_IDLE, os.sched_param(0))
    elif priority == "idle":
        os.nice(19)
    elif int(priority):
        os.nice(int(priority))


def worker_main(conn: Connection) -> None:
    """The worker: build the restorers, then answer calls until told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = conn.recv()
    factories: list[Callable[[], Restorer]]
    pickled, priority = conn.recv()
    try:
        factories = pickle.loads(pickled)
    except Exception as e:  # a factory whose module this process cannot import
        conn.send(("failed", f"the stage process cannot load the stages: {e}"))
        return
    _lower_priority(priority)
    try:
        restorers = [factory() for factory in factories]
        described = [_describe(r) for r in restorers]
    except Exception as e:
        conn.send(
            ("failed", f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e))
        )
        return
    conn.send(("ready", described))
    attached: dict[str, SharedMemory] = {}
    try:
        while True:
            try:
                message = conn.recv()
            except (EOFError, OSError):
                break  # the parent is gone
            if message[0] == "close":
                break
            conn.send(_answer(message, restorers, attached))
    finally:
        for block in attached.values():
            block.close()
        for restorer in restorers:
            try:
                restorer.close()
            except Exception:
                log.exception("closing %s in the stage process", restorer.name)


def _attach(attached: dict[str, SharedMemory], role: str, name: str) -> SharedMemory:
    block = attached.get(role)
    if block is None or block.name.lstrip("/") != name:
        if block is not None:  # the parent replaced a block that grew
            try:
                block.close()
            except BufferError:  # a restorer kept a view of it; the mapping goes with the process
                pass
        block = attached[role] = SharedMemory(name=name)
        # the parent made the block and unlinks it; this process's tracker must not
        resource_tracker.unregister(block._name, "shared_memory")  # type: ignore[attr-defined]
    return block


def _answer(
    message: tuple[Any, ...], restorers: list[Restorer], attached: dict[str, SharedMemory]
) -> tuple[Any, ...]:
    _, slot, batched, (in_name, in_shape, in_dtype), (out_name, out_shape) = message
    restorer = restorers[slot]
    inputs = np.ndarray(in_shape, np.dtype(in_dtype), buffer=_attach(attached, "in", in_name).buf)
    inputs.flags.writeable = restorer.writes_input  # the parent made a copy for those
    try:
        output = restorer.restore_batch(inputs) if batched else restorer(inputs)
    except BaseException as e:
        return ("raised", type(e).__name__, str(e), traceback.format_exc())
    finally:
        del inputs  # no view may outlive the call (the block can be replaced)
    if (
        not isinstance(output, np.ndarray)
        or output.shape != tuple(out_shape)
        or output.dtype.kind not in "uif"
    ):
        return ("odd", output)
    out_block = _attach(attached, "out", out_name)
    np.ndarray(out_shape, np.float32, buffer=out_block.buf)[...] = output
    return ("done",)
