import math

import numpy as np
import pytest
from scipy import ndimage

from live_restore.metrics import (
    brenner,
    decorrelation_resolution_um,
    fit_to_truth,
    frc_resolution_um,
    ms_ssim,
    normalised_variance,
    nrmse,
    psnr,
    spectral_focus,
    ssim,
)
from live_restore.simulate import CameraParams, ManualClock, SimMicroscope, expose


@pytest.fixture(scope="module")
def scene():
    scope = SimMicroscope("microtubules", seed=1, frame_shape=(192, 192), clock=ManualClock())
    scope.excitation_percent = 100.0
    return scope, scope.ground_truth(scope.record_exposure())


def test_quality_metrics_order_images_by_how_close_they_are(scene):
    _, truth = scene
    target = truth.sr_2x
    rng = np.random.default_rng(0)
    slightly = target + 0.01 * target.max() * rng.standard_normal(target.shape)
    badly = ndimage.gaussian_filter(target, 4) + 0.1 * target.max() * rng.standard_normal(
        target.shape
    )
    assert psnr(target, target) == math.inf and nrmse(target, target) == 0
    assert ssim(target, target) == pytest.approx(1.0, abs=1e-6)
    assert psnr(slightly, target) > psnr(badly, target) + 10
    assert ms_ssim(slightly, target) > ms_ssim(badly, target)
    assert ssim(slightly, target) > ssim(badly, target)
    assert nrmse(slightly, target) == pytest.approx(0.01 * target.max() / np.ptp(target), rel=0.05)


def test_fit_to_truth_removes_any_affine_scale(scene):
    _, truth = scene
    assert np.allclose(fit_to_truth(3.0 * truth.sr_2x + 50.0, truth.sr_2x), truth.sr_2x, atol=1e-3)


def test_ms_ssim_refuses_small_images():
    with pytest.raises(ValueError, match="160"):
        ms_ssim(np.ones((64, 64)), np.ones((64, 64)))
    with pytest.raises(ValueError, match="one shape"):
        nrmse(np.ones((4, 4)), np.ones((4, 5)))


def test_frc_of_two_noise_realisations_finds_the_optical_resolution(scene):
    scope, truth = scene
    rng = np.random.default_rng(3)
    camera = CameraParams()
    a = expose(truth.expected_photons * 50, camera, rng).astype(float)
    b = expose(truth.expected_photons * 50, camera, rng).astype(float)
    resolution = frc_resolution_um(a, b, scope.optics.pixel_um)
    # the widefield OTF ends at λ/(2·NA) = 176 nm; noise ends FRC earlier, never beyond
    assert 0.17 < resolution < 0.4
    # fewer photons: the noise wins at lower frequencies (a linear blur would not change FRC)
    dim_a = expose(truth.expected_photons * 0.05, camera, rng).astype(float)
    dim_b = expose(truth.expected_photons * 0.05, camera, rng).astype(float)
    assert frc_resolution_um(dim_a, dim_b, scope.optics.pixel_um) > resolution * 1.2


def test_decorrelation_sees_blur(scene):
    scope, truth = scene
    sharp = decorrelation_resolution_um(truth.sr_2x, scope.optics.sr_pixel_um)
    blurred = decorrelation_resolution_um(
        ndimage.gaussian_filter(truth.sr_2x, 4), scope.optics.sr_pixel_um
    )
    assert sharp < blurred


def test_focus_scores_fall_with_defocus():
    scope = SimMicroscope("er", seed=2, frame_shape=(128, 128), clock=ManualClock())
    scope.excitation_percent = 100.0
    images = []
    for z in (0.0, 0.75, 1.5):
        scope.stage_um[2] = z
        images.append(scope.expected_photons(scope.record_exposure()))
    for score in (normalised_variance, brenner, spectral_focus):
        values = [score(image) for image in images]
        assert values[0] > values[1] > values[2], score.__name__
