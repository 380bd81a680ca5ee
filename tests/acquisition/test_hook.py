"""RestoreHook on real cores: raw never lost, every frame restored or accounted for."""

from __future__ import annotations

import csv
import json
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.acquisition import IdentityRestorer, RestoredFrame, RestoreHook, StageError
from live_restore.frames import AxisSet

FRAMES = 16
EXPOSURE_MS = 5.0


def _sequence(frames: int = FRAMES) -> useq.MDASequence:
    return useq.MDASequence(
        time_plan={"interval": 0, "loops": frames},
        channels=[{"config": "Widefield", "group": "Channel"}],
    )


def _array(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(store), mode="r")["0"][:])


def _attrs(store: Path) -> dict:
    return dict(zarr.open_group(str(store), mode="r").attrs["live_restore"])


def _rows(folder: Path) -> list[dict[str, str]]:
    with (folder / "frames.csv").open() as f:
        return list(csv.DictReader(f))


class SlowIdentity(IdentityRestorer):
    """Identity, but ``delay_s`` slow (10x the frame period in these tests)."""

    name = "slow"

    def __init__(self, delay_s: float = 10 * EXPOSURE_MS / 1000) -> None:
        super().__init__()
        self.delay_s = delay_s

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(self.delay_s)
        return super().__call__(frame)


class FailsOn(IdentityRestorer):
    """Identity that raises on chosen calls (0-based)."""

    name = "flaky"

    def __init__(self, failing_calls: set[int], output: str = "raise") -> None:
        super().__init__()
        self.failing_calls = failing_calls
        self.output = output
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        call, self.calls = self.calls, self.calls + 1
        if call not in self.failing_calls:
            return super().__call__(frame)
        if self.output == "nan":
            return np.full(frame.shape, np.nan, np.float32)
        if self.output == "shape":
            return np.zeros((3, 3), np.float32)
        raise RuntimeError(f"deliberate failure on call {call}")


@pytest.fixture
def fast_core(core):
    core.setExposure(EXPOSURE_MS)
    return core


def _assert_restored_matches_raw(folder: Path, stage: str, frames: int) -> None:
    raw = _array(folder / "raw.ome.zarr")
    restored = _array(folder / f"{stage}.ome.zarr")
    assert raw.shape[0] == frames and restored.shape == raw.shape
    assert raw.min() > 0  # a real frame (offset 100), not fill
    identity = IdentityRestorer()
    for t in range(frames):
        np.testing.assert_array_equal(restored[t, 0], identity(raw[t, 0]))


def test_slow_stage_all_policy_restores_every_frame_from_memory_and_raw_store(fast_core, tmp_path):
    out = tmp_path / "run"
    one_frame_mb = 64 * 64 * 2 / 2**20
    with RestoreHook(
        fast_core, SlowIdentity(), output=out, memory_mb=3 * one_frame_mb, progress=False
    ) as hook:
        hook.run(_sequence())
        behind = hook.stats().frames_pending
    report = hook.report
    assert behind > 0  # the stage really was slower than the camera
    assert report.complete and report.frames_received == FRAMES
    assert report.frames_restored == FRAMES and report.frames_failed == 0
    assert report.frames_from_raw_store > 0  # the memory bound forced catch-up from disk
    assert report.peak_held_mb <= 3 * one_frame_mb + 1e-9
    _assert_restored_matches_raw(out, "slow", FRAMES)
    rows = _rows(out)
    assert [int(r["frame"]) for r in rows] == list(range(FRAMES))
    assert {r["source"] for r in rows} == {"memory", "raw-store"}
    assert all(r["status"] == "restored" for r in rows)
    attrs = _attrs(out / "slow.ome.zarr")
    assert attrs["model"] == "slow" and attrs["missing"] == []
    assert attrs["scale"] == 1 and attrs["live_restore_version"]
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == "completed" and summary["stages"]["slow"]["restored"] == FRAMES


def test_catch_up_works_when_the_raw_store_is_written_elsewhere(fast_core, tmp_path):
    raw_path = tmp_path / "elsewhere.ome.zarr"
    with RestoreHook(
        fast_core,
        SlowIdentity(0.02),
        output=tmp_path / "restored",
        memory_mb=0.01,
        progress=False,
    ) as hook:
        fast_core.mda.run(_sequence(), output=str(raw_path))
    assert hook.report.frames_from_raw_store > 0 and hook.report.frames_restored == FRAMES
    raw = _array(raw_path)
    restored = _array(tmp_path / "restored" / "slow.ome.zarr")
    np.testing.assert_array_equal(
        restored[:, 0], np.stack([IdentityRestorer()(f) for f in raw[:, 0]])
    )


