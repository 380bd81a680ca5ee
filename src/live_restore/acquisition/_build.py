"""From a :class:`HookConfig` to the parts of a hook: stages, focus monitor, focus hold."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.focus import FlagPolicy, FocusHold, FocusMonitor
from live_restore.frames import Executor, Restorer, as_stage, output_kind_of

from ._adaptive_light import AdaptiveLight
from ._config import HookConfig
from ._executor import InThreadExecutor
from ._process import ProcessExecutor
from ._registry import (
    Instrument,
    instrument_of,
    restorer_for,
    served_restorer,
)
from ._trust_stage import stages_sharing_restorations

__all__ = ["HookParts", "StageRecipe", "build_parts", "parts_from_keywords"]

# HookConfig fields that the keyword form takes as they are
_OPTIONS = (
    "output",
    "policy",
    "process",  # policy's old name: HookConfig reads it with a warning
    "memory_mb",
    "max_batch",
    "max_consecutive_failures",
    "server_grace_s",
    "drain_timeout_s",
    "stall_timeout_s",
    "progress",
    "live",
    "stats_interval_s",
    "light",
)


@dataclass(frozen=True)
class StageRecipe:
    """A restorer by name, as a picklable recipe: what a worker process builds."""

    name: str
    instrument: Instrument
    backend: str = "auto"
    precision: str = "auto"
    interp_factor: int = 2
    window_mode: str = "centred"

    def __call__(self) -> Restorer:
        """Build the restorer (in whichever process calls it)."""
        return restorer_for(
            self.name,
            self.instrument,
            self.backend,
            self.precision,
            self.interp_factor,
            self.window_mode,
        )


@dataclass(frozen=True)
class AdaptParts:
    """What ``HookConfig.adapt`` needs: which stage, along which axis, and how to load a folder."""

    slot: int  # the stage's position in ``HookParts.stages``
    model: str  # the model the stage runs (on a CPU, dfcan-sr2x runs as dfcan-sr2x-tiny)
    axis: str | None  # the series' axis ("t" or "z"); None: every frame on its own
    least: int  # the fewest positions along the axis it adapts on
    build: Callable[[Path], Restorer]  # a model folder -> the stage's restorer, in its venue
    prebuild: bool  # build the adapted restorer off the worker thread (this process's stages)


@dataclass(frozen=True)
class HookParts:
    """The objects a hook runs, made from its configuration."""

    stages: list[Restorer]
    focus: FocusMonitor | None
    hold: FocusHold | None
    executor: Executor
    light: AdaptiveLight | None = None
    adapt: AdaptParts | None = None


def build_parts(core: Any, config: HookConfig) -> HookParts:
    """Load every stage and the focus estimator for ``core``; ValueError on a bad name."""
    backend = str(config.backend)
    if config.adapt is not None:  # refused before anything loads, in one line
        from ._adaptation import adapt_problem

        problem = adapt_problem(config.adapt, config.adapt.stage, config.executor, config.models)
        if problem:
            raise ValueError(problem)
    executor: Executor
    instrument = instrument_of(core)  # once: a swap later must not call into the core

    def recipe(name: str) -> StageRecipe:
        return StageRecipe(
            name,
            instrument,
            backend,
            str(config.precision),
            config.interp_factor,
            config.window_mode,
        )

    build_folder: Callable[[Path], Restorer] | None = None
    if config.executor == "process":
        # a hang is a call far beyond any stage's time; the close-time stall rule is stricter.
        # Adapting runs at idle priority (SCHED_IDLE) and the stage worker must come before
        # it: it runs at nice 19 then, still far below the camera (bench_adapt_in_hook)
        priority: str | int = 19 if config.adapt is not None else "idle"
        process = ProcessExecutor(
            [recipe(name) for name in config.models],
            call_timeout_s=max(60.0, 3 * config.stall_timeout_s),
            priority=priority,
        )
        stages: list[Restorer] = list(process.start())
        executor = process
        if config.adapt is not None:
            slot = config.models.index(config.adapt.stage)

            def build_folder(folder: Path) -> Restorer:
                return process.replace(slot, recipe(str(folder)))

    elif config.executor.startswith("grpc://"):
        stages = []
        try:
            for name in config.models:
                stages.append(
                    served_restorer(
                        name,
                        config.executor,
                        instrument,
                        config.interp_factor,
                        config.window_mode,
                    )
                )
        except BaseException:
            for stage in stages:
                stage.close()
            raise
        executor = InThreadExecutor()  # the calls wait on the network, outside the GIL
    else:
        stages = stages_sharing_restorations(config.models, lambda name: recipe(name)())
        executor = InThreadExecutor()

        def build_folder(folder: Path) -> Restorer:
            return recipe(str(folder))()

    try:
        focus, hold = _focus_parts(config, backend)
        light = _light(config, stages)
    except BaseException:
        executor.close()  # no worker process outlives a hook that could not be built
        raise
    adapt = None
    if config.adapt is not None and build_folder is not None:
        adapt = _adapt_parts(config, stages, build_folder, config.executor != "process")
    return HookParts(stages, focus, hold, executor, light, adapt)


def _adapt_parts(
    config: HookConfig,
    stages: list[Restorer],
    build: Callable[[Path], Restorer],
    prebuild: bool,
) -> AdaptParts:
    from live_restore.models import adapt_plan, least_positions, model_dir, read_spec

    assert config.adapt is not None
    slot = config.models.index(config.adapt.stage)
    model = config.adapt.stage
    # the model the stage runs: on a CPU dfcan-sr2x loads as dfcan-sr2x-tiny, and adapting
    # the one that never ran would be checked against the wrong parent
    running = str(stages[slot].provenance().get("model", ""))
    if running and running != read_spec(model_dir(model)).name:
        model = running
    spec = read_spec(model_dir(model))
    _super_resolution, axis, _method = adapt_plan(spec, None, config.adapt.method, [])
    return AdaptParts(slot, model, axis, least_positions(spec), build, prebuild)


def _light(config: HookConfig, stages: Sequence[Restorer]) -> AdaptiveLight | None:
    if config.light is None:
        return None
    if not any(output_kind_of(stage) == "sigma" for stage in stages):
        raise ValueError(
            "adaptive light follows a trust stage: add one (e.g. dfcan-sr2x-tiny+trust)"
        )
    return AdaptiveLight(**config.light.model_dump())


def _focus_parts(config: HookConfig, backend: str) -> tuple[FocusMonitor | None, FocusHold | None]:
    focus = hold = None
    if config.focus is not None:
        from live_restore.inference import FocusSession, load_model

        estimator = load_model(config.focus.estimator, backend)
        if not isinstance(estimator, FocusSession):
            raise ValueError(f"{config.focus.estimator!r} is not a focus estimator (focus-est)")
        policy = FlagPolicy(threshold_um=config.focus.threshold_um)
        focus = FocusMonitor(
            estimator,
            policy,
            every_nth_when_behind=config.focus.every_nth_when_behind,
        )
        if config.focus.hold is not None:
            hold = FocusHold(**config.focus.hold.model_dump())
    return focus, hold


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
    # a plain function is a stage; anything else must be a whole Restorer (TypeError naming
    # what is missing)
    stages = [as_stage(stage) for stage in given]
    if not stages:
        raise ValueError("RestoreHook needs at least one model (a Restorer)")
    if hold is not None and focus is None:
        raise ValueError("focus hold needs a focus monitor: pass focus= as well")
    if focus is not None and not isinstance(focus, FocusMonitor):
        focus = FocusMonitor(focus)  # a bare estimator gets the default policy
    config = HookConfig.model_validate({"models": [s.name for s in stages], **options})
    light = _light(config, stages)
    return config, HookParts(stages, focus, hold, executor or InThreadExecutor(), light)
