"""The interpolation stage: acquire every ``factor``-th frame along t or z, get all of them.

It wraps an ``interp-t`` / ``interp-z`` session (``inference.InterpSession``). Its grouping
(:class:`~live_restore.frames.AxisPairs`) pairs each frame with the previous one along the axis
at the same position and channel; for a pair it returns the ``factor - 1`` frames between them
and then the newer real frame, for a frame alone (a series' first, or after a gap) only that
frame. Everything in photons: the real frames are the camera's counts converted with the
camera's offset and gain and nothing else, so that the full-rate series is one quantity.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from live_restore.frames import AxisPairs, RestorerBase, as_frame

__all__ = ["InterpolationStage"]


class InterpolationStage(RestorerBase):
    """``session`` as a hook stage filling ``factor - 1`` frames into each acquired step."""

    scale = 1

    def __init__(self, session: Any, factor: int) -> None:
        self.session = session
        self.name = str(session.name)
        self.factor = int(factor)
        self.pairs = AxisPairs(str(session.axis), self.factor)
        self.grouping = self.pairs

    def provenance(self) -> dict[str, str]:
        """The session's, with the axis, the factor and where real frames sit."""
        axis = self.pairs.axis
        return {
            **self.session.provenance(),
            "interpolation": f"along {axis}, factor {self.factor}: acquired frame i at "
            f"{axis}=i*{self.factor}, the {self.factor - 1} between it and the previous one "
            "interpolated; acquired frames are only converted to photons",
        }

    def __call__(self, frames: np.ndarray, /) -> np.ndarray:
        """``(2, H, W)`` (older, newer) -> ``(factor, H, W)``; ``(1, H, W)`` -> ``(1, H, W)``."""
        stack = np.asarray(frames)
        if stack.ndim != 3 or stack.shape[0] not in (1, 2):
            raise ValueError(
                f"{self.name} takes a pair of frames (2, rows, columns) or one (1, rows, "
                f"columns), got shape {stack.shape}"
            )
        newer = self.session.camera.photons(as_frame(stack[-1]))[None]
        if stack.shape[0] == 1:
            result: np.ndarray = newer
            return result
        fractions = [j / self.factor for j in range(1, self.factor)]
        between = self.session.between(stack[0], stack[1], fractions)
        return np.concatenate((between, newer)).astype(np.float32, copy=False)

    def close(self) -> None:
        """Release the session's backend, if it holds one that can be closed."""
        closer = getattr(self.session, "close", None)
        if callable(closer):
            closer()
