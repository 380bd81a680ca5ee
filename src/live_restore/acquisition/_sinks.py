"""Where restored frames go: one OME-Zarr store per stage, and the per-frame table.

Restored images never share an array with raw ones. Each stage writes its own store through
ome-writers, with raw's axes (less any axis a multi-frame group spans) and the pixel size
divided by the stage's scale, and the stage's provenance in the store's attributes under
``live_restore``. Frames that were not restored (error, skipped, disabled stage) are written as
ome-writers' fill (zeros) and listed in ``live_restore.missing`` — the array alone cannot
tell a dark frame from a missing one, the attributes can.

A sink that fails to write (disk full, permission) raises :class:`SinkError`; the hook reports
it and stops writing that store. Raw data are written by pymmcore-plus and never touch this.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

import numpy as np
import useq
from ome_writers import AcquisitionSettings, Dimension, create_stream, useq_to_acquisition_settings

from live_restore.frames import CAMERA_AXIS, FrameIndex, IndexKey, format_index, index_key

__all__ = [
    "TABLE_COLUMNS",
    "FrameTable",
    "MisplacedOutput",
    "RestoredSink",
    "SinkError",
    "camera_count",
    "known_sequence",
]


class SinkError(RuntimeError):
    """Writing a restored store or the frame table failed."""


class MisplacedOutput(SinkError):
    """One output has no place in the store (outside the sequence, or recorded already).

    Only that output is lost: the store goes on taking the others.
    """


def known_sequence(sequence: Any) -> bool:
    """Whether ``sequence`` says what its events are.

    pymmcore-plus's placeholder for a list or generator of events does not: its stores are
    unbounded time series.
    """
    from pymmcore_plus.mda._generator_sequence import GeneratorMDASequence

    return isinstance(sequence, useq.MDASequence) and not isinstance(sequence, GeneratorMDASequence)


# MDA axis -> the MDASequence field that makes it (to drop an axis a group spans)
_AXIS_FIELDS = {"t": "time_plan", "c": "channels", "z": "z_plan", "g": "grid_plan"}


def _without_channel_names(dim: Dimension) -> Dimension:
    # ome-writers 0.3.2 builds an OMERO display window with np.iinfo(dtype) for named
    # channels, which fails for float32; keep the count, drop the names (they stay in raw)
    if dim.coords and dim.type == "channel":
        return dim.model_copy(update={"coords": None, "count": len(dim.coords)})
    return dim


def camera_count(meta: Any) -> int:
    """How many frames each event gives (one per camera), from the sequence's summary meta."""
    infos = (meta or {}).get("image_infos") or [{}]
    return max(1, int(infos[0].get("num_camera_adapter_channels", 1) or 1))


def _dimensions(
    sequence: Any,
    removed_axis: str | None,
    width: int,
    height: int,
    pixel_um: float | None,
    cameras: int = 1,
) -> list[Dimension]:
    dims = _sequence_dimensions(sequence, removed_axis, width, height, pixel_um)
    if cameras > 1:  # as pymmcore-plus lays out raw: the camera axis just before y, x
        dims.insert(len(dims) - 2, Dimension(name=CAMERA_AXIS, count=cameras, type="other"))
    return dims


def _sequence_dimensions(
    sequence: Any, removed_axis: str | None, width: int, height: int, pixel_um: float | None
) -> list[Dimension]:
    if known_sequence(sequence):
        if removed_axis is not None:
            field = _AXIS_FIELDS.get(removed_axis)
            if field is None:
                raise ValueError(f"a group cannot span the {removed_axis!r} axis")
            sequence = sequence.replace(**{field: None if field != "channels" else ()})
        try:
            settings = useq_to_acquisition_settings(
                sequence, image_width=width, image_height=height, pixel_size_um=pixel_um
            )
            return [_without_channel_names(d) for d in settings["dimensions"]]
        except NotImplementedError:
            pass  # ragged sequences: fall through to an unbounded time series
    scale = pixel_um or None
    return [
        Dimension(name="t", count=None, chunk_size=1, type="time"),
        Dimension(name="y", count=height, chunk_size=height, scale=scale, unit="micrometer"),
        Dimension(name="x", count=width, chunk_size=width, scale=scale, unit="micrometer"),
    ]


def _output_index(index: FrameIndex, removed_axis: str | None) -> FrameIndex:
    """The event index less the axis a group spans, in the event's own axis order."""
    return {k: int(v) for k, v in index.items() if k != removed_axis}


