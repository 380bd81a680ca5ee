"""Interpolation live: every k-th time point (or plane) acquired, the full-rate series saved."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.acquisition import RestoreHook, make_restorer
from live_restore.frames import AxisPairs, FrameGroup

FRAME = 64  # the conftest core's frame side


def _store(path: Path) -> tuple[np.ndarray, dict]:
    """The image, positions stacked on a first axis if the store holds several."""
    group = zarr.open_group(str(path), mode="r")
    attributes = dict(group.attrs.get("live_restore", {}))
    node = group["0"]
    if isinstance(node, zarr.Array):
        return np.asarray(node[:]), attributes
    positions = sorted((k for k in group.group_keys() if k.isdigit()), key=int)
    return np.stack([np.asarray(group[k]["0"][:]) for k in positions]), attributes


def _rows(folder: Path, stage: str) -> list[dict[str, str]]:
    with (folder / "frames.csv").open(encoding="utf-8") as f:
        return [r for r in csv.DictReader(f) if r["stage"] == stage]


# -- the grouping, without a core -------------------------------------------------------------


def _add(pairs: AxisPairs, number: int, index: dict[str, int]) -> FrameGroup:
    (group,) = pairs.add(number, index, np.full((4, 4), number, np.uint16))
    return group


def test_pairs_stay_within_their_position_and_channel():
    pairs = AxisPairs("t", 3)
    order = [(t, p) for t in range(3) for p in range(2)]  # axis order tp
    groups = [_add(pairs, n, {"t": t, "p": p}) for n, (t, p) in enumerate(order)]
    assert [g.numbers for g in groups] == [(0,), (1,), (0, 2), (1, 3), (2, 4), (3, 5)]
    # each pair's frames are its own position's, older first
    assert [int(g.frames[0, 0, 0]) for g in groups if g.frames is not None] == [0, 1, 0, 1, 2, 3]
    outputs = pairs.outputs(groups[3])  # t=1, p=1: the two between t=0 and t=1, then t=1
    assert [o.index for o in outputs] == [{"t": 1, "p": 1}, {"t": 2, "p": 1}, {"t": 3, "p": 1}]
    assert [o.interpolated for o in outputs] == [True, True, False]
    assert [round(o.fraction, 3) for o in outputs] == [0.333, 0.667, 1.0]


def test_a_gap_is_not_bridged_and_its_positions_are_named():
    pairs = AxisPairs("z", 2)
    _add(pairs, 0, {"t": 0, "z": 0})
    alone = _add(pairs, 1, {"t": 0, "z": 2})  # z=1 never arrived
    assert alone.numbers == (1,) and alone.frames is not None and alone.frames.shape[0] == 1
    assert [o.index for o in pairs.outputs(alone)] == [{"t": 0, "z": 4}]
    assert pairs.gap_before(alone) == [{"t": 0, "z": 3}]
    first_of_next_stack = _add(pairs, 2, {"t": 1, "z": 0})  # a new time point: a new series
    assert first_of_next_stack.numbers == (2,) and pairs.gap_before(first_of_next_stack) == []


@pytest.mark.parametrize(("axis", "factor"), [("x", 2), ("t", 1), ("t", 17)])
def test_a_bad_axis_or_factor_is_refused(axis, factor):
    with pytest.raises(ValueError, match="interpolat"):
        AxisPairs(axis, factor)


# -- the session's API -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def interp_t():
    from live_restore import load_model

    return load_model("interp-t", tile_px=FRAME)


def test_the_session_returns_photons_between_the_two_frames(interp_t):
    before = np.full((FRAME, FRAME), 300, np.uint16)  # 200 photons above the 100 ADU offset
    after = np.full((FRAME, FRAME), 500, np.uint16)  # 400 photons
    middle = interp_t(before, after, fraction=0.5)
    assert middle.shape == (FRAME, FRAME) and middle.dtype == np.float32
    assert 200 < float(middle.mean()) < 400  # between the two, in photons (not counts: +100)


@pytest.mark.parametrize("fraction", [0.0, 1.0, -0.5, float("nan"), "half"])
def test_a_fraction_outside_0_1_is_refused(interp_t, fraction):
    frame = np.zeros((FRAME, FRAME), np.uint16)
    with pytest.raises(ValueError, match="strictly between 0 and 1"):
        interp_t(frame, frame, fraction)


def test_frames_of_different_shapes_are_refused(interp_t):
    with pytest.raises(ValueError, match="one shape"):
        interp_t(np.zeros((64, 64), np.uint16), np.zeros((64, 80), np.uint16))


# -- live, on the demo core ------------------------------------------------------------------


def test_a_timelapse_is_saved_at_the_full_rate_per_position(core, tmp_path):
    factor = 3
    stage = make_restorer("interp-t", core, interp_factor=factor)
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 3},
        stage_positions=[(0, 0, 0), (40, 25, 0)],  # two different fields of the sample
        axis_order="tp",
    )
    out = tmp_path / "run"
    with RestoreHook(core, stage, output=out) as hook:
        hook.run(sequence)
    raw, _ = _store(out / "raw.ome.zarr")
    full, attrs = _store(out / "interp-t.ome.zarr")
    assert raw.shape == (2, 3, FRAME, FRAME)  # one image per position
    assert full.shape == (2, 7, FRAME, FRAME)  # (3 - 1) * 3 + 1 time points per position
    # acquired frames sit at t = i * factor, unchanged but for counts -> photons
    photons = np.maximum(raw.astype(np.float32) - 100.0, 0.0)
    np.testing.assert_array_equal(full[:, ::factor], photons)
    assert sorted(attrs["acquired"]) == sorted(f"t={3 * t};p={p}" for t in range(3) for p in (0, 1))
    assert sorted(attrs["interpolated"]) == sorted(
        f"t={t};p={p}" for t in (1, 2, 4, 5) for p in (0, 1)
    )
    assert attrs["missing"] == [] and attrs["factor"] == factor
    # within each position: an interpolated frame is like its own neighbours, not the other field
    for p in (0, 1):
        other = 1 - p
        own_error = np.abs(full[p, 1] - full[p, 0]).mean()
        crossed_error = np.abs(full[p, 1] - full[other, 0]).mean()
        assert own_error < 0.5 * crossed_error
    # frames.csv: k - 1 interpolated rows per real interval, flagged, at their full-rate index
    rows = _rows(out, "interp-t")
    interpolated = [r for r in rows if r["flags"] == "interpolated"]
    assert len(interpolated) == (factor - 1) * 2 * 2
    assert {r["output_index"] for r in interpolated} == set(attrs["interpolated"])
    assert all(r["status"] == "restored" for r in rows)
    assert hook.report.errors == 0 and hook.report.frames_restored == 6


def test_a_canceled_timelapse_names_what_was_never_filled_in(core, tmp_path):
    def cancel_at_t2(image, event, meta):
        if event.index["t"] == 2:
            core.mda.cancel()

    core.mda.events.frameReady.connect(cancel_at_t2)
    out = tmp_path / "run"
    try:
        with RestoreHook(core, make_restorer("interp-t", core, interp_factor=2), output=out):
            core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 5}))
    finally:
        core.mda.events.frameReady.disconnect(cancel_at_t2)
    full, attrs = _store(out / "interp-t.ome.zarr")
    assert full.shape == (9, FRAME, FRAME)  # the sequence's full-rate length, 2 * (5 - 1) + 1
    assert attrs["acquired"] == ["t=0", "t=2", "t=4"] and attrs["interpolated"] == ["t=1", "t=3"]
    assert attrs["missing"] == ["t=5-8"]  # after the cancel: named, as one run
    assert not full[5:].any()


def test_a_sequence_without_time_points_is_refused_up_front(core, tmp_path):
    stage = make_restorer("interp-t", core)
    out = tmp_path / "run"
    with RestoreHook(core, stage, output=out) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 1}))
    assert any(
        "needs at least 2 time points" in r["error"] and r["status"] == "refused"
        for r in _rows(out, "interp-t")
    )
    assert not (out / "interp-t.ome.zarr").exists()


def test_a_z_stack_is_filled_in_through_a_worker_process(core, tmp_path):
    from live_restore.acquisition import ProcessExecutor, StageRecipe, instrument_of

    recipe = StageRecipe("interp-z", instrument_of(core), interp_factor=2)
    # normal priority: at idle priority a busy machine could starve the worker indefinitely
    executor = ProcessExecutor([recipe], priority=0)
    (stage,) = executor.start()
    sequence = useq.MDASequence(z_plan={"range": 1.0, "step": 0.5})  # 3 planes
    with RestoreHook(core, stage, executor=executor, output=tmp_path / "run") as hook:
        hook.run(sequence)
    full, attrs = _store(tmp_path / "run" / "interp-z.ome.zarr")
    assert full.shape == (5, FRAME, FRAME)
    assert sorted(attrs["interpolated"]) == ["z=1", "z=3"] and attrs["executor"] == "process"
    assert hook.report.errors == 0


# -- quality: the network against the linear blend, on held-out simulated triplets -------------


@pytest.mark.parametrize(("name", "margin_db"), [("interp-t", 1.0), ("interp-z", 0.5)])
def test_the_network_beats_a_linear_blend_on_held_out_triplets(name, margin_db):
    from live_restore import load_model
    from live_restore.metrics import psnr
    from live_restore.simulate import CameraParams, expose
    from live_restore.training._interp import render_interp_examples
    from live_restore.training._interp_eval import linear_blend

    session = load_model(name, tile_px=96)
    axis = name[-1]
    # seeds far from training's (0) and from `live-restore eval`'s (30 000)
    examples = render_interp_examples(
        axis, 6, 40_000, size_px=96, photon_range=(100, 1000), motion_px=(2, 4),
        step_um=(0.43, 0.65), fractions=(0.5,),
    )  # fmt: skip
    camera, rng = CameraParams(), np.random.default_rng(1)
    gains = []
    for i in range(len(examples)):
        before, after = (expose(a[i], camera, rng) for a in (examples.before, examples.after))
        photons = [camera.photon_conversion.photons(f) for f in (before, after)]
        truth = examples.truth[i]
        linear = psnr(linear_blend(photons[0], photons[1], 0.5), truth)
        gains.append(psnr(session(before, after, 0.5), truth) - linear)
    assert float(np.mean(gains)) > margin_db, gains
