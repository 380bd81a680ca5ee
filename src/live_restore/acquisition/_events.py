"""What the hook tells the world: ``hook.events.restored``, ``.error``, ``.stats``.

The signals are emitted from the hook's worker thread. A GUI must not touch widgets in a slot
directly: connect with ``thread="main"`` (psygnal queues it to the Qt main thread) or read the
hook's display mailbox from a main-thread timer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from psygnal import Signal, SignalGroup

from live_restore.focus import DefocusReading

from ._counters import HookStats

__all__ = [
    "HookEvents",
    "RawFrame",
    "RestoredFrame",
    "StageError",
]


@dataclass(frozen=True)
class RestoredFrame:
    """One stage's output for one frame (or frame group)."""

    stage: str
    numbers: tuple[int, ...]  # arrival numbers of the input frames
    index: dict[str, int]  # where the output belongs (MDA event index)
    raw: np.ndarray = field(repr=False)  # the newest input frame, as acquired
    restored: np.ndarray = field(repr=False)  # float32, scaled by the stage's factor
    latency_ms: float
    live: bool = False  # from live mode (not saved)
    kind: str = "image"  # "image", or "sigma": a trust map (a model's expected error)


@dataclass(frozen=True)
class RawFrame:
    """The newest frame the worker finished with (whatever its stages did with it)."""

    number: int  # arrival number (-1 in live mode)
    index: dict[str, int]
    image: np.ndarray = field(repr=False)
    received_s: float  # time.perf_counter() when the hook received it
    live: bool = False


@dataclass(frozen=True)
class StageError:
    """A stage (or a sink) failed on a frame; the acquisition went on."""

    stage: str
    frame: int | None  # arrival number; None when not tied to one frame
    kind: str  # exception | bad-output | out-of-memory | disabled | sink | no-raw-store | ...
    message: str


class HookEvents(SignalGroup):
    """The hook's signals (psygnal), emitted from its worker thread."""

    restored = Signal(RestoredFrame)
    error = Signal(StageError)
    stats = Signal(HookStats)
    defocus = Signal(DefocusReading)
