"""Restoration during acquisition: the RestoreHook, its stages, groupings and sinks."""

from ._events import DefocusReading, HookEvents, HookStats, RawFrame, RestoredFrame, StageError
from ._grouping import AxisSet, FrameGroup, Grouping, SingleFrame, TemporalWindow
from ._hook import HookReport, RestoreHook
from ._restorers import IdentityRestorer, Restorer, RichardsonLucyRestorer, as_frame
from ._sinks import TABLE_COLUMNS, SinkError

__all__ = [
    "TABLE_COLUMNS",
    "AxisSet",
    "DefocusReading",
    "FrameGroup",
    "Grouping",
    "HookEvents",
    "HookReport",
    "HookStats",
    "IdentityRestorer",
    "RawFrame",
    "RestoreHook",
    "RestoredFrame",
    "Restorer",
    "RichardsonLucyRestorer",
    "SingleFrame",
    "SinkError",
    "StageError",
    "TemporalWindow",
    "as_frame",
]
