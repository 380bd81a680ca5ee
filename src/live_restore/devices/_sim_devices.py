"""pymmcore-plus Python devices that drive the simulated microscope like real hardware.

One hub (``SimMicroscopeHub``) owns a :class:`~live_restore.simulate.SimMicroscope`; its
peripherals (camera, focus stage, XY stage, light source, SIM pattern device) are attached with
``Parent`` lines and act on it. The classes live in one module because pymmcore-plus requires a
hub's peripherals to be importable from the hub's own module.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from pydantic import ValidationError
from pymmcore_plus.experimental.unicore import (
    HubDevice,
    ShutterDevice,
    SimpleCameraDevice,
    StageDevice,
    StateDevice,
    XYStageDevice,
    pymm_property,
)

from live_restore.simulate import (
    SIM_PATTERN_LABELS,
    STRUCTURES,
    CameraParams,
    SimMicroscope,
    expose_frame,
)

from . import _hubs

__all__ = [
    "SimCamera",
    "SimFocusStage",
    "SimLightSource",
    "SimMicroscopeHub",
    "SimPatternDevice",
    "SimXYStage",
]


def _updated(model: Any, **changes: Any) -> Any:
    """A copy of a frozen pydantic model with ``changes``, validated; errors name the value."""
    try:
        return type(model).model_validate({**model.model_dump(), **changes})
    except ValidationError as e:
        details = "; ".join(f"{'.'.join(map(str, err['loc']))}: {err['msg']}" for err in e.errors())
        raise ValueError(f"invalid value {changes}: {details}") from None


class SimMicroscopeHub(HubDevice):
    """The simulated microscope: sample, optics and time. Peripherals attach with ``Parent``."""

    def __init__(self) -> None:
        super().__init__()
        self.microscope = SimMicroscope()

    def initialize(self) -> None:
        _hubs.register(self.get_label(), self.microscope)

    def shutdown(self) -> None:
        _hubs.unregister(self.get_label(), self.microscope)

    def get_installed_peripherals(self) -> Sequence[tuple[str, str]]:
        return (
            ("SimCamera", "Simulated sCMOS camera"),
            ("SimFocusStage", "Simulated focus (Z) drive"),
            ("SimXYStage", "Simulated XY stage"),
            ("SimLightSource", "Simulated excitation source and shutter"),
            ("SimPatternDevice", "Simulated SIM pattern generator"),
        )

    # -- sample
    @pymm_property(allowed_values=STRUCTURES, property_type=str, name="Structure")
    def structure(self) -> str:
        """Which structure the sample shows."""
        return str(self.microscope.structure)

    @structure.setter
    def structure(self, value: str) -> None:
        self.microscope.structure = value

    @pymm_property(limits=(0, 2**31 - 1), property_type=int, name="Seed")
    def seed(self) -> int:
        """Seed of the sample and of the camera noise."""
        return self.microscope.seed

    @seed.setter
    def seed(self, value: int) -> None:
        self.microscope.seed = int(value)

    @pymm_property(limits=(0.0, 20.0), property_type=float, name="MotionUmPerMin")
    def motion_um_per_min(self) -> float:
        """Speed of the mobile part of the sample relative to the rest."""
        return self.microscope.motion_um_per_min

    @motion_um_per_min.setter
    def motion_um_per_min(self, value: float) -> None:
        self.microscope.motion_um_per_min = float(value)

    @pymm_property(limits=(0.1, 1e6), property_type=float, name="BleachHalfDoseS")
    def bleach_half_dose_s(self) -> float:
        """Seconds of exposure at 100 % excitation that bleach half of the fluorophores."""
        return self.microscope.bleach_half_dose_s

    @bleach_half_dose_s.setter
    def bleach_half_dose_s(self, value: float) -> None:
        self.microscope.bleach_half_dose_s = float(value)

    # -- optics (each change is validated as a whole: e.g. NA must stay below n)
    def _set_optics(self, **changes: Any) -> None:
        self.microscope.set_optics(_updated(self.microscope.optics, **changes))

    @pymm_property(limits=(0.1, 1.7), property_type=float, name="NA")
    def na(self) -> float:
        """Objective numerical aperture."""
        return self.microscope.optics.na

    @na.setter
    def na(self, value: float) -> None:
        self._set_optics(na=float(value))

    @pymm_property(limits=(1.0, 1.8), property_type=float, name="ImmersionIndex")
    def immersion_index(self) -> float:
        """Refractive index of the immersion medium."""
        return self.microscope.optics.immersion_index

    @immersion_index.setter
    def immersion_index(self, value: float) -> None:
        self._set_optics(immersion_index=float(value))

    @pymm_property(limits=(300.0, 1000.0), property_type=float, name="EmissionNm")
    def emission_nm(self) -> float:
        """Emission wavelength (nm)."""
        return self.microscope.optics.emission_wavelength_nm

    @emission_nm.setter
    def emission_nm(self, value: float) -> None:
        self._set_optics(emission_wavelength_nm=float(value))

    @pymm_property(limits=(0.5, 30.0), property_type=float, name="CameraPixelUm")
    def camera_pixel_um(self) -> float:
        """Physical camera pixel (µm)."""
        return self.microscope.optics.camera_pixel_um

    @camera_pixel_um.setter
    def camera_pixel_um(self, value: float) -> None:
        self._set_optics(camera_pixel_um=float(value))

    @pymm_property(limits=(1.0, 250.0), property_type=float, name="Magnification")
    def magnification(self) -> float:
        """Total magnification between sample and camera."""
        return self.microscope.optics.magnification

    @magnification.setter
    def magnification(self, value: float) -> None:
        self._set_optics(magnification=float(value))

    @pymm_property(limits=(-1.0, 1.0), property_type=float, name="SphericalAberrationWaves")
    def spherical_aberration_waves(self) -> float:
        """Primary spherical aberration (Zernike Z(4,0), waves rms)."""
        return self.microscope.optics.spherical_aberration_waves

    @spherical_aberration_waves.setter
    def spherical_aberration_waves(self, value: float) -> None:
        self._set_optics(spherical_aberration_waves=float(value))


class _Peripheral:
    """Finds the microscope of the hub this device is attached to (its ``Parent``)."""

    if TYPE_CHECKING:  # provided by Device; stubs here only for the type checker

        def get_parent_label(self) -> str: ...
        def get_label(self) -> str: ...

    def microscope(self) -> SimMicroscope:
        parent = self.get_parent_label()
        if not parent:
            raise RuntimeError(
                f"{type(self).__name__} {self.get_label()!r} is not attached to a simulated "
                f"microscope: add '#py Parent,{self.get_label()},<hub label>' to the config"
            )
        scope = _hubs.lookup(parent)
        if scope is None:
            raise RuntimeError(
                f"{type(self).__name__} {self.get_label()!r}: its hub {parent!r} is not an "
                "initialised SimMicroscopeHub (is 'Property,Core,Initialize,1' in the config?)"
            )
        return scope


class SimCamera(_Peripheral, SimpleCameraDevice):  # type: ignore[misc]
    """An sCMOS-like camera that images the simulated sample.

    Each snap renders the sample at the current stage, focus, light and SIM pattern, adds
    Poisson and read noise, and takes at least the exposure time (like a real camera).
    """

    def __init__(self) -> None:
        super().__init__()
        self._exposure_ms = 10.0
        self._frame_size = 512
        self._params = CameraParams()

    def sensor_shape(self) -> tuple[int, int]:
        return (self._frame_size, self._frame_size)

    def dtype(self) -> np.dtype[Any]:
        return np.dtype(np.uint16)

    def get_exposure(self) -> float:
        return self._exposure_ms

    def set_exposure(self, exposure: float) -> None:
        exposure = float(exposure)  # config files hand values over as strings
        if not 0.01 <= exposure <= 10000:
            raise ValueError(f"exposure {exposure} ms is outside 0.01-10000 ms")
        self._exposure_ms = float(exposure)

    def snap(self, buffer: np.ndarray) -> Mapping[str, Any]:
        started = time.perf_counter()
        scope = self.microscope()
        if scope.frame_shape != self.sensor_shape():
            scope.frame_shape = self.sensor_shape()
        scope.exposure_ms = self._exposure_ms
        record = scope.record_exposure()
        photons = scope.expected_photons(record)
        expose_frame(photons, self._params, (scope.seed, record.index), out=buffer)
        scope.note_snapped(record)
        # a camera cannot deliver a frame before its exposure has ended
        remaining_s = self._exposure_ms / 1000.0 - (time.perf_counter() - started)
        if remaining_s > 0:
            time.sleep(remaining_s)
        return {
            "sim_frame_index": record.index,
            "sim_time_s": round(record.time_s, 6),
            "sim_defocus_um": round(record.defocus_um, 4),
            "sim_pattern": SIM_PATTERN_LABELS[record.pattern_index],
        }

    @pymm_property(limits=(32, 4096), property_type=int, name="FrameSize")
    def frame_size(self) -> int:
        """Side of the square sensor in pixels (even)."""
        return self._frame_size

    @frame_size.setter
    def frame_size(self, value: int) -> None:
        SimMicroscope._check_frame_shape((int(value), int(value)))
        self._frame_size = int(value)

    @pymm_property(limits=(0.0, 100.0), property_type=float, name="ReadNoiseE")
    def read_noise_e(self) -> float:
        """Read noise, electrons rms."""
        return self._params.read_noise_e

    @read_noise_e.setter
    def read_noise_e(self, value: float) -> None:
        self._params = _updated(self._params, read_noise_e=float(value))

    @pymm_property(limits=(0.0, 10000.0), property_type=float, name="OffsetADU")
    def offset_adu(self) -> float:
        """Dark offset, counts."""
        return self._params.offset_adu

    @offset_adu.setter
    def offset_adu(self, value: float) -> None:
        self._params = _updated(self._params, offset_adu=float(value))

    @pymm_property(limits=(0.01, 100.0), property_type=float, name="GainADUPerE")
    def gain_adu_per_e(self) -> float:
        """Counts per electron."""
        return self._params.gain_adu_per_e

    @gain_adu_per_e.setter
    def gain_adu_per_e(self, value: float) -> None:
        self._params = _updated(self._params, gain_adu_per_e=float(value))

    @pymm_property(limits=(8, 16), property_type=int, name="BitDepth")
    def bit_depth(self) -> int:
        """ADC bit depth."""
        return self._params.bit_depth

    @bit_depth.setter
    def bit_depth(self, value: int) -> None:
        self._params = _updated(self._params, bit_depth=int(value))


class SimFocusStage(_Peripheral, StageDevice):  # type: ignore[misc]
    """Focus drive. Defocus is stage z minus the sample's focal plane, which can drift."""

    def get_position_um(self) -> float:
        return self.microscope().stage_um[2]

    def set_position_um(self, val: float) -> None:
        self.microscope().stage_um[2] = float(val)

    def home(self) -> None:
        self.set_position_um(0.0)

    def stop(self) -> None:
        """Moves are instantaneous: nothing to stop."""

    def set_origin(self) -> None:
        raise NotImplementedError("the simulated focus stage has a fixed origin")

    @pymm_property(limits=(-100.0, 100.0), property_type=float, name="FocusDriftUmPerMin")
    def focus_drift_um_per_min(self) -> float:
        """Rate at which the sample's focal plane drifts (µm/min)."""
        return self.microscope().focus_drift_um_per_min

    @focus_drift_um_per_min.setter
    def focus_drift_um_per_min(self, value: float) -> None:
        self.microscope().focus_drift_um_per_min = float(value)


