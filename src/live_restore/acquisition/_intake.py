"""Intake: the only place where the acquisition thread and the worker meet.

``put_*`` run on whatever thread delivers the frame (the MDA thread with psygnal, the Qt main
thread with Qt signals) and are O(1): one short lock, one append, no copy, no I/O. The worker
takes items in acquisition order with ``take``.

Memory is bounded by policy:

- ``"all"``: frames are held in memory until the held images reach ``memory_bound_bytes``;
  beyond that only a small reference (arrival number, event index: ~256 B) is kept and the
  worker reads the frame back from the raw store when it gets there. So every frame is
  restored eventually and the images held stay within the bound (references are counted in
  ``held_bytes`` but not bounded: one per frame the worker is behind, 1 MB per 4,000 frames).
- ``"latest"``: at most one frame waits; a newer frame replaces it and the replaced one is
  counted as skipped (consecutive skips are kept as one run, so the queue stays tiny).
"""

from __future__ import annotations

import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from live_restore.frames import Policy

__all__ = ["Intake", "IntakeFrame", "SequenceEnd", "SequenceStart", "SkippedRun"]

# what a held reference costs, counted against the bound (measured ~200-300 B with its dict)
REFERENCE_BYTES = 256


@dataclass(slots=True)
class IntakeFrame:
    """One frame as the acquisition delivered it.

    ``image`` is ``None`` when the frame was not held in memory: read it from the raw store.
    """

    number: int
    index: dict[str, int]
    received_s: float  # time.perf_counter() at intake
    runner_time_ms: float | None
    image: np.ndarray | None = field(repr=False)
    z_um: float | None = None  # focus position the frame was taken at, when the MDA says


@dataclass(slots=True)
class SkippedRun:
    """Frames ``first .. first + count - 1`` were skipped under the ``"latest"`` policy."""

    first: int
    count: int
    indices: list[dict[str, int]]  # their event indices, for the table (kept short, see Intake)


@dataclass(slots=True)
class SequenceStart:
    """An acquisition began: what it is, its summary metadata, and its raw store view."""

    sequence: Any
    meta: dict[str, Any]
    raw_view: Any  # ome-writers StreamView, or None when the MDA writes no raw store
    started_s: float


@dataclass(slots=True)
class SequenceEnd:
    """The acquisition ended (completed or cancelled)."""

    sequence: Any
    canceled: bool
    reason: str = ""  # how it ended, when not simply completed or canceled


IntakeItem = IntakeFrame | SkippedRun | SequenceStart | SequenceEnd

_MAX_SKIPPED_INDICES = 64  # per run; beyond that the table shows the run's numbers only


