"""The intake's memory bound and policies, and the groupings, without a core."""

from __future__ import annotations

import numpy as np
import pytest

from live_restore.acquisition._intake import Intake, IntakeFrame, SequenceEnd, SkippedRun
from live_restore.frames import AxisSet, SingleFrame, TemporalWindow


def _frame(number: int, nbytes: int = 1024) -> IntakeFrame:
    image = np.full(nbytes // 2, number, np.uint16).reshape(1, -1)
    return IntakeFrame(number, {"t": number}, 0.0, None, image)


def test_all_policy_holds_frames_up_to_the_bound_then_keeps_references():
    intake = Intake("all", memory_bound_bytes=3 * 1024)
    for n in range(10):
        assert intake.put_frame(_frame(n))
    assert intake.peak_bytes_held == 3 * 1024
    assert intake.frames_spilled == 7 and intake.frames_waiting == 10
    taken = intake.take(max_frames=100, timeout_s=0)
    assert [f.number for f in taken] == list(range(10))  # order kept across memory and refs
    assert [f.image is not None for f in taken] == [True] * 3 + [False] * 7
    assert intake.bytes_held == 0 and intake.frames_waiting == 0


def test_all_policy_without_a_raw_store_drops_what_does_not_fit():
    intake = Intake("all", memory_bound_bytes=2 * 1024)
    intake.can_spill = False
    accepted = [intake.put_frame(_frame(n)) for n in range(4)]
    assert accepted == [True, True, False, False]


def test_latest_policy_keeps_one_waiting_frame_and_merges_skips():
    intake = Intake("latest", memory_bound_bytes=10**6)
    for n in range(6):
        intake.put_frame(_frame(n))
    intake.put_marker(SequenceEnd(None, canceled=False))
    items = intake.take(max_frames=10, timeout_s=0)
    skipped, newest, end = items
    assert isinstance(skipped, SkippedRun) and (skipped.first, skipped.count) == (0, 5)
    assert [i["t"] for i in skipped.indices] == [0, 1, 2, 3, 4]
    assert isinstance(newest, IntakeFrame) and newest.number == 5
    assert isinstance(end, SequenceEnd)
    assert intake.frames_skipped == 5 and intake.peak_bytes_held == 1024


def test_take_returns_nothing_after_its_timeout():
    assert Intake("all", 1024).take(max_frames=4, timeout_s=0.01) == []


def test_put_back_restores_order_and_accounting():
    intake = Intake("all", memory_bound_bytes=10**6)
    for n in range(3):
        intake.put_frame(_frame(n))
    taken = intake.take(max_frames=2, timeout_s=0)
    intake.put_back(taken)
    assert intake.frames_waiting == 3 and intake.bytes_held == 3 * 1024
    assert [f.number for f in intake.take(10, 0)] == [0, 1, 2]


@pytest.mark.parametrize(("policy", "bound"), [("some", 10), ("all", 0)])
def test_intake_refuses_bad_settings(policy, bound):
    with pytest.raises(ValueError):
        Intake(policy, bound)  # type: ignore[arg-type]


def _img(value: float) -> np.ndarray:
    return np.full((4, 4), value, np.float32)


def test_single_frame_groups_each_frame():
    (group,) = SingleFrame().add(7, {"t": 7}, _img(1))
    assert group.complete and group.numbers == (7,) and group.frames.shape == (4, 4)


def test_axis_set_completes_in_order_and_reports_broken_sets():
    sets = AxisSet("c", 3)
    out = []
    for number, (t, c) in enumerate([(0, 0), (0, 1), (0, 2), (1, 0), (1, 1), (2, 0)]):
        out += sets.add(number, {"t": t, "c": c}, _img(number))
    out += sets.finish()
    assert [(g.numbers, g.complete) for g in out] == [
        ((0, 1, 2), True),
        ((3, 4), False),  # t=1 lost its third frame: never restored from the wrong frames
        ((5,), False),  # cut short by the end of the acquisition
    ]
    assert out[0].index == {"t": 0} and out[0].frames.shape == (3, 4, 4)


def test_axis_set_that_starts_mid_set_is_incomplete():
    (group,) = AxisSet("c", 3).add(0, {"t": 0, "c": 1}, _img(0))
    assert not group.complete


def test_temporal_window_pads_the_start_and_keeps_series_apart():
    window = TemporalWindow(3)
    first = window.add(0, {"t": 0, "p": 0}, _img(0))[0]
    window.add(1, {"t": 0, "p": 1}, _img(100))  # another position: its own series
    second = window.add(2, {"t": 1, "p": 0}, _img(1))[0]
    third = window.add(3, {"t": 2, "p": 0}, _img(2))[0]
    assert [f[0, 0] for f in first.frames] == [0, 0, 0]
    assert [f[0, 0] for f in second.frames] == [0, 0, 1]
    assert [f[0, 0] for f in third.frames] == [0, 1, 2]
    assert third.index == {"t": 2, "p": 0}


def test_restored_sink_without_a_sequence_appends_an_unbounded_series(tmp_path):
    # a run with no MDASequence (the hook opened mid-acquisition): outputs are appended
    import zarr

    from live_restore.acquisition._sinks import RestoredSink

    sink = RestoredSink(tmp_path / "s.ome.zarr", (8, 8), None, None, {"model": "x"})
    sink.setup(None)
    sink.append(np.ones((8, 8)), {"t": 0})
    sink.skip({"t": 1})
    sink.append(np.full((8, 8), 2.0), {"t": 2})
    sink.close({"finished": "completed"})
    group = zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")
    data = np.asarray(group["0"][:])
    assert (
        data.shape == (3, 8, 8) and data[0].max() == 1 and not data[1].any() and data[2].min() == 2
    )
    assert group.attrs["live_restore"]["missing"] == ["t=1"]


def test_a_position_recorded_twice_leaves_the_store_working(tmp_path):
    # two incomplete groups for one output (a set missing a frame) must not skip the rest
    import useq
    import zarr

    from live_restore.acquisition._sinks import RestoredSink

    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    sink = RestoredSink(tmp_path / "s.ome.zarr", (8, 8), None, None, {"model": "x"})
    sink.setup(sequence)
    sink.skip({"t": 0})
    sink.skip({"t": 0})
    sink.append(np.full((8, 8), 1.0), {"t": 1})
    sink.append(np.full((8, 8), 2.0), {"t": 2})
    sink.close({"finished": "completed"})
    data = np.asarray(zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")["0"][:])
    assert data.reshape(3, 8, 8)[1].min() == 1 and data.reshape(3, 8, 8)[2].min() == 2
    assert sink.missing == ["t=0"]


def test_an_output_outside_the_sequence_costs_only_itself(tmp_path):
    import useq
    import zarr

    from live_restore.acquisition._sinks import MisplacedOutput, RestoredSink

    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": 3})
    sink = RestoredSink(tmp_path / "s.ome.zarr", (8, 8), None, None, {"model": "x"})
    sink.setup(sequence)
    sink.append(np.full((8, 8), 1.0), {"t": 0})
    with pytest.raises(MisplacedOutput, match="not a position"):
        sink.append(np.full((8, 8), 9.0), {"t": 7})
    with pytest.raises(MisplacedOutput, match="recorded already"):
        sink.append(np.full((8, 8), 9.0), {"t": 0})
    sink.append(np.full((8, 8), 2.0), {"t": 1})
    sink.append(np.full((8, 8), 3.0), {"t": 2})
    sink.close({"finished": "completed"})
    data = np.asarray(zarr.open_group(str(tmp_path / "s.ome.zarr"), mode="r")["0"][:])
    assert [float(d.min()) for d in data.reshape(3, 8, 8)] == [1.0, 2.0, 3.0]
    assert sink.missing == []


def test_sim_sets_of_two_cameras_interleaved_form_one_set_per_camera():
    grouping = AxisSet("c", 3)
    groups = []
    number = 0
    for c in range(3):
        for cam in (0, 1):  # each event gives one frame per camera
            frame = np.full((4, 4), 10 * cam + c, np.float32)
            groups += grouping.add(number, {"t": 0, "c": c, "cam": cam}, frame)
            number += 1
    assert [g.index for g in groups] == [{"t": 0, "cam": 0}, {"t": 0, "cam": 1}]
    assert all(g.complete for g in groups)
    assert groups[0].numbers == (0, 2, 4) and groups[1].numbers == (1, 3, 5)
    np.testing.assert_array_equal(groups[1].frames[:, 0, 0], [10, 11, 12])
    # a camera's set cut short by the end is reported, the other camera's is not touched
    grouping.add(6, {"t": 1, "c": 0, "cam": 0}, np.zeros((4, 4), np.float32))
    (left,) = grouping.finish()
    assert not left.complete and left.index == {"t": 1, "cam": 0}