def test_latest_policy_skips_and_counts_but_keeps_raw_complete(fast_core, tmp_path):
    out = tmp_path / "run"
    with RestoreHook(fast_core, SlowIdentity(), output=out, policy="latest") as hook:
        hook.run(_sequence())
    report = hook.report
    assert report.frames_skipped > 0
    assert report.frames_done + report.frames_skipped == FRAMES
    assert _array(out / "raw.ome.zarr").shape[0] == FRAMES
    missing = _attrs(out / "slow.ome.zarr")["missing"]
    assert len(missing) == report.frames_skipped
    statuses = [r["status"] for r in _rows(out)]
    assert statuses.count("skipped") == report.frames_skipped
    assert statuses.count("restored") == report.frames_done


def test_stage_that_raises_on_frame_k_is_recorded_and_acquisition_goes_on(fast_core, tmp_path):
    out = tmp_path / "run"
    k = 5
    errors: list[StageError] = []
    with RestoreHook(fast_core, [FailsOn({k}), IdentityRestorer()], output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence())
    assert [(e.stage, e.frame, e.kind) for e in errors] == [("flaky", k, "exception")]
    assert "deliberate failure" in errors[0].message
    raw = _array(out / "raw.ome.zarr")
    flaky = _array(out / "flaky.ome.zarr")
    assert raw.shape[0] == FRAMES and raw.min() > 0
    assert not flaky[k].any()  # fill, and named missing in the attributes
    assert _attrs(out / "flaky.ome.zarr")["missing"] == [f"t={k};c=0"]
    for t in set(range(FRAMES)) - {k}:
        np.testing.assert_array_equal(flaky[t, 0], IdentityRestorer()(raw[t, 0]))
    _assert_restored_matches_raw(out, "identity", FRAMES)  # the other stage is untouched
    row = next(r for r in _rows(out) if r["stage"] == "flaky" and r["frame"] == str(k))
    assert row["status"] == "error" and "deliberate failure" in row["error"]
    assert hook.report.frames_failed == 1 and hook.report.frames_restored == FRAMES - 1
    # the report names the frames; run.log keeps the whole traceback with the frame number
    by_status = hook.report.frames_by_status
    assert by_status["error"] == (k,) and by_status["restored"] == tuple(range(FRAMES))
    log = (out / "run.log").read_text()
    assert f"flaky on frame {k}: exception" in log
    assert "Traceback (most recent call last)" in log and "in __call__" in log


@pytest.mark.parametrize(("output", "needle"), [("nan", "non-finite"), ("shape", "shape")])
def test_bad_outputs_are_rejected_with_the_frame_named(fast_core, tmp_path, output, needle):
    errors: list[StageError] = []
    with RestoreHook(fast_core, FailsOn({2}, output), output=tmp_path / "run") as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(6))
    assert [(e.frame, e.kind) for e in errors] == [(2, "bad-output")]
    assert needle in errors[0].message


def test_repeated_failures_disable_the_stage_with_a_clear_message(fast_core, tmp_path):
    errors: list[StageError] = []
    out = tmp_path / "run"
    with RestoreHook(
        fast_core, FailsOn(set(range(100))), output=out, max_consecutive_failures=3
    ) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(8))
    disabled = [e for e in errors if e.kind == "disabled"]
    assert len(disabled) == 1 and "disabled after 3 consecutive failures" in disabled[0].message
    assert len([e for e in errors if e.kind == "exception"]) == 3  # no more calls once disabled
    assert "flaky" in hook.report.disabled_stages
    assert _array(out / "raw.ome.zarr").shape[0] == 8  # raw complete regardless
    assert [r["status"] for r in _rows(out)].count("disabled") == 5


