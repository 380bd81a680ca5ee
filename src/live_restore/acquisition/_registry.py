"""Restorers by name, for the CLI and configs: an explicit table, no discovery at import.

A restorer is built for a core's :class:`Instrument`: on the simulated microscope that is the
simulator's optics, camera and nominal SIM pattern, so the PSF, the counts -> photons conversion
and the pattern search are the ones that made the frames; on any other core it is the default
optics (NA 1.49, 525 nm) at the core's pixel size, and no pattern (searched in the data).

``MODEL+trust`` is MODEL's per-pixel trust map as a stage of its own (``_trust_stage.py``).
Names not in the table are the trained models shipped in ``engines/`` (or a model folder):
those load through :func:`live_restore.inference.load_model`, and warn when the core's pixel size
differs by more than 10 % from the one the model was trained for.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any

from live_restore.frames import Restorer
from live_restore.simulate import CameraParams, OpticsParams, SimPatternParams

from ._restorers import IdentityRestorer, RichardsonLucyRestorer
from ._trust_stage import TRUST_SUFFIX

__all__ = [
    "RESTORERS",
    "Instrument",
    "instrument_for_pixel",
    "instrument_of",
    "make_restorer",
    "register_restorer",
    "restorer_for",
    "restorer_names",
    "served_restorer",
    "shipped_model_names",
]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Instrument:
    """What a restorer needs to know about the microscope that takes the frames."""

    optics: OpticsParams = field(default_factory=OpticsParams)
    camera: CameraParams = field(default_factory=CameraParams)
    sim_pattern: SimPatternParams | None = None  # nominal; narrows the SIM parameter search
    # the camera's frame (rows, columns) when the hook was built: a model's graph for it is
    # built then (seconds on an exported backend), not when the first frame waits for it
    frame_shape: tuple[int, int] | None = None


RestorerFactory = Callable[[Instrument], Restorer]

RESTORERS: dict[str, tuple[RestorerFactory, str]] = {
    "identity": (
        lambda instrument: IdentityRestorer(instrument.camera),
        "the frame in photons (offset and gain removed); for tests and as a reference",
    ),
    "richardson-lucy": (
        lambda instrument: RichardsonLucyRestorer(instrument.optics, instrument.camera),
        "classical deconvolution, 10 iterations with the widefield PSF (the baseline)",
    ),
    "sim-classical": (
        lambda instrument: _classical_sim(instrument),
        "classical SIM: 9 pattern frames per set (channel axis) -> 2x, parameters from the data",
    ),
}


def _classical_sim(instrument: Instrument) -> Restorer:
    from live_restore.sim_recon import ClassicalSimRestorer

    return ClassicalSimRestorer(instrument.optics, instrument.camera, instrument.sim_pattern)


def register_restorer(name: str, factory: RestorerFactory, description: str) -> None:
    """Add a restorer under ``name``; a name that is taken is refused."""
    if name in RESTORERS:
        raise ValueError(f"a restorer named {name!r} is already registered")
    RESTORERS[name] = (factory, description)


def instrument_of(core: Any) -> Instrument:
    """The optics, camera and SIM pattern behind ``core`` (defaults where it cannot tell)."""
    from live_restore.devices import microscope_of

    if core is None:
        return Instrument()
    frame_shape = _frame_shape(core)
    try:
        scope = microscope_of(core)
    except LookupError:
        return replace(instrument_for_pixel(float(core.getPixelSizeUm())), frame_shape=frame_shape)
    return Instrument(scope.optics, scope.camera, scope.sim, frame_shape)


def _frame_shape(core: Any) -> tuple[int, int] | None:
    """The current camera's frame, or None without one (a frame then tells at the first call)."""
    try:
        rows, cols = int(core.getImageHeight()), int(core.getImageWidth())
    except Exception:  # no camera, or a core stand-in without one
        return None
    return (rows, cols) if rows > 0 and cols > 0 else None


def instrument_for_pixel(pixel_um: float | None) -> Instrument:
    """The default optics at ``pixel_um`` at the sample (defaults when unknown or <= 0)."""
    if not pixel_um or pixel_um <= 0:
        return Instrument()
    default = OpticsParams()
    # same camera, the magnification that gives that pixel size at the sample
    return Instrument(OpticsParams(magnification=default.camera_pixel_um / pixel_um))


def restorer_names() -> list[str]:
    """Every name :func:`make_restorer` takes: the classical ones, then the trained models."""
    trained = [n for n in shipped_model_names() if n != "focus-est"]
    return sorted(RESTORERS) + trained + [f"{n}{TRUST_SUFFIX}" for n in trust_calibrated(trained)]


def trust_calibrated(names: list[str]) -> list[str]:
    """Those of ``names`` whose folder holds a trust calibration (``MODEL+trust`` works)."""
    from live_restore.inference import TRUST_FILE
    from live_restore.models import ModelLoadError, model_dir

    found = []
    for name in names:
        try:
            if (model_dir(name) / TRUST_FILE).is_file():
                found.append(name)
        except ModelLoadError:
            continue
    return found


