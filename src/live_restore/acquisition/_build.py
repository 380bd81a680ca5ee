"""From a :class:`HookConfig` to the parts of a hook: stages, focus monitor, focus hold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from live_restore.focus import FlagPolicy, FocusHold, FocusMonitor
from live_restore.frames import Executor, Restorer, check_restorer

from ._config import HookConfig
from ._executor import InThreadExecutor
from ._registry import make_restorer

__all__ = ["HookParts", "build_parts", "parts_from_keywords"]

# HookConfig fields that the keyword form takes as they are
_OPTIONS = (
    "output",
    "process",
    "memory_mb",
    "max_batch",
    "max_consecutive_failures",
    "drain_timeout_s",
    "stall_timeout_s",
    "progress",
    "live",
    "stats_interval_s",
)


@dataclass(frozen=True)
class HookParts:
    """The objects a hook runs, made from its configuration."""

    stages: list[Restorer]
    focus: FocusMonitor | None
    hold: FocusHold | None
    executor: Executor


def build_parts(core: Any, config: HookConfig) -> HookParts:
    """Load every stage and the focus estimator for ``core``; ValueError on a bad name."""
    backend = str(config.backend)
    stages = [make_restorer(name, core, backend, str(config.precision)) for name in config.models]
    focus = hold = None
    if config.focus is not None:
        from live_restore.inference import load_model

        policy = FlagPolicy(threshold_um=config.focus.threshold_um)
        focus = FocusMonitor(
            load_model(config.focus.estimator, backend),
            policy,
            every_nth_when_behind=config.focus.every_nth_when_behind,
        )
        if config.focus.hold is not None:
            hold = FocusHold(**config.focus.hold.model_dump())
    return HookParts(stages, focus, hold, InThreadExecutor())


def parts_from_keywords(
    models: Restorer | Sequence[Restorer],
    focus: FocusMonitor | Callable[[np.ndarray], Any] | None,
    hold: FocusHold | None,
    executor: Executor | None,
    options: dict[str, Any],
) -> tuple[HookConfig, HookParts]:
    """The keyword form of ``RestoreHook``: restorers you made, options as HookConfig fields."""
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise TypeError(f"RestoreHook got unknown options: {', '.join(unknown)}")
    if isinstance(models, str):
        raise TypeError(
            f"RestoreHook takes restorers, not the name {models!r}: use "
            f"build_hook(core, HookConfig(models=[{models!r}])) to load one by name"
        )
    given = [models] if not isinstance(models, Sequence) else list(models)
    stages = [check_restorer(stage) for stage in given]  # TypeError naming what is missing
    if not stages:
        raise ValueError("RestoreHook needs at least one model (a Restorer)")
    if hold is not None and focus is None:
        raise ValueError("focus hold needs a focus monitor: pass focus= as well")
    if focus is not None and not isinstance(focus, FocusMonitor):
        focus = FocusMonitor(focus)  # a bare estimator gets the default policy
    config = HookConfig.model_validate({"models": [s.name for s in stages], **options})
    return config, HookParts(stages, focus, hold, executor or InThreadExecutor())
