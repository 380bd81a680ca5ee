"""The process executor: stages run in a worker process that owns their models.

Why a process: a CPU-bound stage in the hook's thread shares the GIL with the camera thread and
the MDA runner (Richardson-Lucy slowed acquisition to 1.27x hook-off on 2 cores). In its own
process, scheduled at idle priority, the stage competes only for cores, and the camera wins.

How frames cross: the parent owns two shared-memory blocks per executor, one for inputs and one
for outputs, grown as needed. A call copies the input into the first, sends a few numbers down a
pipe, and copies the output back out of the second: no array is pickled. Since the parent
creates and unlinks every block, a worker that dies (SIGKILL, the OOM killer) leaks nothing.

What goes wrong is reported as the stage's failure, with the frames named by the stage runner:
a worker that dies or hangs past ``call_timeout_s`` is killed, and the next call starts a fresh
one after a back-off (0.5 s, 1 s, 2 s, ...). Once ``max_restarts`` restarts have each died
without one call succeeding in between, calls fail at once, and the stage runner disables the
stage. All stages of one executor share its worker. The raw data never pass through here.

Threads: ``run`` is called by the hook's worker thread, ``close`` by whoever closes the hook,
possibly while a call is in flight. A lock guards the process and the blocks; the wait for a
reply holds no lock, so that ``close`` can kill the worker under a hung call.
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
import threading
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from live_restore.frames import Restorer, check_restorer

from ._process_worker import Described

__all__ = [
    "ProcessExecutor",
    "RemoteStage",
    "StageProcessError",
    "child_environment",
    "shared_memory_prefix",
]

log = logging.getLogger(__name__)

_BLOCK_COUNTER = itertools.count()


def child_environment(**extra: str) -> dict[str, str]:
    """The environment for a Python child that imports what this process imports."""
    # the child imports live_restore (and a user's factories) from the same paths as this one
    paths = os.pathsep.join(p for p in sys.path if p)
    return {**os.environ, "PYTHONPATH": paths, **extra}


def shared_memory_prefix() -> str:
    """The name prefix of this process's shared-memory blocks (``/dev/shm`` on Linux)."""
    return f"lr{os.getpid()}_"


class StageProcessError(RuntimeError):
    """The worker process died, hung, will not start, or the executor was closed."""


class _RemoteTraceback(Exception):
    """The worker's traceback, chained under the error it raised (as concurrent.futures does)."""


class RemoteStage:
    """A restorer whose model lives in a :class:`ProcessExecutor`'s worker.

    It carries the restorer's description (name, scale, grouping, provenance); calling it
    runs the real one in the worker.
    """

    def __init__(self, executor: ProcessExecutor, slot: int, described: Described) -> None:
        self.executor = executor
        self.slot = slot
        self.name = described.name
        self.scale = described.scale
        self.grouping = described.grouping
        self.max_batch = described.max_batch
        self.writes_input = described.writes_input
        self.output_kind = described.output_kind
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


@dataclass
class _Held:
    """What the executor holds outside Python objects: reaped by close() or at collection."""

    process: subprocess.Popen[bytes] | None = None
    conn: Connection | None = None
    blocks: dict[str, SharedMemory] = field(default_factory=dict)

    def reap(self) -> None:
        """Kill the worker at once and unlink the blocks (the finaliser's last resort)."""
        if self.process is not None and self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        _unlink(self.blocks)


def _unlink(blocks: dict[str, SharedMemory]) -> None:
    for block in blocks.values():
        try:
            block.unlink()
        except FileNotFoundError:
            pass
        try:
            block.close()
        except BufferError:  # a call in flight still has a view; the mapping goes with it
            pass
    blocks.clear()


def _check_factories(factories: Sequence[Callable[[], Restorer]]) -> bytes:
    for factory in factories:
        if getattr(factory, "__module__", None) == "__main__" or (
            type(factory).__module__ == "__main__"
        ):
            raise ValueError(
                f"{factory!r} is defined in your script (__main__), which the worker process "
                "cannot import; define it in a module of its own"
            )
    try:  # here, so that what cannot cross fails before any process starts
        return pickle.dumps(list(factories))
    except (pickle.PicklingError, AttributeError, TypeError) as e:
        raise ValueError(
            f"the stages cannot be sent to a worker process ({e}); give factories that can be "
            "pickled: a StageRecipe, or a function or class defined at module level"
        ) from None


