"""Build and release cores: the simulated demo microscope, or any Micro-Manager config.

Every core made here must be released with :func:`release_core` (or used through
:func:`open_core`): with devices loaded, pymmcore's callback thread otherwise aborts the
interpreter at exit in most runs ("FATAL: exception not rethrown", see ENVIRONMENT.md).
"""

from __future__ import annotations

import gc
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from pymmcore_plus import CMMCorePlus, DeviceType
from pymmcore_plus.experimental.unicore import UniMMCore

from live_restore.simulate import SimMicroscope

from . import _hubs

__all__ = [
    "LiveRestoreCore",
    "config_path",
    "demo_core",
    "load_core",
    "microscope_of",
    "open_core",
    "release_core",
]

_PACKAGE_DIR = Path(__file__).resolve().parent.parent


class LiveRestoreCore(UniMMCore):
    """UniMMCore that also honours AutoShutter when the camera is a Python device.

    pymmcore-plus 0.18's UniMMCore snaps a Python camera without opening the shutter, while its
    MDA engine closes the shutter after every event (expecting the core to open it, as C++
    MMCore does for C++ cameras). So from the second frame on, an MDA on a Python camera ran in
    the dark. This restores Micro-Manager's documented behaviour: with AutoShutter on, the
    shutter is open during a snap and during a sequence acquisition.
    """

    def _python_autoshutter(self) -> str:
        shutter = self.getShutterDevice()
        camera = self.getCameraDevice()
        if shutter and camera and self.getAutoShutter() and self.isPyDevice(camera):
            return shutter
        return ""

    # pymmcore-plus 0.18 leaves pixel-size presets to C++ MMCore, which cannot read Python
    # devices' properties, so a preset keyed on one never matched and the pixel size read 0.
    def _python_pixel_config(self) -> str:
        for name in self.getAvailablePixelSizeConfigs():
            settings = list(self.getPixelSizeConfigData(name))
            if settings and all(
                self.isPyDevice(dev) and _same_value(self.getProperty(dev, prop), value)
                for dev, prop, value in settings
            ):
                return str(name)
        return ""

    def getCurrentPixelSizeConfig(self, *args: Any) -> str:  # type: ignore[override]
        return str(super().getCurrentPixelSizeConfig(*args)) or self._python_pixel_config()

    def getPixelSizeUm(self, *args: Any) -> float:
        size = float(super().getPixelSizeUm(*args))
        if size == 0 and (name := self._python_pixel_config()):
            binning = float(self.getProperty(self.getCameraDevice(), "Binning") or 1)
            size = float(self.getPixelSizeUmByID(name)) * binning / self.getMagnificationFactor()
        return size

    def getPixelSizeAffine(self, *args: Any) -> Any:
        affine = super().getPixelSizeAffine(*args)
        if not any(affine) and (size := self.getPixelSizeUm()):
            return (size, 0.0, 0.0, 0.0, size, 0.0)
        return affine

    def setShutterOpen(self, *args: Any) -> None:
        # CMMCorePlus resolves setShutterOpen(state) through C++ MMCore's shutter, which is ""
        # for a Python shutter: it then emitted propertyChanged("", "State", ...), and
        # pymmcore-widgets' preset widgets raised "No device with label ''" on every frame.
        if len(args) == 1 and (shutter := self.getShutterDevice()):
            args = (shutter, args[0])
        super().setShutterOpen(*args)

    def snapImage(self) -> None:
        if not (shutter := self._python_autoshutter()):
            return super().snapImage()
        self.setShutterOpen(shutter, True)
        try:
            super().snapImage()
        finally:
            self.setShutterOpen(shutter, False)

    def startSequenceAcquisition(self, *args: Any, **kwargs: Any) -> None:
        if shutter := self._python_autoshutter():
            self.setShutterOpen(shutter, True)
        super().startSequenceAcquisition(*args, **kwargs)

    def startContinuousSequenceAcquisition(self, *args: Any, **kwargs: Any) -> None:
        if shutter := self._python_autoshutter():
            self.setShutterOpen(shutter, True)
        super().startContinuousSequenceAcquisition(*args, **kwargs)

    def stopSequenceAcquisition(self, *args: Any, **kwargs: Any) -> None:
        super().stopSequenceAcquisition(*args, **kwargs)
        if shutter := self._python_autoshutter():
            self.setShutterOpen(shutter, False)


def _same_value(current: object, preset: object) -> bool:
    """Property values as Micro-Manager compares them: numbers numerically, else as text."""
    try:
        return abs(float(str(current)) - float(str(preset))) < 1e-9
    except ValueError:
        return str(current) == str(preset)


def config_path(name: str) -> Path:
    """Path of a config shipped with live-restore (``sim_demo.cfg``, ``democam.cfg``)."""
    # installed wheel: configs are packaged; editable install / checkout: the repo's mm_configs/
    for folder in (_PACKAGE_DIR / "mm_configs", _PACKAGE_DIR.parent.parent / "mm_configs"):
        if (folder / name).is_file():
            return folder / name
    raise FileNotFoundError(f"shipped Micro-Manager config {name!r} not found")


def load_core(config: str | Path) -> UniMMCore:
    """A UniMMCore loaded from ``config`` (C++ devices, ``#py`` Python devices, or both).

    Raises ``FileNotFoundError`` for a missing file and ``RuntimeError`` naming the file and the
    failing line for a config that does not load; a partly loaded core is released first.
    """
    path = Path(config).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"Micro-Manager config not found: {path}")
    core = LiveRestoreCore()
    try:
        core.loadSystemConfiguration(str(path))
    except Exception as e:
        release_core(core)
        raise RuntimeError(f"could not load Micro-Manager config {path}: {e}") from e
    return core


def demo_core(config: str | Path | None = None) -> UniMMCore:
    """A core with the simulated microscope loaded (``mm_configs/sim_demo.cfg`` by default)."""
    return load_core(config if config is not None else config_path("sim_demo.cfg"))


def release_core(core: UniMMCore) -> None:
    """Unload every device and drop the core, so the interpreter can exit cleanly."""
    try:
        if core.mda.is_running():
            core.mda.cancel()
        core.reset()
    finally:
        del core
        gc.collect()


@contextmanager
def open_core(config: str | Path | None = None) -> Iterator[UniMMCore]:
    """Context manager: a loaded core (the demo microscope by default), released on exit."""
    core = demo_core(config)
    try:
        yield core
    finally:
        release_core(core)


def microscope_of(core: CMMCorePlus) -> SimMicroscope:
    """The simulated microscope behind ``core``'s hub: for ground truth in tests and training.

    Any pymmcore-plus core will do: only a core that knows Python devices (``UniMMCore``) can
    hold the simulated microscope, and a plain ``CMMCorePlus`` simply has none.
    """
    if not hasattr(core, "isPyDevice"):
        raise LookupError(f"a {type(core).__name__} has no Python devices, so no simulated hub")
    for label in core.getLoadedDevicesOfType(DeviceType.Hub):
        if core.isPyDevice(label) and (scope := _hubs.lookup(label)) is not None:
            return scope
    raise LookupError("this core has no simulated microscope hub (SimMicroscopeHub) loaded")
