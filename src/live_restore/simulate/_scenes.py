"""Scenes for interpolation: non-rigid motion in time, and samples with depth.

The microscope device (``_microscope.py``) moves its mobile layer rigidly. Interpolation needs
more than that, with exact truth at any fraction between two real frames:

- :class:`MovingScene`: a 2-D sample whose mobile layer translates *and* the whole field deforms
  smoothly (a random displacement field, correlated over ~1-2 µm, like a cell changing shape).
  Position at fraction ``f`` of the interval is the backward map ``x - f·(v + D(x))``, so the
  frame at any ``f`` is rendered from the same sample: the truth is the noise-free frame there.
- :class:`LayeredSample`: a 3-D sample of thin layers at different depths, each a 2-D structure.
  The widefield image at focal plane ``z`` sums each layer blurred by the OTF at its defocus
  ``z_layer - z``: the truth for a plane between two acquired ones is that plane's image.

Both render in expected photons per camera pixel (``peak_photons`` at the 99.9th percentile of
the in-focus image at fraction 0), band-limited exactly as the device does: fine grid ->
camera grid by the spectrum's Nyquist band, then the OTF of the defocus (pixel box included).
Bleaching in time: a global survival ``exp2(-f·bleach_per_interval)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.fft as sfft
from scipy import ndimage

from ._grids import band_limit_to_coarse
from ._optics import OpticsParams, otf_rfft, sr_otf_rfft
from ._samples import STRUCTURES, make_sample

__all__ = ["LayeredSample", "MovingScene", "axial_nyquist_um", "smooth_displacement"]

_FINE = 2  # the sample's fine grid is the camera grid / 2, as in the device


def axial_nyquist_um(optics: OpticsParams) -> float:
    """Widefield axial Nyquist step, λ / (2 n (1 - cos α)): the OTF's axial support."""
    sin_alpha = optics.na / optics.immersion_index
    cos_alpha = float(np.sqrt(1.0 - sin_alpha**2))
    return optics.wavelength_um / (2.0 * optics.immersion_index * (1.0 - cos_alpha))


def smooth_displacement(
    shape: tuple[int, int], amplitude_px: float, correlation_px: float, rng: np.random.Generator
) -> np.ndarray:
    """A smooth random displacement field ``(2, H, W)`` (y, x), largest magnitude ``amplitude_px``.

    White noise low-passed by a Gaussian of ``correlation_px`` (periodic): locally smooth,
    varying over the field, never folding for amplitudes below about the correlation length.
    """
    field = rng.standard_normal((2, *shape))
    for axis in range(2):
        field[axis] = ndimage.gaussian_filter(field[axis], correlation_px, mode="wrap")
    peak = float(np.sqrt((field**2).sum(axis=0)).max()) or 1.0
    scaled: np.ndarray = (field * (amplitude_px / peak)).astype(np.float32)
    return scaled


def _to_camera(fine: np.ndarray, optics: OpticsParams, defocus_um: float) -> np.ndarray:
    """Fine-grid density -> noise-free widefield image on the camera grid (arbitrary units)."""
    coarse = band_limit_to_coarse(fine.astype(np.float32), _FINE)
    spectrum = sfft.rfft2(coarse, workers=1) * otf_rfft(
        coarse.shape, optics.pixel_um, optics, defocus_um
    )
    image: np.ndarray = np.maximum(sfft.irfft2(spectrum, s=coarse.shape, workers=1), 0.0)
    return image.astype(np.float32)


def _crop(image: np.ndarray, margin: int) -> np.ndarray:
    return image[margin:-margin, margin:-margin] if margin else image


