"""Features compose: every stage kind in every venue (thread, process, Triton) and mode (MDA,
live), and on Dask afterwards.

Each cell either works (outputs written, equal to the same model run in this process on the
same raw frames, within 1e-4 of the frame's range) or is refused when the hook is built, with
its reason from a short list of physically necessary refusals: live mode has no SIM set and
no z axis. One Triton server and one Dask cluster serve every cell; frames are 64 px.
"""

from __future__ import annotations

import csv
import json
import logging
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import useq
import zarr
from triton_server import Server, skip_without_server_env

from live_restore import HookConfig, build_hook
from live_restore.acquisition import RestoredFrame, StageError, make_restorer
from live_restore.serving import open_inputs, restore_store

skip_without_server_env()

SIM_CHANNELS = [{"config": f"SIM-A{a}P{p}", "group": "Channel"} for a in range(3) for p in range(3)]


def _timelapse(loops: int) -> useq.MDASequence:
    return useq.MDASequence(time_plan={"interval": 0, "loops": loops})


# kind -> (the sequence it restores, the stage's store name)
KINDS: dict[str, tuple[useq.MDASequence, str]] = {
    "dfcan-sr2x-tiny": (_timelapse(2), "dfcan-sr2x-tiny"),
    "dfcan-sim": (
        useq.MDASequence(time_plan={"interval": 0, "loops": 1}, channels=SIM_CHANNELS),
        "dfcan-sim",
    ),
    "interp-t": (_timelapse(3), "interp-t"),
    "interp-z": (useq.MDASequence(z_plan={"range": 1.0, "step": 0.5}), "interp-z"),
    "mfsr-sr2x": (_timelapse(3), "mfsr-sr2x"),
    "dfcan-sr2x-tiny+trust": (_timelapse(2), "dfcan-sr2x-tiny-trust"),
    "refocus": (_timelapse(2), "refocus"),
}
SERVED = ["dfcan-sr2x-tiny", "dfcan-sim", "interp-t", "interp-z", "mfsr-sr2x", "refocus"]

# the only refusals: physically necessary ones, in live mode
LIVE_REFUSALS = {
    "dfcan-sim": "live mode is one stream of frames with no such axis",
    "interp-z": "live mode is one plane over time",
}
VENUES = ["thread", "process", "triton"]


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("triton"), *SERVED)
    yield running
    assert running.stop() == 0, running.log.read_text()[-2000:]


@pytest.fixture(scope="module")
def cluster() -> Iterator[str]:
    """One in-process Dask cluster for every batch cell."""
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=1, threads_per_worker=1, processes=False, dashboard_address="127.0.0.1:0"
    ) as running:
        yield running.scheduler_address


def _executor(venue: str, server: Server) -> str:
    return server.url if venue == "triton" else venue


def _read(path: Path) -> tuple[np.ndarray, tuple[str, ...]]:
    image = open_inputs(path)[""]
    array = zarr.open_group(str(image.path), mode="r")[image.dataset]
    return np.asarray(array[...]), image.axes


def _reference(kind: str, core: Any, raw_path: Path, **options: Any) -> np.ndarray:
    """The kind's outputs over the raw store, made in this process by the grouping's plan."""
    restorer = make_restorer(kind, core, "torch-cpu", **options)
    raw, axes = _read(raw_path)
    grouping = restorer.grouping
    plan = grouping.batch_plan(axes[:-2], raw.shape[:-2])
    scale = restorer.scale
    out = np.zeros((*plan.shape, raw.shape[-2] * scale, raw.shape[-1] * scale), np.float32)
    try:
        for group in plan.groups:
            frames = np.stack([raw[i] for i in group.inputs])
            output = restorer(frames if grouping.group_size > 1 else frames[0])
            images = output[None] if grouping.stacked_outputs(len(group.inputs)) is None else output
            for index, image in zip(group.outputs, images, strict=True):
                out[index] = image
    finally:
        restorer.close()
    return out