def test_unwritable_restored_store_is_reported_and_raw_is_untouched(fast_core, tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "identity.ome.zarr").write_text("in the way")  # the store cannot be created
    errors: list[StageError] = []
    restored: list[RestoredFrame] = []
    with RestoreHook(fast_core, IdentityRestorer(), output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.events.restored.connect(restored.append)
        hook.run(_sequence(6))
    assert [e.kind for e in errors] == ["sink"] + ["unsaved"] * 6
    assert "identity.ome.zarr" in errors[0].message
    assert [e.frame for e in errors[1:]] == list(range(6))  # each frame named
    assert len(restored) == 6  # still restored for display
    assert _array(out / "raw.ome.zarr").shape[0] == 6
    assert {r["status"] for r in _rows(out)} == {"unsaved"}
    assert hook.report.frames_restored == 0 and hook.report.frames_unsaved == 6
    summary = json.loads((out / "summary.json").read_text())
    assert summary["stages"]["identity"]["unsaved"] == [f"t={t};c=0" for t in range(6)]


def test_no_thread_or_connection_left_behind(fast_core, tmp_path):
    events = fast_core.mda.events
    signals = [events.frameReady, events.sequenceStarted, events.sequenceFinished]
    before_connections = [len(s) for s in signals]
    before_threads = {t.ident for t in threading.enumerate()}
    with RestoreHook(fast_core, IdentityRestorer(), output=tmp_path / "run") as hook:
        assert [len(s) for s in signals] == [n + 1 for n in before_connections]
        hook.run(_sequence(4))
    assert [len(s) for s in signals] == before_connections
    time.sleep(0.1)
    assert {t.ident for t in threading.enumerate()} <= before_threads


def test_cancel_mid_set_reports_the_incomplete_set_and_never_restores_it(core, tmp_path):
    class SetMean(IdentityRestorer):
        name = "set-mean"
        grouping = AxisSet("c", 3)

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            assert frames.shape[0] == 3
            return np.mean([super(SetMean, self).__call__(f) for f in frames], axis=0)

    channels = [{"config": f"SIM-A0P{p}", "group": "Channel"} for p in range(3)]
    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 4}, channels=channels, axis_order="tc"
    )
    out = tmp_path / "run"
    errors: list[StageError] = []

    def cancel_at_frame_7(image, event, meta):
        if event.index["t"] == 2 and event.index["c"] == 1:
            core.mda.cancel()

    core.mda.events.frameReady.connect(cancel_at_frame_7)
    with RestoreHook(core, SetMean(), output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.run(sequence)
    core.mda.events.frameReady.disconnect(cancel_at_frame_7)
    assert hook.report.frames_received == 8
    incomplete = [e for e in errors if e.kind == "incomplete-group"]
    assert len(incomplete) == 1 and "[6, 7]" in incomplete[0].message
    restored = _array(out / "set-mean.ome.zarr")
    assert restored.shape[:1] == (4,) and restored.ndim == 3  # the c axis is gone
    raw = _array(out / "raw.ome.zarr")
    for t in (0, 1):
        expected = np.mean([IdentityRestorer()(raw[t, c]) for c in range(3)], axis=0)
        np.testing.assert_allclose(restored[t], expected, rtol=1e-6)
    assert not restored[2].any()
    summary = json.loads((out / "summary.json").read_text())
    assert summary["canceled"] is True and summary["finished"] == "canceled"


def test_pause_is_seen_by_the_hook_and_cleared_by_a_cancel(fast_core, tmp_path):
    # the runner pauses at the next event boundary; wait for that, then ask the hook
    seen: dict[str, bool] = {}

    def pause_at_t2(image, event, meta):
        if event.index["t"] == 2 and "asked" not in seen:
            seen["asked"] = True
            fast_core.mda.set_paused(True)
            threading.Thread(target=check_then_resume, daemon=True).start()

    def check_then_resume():
        deadline = time.monotonic() + 30
        while not fast_core.mda.is_paused() and time.monotonic() < deadline:
            time.sleep(0.005)
        seen["paused_while_paused"] = hook.stats().paused
        fast_core.mda.set_paused(False)

    fast_core.mda.events.frameReady.connect(pause_at_t2)
    with RestoreHook(fast_core, IdentityRestorer()) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0.02, "loops": 6}))
    fast_core.mda.events.frameReady.disconnect(pause_at_t2)
    assert seen["paused_while_paused"] is True and hook.report.frames_restored == 6
    assert hook.stats().paused is False

    # pause, then cancel while paused: nothing stays paused into the next acquisition
    def pause_then_cancel(image, event, meta):
        if event.index["t"] == 1:
            fast_core.mda.set_paused(True)
            threading.Timer(0.05, fast_core.mda.cancel).start()

    fast_core.mda.events.frameReady.connect(pause_then_cancel)
    with RestoreHook(fast_core, IdentityRestorer()) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0.02, "loops": 50}))
        assert hook.stats().paused is False
        fast_core.mda.events.frameReady.disconnect(pause_then_cancel)
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
        assert hook.stats().paused is False
    assert hook.report.frames_received < 53


def test_live_mode_frames_are_restored_for_display(fast_core):
    restored: list[RestoredFrame] = []
    with RestoreHook(fast_core, IdentityRestorer()) as hook:
        hook.events.restored.connect(restored.append)
        fast_core.startContinuousSequenceAcquisition(0)
        deadline = time.monotonic() + 10
        while len(restored) < 3 and time.monotonic() < deadline:
            time.sleep(0.02)
        fast_core.stopSequenceAcquisition()
    assert len(restored) >= 3 and all(r.live for r in restored)
    assert restored[-1].restored.shape == (64, 64)
    latest = hook.latest()
    assert latest is not None and latest.live


