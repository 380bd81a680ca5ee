"""From a :class:`HookConfig` to the parts of a hook: stages, focus monitor, focus hold."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from live_restore.focus import FlagPolicy, FocusHold, FocusMonitor
from live_restore.frames import Executor, Restorer

from ._config import HookConfig
from ._executor import InThreadExecutor
from ._registry import make_restorer

__all__ = ["HookParts", "build_parts"]


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
        focus = FocusMonitor(load_model(config.focus.estimator, backend), policy)
        if config.focus.hold is not None:
            hold = FocusHold(**config.focus.hold.model_dump())
    return HookParts(stages, focus, hold, InThreadExecutor())
