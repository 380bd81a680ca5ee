"""The wider simulated world: families, optics and cameras that behave as physics says."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.simulate import (
    FAMILIES,
    WorldCamera,
    draw_world,
    world_stack,
    write_stack_ome_zarr,
)
from live_restore.training import read_stack


@pytest.mark.parametrize("family", FAMILIES)
def test_each_family_renders_a_stack_with_truth_between_its_planes(family):
    draw = draw_world(np.random.default_rng(1), family, photon_range=(200.0, 200.0))
    planes, truth, camera = world_stack(draw, 48, 5, 0.5)
    assert draw.family == family and draw.optics.na < draw.optics.immersion_index
    assert 450 <= draw.optics.emission_wavelength_nm <= 680
    assert planes.shape == (5, 48, 48) and planes.dtype == np.uint16
    assert truth.shape == (9, 48, 48) and np.all(truth >= 0)
    # the acquired planes are noisy draws of the even truth planes, in the camera's counts
    photons = camera.to_photons(planes)
    assert abs(photons.mean() - truth[::2].mean()) < 0.1 * truth[::2].mean() + 2
    # an in-between plane is its own image, not a copy of a neighbour
    assert not np.allclose(truth[1], truth[0]) and not np.allclose(truth[1], truth[2])


def test_excluded_families_are_never_drawn():
    rng = np.random.default_rng(0)
    left_out = {draw_world(rng, exclude=("layers", "filaments")).family for _ in range(30)}
    assert left_out == {"puncta", "organelles"}
    with pytest.raises(ValueError, match="every family is excluded"):
        draw_world(rng, exclude=FAMILIES)
    with pytest.raises(ValueError, match="unknown sample family 'beads'"):
        draw_world(rng, "beads")


def _camera_of_kind(kind: str) -> WorldCamera:
    for seed in range(20):
        camera = WorldCamera.random(np.random.default_rng(seed), (256, 256))
        if camera.kind == kind:
            return camera
    raise AssertionError(f"no {kind} in 20 draws")


@pytest.mark.parametrize(("kind", "excess"), [("scmos", 1.0), ("emccd", 2.0)])
def test_camera_noise_is_shot_noise_times_the_excess_factor(kind, excess):
    camera = _camera_of_kind(kind)
    photons = 400.0
    frames = np.stack(
        [camera.expose(np.full((256, 256), photons), np.random.default_rng(i)) for i in range(8)]
    ).astype(np.float64)
    gain = camera.mean_gain_adu_per_e
    assert abs(camera.to_photons(frames).mean() - photons) < 0.02 * photons
    read = float(np.mean(camera.read_noise_e**2))
    expected = gain**2 * (excess * photons + read)
    assert abs(frames.var(axis=0, ddof=1).mean() / expected - 1) < 0.1


def test_a_stack_written_as_ngff_reads_back_with_its_axes(tmp_path):
    planes = np.arange(4 * 8 * 8, dtype=np.uint16).reshape(4, 8, 8)
    path = write_stack_ome_zarr(tmp_path / "stack.ome.zarr", planes, 0.5, 0.065)
    data, axes = read_stack(path)
    assert axes == ("z", "y", "x") and np.array_equal(data, planes)