@pytest.mark.usefixtures("democam_core")
def test_cpp_democamera_with_slow_stage_keeps_every_frame(democam_core, tmp_path):
    democam_core.setExposure(EXPOSURE_MS)
    out = tmp_path / "run"
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": FRAMES})
    with RestoreHook(democam_core, SlowIdentity(), output=out, memory_mb=0.02) as hook:
        hook.run(sequence)
    assert hook.report.frames_restored == FRAMES and hook.report.frames_from_raw_store > 0
    raw = _array(out / "raw.ome.zarr")
    restored = _array(out / "slow.ome.zarr")
    assert raw.shape[0] == FRAMES
    for t in range(FRAMES):
        np.testing.assert_array_equal(restored[t], IdentityRestorer()(raw[t]))


def test_hook_refuses_what_is_not_a_restorer(core):
    with pytest.raises(TypeError, match="not a Restorer"):
        RestoreHook(core, [object()])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="unique"):
        RestoreHook(core, [IdentityRestorer(), IdentityRestorer()])
    with pytest.raises(ValueError, match="'all' or 'latest'"):
        RestoreHook(core, IdentityRestorer(), policy="some")  # type: ignore[arg-type]


_QT_BACKEND_RUN = """
import json, os, sys, time
os.environ["PYMM_SIGNALS_BACKEND"] = "qt"
from qtpy.QtCore import QCoreApplication
import useq, zarr, numpy as np
from live_restore import IdentityRestorer, RestoreHook, demo_core, release_core

class Slow(IdentityRestorer):
    name = "slow"
    def __call__(self, frame):
        time.sleep(0.03)
        return super().__call__(frame)

app = QCoreApplication([])
core = demo_core()
core.setProperty("Camera", "FrameSize", 64)
core.setExposure(5.0)
backend = type(core.mda.events).__name__
main_thread_frames = []
hook = RestoreHook(core, Slow(), output=sys.argv[1], memory_mb=0.02, progress=False)
hook.open()
core.mda.events.frameReady.connect(lambda *a: main_thread_frames.append(1))
seq = useq.MDASequence(time_plan={"interval": 0, "loops": 12})
thread = core.run_mda(seq, output=str(hook.raw_path_for_next_run()))
while thread.is_alive():
    app.processEvents()
    time.sleep(0.002)
for _ in range(20):
    app.processEvents()
report = hook.close()
print(json.dumps({"backend": backend, "received": report.frames_received,
                  "restored": report.frames_restored, "from_store": report.frames_from_raw_store,
                  "main_thread_frames": len(main_thread_frames)}))
# Qt objects (the core's signalers) must go before the application, or exit segfaults (5/5)
release_core(core)
del core, hook
import gc; gc.collect()
app.processEvents()
del app
gc.collect()
"""


