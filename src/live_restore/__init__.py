"""live-restore: real-time restoration of Micro-Manager acquisitions, simulator included."""

from ._version import __version__
from .acquisition import IdentityRestorer, RestoreHook, Restorer, RichardsonLucyRestorer
from .devices import demo_core, microscope_of, open_core, release_core

__all__ = [
    "IdentityRestorer",
    "RestoreHook",
    "Restorer",
    "RichardsonLucyRestorer",
    "__version__",
    "demo_core",
    "microscope_of",
    "open_core",
    "release_core",
]
