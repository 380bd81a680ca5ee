import numpy as np
import pytest

from live_restore.simulate import OpticsParams, otf_rfft


def _radial_k(shape, pixel_um):
    ky = np.fft.fftfreq(shape[0], d=pixel_um)[:, None]
    kx = np.fft.rfftfreq(shape[1], d=pixel_um)[None, :]
    return np.hypot(ky, kx)


@pytest.mark.parametrize("na, wavelength_nm", [(1.49, 525.0), (1.2, 600.0), (0.8, 450.0)])
def test_otf_support_ends_at_2na_over_lambda(na, wavelength_nm):
    optics = OpticsParams(na=na, emission_wavelength_nm=wavelength_nm, camera_pixel_um=3.0)
    shape = (256, 256)
    otf = np.abs(otf_rfft(shape, optics.sr_pixel_um, optics, 0.0))
    k = _radial_k(shape, optics.sr_pixel_um)
    cutoff = 2 * na / (wavelength_nm / 1000)
    assert optics.cutoff_per_um == pytest.approx(cutoff)
    assert otf[k > 1.03 * cutoff].max() < 1e-5  # nothing beyond the cut-off
    assert otf[(k > 0.85 * cutoff) & (k < 0.9 * cutoff)].max() > 1e-3  # but contrast right below


@pytest.mark.parametrize("defocus_um", [0.0, 0.7, -1.5, 3.0])
def test_psf_energy_is_conserved_at_any_defocus(defocus_um):
    optics = OpticsParams()
    otf = otf_rfft((128, 128), optics.pixel_um, optics, defocus_um)
    assert abs(otf[0, 0]) == pytest.approx(1.0, abs=1e-6)


def test_spherical_aberration_makes_the_sign_of_defocus_observable():
    shape = (128, 128)
    with_sa = OpticsParams(spherical_aberration_waves=0.1)
    no_sa = OpticsParams(spherical_aberration_waves=0.0)

    def psf(optics, z):
        return np.fft.irfft2(otf_rfft(shape, optics.pixel_um, optics, z), s=shape)

    assert np.abs(psf(no_sa, 1.0) - psf(no_sa, -1.0)).max() < 1e-6
    assert np.abs(psf(with_sa, 1.0) - psf(with_sa, -1.0)).max() > 1e-3 * psf(with_sa, 0.0).max()


def test_na_above_immersion_index_is_refused_with_the_values():
    with pytest.raises(ValueError, match=r"NA 1\.6 must be below the immersion index 1\.518"):
        OpticsParams(na=1.6)


def test_undersampling_camera_is_refused_with_the_nyquist_limit():
    with pytest.raises(ValueError, match=r"undersamples the optics.*<= 88\.1 nm"):
        OpticsParams(magnification=60)