def test_qt_signal_backend_behaves_the_same(tmp_path):
    pytest.importorskip("qtpy.QtCore")
    import subprocess
    import sys

    # a subprocess: a QCoreApplication would switch every later core in this process to Qt
    result = subprocess.run(
        [sys.executable, "-c", _QT_BACKEND_RUN, str(tmp_path / "run")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout.strip().splitlines()[-1])
    assert outcome["backend"] == "QMDASignaler"
    assert outcome["received"] == outcome["restored"] == outcome["main_thread_frames"] == 12
    assert outcome["from_store"] > 0
    raw = _array(tmp_path / "run" / "raw.ome.zarr")
    restored = _array(tmp_path / "run" / "slow.ome.zarr")
    np.testing.assert_array_equal(
        restored[:, 0] if restored.ndim == 4 else restored,
        np.stack([IdentityRestorer()(f) for f in raw.reshape(12, 64, 64)]),
    )


class BatchedIdentity(IdentityRestorer):
    """Identity that is slow per call, so the worker falls behind and batches."""

    name = "batched"
    max_batch = 8  # it can take more than the hook hands it (4): the hook's bound decides

    def __init__(self) -> None:
        super().__init__()
        self.batch_sizes: list[int] = []

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        return super().__call__(frame)

    def restore_batch(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(0.03)
        self.batch_sizes.append(len(frames))
        return np.stack([super(BatchedIdentity, self).__call__(f) for f in frames])


def test_worker_batches_when_behind_and_outputs_stay_in_order(fast_core, tmp_path):
    out = tmp_path / "run"
    stage = BatchedIdentity()
    with RestoreHook(fast_core, stage, output=out, max_batch=4) as hook:
        hook.run(_sequence())
    assert max(stage.batch_sizes) > 1 and max(stage.batch_sizes) <= 4
    assert hook.report.frames_restored == FRAMES
    _assert_restored_matches_raw(out, "batched", FRAMES)
    assert {int(r["batch"]) for r in _rows(out)} - {1}  # the table says which were batched


def test_a_model_stage_that_falls_behind_batches_and_matches_frame_by_frame(fast_core, tmp_path):
    """The real dfcan-sr2x-lite session: catch-up batches give the single-frame outputs."""
    from live_restore.inference import load_model

    session = load_model("dfcan-sr2x-lite", backend="torch-cpu")
    out = tmp_path / "run"
    # 5 ms frames against a model that takes tens of ms: the worker falls behind
    with RestoreHook(fast_core, session, output=out, max_batch=4, progress=False) as hook:
        hook.run(_sequence(12))
    assert hook.report.frames_restored == 12
    assert {int(r["batch"]) for r in _rows(out)} - {1}  # some frames came in catch-up batches
    raw = _array(out / "raw.ome.zarr")[:, 0]
    restored = _array(out / "dfcan-sr2x-lite.ome.zarr")[:, 0]
    alone = np.stack([session(f) for f in raw])
    np.testing.assert_allclose(restored, alone, rtol=1e-4, atol=1e-3 * float(alone.max()))


class Hangs(IdentityRestorer):
    """Never returns from frame ``hang_at`` on, until the test lets it go."""

    name = "hangs"

    def __init__(self, release: threading.Event, hang_at: int = 0) -> None:
        super().__init__()
        self.release = release
        self.hang_at = hang_at
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls > self.hang_at:
            self.release.wait(120)
        return super().__call__(frame)


def _assert_every_undone_frame_is_named(
    out: Path, hook, errors, frames: int, first: int = 0
) -> None:
    undone = list(range(first, frames))  # the first in the stage, the rest waiting
    report = hook.report
    assert report.stalled_stage == "hangs" and not report.complete
    assert sorted(report.undone) == undone and report.frames_restored == first
    assert _array(out / "raw.ome.zarr").shape[0] == frames  # raw complete regardless
    undone_rows = [r for r in _rows(out) if r["status"] == "undone"]
    assert sorted(int(r["frame"]) for r in undone_rows) == undone
    assert all("'hangs' never returned" in r["error"] for r in undone_rows)
    named = sorted(e.frame for e in errors if e.kind == "undone" and e.stage == "hangs")
    assert named == undone
    summary = json.loads((out / "summary.json").read_text())
    assert summary["finished"] == "closed before restoration finished"
    attrs = zarr.open_group(str(out / "hangs.ome.zarr"), mode="r").attrs["live_restore"]
    assert attrs["missing"] == [f"t={t};c=0" for t in undone]


def test_close_with_a_hung_stage_reports_exactly_what_was_left(fast_core, tmp_path):
    release = threading.Event()
    out = tmp_path / "run"
    errors: list[StageError] = []
    hook = RestoreHook(fast_core, Hangs(release), output=out, drain_timeout_s=0.3, progress=False)
    with hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(6))
    release.set()
    _assert_every_undone_frame_is_named(out, hook, errors, 6)


@pytest.mark.slow
def test_a_hung_stage_with_default_settings_still_lets_close_return(fast_core, tmp_path):
    """No timeout given: once a call has returned, close() gives up on one that runs past
    stall_timeout_s (20 s) here (a stage this fast never earns a longer window)."""
    release = threading.Event()
    out = tmp_path / "run"
    errors: list[StageError] = []
    hook = RestoreHook(fast_core, Hangs(release, hang_at=1), output=out, progress=False)
    assert hook.config.drain_timeout_s is None and hook.config.stall_timeout_s == 20.0
    hook.open()
    hook.events.error.connect(errors.append)
    hook.run(_sequence(4))
    closer = threading.Thread(target=hook.close)
    closer.start()
    closer.join(120)  # liveness only: without the stall rule this would wait forever
    release.set()
    assert not closer.is_alive()
    _assert_every_undone_frame_is_named(out, hook, errors, 4, first=1)


class SlowBatches(IdentityRestorer):
    """0.15 s a frame, batched: a catch-up batch takes far longer than one frame."""

    name = "slow-batches"
    max_batch = 8

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        time.sleep(0.15)
        return super().__call__(frame)

    def restore_batch(self, frames: np.ndarray) -> np.ndarray:
        time.sleep(0.15 * len(frames))
        return np.stack([IdentityRestorer.__call__(self, f) for f in frames])


def test_a_long_catch_up_batch_is_not_taken_for_a_hung_stage(fast_core, tmp_path):
    # the stall window scales with the frames in the running call: a batch of 4 at 0.15 s a
    # frame (0.6 s) must not be abandoned by a 0.5 s floor (the demo's batches of 8 frames
    # of 2 s each were, with a fixed window)
    out = tmp_path / "run"
    hook = RestoreHook(
        fast_core, SlowBatches(), output=out, max_batch=4, stall_timeout_s=0.5, progress=False
    )
    with hook:
        hook.run(_sequence(12))
    assert hook.report.complete and hook.report.frames_restored == 12
    assert {int(r["batch"]) for r in _rows(out)} - {1}  # it did batch


class _DefocusFromTruth:
    """A focus estimator that reads the simulator's truth (to test the hook's plumbing)."""

    def __init__(self, core) -> None:
        from live_restore import microscope_of

        self.scope = microscope_of(core)
        self.calls = 0

    def __call__(self, frame: np.ndarray):
        from types import SimpleNamespace

        self.calls += 1
        if self.calls == 2:
            raise RuntimeError("deliberate focus failure")
        record = self.scope.last_record
        return SimpleNamespace(defocus_um=record.defocus_um, uncertainty_um=0.1, confidence=0.8)


def test_focus_estimates_are_published_and_their_failures_never_stop_restoration(
    fast_core, tmp_path
):
    focus = _DefocusFromTruth(fast_core)
    readings, errors = [], []
    with RestoreHook(fast_core, IdentityRestorer(), output=tmp_path, focus=focus) as hook:
        hook.events.defocus.connect(readings.append)
        hook.events.error.connect(errors.append)
        hook.run(_sequence(8))
    assert hook.report.frames_restored == 8
    assert focus.calls >= 2  # once per batch the worker took: at most once per frame
    assert len(readings) == focus.calls - 1
    assert [e.stage for e in errors] == ["focus"] and "deliberate" in errors[0].message
    latest = hook.latest_defocus()
    assert latest is readings[-1] and latest.confidence == 0.8
    assert readings[-1].number == 7  # the newest frame of the last batch is the last frame
    numbers = [r.number for r in readings]
    assert numbers == sorted(numbers)


def test_restored_view_reads_the_store_during_and_after_the_run(fast_core, tmp_path):
    views = []
    with RestoreHook(fast_core, IdentityRestorer(), output=tmp_path) as hook:

        def _look(frame: RestoredFrame) -> None:
            view = hook.restored_view()
            views.append(view)
            view[frame.index["t"], 0]  # readable while written (may still read as fill)

        hook.events.restored.connect(_look)
        hook.run(_sequence(4))
        assert hook.restored_view("no-such-stage") is None
    restored = _array(tmp_path / "identity.ome.zarr")
    assert len(views) == 4 and all(v is views[0] for v in views)  # one view per run
    view = hook.restored_view()  # still there after the run ended
    assert view is views[0]
    for t in range(4):
        np.testing.assert_array_equal(np.asarray(view[t, 0]), restored[t, 0])


class Scribbles(IdentityRestorer):
    """A user's bug: it writes into its input."""

    name = "scribbles"

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        frame[...] = 0
        return super().__call__(frame)


def test_a_stage_that_writes_into_its_input_cannot_touch_raw_frames(fast_core, tmp_path):
    delivered: list[np.ndarray] = []
    fast_core.mda.events.frameReady.connect(lambda image, *_: delivered.append(image.copy()))
    errors: list[StageError] = []
    out = tmp_path / "run"
    with RestoreHook(fast_core, [Scribbles(), IdentityRestorer()], output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(8))
    raw = _array(out / "raw.ome.zarr")[:, 0]
    # every raw frame on disk, and the newest shown, is what the camera delivered
    np.testing.assert_array_equal(raw, np.stack(delivered))
    np.testing.assert_array_equal(hook.latest_raw().image, delivered[-1])
    # the next stage got the true frames; the scribbler's failures are named frame by frame
    np.testing.assert_array_equal(
        _array(out / "identity.ome.zarr")[:, 0], np.stack([IdentityRestorer()(f) for f in raw])
    )
    failed = sorted(e.frame for e in errors if e.stage == "scribbles" and e.kind == "exception")
    assert failed == list(range(5)) and "read-only" in errors[0].message  # then disabled
    assert "scribbles" in hook.report.disabled_stages


def test_a_stage_that_declares_it_writes_its_input_gets_a_copy(fast_core, tmp_path):
    class ScribblesKnowingly(Scribbles):
        name = "scribbles-knowingly"
        writes_input = True

    delivered: list[np.ndarray] = []
    fast_core.mda.events.frameReady.connect(lambda image, *_: delivered.append(image.copy()))
    out = tmp_path / "run"
    with RestoreHook(fast_core, ScribblesKnowingly(), output=out) as hook:
        hook.run(_sequence(6))
    assert hook.report.frames_restored == 6 and hook.report.errors == 0
    np.testing.assert_array_equal(_array(out / "raw.ome.zarr")[:, 0], np.stack(delivered))


def test_ctrl_c_during_the_drain_stops_it_at_once_with_the_same_records(fast_core, tmp_path):
    import _thread
    import signal

    # a process started in the background of a non-interactive shell ignores SIGINT: give it
    # Python's own handler for this test, so the simulated Ctrl-C arrives as it would at a
    # terminal
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    release = threading.Event()
    out = tmp_path / "run"
    errors: list[StageError] = []
    hook = RestoreHook(fast_core, Hangs(release), output=out, progress=False)
    hook.open()
    hook.events.error.connect(errors.append)
    hook.run(_sequence(4))
    # the user presses Ctrl-C while close() waits for the hung stage (60 s on a first call)
    threading.Timer(0.3, _thread.interrupt_main).start()
    try:
        with pytest.raises(KeyboardInterrupt):
            hook.close()
    finally:
        signal.signal(signal.SIGINT, previous)
        release.set()
    _assert_every_undone_frame_is_named(out, hook, errors, 4)
    assert all("interrupted (Ctrl-C)" in e.message for e in errors if e.kind == "undone")


def test_a_slot_that_raises_never_costs_a_frame(fast_core, tmp_path):
    out = tmp_path / "run"
    with RestoreHook(fast_core, IdentityRestorer(), output=out) as hook:
        hook.events.restored.connect(lambda frame: 1 / 0)  # a user's buggy slot
        hook.events.stats.connect(lambda stats: 1 / 0)
        hook.run(_sequence(6))
    assert hook.report.frames_restored == 6 and hook.report.errors == 0
    _assert_restored_matches_raw(out, "identity", 6)


def test_an_internal_failure_names_its_frames_and_the_worker_goes_on(
    fast_core, tmp_path, monkeypatch
):
    from live_restore.acquisition._record import RunRecord

    save = RunRecord.save

    def breaks_on_frame_2(self, stage, group, restored):
        if group.numbers == (2,):
            raise OSError("the disk went away for a moment")
        return save(self, stage, group, restored)

    monkeypatch.setattr(RunRecord, "save", breaks_on_frame_2)
    out = tmp_path / "run"
    errors: list[StageError] = []
    with RestoreHook(fast_core, IdentityRestorer(), output=out, max_batch=1) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(6))
    report = hook.report
    assert report.frames_by_status["error"] == (2,) and report.frames_restored == 5
    assert [e.kind for e in errors] == ["internal"] and "went away" in errors[0].message
    row = next(r for r in _rows(out) if r["frame"] == "2")
    assert row["status"] == "error" and "internal error" in row["error"]
    assert "Traceback" in (out / "run.log").read_text()
    assert json.loads((out / "summary.json").read_text())["finished"] == "completed"


