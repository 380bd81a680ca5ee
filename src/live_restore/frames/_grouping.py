"""Grouping: which frames a stage restores together.

Most stages take one frame at a time (:class:`SingleFrame`). Multi-frame models take a group:
a SIM set is the frames that differ only along one axis (``AxisSet("c", 9)``: nine pattern
channels at one time point); a temporal window is each frame with the frames before it at
the same position, channel and plane (``TemporalWindow(3)``); an interpolation pair is each
frame with the one before it along one axis (``AxisPairs("t", 2)``), whose output is the frames
between them on the full-rate axis.

A grouping sees frames in acquisition order and returns the groups they complete. It never
guesses: a set that is still incomplete when a frame of the next set arrives (a cancelled or
skipped frame) is returned as *incomplete* so the caller can report it, never restored from
the wrong frames.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ._frame import CAMERA_AXIS

__all__ = [
    "AxisPairs",
    "AxisSet",
    "FrameGroup",
    "FullRateOutput",
    "Grouping",
    "SingleFrame",
    "TemporalWindow",
]


@dataclass(frozen=True)
class FrameGroup:
    """Frames that a stage restores together, and where its output belongs.

    ``numbers`` are the frames' arrival numbers within the acquisition; ``index`` is the
    output's position (the MDA event index, less any axis the group spans). ``frames`` is
    ``None`` for an incomplete group, which must be reported and not restored.
    """

    numbers: tuple[int, ...]
    index: dict[str, int]
    frames: np.ndarray | None = field(repr=False)
    sources: tuple[int, ...] = ()  # every frame the output was made from, when not ``numbers``

    @property
    def complete(self) -> bool:
        """Whether every frame of the group arrived."""
        return self.frames is not None


@runtime_checkable
class Grouping(Protocol):
    """Turns a stream of frames into the groups a stage takes."""

    removed_axis: str | None
    """The MDA axis the group spans and the output drops (``None``: same axes as raw)."""

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """Take the next frame; return the groups it completes (or proves incomplete)."""
        ...

    def finish(self) -> list[FrameGroup]:
        """The acquisition ended: return what is left over, as incomplete groups."""
        ...

    def sequence_problem(self, sequence: object) -> str | None:
        """Why ``sequence`` can never give complete groups, or None (also when it cannot tell)."""
        ...


class SingleFrame:
    """Every frame on its own: the group is the 2-D frame."""

    removed_axis: str | None = None

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """One frame is one complete group."""
        return [FrameGroup((number,), dict(index), frame)]

    def finish(self) -> list[FrameGroup]:
        """Nothing is ever left over."""
        return []

    def sequence_problem(self, sequence: object) -> str | None:
        """Any sequence will do."""
        return None


class AxisSet:
    """Frames that differ only along ``axis`` form a set of ``size`` (a SIM raw set).

    The group's frames are stacked in arrival order, shape ``(size, rows, columns)``. The
    set must arrive as ``axis`` = 0..size-1 in order; anything else closes the set as
    incomplete.
    """

    def __init__(self, axis: str, size: int) -> None:
        if size < 2:
            raise ValueError(f"a set needs at least 2 frames, got {size}")
        self.removed_axis: str | None = axis
        self.axis = axis
        self.size = int(size)
        # per camera (several cameras give one frame each per event, interleaved): the set
        # being collected, as (output key, numbers, frames)
        self._open: dict[int, tuple[tuple[tuple[str, int], ...], list[int], list[np.ndarray]]] = {}

    def _output_index(self, index: dict[str, int]) -> dict[str, int]:
        return {k: v for k, v in index.items() if k != self.axis}

    def _flush_incomplete(self, camera: int) -> list[FrameGroup]:
        if camera not in self._open:
            return []
        key, numbers, _ = self._open.pop(camera)
        return [FrameGroup(tuple(numbers), dict(key), None)]

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """Collect the frame; a set closes when it holds ``size`` frames in axis order."""
        key = tuple(sorted(self._output_index(index).items()))
        position = index.get(self.axis, 0)
        camera = int(index.get(CAMERA_AXIS, 0))
        out: list[FrameGroup] = []
        held = self._open.get(camera)
        if held is not None and (key != held[0] or position != len(held[1])):
            out += self._flush_incomplete(camera)
            held = None
        if position != (0 if held is None else len(held[1])):
            # a set that does not start at 0 can never be complete: report it alone
            out.append(FrameGroup((number,), self._output_index(index), None))
            return out
        _, numbers, frames = self._open.setdefault(camera, (key, [], []))
        numbers.append(number)
        frames.append(frame)
        if len(numbers) == self.size:
            del self._open[camera]
            out.append(FrameGroup(tuple(numbers), dict(key), np.stack(frames)))
        return out

    def finish(self) -> list[FrameGroup]:
        """A set cut short by the end (or cancel) of the acquisition is incomplete."""
        return [g for camera in sorted(self._open) for g in self._flush_incomplete(camera)]

    def sequence_problem(self, sequence: object) -> str | None:
        """Why ``sequence`` cannot give complete sets, or None (also when it cannot tell).

        The axis must hold exactly ``size`` positions (a tenth channel would be taken into a
        set as a pattern) and vary fastest of the axes that vary, so that a set's frames come
        one after another.
        """
        import useq

        if not isinstance(sequence, useq.MDASequence):
            return None
        sizes = {axis: int(n) for axis, n in sequence.sizes.items() if n}
        count = sizes.get(self.axis, 0)
        if count != self.size:
            return (
                f"a set is {self.size} frames along the '{self.axis}' axis and this sequence "
                f"has {count} there; give it exactly the {self.size} SIM pattern presets, in "
                "order (for a widefield channel too, acquire it in a separate sequence)"
            )
        order = [str(a) for a in sequence.axis_order if sizes.get(str(a), 0) > 1]
        if order and order[-1] != self.axis:
            return (
                f"the '{self.axis}' axis must vary fastest for a set's frames to come one after "
                f"another; this sequence's axis order is {''.join(order)} (put "
                f"'{self.axis}' last, e.g. axis_order "
                f"{''.join(a for a in order if a != self.axis) + self.axis!r})"
            )
        return None


class TemporalWindow:
    """Windows of ``size`` consecutive frames at one position, channel and plane (``t`` varies).

    - causal (default): each frame with the ``size - 1`` before it; the output goes to that
      (the newest) frame's index, with no added latency;
    - centred (``centred=True``): each frame with ``size // 2`` on each side; its output is
      made when the last of them arrives, ``size // 2`` frames later, at the centre's index;
    - centred without waiting (``centred=True, wait=False``): the newest frame at the centre,
      its future the newest repeated (as at a series' end): for a model trained on centred
      windows, with no added latency.

    Where the series has no frame (its start, its end, a gap left by a skipped or missing
    time point) the nearest frame of the run is repeated, never one from across the gap: a
    window is never built from frames that are not consecutive. A group's ``numbers`` is the
    output frame alone (its fate); ``sources`` lists every frame fused, oldest first. A
    centred series' last outputs come from :meth:`flush` (or :meth:`finish`) at its end.
    Memory: ``size`` frames per (position, channel, plane) series.
    """

    removed_axis: str | None = None

    def __init__(self, size: int, centred: bool = False, wait: bool = True) -> None:
        if size < 2:
            raise ValueError(f"a temporal window needs at least 2 frames, got {size}")
        if centred and size % 2 == 0:
            raise ValueError(f"a centred window needs an odd number of frames, got {size}")
        self.size = int(size)
        self.centred = bool(centred)
        self.wait = bool(wait) and self.centred
        self.latency_frames = self.size // 2 if self.wait else 0
        # series -> the run of consecutive frames so far: (number, t, index, frame)
        self._series: dict[tuple[tuple[str, int], ...], deque[_Held]] = {}

    def _window(self, run: list[_Held], centre: int) -> FrameGroup:
        """The group for ``run[centre]``, the run's ends repeated where frames are missing."""
        half = self.size // 2 if self.centred else self.size - 1
        after = half if self.centred else 0
        picks = [min(max(centre + d, 0), len(run) - 1) for d in range(-half, after + 1)]
        number, _, index, _ = run[centre]
        frames = np.stack([run[i][3] for i in picks])
        return FrameGroup((number,), dict(index), frames, tuple(run[i][0] for i in picks))

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """The groups this frame completes (a gap first flushes the run it ends)."""
        key = tuple(sorted((k, v) for k, v in index.items() if k != "t"))
        t = int(index.get("t", 0))
        held = self._series.setdefault(key, deque(maxlen=self.size))
        out: list[FrameGroup] = []
        if held and held[-1][1] != t - 1:  # not consecutive: the run ends here
            out += self._flush_run(held)
            held.clear()
        held.append((number, t, dict(index), frame))
        run = list(held)
        if not self.wait:
            out.append(self._window(run, len(run) - 1))
        elif len(run) > self.size // 2:  # the frame size // 2 back now has its future
            out.append(self._window(run, len(run) - 1 - self.size // 2))
        return out

    def _flush_run(self, held: deque[_Held]) -> list[FrameGroup]:
        if not self.wait:
            return []
        run = list(held)
        waiting = min(self.size // 2, len(run))  # the frames whose future never came
        return [self._window(run, i) for i in range(len(run) - waiting, len(run))]

    def flush(self) -> list[FrameGroup]:
        """Every series' outputs still waiting for frames that will not come (the end)."""
        out = [g for held in self._series.values() for g in self._flush_run(held)]
        self._series.clear()
        return sorted(out, key=lambda g: g.numbers)  # acquisition order, as stores expect

    def finish(self) -> list[FrameGroup]:
        """The acquisition ended: what :meth:`flush` gives (complete, padded groups)."""
        return self.flush()

    def sequence_problem(self, sequence: object) -> str | None:
        """Any sequence will do (a short series repeats its frames)."""
        return None


_Held = tuple[int, int, dict[str, int], np.ndarray]


@dataclass(frozen=True)
class FullRateOutput:
    """One frame of a full-rate series: where it goes and whether it was acquired."""

    index: dict[str, int]  # on the full-rate axis (real frame i sits at i * factor)
    interpolated: bool
    fraction: float  # between the pair's frames (1.0: the newer real frame itself)


class AxisPairs:
    """Each frame with the one before it along ``axis`` (same position, channel, other axes).

    For interpolation by ``factor``: real frame ``i`` goes to ``i * factor`` on the full-rate
    axis, and a pair ``(i - 1, i)`` fills ``(i - 1) * factor + 1 .. i * factor - 1`` between.
    A frame whose predecessor did not arrive (the first of a series, or after a gap) is a
    group of one: it is passed through, and the positions before it stay empty, never guessed.
    Group frames are ``(2, H, W)`` (older first) or ``(1, H, W)``. Memory: one frame a series.
    """

    removed_axis: str | None = None

    def __init__(self, axis: str, factor: int) -> None:
        if axis not in ("t", "z"):
            raise ValueError(f"interpolation runs along 't' or 'z', not {axis!r}")
        if not 2 <= int(factor) <= 16:
            raise ValueError(f"the interpolation factor must be 2..16, got {factor}")
        self.axis = axis
        self.factor = int(factor)
        self._last: dict[tuple[tuple[str, int], ...], tuple[int, int, np.ndarray]] = {}

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """The frame with its predecessor (a pair), or alone."""
        key = tuple(sorted((k, v) for k, v in index.items() if k != self.axis))
        position = int(index.get(self.axis, 0))
        previous = self._last.get(key)
        self._last[key] = (number, position, frame)
        if previous is not None and previous[1] == position - 1:
            return [FrameGroup((previous[0], number), dict(index), np.stack((previous[2], frame)))]
        return [FrameGroup((number,), dict(index), frame[None])]

    def outputs(self, group: FrameGroup) -> list[FullRateOutput]:
        """The full-rate frames a group gives, in order: the ones between, then the real one."""
        position = int(group.index.get(self.axis, 0))
        real = FullRateOutput({**group.index, self.axis: position * self.factor}, False, 1.0)
        if len(group.numbers) < 2:
            return [real]
        start = (position - 1) * self.factor
        between = [
            FullRateOutput({**group.index, self.axis: start + j}, True, j / self.factor)
            for j in range(1, self.factor)
        ]
        return [*between, real]

    def gap_before(self, group: FrameGroup) -> list[dict[str, int]]:
        """Full-rate positions left empty before a group of one (not the series' first)."""
        position = int(group.index.get(self.axis, 0))
        if len(group.numbers) >= 2 or position == 0:
            return []
        start = (position - 1) * self.factor
        return [{**group.index, self.axis: start + j} for j in range(1, self.factor)]

    def full_rate_length(self, length: int) -> int:
        """The full-rate axis length for ``length`` acquired positions."""
        return (length - 1) * self.factor + 1 if length > 0 else 0

    def finish(self) -> list[FrameGroup]:
        """Forget the series (every frame already had its output)."""
        self._last.clear()
        return []

    def sequence_problem(self, sequence: object) -> str | None:
        """Why ``sequence`` has nothing to interpolate along the axis, or None."""
        import useq

        if not isinstance(sequence, useq.MDASequence):
            return None
        try:
            sizes = sequence.sizes
        except (ZeroDivisionError, ValueError, TypeError):  # e.g. a duration with interval 0
            return None
        if int(sizes.get("g", 0) or 0) > 1:
            return (
                "interpolation with a grid plan is not built (its tiles share the position "
                "axis of the stores); give the tiles as stage_positions"
            )
        count = int(sizes.get(self.axis, 0) or 0)
        if count < 2:
            what = "time points (time_plan)" if self.axis == "t" else "z planes (z_plan)"
            return (
                f"interpolation along '{self.axis}' needs at least 2 {what} and this sequence "
                f"has {count}"
            )
        return None
