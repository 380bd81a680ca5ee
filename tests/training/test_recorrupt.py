"""Recorruption: the camera's noise read from the frames themselves, and target noise that is
independent of the input's."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.simulate import WorldCamera, draw_world, world_stack
from live_restore.training._recorrupt import NoiseModel, recorrupt


def _camera(kind: str, seed: int) -> WorldCamera:
    rng = np.random.default_rng(seed)
    while (camera := WorldCamera.random(rng, (128, 128))).kind != kind:
        pass
    return camera


@pytest.mark.parametrize(("kind", "seed"), [("scmos", 0), ("scmos", 1), ("emccd", 2)])
def test_the_noise_fit_reads_the_cameras_gain_from_a_stack(kind, seed):
    draw = draw_world(np.random.default_rng(seed), "filaments", photon_range=(100.0, 300.0))
    planes, _, camera = world_stack(draw, 128, 5, 0.5, camera=_camera(kind, seed))
    fitted = NoiseModel.fit(planes)
    # counts² per count: the gain, doubled by an EMCCD's register (excess noise factor² = 2)
    expected = camera.mean_gain_adu_per_e * (2.0 if camera.kind == "emccd" else 1.0)
    assert fitted.gain == pytest.approx(expected, rel=0.2)


def test_a_flat_frame_is_refused():
    with pytest.raises(ValueError, match="too narrow a range"):
        NoiseModel.fit(np.full((2, 64, 64), 100, np.uint16))


def test_recorrupted_pairs_have_independent_noise_and_an_unbiased_target():
    rng = np.random.default_rng(0)
    clean = np.full((512, 512), 50.0, np.float32)
    variance = np.full_like(clean, 50.0)
    noisy = clean + rng.standard_normal(clean.shape).astype(np.float32) * np.sqrt(variance)
    hat, bar = recorrupt(noisy, variance, 1.0, rng)
    correlation = np.corrcoef((hat - clean).ravel(), (bar - clean).ravel())[0, 1]
    assert abs(correlation) < 0.01  # the input's noise says nothing of the target's
    assert abs(float(bar.mean()) - 50.0) < 0.1
    assert float(hat.var()) == pytest.approx(2 * 50.0, rel=0.03)
