"""Restorers by name, for the CLI and configs: an explicit table, no discovery at import.

A restorer is built for a core: on the simulated microscope it takes the simulator's optics and
camera, so the PSF and the counts -> photons conversion are the ones that made the frames; on
any other core it takes the default optics (NA 1.49, 525 nm) at the core's pixel size.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from live_restore.simulate import CameraParams, OpticsParams

from ._restorers import IdentityRestorer, Restorer, RichardsonLucyRestorer

__all__ = ["RESTORERS", "make_restorer", "register_restorer"]

RestorerFactory = Callable[[OpticsParams, CameraParams], Restorer]

RESTORERS: dict[str, tuple[RestorerFactory, str]] = {
    "identity": (
        lambda optics, camera: IdentityRestorer(camera),
        "the frame in photons (offset and gain removed); for tests and as a reference",
    ),
    "richardson-lucy": (
        lambda optics, camera: RichardsonLucyRestorer(optics, camera),
        "classical deconvolution, 10 iterations with the widefield PSF (the baseline)",
    ),
}


def register_restorer(name: str, factory: RestorerFactory, description: str) -> None:
    """Add a restorer under ``name``; a name that is taken is refused."""
    if name in RESTORERS:
        raise ValueError(f"a restorer named {name!r} is already registered")
    RESTORERS[name] = (factory, description)


def _optics_and_camera(core: Any) -> tuple[OpticsParams, CameraParams]:
    from live_restore.devices import microscope_of

    try:
        scope = microscope_of(core)
    except LookupError:
        pixel_um = float(core.getPixelSizeUm()) if core is not None else 0.0
        if pixel_um <= 0:
            return OpticsParams(), CameraParams()
        default = OpticsParams()
        # same camera, the magnification that gives the core's pixel size at the sample
        return OpticsParams(magnification=default.camera_pixel_um / pixel_um), CameraParams()
    return scope.optics, scope.camera


def make_restorer(name: str, core: Any = None) -> Restorer:
    """The restorer called ``name``, set up for ``core`` (see module docstring)."""
    if name not in RESTORERS:
        raise ValueError(f"unknown model {name!r}; available: {', '.join(sorted(RESTORERS))}")
    optics, camera = (
        _optics_and_camera(core) if core is not None else (OpticsParams(), CameraParams())
    )
    factory, _ = RESTORERS[name]
    return factory(optics, camera)
