"""Multi-frame SR live: windows of consecutive frames, fused for the centre (or newest) one."""

from __future__ import annotations

import csv

import numpy as np
import pytest
import useq
import zarr

from live_restore import load_model
from live_restore.acquisition import RestoreHook
from live_restore.frames import TemporalWindow

FRAME = 64


def _add(window: TemporalWindow, number: int, index: dict[str, int]) -> list:
    return window.add(number, index, np.full((4, 4), number, np.uint16))


# -- window assembly, without a core ------------------------------------------------------------


def test_a_centred_window_waits_two_frames_and_repeats_the_series_start():
    window = TemporalWindow(5, centred=True)
    assert window.latency_frames == 2
    assert _add(window, 0, {"t": 0}) == [] and _add(window, 1, {"t": 1}) == []
    (first,) = _add(window, 2, {"t": 2})  # t=0 is made when t=2 arrives
    assert first.index == {"t": 0} and first.numbers == (0,)
    assert first.sources == (0, 0, 0, 1, 2)  # the start repeated, never guessed
    assert [int(f[0, 0]) for f in first.frames] == [0, 0, 0, 1, 2]
    (second,) = _add(window, 3, {"t": 3})
    assert second.index == {"t": 1} and second.sources == (0, 0, 1, 2, 3)
    # the end of the acquisition: the last two are made with the last frame repeated
    assert [(g.index["t"], g.sources) for g in window.flush()] == [
        (2, (0, 1, 2, 3, 3)),
        (3, (1, 2, 3, 3, 3)),
    ]


def test_a_causal_window_answers_at_once_with_the_newest_at_the_centre():
    window = TemporalWindow(5, centred=True, wait=False)
    assert window.latency_frames == 0
    groups = [g for t in range(4) for g in _add(window, t, {"t": t})]
    assert [g.index["t"] for g in groups] == [0, 1, 2, 3]
    assert groups[3].sources == (1, 2, 3, 3, 3) and window.flush() == []


def test_a_gap_closes_the_run_and_positions_never_mix():
    window = TemporalWindow(5, centred=True)
    made = []
    for number, (t, p) in enumerate([(t, p) for t in (0, 1, 2, 4, 5, 6) for p in (0, 1)]):
        made += _add(window, number, {"t": t, "p": p})
    made += window.flush()
    by_output = {(g.index["t"], g.index["p"]): g.sources for g in made}
    assert sorted(by_output) == [(t, p) for t in (0, 1, 2, 4, 5, 6) for p in (0, 1)]
    # t=3 never arrived: t=2 is made from frames up to t=2 only, t=4 from t=4 on
    assert by_output[(2, 0)] == (0, 2, 4, 4, 4) and by_output[(4, 0)] == (6, 6, 6, 8, 10)
    # each window holds one position's frames (even numbers: p=0; odd: p=1)
    assert all(len({n % 2 for n in sources}) == 1 for sources in by_output.values())


# -- the model -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def mfsr():
    from live_restore import load_model

    return load_model("mfsr-sr2x", tile_px=FRAME)


@pytest.mark.parametrize("shape", [(4, FRAME, FRAME), (5, FRAME), (6, FRAME, FRAME)])
def test_a_window_of_the_wrong_length_or_shape_is_refused(mfsr, shape):
    with pytest.raises(ValueError, match="window of 5 consecutive frames"):
        mfsr(np.zeros(shape, np.uint16))


def test_a_timelapse_is_restored_frame_by_frame_with_the_last_ones_at_the_end(core, tmp_path):
    # tiles of the 64 px frames themselves, not padded to 512 px (what make_restorer builds,
    # with the same centred window)
    stage = load_model("mfsr-sr2x", tile_px=FRAME)
    stage.use_mode("centred")
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 4},
        stage_positions=[(0, 0, 0), (40, 25, 0)],
        axis_order="tp",
    )
    out = tmp_path / "run"
    with RestoreHook(core, stage, output=out) as hook:
        hook.run(sequence)
    group = zarr.open_group(str(out / "mfsr-sr2x.ome.zarr"), mode="r")
    restored = np.stack([np.asarray(group[str(p)]["0"][:]) for p in (0, 1)])
    assert restored.shape == (2, 4, 2 * FRAME, 2 * FRAME)
    assert restored.std(axis=(2, 3)).min() > 0  # every time point, the last two included
    assert group.attrs["live_restore"]["missing"] == []
    with (out / "frames.csv").open(encoding="utf-8") as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "mfsr-sr2x"]
    assert len(rows) == 8 and all(r["status"] == "restored" for r in rows)
    # provenance per frame: which frames were fused (arrival numbers, one position each)
    fused = {r["index"]: r["flags"] for r in rows}
    assert fused["t=0;p=0"] == "fused 0,0,0,2,4" and fused["t=3;p=1"] == "fused 3,5,7,7,7"
    assert hook.report.frames_restored == 8 and hook.report.errors == 0


@pytest.mark.parametrize("margin_db", [0.5])
def test_the_model_beats_single_frame_dfcan_at_low_light(margin_db):
    from live_restore.training._mfsr_eval import evaluate_mfsr

    rows = evaluate_mfsr(
        photons=(20.0,), motions_px=(0.5, 1.5), structures=("er", "microtubules"),
        seed=60_000, progress=False,
    )  # fmt: skip
    gains = [r.scores["mfsr_psnr"] - r.scores["dfcan_psnr"] for r in rows]
    assert float(np.mean(gains)) > margin_db, gains
