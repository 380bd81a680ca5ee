"""Focus monitor and focus hold on the simulated microscope, judged by its ground-truth defocus."""

from __future__ import annotations

import csv
import json
import threading
from types import SimpleNamespace

import numpy as np
import pytest
import useq
from pymmcore_plus.mda import MDAEngine

from live_restore import microscope_of
from live_restore.acquisition import IdentityRestorer, RestoreHook
from live_restore.devices import demo_core, release_core
from live_restore.focus import Flagger, FlagPolicy, FocusHold, FocusMonitor, HeldFocusEngine
from live_restore.inference import load_model
from live_restore.simulate import ManualClock

FRAME = 256  # 16 focus patches
SECONDS_PER_FRAME = 2.0  # simulated time per frame: drift per frame is exact, whatever the CPU
POLICY = FlagPolicy(threshold_um=0.5)
# focus-est's error just outside focus (measured at 0.3-0.6 µm, Medium light: it reads 0.1-0.25
# µm high there, README): a flag may come this much before the true defocus reaches the threshold
ESTIMATOR_TOLERANCE_UM = 0.2


@pytest.fixture(scope="module")
def focus_est():
    return load_model("focus-est", backend="torch-cpu")


@pytest.fixture
def drifting_core():
    """Demo core whose sample time advances a fixed step per frame (drift per frame exact)."""
    core = demo_core()
    core.setProperty("Camera", "FrameSize", FRAME)
    core.setProperty("SimScope", "Structure", "er")
    core.setProperty("SimScope", "MotionUmPerMin", 0.0)
    core.setConfig("LightLevel", "Medium")
    core.setExposure(10.0)
    scope = microscope_of(core)
    clock = ManualClock()
    scope.clock = clock
    truth: list[float] = []

    def _tick(image, event, meta) -> None:
        truth.append(scope.last_record.defocus_um)
        clock.advance(SECONDS_PER_FRAME)

    core.mda.events.frameReady.connect(_tick)
    yield SimpleNamespace(core=core, scope=scope, truth=truth)
    release_core(core)


def _time_lapse(frames: int) -> useq.MDASequence:
    return useq.MDASequence(
        time_plan={"interval": 0, "loops": frames},
        channels=[{"config": "Widefield", "group": "Channel"}],
    )


def _drift_per_min(um_per_frame: float) -> float:
    return um_per_frame * 60.0 / SECONDS_PER_FRAME


def _acquire(setup, sequence, monitor, hold=None, output=None):
    readings = []
    with RestoreHook(
        setup.core, IdentityRestorer(), output=output, focus=monitor, hold=hold, progress=False
    ) as hook:
        hook.events.defocus.connect(readings.append)
        hook.run(sequence)
    readings.sort(key=lambda r: r.number)
    return readings


def test_one_noisy_frame_does_not_flip_the_flag():
    flagger = Flagger(confirm=3)
    assert not flagger.update(True) and not flagger.update(True)
    assert not flagger.update(False)  # the streak is broken
    assert [flagger.update(True) for _ in range(3)] == [False, False, True]
    assert flagger.flagged
    assert not flagger.update(None) and flagger.flagged  # no evidence keeps the state


def test_policy_cross_checks_the_estimator_with_the_focus_score():
    policy = FlagPolicy(threshold_um=0.5)
    assert policy.evidence(1.0, 0.3) is True
    assert policy.evidence(0.1, 1.0) is False
    assert policy.evidence(0.45, 0.7) is None  # in the hysteresis band: keep the state
    assert policy.evidence(1.0, 0.95) is None  # model sees blur, score does not: uncertain
    assert policy.evidence(None, 0.3) is True  # no confident model: the score decides
    with pytest.raises(ValueError, match="score_ratio_out"):
        FlagPolicy(score_ratio_out=0.9, score_ratio_in=0.8)


def test_drift_is_flagged_once_it_exceeds_the_threshold_and_not_before(
    drifting_core, focus_est, tmp_path
):
    frames, step_um = 40, 0.04  # 0 -> -1.6 µm
    drifting_core.core.setProperty("Z", "FocusDriftUmPerMin", _drift_per_min(step_um))
    monitor = FocusMonitor(focus_est, POLICY)
    readings = _acquire(drifting_core, _time_lapse(frames), monitor, output=tmp_path)
    truth = drifting_core.truth
    assert len(readings) == frames == len(truth)
    flagged = [r.number for r in readings if r.flagged]
    assert flagged, "drift to 1.6 µm was never flagged"
    first = flagged[0]
    # not before: never flagged while the true defocus was inside the threshold (less what the
    # estimator can resolve there)
    assert abs(truth[first]) > POLICY.threshold_um - ESTIMATOR_TOLERANCE_UM, (first, truth[first])
    # soon after: within 0.5 µm of drift past the threshold, and it stays flagged
    crossing = next(i for i, d in enumerate(truth) if abs(d) > POLICY.threshold_um)
    assert first - crossing <= 0.5 / step_um
    assert all(r.flagged for r in readings[first:])
    # the flag is in the frame table and the summary, with its change
    with (tmp_path / "frames.csv").open() as f:
        rows = [r for r in csv.DictReader(f) if r["stage"] == "focus"]
    assert [int(r["frame"]) for r in rows if r["flags"] == "out-of-focus"] == flagged
    summary = json.loads((tmp_path / "summary.json").read_text())["focus"]
    assert summary["frames_flagged"] == len(flagged)
    assert summary["flag_changes"][0]["state"] == "out-of-focus"
    assert summary["flag_changes"][0]["frame"] == first


