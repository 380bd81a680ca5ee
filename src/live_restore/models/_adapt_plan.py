"""Which models can adapt to the user's data (``live-restore adapt``, ``HookConfig.adapt``), how.

A property of the model's spec, checked before any data is read: by the command, and when a
hook that adapts a stage is built (so a stage that cannot adapt is refused in one line then).
"""

from __future__ import annotations

from typing import Any

from ._spec import ModelTask

__all__ = ["MIN_FRAMES", "MIN_POSITIONS", "adapt_plan", "least_positions"]

MIN_POSITIONS = 6  # interpolation: 2 training triplets' frames and 1 held-out triplet, disjoint
MIN_FRAMES = 4  # a single-frame super-resolution model: 3 training frames, 1 held out


def least_positions(spec: Any) -> int:
    """The fewest frames along its axis (all frames, single-frame SR) ``spec`` adapts on."""
    if spec.task is ModelTask.MULTI_FRAME_SR:  # a training window and a held-out one, disjoint
        return 2 * int(spec.arguments.get("window", 5))
    if spec.task is ModelTask.INTERPOLATION:
        return MIN_POSITIONS
    return MIN_FRAMES


def adapt_plan(
    spec: Any, axis: str | None, method: str | None, optics_given: list[str]
) -> tuple[bool, str | None, str]:
    """(super-resolution, axis, method) for adapting ``spec``; ValueError, in one line, if not.

    The axis is the one frames are series along: an interpolation model's, ``t`` for the
    multi-frame model (its windows are consecutive time points), None for a single-frame one.
    Checked before any data is read: by ``adapt`` and when a hook with ``adapt`` is built.
    """
    single_frame_sr = spec.task is ModelTask.SUPER_RESOLUTION and spec.architecture == "dfcan"
    multi_frame_sr = spec.task is ModelTask.MULTI_FRAME_SR
    if spec.task is not ModelTask.INTERPOLATION and not (single_frame_sr or multi_frame_sr):
        raise ValueError(
            f"{spec.name} cannot adapt here: adapting is built for the interpolation models "
            "(interp-t, interp-z) and the super-resolution ones (dfcan-sr2x-*, mfsr-sr2x)"
        )
    if single_frame_sr or multi_frame_sr:
        if axis and not (multi_frame_sr and axis == "t"):
            raise ValueError(
                f"{spec.name} adapts on "
                + ("windows of consecutive time points" if multi_frame_sr else "every frame")
                + " of the input: --axis is for the interpolation models"
            )
        axis = "t" if multi_frame_sr else None
        method = method or "consistency"
        allowed: tuple[str, ...] = ("consistency",)
    else:
        if optics_given:
            raise ValueError(
                f"{', '.join(optics_given)}: the optics are for the super-resolution models "
                f"(their widefield kernel); {spec.name} does not use them"
            )
        axis = axis or spec.axis or "t"
        method = method or ("pairs" if axis == "z" else "triplets")
        allowed = ("pairs", "triplets")
    if method not in allowed:
        raise ValueError(f"{spec.name} adapts by {' or '.join(allowed)}, not {method!r}")
    return single_frame_sr or multi_frame_sr, axis, method
