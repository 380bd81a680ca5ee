"""The simulated microscope: sample + dynamics + optics + illumination + camera, with truth.

Rendering is exact for a Nyquist-sampled widefield microscope and cheap enough for video rate:
- The widefield image is band-limited below the camera's Nyquist frequency (OTF cut-off 2·NA/λ
  < 1/(2·pixel)), so each sample layer is band-limited onto the camera grid once, and a frame is
  a wrapped crop of it, one small rfft2 per layer (sub-pixel motion as a phase ramp), the OTF of
  the current defocus (which includes the pixel's box integration), and one irfft2.
- SIM raw frames and the 2x ground truth need frequencies above the camera's Nyquist, so they
  are rendered on the fine grid (pattern x sample, then OTF) and, for SIM, brought back to the
  camera grid by keeping the spectrum inside its Nyquist band (exact for the same reason).
- The crop carries a margin that grows with defocus so the periodic convolution does not wrap
  light from one edge to the other.

Approximations, said plainly: scalar (not vectorial) diffraction; structure motion is a rigid
motion of the mobile layer relative to the static one; photobleaching is tracked per camera
pixel of the sample (in the static layer's frame) and applies to both layers; the sample tiles
the plane periodically, so the XY stage never runs off it.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace

import numpy as np
import scipy.fft as sfft

from ._camera import CameraParams, expose, expose_frame
from ._grids import (
    add_wrapped,
    band_limit_to_coarse,
    coarse_band,
    crop_wrapped,
    next_fast_even,
    phase_ramp,
)
from ._optics import OpticsParams, otf_rfft, sr_otf_rfft
from ._samples import Sample, Structure, make_sample, parse_structure
from ._sim_pattern import SimPatternParams, pattern_index_to_angle_phase

__all__ = ["FrameRecord", "FrameTruth", "ManualClock", "SimMicroscope"]

_FINE = 2  # fine grid = SR grid = camera grid / 2
_DEFOCUS_QUANTUM_UM = 0.005  # OTFs are cached per 5 nm of defocus
_MOTION_PERIOD_S = 600.0  # the mobile layer's path turns through a full circle in 10 min


class ManualClock:
    """A clock that only moves when told to: reproducible time-lapses in tests and datasets."""

    def __init__(self, start_s: float = 0.0) -> None:
        self._now_s = start_s

    def __call__(self) -> float:
        return self._now_s

    def advance(self, seconds: float) -> None:
        """Move time forward by ``seconds``."""
        if seconds < 0:
            raise ValueError(f"time cannot go backwards (advance by {seconds} s)")
        self._now_s += seconds

    def set(self, seconds: float) -> None:
        """Jump to an absolute time."""
        self._now_s = seconds


class _WallClock:
    def __init__(self) -> None:
        self._t0 = time.monotonic()

    def __call__(self) -> float:
        return time.monotonic() - self._t0


@dataclass(frozen=True)
class FrameRecord:
    """Everything needed to re-render one exposure exactly (its ground truth included)."""

    index: int
    time_s: float
    exposure_ms: float
    excitation_percent: float
    shutter_open: bool
    pattern_index: int  # 0 widefield, 1..9 SIM angle*3 + phase + 1
    stage_um: tuple[float, float, float]  # x, y, z
    defocus_um: float  # stage z minus the (drifting) focal plane of the sample
    static_offset_px: tuple[float, float]  # FOV origin in the sample, camera px (y, x)
    mobile_offset_px: tuple[float, float]
    bleach_factor: np.ndarray = field(repr=False)  # survival of fluorophores over the FOV

    @property
    def photon_scale(self) -> float:
        """Excitation x exposure, the factor that turns unit brightness into photons."""
        if not self.shutter_open:
            return 0.0
        return self.exposure_ms * self.excitation_percent / 100.0


@dataclass(frozen=True)
class FrameTruth:
    """Ground truth of one frame, in expected photons per camera-pixel area."""

    record: FrameRecord
    expected_photons: np.ndarray  # what the camera's mean is for this frame (defocus, pattern)
    in_focus_widefield: np.ndarray  # same instant, same light, at zero defocus, no pattern
    sr_2x: np.ndarray  # ideal 2x image (OTF to 4NA/λ) on the 2x grid; mean matches widefield

    @property
    def defocus_um(self) -> float:
        """Signed defocus of this frame (stage above the focal plane is positive)."""
        return self.record.defocus_um


def _non_negative(image: np.ndarray) -> np.ndarray:
    """Clip the tiny negative ringing of band-limited rendering; photons cannot be negative."""
    out: np.ndarray = np.maximum(image, 0.0).astype(np.float32)
    return out


class SimMicroscope:
    """A widefield / SIM fluorescence microscope simulated from physics.

    Thread-safe: devices set state from the MDA thread while the camera renders on the
    acquisition thread. State changes take a short lock; rendering works on a snapshot.

    Parameters
    ----------
    structure : str
        One of :data:`live_restore.simulate.STRUCTURES`.
    seed : int
        Seed of the sample and of the noise: the same seed gives the same frames.
    frame_shape : tuple[int, int]
        Camera frame (rows, columns), even, 32..4096.
    optics, camera, sim : parameter models
        Optics, camera noise and SIM illumination.
    peak_photons_per_ms : float
        Detected photons per ms at the brightest in-focus pixel (99.9th percentile) of the
        unbleached sample at 100 % excitation. This, exposure and excitation set the light level.
    motion_um_per_min : float
        Speed of the mobile part of the sample relative to the rest.
    bleach_half_dose_s : float
        Exposure at 100 % excitation after which half of the fluorophores are bleached.
    clock : callable, optional
        Returns the sample's time in seconds; wall clock by default, :class:`ManualClock` for
        reproducible runs.
    """

    def __init__(
        self,
        structure: str = "microtubules",
        seed: int = 0,
        frame_shape: tuple[int, int] = (512, 512),
        optics: OpticsParams | None = None,
        camera: CameraParams | None = None,
        sim: SimPatternParams | None = None,
        peak_photons_per_ms: float = 20.0,
        motion_um_per_min: float = 0.3,
        bleach_half_dose_s: float = 60.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        self._lock = threading.RLock()
        self._structure = parse_structure(structure)
        self._seed = int(seed)
        self._frame_shape = self._check_frame_shape(frame_shape)
        self.optics = optics or OpticsParams()
        self.camera = camera or CameraParams()
        self.sim = sim or SimPatternParams()
        self.sim.check_against(self.optics)
        self.peak_photons_per_ms = self._check_positive("peak_photons_per_ms", peak_photons_per_ms)
        self.motion_um_per_min = float(motion_um_per_min)
        self.bleach_half_dose_s = self._check_positive("bleach_half_dose_s", bleach_half_dose_s)
        self.clock: Callable[[], float] = clock or _WallClock()
        # device-controlled state
        self.stage_um = [0.0, 0.0, 0.0]
        self.focus_drift_um_per_min = 0.0
        self.xy_drift_nm_per_min = (0.0, 0.0)  # (x, y)
        self.excitation_percent = 10.0
        self.shutter_open = True
        self.pattern_index = 0
        self.exposure_ms = 10.0
        self._frames_taken = 0
        self._last: FrameRecord | None = None
        self._sample: Sample | None = None
        self._layers_camera: tuple[np.ndarray, np.ndarray] | None = None
        self._dose_ms = np.zeros((1, 1), np.float32)
        self._peak_reference = 1.0

    # ----------------------------------------------------------------- validation helpers
    @staticmethod
    def _check_frame_shape(shape: tuple[int, int]) -> tuple[int, int]:
        rows, cols = (int(shape[0]), int(shape[1]))
        for n in (rows, cols):
            if n < 32 or n > 4096 or n % 2:
                raise ValueError(
                    f"frame size {rows}x{cols} is not allowed: each side must be even and "
                    "between 32 and 4096 pixels"
                )
        return rows, cols

    @staticmethod
    def _check_positive(name: str, value: float) -> float:
        if not (value > 0 and math.isfinite(value)):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
        return float(value)

    # ----------------------------------------------------------------- settings
    @property
    def structure(self) -> Structure:
        """The sample's structure."""
        return self._structure

    @structure.setter
    def structure(self, value: str) -> None:
        with self._lock:
            self._structure = parse_structure(value)
            self._sample = None

    @property
    def seed(self) -> int:
        """Seed of the sample and of the noise."""
        return self._seed

    @seed.setter
    def seed(self, value: int) -> None:
        with self._lock:
            self._seed = int(value)
            self._sample = None

    @property
    def frame_shape(self) -> tuple[int, int]:
        """Camera frame (rows, columns)."""
        return self._frame_shape

    @frame_shape.setter
    def frame_shape(self, value: tuple[int, int]) -> None:
        with self._lock:
            self._frame_shape = self._check_frame_shape(value)
            self._sample = None

    def set_optics(self, optics: OpticsParams) -> None:
        """Change the optics (the sample is redrawn on the new grid)."""
        with self._lock:
            self.sim.check_against(optics)
            self.optics = optics
            self._sample = None

    def set_sim(self, sim: SimPatternParams) -> None:
        """Change the SIM illumination parameters."""
        with self._lock:
            sim.check_against(self.optics)
            self.sim = sim

    @property
    def sample(self) -> Sample:
        """The fine-grid sample (drawn on first use, and again after a change of settings)."""
        with self._lock:
            if self._sample is None:
                self._build_sample()
            assert self._sample is not None
            return self._sample

    def _build_sample(self) -> None:
        rows, cols = self._frame_shape
        # the sample spans twice the field of view each way (the XY stage moves over it)
        fine_shape = (2 * rows * _FINE, 2 * cols * _FINE)
        sample = make_sample(self._structure, fine_shape, self.optics.sr_pixel_um, self._seed)
        layers = (
            band_limit_to_coarse(sample.static, _FINE),
            band_limit_to_coarse(sample.mobile, _FINE),
        )
        whole = layers[0] + layers[1]
        otf0 = otf_rfft(whole.shape, self.optics.pixel_um, self.optics, 0.0)
        in_focus = sfft.irfft2(sfft.rfft2(whole, workers=-1) * otf0, s=whole.shape, workers=-1)
        self._peak_reference = float(np.percentile(in_focus, 99.9)) or 1.0
        self._sample = sample
        self._layers_camera = layers
        self._dose_ms = np.zeros(whole.shape, np.float32)

    # ----------------------------------------------------------------- dynamics
    def focal_plane_um(self, time_s: float) -> float:
        """Stage z at which the sample is in focus, at ``time_s`` (drifts with focus drift)."""
        return self.focus_drift_um_per_min * time_s / 60.0

    def _offsets_px(self, time_s: float) -> tuple[tuple[float, float], tuple[float, float]]:
        px = self.optics.pixel_um
        rows, cols = self._frame_shape
        drift_x = self.xy_drift_nm_per_min[0] / 1000.0 * time_s / 60.0
        drift_y = self.xy_drift_nm_per_min[1] / 1000.0 * time_s / 60.0
        # stage (0, 0) looks at the middle of the sample
        top = rows / 2 + (self.stage_um[1] + drift_y) / px
        left = cols / 2 + (self.stage_um[0] + drift_x) / px
        omega = 2 * np.pi / _MOTION_PERIOD_S
        radius_px = self.motion_um_per_min / 60.0 / omega / px
        theta0 = (self._seed % 360) * np.pi / 180
        my = radius_px * (math.sin(theta0 + omega * time_s) - math.sin(theta0))
        mx = radius_px * (math.cos(theta0) - math.cos(theta0 + omega * time_s))
        return (top, left), (top + my, left + mx)

    def record_exposure(self) -> FrameRecord:
        """Take the state for one exposure now, and bleach the sample by its dose."""
        with self._lock:
            _ = self.sample
            now = self.clock()
            static_off, mobile_off = self._offsets_px(now)
            rows, cols = self._frame_shape
            top, left = round(static_off[0]), round(static_off[1])
            dose_view = crop_wrapped(self._dose_ms, top, left, (rows, cols))
            survival = np.exp2(-dose_view / np.float32(self.bleach_half_dose_s * 1000.0))
            record = FrameRecord(
                index=self._frames_taken,
                time_s=now,
                exposure_ms=self.exposure_ms,
                excitation_percent=self.excitation_percent,
                shutter_open=self.shutter_open,
                pattern_index=self.pattern_index,
                stage_um=(self.stage_um[0], self.stage_um[1], self.stage_um[2]),
                defocus_um=self.stage_um[2] - self.focal_plane_um(now),
                static_offset_px=static_off,
                mobile_offset_px=mobile_off,
                bleach_factor=survival.astype(np.float32),
            )
            if record.photon_scale > 0:
                # SIM patterns average to 1, so one exposure's mean dose is the same
                add_wrapped(self._dose_ms, top, left, (rows, cols), record.photon_scale)
            self._frames_taken += 1
            return record

    # ----------------------------------------------------------------- rendering
    def _margin_px(self, defocus_um: float) -> int:
        na, n = self.optics.na, self.optics.immersion_index
        blur_radius_um = abs(defocus_um) * na / math.sqrt(n * n - na * na)
        margin = math.ceil((blur_radius_um + 1.5) / self.optics.pixel_um)
        return int(min(max(margin, 16), min(self._frame_shape) // 2))

    def _photons_per_unit(self, record: FrameRecord) -> float:
        return self.peak_photons_per_ms * record.photon_scale / self._peak_reference

    def expected_photons(self, record: FrameRecord) -> np.ndarray:
        """Noise-free photons per pixel for ``record`` (widefield fast path or SIM)."""
        if record.pattern_index:
            return self._render_fine(record, record.defocus_um, record.pattern_index)
        return self._render_camera(record, record.defocus_um)

    def _render_camera(self, record: FrameRecord, defocus_um: float) -> np.ndarray:
        _ = self.sample
        assert self._layers_camera is not None
        rows, cols = self._frame_shape
        margin = self._margin_px(defocus_um)
        size = (next_fast_even(rows + 2 * margin), next_fast_even(cols + 2 * margin))
        pad = ((size[0] - rows) // 2, (size[1] - cols) // 2)
        bleach = np.pad(
            record.bleach_factor,
            ((pad[0], size[0] - rows - pad[0]), (pad[1], size[1] - cols - pad[1])),
            mode="edge",
        )
        spectrum = np.zeros((size[0], size[1] // 2 + 1), np.complex64)
        for layer, offset in zip(
            self._layers_camera, (record.static_offset_px, record.mobile_offset_px), strict=True
        ):
            top, left = math.floor(offset[0]), math.floor(offset[1])
            patch = crop_wrapped(layer, top - pad[0], left - pad[1], size) * bleach
            column, row = phase_ramp(size, (offset[0] - top, offset[1] - left))
            layer_spectrum = sfft.rfft2(patch, workers=1)
            layer_spectrum *= column
            layer_spectrum *= row
            spectrum += layer_spectrum
        q = round(defocus_um / _DEFOCUS_QUANTUM_UM) * _DEFOCUS_QUANTUM_UM
        spectrum *= otf_rfft(size, self.optics.pixel_um, self.optics, q)
        image = sfft.irfft2(spectrum, s=size, workers=1)[
            pad[0] : pad[0] + rows, pad[1] : pad[1] + cols
        ]
        image *= self._photons_per_unit(record)
        return _non_negative(image)

    def _fine_spectrum(
        self, record: FrameRecord, margin_px: int
    ) -> tuple[np.ndarray, tuple[int, int], tuple[int, int]]:
        """rfft2 of the fine-grid object over the FOV plus margin; its grid shape and pad."""
        sample = self.sample
        rows, cols = self._frame_shape
        size = (
            next_fast_even(_FINE * (rows + 2 * margin_px)),
            next_fast_even(_FINE * (cols + 2 * margin_px)),
        )
        pad = ((size[0] - _FINE * rows) // 2, (size[1] - _FINE * cols) // 2)
        bleach = np.repeat(np.repeat(record.bleach_factor, _FINE, 0), _FINE, 1)
        bleach = np.pad(
            bleach,
            ((pad[0], size[0] - _FINE * rows - pad[0]), (pad[1], size[1] - _FINE * cols - pad[1])),
            mode="edge",
        )
        spectrum = np.zeros((size[0], size[1] // 2 + 1), np.complex64)
        for layer, offset in zip(
            (sample.static, sample.mobile),
            (record.static_offset_px, record.mobile_offset_px),
            strict=True,
        ):
            fy, fx = offset[0] * _FINE, offset[1] * _FINE
            top, left = math.floor(fy), math.floor(fx)
            patch = crop_wrapped(layer, top - pad[0], left - pad[1], size) * bleach
            column, row = phase_ramp(size, (fy - top, fx - left))
            spectrum += sfft.rfft2(patch, workers=-1) * column * row
        return spectrum, size, pad

    def _render_fine(
        self, record: FrameRecord, defocus_um: float, pattern_index: int
    ) -> np.ndarray:
        rows, cols = self._frame_shape
        margin = self._margin_px(defocus_um)
        spec, size, pad = self._fine_spectrum(record, margin)
        if pattern_index:
            # illumination multiplies the object in real space: leave Fourier space for it
            obj = sfft.irfft2(spec, s=size, workers=-1).astype(np.float32)
            angle_rad, phase_rad = pattern_index_to_angle_phase(pattern_index, self.sim)
            fine_px = self.optics.sr_pixel_um
            # pattern is fixed to the camera: its origin is the FOV's top-left corner
            y = (np.arange(size[0], dtype=np.float64) - pad[0]) * fine_px
            x = (np.arange(size[1], dtype=np.float64) - pad[1]) * fine_px
            k = 2 * np.pi / (self.sim.period_nm / 1000.0)
            arg = k * (np.sin(angle_rad) * y[:, None] + np.cos(angle_rad) * x[None, :]) + phase_rad
            obj *= (1.0 + self.sim.modulation * np.cos(arg)).astype(np.float32)
            spec = sfft.rfft2(obj, workers=-1)
        q = round(defocus_um / _DEFOCUS_QUANTUM_UM) * _DEFOCUS_QUANTUM_UM
        spec *= otf_rfft(size, self.optics.sr_pixel_um, self.optics, q)
        coarse = (size[0] // _FINE, size[1] // _FINE)
        image = sfft.irfft2(coarse_band(spec, size, coarse), s=coarse, workers=-1)
        cp = (pad[0] // _FINE, pad[1] // _FINE)
        image = image[cp[0] : cp[0] + rows, cp[1] : cp[1] + cols] * self._photons_per_unit(record)
        return _non_negative(image)

    def render_widefield_fine(self, record: FrameRecord) -> np.ndarray:
        """The widefield frame through the fine-grid path (a cross-check of the fast path)."""
        return self._render_fine(record, record.defocus_um, 0)

    def _render_sr(self, record: FrameRecord) -> np.ndarray:
        rows, cols = self._frame_shape
        spec, size, pad = self._fine_spectrum(record, 16)
        spec *= sr_otf_rfft(size, self.optics.sr_pixel_um, self.optics)
        image = sfft.irfft2(spec, s=size, workers=-1)[
            pad[0] : pad[0] + _FINE * rows, pad[1] : pad[1] + _FINE * cols
        ]
        # per fine pixel -> per camera-pixel area, so that the SR image's mean matches widefield
        image *= _FINE * _FINE * self._photons_per_unit(record)
        return _non_negative(image)

    # ----------------------------------------------------------------- public acquisition API
    def snap(self, rng: np.random.Generator | None = None) -> np.ndarray:
        """Expose once with the current state: a uint16 camera frame. Records it for truth."""
        record = self.record_exposure()
        photons = self.expected_photons(record)
        if rng is None:
            frame = expose_frame(photons, self.camera, (self._seed, record.index))
        else:
            frame = expose(photons, self.camera, rng)
        self.note_snapped(record)
        return frame

    def note_snapped(self, record: FrameRecord) -> None:
        """Remember ``record`` as the last frame delivered (for :meth:`ground_truth`)."""
        with self._lock:
            self._last = record

    @property
    def last_record(self) -> FrameRecord | None:
        """The state of the last exposure taken by :meth:`snap`."""
        return self._last

    def ground_truth(self, record: FrameRecord | None = None) -> FrameTruth:
        """Ground truth of ``record`` (default: the last snapped frame)."""
        record = record or self._last
        if record is None:
            raise RuntimeError("no frame has been taken yet: snap first, or pass a record")
        wide = replace(record, pattern_index=0)
        return FrameTruth(
            record=record,
            expected_photons=self.expected_photons(record),
            in_focus_widefield=self._render_camera(wide, 0.0),
            sr_2x=self._render_sr(record),
        )
