"""pycro-manager's Python backend (no Java) with the C++ DemoCamera, restored by ImageProcessor."""

from __future__ import annotations

import csv
import json

import numpy as np
import pytest
import zarr

from live_restore import HookConfig
from live_restore.devices import config_path

pycromanager = pytest.importorskip("pycromanager")
pytest.importorskip("mm_test_adapters")

from live_restore.pycromanager import ImageProcessor, sequence_of_events  # noqa: E402

# pycro-manager's NDTiff reader leaves its file handles to the garbage collector
pytestmark = [
    pytest.mark.filterwarnings("ignore::ResourceWarning"),
    pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning"),
]

FRAME = 64
CAMERA_OFFSET = 100.0


@pytest.fixture(scope="module")
def headless():
    import pymmcore_plus

    pycromanager.start_headless(
        pymmcore_plus.find_micromanager(), str(config_path("democam.cfg")), python_backend=True
    )
    core = pycromanager.Core()
    core.set_property("Camera", "OnCameraCCDXSize", FRAME)
    core.set_property("Camera", "OnCameraCCDYSize", FRAME)
    yield core
    pycromanager.stop_headless()


def test_events_become_the_stores_axes_slowest_first():
    events = pycromanager.multi_d_acquisition_events(
        num_time_points=2, z_start=0, z_end=2, z_step=1, channel_group="Channel",
        channels=["DAPI", "FITC"],
    )  # fmt: skip
    sequence, channels = sequence_of_events(events)
    assert {k: v for k, v in sequence.sizes.items() if v} == {"t": 2, "c": 2, "z": 3}
    assert channels == ["DAPI", "FITC"]
    assert [a for a in sequence.axis_order if sequence.sizes.get(a)] == ["t", "c", "z"]


def test_a_pycromanager_acquisition_is_restored_and_recorded_raw_untouched(headless, tmp_path):
    events = pycromanager.multi_d_acquisition_events(
        num_time_points=2, z_start=0, z_end=2, z_step=1
    )
    config = HookConfig(models=["identity"], output=tmp_path / "restored")
    with ImageProcessor(config, events) as process:
        acquisition = pycromanager.Acquisition(
            directory=str(tmp_path), name="raw", image_process_fn=process
        )
        with acquisition:
            acquisition.acquire(events)
    report = process.report
    assert report is not None
    assert report.frames_received == 6 and report.frames_restored == 6 and report.errors == 0
    folder = tmp_path / "restored"
    restored = np.asarray(zarr.open_group(str(folder / "identity.ome.zarr"), mode="r")["0"][:])
    assert restored.shape == (2, 3, FRAME, FRAME)  # t, z as the events give them
    dataset = acquisition.get_dataset()
    try:
        for t in range(2):
            for z in range(3):
                raw = np.asarray(dataset.read_image(time=t, z=z))  # pycro-manager saved raw
                np.testing.assert_allclose(
                    restored[t, z], np.clip(raw.astype(np.float32) - CAMERA_OFFSET, 0, None)
                )
    finally:
        dataset.close()
    with (folder / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [r["index"] for r in rows] == [f"t={t};z={z}" for t in range(2) for z in range(3)]
    assert {r["status"] for r in rows} == {"restored"}
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["frames_received"] == 6


def test_an_image_the_events_did_not_announce_is_named_not_saved(headless, tmp_path):
    announced = pycromanager.multi_d_acquisition_events(num_time_points=2)
    acquired = pycromanager.multi_d_acquisition_events(num_time_points=3)
    config = HookConfig(models=["identity"], output=tmp_path / "restored")
    with ImageProcessor(config, announced) as process:
        acquisition = pycromanager.Acquisition(
            directory=str(tmp_path), name="raw", image_process_fn=process
        )
        with acquisition:
            acquisition.acquire(acquired)  # pycro-manager saves all three
    acquisition.get_dataset().close()
    report = process.report
    assert report is not None and report.frames_received == 3
    assert report.frames_by_status["restored"] == (0, 1)
    assert report.frames_by_status["unsaved"] == (2,)


def test_what_only_pymmcore_plus_can_do_is_refused_in_one_line():
    events = [{"axes": {"time": 0}}]
    with pytest.raises(ValueError, match="focus hold moves the stage"):
        ImageProcessor(
            HookConfig.model_validate({"models": ["identity"], "focus": {"hold": {}}}), events, 0.1
        )
    with pytest.raises(ValueError, match="no MDA axis"):
        sequence_of_events([{"axes": {"angle": 0}}])
