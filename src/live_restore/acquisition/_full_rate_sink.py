"""The store of an interpolation stage: the series at the full rate along one axis.

An interpolation stage (``interp-t``, ``interp-z``) turns every ``factor``-th frame along its
axis into the whole series: real frame ``i`` sits at ``i * factor`` and the frames between are
the network's. Its outputs arrive per pair, for one position and channel at a time, so they are
not in the raw store's order: this store is written with zarr directly (any frame, any order),
not through ome-writers' append-only stream, as OME-Zarr 0.5 laid out as raw's store: one image
(array ``0``) with raw's axes, the interpolated one ``factor`` times longer and its ``scale``
divided by ``factor``; with several positions, one such image per position (``0/``, ``1/``,
...) in a bioformats2raw container.

What each frame is, is in the attributes under ``live_restore``: ``interpolated`` and
``acquired`` list the full-rate indices written, ``missing`` every position of the sequence's
full-rate grid that was never written (the frames before a gap, a failed pair, a cancel). An
empty plane is a fill of zeros: the attributes, not the array, say which frames are real.
"""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import FrameIndex, FullRateOutput, format_index

from ._sinks import SinkError, _dimensions

__all__ = ["FullRateSink", "FullRateView"]

_NGFF_TYPES = {"time": "time", "channel": "channel", "space": "space"}
_POSITION = "p"


