"""Groupings along a series: windows of consecutive frames (mfsr) and pairs (interpolation).

See :mod:`._grouping` for what a grouping is and owns.
"""

from __future__ import annotations

import itertools
from collections import deque

import numpy as np

from ._grouping import (
    BatchPlan,
    FrameGroup,
    FullRateOutput,
    Index,
    PlannedGroup,
    _OneOutput,
    axis_position,
)

__all__ = ["AxisPairs", "TemporalWindow"]


class TemporalWindow(_OneOutput):
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
        self.size = self.group_size = int(size)
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

    def batch_plan(self, axes: tuple[str, ...], shape: tuple[int, ...]) -> BatchPlan:
        """A window per frame along t, the series' ends repeated as live (no waiting there)."""
        where = axis_position(axes, "t", "the model needs a time series")
        groups = []
        for out in itertools.product(*map(range, shape)):
            if self.centred:
                half = self.size // 2
                last = shape[where] - 1 if self.wait else out[where]
                times = [min(max(out[where] + d, 0), last) for d in range(-half, half + 1)]
            else:
                first = max(out[where] - self.size + 1, 0)
                times = [first] * (self.size - (out[where] - first + 1))
                times += list(range(first, out[where] + 1))
            inputs = tuple((*out[:where], t, *out[where + 1 :]) for t in times)
            groups.append(PlannedGroup((out,), inputs))
        return BatchPlan(axes, shape, groups)


_Held = tuple[int, int, dict[str, int], np.ndarray]


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
        self.group_size = 2
        self.full_rate: tuple[str, int] | None = (axis, self.factor)
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

    def stacked_outputs(self, frames: int) -> int | None:
        """A pair gives ``factor`` frames (those between, then the newer); a frame alone, 1."""
        return self.factor if frames == 2 else 1

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

    def live_problem(self) -> str | None:
        """Live frames are a time series: pairs along t form, along z they never do."""
        if self.axis == "t":
            return None
        return "interpolation along 'z' needs planes, and live mode is one plane over time"

    def batch_plan(self, axes: tuple[str, ...], shape: tuple[int, ...]) -> BatchPlan:
        """The full-rate image: acquired position i at i * factor, each pair fills between."""
        where = axis_position(axes, self.axis, f"interpolation runs along '{self.axis}'")
        if shape[where] < 2:
            raise ValueError(
                f"interpolation along '{self.axis}' needs at least 2 positions there; the image "
                f"has {shape[where]}"
            )
        out_shape = (*shape[:where], self.full_rate_length(shape[where]), *shape[where + 1 :])
        groups = []
        for position in itertools.product(*map(range, shape)):
            i = position[where]

            def at(p: int, position: Index = position) -> Index:
                return (*position[:where], p, *position[where + 1 :])

            if i == 0:
                groups.append(PlannedGroup((at(0),), (position,)))
            else:
                start = (i - 1) * self.factor
                outputs = tuple(at(start + j) for j in range(1, self.factor + 1))
                groups.append(PlannedGroup(outputs, (at(i - 1), position)))
        return BatchPlan(axes, out_shape, groups)