class Intake:
    """Bounded hand-over from the acquisition to the worker (see module docstring)."""

    def __init__(self, policy: Policy | str, memory_bound_bytes: int) -> None:
        if policy not in tuple(Policy):
            raise ValueError(f"policy must be 'all' or 'latest', got {policy!r}")
        if memory_bound_bytes < 1:
            raise ValueError(f"memory bound must be positive, got {memory_bound_bytes} bytes")
        self.policy = Policy(policy)
        self.memory_bound_bytes = int(memory_bound_bytes)
        self._items: deque[IntakeItem] = deque()
        self._ready = threading.Condition(threading.Lock())
        self.bytes_held = 0  # images held; this is what memory_bound_bytes bounds
        self.peak_bytes_held = 0
        self.references_held = 0
        self.frames_waiting = 0
        self.frames_received = 0
        self.frames_spilled = 0  # "all": frames to be read back from the raw store
        self.frames_skipped = 0  # "latest": frames replaced by newer ones
        self.frames_dropped = 0  # "all": neither held nor readable from a raw store
        self.dropped_numbers: list[int] = []  # their arrival numbers
        self.can_spill = True  # False while the running MDA writes no raw store

    # -- acquisition side: O(1) ---------------------------------------------------------

    def put_frame(self, frame: IntakeFrame) -> bool:
        """Hand over one frame. Returns False if the frame had to be dropped (see below).

        A frame is dropped only under ``"all"`` when memory is full *and* there is no raw
        store to read it back from; the caller reports it.
        """
        if frame.image is None:
            raise ValueError("put_frame needs the frame's image")
        nbytes = frame.image.nbytes
        with self._ready:
            self.frames_received += 1
            if self.policy is Policy.LATEST:
                self._replace_waiting_frame()
            elif self.bytes_held + nbytes > self.memory_bound_bytes:
                if not self.can_spill:
                    self.frames_dropped += 1
                    self.dropped_numbers.append(frame.number)
                    return False
                frame.image = None
                self.frames_spilled += 1
            if frame.image is None:
                self.references_held += 1
            else:
                self.bytes_held += nbytes
                self.peak_bytes_held = max(self.peak_bytes_held, self.bytes_held)
            self._items.append(frame)
            self.frames_waiting += 1
            self._ready.notify()
        return True

    def _replace_waiting_frame(self) -> None:
        # called with the lock held: the newest waiting frame (if any) becomes a skip
        if not self._items or not isinstance(self._items[-1], IntakeFrame):
            return
        waiting = self._items.pop()
        assert isinstance(waiting, IntakeFrame)  # checked above; narrows the type
        self.frames_waiting -= 1
        if waiting.image is not None:
            self.bytes_held -= waiting.image.nbytes
        self.frames_skipped += 1
        previous = self._items[-1] if self._items else None
        if isinstance(previous, SkippedRun) and previous.first + previous.count == waiting.number:
            previous.count += 1
            if len(previous.indices) < _MAX_SKIPPED_INDICES:
                previous.indices.append(waiting.index)
        else:
            self._items.append(SkippedRun(waiting.number, 1, [waiting.index]))

    def note_dropped(self, number: int) -> None:
        """The worker found a frame it could not read back: count it with the others."""
        with self._ready:
            self.frames_dropped += 1
            self.dropped_numbers.append(number)

    def put_marker(self, marker: SequenceStart | SequenceEnd) -> None:
        """Hand over a sequence boundary, in order with the frames."""
        with self._ready:
            self._items.append(marker)
            self._ready.notify()

    # -- worker side ----------------------------------------------------------------------

    def take(self, max_frames: int, timeout_s: float) -> list[IntakeItem]:
        """Up to ``max_frames`` frames (and any markers among them), oldest first.

        Waits up to ``timeout_s`` for the first item; returns what is there, possibly nothing.
        """
        deadline = time.perf_counter() + timeout_s
        with self._ready:
            while not self._items:
                remaining = deadline - time.perf_counter()
                if remaining <= 0:
                    return []
                self._ready.wait(remaining)
            taken: list[IntakeItem] = []
            frames = 0
            while self._items and frames < max_frames:
                item = self._items.popleft()
                taken.append(item)
                if isinstance(item, IntakeFrame):
                    frames += 1
                    self.frames_waiting -= 1
                    if item.image is None:
                        self.references_held -= 1
                    else:
                        self.bytes_held -= item.image.nbytes
            return taken

    def wait(self, timeout_s: float) -> None:
        """Block until an item is waiting or ``timeout_s`` has passed."""
        with self._ready:
            if not self._items:
                self._ready.wait(timeout_s)

    def put_back(self, items: list[IntakeItem]) -> None:
        """Return items the worker could not handle yet to the front, in their order."""
        with self._ready:
            for item in reversed(items):
                self._items.appendleft(item)
                if isinstance(item, IntakeFrame):
                    self.frames_waiting += 1
                    if item.image is None:
                        self.references_held += 1
                    else:
                        self.bytes_held += item.image.nbytes

    def _held_bytes(self) -> int:
        return self.bytes_held + self.references_held * REFERENCE_BYTES

    @property
    def held_bytes(self) -> int:
        """Images plus references now held."""
        with self._ready:
            return self._held_bytes()

    def drop_all(self) -> list[IntakeItem]:
        """Empty the intake (used when the hook gives up on pending work)."""
        with self._ready:
            items = list(self._items)
            self._items.clear()
            self.bytes_held = 0
            self.references_held = 0
            self.frames_waiting = 0
            return items
