"""The stage contract: what a restorer provides, and the seam that runs it (an executor).

A restorer takes one camera frame (2-D, raw counts, any integer or float dtype; a read-only
array it must not write into) and returns the restored frame as float32, scaled by its
``scale`` factor. It does its own normalisation and names everything needed to reproduce its
output in ``provenance()``. Every part of the contract is explicit: a restorer says how it groups
frames (``grouping``), how many inputs one ``restore_batch`` call may take (``max_batch``) and
how it lets go of what it holds (``close``). :class:`RestorerBase` gives the usual defaults.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from ._grouping import Grouping, SingleFrame

__all__ = ["Executor", "Restorer", "RestorerBase", "check_restorer"]


@runtime_checkable
class Restorer(Protocol):
    """One restoration stage: a camera frame (or its group's stack) in, float32 out."""

    name: str
    scale: int
    grouping: Grouping
    """Which frames it restores together (:class:`SingleFrame` for most)."""
    max_batch: int
    """Most inputs one :meth:`restore_batch` call takes (1: it cannot batch)."""
    writes_input: bool
    """True if it writes into its input: then it gets a copy (others get read-only views)."""

    def provenance(self) -> dict[str, str]:
        """Everything needed to reproduce the output: model, weights, parameters, version."""
        ...

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        """Restore one 2-D frame of raw counts (or, with a ``grouping``, its group's stack)."""
        ...

    def restore_batch(self, frames: np.ndarray, /) -> np.ndarray:
        """Several inputs stacked on a new first axis -> their outputs, stacked."""
        ...

    def close(self) -> None:
        """Release what the restorer holds (device memory, files); called once, at the end."""
        ...


class RestorerBase:
    """Defaults for a restorer: single frames, no batching, nothing to release.

    Subclass it and give ``name``, ``scale``, ``provenance()`` and ``__call__``.
    """

    name: str = "restorer"
    scale: int = 1
    grouping: Grouping = SingleFrame()  # stateless, so one instance can serve every subclass
    max_batch: int = 1
    writes_input: bool = False

    def provenance(self) -> dict[str, str]:
        """At least the name; subclasses add what reproduces their output."""
        return {"model": self.name}

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        """Restore one input."""
        raise NotImplementedError(f"{type(self).__name__} does not restore anything")

    def restore_batch(self, frames: np.ndarray, /) -> np.ndarray:
        """One input at a time (a batching restorer overrides this and ``max_batch``)."""
        return np.stack([self(frame) for frame in frames])

    def close(self) -> None:
        """Nothing to release."""


_REQUIRED = (
    "name",
    "scale",
    "grouping",
    "max_batch",
    "writes_input",
    "provenance",
    "restore_batch",
    "close",
)


def check_restorer(stage: object) -> Restorer:
    """The stage if it conforms to :class:`Restorer`, else TypeError saying what is missing."""
    missing = [part for part in _REQUIRED if not hasattr(stage, part)]
    if not callable(stage):
        missing.append("__call__")
    if missing or not isinstance(stage, Restorer):
        raise TypeError(
            f"{stage!r} is not a Restorer (missing: {', '.join(missing) or 'callable parts'}); "
            "subclass live_restore.RestorerBase and give name, scale, provenance() and "
            "__call__(frame)"
        )
    if not isinstance(stage.scale, int) or stage.scale < 1:
        raise TypeError(f"stage {stage.name!r} has scale {stage.scale!r}; it must be an int >= 1")
    if not isinstance(stage.grouping, Grouping):
        raise TypeError(f"stage {stage.name!r} has a grouping that is not a Grouping")
    if not isinstance(stage.max_batch, int) or stage.max_batch < 1:
        raise TypeError(f"stage {stage.name!r} has max_batch {stage.max_batch!r}; need an int >= 1")
    return stage


@runtime_checkable
class Executor(Protocol):
    """Where a stage's calls run: in the worker's thread today; a process or a server later.

    ``run`` blocks until the outputs are back (the worker records them in order) and raises
    what the restorer raised.
    """

    name: str

    def run(self, restorer: Restorer, inputs: np.ndarray, batched: bool) -> np.ndarray:
        """``restorer(inputs)``, or ``restorer.restore_batch(inputs)`` when ``batched``."""
        ...

    def close(self) -> None:
        """Stop what the executor started (processes, connections)."""
        ...
