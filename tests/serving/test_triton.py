"""A real Triton server on loopback (`live-restore serve`): same answers, wrong weights refused."""

from __future__ import annotations

import csv
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import useq
import yaml
import zarr
from triton_server import Server, free_ports, skip_without_server_env, tritonserver_pids

from live_restore import HookConfig, build_hook
from live_restore.inference import ServerError, load_model
from live_restore.models import engines_dir

MODEL = "dfcan-sr2x-tiny"

skip_without_server_env()


@pytest.fixture(scope="module")
def server(tmp_path_factory) -> Iterator[Server]:
    running = Server(tmp_path_factory.mktemp("triton"), MODEL, "dfcan-sim")
    yield running
    assert running.stop() == 0, running.log.read_text()[-2000:]
    assert tritonserver_pids() <= running.before  # Triton's own process went too


@pytest.fixture(scope="module")
def local():
    return load_model(MODEL, "torch-cpu")


def _frame(seed: int, shape=(96, 80)) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return (rng.poisson(40, shape) + 100).astype(np.uint16)


def test_a_served_model_answers_as_the_local_one(server, local):
    remote = load_model(MODEL, server=server.url)
    assert remote.scale == 2 and remote.provenance()["executor"] == f"triton {server.url}"
    frame = _frame(0)
    np.testing.assert_allclose(remote(frame), local(frame), atol=1e-4)
    stack = np.stack([_frame(1), _frame(2)])
    np.testing.assert_allclose(remote.restore_batch(stack)[1], local(stack[1]), atol=1e-4)
    sim = load_model("dfcan-sim", server=server.url)
    sim_set = np.stack([_frame(s, (64, 64)) for s in range(9)])
    np.testing.assert_allclose(
        sim(sim_set), load_model("dfcan-sim", "torch-cpu")(sim_set), atol=1e-4
    )


def test_an_acquisition_restored_through_the_server(server, local, tmp_path, cli):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text("time_plan: {interval: 0, loops: 3}\n")
    out = tmp_path / "acq"
    args = ["--sequence", str(sequence), "-m", MODEL, "--server", server.url, "--out", str(out)]
    result = cli("acquire", *args)
    assert result.exit_code == 0, result.output
    raw = np.asarray(zarr.open_group(str(out / "raw.ome.zarr"), mode="r")["0"][:])
    restored = np.asarray(zarr.open_group(str(out / f"{MODEL}.ome.zarr"), mode="r")["0"][:])
    assert restored.shape == (3, 2 * raw.shape[-2], 2 * raw.shape[-1])
    for t in range(3):
        np.testing.assert_allclose(restored[t], local(raw[t]), atol=1e-4)


def test_several_clients_share_one_server(server, local):
    frames = [_frame(s) for s in range(2)]
    results: dict[int, list[np.ndarray]] = {}

    def _client(k: int) -> None:  # a microscope of its own
        session = load_model(MODEL, server=server.url)
        results[k] = [session(f) for f in frames]

    threads = [threading.Thread(target=_client, args=(k,)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert sorted(results) == [0, 1, 2]
    for outputs in results.values():
        for frame, output in zip(frames, outputs, strict=True):
            np.testing.assert_allclose(output, local(frame), atol=1e-4)


def test_an_answer_from_other_weights_is_refused(server, tmp_path):
    folder = tmp_path / MODEL
    shutil.copytree(engines_dir() / MODEL, folder)
    spec = yaml.safe_load((folder / "model.yaml").read_text())
    spec["weights_sha256"] = "0" * 64  # this machine's model.yaml names other weights
    (folder / "model.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    session = load_model(folder, server=server.url)
    with pytest.raises(ServerError, match="other weights"):
        session(_frame(0))


def test_a_model_not_served_or_a_server_not_there_is_a_clear_error(server, core):
    with pytest.raises(ServerError, match="does not serve 'refocus'"):
        load_model("refocus", server=server.url)
    (dead,) = free_ports(1)
    with pytest.raises(ServerError, match=f"no Triton server answers at grpc://127.0.0.1:{dead}"):
        load_model(MODEL, server=f"grpc://127.0.0.1:{dead}")
    with pytest.raises(ValueError, match="not a served model"):
        build_hook(core, HookConfig(models=["richardson-lucy"], executor=server.url))


def test_a_server_that_goes_down_costs_frames_named_never_raw(core, tmp_path):
    own = Server(tmp_path, MODEL)
    core.setProperty("Camera", "FrameSize", 64)
    core.setExposure(5.0)
    out = tmp_path / "run"
    hook = build_hook(core, HookConfig(models=[MODEL], executor=own.url, output=out))
    assert own.stop() == 0  # SIGTERM by PID: a clean exit
    assert tritonserver_pids() <= own.before
    errors = []
    with hook:
        hook.events.error.connect(errors.append)
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 4}))
    raw = np.asarray(zarr.open_group(str(out / "raw.ome.zarr"), mode="r")["0"][:])
    assert raw.shape[0] == 4 and raw.min() > 0
    failed = [e for e in errors if e.kind == "unreachable"]
    assert [e.frame for e in failed] == [0, 1, 2, 3]
    assert all(own.url in e.message for e in failed)


