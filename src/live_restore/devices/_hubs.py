"""Where peripherals find the simulated microscope their hub owns.

pymmcore-plus Python devices cannot see one another (``self.core`` exposes only ``events``),
and devices loaded from a ``#py`` config line are built with no arguments. So the hub registers
its :class:`SimMicroscope` here under its own device label when it initialises, and each
peripheral looks it up through its ``Parent`` label. Two live hubs with the same label in one
process are refused (their peripherals could not tell them apart); unloading a hub
(``core.reset()``, ``unloadDevice``) removes its entry.
"""

from __future__ import annotations

import threading

from live_restore.simulate import SimMicroscope

__all__ = ["lookup", "register", "unregister"]

_LOCK = threading.Lock()
_MICROSCOPES: dict[str, SimMicroscope] = {}


def register(hub_label: str, microscope: SimMicroscope) -> None:
    """Make ``microscope`` reachable under ``hub_label``; refuse a label already in use."""
    with _LOCK:
        current = _MICROSCOPES.get(hub_label)
        if current is not None and current is not microscope:
            raise RuntimeError(
                f"a simulated microscope hub labelled {hub_label!r} is already loaded in this "
                "process; release that core first (core.reset()) or give this hub another label"
            )
        _MICROSCOPES[hub_label] = microscope


def unregister(hub_label: str, microscope: SimMicroscope) -> None:
    """Remove the entry for ``hub_label`` if it is ``microscope``."""
    with _LOCK:
        if _MICROSCOPES.get(hub_label) is microscope:
            del _MICROSCOPES[hub_label]


def lookup(hub_label: str) -> SimMicroscope | None:
    """The microscope registered under ``hub_label``, or None."""
    with _LOCK:
        return _MICROSCOPES.get(hub_label)
