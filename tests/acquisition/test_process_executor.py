"""The process executor: stages in a worker process, frames by shared memory, faults survived."""

from __future__ import annotations

import glob
import os
import threading
from multiprocessing import resource_tracker
from pathlib import Path

import numpy as np
import pytest
import stage_factories
import useq
import zarr

from live_restore import HookConfig, build_hook
from live_restore.acquisition import (
    IdentityRestorer,
    ProcessExecutor,
    RestoreHook,
    StageError,
    StageRecipe,
    instrument_of,
    make_restorer,
)
from live_restore.acquisition._process import shared_memory_prefix

# multiprocessing's resource tracker is a child process too: start it before any snapshot
resource_tracker.ensure_running()


def _sequence(frames: int) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": frames})


def _array(store: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(store), mode="r")["0"][:])


def _children() -> set[int]:
    """Live (not zombie) child processes of this one."""
    kids = set()
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == os.getpid() and fields[0] != "Z":
            kids.add(int(Path(stat).parent.name))
    return kids


def _our_blocks() -> list[str]:
    return glob.glob(f"/dev/shm/{shared_memory_prefix()}*")


@pytest.fixture
def fast_core(core):
    core.setExposure(5.0)
    return core


def test_a_stage_in_a_process_gives_what_it_gives_in_the_thread(fast_core, tmp_path):
    out = tmp_path / "run"
    config = HookConfig(models=["richardson-lucy"], output=out, executor="process")
    with build_hook(fast_core, config) as hook:
        hook.run(_sequence(4))
    assert hook.report.frames_restored == 4 and hook.report.frames_failed == 0
    raw = _array(out / "raw.ome.zarr")
    restored = _array(out / "richardson-lucy.ome.zarr")
    in_thread = make_restorer("richardson-lucy", fast_core)
    for t in range(4):
        np.testing.assert_allclose(restored[t], in_thread(raw[t]), rtol=1e-5, atol=1e-4)


def test_a_recipe_restores_the_same_frame_identically_and_leaves_nothing_behind(fast_core):
    children, threads = _children(), {t.ident for t in threading.enumerate()}
    frame = fast_core.snap()  # not raw memory of an acquisition: a snapped copy
    recipe = StageRecipe("richardson-lucy", instrument_of(fast_core))
    executor = ProcessExecutor([recipe])
    (stage,) = executor.start()
    assert stage.name == "richardson-lucy" and stage.provenance()["executor"] == "process"
    assert executor.pid in _children() - children
    np.testing.assert_array_equal(stage(frame), recipe()(frame))
    big = np.tile(frame, (2, 2))  # a larger frame grows the shared blocks
    np.testing.assert_array_equal(stage(big), recipe()(big))
    assert len(_our_blocks()) == 2
    executor.close()
    assert _children() <= children and _our_blocks() == []
    assert {t.ident for t in threading.enumerate()} <= threads


def test_sigkill_mid_call_is_reported_by_frame_and_the_process_restarts(fast_core, tmp_path):
    frames, out, marker = 12, tmp_path / "run", tmp_path / "killed"
    executor = ProcessExecutor([stage_factories.KillsItselfOnce(marker, on_call=4)])
    errors: list[StageError] = []
    with RestoreHook(fast_core, executor.start(), executor=executor, output=out) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(frames))
    report = hook.report
    assert marker.exists() and executor.restarts == 1
    assert [(e.frame, e.kind) for e in errors] == [(4, "exception")]
    assert "killed by SIGKILL" in errors[0].message
    assert report.frames_by_status["error"] == (4,) and report.frames_restored == frames - 1
    raw = _array(out / "raw.ome.zarr")
    assert raw.shape[0] == frames and raw.min() > 0  # raw complete whatever the worker did
    restored = _array(out / "killed.ome.zarr")
    assert not restored[4].any()  # fill, and listed as missing
    for t in set(range(frames)) - {4}:
        np.testing.assert_array_equal(restored[t], IdentityRestorer()(raw[t]))
    assert executor.pid is None and _our_blocks() == []


def test_a_hook_that_is_never_opened_or_fails_to_build_stops_its_worker(fast_core):
    children = _children()
    hook = build_hook(fast_core, HookConfig(models=["identity"], executor="process"))
    assert _children() - children  # the worker runs from the build on
    hook.close()
    assert _children() <= children
    executor = ProcessExecutor([stage_factories.identity, stage_factories.identity])
    with pytest.raises(ValueError, match="unique"):
        RestoreHook(fast_core, executor.start(), executor=executor)
    assert _children() <= children and _our_blocks() == []