def test_an_in_focus_run_of_the_same_length_raises_no_flag(drifting_core, focus_est):
    monitor = FocusMonitor(focus_est, POLICY)
    readings = _acquire(drifting_core, _time_lapse(40), monitor)
    assert max(abs(d) for d in drifting_core.truth) < 1e-9
    assert not any(r.flagged for r in readings)
    assert monitor.flag_changes == []


class _LockstepHold(FocusHold):
    """A FocusHold whose MDA waits, before each time point, until every frame so far was read.

    A move lands on the time point after the reading that asked for it: in a real time-lapse the
    interval (seconds to minutes) leaves the worker ample time to read a frame before the next.
    These tests run without interval to be quick, so whether a reading came in time depended on
    how busy the CPU was, and a late one let more drift through: held runs ended 0.35-0.56 µm
    from focus on 2 loaded cores. Waiting here makes every run the same (0.17 µm).
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self._read = threading.Condition()
        self._frames_read = 0
        self._frames_set_up = 0
        self._last_t: int | None = None
        self.waited_too_long: list[int] = []

    def offer(self, reading):
        try:
            return super().offer(reading)
        finally:
            with self._read:
                self._frames_read += 1
                self._read.notify_all()

    def adjust(self, event):
        t = event.index.get("t")
        with self._read:
            if self._last_t is not None and t != self._last_t:
                taken = self._frames_set_up
                if not self._read.wait_for(lambda: self._frames_read >= taken, timeout=60):
                    self.waited_too_long.append(t)
            self._last_t = t
            self._frames_set_up += 1
        return super().adjust(event)


def test_focus_hold_keeps_the_true_defocus_within_the_threshold(drifting_core, focus_est):
    frames, step_um = 40, 0.04  # unheld, this would end 1.6 µm out of focus
    drifting_core.core.setProperty("Z", "FocusDriftUmPerMin", _drift_per_min(step_um))
    monitor = FocusMonitor(focus_est, POLICY)
    hold = _LockstepHold(gain=1.0, max_step_um=0.5)
    readings = _acquire(drifting_core, _time_lapse(frames), monitor, hold=hold)
    assert len(readings) == frames
    assert hold.waited_too_long == []  # every time point was set up knowing the one before
    truth = np.abs(drifting_core.truth)
    assert len(truth) == frames
    # each reading acts on the next frame (the sample time, noise and readings are the same in
    # every run): the drift never gets past the threshold; unheld it would end at 1.6 µm
    assert truth.max() <= POLICY.threshold_um, np.round(drifting_core.truth, 3)
    assert hold.moves, "the hold never moved"
    # every move is recorded and the stage followed the sample (it drifts towards -z)
    assert drifting_core.core.getZPosition() > 0.5


def test_a_z_stack_in_focus_raises_no_flag(drifting_core, focus_est):
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 6},
        z_plan={"range": 2.0, "step": 0.5},  # planes up to 1 µm from focus, on purpose
        channels=[{"config": "Widefield", "group": "Channel"}],
        axis_order="tpcz",
    )
    monitor = FocusMonitor(focus_est, POLICY)
    readings = _acquire(drifting_core, sequence, monitor)
    assert len(readings) == 30 and max(abs(d) for d in drifting_core.truth) >= 1.0
    assert not any(r.flagged for r in readings)
    stacks = [r for r in readings if r.evidence == "stack"]
    assert len(stacks) == 6
    # the focal plane is found at the stack's centre, where the user focused
    assert all(abs(r.focal_plane_um) < 0.25 for r in stacks), [r.focal_plane_um for r in stacks]


def test_a_drifting_z_stack_is_flagged_and_held_as_a_whole(drifting_core, focus_est):
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 8},
        z_plan={"range": 2.0, "step": 0.5},
        channels=[{"config": "Widefield", "group": "Channel"}],
        axis_order="tpcz",
    )
    # 0.04 µm per frame = 0.2 µm per stack of 5 planes
    drifting_core.core.setProperty("Z", "FocusDriftUmPerMin", _drift_per_min(0.04))
    held = _LockstepHold(gain=1.0, max_step_um=0.5)  # each stack read before the next
    _acquire(drifting_core, sequence, FocusMonitor(focus_est, POLICY), hold=held)
    assert held.moves and held.waited_too_long == []
    centre_defocus = np.asarray(drifting_core.truth).reshape(8, 5)[:, 2]
    assert np.abs(centre_defocus).max() <= POLICY.threshold_um, centre_defocus.round(2)


class _UnsureEstimator:
    """A confident-looking defocus of 2 µm, but with confidence 0.1."""

    name = "unsure"

    def __call__(self, frame):
        return SimpleNamespace(
            defocus_um=2.0,
            uncertainty_um=2.0,
            confidence=0.1,
            magnitude_um=2.0,
            sign_confidence=1.0,
        )


def test_low_confidence_frames_never_move_the_stage(drifting_core):
    hold = FocusHold()
    start = drifting_core.core.getZPosition()
    readings = _acquire(drifting_core, _time_lapse(12), FocusMonitor(_UnsureEstimator()), hold=hold)
    assert len(readings) == 12
    assert hold.moves == [] and drifting_core.core.getZPosition() == start
    assert hold.refusals  # and it said why
    assert all(r.drift_um is None for r in readings)


def test_hold_refuses_without_a_monitor(drifting_core):
    with pytest.raises(ValueError, match="focus monitor"):
        RestoreHook(drifting_core.core, IdentityRestorer(), hold=FocusHold())


def test_hold_never_leaves_its_range():
    hold = FocusHold(gain=1.0, max_step_um=5.0, range_um=(-1.0, 1.0))
    event = useq.MDAEvent(index={"t": 0}, z_pos=0.0)
    reading = SimpleNamespace(drift_um=-3.0, live=False, index={"t": 0}, number=0)
    move = hold.offer(reading)
    assert move is not None and move.limited_by == "range" and move.to_offset_um == 1.0
    later = hold.adjust(event.model_copy(update={"index": {"t": 1}, "z_pos": 0.5}))
    assert later.z_pos == 1.0  # 0.5 + 1.0 clipped to the range


def _reading(t: int, drift_um: float) -> SimpleNamespace:
    return SimpleNamespace(drift_um=drift_um, live=False, index={"t": t}, number=t)


def test_hold_installs_its_engine_while_attached_and_gives_the_old_one_back(drifting_core):
    core = drifting_core.core
    original = core.mda.engine
    assert type(original) is MDAEngine and original.use_hardware_sequencing
    original.timeout_base = 7.0  # a setting of the user's, kept by the held engine
    hold = FocusHold()
    hold.attach(core)
    held = core.mda.engine
    assert isinstance(held, HeldFocusEngine) and isinstance(held, MDAEngine)
    assert held is not original and held.hold is hold
    # a sequenced burst would leave no moment to move focus between time points
    assert not held.use_hardware_sequencing
    assert held.timeout_base == 7.0 and held.mmcore is core
    with pytest.raises(RuntimeError, match="already attached"):
        hold.attach(core)
    with pytest.raises(RuntimeError, match="another FocusHold"):
        FocusHold().attach(core)
    hold.detach()
    assert core.mda.engine is original and original.use_hardware_sequencing
    assert held.hold is None
    hold.detach()  # a second detach changes nothing
    assert core.mda.engine is original


def test_the_held_engine_moves_focus_from_the_next_time_point(drifting_core):
    core = drifting_core.core
    hold = FocusHold(max_step_um=0.5)
    z: list[float] = []

    def on_frame(image, event, meta) -> None:
        z.append(core.getZPosition())
        if event.index["t"] == 0:  # the first frame reads 0.3 µm above focus
            assert hold.offer(_reading(0, 0.3)) is not None

    core.mda.events.frameReady.connect(on_frame)
    hold.attach(core)
    try:
        core.mda.run(_time_lapse(3))
    finally:
        hold.detach()
    assert np.allclose(np.subtract(z, z[0]), [0.0, -0.3, -0.3]), z


class _OwnEngine(MDAEngine):
    """A user's engine: the hold must not replace it."""


