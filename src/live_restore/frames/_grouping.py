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

A grouping owns its whole plan, so nothing else asks which kind it is: the groups of a stream
(``add``, ``finish``), where each group's outputs go (``outputs``, ``gap_before``; several for
an interpolation pair, on a full-rate axis), whether a live stream can form groups at all
(``live_problem``) and the plan over a finished image (``batch_plan``). A live stream is a time
series: frame ``k`` taken from live mode has index ``{"t": k}``.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Protocol, runtime_checkable

import numpy as np

from ._frame import CAMERA_AXIS

__all__ = [
    "AxisSet",
    "BatchPlan",
    "FrameGroup",
    "FullRateOutput",
    "Grouping",
    "PlannedGroup",
    "SingleFrame",
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


Index = tuple[int, ...]  # a position in an image's leading (non y, x) axes


@dataclass(frozen=True)
class FullRateOutput:
    """One output of a group: where it goes and whether it was acquired.

    On a full-rate axis (interpolation) real frame i sits at ``i * factor``; elsewhere a
    group's one output goes to the group's index.
    """

    index: dict[str, int]
    interpolated: bool = False
    fraction: float = 1.0  # between the pair's frames (1.0: the newer real frame itself)


@dataclass(frozen=True)
class PlannedGroup:
    """One group of a batch plan: the input positions it reads, the output positions it fills."""

    outputs: tuple[Index, ...]
    inputs: tuple[Index, ...]


@dataclass(frozen=True)
class BatchPlan:
    """Every group over a finished image: the output's leading axes and shape, and the groups."""

    axes: tuple[str, ...]
    shape: tuple[int, ...]
    groups: list[PlannedGroup]


@runtime_checkable
class Grouping(Protocol):
    """Turns a stream of frames into the groups a stage takes, and places their outputs."""

    removed_axis: str | None
    """The MDA axis the group spans and the output drops (``None``: same axes as raw)."""

    group_size: int
    """Frames in a full group (what a stage's input stacks; 1: a 2-D frame)."""

    full_rate: tuple[str, int] | None
    """``(axis, factor)`` when outputs go on a full-rate axis (interpolation), else None."""

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """Take the next frame; return the groups it completes (or proves incomplete)."""
        ...

    def finish(self) -> list[FrameGroup]:
        """The acquisition ended: return what is left over, as incomplete groups."""
        ...

    def sequence_problem(self, sequence: object) -> str | None:
        """Why ``sequence`` can never give complete groups, or None (also when it cannot tell)."""
        ...

    def live_problem(self) -> str | None:
        """Why a live stream (consecutive frames, no MDA axes) can never give a group, or None."""
        ...

    def outputs(self, group: FrameGroup) -> list[FullRateOutput]:
        """Where the group's outputs go, in the order the stage returns them."""
        ...

    def stacked_outputs(self, frames: int) -> int | None:
        """Outputs a group of ``frames`` frames gives, stacked; None: one 2-D output."""
        ...

    def gap_before(self, group: FrameGroup) -> list[dict[str, int]]:
        """Output positions a missing frame before ``group`` leaves empty (never guessed)."""
        ...

    def batch_plan(self, axes: tuple[str, ...], shape: tuple[int, ...]) -> BatchPlan:
        """Every group over a finished image with leading ``axes`` of ``shape``.

        ValueError when the image cannot give one.
        """
        ...


def axis_position(axes: tuple[str, ...], axis: str, what: str) -> int:
    """Where ``axis`` is in an image's leading ``axes``; ValueError saying ``what`` needs it."""
    if axis not in axes:
        raise ValueError(f"{what}; the image has no '{axis}' axis (axes: {''.join(axes)})")
    return axes.index(axis)


class _OneOutput:
    """What most groupings share: one 2-D output per group, at the group's index."""

    full_rate: tuple[str, int] | None = None

    def outputs(self, group: FrameGroup) -> list[FullRateOutput]:
        """The one output, at the group's index."""
        return [FullRateOutput(dict(group.index))]

    def stacked_outputs(self, frames: int) -> int | None:
        """One 2-D output."""
        return None

    def gap_before(self, group: FrameGroup) -> list[dict[str, int]]:
        """Nothing is placed before a group."""
        return []

    def live_problem(self) -> str | None:
        """Consecutive frames can form its groups."""
        return None


class SingleFrame(_OneOutput):
    """Every frame on its own: the group is the 2-D frame."""

    removed_axis: str | None = None
    group_size = 1

    def add(self, number: int, index: dict[str, int], frame: np.ndarray) -> list[FrameGroup]:
        """One frame is one complete group."""
        return [FrameGroup((number,), dict(index), frame)]

    def finish(self) -> list[FrameGroup]:
        """Nothing is ever left over."""
        return []

    def sequence_problem(self, sequence: object) -> str | None:
        """Any sequence will do."""
        return None

    def batch_plan(self, axes: tuple[str, ...], shape: tuple[int, ...]) -> BatchPlan:
        """Every frame on its own."""
        positions = itertools.product(*map(range, shape))
        return BatchPlan(axes, shape, [PlannedGroup((i,), (i,)) for i in positions])


class AxisSet(_OneOutput):
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
        self.size = self.group_size = int(size)
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

    def live_problem(self) -> str | None:
        """Live mode has no axis to take a set along: a set never forms."""
        return (
            f"a set is {self.size} frames along the '{self.axis}' axis (the SIM pattern presets) "
            "and live mode is one stream of frames with no such axis"
        )

    def batch_plan(self, axes: tuple[str, ...], shape: tuple[int, ...]) -> BatchPlan:
        """One group per set along the axis; the output drops that axis."""
        what = f"the model restores sets of {self.size} frames along '{self.axis}'"
        where = axis_position(axes, self.axis, what)
        if shape[where] != self.size:
            raise ValueError(
                f"the model restores sets of {self.size} frames along '{self.axis}'; the image "
                f"has {shape[where]} there"
            )
        rest = [range(n) for k, n in enumerate(shape) if k != where]
        groups = []
        for out in itertools.product(*rest):
            inputs = tuple((*out[:where], p, *out[where:]) for p in range(self.size))
            groups.append(PlannedGroup((out,), inputs))
        keep = [k for k in range(len(axes)) if k != where]
        return BatchPlan(tuple(axes[k] for k in keep), tuple(shape[k] for k in keep), groups)
