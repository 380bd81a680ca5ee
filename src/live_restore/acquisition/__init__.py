"""Restoration during acquisition: the RestoreHook, its worker, run record and stages."""

from ._build import HookParts, StageRecipe, build_parts
from ._config import AdaptConfig, ConfigError, FocusConfig, HoldConfig, HookConfig
from ._counters import HookReport, HookStats
from ._events import HookEvents, RawFrame, RestoredFrame, StageError
from ._executor import InThreadExecutor
from ._hook import RestoreHook, build_hook
from ._process import ProcessExecutor, RemoteStage, StageProcessError
from ._process_worker import worker_main
from ._registry import (
    RESTORERS,
    Instrument,
    instrument_for_pixel,
    instrument_of,
    make_restorer,
    register_restorer,
    restorer_names,
    served_restorer,
    shipped_model_names,
    trust_calibrated,
)
from ._restorers import IdentityRestorer, RichardsonLucyRestorer
from ._sinks import TABLE_COLUMNS, SinkError
from ._trust_stage import UNTRUSTED_FRACTION_OF_SPAN, untrusted_fraction

__all__ = [
    "RESTORERS",
    "TABLE_COLUMNS",
    "UNTRUSTED_FRACTION_OF_SPAN",
    "AdaptConfig",
    "ConfigError",
    "FocusConfig",
    "HoldConfig",
    "HookConfig",
    "HookEvents",
    "HookParts",
    "HookReport",
    "HookStats",
    "IdentityRestorer",
    "InThreadExecutor",
    "Instrument",
    "ProcessExecutor",
    "RawFrame",
    "RemoteStage",
    "RestoreHook",
    "RestoredFrame",
    "RichardsonLucyRestorer",
    "SinkError",
    "StageError",
    "StageProcessError",
    "StageRecipe",
    "build_hook",
    "build_parts",
    "instrument_for_pixel",
    "instrument_of",
    "make_restorer",
    "register_restorer",
    "restorer_names",
    "served_restorer",
    "shipped_model_names",
    "trust_calibrated",
    "untrusted_fraction",
    "worker_main",
]
