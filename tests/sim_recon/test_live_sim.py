"""A SIM time-lapse on the demo core, reconstructed set by set while it acquires."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.acquisition import RestoreHook, StageError, make_restorer
from live_restore.devices import microscope_of
from live_restore.sim_recon import ClassicalSimRestorer, reconstruct_sim

SIM_FRAME = 256  # at 128 px one angle came out 0.8° off (too few pattern periods)
SIM_CHANNELS = [{"config": f"SIM-A{a}P{p}", "group": "Channel"} for a in range(3) for p in range(3)]


def _sim_sequence(time_points: int, **fields) -> useq.MDASequence:
    return useq.MDASequence(
        time_plan={"interval": 0, "loops": time_points},
        channels=fields.pop("channels", SIM_CHANNELS),
        axis_order=fields.pop("axis_order", "tc"),
        **fields,
    )


def _store(path: Path) -> tuple[np.ndarray, dict]:
    group = zarr.open_group(str(path), mode="r")
    return np.asarray(group["0"][:]), dict(group.attrs.get("live_restore", {}))


@pytest.fixture
def sim_core(core):
    core.setProperty("Camera", "FrameSize", SIM_FRAME)
    core.setConfig("LightLevel", "High")
    return core


def test_sim_timelapse_is_reconstructed_set_by_set_and_saved(sim_core, tmp_path):
    stage = make_restorer("sim-classical", sim_core)
    assert isinstance(stage, ClassicalSimRestorer)
    out = tmp_path / "run"
    with RestoreHook(sim_core, stage, output=out) as hook:
        hook.run(_sim_sequence(3))
    raw, _ = _store(out / "raw.ome.zarr")
    restored, attrs = _store(out / "sim-classical.ome.zarr")
    assert raw.shape == (3, 9, SIM_FRAME, SIM_FRAME)
    assert restored.shape == (3, 2 * SIM_FRAME, 2 * SIM_FRAME)  # one image per set, c gone
    # each saved image is the reconstruction of that time point's 9 raw frames, in order
    photons = (raw[1].astype(np.float32) - 100.0) / 1.0
    photons = np.maximum(photons, 0)
    expected, _ = reconstruct_sim(
        photons, stage.optics, stage.parameters, wiener=stage.wiener_for(photons)
    )
    np.testing.assert_allclose(restored[1], expected, rtol=1e-4, atol=1e-3 * expected.max())
    # the pattern was estimated from the data: the simulator's 15°/75°/135°, 200 nm
    truth = microscope_of(sim_core).sim
    angles = [float(a) for a in attrs["angles_deg"].split(",")]
    for index, angle in enumerate(angles):
        assert abs((angle - truth.angle0_deg - 60 * index + 90) % 180 - 90) < 0.5, angles
    assert all(abs(float(p) - truth.period_nm) < 2.0 for p in attrs["periods_nm"].split(","))
    assert attrs["parameters_trusted"] == "True" and attrs["missing"] == []
    assert hook.report.frames_received == 27 and hook.report.errors == 0


def test_cancel_mid_set_reports_it_and_saves_only_complete_sets(sim_core, tmp_path):
    errors: list[StageError] = []

    def cancel_in_third_set(image, event, meta):
        if event.index["t"] == 2 and event.index["c"] == 4:
            sim_core.mda.cancel()

    sim_core.mda.events.frameReady.connect(cancel_in_third_set)
    out = tmp_path / "run"
    try:
        with RestoreHook(sim_core, make_restorer("sim-classical", sim_core), output=out) as hook:
            hook.events.error.connect(errors.append)
            hook.run(_sim_sequence(4))
    finally:
        sim_core.mda.events.frameReady.disconnect(cancel_in_third_set)
    assert hook.report.frames_received == 23  # 2 sets + 5 frames of the third
    (incomplete,) = [e for e in errors if e.kind == "incomplete-group"]
    assert "[18, 19, 20, 21, 22]" in incomplete.message and "t=2" in incomplete.message
    restored, attrs = _store(out / "sim-classical.ome.zarr")
    assert restored[:2].std(axis=(1, 2)).min() > 0 and not restored[2:].any()
    assert "t=2" in attrs["missing"]
    raw, _ = _store(out / "raw.ome.zarr")
    assert raw[2, :5].any()  # the partial set's raw frames are kept


@pytest.mark.parametrize(
    ("channels", "axis_order", "expected"),
    [
        (
            [{"config": "Widefield", "group": "Channel"}, *SIM_CHANNELS],
            "tc",
            "has 10 there",
        ),
        (SIM_CHANNELS, "ct", "must vary fastest"),
    ],
    ids=["a tenth channel", "channel axis outermost"],
)
def test_a_sequence_that_cannot_make_sets_is_refused_up_front(
    sim_core, tmp_path, channels, axis_order, expected
):
    errors: list[StageError] = []
    out = tmp_path / "run"
    with RestoreHook(sim_core, make_restorer("sim-classical", sim_core), output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sim_sequence(2, channels=channels, axis_order=axis_order))
    (refused,) = errors
    assert refused.kind == "bad-sequence" and expected in refused.message
    assert not (out / "sim-classical.ome.zarr").exists()
    with (out / "frames.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert len(rows) == 2 * len(channels) and {r["status"] for r in rows} == {"refused"}
    summary = json.loads((out / "summary.json").read_text())
    assert expected in summary["stages"]["sim-classical"]["refused"]
    raw, _ = _store(out / "raw.ome.zarr")
    assert (
        raw.shape[:2] == (2, len(channels))
        and raw.reshape(-1, *raw.shape[2:]).max(axis=(1, 2)).all()
    )  # every raw frame saved (the store's axes are t, c whatever the order)


def test_dfcan_sim_is_a_live_stage_beside_the_classical_one(sim_core, tmp_path):
    stages = [make_restorer(name, sim_core) for name in ("sim-classical", "dfcan-sim")]
    out = tmp_path / "run"
    with RestoreHook(sim_core, stages, output=out) as hook:
        hook.run(_sim_sequence(2))
    assert hook.report.errors == 0 and hook.report.frames_restored == 18
    learned, attrs = _store(out / "dfcan-sim.ome.zarr")
    classical, _ = _store(out / "sim-classical.ome.zarr")
    assert learned.shape == classical.shape == (2, 2 * SIM_FRAME, 2 * SIM_FRAME)
    assert attrs["model"] == "dfcan-sim" and len(attrs["weights_sha256"]) == 64
    # two reconstructions of the same sets: the same sample, so strongly correlated
    correlation = np.corrcoef(learned[1].ravel(), classical[1].ravel())[0, 1]
    assert correlation > 0.8, correlation
