"""The store of an interpolation stage: the series at the full rate along one axis.

An interpolation stage (``interp-t``, ``interp-z``) turns every ``factor``-th frame along its
axis into the whole series: real frame ``i`` sits at ``i * factor`` and the frames between are
the network's. Its outputs arrive per pair, for one position and channel at a time, so they are
not in the raw store's order: this store is written with zarr directly (any frame, any order),
not through ome-writers' append-only stream, as OME-Zarr 0.5 laid out as raw's store: one image
(array ``0``, axes in OME order t, c, z, y, x) with the interpolated axis ``factor`` times
longer and its ``scale`` divided by ``factor``; with several positions, one image per position
(``0/``, ``1/``, ...) in a bioformats2raw container. The view the viewer reads has raw's axes
in acquisition order, positions included, as raw's view does.

What each frame is, is in the attributes under ``live_restore``: ``interpolated`` and
``acquired`` list the full-rate indices written; ``missing`` the positions of the full-rate grid
never written (before a gap, a failed pair, after a cancel), as runs per series
(``t=4-6;p=1``). An empty plane is a fill of zeros: the attributes, not the array, say which
frames are real.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from live_restore.frames import CAMERA_AXIS, FrameIndex, FullRateOutput, format_index

from ._sinks import (
    MisplacedOutput,
    SinkError,
    _dimensions,
    camera_count,
    known_sequence,
)

__all__ = ["FullRateSink", "FullRateView"]

_NGFF_TYPES = {"time": "time", "channel": "channel", "space": "space"}
_POSITION = "p"
# several cameras: raw's "cam" axis, beside the channel one (NGFF orders axes by type)
_OME_ORDER = {"t": 0, "c": 1, CAMERA_AXIS: 1.5, "z": 2, "y": 3, "x": 4}


def _is_index(key: Any) -> bool:
    return isinstance(key, (int, np.integer))


class FullRateView:
    """What the viewer reads: raw's axes in acquisition order, the interpolated one finer.

    Positions are separate images on disk (as in raw's store) and their axes are in OME order;
    the view puts positions on the ``p`` axis and the axes in the order raw's view has them.
    """

    def __init__(
        self, arrays: list[Any], dims: tuple[str, ...], stored: tuple[str, ...], axis: str,
        factor: int,
    ) -> None:  # fmt: skip
        self._arrays = arrays
        self.dims = dims
        self._stored = stored  # each array's axes, OME order
        self._p = dims.index(_POSITION) if _POSITION in dims else None
        self._inner = tuple(d for d in dims if d != _POSITION)  # acquisition order
        self.dtype = np.dtype(arrays[0].dtype)
        self.axis_scale = {axis: 1.0 / factor}  # napari places it on raw's axis, k steps a unit

    @property
    def shape(self) -> tuple[int, ...]:
        """The shape now (it grows along an unbounded axis)."""
        stored = dict(zip(self._stored, (int(n) for n in self._arrays[0].shape), strict=True))
        return tuple(len(self._arrays) if d == _POSITION else stored[d] for d in self.dims)

    def _read(self, array: Any, keys: dict[str, Any]) -> np.ndarray:
        data = np.asarray(array[tuple(keys[d] for d in self._stored)])
        kept_stored = [d for d in self._stored if not _is_index(keys[d])]
        kept_view = [d for d in self._inner if not _is_index(keys[d])]
        return np.transpose(data, [kept_stored.index(d) for d in kept_view])

    def __getitem__(self, key: Any) -> np.ndarray:
        keys = key if isinstance(key, tuple) else (key,)
        keys = keys + (slice(None),) * (len(self.dims) - len(keys))
        named = dict(zip(self.dims, keys, strict=True))
        if self._p is None:
            return self._read(self._arrays[0], named)
        at = named[_POSITION]
        if _is_index(at):
            return self._read(self._arrays[int(at)], named)
        assert isinstance(at, slice)
        parts = [self._read(self._arrays[i], named) for i in range(len(self._arrays))[at]]
        axis = sum(not _is_index(k) for k in keys[: self._p])
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
        self._written: dict[tuple[int, ...], bool] = {}  # (p, stored position) -> interpolated
        self._stored: tuple[str, ...] = ()  # each image's axes, OME order
        self._bounded: dict[str, bool] = {}
        self._group: Any = None
        self._arrays: list[Any] = []

    def setup(self, sequence: Any, meta: dict[str, Any] | None = None) -> None:
        """Create the store with ``sequence``'s axes, ``axis`` at the full rate.

        ``meta`` is the sequence's summary metadata: several cameras add raw's ``cam`` axis.
        """
        import zarr

        if not known_sequence(sequence):
            raise SinkError(
                f"cannot create {self.path.name}: interpolation needs an MDASequence (its axes "
                "and their lengths), not a list or generator of events"
            )
        rows, columns = self._frame_shape
        dims = _dimensions(sequence, None, columns, rows, self._pixel_um, camera_count(meta))
        if self.axis not in [d.name for d in dims]:
            raise SinkError(
                f"cannot create {self.path.name}: the acquisition has no '{self.axis}' axis"
            )
        positions = next((int(d.count or 1) for d in dims if d.name == _POSITION), 0)
        stored = sorted((d for d in dims if d.name != _POSITION), key=lambda d: _OME_ORDER[d.name])
        self._stored = tuple(d.name for d in stored)
        shape, axes, scale = [], [], []
        for d in stored:
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
                        dimension_names=list(self._stored),
                    )
                )
        except Exception as e:
            raise SinkError(f"cannot create full-rate store {self.path}: {e}") from e
        view_dims = tuple(d.name for d in dims)
        self.view = FullRateView(self._arrays, view_dims, self._stored, self.axis, self.factor)

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
            "acquired": [self._format(k) for k, between in written if not between],
            "interpolated": [self._format(k) for k, between in written if between],
            "missing": self.missing,
        }

    def _format(self, key: tuple[int, ...], axis_text: str | None = None) -> str:
        names = [*self._stored[:-2], _POSITION] if len(self._arrays) > 1 else self._stored[:-2]
        parts = [f"{n}={v}" for n, v in zip(names, (*key[1:], key[0]), strict=False)]
        if axis_text is not None:
            parts = [f"{self.axis}={axis_text}" if p.startswith(f"{self.axis}=") else p
                     for p in parts]  # fmt: skip
        return ";".join(parts)

    def _place(self, index: FrameIndex) -> tuple[tuple[int, ...], Any, tuple[int, ...]]:
        """(written-key, the image's array, position within it); grows an unbounded axis."""
        p = int(index.get(_POSITION, 0))
        inner = tuple(int(index.get(name, 0)) for name in self._stored[:-2])
        if not 0 <= p < len(self._arrays):
            raise MisplacedOutput(f"{self.path}: {format_index(index)} is outside the sequence")
        array = self._arrays[p]
        grown = list(array.shape)
        for axis, (name, at) in enumerate(zip(self._stored[:-2], inner, strict=True)):
            if at < 0 or (self._bounded[name] and at >= array.shape[axis]):
                raise MisplacedOutput(f"{self.path}: {format_index(index)} is outside the sequence")
            grown[axis] = max(grown[axis], at + 1)
        if tuple(grown) != tuple(array.shape):
            for each in self._arrays:  # every position keeps one shape (the view stacks them)
                each.resize(tuple(grown))
        return (p, *inner), array, inner

    def write(self, image: np.ndarray, output: FullRateOutput) -> None:
        """Write one full-rate frame at its index (MisplacedOutput: this one only is lost)."""
        key, array, inner = self._place(output.index)
        if key in self._written:
            raise MisplacedOutput(f"{self.path}: {format_index(output.index)} was written already")
        try:
            array[inner] = np.ascontiguousarray(image, dtype=np.float32)
        except Exception as e:
            raise SinkError(
                f"writing {format_index(output.index)} to {self.path} failed: {e}"
            ) from e
        self._written[key] = output.interpolated
        self.frames_written += 1

    def _missing_runs(self) -> list[str]:
        """Positions never written, as runs along the axis per series (p, other axes)."""
        if not self._arrays:
            return []
        shape = (len(self._arrays), *self._arrays[0].shape[:-2])
        written = np.zeros(shape, bool)
        for key in self._written:
            written[key] = True
        along = 1 + self._stored.index(self.axis)
        moved = np.moveaxis(written, along, -1)
        runs = []
        for series in np.ndindex(*moved.shape[:-1]):
            empty = np.flatnonzero(~moved[series])
            if not len(empty):
                continue
            breaks = np.flatnonzero(np.diff(empty) > 1)
            for first, last in zip(
                empty[np.r_[0, breaks + 1]], empty[np.r_[breaks, len(empty) - 1]], strict=True
            ):
                where = [int(v) for v in series]
                where.insert(along, int(first))
                text = str(first) if first == last else f"{first}-{last}"
                runs.append(self._format(tuple(where), text))
        return runs

    def close(self, summary: dict[str, Any]) -> None:
        """Record the frame lists (what was acquired, interpolated, missing) and the summary."""
        self.missing = self._missing_runs()
        try:
            self._group.attrs["live_restore"] = self._attributes(summary)
        except Exception as e:
            raise SinkError(f"closing {self.path} failed: {e}") from e
