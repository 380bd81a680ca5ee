import dataclasses

import numpy as np
import pytest

from live_restore.simulate import STRUCTURES, ManualClock, SimMicroscope, make_sample


def _scope(structure="microtubules", frame=64, **kwargs):
    kwargs.setdefault("peak_photons_per_ms", 10.0)
    return SimMicroscope(
        structure, seed=4, frame_shape=(frame, frame), clock=ManualClock(), **kwargs
    )


def _normalised_variance(image):
    return float(image.var() / image.mean() ** 2)


def test_z_scan_sharpness_peaks_at_the_focal_plane():
    scope = _scope()
    z_um = np.round(np.arange(-2.0, 2.01, 0.25), 3)
    sharpness = []
    for z in z_um:
        scope.stage_um[2] = float(z)
        sharpness.append(_normalised_variance(scope.expected_photons(scope.record_exposure())))
    assert z_um[int(np.argmax(sharpness))] == 0.0
    # and it falls off monotonically on both sides over the first micrometre
    centre = int(np.argmax(sharpness))
    assert all(np.diff(sharpness[centre : centre + 5]) < 0)
    assert all(np.diff(sharpness[centre - 4 : centre + 1]) > 0)


def test_focus_drift_moves_the_focal_plane_and_the_truth_reports_it():
    clock = ManualClock()
    scope = SimMicroscope("microtubules", seed=1, frame_shape=(64, 64), clock=clock)
    scope.focus_drift_um_per_min = 0.5
    clock.advance(120.0)  # two minutes: the focal plane moved up by 1 µm
    scope.snap()
    assert scope.ground_truth().defocus_um == pytest.approx(-1.0)
    z_um = np.arange(-1.0, 3.01, 0.25)
    sharpness = []
    for z in z_um:
        scope.stage_um[2] = float(z)
        sharpness.append(_normalised_variance(scope.expected_photons(scope.record_exposure())))
    assert z_um[int(np.argmax(sharpness))] == pytest.approx(1.0)


def test_mean_of_the_nine_sim_frames_equals_the_widefield_image():
    scope = _scope("clathrin")
    record = scope.record_exposure()
    widefield = scope.expected_photons(record)
    sim = [
        scope.expected_photons(dataclasses.replace(record, pattern_index=k)) for k in range(1, 10)
    ]
    np.testing.assert_allclose(np.mean(sim, axis=0), widefield, atol=2e-3 * widefield.max())
    # and each pattern really is modulated
    assert np.abs(sim[0] - widefield).max() > 0.1 * widefield.max()


def test_fast_camera_grid_path_equals_the_fine_grid_path():
    scope = _scope("er")
    scope.stage_um[:] = [3.21, -1.7, 0.6]  # sub-pixel position, defocused
    record = scope.record_exposure()
    fast = scope.expected_photons(record)
    fine = scope.render_widefield_fine(record)
    np.testing.assert_allclose(fast, fine, atol=1e-4 * fast.max())


def test_sr_truth_is_sharper_than_widefield_with_the_same_mean():
    scope = _scope("microtubules")
    scope.snap()
    truth = scope.ground_truth()
    assert truth.sr_2x.shape == (128, 128)
    assert truth.sr_2x.mean() == pytest.approx(truth.in_focus_widefield.mean(), rel=0.02)
    spectrum_sr = np.abs(np.fft.fft2(truth.sr_2x))
    k = np.hypot(*np.meshgrid(np.fft.fftfreq(128, 0.0325), np.fft.fftfreq(128, 0.0325)))
    cutoff = scope.optics.cutoff_per_um
    # the SR truth carries energy beyond the widefield cut-off, up to twice it
    assert (
        spectrum_sr[(k > 1.2 * cutoff) & (k < 1.8 * cutoff)].mean() > 1e-3 * spectrum_sr[0, 0] / 128
    )