class ProcessExecutor:
    """Runs restorers in one worker process; see the module docstring.

    ``factories`` are picklable callables that build each restorer in the worker (a
    :class:`StageRecipe` for restorers by name, or a function defined in an importable
    module). :meth:`start` launches the worker and returns a :class:`RemoteStage` per factory.
    ``priority``: "idle" (``SCHED_IDLE``: only CPU time nothing else wants) or a nice value.
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
        if os.name != "posix":
            raise ValueError(
                "the process executor needs Linux or macOS (it passes the worker a socket); "
                "use executor 'thread' here"
            )
        if not factories:
            raise ValueError("a process executor needs at least one restorer factory")
        if priority != "idle" and not (isinstance(priority, int) and 0 <= priority <= 19):
            raise ValueError(f"priority must be 'idle' or a nice value 0-19, not {priority!r}")
        self._factories = list(factories)
        self._factories_pickled = _check_factories(self._factories)
        self.call_timeout_s = call_timeout_s
        self.start_timeout_s = start_timeout_s
        self.max_restarts = max_restarts
        self.priority = priority
        self.stages: list[RemoteStage] = []
        self.restarts = 0
        self._deaths_in_a_row = 0
        self._held = _Held()
        self._lock = threading.Lock()
        self._closing = threading.Event()
        self._in_call = False
        # a hook dropped without close() (or a failed open) still leaves nothing behind
        self._finalizer = weakref.finalize(self, self._held.reap)

    # -- life cycle ---------------------------------------------------------------------------

    def start(self) -> list[RemoteStage]:
        """Start the worker, build the restorers there, and return their stand-ins.

        ValueError carries the worker's message when a restorer cannot be built (unknown
        name, corrupt weights); StageProcessError when the worker does not come up. Either
        way nothing is left running.
        """
        try:
            with self._lock:
                described = self._launch()
            self.stages = [RemoteStage(self, slot, d) for slot, d in enumerate(described)]
            for stage in self.stages:
                check_restorer(stage)
        except BaseException:
            self.close()
            raise
        return list(self.stages)

    def _launch(self) -> list[Described]:
        # A fresh interpreter, not multiprocessing's spawn: spawn re-runs the user's main
        # script (a script without ``if __name__ == "__main__"`` would start acquiring again),
        # and fork would copy Qt, torch and camera threads. The socket pair is the pipe.
        ours, theirs = socket.socketpair()
        with theirs:
            process = subprocess.Popen(
                [sys.executable, "-m", "live_restore._stage_worker", str(theirs.fileno())],
                pass_fds=[theirs.fileno()],
                stdin=subprocess.DEVNULL,
                env=child_environment(),
            )
        conn = Connection(ours.detach())
        self._held.process, self._held.conn = process, conn
        try:
            conn.send(list(sys.path))
            conn.send((self._factories_pickled, self.priority))
        except OSError:
            pass  # it died at once: _await says how
        reply = self._await(self.start_timeout_s, "starting")
        if reply[0] == "failed":
            self._stop_process()
            raise ValueError(reply[1])
        described: list[Described] = reply[1]
        return described

    def replace(self, slot: int, factory: Callable[[], Restorer]) -> RemoteStage:
        """Build ``factory``'s restorer in the worker in place of ``slot``'s; its stand-in.

        The old restorer is closed there; a restarted worker builds the new one. ValueError
        carries the worker's message when it cannot be built (the old one then stays). As in
        :meth:`run`, the wait holds no lock: ``close`` can stop the worker under a slow load.
        """
        factories = [*self._factories[:slot], factory, *self._factories[slot + 1 :]]
        pickled = _check_factories(factories)
        with self._lock:
            self._check_open()
            self._ensure_running(self.stages[slot].name)
            conn = self._held.conn
            assert conn is not None
            self._in_call = True
        try:
            try:
                conn.send(("replace", slot, pickle.dumps(factory)))
            except OSError:
                pass  # it died between calls: _await says how
            reply = self._await(self.start_timeout_s, "loading the adapted weights")
        finally:
            self._in_call = False
        if reply[0] == "failed":
            raise ValueError(reply[1])
        stage = RemoteStage(self, slot, reply[1])
        check_restorer(stage)
        with self._lock:
            self._factories, self._factories_pickled = factories, pickled
            self.stages[slot] = stage
        return stage

    def close(self) -> None:
        """Stop the worker (politely, then SIGKILL) and unlink the shared memory.

        Safe while a call is in flight in another thread: that call fails as "closed".
        """
        self._closing.set()  # wakes a back-off, stops a relaunch
        with self._lock:
            self._stop_process()
            _unlink(self._held.blocks)
        self._finalizer.detach()

    @property
    def pid(self) -> int | None:
        """The worker's process id (None when none runs)."""
        process = self._held.process
        return int(process.pid) if process is not None and process.poll() is None else None

    def _stop_process(self) -> None:
        process, conn = self._held.process, self._held.conn
        self._held.process = self._held.conn = None
        if process is None:
            return
        polite = conn is not None and not self._in_call and process.poll() is None
        if polite:
            try:
                conn.send(("close",))  # type: ignore[union-attr]
            except OSError:
                polite = False
        steps = ((None, 5.0), (process.terminate, 2.0)) if polite else ((process.terminate, 2.0),)
        for stop, grace_s in (*steps, (process.kill, None)):
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
        inputs = np.ascontiguousarray(inputs)
        height, width = inputs.shape[-2:]
        out_shape: tuple[int, ...] = (height * restorer.scale, width * restorer.scale)
        if batched:
            out_shape = (inputs.shape[0], *out_shape)
        elif (stacked := restorer.grouping.stacked_outputs(len(inputs))) is not None:
            out_shape = (stacked, *out_shape)  # e.g. a pair's full-rate frames
        self._wait_out_backoff()
        with self._lock:
            self._check_open()
            self._ensure_running(restorer.name)
            block_in = self._block("in", inputs.nbytes)
            block_out = self._block("out", int(np.prod(out_shape)) * 4)
            np.ndarray(inputs.shape, inputs.dtype, buffer=block_in.buf)[...] = inputs
            conn = self._held.conn
            assert conn is not None
            self._in_call = True
        message = (
            "call",
            restorer.slot,
            batched,
            (block_in.name, inputs.shape, inputs.dtype.str),
            (block_out.name, out_shape),
        )
        try:
            try:
                conn.send(message)
            except OSError:
                pass  # it died between calls: _await says how
            timeout = self.call_timeout_s * (inputs.shape[0] if batched else 1)
            reply = self._await(timeout, f"restoring with {restorer.name!r}")
        finally:
            self._in_call = False
        self._deaths_in_a_row = 0
        return self._result(reply, block_out, out_shape)

    def _result(
        self, reply: tuple[Any, ...], block_out: SharedMemory, out_shape: tuple[int, ...]
    ) -> np.ndarray:
        if reply[0] == "raised":
            _, type_name, text, remote_trace = reply
            error: Exception = (
                MemoryError(text) if type_name == "MemoryError" else RuntimeError(
                    f"{type_name}: {text}"
                )
            )  # fmt: skip
            raise error from _RemoteTraceback(remote_trace)
        if reply[0] == "not-an-array":
            raise StageProcessError(f"the stage returned {reply[1]}, not a numpy array")
        if reply[0] == "odd":  # the wrong array: the stage runner says what is wrong with it
            odd: np.ndarray = reply[1]
            return odd
        with self._lock:
            self._check_open()
            view = np.ndarray(out_shape, np.float32, buffer=block_out.buf)
            return np.array(view, copy=True)  # the block is reused by the next call

    def _check_open(self) -> None:
        if self._closing.is_set():
            raise StageProcessError("the stage process was closed (the hook is closing)")

    def _block(self, key: str, nbytes: int) -> SharedMemory:
        block = self._held.blocks.get(key)
        if block is None or block.size < nbytes:
            if block is not None:
                _unlink({key: block})
            name = f"{shared_memory_prefix()}{next(_BLOCK_COUNTER)}"
            block = SharedMemory(name=name, create=True, size=max(nbytes, 1))
            self._held.blocks[key] = block
        return block

    def _wait_out_backoff(self) -> None:
        process = self._held.process
        if process is not None and process.poll() is None:
            return
        if self._deaths_in_a_row > self.max_restarts or self._deaths_in_a_row == 0:
            return  # given up (said under the lock), or never died: start now
        backoff_s = min(0.5 * 2 ** (self._deaths_in_a_row - 1), 8.0)
        log.warning("restarting the stage process in %.1f s", backoff_s)
        self._closing.wait(backoff_s)  # close() cuts it short

    def _ensure_running(self, stage: str) -> None:
        process = self._held.process
        if process is not None and process.poll() is None:
            return
        if self._deaths_in_a_row > self.max_restarts:
            raise StageProcessError(
                f"the stage process died {self._deaths_in_a_row} times in a row; "
                f"{stage!r} is given up"
            )
        self._stop_process()
        self.restarts += 1
        try:
            self._launch()  # the same factories: the same restorers in the same slots
        except ValueError as e:  # it came up but could not build them (GPU memory, a file)
            self._deaths_in_a_row += 1
            raise StageProcessError(f"the restarted stage process failed: {e}") from None

    def _await(self, timeout_s: float, doing: str) -> tuple[Any, ...]:
        process, conn = self._held.process, self._held.conn
        if process is None or conn is None:  # close() took them
            raise StageProcessError("the stage process was closed (the hook is closing)")
        # a worker that dies closes its end of the socket: the pipe turns readable at once
        try:
            ready = conn.poll(timeout_s)
            if ready:
                reply: tuple[Any, ...] = conn.recv()
                return reply
        except (EOFError, OSError):
            ready = True  # the worker went away mid-reply (or close() closed the pipe)
        self._check_open()
        self._deaths_in_a_row += 1
        if not ready:
            if process.poll() is None:
                process.kill()
                process.wait()
            raise StageProcessError(
                f"the stage process hung ({doing} took over {timeout_s:.0f} s); it was killed "
                "and restarts on the next call"
            )
        try:
            process.wait(5.0)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        raise StageProcessError(
            f"the stage process died while {doing} ({_exit_reason(process.returncode)}); it "
            "restarts on the next call"
        )


def _exit_reason(exitcode: int | None) -> str:
    if exitcode is None:
        return "still running"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:  # a real-time signal has no name
            name = f"signal {-exitcode}"
        hint = " (by someone, or by the kernel's OOM killer)" if name == "SIGKILL" else ""
        return f"killed by {name}{hint}"
    return f"exit code {exitcode}"