def _expected_outputs(
    sequence: Any, removed_axis: str | None, cameras: int = 1
) -> Iterator[FrameIndex] | None:
    """The store's positions in acquisition order; None when there is no MDASequence to walk.

    Not a generator itself: a generator function never returns None, and the caller needs
    None to know that outputs are simply appended (an unbounded time series).
    """
    if not known_sequence(sequence):
        return None
    return _distinct_outputs(sequence, removed_axis, cameras)


def _distinct_outputs(
    sequence: useq.MDASequence, removed_axis: str | None, cameras: int
) -> Iterator[FrameIndex]:
    # lazily: O(1) memory whatever the sequence's length
    previous: IndexKey | None = None
    for event in sequence.iter_events():
        output = _output_index(dict(event.index), removed_axis)
        key = index_key(output)
        if key != previous:
            # each event gives one frame per camera, in camera order (pymmcore-plus's engine)
            if cameras > 1:
                yield from ({**output, CAMERA_AXIS: cam} for cam in range(cameras))
            else:
                yield output
            previous = key


class RestoredSink:
    """One stage's restored frames, written at their MDA index.

    Its own four calls (``setup`` / ``append`` / ``skip`` / ``close``), driven by the run
    record: not pymmcore-plus's handler signals (``frameReady(frame, event, meta)``), because a
    restored output belongs to an MDA index that may differ from the newest event's (a SIM
    set's, a centred window's) and may never come. ome-writers streams are append-only in
    acquisition order, so the sink walks the sequence's positions in order, and positions passed
    over without an output (a failed, skipped or never-restored frame) are left as fill and
    recorded as missing.

    Parameters
    ----------
    path : Path
        The store to create (``.ome.zarr``); must not exist. :meth:`setup` creates it.
    frame_shape : (rows, columns)
        The restored frame's shape (raw shape x scale).
    pixel_um : float or None
        The restored pixel size (raw pixel size / scale).
    removed_axis : str or None
        The axis a multi-frame group spans (not in the output).
    provenance : dict
        Written to the store's attributes at once and again, with the summary, at close.
    """

    def __init__(
        self,
        path: Path,
        frame_shape: tuple[int, int],
        pixel_um: float | None,
        removed_axis: str | None,
        provenance: dict[str, Any],
    ) -> None:
        self.path = path
        self.provenance = dict(provenance)
        self.frames_written = 0
        self.missing: list[str] = []
        self.view: Any = None
        self._frame_shape = frame_shape
        self._pixel_um = pixel_um
        self._removed_axis = removed_axis
        self._expected: Iterator[FrameIndex] | None = None
        self._passed: set[IndexKey] = set()  # positions written or skipped (one per output)
        self._axis_sizes: dict[str, int | None] = {}
        self._stream: Any = None

    def setup(self, sequence: Any, meta: dict[str, Any] | None = None) -> None:
        """Create the store with ``sequence``'s axes (other iterables: a time series).

        ``meta`` is the sequence's summary metadata (pymmcore-plus's ``sequenceStarted``):
        with several cameras the store has raw's ``cam`` axis.
        """
        cameras = camera_count(meta)
        self._expected = _expected_outputs(sequence, self._removed_axis, cameras)
        rows, columns = self._frame_shape
        dims = _dimensions(sequence, self._removed_axis, columns, rows, self._pixel_um, cameras)
        self._axis_sizes = {d.name: d.count for d in dims if d.name in ("t", "c", "z", CAMERA_AXIS)}
        try:
            # zarr-python writes each frame before append returns: a failed write (a full
            # disk) raises here, on its frame. tensorstore would only fail at close, which
            # would leave every frame of the run recorded as saved.
            settings = AcquisitionSettings(
                root_path=str(self.path),
                dimensions=dims,
                dtype="float32",
                overwrite=False,
                format="zarr-python",
            )
            self._stream = create_stream(settings)
            self._stream.set_global_metadata("live_restore", self.provenance)
            # made here, on the writing thread, once: a viewer reads frames through it
            self.view = self._stream.view(dynamic_shape=True, strict=False)
        except Exception as e:
            raise SinkError(f"cannot create restored store {self.path}: {e}") from e

    def _advance_to(self, index: FrameIndex) -> bool:
        """Move the stream to ``index``; False if it was passed already (written or skipped).

        An index that is not a position of the sequence raises :class:`MisplacedOutput`
        before the stream moves, so one bad output never costs the positions after it.
        """
        if self._expected is None:
            return True
        key = index_key(index, self._removed_axis)
        if key in self._passed:  # e.g. two incomplete groups for one output: recorded once
            return False
        if not self._in_sequence(key):
            raise MisplacedOutput(
                f"{self.path}: output {format_index(index)} is not a position of the sequence"
            )
        for expected in self._expected:
            passed = index_key(expected)
            self._passed.add(passed)
            if passed == key:
                return True
            self._stream.skip(frames=1)
            self.missing.append(format_index(expected))
        raise MisplacedOutput(f"{self.path}: output {format_index(index)} is beyond the sequence")

    def _in_sequence(self, key: IndexKey) -> bool:
        # within the store's t, c and z lengths (p merges positions and grid: not checked)
        own = dict(key)
        return all(
            0 <= own[axis] < size
            for axis, size in self._axis_sizes.items()
            if axis in own and size is not None
        )

    def append(self, image: np.ndarray, index: FrameIndex) -> None:
        """Write the restored output for ``index`` (positions before it left as missing)."""
        try:
            if not self._advance_to(index):
                raise MisplacedOutput(
                    f"{self.path}: output {format_index(index)} was recorded already"
                )
            self._stream.append(np.ascontiguousarray(image, dtype=np.float32))
            self.frames_written += 1
        except SinkError:
            raise
        except Exception as e:
            raise SinkError(f"writing {format_index(index)} to {self.path} failed: {e}") from e

    def skip(self, index: FrameIndex) -> None:
        """Leave ``index`` as fill and record it as missing."""
        try:
            if not self._advance_to(index):
                return  # already written or listed as missing
            self._stream.skip(frames=1)
            self.missing.append(format_index(_output_index(index, self._removed_axis)))
        except SinkError:
            raise
        except Exception as e:
            raise SinkError(f"skipping {format_index(index)} in {self.path} failed: {e}") from e

    def close(self, summary: dict[str, Any]) -> None:
        """Flush, then record the summary (counts, missing outputs, how it ended)."""
        try:
            self._stream.close()
            self._stream.set_global_metadata(
                "live_restore",
                {
                    **self.provenance,
                    **summary,
                    "frames_written": self.frames_written,
                    "missing": self.missing,
                },
            )
        except Exception as e:
            raise SinkError(f"closing {self.path} failed: {e}") from e