def test_a_hung_call_is_killed_named_and_the_rest_restored(fast_core, tmp_path):
    # normal priority: a worker starved at idle priority on a busy machine is not a hang
    hung = stage_factories.HangsOnce(tmp_path / "hung")
    executor = ProcessExecutor([hung], call_timeout_s=1.0, priority=0)
    errors: list[StageError] = []
    with RestoreHook(fast_core, executor.start(), executor=executor) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(6))
    assert [(e.frame, e.kind) for e in errors] == [(0, "exception")]
    assert "hung" in errors[0].message and "killed" in errors[0].message
    assert hook.report.frames_restored == 5 and executor.restarts == 1


def test_a_process_that_always_dies_is_given_up_and_the_stage_disabled(fast_core, tmp_path):
    out = tmp_path / "run"
    executor = ProcessExecutor([stage_factories.exits_on_every_call], max_restarts=1)
    errors: list[StageError] = []
    with RestoreHook(
        fast_core, executor.start(), executor=executor, output=out, max_consecutive_failures=3
    ) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(8))
    assert "crashes" in hook.report.disabled_stages
    messages = [e.message for e in errors if e.kind == "exception"]
    assert len(messages) == 3 and "exit code 3" in messages[0] and "given up" in messages[-1]
    assert _array(out / "raw.ome.zarr").shape[0] == 8
    by_status = hook.report.frames_by_status
    assert sorted(by_status["error"] + by_status["disabled"]) == list(range(8))
    assert executor.pid is None and _our_blocks() == []


def test_out_of_memory_in_the_worker_is_reported_as_such(fast_core):
    executor = ProcessExecutor([stage_factories.raises_memory_error])
    errors: list[StageError] = []
    with RestoreHook(fast_core, executor.start(), executor=executor) as hook:
        hook.events.error.connect(errors.append)
        hook.run(_sequence(2))
    assert {e.kind for e in errors} == {"out-of-memory"}
    assert "64 GiB" in errors[0].message


def test_an_unknown_model_fails_at_build_naming_it_and_starts_nothing(fast_core):
    children = _children()
    with pytest.raises(ValueError, match="no-such-model"):
        build_hook(fast_core, HookConfig(models=["no-such-model"], executor="process"))
    assert _children() <= children and _our_blocks() == []


def test_factories_that_cannot_reach_the_worker_are_clear_errors(tmp_path, monkeypatch):
    def _local() -> IdentityRestorer:  # cannot be pickled
        return IdentityRestorer()

    with pytest.raises(ValueError, match="cannot be sent to a worker process"):
        ProcessExecutor([_local])
    _local.__module__ = "__main__"  # as if defined in the user's script
    with pytest.raises(ValueError, match="defined in your script"):
        ProcessExecutor([_local])
    # importable here, not in the worker: the worker says so and nothing is left running
    (tmp_path / "vanishing_stage.py").write_text(
        "from live_restore.acquisition import IdentityRestorer\n"
        "def factory():\n    return IdentityRestorer()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    import vanishing_stage

    executor = ProcessExecutor([vanishing_stage.factory])
    monkeypatch.undo()  # sys.path as before: the worker cannot find the module
    children = _children()
    with pytest.raises(ValueError, match=r"cannot load the stages.*vanishing_stage"):
        executor.start()
    assert _children() <= children and _our_blocks() == []


def test_acquire_with_executor_process_restores_every_frame(tmp_path, cli):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 4}\n")
    out, children = tmp_path / "acq", _children()
    args = ["--sequence", str(sequence), "-m", "identity", "--executor", "process"]
    result = cli("acquire", *args, "--out", str(out))
    assert result.exit_code == 0, result.output
    assert _array(out / "identity.ome.zarr").shape[0] == 4
    assert _children() <= children and _our_blocks() == []


def test_acquire_refuses_an_unknown_executor(tmp_path, cli):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 2}\n")
    result = cli("acquire", "--sequence", str(sequence), "--executor", "gpu-farm")
    assert result.exit_code == 2 and "--executor must be thread or process" in result.output


def test_a_replaced_restorer_serves_and_survives_a_restart_of_the_worker():
    """What HookConfig.adapt's swap does in the process venue: the slot's restorer replaced
    in the worker; a replacement that cannot be built leaves the old one; a worker killed
    after the swap comes back with the replacement, not the first one."""
    frame = np.full((32, 32), 300, np.uint16)
    executor = ProcessExecutor([stage_factories.identity])
    try:
        (stage,) = executor.start()
        plain = stage(frame)
        with pytest.raises(ValueError, match="weights file missing"):
            executor.replace(0, stage_factories.fails_to_build)
        np.testing.assert_array_equal(stage(frame), plain)  # the old one stays
        replaced = executor.replace(0, stage_factories.doubles)
        np.testing.assert_array_equal(replaced(frame), 2 * plain)
        os.kill(executor.pid, 9)
        with pytest.raises(Exception, match="died"):
            replaced(frame)  # the call the kill cost
        np.testing.assert_array_equal(replaced(frame), 2 * plain)  # restarted: the replacement
        assert executor.restarts == 1
    finally:
        executor.close()
    assert executor.pid is None and _our_blocks() == []
