"""The process executor's worker: builds the restorers, then answers calls over its pipe.

It runs in a fresh interpreter (``python -m live_restore._stage_worker FD``). Inputs and outputs
sit in shared-memory blocks the parent owns; this side only attaches to them, and unregisters
them from its own resource tracker so that they are never unlinked from here.
"""

from __future__ import annotations

import logging
import os
import pickle
import signal
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing import resource_tracker
from multiprocessing.connection import Connection
from multiprocessing.shared_memory import SharedMemory
from typing import Any

import numpy as np

from live_restore.frames import Grouping, Restorer, check_restorer, output_kind_of

__all__ = ["Described", "lower_priority", "worker_main"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Described:
    """What the parent needs to know of a restorer that lives in the worker."""

    name: str
    scale: int
    grouping: Grouping
    max_batch: int
    writes_input: bool
    provenance: dict[str, str]
    output_kind: str = "image"


def _describe(restorer: Restorer) -> Described:
    check_restorer(restorer)
    return Described(
        restorer.name,
        restorer.scale,
        restorer.grouping,
        restorer.max_batch,
        restorer.writes_input,
        dict(restorer.provenance()),
        output_kind_of(restorer),
    )


def lower_priority(priority: str | int) -> None:
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
    """Build the restorers, then answer calls until told to close or orphaned."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    sys.path[:] = conn.recv()
    pickled, priority = conn.recv()
    lower_priority(priority)
    factories: list[Callable[[], Restorer]]
    try:
        factories = pickle.loads(pickled)
    except Exception as e:  # a factory whose module this process cannot import
        conn.send(("failed", f"the stage process cannot load the stages: {e}"))
        return
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
            if message[0] == "replace":
                conn.send(_replace(message, restorers))
                continue
            conn.send(_answer(message, restorers, attached))
    finally:
        for block in attached.values():
            try:
                block.close()
            except BufferError:
                pass
        for restorer in restorers:
            try:
                restorer.close()
            except Exception:
                log.exception("closing %s in the stage process", restorer.name)


def _replace(message: tuple[Any, ...], restorers: list[Restorer]) -> tuple[Any, ...]:
    """Build a restorer in place of one slot's (adapted weights); the old one is closed."""
    _, slot, pickled = message
    restorer = None
    try:
        restorer = pickle.loads(pickled)()
        described = _describe(restorer)
    except Exception as e:
        if restorer is not None:  # built but unusable: it must not hold its memory
            try:
                restorer.close()
            except Exception:
                log.exception("closing a restorer that could not be described")
        return ("failed", f"{type(e).__name__}: {e}" if not isinstance(e, ValueError) else str(e))
    old, restorers[slot] = restorers[slot], restorer
    try:
        old.close()
    except Exception:
        log.exception("closing %s in the stage process", old.name)
    return ("ready", described)


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
    if not isinstance(output, np.ndarray):  # said in words: it may not even pickle
        return ("not-an-array", type(output).__name__)
    if output.shape != tuple(out_shape) or output.dtype.kind not in "uif":
        return ("odd", output)  # the stage runner says what is wrong with it
    out_block = _attach(attached, "out", out_name)
    np.ndarray(out_shape, np.float32, buffer=out_block.buf)[...] = output
    return ("done",)