TABLE_COLUMNS = (
    "frame",  # arrival number within the acquisition (0-based)
    "index",  # the MDA event index, e.g. t=3;c=0
    "received_s",  # when the hook received it, seconds from the acquisition's start
    "source",  # memory | raw-store | skipped | dropped
    "stage",
    "status",  # restored | error | disabled | skipped | incomplete-group | refused | no-raw |
    # unsaved
    "latency_ms",  # receipt -> restored output ready
    "compute_ms",  # the stage's own time (per frame of its batch)
    "batch",  # frames restored together
    "defocus_um",  # stage "focus": the estimator's signed defocus
    "flags",  # out-of-focus (stage "focus", after hysteresis); interpolated | acquired
    "error",
    "output_index",  # interpolation stages: the output's index on the full-rate axis
    "weights",  # a stage adapted during the run (HookConfig.adapt): parent | adapted
)


class FrameTable:
    """The per-frame CSV beside the stores, written row by row (nothing held in memory)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.rows = 0
        try:
            self._file: TextIO = path.open(
                "x", newline="", encoding="utf-8", errors="backslashreplace"
            )
        except OSError as e:
            raise SinkError(f"cannot create frame table {path}: {e}") from e
        self._writer = csv.DictWriter(self._file, fieldnames=TABLE_COLUMNS)
        self._writer.writeheader()
        self._file.flush()  # a run killed before its first row still has a readable table

    def add(self, **row: Any) -> None:
        """Write one row; unknown columns are an error, missing ones are blank."""
        try:
            self._writer.writerow(row)
            # flushed per row: a row the disk refused fails here, on its frame, not at close
            self._file.flush()
            self.rows += 1
        except OSError as e:
            raise SinkError(f"writing the frame table {self.path} failed: {e}") from e

    def close(self) -> None:
        """Flush and close the file."""
        try:
            self._file.close()
        except OSError as e:
            raise SinkError(f"closing the frame table {self.path} failed: {e}") from e
