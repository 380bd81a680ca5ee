"""Light that follows trust: one step at a time, within the user's bounds, never inside a set,
every change logged; and the hook refuses it without a trust stage to follow."""

from __future__ import annotations

import json

import numpy as np
import pytest
import useq
from useq import MDAEvent

from live_restore.acquisition import RestoreHook
from live_restore.acquisition._adaptive_light import AdaptiveLight
from live_restore.acquisition._config import LightConfig
from live_restore.acquisition._trust_stage import TrustStage
from live_restore.inference import load_model

LADDER = ["VeryLow", "Low", "Medium", "High"]


@pytest.fixture
def light(core):
    core.setConfig("LightLevel", "Low")
    light = AdaptiveLight(LADDER, lowest="Low", highest="Medium", raise_above=0.05)
    light.begin(core)
    return light


def test_a_change_waits_for_the_start_of_a_set_and_stays_within_the_bounds(light):
    assert light.level == "Low"
    light.offer(0, {"t": 0}, 0.20)  # a fifth of the field untrusted: one step up
    mid_set = MDAEvent(index={"t": 1, "c": 3})  # the 4th pattern of a SIM set
    assert light.adjust(mid_set) is mid_set and light.level == "Low" and light.deferred == 1
    start = light.adjust(MDAEvent(index={"t": 1, "c": 0}))
    assert ("Light", "ExcitationPercent", "25") in [tuple(p) for p in start.properties]
    assert light.level == "Medium"
    (change,) = light.changes
    assert (change.from_level, change.to_level, change.frame, change.time_index) == (
        "Low",
        "Medium",
        0,
        1,
    )
    light.offer(1, {"t": 0}, 0.90)  # taken before the change: it saw the old light
    light.offer(2, {"t": 1}, 0.90)  # at the user's highest already
    assert light.adjust(MDAEvent(index={"t": 2, "c": 0})).properties is None
    light.offer(3, {"t": 2}, 0.0)  # trust recovered: one step down again
    assert light.adjust(MDAEvent(index={"t": 3})).properties is not None
    assert light.level == "Low" and len(light.changes) == 2
    light.offer(4, {"t": 3}, 0.0)  # at the user's lowest
    assert light.adjust(MDAEvent(index={"t": 4})).properties is None
    summary = light.summary()
    assert summary["bounds"] == ["Low", "Medium"] and summary["final"] == "Low"
    assert [c["to_level"] for c in summary["changes"]] == ["Medium", "Low"]


def test_bad_ladders_and_thresholds_are_refused():
    with pytest.raises(ValueError, match="not on the ladder"):
        AdaptiveLight(LADDER, highest="Blinding")
    with pytest.raises(ValueError, match="above highest"):
        AdaptiveLight(LADDER, lowest="High", highest="Low")
    with pytest.raises(ValueError, match="lower_below < raise_above"):
        AdaptiveLight(LADDER, raise_above=0.01, lower_below=0.05)


def test_in_a_real_mda_the_light_steps_up_between_time_points_only(core):
    """The engine applies the change: frames after it are brighter, every set at one light."""
    core.setConfig("LightLevel", "Low")
    light = AdaptiveLight(LADDER, highest="High", raise_above=0.05)
    light.attach(core)
    spans: dict[tuple[int, int], float] = {}  # signal span of each frame, offset removed

    def on_frame(image: np.ndarray, event: MDAEvent, meta: object) -> None:
        t, c = event.index.get("t", 0), event.index.get("c", 0)
        low, high = np.percentile(image, [5, 99.5])
        spans[(t, c)] = float(high - low)
        if (t, c) == (0, 1):  # as the worker would, mid-set: all untrusted
            light.offer(0, dict(event.index), 1.0)

    core.mda.events.frameReady.connect(on_frame)
    try:
        sequence = useq.MDASequence(
            time_plan={"interval": 0, "loops": 3},
            channels=["SIM-A0P0", "SIM-A1P1", "SIM-A2P2"],
            axis_order="tc",
        )
        core.mda.run(sequence)
    finally:
        core.mda.events.frameReady.disconnect(on_frame)
        light.detach()
    # asked for during t=0's set: it took effect at t=1's first frame, not at t=0's last
    (change,) = light.changes  # t=1's reading is not offered: one step
    assert (change.from_level, change.to_level, change.time_index) == ("Low", "Medium", 1)

    def mean_span(t: int) -> float:
        return float(np.mean([spans[(t, c)] for c in range(3)]))

    # 2.5x the excitation from t=1 on; t=0's set all at one light (its last pattern is not
    # brighter than its first, though the change was asked for before it was taken)
    assert mean_span(1) > 1.8 * mean_span(0)
    assert spans[(0, 2)] < 1.5 * spans[(0, 0)]
    assert core.getCurrentConfig("LightLevel") == "Medium"
    assert type(core.mda.engine).__name__ == "MDAEngine"  # the plain engine is back


def test_the_hook_needs_a_trust_stage_to_follow_and_logs_the_light(core, tmp_path):
    session = load_model("dfcan-sr2x-tiny", tile_px=64)
    with pytest.raises(ValueError, match="follows a trust stage"):
        RestoreHook(core, [session], light=LightConfig())
    core.setConfig("LightLevel", "VeryLow")
    stages = [session, TrustStage(load_model("dfcan-sr2x-tiny", tile_px=64))]
    out = tmp_path / "run"
    bounds = LightConfig(lowest="VeryLow", highest="Low", raise_above=0.001, lower_below=0.0)
    with RestoreHook(core, stages, output=out, light=bounds) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
    summary = json.loads((out / "summary.json").read_text(encoding="utf-8"))
    light = summary["light"]
    assert light["bounds"] == ["VeryLow", "Low"] and light["raise_above_untrusted"] == 0.001
    # however fast the worker was, every change stays within the bounds
    assert all(c["to_level"] in ("VeryLow", "Low") for c in light["changes"])
    assert light["final"] in ("VeryLow", "Low")


def test_the_readme_examples_parse():
    from pathlib import Path

    import yaml

    from live_restore.acquisition import HookConfig

    root = Path(__file__).parents[2] / "examples"
    config = HookConfig.from_file(root / "hook-light-follows-trust.yaml")
    assert config.light is not None and (config.light.lowest, config.light.highest) == (
        "Low",
        "High",
    )
    text = (root / "widefield-timelapse.yaml").read_text(encoding="utf-8")
    assert useq.MDASequence(**yaml.safe_load(text)).time_plan.loops == 20