class FullRateView:
    """What the viewer reads: raw's axes (positions included), the interpolated one finer.

    Positions are separate images on disk (as in raw's store); the view puts them on the ``p``
    axis where raw's dims have it.
    """

    def __init__(self, arrays: list[Any], dims: tuple[str, ...], axis: str, factor: int) -> None:
        self._arrays = arrays
        self.dims = dims
        self._p = dims.index(_POSITION) if _POSITION in dims else None
        self.dtype = np.dtype(arrays[0].dtype)
        self.axis_scale = {axis: 1.0 / factor}  # napari places it on raw's axis, k steps a unit

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape now (it grows along an unbounded axis)."""
        inner = [int(n) for n in self._arrays[0].shape]
        if self._p is not None:
            inner.insert(self._p, len(self._arrays))
        return tuple(inner)

    def __getitem__(self, key: Any) -> np.ndarray:
        keys = key if isinstance(key, tuple) else (key,)
        keys = keys + (slice(None),) * (len(self.dims) - len(keys))
        if self._p is None:
            return np.asarray(self._arrays[0][keys])
        at, rest = keys[self._p], keys[: self._p] + keys[self._p + 1 :]
        if isinstance(at, (int, np.integer)):
            return np.asarray(self._arrays[int(at)][rest])
        chosen: range = range(len(self._arrays))[at]  # a slice of positions
        parts = [np.asarray(self._arrays[i][rest]) for i in chosen]
        axis = sum(not isinstance(k, (int, np.integer)) for k in keys[: self._p])
        return np.stack(parts, axis=axis)


class FullRateSink:
    """One interpolation stage's full-rate store (see the module docstring).

    Parameters
    ----------
    path : Path
        The store to create (``.ome.zarr``); must not exist.
    frame_shape : (rows, columns)
    pixel_um : float or None
    axis : str
        The axis filled in (``t`` or ``z``).
    factor : int
        Full-rate frames per acquired step along ``axis``.
    provenance : dict
        Written at once, and again with the summary and the frame lists at close.
    """

    def __init__(
        self,
        path: Path,
        frame_shape: tuple[int, int],
        pixel_um: float | None,
        axis: str,
        factor: int,
        provenance: dict[str, Any],
    ) -> None:
        self.path = path
        self.provenance = dict(provenance)
        self.axis = axis
        self.factor = factor
        self.frames_written = 0
        self.missing: list[str] = []
        self.view: FullRateView | None = None
        self._frame_shape = frame_shape
        self._pixel_um = pixel_um
        self._written: dict[tuple[int, ...], bool] = {}  # position (dims order) -> interpolated
        self._dims: tuple[str, ...] = ()  # raw's, positions included
        self._inner: tuple[str, ...] = ()  # each image's (no positions)
        self._bounded: dict[str, bool] = {}
        self._group: Any = None
        self._arrays: list[Any] = []

    def setup(self, sequence: Any) -> None:
        """Create the store with ``sequence``'s axes, ``axis`` at the full rate."""
        import zarr

        rows, columns = self._frame_shape
        dims = _dimensions(sequence, None, columns, rows, self._pixel_um)
        if self.axis not in [d.name for d in dims]:
            raise SinkError(
                f"cannot create full-rate store {self.path}: the acquisition has no "
                f"'{self.axis}' axis to fill in"
            )
        self._dims = tuple(d.name for d in dims)
        positions = next((int(d.count or 1) for d in dims if d.name == _POSITION), 0)
        inner = [d for d in dims if d.name != _POSITION]
        self._inner = tuple(d.name for d in inner)
        shape, axes, scale = [], [], []
        for d in inner:
            count = d.count
            if d.name == self.axis and count is not None:
                count = (count - 1) * self.factor + 1
            self._bounded[d.name] = count is not None
            shape.append(count if count is not None else self.factor)
            axis: dict[str, Any] = {"name": d.name}
            if d.type in _NGFF_TYPES:
                axis["type"] = _NGFF_TYPES[d.type]
            if d.unit:
                axis["unit"] = d.unit
            axes.append(axis)
            step = float(d.scale) if d.scale else 1.0
            scale.append(step / self.factor if d.name == self.axis else step)
        transform = [{"type": "scale", "scale": scale}]
        image = {"version": "0.5", "multiscales": [{"axes": axes, "datasets": [
            {"path": "0", "coordinateTransformations": transform}]}]}  # fmt: skip
        try:
            self._group = zarr.open_group(str(self.path), mode="w-", zarr_format=3)
            # several positions: one image each, in a bioformats2raw container (as raw's store)
            images = [self._group]
            if positions:
                self._group.attrs["ome"] = {"version": "0.5", "bioformats2raw.layout": 3}
                images = [self._group.create_group(str(p)) for p in range(positions)]
            self._group.attrs["live_restore"] = self._attributes()
            for group in images:
                group.attrs["ome"] = image
                self._arrays.append(
                    group.create_array(
                        "0",
                        shape=tuple(shape),
                        chunks=(*([1] * (len(shape) - 2)), rows, columns),
                        dtype="float32",
                        fill_value=0.0,
                        dimension_names=list(self._inner),
                    )
                )
        except Exception as e:
            raise SinkError(f"cannot create full-rate store {self.path}: {e}") from e
        self.view = FullRateView(self._arrays, self._dims, self.axis, self.factor)

    def _attributes(self, summary: dict[str, Any] | None = None) -> dict[str, Any]:
        written = sorted(self._written.items())
        return {
            **self.provenance,
            **(summary or {}),
            "full_rate_axis": self.axis,
            "factor": self.factor,
            "layout": f"acquired frame i at {self.axis}=i*{self.factor}; the frames between "
            "are interpolated",
            "frames_written": self.frames_written,
            "acquired": [self._format(p) for p, between in written if not between],
            "interpolated": [self._format(p) for p, between in written if between],
            "missing": self.missing,
        }

    def _format(self, position: tuple[int, ...]) -> str:
        return format_index(dict(zip(self._dims[:-2], position, strict=True)))

    def _place(self, index: FrameIndex) -> tuple[tuple[int, ...], Any, tuple[int, ...]]:
        """(position in dims order, the image's array, position within it); grows the array."""
        position = tuple(int(index.get(name, 0)) for name in self._dims[:-2])
        p = int(index.get(_POSITION, 0))
        if not 0 <= p < len(self._arrays):
            raise SinkError(f"{self.path}: output {format_index(index)} is outside the sequence")
        array = self._arrays[p]
        inner = tuple(int(index.get(name, 0)) for name in self._inner[:-2])
        grown = list(array.shape)
        for axis, (name, at) in enumerate(zip(self._inner[:-2], inner, strict=True)):
            if at < 0 or (self._bounded[name] and at >= array.shape[axis]):
                raise SinkError(
                    f"{self.path}: output {format_index(index)} is outside the sequence"
                )
            grown[axis] = max(grown[axis], at + 1)
        if tuple(grown) != tuple(array.shape):
            for each in self._arrays:  # every position keeps one shape (the view stacks them)
                each.resize(tuple(grown))
        return position, array, inner

    def write(self, image: np.ndarray, output: FullRateOutput) -> None:
        """Write one full-rate frame at its index."""
        try:
            position, array, inner = self._place(output.index)
            if position in self._written:
                raise SinkError(f"{self.path}: {format_index(output.index)} was written already")
            array[inner] = np.ascontiguousarray(image, dtype=np.float32)
        except SinkError:
            raise
        except Exception as e:
            raise SinkError(
                f"writing {format_index(output.index)} to {self.path} failed: {e}"
            ) from e
        self._written[position] = output.interpolated
        self.frames_written += 1

    def close(self, summary: dict[str, Any]) -> None:
        """Record the frame lists (what was acquired, interpolated, missing) and the summary."""
        extent = [range(n) for n in (self.view.shape[:-2] if self.view else ())]
        self.missing = [
            self._format(p) for p in itertools.product(*extent) if tuple(p) not in self._written
        ]
        try:
            self._group.attrs["live_restore"] = self._attributes(summary)
        except Exception as e:
            raise SinkError(f"closing {self.path} failed: {e}") from e
