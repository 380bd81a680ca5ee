"""Catch-up: reading a frame back from the raw store that pymmcore-plus is writing."""

from __future__ import annotations

import time
from typing import Any

import numpy as np

from ._intake import IntakeFrame

__all__ = ["WRITE_GRACE_S", "NoRawStore", "RawReader"]

# how long a raw frame that reads as fill may still be landing (tensorstore writes are async)
WRITE_GRACE_S = 0.5


class NoRawStore(Exception):
    """A frame was not held in memory and there is no raw store to read it from."""


class RawReader:
    """Reads frames the intake did not hold back from the raw store (worker thread only)."""

    def __init__(self) -> None:
        self._fill_since: dict[int, float] = {}  # frame number -> when it first read as fill

    def read(self, view: Any, frame: IntakeFrame, acquiring: bool) -> np.ndarray | None:
        """The frame from the store's ``view``; None while the store has not written it yet.

        Readiness is the store's own count: its written extent grows as pymmcore-plus appends
        each frame, and a frame outside it is not there yet. tensorstore then writes
        asynchronously, so a frame inside the extent can still read as fill for a few ms
        (1 in 30 read back at once did, measured). While the acquisition runs, an all-fill
        read is therefore retried for up to ``WRITE_GRACE_S``; after that it is taken as what
        the camera delivered (a truly dark frame must not park the worker).
        """
        key = tuple(frame.index.get(dim, 0) for dim in view.dims[:-2])
        if acquiring and not _written(view, key):
            return None
        image = np.asarray(view[key])
        if acquiring and not image.any():
            first_s = self._fill_since.setdefault(frame.number, time.perf_counter())
            if time.perf_counter() - first_s < WRITE_GRACE_S:
                return None
        self._fill_since.pop(frame.number, None)
        return image


def _written(view: Any, key: tuple[int, ...]) -> bool:
    """Whether the store's written extent covers ``key`` (its dynamic shape grows per frame)."""
    shape = tuple(view.shape)[: len(key)]
    return all(k < n for k, n in zip(key, shape, strict=True))
