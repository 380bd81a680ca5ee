"""Batch restoration on dask.distributed: a finished store restored, resumed, refused clearly."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.acquisition import make_restorer
from live_restore.frames import AxisPairs, AxisSet, SingleFrame, TemporalWindow
from live_restore.inference import load_model
from live_restore.serving import ZarrImageError, open_inputs, plan_outputs, restore_store

FRAME = 64


def _acquire(path: Path, time_points: int) -> Path:
    """A pymmcore-plus raw store (its own writer, no hook): 2 positions x ``time_points``."""
    from live_restore import demo_core, release_core

    core = demo_core()
    try:
        core.setProperty("Camera", "FrameSize", FRAME)
        core.setExposure(5.0)
        sequence = useq.MDASequence(
            time_plan={"interval": 0, "loops": time_points},
            stage_positions=[(0, 0, 0), (5, 5, 0)],
            axis_order="tpcz",
        )
        core.mda.run(sequence, output=str(path))
    finally:
        release_core(core)
    return path


@pytest.fixture(scope="module")
def raw_store(tmp_path_factory) -> Path:
    return _acquire(tmp_path_factory.mktemp("batch") / "raw.ome.zarr", time_points=3)


@pytest.fixture(scope="module")
def threads_cluster():
    """An in-process Dask cluster (workers are threads: quick to start; inproc:// comms)."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as cluster:
        yield cluster.scheduler_address


def _array(path: Path) -> np.ndarray:
    """Every series of the image, stacked on a first (position) axis."""
    images = open_inputs(path)
    return np.stack([np.asarray(image.array()[:]) for image in images.values()])


def _frames(raw: np.ndarray) -> list[tuple[tuple[int, ...], np.ndarray]]:
    return [(i, raw[i]) for i in np.ndindex(raw.shape[:-2])]


def _index(label: str) -> tuple[int, ...]:
    return tuple(int(part.split("=")[1]) for part in label.split(";"))


def test_a_model_restores_every_frame_as_it_does_in_process(raw_store, tmp_path):
    out = tmp_path / "sr.ome.zarr"
    # two worker processes of a real LocalCluster on loopback
    report = restore_store(raw_store, "dfcan-sr2x-tiny", out, workers=2)
    assert report.complete and report.written_now == report.total == 6
    raw = _array(raw_store)
    restored = _array(out)
    assert restored.shape == (*raw.shape[:-2], 2 * FRAME, 2 * FRAME)
    session = load_model("dfcan-sr2x-tiny")
    for index, frame in _frames(raw):
        np.testing.assert_allclose(restored[index], session(frame), atol=1e-3)
    image, raw_image = open_inputs(out)["1"], open_inputs(raw_store)["1"]
    assert image.axes == raw_image.axes
    assert image.pixel_um == pytest.approx(raw_image.pixel_um / 2)
    record = dict(zarr.open_group(str(out), mode="r").attrs["live_restore"])
    assert record["model"] == "dfcan-sr2x-tiny" and len(record["weights_sha256"]) == 64
    assert record["finished"] == "completed" and record["missing"] == []


def test_an_interrupted_run_resumes_with_only_the_frames_not_written(
    raw_store, tmp_path, threads_cluster
):
    out = tmp_path / "rl.ome.zarr"
    restore_store(raw_store, "richardson-lucy", out, scheduler=threads_cluster)
    full = _array(out)
    # as a run killed after four frames leaves it: two frames neither written nor recorded
    group = zarr.open_group(str(out), mode="r+")
    record = dict(group.attrs["live_restore"])
    lost = record["done"][1::3]
    record["done"] = [label for label in record["done"] if label not in lost]
    group.attrs["live_restore"] = record
    for label in lost:
        position, *index = _index(label)
        zarr.open_group(str(out / str(position)), mode="r+")["0"][tuple(index)] = 0
    progress: list[tuple[int, int]] = []
    report = restore_store(
        raw_store,
        "richardson-lucy",
        out,
        scheduler=threads_cluster,
        on_progress=lambda done, total: progress.append((done, total)),
    )
    assert (report.resumed, report.written_now) == (4, 2)
    assert progress[0] == (4, 6) and progress[-1] == (6, 6)
    np.testing.assert_array_equal(_array(out), full)
    raw = _array(raw_store)
    in_process = make_restorer("richardson-lucy")
    for index, frame in _frames(raw):
        np.testing.assert_allclose(full[index], in_process(frame), rtol=1e-5, atol=1e-4)


def test_another_restoration_in_the_output_is_refused(raw_store, tmp_path, threads_cluster):
    out = tmp_path / "out.ome.zarr"
    restore_store(raw_store, "identity", out, scheduler=threads_cluster)
    with pytest.raises(ZarrImageError, match="another restoration"):
        restore_store(raw_store, "richardson-lucy", out, scheduler=threads_cluster)


def test_bad_inputs_and_models_are_named(raw_store, tmp_path):
    with pytest.raises(ZarrImageError, match="input not found"):
        restore_store(tmp_path / "none.ome.zarr", "identity", tmp_path / "o")
    plain = zarr.open_group(str(tmp_path / "plain.zarr"), mode="w")
    plain.create_array("0", shape=(2, 8, 8), dtype="uint16")
    with pytest.raises(ZarrImageError, match="not an OME-Zarr image"):
        restore_store(tmp_path / "plain.zarr", "identity", tmp_path / "o")
    with pytest.raises(ValueError, match="no-such-model"):
        restore_store(raw_store, "no-such-model", tmp_path / "o")
    assert not (tmp_path / "o").exists()


def test_groups_follow_the_model_grouping():
    from live_restore.serving import InputImage

    sim = InputImage(
        Path("x"), "0", ("t", "c", "y", "x"), (2, 9, 8, 8), np.dtype("uint16"),
        (1.0,) * 4, ("time", "channel", "space", "space"), (None,) * 4,
    )  # fmt: skip
    plan, items = plan_outputs(sim, AxisSet("c", 9))
    assert plan.axes == ("t",) and [i.outputs for i in items] == [((0,),), ((1,),)]
    assert items[1].inputs == tuple((1, c) for c in range(9))
    with pytest.raises(ValueError, match="has 9 there"):
        plan_outputs(sim, AxisSet("c", 3))
    plan, items = plan_outputs(sim, TemporalWindow(3))
    assert plan.axes == ("t", "c") and items[0].inputs == ((0, 0),) * 3  # the start, as live
    assert items[2 * 9 - 1].inputs == ((0, 8), (0, 8), (1, 8))
    assert len(plan_outputs(sim, SingleFrame())[1]) == 18
    # interpolation: the full-rate axis, acquired t=1 at 3, each pair filling the 2 between
    plan, items = plan_outputs(sim, AxisPairs("t", 3))
    assert plan.shape == (4, 9) and len(items) == 18
    assert items[0].outputs == ((0, 0),) and items[0].inputs == ((0, 0),)
    assert items[9 + 4].outputs == ((1, 4), (2, 4), (3, 4))
    assert items[9 + 4].inputs == ((0, 4), (1, 4))
    with pytest.raises(ValueError, match=r"the image has no .z. axis"):
        plan_outputs(sim, AxisPairs("z", 2))


def test_restore_command_writes_and_reports(raw_store, tmp_path, cli):
    out = tmp_path / "cli.ome.zarr"
    result = cli("restore", str(raw_store), "-m", "identity", "--out", str(out))
    assert result.exit_code == 0, result.output
    assert "6 / 0" in result.output and _array(out).shape[-1] == FRAME
    again = cli("restore", str(raw_store), "-m", "identity", "--out", str(out))
    assert again.exit_code == 0 and "0 / 6" in again.output
    bad = cli("restore", str(tmp_path / "nope.zarr"), "-m", "identity", "--out", str(out))
    assert bad.exit_code == 2 and "input not found" in bad.output


def test_a_frame_that_fails_is_named_not_recorded_done_and_exits_1(
    raw_store, tmp_path, threads_cluster, cli
):
    from live_restore.acquisition import RESTORERS, IdentityRestorer, register_restorer

    calls: list[int] = []

    class FailsThird(IdentityRestorer):
        name = "fails-third"

        def __call__(self, frame):
            calls.append(1)
            if len(calls) == 3:
                return np.full(frame.shape, np.nan, np.float32)
            return super().__call__(frame)

    register_restorer("fails-third", lambda instrument: FailsThird(), "test only")
    try:
        out = tmp_path / "f.ome.zarr"
        report = restore_store(raw_store, "fails-third", out, scheduler=threads_cluster)
        assert len(report.failed) == 1 and report.written_now == 5 and not report.complete
        ((label, why),) = report.failed.items()
        assert "non-finite" in why
        record = dict(zarr.open_group(str(out), mode="r").attrs["live_restore"])
        assert record["missing"] == [label] and label not in record["done"]
        assert record["finished"] == "incomplete"
        again = cli("restore", str(raw_store), "-m", "fails-third", "--out", str(out),
                    "--scheduler", threads_cluster)  # fmt: skip
        assert again.exit_code == 0, again.output  # the rerun does just that frame, and it works
        assert "1 / 5" in again.output
    finally:
        del RESTORERS["fails-third"]


def test_a_changed_input_is_not_resumed_and_overwrite_replaces_only_ours(
    raw_store, tmp_path, threads_cluster
):
    import shutil

    copy = tmp_path / "in.ome.zarr"
    shutil.copytree(raw_store, copy)
    out = tmp_path / "o.ome.zarr"
    restore_store(copy, "identity", out, scheduler=threads_cluster)
    # the input re-acquired at the same path with one more time point
    shutil.rmtree(copy)
    _acquire(copy, time_points=4)
    with pytest.raises(ZarrImageError, match="input_shapes"):
        restore_store(copy, "identity", out, scheduler=threads_cluster)
    report = restore_store(copy, "identity", out, scheduler=threads_cluster, overwrite=True)
    assert report.written_now == 8 and _array(out).shape[1] == 4
    with pytest.raises(ZarrImageError, match="into the input"):
        restore_store(copy, "identity", copy, overwrite=True)
    other = tmp_path / "notes"
    other.mkdir()
    (other / "keep.txt").write_text("mine")
    with pytest.raises(ZarrImageError, match="not a restoration this tool wrote"):
        restore_store(raw_store, "identity", other, overwrite=True)
    assert (other / "keep.txt").read_text() == "mine"
    assert open_inputs(copy)  # the input is untouched throughout


def test_frames_absent_from_the_input_are_missing_not_restored(tmp_path, threads_cluster, cli):
    """A deleted chunk, and the frames a crashed acquisition never wrote (its planned shape
    is on disk, its last chunks are not): named as missing, exit 1, never a restoration of
    fill; a rerun restores them once they appear."""
    raw = tmp_path / "raw.ome.zarr"
    _acquire(raw, time_points=4)
    series = raw / "1" / "0"  # position 1's array: chunks c/t/0/0
    kept = tmp_path / "kept-chunk"
    (series / "c" / "1" / "0" / "0").rename(kept)  # deleted
    for t in (2, 3):  # "crashed" after t=1 at this position
        (series / "c" / str(t) / "0" / "0").unlink()
    out = tmp_path / "out.ome.zarr"
    args = ["restore", str(raw), "-m", "identity", "--out", str(out), "--scheduler"]
    result = cli(*args, threads_cluster)
    assert result.exit_code == 1, result.output
    # one line for the run of them, not a line each
    assert "missing 3 frames (p=1;t=1 .. p=1;t=3): not in the input (never written)" in (
        result.output
    )
    record = dict(zarr.open_group(str(out), mode="r").attrs["live_restore"])
    assert record["finished"] == "incomplete"
    assert record["missing"] == ["p=1;t=1", "p=1;t=2", "p=1;t=3"]
    assert sorted(record["absent"]) == record["missing"] and "p=1;t=1" not in record["done"]
    again = cli(*args, threads_cluster)  # a resume does not redo them while they are absent
    assert again.exit_code == 1 and "0 / 5" in again.output
    kept.rename(series / "c" / "1" / "0" / "0")  # the frame appears
    third = cli(*args, threads_cluster)
    assert third.exit_code == 1 and "1 / 5" in third.output  # t=1 now restored; 2 and 3 not
    restored = _array(out)
    np.testing.assert_allclose(restored[1, 1], np.maximum(_array(raw)[1, 1] - 100.0, 0))


def test_an_unreadable_metadata_file_is_named(raw_store, tmp_path):
    broken = tmp_path / "broken.ome.zarr"
    shutil.copytree(raw_store, broken)
    (broken / "1" / "0" / "zarr.json").write_text("garbage{")
    with pytest.raises(ZarrImageError, match=r"broken.ome.zarr/1/0/zarr.json cannot be read"):
        restore_store(broken, "identity", tmp_path / "out.ome.zarr")
    (broken / "zarr.json").write_bytes(b"\x00\xff")
    with pytest.raises(ZarrImageError, match=r"broken.ome.zarr/zarr.json is not a Zarr group"):
        restore_store(broken, "identity", tmp_path / "out.ome.zarr")
