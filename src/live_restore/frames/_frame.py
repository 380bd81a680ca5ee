"""A camera frame as the stages see it, and where it sits in an acquisition."""

from __future__ import annotations

import numpy as np

__all__ = ["FrameIndex", "IndexKey", "as_frame", "format_index", "index_key", "read_only"]

FrameIndex = dict[str, int]
"""An MDA event index: axis -> position, e.g. ``{"t": 3, "c": 0}``."""

IndexKey = tuple[tuple[str, int], ...]
"""A hashable, order-free form of a :data:`FrameIndex`."""


def as_frame(frame: object, min_side: int = 8) -> np.ndarray:
    """The frame as a float32 2-D array, or ValueError naming what is wrong with it."""
    array = np.asarray(frame)
    if array.dtype.kind not in "uif":
        raise ValueError(f"frame must hold numbers, got dtype {array.dtype}")
    if array.ndim != 2:
        raise ValueError(f"frame must be 2-D (rows, columns), got shape {array.shape}")
    if min(array.shape) < min_side:
        raise ValueError(f"frame {array.shape} is too small: each side needs >= {min_side} pixels")
    out = array.astype(np.float32)
    if not np.isfinite(out).all():
        bad = int((~np.isfinite(out)).sum())
        raise ValueError(f"frame has {bad} non-finite pixels (NaN or infinity)")
    return out


def read_only(image: np.ndarray) -> np.ndarray:
    """A view of ``image`` that cannot be written through (the data are not copied)."""
    view = image.view()
    view.flags.writeable = False
    return view


CAMERA_AXIS = "cam"
"""The index axis of the frames of several cameras (pymmcore-plus: Utilities' Multi Camera)."""


def index_key(index: FrameIndex, removed_axis: str | None = None) -> IndexKey:
    """A hashable, order-free form of an MDA event index (less ``removed_axis``)."""
    return tuple(sorted((k, int(v)) for k, v in index.items() if k != removed_axis))


def format_index(index: FrameIndex) -> str:
    """``{"t": 3, "c": 0}`` -> ``t=3;c=0`` (frames.csv's index column)."""
    return ";".join(f"{k}={v}" for k, v in index.items())