@pytest.mark.parametrize(
    "excitation, exposure_ms, factor",
    [(20.0, 10.0, 1.0), (40.0, 10.0, 2.0), (20.0, 20.0, 2.0), (80.0, 5.0, 2.0)],
)
def test_photons_scale_linearly_with_excitation_times_exposure(excitation, exposure_ms, factor):
    scope = _scope(bleach_half_dose_s=1e6)
    scope.excitation_percent, scope.exposure_ms = 20.0, 10.0
    reference = scope.expected_photons(scope.record_exposure())
    scope.excitation_percent, scope.exposure_ms = excitation, exposure_ms
    image = scope.expected_photons(scope.record_exposure())
    np.testing.assert_allclose(image, factor * reference, rtol=1e-4, atol=1e-6)


def test_peak_photons_set_the_light_level():
    scope = _scope(peak_photons_per_ms=3.0)
    scope.excitation_percent, scope.exposure_ms = 100.0, 10.0
    scope.snap()
    # the brightest in-focus pixel of the unbleached sample gets peak_photons_per_ms * exposure
    # (the FOV is a quarter of the sample, so its own peak is close to, not exactly, that)
    peak = np.percentile(scope.ground_truth().in_focus_widefield, 99.9)
    assert 15.0 < peak < 45.0


def test_photobleaching_follows_the_dose():
    scope = _scope(bleach_half_dose_s=0.1)  # half bleached after 100 ms at 100 %
    scope.excitation_percent, scope.exposure_ms = 100.0, 50.0
    first = scope.expected_photons(scope.record_exposure())
    scope.record_exposure()
    third = scope.expected_photons(scope.record_exposure())  # after 100 ms of dose
    assert third.sum() / first.sum() == pytest.approx(0.5, rel=0.02)


def test_closed_shutter_gives_no_photons():
    scope = _scope()
    scope.shutter_open = False
    frame = scope.snap()
    assert scope.ground_truth().expected_photons.max() == 0.0
    assert frame.mean() == pytest.approx(100.0, abs=0.5)


def test_same_seed_same_frames_and_different_seed_different_sample():
    a, b = _scope(), _scope()
    np.testing.assert_array_equal(a.snap(), b.snap())
    c = SimMicroscope("microtubules", seed=5, frame_shape=(64, 64), clock=ManualClock())
    assert not np.array_equal(a.sample.static, c.sample.static)


def test_structure_motion_moves_the_mobile_layer_only():
    clock = ManualClock()
    scope = SimMicroscope(
        "clathrin", seed=2, frame_shape=(64, 64), clock=clock, motion_um_per_min=1.0
    )
    first = scope.record_exposure()
    clock.advance(30.0)
    later = scope.record_exposure()
    assert later.static_offset_px == first.static_offset_px
    moved_px = np.hypot(*np.subtract(later.mobile_offset_px, first.mobile_offset_px))
    assert moved_px * scope.optics.pixel_um == pytest.approx(0.5, rel=0.1)  # ~0.5 µm in 30 s


@pytest.mark.parametrize("structure", STRUCTURES)
def test_every_structure_renders_a_sample_with_signal(structure):
    sample = make_sample(structure, (128, 128), 0.0325, seed=0)
    total = sample.total
    assert total.dtype == np.float32 and total.shape == (128, 128)
    assert np.isfinite(total).all() and total.min() >= -1e-3
    assert np.percentile(total, 99.9) == pytest.approx(1.0, rel=1e-3)
    assert (total > 0.1).mean() > 0.005  # not blank


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"structure": "bananas"}, r"unknown structure 'bananas'; allowed: microtubules, clathrin"),
        ({"frame_shape": (63, 64)}, r"frame size 63x64 is not allowed: each side must be even"),
        ({"frame_shape": (16, 16)}, r"between 32 and 4096"),
        ({"peak_photons_per_ms": 0.0}, r"peak_photons_per_ms must be a positive number, got 0.0"),
        ({"peak_photons_per_ms": -5.0}, r"peak_photons_per_ms must be a positive number"),
    ],
)
def test_bad_settings_are_refused_with_the_value_and_the_range(kwargs, message):
    with pytest.raises(ValueError, match=message):
        SimMicroscope(**kwargs)
