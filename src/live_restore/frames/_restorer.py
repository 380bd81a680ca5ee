"""The stage contract: what a restorer provides, and the seam that runs it (an executor).

A restorer takes one camera frame (2-D, raw counts, any integer or float dtype; a read-only
array it must not write into) and returns the restored frame as float32, scaled by its
``scale`` factor. It does its own normalisation and names everything needed to reproduce its
output in ``provenance()``. Every part of the contract is explicit: a restorer says how it groups
frames (``grouping``), how many inputs one ``restore_batch`` call may take (``max_batch``) and
how it lets go of what it holds (``close``). :class:`RestorerBase` gives the usual defaults.
A restorer may also say what its output is (``output_kind``: ``"image"``, or ``"sigma"`` for a
trust map, a model's per-pixel expected error); without it, an image.

A plain function ``fn(frame) -> frame`` is a stage too (:func:`as_stage` wraps it): its name
is the function's, its scale is read off its first output, and its provenance is its
qualified name.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Protocol, runtime_checkable

import numpy as np

from ._grouping import Grouping, SingleFrame

__all__ = [
    "Executor",
    "FunctionStage",
    "Restorer",
    "RestorerBase",
    "as_stage",
    "check_restorer",
    "output_kind_of",
    "trust_stage_name",
]


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
    output_kind: str = "image"  # or "sigma": a trust map

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


OUTPUT_KINDS = ("image", "sigma")


def trust_stage_name(model: str) -> str:
    """The stage (store, served model) name of ``model``'s trust map: ``NAME-trust``."""
    return f"{model}-trust"


def output_kind_of(stage: object) -> str:
    """What a stage's output is: ``"image"`` (the default) or ``"sigma"`` (a trust map)."""
    return str(getattr(stage, "output_kind", "image"))


class FunctionStage(RestorerBase):
    """A plain function ``fn(frame) -> frame`` as a stage (see the module docstring).

    The scale is 1 until the first output, then that output's size over its input's (an
    integer, the same for rows and columns, or the call fails naming the shapes).
    """

    def __init__(self, function: Callable[[np.ndarray], np.ndarray]) -> None:
        self.function = function
        raw_name = str(getattr(function, "__name__", type(function).__name__))
        self.name = re.sub(r"[^A-Za-z0-9_.-]+", "", raw_name) or "function"
        module = getattr(function, "__module__", None) or ""
        qualname = str(getattr(function, "__qualname__", raw_name))
        self.qualified_name = f"{module}.{qualname}" if module else qualname
        self._scale_known = False

    def provenance(self) -> dict[str, str]:
        """The function's qualified name (its code is the user's to keep)."""
        return {"model": self.name, "function": self.qualified_name}

    def __call__(self, frame: np.ndarray, /) -> np.ndarray:
        output = np.asarray(self.function(frame))
        if not self._scale_known and output.ndim == 2 and np.ndim(frame) == 2:
            rows, columns = output.shape[0] / frame.shape[0], output.shape[1] / frame.shape[1]
            if rows != columns or rows < 1 or rows != int(rows):
                raise ValueError(
                    f"{self.name} returned shape {output.shape} for a frame of {frame.shape}: a "
                    "stage's output is its input scaled by one integer factor"
                )
            self.scale, self._scale_known = int(rows), True
        return output


def as_stage(stage: object) -> Restorer:
    """A Restorer as it is, a plain function wrapped in :class:`FunctionStage`; else TypeError."""
    parts = [part for part in _REQUIRED if hasattr(stage, part)]
    if callable(stage) and not parts:
        return check_restorer(FunctionStage(stage))
    return check_restorer(stage)


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
            "__call__(frame), or give a plain function fn(frame) -> frame"
        )
    if not isinstance(stage.scale, int) or stage.scale < 1:
        raise TypeError(f"stage {stage.name!r} has scale {stage.scale!r}; it must be an int >= 1")
    if not isinstance(stage.grouping, Grouping):
        raise TypeError(f"stage {stage.name!r} has a grouping that is not a Grouping")
    if not isinstance(stage.max_batch, int) or stage.max_batch < 1:
        raise TypeError(f"stage {stage.name!r} has max_batch {stage.max_batch!r}; need an int >= 1")
    if output_kind_of(stage) not in OUTPUT_KINDS:
        raise TypeError(
            f"stage {stage.name!r} has output_kind {output_kind_of(stage)!r}; it must be one of "
            f"{', '.join(OUTPUT_KINDS)}"
        )
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