class SimXYStage(_Peripheral, XYStageDevice):  # type: ignore[misc]
    """XY stage: moves the field of view over the (periodic) sample."""

    def get_position_um(self) -> tuple[float, float]:
        stage = self.microscope().stage_um
        return (stage[0], stage[1])

    def set_position_um(self, x: float, y: float) -> None:
        stage = self.microscope().stage_um
        stage[0], stage[1] = float(x), float(y)

    def set_origin_x(self) -> None:
        raise NotImplementedError("the simulated XY stage has a fixed origin")

    def set_origin_y(self) -> None:
        raise NotImplementedError("the simulated XY stage has a fixed origin")

    def home(self) -> None:
        self.set_position_um(0.0, 0.0)

    def stop(self) -> None:
        """Moves are instantaneous: nothing to stop."""

    @pymm_property(limits=(-10000.0, 10000.0), property_type=float, name="DriftXNmPerMin")
    def drift_x_nm_per_min(self) -> float:
        """Sample drift along x (nm/min)."""
        return self.microscope().xy_drift_nm_per_min[0]

    @drift_x_nm_per_min.setter
    def drift_x_nm_per_min(self, value: float) -> None:
        scope = self.microscope()
        scope.xy_drift_nm_per_min = (float(value), scope.xy_drift_nm_per_min[1])

    @pymm_property(limits=(-10000.0, 10000.0), property_type=float, name="DriftYNmPerMin")
    def drift_y_nm_per_min(self) -> float:
        """Sample drift along y (nm/min)."""
        return self.microscope().xy_drift_nm_per_min[1]

    @drift_y_nm_per_min.setter
    def drift_y_nm_per_min(self, value: float) -> None:
        scope = self.microscope()
        scope.xy_drift_nm_per_min = (scope.xy_drift_nm_per_min[0], float(value))