def _assert_close(actual: np.ndarray, expected: np.ndarray) -> None:
    assert actual.shape == expected.shape
    span = float(np.ptp(expected)) or 1.0
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-4 * span)


def _statuses(folder: Path, stage: str) -> set[str]:
    with (folder / "frames.csv").open() as f:
        return {row["status"] for row in csv.DictReader(f) if row["stage"] == stage}


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_an_mda_restores_every_kind_in_every_venue(kind, venue, server, core, tmp_path):
    sequence, store = KINDS[kind]
    out = tmp_path / "run"
    config = HookConfig(
        models=[kind],
        executor=_executor(venue, server),
        backend="torch-cpu",
        output=out,
        live=False,
        progress=False,
    )
    with build_hook(core, config) as hook:
        hook.run(sequence)
    assert hook.report.errors == 0, (out / "run.log").read_text()
    assert _statuses(out, store) == {"restored"}
    restored, _ = _read(out / f"{store}.ome.zarr")
    _assert_close(restored, _reference(kind, core, out / "raw.ome.zarr"))


def _live_outputs(hook: Any, core: Any, stage: str, wanted: int) -> list[RestoredFrame]:
    shown: list[RestoredFrame] = []
    hook.events.restored.connect(lambda frame: shown.append(frame) if frame.live else None)
    core.startContinuousSequenceAcquisition(0)
    try:
        deadline = time.monotonic() + 120  # a bound on a stuck test, not a speed requirement
        while len([f for f in shown if f.stage == stage]) < wanted:
            assert time.monotonic() < deadline, f"{len(shown)} live outputs"
            time.sleep(0.05)
    finally:
        core.stopSequenceAcquisition()
    return [f for f in shown if f.stage == stage]


@pytest.mark.parametrize("venue", VENUES)
@pytest.mark.parametrize("kind", list(KINDS))
def test_live_mode_runs_every_kind_or_refuses_it_at_build(
    kind, venue, server, core, caplog, tmp_path
):
    _, stage = KINDS[kind]
    config = HookConfig(
        models=[kind], executor=_executor(venue, server), backend="torch-cpu", progress=False
    )
    core.setExposure(10)
    with caplog.at_level(logging.WARNING, logger="live_restore"):
        hook = build_hook(core, config)
    with hook:
        if kind in LIVE_REFUSALS:
            # refused when the hook was built, in one line, with the reason
            (line,) = [r.getMessage() for r in caplog.records if "live mode will not" in r.message]
            assert stage in line and LIVE_REFUSALS[kind] in line
            assert LIVE_REFUSALS[kind] in hook.live_refused[stage]
            errors: list[StageError] = []
            hook.events.error.connect(errors.append)
            core.startContinuousSequenceAcquisition(0)
            deadline = time.monotonic() + 60
            while not errors and time.monotonic() < deadline:
                time.sleep(0.05)
            core.stopSequenceAcquisition()
            # and named again when live mode starts, never skipped silently
            assert [(e.stage, e.kind) for e in errors[:1]] == [(stage, "live-refused")]
            assert hook.latest(stage) is None
            return
        assert hook.live_refused == {}
        shown = _live_outputs(hook, core, stage, wanted=3)
    scale = 1 if kind.startswith("interp") else 2 if kind != "refocus" else 1
    for frame in shown:
        assert frame.restored.shape == (64 * scale, 64 * scale)
        assert np.isfinite(frame.restored).all() and frame.restored.max() > 0
    if kind in ("dfcan-sr2x-tiny", "refocus", "dfcan-sr2x-tiny+trust"):  # one frame in, one out
        local = make_restorer(kind, core, "torch-cpu")
        try:
            _assert_close(shown[-1].restored, local(shown[-1].raw))
        finally:
            local.close()