def test_a_failed_set_counts_every_frame_of_it(fast_core, tmp_path):
    class FailsSets(IdentityRestorer):
        name = "fails-sets"
        grouping = AxisSet("c", 3)

        def __call__(self, frames: np.ndarray) -> np.ndarray:
            raise RuntimeError("no sets today")

    sequence = useq.MDASequence(
        time_plan={"interval": 0, "loops": 2},
        channels=[{"config": c, "group": "Channel"} for c in ("SIM-A0P0", "SIM-A0P1", "SIM-A0P2")],
        axis_order="tc",
    )
    with RestoreHook(fast_core, FailsSets(), max_batch=2) as hook:
        hook.run(sequence)
    report = hook.report
    # sets span batches of 2: each frame is counted once its set is resolved, as failed
    assert report.frames_failed == 6 and report.frames_restored == 0 and report.frames_done == 6


def test_a_closed_hook_cannot_be_reopened(fast_core):
    hook = RestoreHook(fast_core, IdentityRestorer())
    hook.open()
    hook.close()
    with pytest.raises(RuntimeError, match="was closed"):
        hook.open()


def test_a_list_of_events_is_restored_into_a_time_series(fast_core, tmp_path):
    # pymmcore-plus tells the hook nothing about such a run's shape: outputs are appended
    out = tmp_path / "run"
    events = [useq.MDAEvent(index={"t": t}) for t in range(4)]
    with RestoreHook(fast_core, IdentityRestorer(), output=out) as hook:
        hook.run(events)
    assert hook.report.frames_restored == 4 and hook.report.errors == 0
    restored = _array(out / "identity.ome.zarr")
    raw = _array(out / "raw.ome.zarr").reshape(4, *restored.shape[-2:])
    for t in range(4):
        np.testing.assert_array_equal(
            restored.reshape(4, *raw.shape[-2:])[t], IdentityRestorer()(raw[t])
        )