def test_hold_refuses_a_users_own_engine_and_leaves_it_in_place(drifting_core):
    core = drifting_core.core
    own = _OwnEngine(core)
    core.mda.set_engine(own)
    with pytest.raises(RuntimeError, match="_OwnEngine"):
        FocusHold().attach(core)
    assert core.mda.engine is own


def test_hold_is_not_attached_during_a_run_and_detached_during_one_lets_go(drifting_core):
    core = drifting_core.core
    original = core.mda.engine
    late = FocusHold()
    errors: list[Exception] = []
    hold = FocusHold(max_step_um=0.5)
    engines: list[object] = []
    z: list[float] = []

    def on_frame(image, event, meta) -> None:
        z.append(core.getZPosition())
        engines.append(core.mda.engine)
        if event.index["t"] == 0:
            try:
                late.attach(core)
            except RuntimeError as e:
                errors.append(e)
            hold.offer(_reading(0, 0.3))  # would move time point 1
            hold.detach()  # but the hold lets go first

    core.mda.events.frameReady.connect(on_frame)
    hold.attach(core)
    held = core.mda.engine
    core.mda.run(_time_lapse(3))
    assert len(errors) == 1 and "while an MDA runs" in str(errors[0])
    assert engines == [held] * 3  # the runner keeps its engine until the run ends
    assert np.allclose(z, z[0]), z  # not held after detach
    assert core.mda.engine is original  # and the old engine is back once it ended