@pytest.mark.parametrize("kind", list(KINDS))
def test_batch_restoration_on_dask_runs_every_kind_by_the_same_plan(kind, core, cluster, tmp_path):
    sequence, _ = KINDS[kind]
    raw = tmp_path / "raw.ome.zarr"
    core.mda.run(sequence, output=str(raw))
    out = tmp_path / "restored.ome.zarr"
    report = restore_store(raw, kind, out, scheduler=cluster, backend="torch-cpu")
    assert report.complete and report.written_now == report.total > 0
    restored, _ = _read(out)
    _assert_close(restored, _reference(kind, core, raw))


@pytest.mark.parametrize(
    ("kind", "options"),
    [("mfsr-sr2x", {"window_mode": "causal"}), ("interp-t", {"interp_factor": 3})],
)
def test_batch_restoration_takes_the_hooks_window_mode_and_factor(
    kind, options, core, cluster, tmp_path, cli
):
    raw = tmp_path / "raw.ome.zarr"
    core.mda.run(_timelapse(3), output=str(raw))
    out = tmp_path / "restored.ome.zarr"
    flags = [f"--{k.replace('_', '-')}={v}" for k, v in options.items()]
    result = cli("restore", str(raw), "-m", kind, "--out", str(out), "--scheduler", cluster, *flags)
    assert result.exit_code == 0, result.output
    restored, _ = _read(out)
    if kind == "interp-t":
        assert restored.shape[0] == (3 - 1) * 3 + 1  # the full-rate axis
    _assert_close(restored, _reference(kind, core, raw, **options))


ADAPT_REFUSALS = {"triton": "a served stage's weights are the Triton server's"}


@pytest.mark.parametrize("venue", VENUES)
def test_adapting_a_stage_in_the_hook_works_in_its_venues_and_its_weights_on_dask(
    venue, server, core, cluster, tmp_path
):
    """HookConfig.adapt in the thread and the process venue (the worker process loads the
    adapted weights in the stage's slot); refused for Triton, whose weights are the server's;
    and the adapted folder restores the same raw store on Dask afterwards."""
    model, out = "dfcan-sr2x-tiny", tmp_path / "run"
    config = HookConfig(
        models=[model],
        executor=_executor(venue, server),
        backend="torch-cpu",
        output=out,
        live=False,
        progress=False,
        adapt={"stage": model, "after_frames": 10, "minutes": 5, "steps": 20, "na": 1.2},
    )
    if venue in ADAPT_REFUSALS:
        with pytest.raises(ValueError, match=ADAPT_REFUSALS[venue]):
            build_hook(core, config)
        return
    core.setProperty("SimScope", "MotionUmPerMin", 0.0)  # the same frames, the same verdict
    with build_hook(core, config) as hook:

        def hold(_image: Any, event: useq.MDAEvent, _meta: Any = None) -> None:
            if event.index.get("t") == 11:  # until adapting has ended: the swap is at t=12
                assert hook.adaptation.wait(600)

        core.mda.events.frameReady.connect(hold)
        hook.run(useq.MDASequence(time_plan={"interval": 0.05, "loops": 14}))
    assert hook.report.errors == 0, (out / "run.log").read_text()
    adapt = json.loads((out / "summary.json").read_text())["adapt"]
    assert (adapt["state"], adapt.get("swapped_at_index")) == ("adapted", "t=12"), adapt
    with (out / "frames.csv").open() as f:
        rows = [row["weights"] for row in csv.DictReader(f) if row["stage"] == model]
    assert rows == ["parent"] * 12 + ["adapted"] * 2
    restored, _ = _read(out / f"{model}.ome.zarr")
    folder = str(Path(adapt["folder"]) / "model")
    expected = _reference(folder, core, out / "raw.ome.zarr")
    _assert_close(restored[12:], expected[12:])
    batch = tmp_path / "batch.ome.zarr"
    report = restore_store(
        out / "raw.ome.zarr", folder, batch, scheduler=cluster, backend="torch-cpu"
    )
    assert report.complete
    _assert_close(_read(batch)[0], expected)