def shipped_model_names() -> list[str]:
    """Trained models in ``engines/`` (empty if the folder is missing)."""
    from live_restore.models import ModelLoadError, engines_dir

    try:
        return sorted(p.parent.name for p in engines_dir().glob("*/model.yaml"))
    except ModelLoadError:
        return []


def _trained_model(
    name: str,
    instrument: Instrument,
    backend: str,
    precision: str,
    interp_factor: int,
    window_mode: str,
) -> Restorer:
    from live_restore.inference import InterpSession, MFSRSession, ModelSession, load_model
    from live_restore.models import ModelLoadError

    optics = instrument.optics
    try:
        session = load_model(name, backend, precision)
    except ModelLoadError as error:
        raise ValueError(
            f"unknown or unusable model {name!r} ({error}); available: "
            f"{', '.join(sorted(RESTORERS) + shipped_model_names())}"
        ) from error
    if instrument.frame_shape is not None and hasattr(session, "prepare"):  # not a server's
        session.prepare(instrument.frame_shape)
    if isinstance(session, InterpSession):
        from ._interp_stage import InterpolationStage

        session.camera = instrument.camera.photon_conversion
        return _checked_pixel(InterpolationStage(session, interp_factor), session.spec, optics)
    if isinstance(session, MFSRSession):
        session.use_mode(window_mode)
    if not isinstance(session, ModelSession):  # SimSession and MFSRSession are ones too
        raise ValueError(
            f"{name!r} estimates focus; it is not a restoration stage (the focus monitor uses it)"
        )
    # a SimSession carries its grouping (9-frame sets along the channel axis)
    return _checked_pixel(session, session.spec, optics)


def _checked_pixel(stage: Restorer, spec: Any, optics: OpticsParams) -> Restorer:
    """``stage``, after a warning if the camera's pixel differs from the trained one by >10 %."""
    trained_pixel_um = float(spec.optics.get("pixel_um", 0.0))
    if trained_pixel_um and abs(optics.pixel_um / trained_pixel_um - 1.0) > 0.10:
        log.warning(
            "%s was trained for %.1f nm pixels; this camera has %.1f nm at the sample: "
            "expect worse restorations",
            spec.name,
            trained_pixel_um * 1000,
            optics.pixel_um * 1000,
        )
    return stage


def make_restorer(
    name: str,
    core: Any = None,
    backend: str = "auto",
    precision: str = "auto",
    interp_factor: int = 2,
    window_mode: str = "centred",
) -> Restorer:
    """The restorer called ``name``, set up for ``core`` (see module docstring).

    ``backend`` and ``precision`` apply to trained models (``load_model``); the classical
    restorers run on the CPU in float32 whatever they say. ``interp_factor``: for an
    interpolation model (``interp-t``, ``interp-z``), full-rate frames per acquired step;
    ``window_mode``: for a multi-frame model (``mfsr-sr2x``), ``centred`` or ``causal``.
    """
    return restorer_for(name, instrument_of(core), backend, precision, interp_factor, window_mode)


def restorer_for(
    name: str,
    instrument: Instrument,
    backend: str = "auto",
    precision: str = "auto",
    interp_factor: int = 2,
    window_mode: str = "centred",
) -> Restorer:
    """The restorer called ``name`` for ``instrument`` (what a worker process builds)."""
    if name.endswith(TRUST_SUFFIX):  # "MODEL+trust": MODEL's sigma as a stage of its own
        from ._trust_stage import TrustStage

        model = name.removesuffix(TRUST_SUFFIX)
        session = _trained_model(model, instrument, backend, precision, interp_factor, window_mode)
        return TrustStage(session)  # type: ignore[arg-type]  # it checks the type itself
    if name not in RESTORERS:
        return _trained_model(name, instrument, backend, precision, interp_factor, window_mode)
    factory, _ = RESTORERS[name]
    return factory(instrument)


def served_restorer(
    name: str,
    server: str,
    instrument: Instrument,
    interp_factor: int = 2,
    window_mode: str = "centred",
) -> Restorer:
    """The stage ``name`` with its model on the Triton server at ``server``.

    The grouping stays here (it only sorts frames); what the server gets is each group: a
    frame, a SIM set, an mfsr window, an interpolation pair with its fractions, or a frame
    for a trust map (``NAME+trust``). Restorers with no trained model run where the frames
    are: ValueError names them.
    """
    from live_restore.inference import TritonInterpolation, TritonSession
    from live_restore.models import ModelTask, model_dir, read_spec

    model = name.removesuffix(TRUST_SUFFIX)
    if model not in shipped_model_names():
        raise ValueError(
            f"{model!r} is not a served model (a Triton server serves the shipped models: "
            f"{', '.join(shipped_model_names())}); run it with executor 'thread' or 'process'"
        )
    if name.endswith(TRUST_SUFFIX):
        return TritonSession(model, server, trust=True)
    task = read_spec(model_dir(model)).task
    if task is ModelTask.INTERPOLATION:
        from ._interp_stage import InterpolationStage

        remote = TritonInterpolation(model, server, instrument.camera.photon_conversion)
        return InterpolationStage(remote, interp_factor)
    session = TritonSession(model, server)
    if task is ModelTask.MULTI_FRAME_SR:
        session.use_mode(window_mode)
    return session