def test_an_internal_failure_at_the_end_of_a_run_still_finishes_it(
    fast_core, tmp_path, monkeypatch
):
    # the batch holding the last frame and the end marker fails: the run is still closed,
    # and the next acquisition's frames land in their own run, counted once each
    from live_restore.acquisition._record import RunRecord

    save = RunRecord.save

    def breaks_on_the_last_frame(self, stage, group, restored):
        if self.number == 1 and group.numbers == (3,):
            raise OSError("the disk went away for a moment")
        return save(self, stage, group, restored)

    monkeypatch.setattr(RunRecord, "save", breaks_on_the_last_frame)
    out = tmp_path / "run"
    with RestoreHook(fast_core, IdentityRestorer(), output=out, max_batch=8) as hook:
        hook.run(_sequence(4))
        hook.run(_sequence(3))
    report = hook.report
    assert report.frames_received == 7 and report.frames_done == 7
    assert report.frames_restored == 6 and report.frames_failed == 1
    assert json.loads((out / "summary.json").read_text())["finished"] == "completed"
    second = out / "run-2"
    assert json.loads((second / "summary.json").read_text())["finished"] == "completed"
    assert [r["status"] for r in _rows(second)] == ["restored"] * 3


class _HeldFirstFrame(IdentityRestorer):
    """Holds its first call until released: the frames behind it arrive as catch-up batches."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.calls = 0

    def __call__(self, frame: np.ndarray) -> np.ndarray:
        self.calls += 1
        if self.calls == 1:
            self.release.wait(30)
        return super().__call__(frame)


@pytest.mark.parametrize("every_nth", [1, 4])
def test_behind_the_focus_monitor_estimates_every_nth_frame_and_the_newest(fast_core, every_nth):
    from live_restore.focus import FocusMonitor

    estimated: list[int] = []
    stage = _HeldFirstFrame()

    def estimator(frame: np.ndarray):
        from types import SimpleNamespace

        estimated.append(len(estimated))
        return SimpleNamespace(defocus_um=0.0, uncertainty_um=0.1, confidence=0.9)

    monitor = FocusMonitor(estimator, every_nth_when_behind=every_nth)
    readings = []
    with RestoreHook(fast_core, stage, focus=monitor, max_batch=8) as hook:
        hook.events.defocus.connect(readings.append)
        hook.run(_sequence(12))  # frame 0 is held until all 12 are in: 1-8, 9-11 catch up
        stage.release.set()
    assert hook.report.frames_restored == 12
    numbers = [r.number for r in readings]
    assert numbers[0] == 0 and numbers[-1] == 11  # the newest always gets its estimate
    if every_nth == 1:
        assert numbers == list(range(12))
    else:
        # every 4th, plus the newest of each batch (a handful: frames 1-11 waited behind 0)
        assert {0, 4, 8} <= set(numbers) and len(numbers) < 12
        assert sum(n % 4 != 0 for n in numbers) <= 4, numbers
        assert hook.focus is monitor and monitor.summary()["frames_skipped_behind"] > 0


def _double(frame: np.ndarray) -> np.ndarray:
    """2x by pixel replication: a user's own function, not a Restorer."""
    return np.kron(np.asarray(frame, np.float32), np.ones((2, 2), np.float32))