def _stale_blocks() -> list[str]:
    from live_restore.serving._server_process import STALE_PREFIXES, _mapped_paths

    mapped = _mapped_paths()
    shm = Path("/dev/shm")
    return [
        p.name for p in shm.iterdir() if p.name.startswith(STALE_PREFIXES) and str(p) not in mapped
    ]


def _settled(hook, frames: int) -> None:
    """Wait until the hook has an outcome for ``frames`` frames (restored or failed)."""
    deadline = time.monotonic() + 120  # a bound on a broken test, not a speed requirement
    while hook.report.frames_restored + hook.report.frames_failed < frames:
        assert time.monotonic() < deadline, hook.report
        time.sleep(0.05)


def test_a_killed_server_goes_whole_and_a_restarted_one_is_used_again(core, tmp_path):
    """SIGKILL to `serve`: tritonserver goes with it, the port is free for a new server, the
    hook's frames meanwhile fail as unreachable (named), and restore again once it is back."""
    core.setProperty("Camera", "FrameSize", 64)
    core.setExposure(5.0)
    own = Server(tmp_path, MODEL)
    config = HookConfig(models=[MODEL], executor=own.url, output=tmp_path / "run")
    errors = []
    with build_hook(core, config) as hook:
        hook.events.error.connect(errors.append)
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 2}))
        _settled(hook, 2)
        children = tritonserver_pids() - own.before
        assert children, "the server runs a tritonserver of its own"
        own.process.send_signal(signal.SIGKILL)
        own.process.wait(30)
        deadline = time.monotonic() + 30  # a bound on a broken test, not a speed requirement
        while children & tritonserver_pids():
            assert time.monotonic() < deadline, "tritonserver outlived its server"
            time.sleep(0.1)
        hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))  # while it is down
        _settled(hook, 5)
        again = Server(tmp_path / "run", MODEL, ports=own.ports)  # the same, freed ports
        try:
            assert _stale_blocks() == []  # what the dead server left was cleaned up
            hook.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
            _settled(hook, 8)
        finally:
            assert again.stop() == 0
    down = [e for e in errors if e.kind == "unreachable"]
    assert sorted({e.frame for e in down}) == [0, 1, 2] and all(own.url in e.message for e in down)
    assert not hook.report.disabled_stages
    for run, status in (("run", "restored"), ("run/run-2", "error"), ("run/run-3", "restored")):
        with (tmp_path / run / "frames.csv").open() as f:
            rows = [row for row in csv.DictReader(f) if row["stage"] == MODEL]
        assert [row["status"] for row in rows] == [status] * len(rows) and rows, run
    third = np.asarray(zarr.open_group(str(tmp_path / "run/run-3" / f"{MODEL}.ome.zarr"))["0"][:])
    assert third.shape[0] == 3 and third.min() > 0


def test_malformed_and_oversized_requests_are_refused_by_the_server(server):
    remote = load_model(MODEL, server=server.url)
    with pytest.raises(ServerError, match=r"takes \(batch, 1, rows, columns\)"):
        remote._infer(frames=np.zeros((1, 9, 32, 32), np.float32))  # 9 channels to one frame
    with pytest.raises(ValueError, match="real-valued"):
        remote(np.zeros((32, 32), np.complex64))
    with pytest.raises(ServerError, match="exceeds this server's limit"):
        remote(np.zeros((4608, 4608), np.float32))  # 20.25 Mpx over the 20 Mpx default


def test_a_client_that_comes_while_the_server_loads_waits_for_it(tmp_path):
    """Triton's own health says ready before the models are: a client connecting then (a
    microscope PC started with the server) waits for the model instead of being refused."""
    import tritonclient.grpc as grpcclient

    ports = free_ports(3)
    url = f"grpc://127.0.0.1:{ports[0]}"
    args = [sys.executable, "-m", "live_restore", "serve", "-m", MODEL, "--backend", "torch-cpu"]
    args += ["--grpc-port", str(ports[0]), "--http-port", str(ports[1])]
    args += ["--metrics-port", str(ports[2])]
    log = tmp_path / "serve.log"
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    try:
        probe = grpcclient.InferenceServerClient(f"127.0.0.1:{ports[0]}")
        deadline = time.monotonic() + 240  # a bound on a broken test, not a speed requirement
        while True:  # as soon as Triton answers at all
            assert process.poll() is None and time.monotonic() < deadline, log.read_text()
            try:
                if probe.is_server_live(client_timeout=1.0):
                    break
            except Exception:
                time.sleep(0.05)
        remote = load_model(MODEL, server=url)  # waits while the models load
        assert remote(_frame(3, (32, 32))).shape == (64, 64)
    finally:
        process.send_signal(signal.SIGTERM)
        process.wait(60)
