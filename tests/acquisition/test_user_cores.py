"""The hook on the cores microscopists bring: a plain CMMCorePlus, UniMMCore, two cameras."""

from __future__ import annotations

import csv
import gc
import importlib.util

import numpy as np
import pytest
import useq
import zarr
from pymmcore_plus import CMMCorePlus
from pymmcore_plus.experimental.unicore import UniMMCore

from live_restore import HookConfig, build_hook
from live_restore.devices import config_path, demo_core, microscope_of, release_core

requires_democam = pytest.mark.skipif(
    importlib.util.find_spec("mm_test_adapters") is None,
    reason="needs the mm-test-adapters package (Micro-Manager's C++ DemoCamera)",
)
SMALL_FRAME = 64
CAMERA_OFFSET = 100.0  # counts; identity gives counts - offset, >= 0 (photons at gain 1)


def _release(core: CMMCorePlus) -> None:
    core.reset()
    del core
    gc.collect()


@pytest.fixture
def plain_democam():
    core = CMMCorePlus()
    core.loadSystemConfiguration(str(config_path("democam.cfg")))
    core.setProperty("Camera", "OnCameraCCDXSize", SMALL_FRAME)
    core.setProperty("Camera", "OnCameraCCDYSize", SMALL_FRAME)
    yield core
    _release(core)


def _store(path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


def _rows(folder) -> list[dict[str, str]]:
    with (folder / "frames.csv").open() as f:
        return list(csv.DictReader(f))


@requires_democam
def test_a_plain_cmmcoreplus_with_a_hub_config_restores_and_saves_every_frame(
    plain_democam, tmp_path
):
    assert "DHub" in plain_democam.getLoadedDevices()  # the config has a hub
    assert not hasattr(plain_democam, "isPyDevice")
    hook = build_hook(plain_democam, HookConfig(models=["identity"], output=tmp_path))
    with hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
    assert hook.report.frames_restored == 3 and hook.report.errors == 0
    raw, restored = _store(tmp_path / "raw.ome.zarr"), _store(tmp_path / "identity.ome.zarr")
    assert raw.shape == restored.shape == (3, SMALL_FRAME, SMALL_FRAME)
    np.testing.assert_allclose(restored, np.clip(raw.astype(np.float32) - CAMERA_OFFSET, 0, None))
    attrs = zarr.open_group(str(tmp_path / "identity.ome.zarr"), mode="r").attrs
    assert attrs["live_restore"]["raw_pixel_size_um"] == pytest.approx(0.065)
    assert [r["status"] for r in _rows(tmp_path)] == ["restored"] * 3


def _frames(core, loops: int = 4) -> list[tuple[np.ndarray, float, float]]:
    """Each frame with the photons the simulator delivered to it and its lit signal."""
    core.setProperty("Camera", "FrameSize", SMALL_FRAME)
    scope = microscope_of(core)
    frames: list[tuple[np.ndarray, float, float]] = []

    def keep(image, event, meta) -> None:
        record = scope.last_record
        frames.append((image.copy(), record.photon_scale, float(image.mean()) - CAMERA_OFFSET))

    core.mda.events.frameReady.connect(keep)
    core.mda.run(useq.MDASequence(time_plan={"interval": 0.01, "loops": loops}))
    return frames


def test_a_unimmcore_loading_the_simulator_config_gives_our_cores_images():
    plain = UniMMCore()
    plain.loadSystemConfiguration(str(config_path("sim_demo.cfg")))
    ours = demo_core()
    try:
        # pixel size set, and timed MDAs lit on every frame (they went dark from frame 1)
        assert plain.getPixelSizeUm() == pytest.approx(0.065) == ours.getPixelSizeUm()
        got, expected = _frames(plain), _frames(ours)
        assert len(got) == len(expected) == 4
        for (image, dose, signal), (_, our_dose, our_signal) in zip(got, expected, strict=True):
            assert image.shape == (SMALL_FRAME, SMALL_FRAME)
            assert dose == our_dose > 0  # the same light on every frame, none dark
            # the same sample and light: the same signal, within a few shot-noise errors
            assert signal == pytest.approx(our_signal, rel=0.1) and signal > 2
    finally:
        _release(plain)
        release_core(ours)


def test_a_plain_core_that_read_the_simulators_devices_as_comments_is_refused_in_one_line():
    core = CMMCorePlus()
    core.loadSystemConfiguration(str(config_path("sim_demo.cfg")))
    try:
        with pytest.raises(ValueError, match=r"sim_demo\.cfg defines Python devices") as error:
            build_hook(core, HookConfig(models=["identity"]))
        assert "\n" not in str(error.value) and "UniMMCore" in str(error.value)
    finally:
        _release(core)


def test_an_object_that_is_not_a_pymmcore_plus_core_is_refused_naming_the_way_out():
    with pytest.raises(ValueError, match=r"not a pymmcore-plus core.*pycromanager"):
        build_hook(object(), HookConfig(models=["identity"]))


@pytest.fixture
def two_cameras():
    core = CMMCorePlus()
    core.loadSystemConfiguration(str(config_path("democam_dual.cfg")))
    for camera in ("Camera-1", "Camera-2"):
        core.setProperty(camera, "OnCameraCCDXSize", SMALL_FRAME)
        core.setProperty(camera, "OnCameraCCDYSize", SMALL_FRAME)
    yield core
    _release(core)


@requires_democam
def test_two_cameras_each_get_their_series_in_every_store_and_their_own_rows(two_cameras, tmp_path):
    assert two_cameras.getNumberOfCameraChannels() == 2
    models = ["identity", "interp-t"]  # one frame at a time; pairs along t, per camera
    hook = build_hook(two_cameras, HookConfig(models=models, output=tmp_path, interp_factor=2))
    with hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
    report = hook.report
    assert report.frames_received == 6 and report.frames_restored == 6, report
    raw = _store(tmp_path / "raw.ome.zarr")
    identity = _store(tmp_path / "identity.ome.zarr")
    assert raw.shape == identity.shape == (3, 2, SMALL_FRAME, SMALL_FRAME)  # t, cam, y, x
    np.testing.assert_allclose(identity, np.clip(raw.astype(np.float32) - CAMERA_OFFSET, 0, None))
    full_rate = _store(tmp_path / "interp-t.ome.zarr")
    assert full_rate.shape == (5, 2, SMALL_FRAME, SMALL_FRAME)  # 3 acquired, 2 between
    for t in range(3):  # each camera's acquired frames at i * factor, its own
        np.testing.assert_allclose(full_rate[2 * t], identity[t], atol=1e-3)
    rows = [r for r in _rows(tmp_path) if r["stage"] == "identity"]
    assert [r["index"] for r in rows] == [f"t={t};cam={c}" for t in range(3) for c in (0, 1)]
    assert {r["status"] for r in rows} == {"restored"}
