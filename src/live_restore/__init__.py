"""live-restore: real-time restoration of Micro-Manager acquisitions, simulator included.

Importing the package is light: the names below load their modules (and torch, Qt or napari
behind them) the first time they are used, so ``live-restore --version`` answers at once.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__

if TYPE_CHECKING:
    from .acquisition import (
        AdaptConfig,
        FocusConfig,
        HoldConfig,
        HookConfig,
        IdentityRestorer,
        RestoreHook,
        RichardsonLucyRestorer,
        build_hook,
    )
    from .devices import demo_core, microscope_of, open_core, release_core
    from .frames import Restorer, RestorerBase
    from .inference import load_model

# public name -> the module that defines it (imported on first use)
_HOMES = {
    "AdaptConfig": "live_restore.acquisition",
    "FocusConfig": "live_restore.acquisition",
    "HoldConfig": "live_restore.acquisition",
    "HookConfig": "live_restore.acquisition",
    "IdentityRestorer": "live_restore.acquisition",
    "RestoreHook": "live_restore.acquisition",
    "RichardsonLucyRestorer": "live_restore.acquisition",
    "build_hook": "live_restore.acquisition",
    "Restorer": "live_restore.frames",
    "RestorerBase": "live_restore.frames",
    "load_model": "live_restore.inference",
    "demo_core": "live_restore.devices",
    "microscope_of": "live_restore.devices",
    "open_core": "live_restore.devices",
    "release_core": "live_restore.devices",
}

__all__ = [
    "AdaptConfig",
    "FocusConfig",
    "HoldConfig",
    "HookConfig",
    "IdentityRestorer",
    "RestoreHook",
    "Restorer",
    "RestorerBase",
    "RichardsonLucyRestorer",
    "__version__",
    "build_hook",
    "demo_core",
    "load_model",
    "microscope_of",
    "open_core",
    "release_core",
]


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'live_restore' has no attribute {name!r}")
    value = getattr(importlib.import_module(home), name)
    globals()[name] = value  # the next lookup is a plain attribute
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
