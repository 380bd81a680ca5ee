"""live-restore: real-time restoration of Micro-Manager acquisitions, simulator included."""

from ._version import __version__
from .devices import demo_core, microscope_of, open_core, release_core

__all__ = ["__version__", "demo_core", "microscope_of", "open_core", "release_core"]