def test_a_plain_function_is_a_stage(fast_core, tmp_path):
    out = tmp_path / "run"
    with RestoreHook(fast_core, [_double, lambda frame: frame * 1.0], output=out) as hook:
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
    assert [name for name, _ in hook.stages] == ["_double", "lambda"]
    assert hook.stages[0][1] == 2  # the scale, read off its first output
    raw = _array(out / "raw.ome.zarr")
    doubled = zarr.open_group(str(out / "_double.ome.zarr"), mode="r")
    np.testing.assert_array_equal(np.asarray(doubled["0"][:]), _double(raw.reshape(-1, 64, 64)))
    record = dict(doubled.attrs["live_restore"])
    assert record["function"].endswith("test_hook._double") and record["scale"] == 2
    assert hook.report.frames_restored == 3 and hook.report.errors == 0
    with pytest.raises(TypeError, match="missing: grouping"):  # half a Restorer is not a function

        class HalfAStage:
            name, scale = "half", 1

            def __call__(self, frame):
                return frame

        RestoreHook(fast_core, [HalfAStage()])


def test_a_store_that_stops_mid_run_leaves_a_summary_that_counts_the_disk(
    fast_core, tmp_path, monkeypatch
):
    from live_restore.acquisition import SinkError
    from live_restore.acquisition._sinks import RestoredSink

    real_append = RestoredSink.append
    written = []

    def fills_after_two(self, image, index):
        if len(written) == 2:
            raise SinkError("No space left on device")  # as a full disk says it
        real_append(self, image, index)
        written.append(index)

    monkeypatch.setattr(RestoredSink, "append", fills_after_two)
    out = tmp_path / "run"
    with RestoreHook(fast_core, IdentityRestorer(), output=out) as hook:
        hook.run(_sequence(6))
    stage = json.loads((out / "summary.json").read_text())["stages"]["identity"]
    statuses = [r["status"] for r in _rows(out) if r["stage"] == "identity"]
    assert statuses == ["restored"] * 2 + ["unsaved"] * 4
    assert stage["restored"] == 2 and stage["outputs_by_status"] == {"restored": 2, "unsaved": 4}
    assert (
        stage["store"] == "identity.ome.zarr" and "stopped taking frames" in stage["store_stopped"]
    )
    assert stage["unsaved"] == [f"t={t};c=0" for t in range(2, 6)]
