import numpy as np
import pytest

from live_restore.simulate import CameraParams, expose


@pytest.mark.parametrize("photons", [3.0, 20.0, 150.0])
def test_pixel_mean_and_variance_follow_poisson_plus_read_noise(photons):
    camera = CameraParams(gain_adu_per_e=2.0, read_noise_e=1.5, offset_adu=100.0)
    frame = expose(np.full((256, 256), photons, np.float32), camera, np.random.default_rng(1))
    counts = frame.astype(np.float64)
    n = counts.size
    expected_mean = camera.offset_adu + camera.gain_adu_per_e * photons
    expected_var = camera.gain_adu_per_e**2 * (photons + camera.read_noise_e**2)
    # rounding to integer counts adds 1/12 count² of variance
    expected_var += 1.0 / 12.0
    assert counts.mean() == pytest.approx(expected_mean, abs=4 * np.sqrt(expected_var / n))
    assert counts.var() == pytest.approx(expected_var, rel=4 * np.sqrt(2 / n) + 0.01)


def test_counts_saturate_at_bit_depth_and_full_well():
    bright = np.full((32, 32), 1e6, np.float32)
    frame12 = expose(bright, CameraParams(bit_depth=12), np.random.default_rng(0))
    assert frame12.max() == 4095
    well = expose(bright, CameraParams(full_well_e=1000, read_noise_e=0), np.random.default_rng(0))
    assert well.max() == 1100  # full well + offset


def test_dark_frame_is_offset_plus_read_noise():
    frame = expose(
        np.zeros((128, 128), np.float32), CameraParams(read_noise_e=2.0), np.random.default_rng(0)
    )
    assert frame.mean() == pytest.approx(100.0, abs=0.1)
    assert frame.astype(float).std() == pytest.approx(np.sqrt(4 + 1 / 12), rel=0.05)


@pytest.mark.parametrize("bad", [np.nan, -1.0, np.inf])
def test_invalid_photon_images_are_refused(bad):
    photons = np.ones((8, 8), np.float32)
    photons[3, 3] = bad
    with pytest.raises(ValueError, match="finite and non-negative"):
        expose(photons, CameraParams(), np.random.default_rng(0))


def test_expose_frame_depends_on_its_seed_alone_and_keeps_the_noise_statistics():
    from live_restore.simulate import expose_frame

    camera = CameraParams()
    photons = np.full((64, 48), 7.5)
    first = expose_frame(photons, camera, (3, 11))
    again = expose_frame(photons, camera, (3, 11), out=np.empty((64, 48), np.uint16))
    np.testing.assert_array_equal(first, again)  # whatever thread finished first
    # each half is expose() with its own generator: the same function as the serial camera
    top = expose(photons[:32], camera, np.random.default_rng([3, 11, 0]))
    bottom = expose(photons[32:], camera, np.random.default_rng([3, 11, 1]))
    np.testing.assert_array_equal(first, np.vstack([top, bottom]))
    assert not np.array_equal(first, expose_frame(photons, camera, (3, 12)))
    # Poisson + read noise, in counts: mean photons + offset, variance photons + read noise²
    many = np.stack([expose_frame(photons, camera, (0, i)) for i in range(40)]).astype(float)
    assert many.mean() - camera.offset_adu == pytest.approx(7.5, abs=0.05)
    assert many.var() == pytest.approx(7.5 + camera.read_noise_e**2 + 1 / 12, rel=0.05)


def test_expose_frame_refuses_nan_in_either_half():
    from live_restore.simulate import expose_frame

    photons = np.full((16, 16), 5.0)
    photons[12, 3] = np.nan  # the helper thread's half
    with pytest.raises(ValueError, match="finite"):
        expose_frame(photons, CameraParams(), (0, 0))
