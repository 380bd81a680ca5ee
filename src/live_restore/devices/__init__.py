"""pymmcore-plus devices of the simulated microscope, and helpers to build and release cores."""

from ._checks import core_problem, sequence_problems
from ._core import (
    LiveRestoreCore,
    config_path,
    demo_core,
    load_core,
    microscope_of,
    open_core,
    release_core,
)
from ._sim_devices import (
    SimCamera,
    SimFocusStage,
    SimLightSource,
    SimMicroscopeHub,
    SimPatternDevice,
    SimXYStage,
)

__all__ = [
    "LiveRestoreCore",
    "SimCamera",
    "SimFocusStage",
    "SimLightSource",
    "SimMicroscopeHub",
    "SimPatternDevice",
    "SimXYStage",
    "config_path",
    "core_problem",
    "demo_core",
    "load_core",
    "microscope_of",
    "open_core",
    "release_core",
    "sequence_problems",
]
