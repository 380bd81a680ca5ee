"""Executors: where a stage's calls run (the :class:`~live_restore.frames.Executor` seam).

``InThreadExecutor`` calls the restorer in the worker's own thread: for stages that run here,
and for served ones (a ``TritonSession`` waits on the network, outside the GIL). The process
executor (``_process.py``) runs them in a worker process behind the same two methods, so the
hook and the worker never change with the venue.
"""

from __future__ import annotations

import numpy as np

from live_restore.frames import Restorer

__all__ = ["InThreadExecutor"]


class InThreadExecutor:
    """Calls the restorer directly, in the calling thread (the hook's worker)."""

    name = "thread"

    def run(self, restorer: Restorer, inputs: np.ndarray, batched: bool) -> np.ndarray:
        """``restorer.restore_batch(inputs)`` when ``batched``, else ``restorer(inputs)``."""
        return restorer.restore_batch(inputs) if batched else restorer(inputs)

    def close(self) -> None:
        """Nothing was started."""