@dataclass(frozen=True)
class MovingScene:
    """A sample moving between two real frames (see the module docstring).

    Over one interval the static layer translates by ``drift_px`` and the mobile layer by
    ``velocity_px`` (camera px, (y, x), two directions: the parts move relative to each other),
    and everything deforms by ``displacement_px`` (``(2, H, W)`` on the fine grid, in camera
    px). Render any fraction with :meth:`photons`.
    """

    static: np.ndarray  # fine-grid density (H, W), with a margin around the field
    mobile: np.ndarray
    drift_px: tuple[float, float]
    velocity_px: tuple[float, float]
    displacement_px: np.ndarray
    margin_px: int  # camera px cropped on each side (keeps the periodic FFT from wrapping)
    scale: float  # density -> expected photons
    bleach_per_interval: float
    optics: OpticsParams

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        size_px: int,
        peak_photons: float,
        motion_px: float,
        deformation_px: float,
        structure: str | None = None,
        optics: OpticsParams | None = None,
        bleach_per_interval: float = 0.02,
    ) -> MovingScene:
        """A random scene of ``size_px`` camera pixels a side.

        ``motion_px``: how far each layer translates per interval, each in its own random
        direction; ``deformation_px``: the deformation field's largest displacement per
        interval.
        """
        optics = optics or OpticsParams()
        margin = 16 + int(np.ceil(motion_px + deformation_px))
        side = _FINE * (size_px + 2 * margin)
        kind = structure or str(rng.choice(STRUCTURES))
        sample = make_sample(kind, (side, side), optics.sr_pixel_um, int(rng.integers(2**31)))
        drift, velocity = (
            (float(motion_px * np.sin(angle)), float(motion_px * np.cos(angle)))
            for angle in rng.uniform(0, 2 * np.pi, 2)
        )
        correlation = rng.uniform(15.0, 30.0) * _FINE  # 1-2 µm at 65 nm camera pixels
        displacement = smooth_displacement((side, side), deformation_px, correlation, rng)
        scene = cls(sample.static, sample.mobile, drift, velocity, displacement, margin, 1.0,
                    bleach_per_interval, optics)  # fmt: skip
        reference = float(np.percentile(scene._density_image(0.0), 99.9)) or 1.0
        return cls(sample.static, sample.mobile, drift, velocity, displacement, margin,
                   peak_photons / reference, bleach_per_interval, optics)  # fmt: skip

    def _fine_at(self, fraction: float) -> np.ndarray:
        side = self.static.shape
        rows, cols = np.meshgrid(
            np.arange(side[0], dtype=np.float32), np.arange(side[1], dtype=np.float32),
            indexing="ij",
        )  # fmt: skip
        rows -= fraction * _FINE * self.displacement_px[0]
        cols -= fraction * _FINE * self.displacement_px[1]
        layers = []
        for density, (vy, vx) in ((self.static, self.drift_px), (self.mobile, self.velocity_px)):
            where = [rows - fraction * _FINE * vy, cols - fraction * _FINE * vx]
            layers.append(ndimage.map_coordinates(density, where, order=1, mode="grid-wrap"))
        static, mobile = layers
        total: np.ndarray = static + mobile
        return total

    def _density_image(self, fraction: float) -> np.ndarray:
        return _crop(_to_camera(self._fine_at(fraction), self.optics, 0.0), self.margin_px)

    def photons(self, fraction: float) -> np.ndarray:
        """Expected photons per camera pixel at ``fraction`` of the interval (0: before).

        Any real fraction renders: -2 is two intervals before, as for a window of frames.
        """
        survival = float(np.exp2(-fraction * self.bleach_per_interval))
        image: np.ndarray = self._density_image(fraction) * np.float32(self.scale * survival)
        return image

    def sr_photons(self, fraction: float) -> np.ndarray:
        """The 2x ground truth at ``fraction``: the sample through an ideal 2x OTF (4·NA/λ).

        Per camera-pixel area, as the device's ``sr_2x`` truth, so its mean matches
        :meth:`photons`; shape twice the frame's.
        """
        fine = self._fine_at(fraction)
        spectrum = sfft.rfft2(fine.astype(np.float32), workers=1)
        spectrum *= sr_otf_rfft(fine.shape, self.optics.sr_pixel_um, self.optics)
        image = np.maximum(sfft.irfft2(spectrum, s=fine.shape, workers=1), 0.0)
        survival = float(np.exp2(-fraction * self.bleach_per_interval))
        cropped = _crop(image, _FINE * self.margin_px) * np.float32(
            _FINE * _FINE * self.scale * survival
        )
        result: np.ndarray = cropped.astype(np.float32)
        return result


@dataclass(frozen=True)
class LayeredSample:
    """Thin 2-D structures at different depths: a sample with depth (module docstring)."""

    spectra: tuple[np.ndarray, ...]  # rfft2 of each layer, band-limited to the camera grid
    depths_um: tuple[float, ...]
    grid_shape: tuple[int, int]  # camera grid with the margin
    scale: float
    margin_px: int
    optics: OpticsParams

    @classmethod
    def random(
        cls,
        rng: np.random.Generator,
        size_px: int,
        peak_photons: float,
        depth_range_um: float = 3.0,
        layers: int | None = None,
        optics: OpticsParams | None = None,
    ) -> LayeredSample:
        """3-6 layers (random structures and brightness) spread over ``depth_range_um``."""
        optics = optics or OpticsParams()
        margin = 24  # defocused light spreads: keep the periodic convolution from wrapping
        side = _FINE * (size_px + 2 * margin)
        count = layers or int(rng.integers(3, 7))
        spectra, depths = [], []
        for _ in range(count):
            kind = str(rng.choice(STRUCTURES))
            sample = make_sample(kind, (side, side), optics.sr_pixel_um, int(rng.integers(2**31)))
            coarse = band_limit_to_coarse(sample.total * np.float32(rng.uniform(0.4, 1.0)), _FINE)
            spectra.append(sfft.rfft2(coarse, workers=1))
            depths.append(float(rng.uniform(-depth_range_um / 2, depth_range_um / 2)))
        grid = (side // _FINE, side // _FINE)
        draft = cls(tuple(spectra), tuple(depths), grid, 1.0, margin, optics)
        reference = float(np.percentile(draft.photons(0.0), 99.9)) or 1.0
        return cls(tuple(spectra), tuple(depths), grid, peak_photons / reference, margin, optics)

    def photons(self, focal_plane_um: float) -> np.ndarray:
        """Expected photons per camera pixel with the focus at ``focal_plane_um``."""
        spectrum = np.zeros_like(self.spectra[0])
        for layer, depth in zip(self.spectra, self.depths_um, strict=True):
            spectrum += layer * otf_rfft(
                self.grid_shape, self.optics.pixel_um, self.optics, depth - focal_plane_um
            )
        image = sfft.irfft2(spectrum, s=self.grid_shape, workers=1)
        result: np.ndarray = _crop(np.maximum(image, 0.0), self.margin_px) * np.float32(self.scale)
        return result.astype(np.float32)