class SimLightSource(_Peripheral, ShutterDevice):  # type: ignore[misc]
    """Excitation source with a shutter: excitation (%) and brightness set the photon budget."""

    def get_open(self) -> bool:
        return self.microscope().shutter_open

    def set_open(self, open: bool) -> None:
        self.microscope().shutter_open = bool(open)

    @pymm_property(limits=(0.0, 100.0), property_type=float, name="ExcitationPercent")
    def excitation_percent(self) -> float:
        """Excitation power in percent of full power."""
        return self.microscope().excitation_percent

    @excitation_percent.setter
    def excitation_percent(self, value: float) -> None:
        self.microscope().excitation_percent = float(value)

    @pymm_property(limits=(0.001, 1e6), property_type=float, name="PeakPhotonsPerMs")
    def peak_photons_per_ms(self) -> float:
        """Detected photons per ms at the brightest in-focus pixel, at 100 % excitation."""
        return self.microscope().peak_photons_per_ms

    @peak_photons_per_ms.setter
    def peak_photons_per_ms(self, value: float) -> None:
        self.microscope().peak_photons_per_ms = float(value)


class SimPatternDevice(_Peripheral, StateDevice):  # type: ignore[misc]
    """SIM pattern generator: state 0 widefield, 1..9 = angle x 3 + phase (labels A0P0..A2P2)."""

    def __init__(self) -> None:
        super().__init__(dict(enumerate(SIM_PATTERN_LABELS)))
        self._state = 0

    def get_state(self) -> int:
        return self._state

    def set_state(self, position: int) -> None:
        if not 0 <= int(position) < len(SIM_PATTERN_LABELS):
            raise ValueError(f"SIM pattern state {position} is outside 0..9")
        self._state = int(position)
        self.microscope().pattern_index = self._state

    def _set_sim(self, **changes: Any) -> None:
        scope = self.microscope()
        scope.set_sim(_updated(scope.sim, **changes))

    @pymm_property(limits=(50.0, 5000.0), property_type=float, name="PeriodNm")
    def period_nm(self) -> float:
        """Pattern period at the sample (nm)."""
        return self.microscope().sim.period_nm

    @period_nm.setter
    def period_nm(self, value: float) -> None:
        self._set_sim(period_nm=float(value))

    @pymm_property(limits=(0.0, 1.0), property_type=float, name="Modulation")
    def modulation(self) -> float:
        """Modulation depth of the pattern."""
        return self.microscope().sim.modulation

    @modulation.setter
    def modulation(self, value: float) -> None:
        self._set_sim(modulation=float(value))
