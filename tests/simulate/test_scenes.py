"""Scenes for interpolation: non-rigid motion with exact truth, and samples with depth."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.simulate import (
    LayeredSample,
    MovingScene,
    OpticsParams,
    axial_nyquist_um,
    smooth_displacement,
)


def _sharpness(image: np.ndarray) -> float:
    return float(image.var() / image.mean() ** 2)


def test_a_moving_scene_moves_by_what_it_says_and_keeps_its_peak():
    rng = np.random.default_rng(3)
    scene = MovingScene.random(rng, 64, 200.0, motion_px=3.0, deformation_px=0.0,
                               structure="microtubules", bleach_per_interval=0.0)  # fmt: skip
    first, last = scene.photons(0.0), scene.photons(1.0)
    assert np.percentile(first, 99.9) == pytest.approx(200.0, rel=1e-3)
    # microtubules are all static layer: the whole field shifts by the drift (3 px)
    dy, dx = scene.drift_px
    shifted = np.roll(first, (round(dy), round(dx)), axis=(0, 1))[8:-8, 8:-8]
    moved = np.corrcoef(shifted.ravel(), last[8:-8, 8:-8].ravel())[0, 1]
    unmoved = np.corrcoef(first[8:-8, 8:-8].ravel(), last[8:-8, 8:-8].ravel())[0, 1]
    assert moved > 0.8 and moved > unmoved + 0.2, (moved, unmoved)


def test_the_truth_between_is_the_scene_at_that_fraction_not_a_blend():
    rng = np.random.default_rng(5)
    scene = MovingScene.random(rng, 64, 100.0, motion_px=3.0, deformation_px=1.5,
                               structure="er")  # fmt: skip
    before, middle, after = (scene.photons(f) for f in (0.0, 0.5, 1.0))
    blend = (before + after) / 2
    assert np.abs(middle - blend).mean() > 0.05 * middle.mean()  # motion is not a cross-fade
    assert 0.98 * before.mean() < middle.mean() < 1.02 * before.mean()  # 2 % bleach per interval


def test_a_deformation_field_is_smooth_and_as_large_as_asked():
    field = smooth_displacement((128, 128), 2.0, 20.0, np.random.default_rng(0))
    magnitude = np.sqrt((field**2).sum(axis=0))
    assert magnitude.max() == pytest.approx(2.0, rel=1e-5)
    assert np.abs(np.diff(field, axis=-1)).max() < 0.1  # varies over µm, not pixels


def test_a_layered_sample_is_sharpest_at_its_layers_depths():
    rng = np.random.default_rng(1)
    sample = LayeredSample.random(rng, 64, 100.0, layers=1)
    (depth,) = sample.depths_um
    planes = np.round(np.arange(depth - 1.0, depth + 1.01, 0.25), 3)
    sharpness = [_sharpness(sample.photons(float(z))) for z in planes]
    assert planes[int(np.argmax(sharpness))] == pytest.approx(depth, abs=0.01)


def test_the_axial_nyquist_step_of_the_default_optics():
    # NA 1.49 oil (n 1.518), 525 nm: lambda / (2 n (1 - cos alpha)) = 0.214 µm
    assert axial_nyquist_um(OpticsParams()) == pytest.approx(0.2138, abs=1e-3)
