"""Widefield optics from first principles: pupil -> PSF -> OTF, with defocus.

Scalar diffraction: the amplitude pupil is a disc of radius NA/λ in spatial frequency; defocus
adds the exact propagation phase 2πz(√((n/λ)² − k²) − n/λ); a small primary spherical
aberration (Zernike Z(4,0), in waves rms) makes +z and −z differ, so the sign of defocus is
observable, as it is on a real objective. The intensity PSF is |FT(pupil)|², normalised to unit
energy, and the OTF is its Fourier transform, so the OTF support ends at 2·NA/λ by construction.

Every transfer function here is returned on an rfft2 grid (rows: full, columns: half), ready to
multiply an ``rfft2`` spectrum, and already includes the camera pixel's box integration.
"""

from __future__ import annotations

import functools
import math

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

__all__ = ["OpticsParams", "otf_rfft", "sr_otf_rfft"]


class OpticsParams(BaseModel):
    """Optical parameters of the simulated widefield microscope (DESIGN.md defaults)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    na: float = Field(1.49, gt=0.05, le=1.7, description="Objective numerical aperture.")
    immersion_index: float = Field(1.518, ge=1.0, le=1.8, description="Refractive index n.")
    emission_wavelength_nm: float = Field(
        525.0, ge=300.0, le=1000.0, description="Emission (detection) wavelength."
    )
    camera_pixel_um: float = Field(6.5, gt=0.5, le=30.0, description="Physical camera pixel.")
    magnification: float = Field(100.0, ge=1.0, le=250.0, description="Total magnification.")
    spherical_aberration_waves: float = Field(
        0.1,
        ge=-1.0,
        le=1.0,
        description="Primary spherical aberration, Zernike Z(4,0) in waves rms; breaks the "
        "symmetry between +z and -z defocus.",
    )

    @model_validator(mode="after")
    def _physically_possible(self) -> OpticsParams:
        if self.na >= self.immersion_index:
            raise ValueError(
                f"NA {self.na} must be below the immersion index {self.immersion_index}: "
                "no ray can have sin(theta) >= 1 in the immersion medium"
            )
        nyquist_um = self.emission_wavelength_nm / 1000.0 / (4.0 * self.na)
        if self.pixel_um > nyquist_um:
            raise ValueError(
                f"camera pixel at the sample {self.pixel_um * 1000:.1f} nm (camera_pixel_um "
                f"{self.camera_pixel_um} / magnification {self.magnification}) undersamples "
                f"the optics: Nyquist for NA {self.na} at {self.emission_wavelength_nm:.0f} nm "
                f"needs <= {nyquist_um * 1000:.1f} nm. The simulator renders band-limited "
                "images and supports Nyquist-sampled set-ups only."
            )
        return self

    @property
    def pixel_um(self) -> float:
        """Camera pixel size at the sample, µm."""
        return self.camera_pixel_um / self.magnification

    @property
    def sr_pixel_um(self) -> float:
        """Pixel size of the 2x super-resolved grid (also the sample's fine grid), µm."""
        return self.pixel_um / 2.0

    @property
    def wavelength_um(self) -> float:
        """Emission wavelength, µm."""
        return self.emission_wavelength_nm / 1000.0

    @property
    def cutoff_per_um(self) -> float:
        """Incoherent (OTF) cut-off frequency 2·NA/λ, cycles per µm."""
        return 2.0 * self.na / self.wavelength_um


def _rfft_frequencies(shape: tuple[int, int], pixel_um: float) -> tuple[np.ndarray, np.ndarray]:
    ky = np.fft.fftfreq(shape[0], d=pixel_um)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel_um)[None, :]
    return ky, kx


def _box_transfer(shape: tuple[int, int], grid_pixel_um: float, box_um: float) -> np.ndarray:
    """Transfer function of integrating over a square pixel of side ``box_um``."""
    ky, kx = _rfft_frequencies(shape, grid_pixel_um)
    return (np.sinc(ky * box_um) * np.sinc(kx * box_um)).astype(np.float32)


def _intensity_otf(
    shape: tuple[int, int],
    grid_pixel_um: float,
    pupil_radius_per_um: float,
    defocus_um: float,
    optics: OpticsParams,
    spherical_waves: float,
) -> np.ndarray:
    """OTF (rfft grid, OTF(0) = 1) of an incoherent system with the given amplitude pupil."""
    ky = np.fft.fftfreq(shape[0], d=grid_pixel_um)[:, None]
    kx = np.fft.fftfreq(shape[1], d=grid_pixel_um)[None, :]
    k2 = ky**2 + kx**2
    inside = k2 <= pupil_radius_per_um**2
    n_over_lambda = optics.immersion_index / optics.wavelength_um
    # exact scalar defocus phase; sqrt argument is positive inside the pupil because NA < n
    kz = np.sqrt(np.maximum(n_over_lambda**2 - k2, 0.0))
    phase = 2.0 * np.pi * defocus_um * (kz - n_over_lambda)
    if spherical_waves:
        rho2 = k2 / pupil_radius_per_um**2
        zernike_40 = math.sqrt(5.0) * (6.0 * rho2**2 - 6.0 * rho2 + 1.0)
        phase = phase + 2.0 * np.pi * spherical_waves * zernike_40
    pupil = np.where(inside, np.exp(1j * phase), 0.0)
    amplitude_psf = np.fft.ifft2(pupil)
    psf = (amplitude_psf.real**2 + amplitude_psf.imag**2).astype(np.float64)
    psf /= psf.sum()  # energy conservation: a point source keeps all its photons
    return np.fft.rfft2(psf).astype(np.complex64)


@functools.lru_cache(maxsize=128)
def otf_rfft(
    shape: tuple[int, int],
    grid_pixel_um: float,
    optics: OpticsParams,
    defocus_um: float,
) -> np.ndarray:
    """Widefield OTF x camera-pixel integration on an rfft2 grid of ``shape``.

    ``grid_pixel_um`` is the sampling of the grid the spectrum lives on (camera or fine grid).
    Cached: callers should quantise ``defocus_um`` (the simulator uses 5 nm steps).
    """
    otf = _intensity_otf(
        shape,
        grid_pixel_um,
        optics.na / optics.wavelength_um,
        defocus_um,
        optics,
        optics.spherical_aberration_waves,
    )
    otf *= _box_transfer(shape, grid_pixel_um, optics.pixel_um)
    otf.setflags(write=False)
    return otf


@functools.lru_cache(maxsize=16)
def sr_otf_rfft(shape: tuple[int, int], grid_pixel_um: float, optics: OpticsParams) -> np.ndarray:
    """OTF of the ideal 2x super-resolved ground truth.

    The in-focus, aberration-free widefield OTF stretched to twice the cut-off (4·NA/λ), the
    standard definition of a 2x resolution gain (what an ideal linear SIM reaches), integrated
    over the SR pixel.
    """
    otf = _intensity_otf(
        shape, grid_pixel_um, 2.0 * optics.na / optics.wavelength_um, 0.0, optics, 0.0
    )
    otf *= _box_transfer(shape, grid_pixel_um, optics.sr_pixel_um)
    otf.setflags(write=False)
    return otf
