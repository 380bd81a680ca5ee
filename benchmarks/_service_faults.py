"""Faults in the services around the hook, for bench_faults.py: a Triton server killed and
restarted during acquisitions, batch restoration of frames absent from its input, and an
acquisition killed mid-run. Each returns one table row's numbers (or why it could not run)."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from live_restore.serving import free_ports, tritonserver_pids

MODEL = "dfcan-sr2x-tiny"


def _serve(ports: list[int], log: Path) -> tuple[subprocess.Popen[bytes], float]:
    """`live-restore serve` on ``ports``; (the process, seconds until it said ready)."""
    args = [sys.executable, "-m", "live_restore", "serve", "-m", MODEL, "--backend", "torch-cpu"]
    args += ["--grpc-port", str(ports[0]), "--http-port", str(ports[1])]
    args += ["--metrics-port", str(ports[2])]
    started = time.monotonic()
    with log.open("w") as out:
        process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
    while "live-restore serve: ready" not in log.read_text():
        if process.poll() is not None or time.monotonic() - started > 300:
            raise RuntimeError(log.read_text()[-500:])
        time.sleep(0.1)
    return process, time.monotonic() - started


def server_killed_and_restarted(frames: int) -> dict[str, Any] | str:
    """A hook on a server that is SIGKILLed after one MDA and restarted after another."""
    import useq

    from live_restore import HookConfig, build_hook, demo_core, release_core
    from live_restore._cli_serving import _serve_python

    if _serve_python() is None:
        return "skipped: no server environment (make serve-env)"
    folder = Path(tempfile.mkdtemp(prefix="faults-server-"))
    ports = free_ports(3)
    before = tritonserver_pids()
    server, _ = _serve(ports, folder / "first.log")
    core = demo_core()
    core.setProperty("Camera", "FrameSize", 64)
    core.setExposure(5.0)
    events: list[Any] = []
    url = f"grpc://127.0.0.1:{ports[0]}"
    config = HookConfig(models=[MODEL], executor=url, output=folder / "run", progress=False)
    sequence = useq.MDASequence(time_plan={"interval": 0, "loops": frames})
    result: dict[str, Any] = {}
    try:
        with build_hook(core, config) as hook:
            hook.events.error.connect(events.append)

            def settled(n: int) -> None:
                while hook.report.frames_restored + hook.report.frames_failed < n:
                    time.sleep(0.02)

            hook.run(sequence)
            settled(frames)
            children = tritonserver_pids() - before
            killed = time.monotonic()
            server.send_signal(signal.SIGKILL)
            server.wait()
            while children & tritonserver_pids():
                time.sleep(0.02)
            result["tritonserver_gone_s"] = time.monotonic() - killed
            down = time.monotonic()
            hook.run(sequence)
            settled(2 * frames)
            result["down_mda_s"] = time.monotonic() - down
            server, result["restart_ready_s"] = _serve(ports, folder / "second.log")
            hook.run(sequence)
            settled(3 * frames)
        result["restored"] = hook.report.frames_restored
        result["disabled"] = bool(hook.report.disabled_stages)
    finally:
        server.send_signal(signal.SIGTERM)
        server.wait(60)
        release_core(core)
    result["unreachable_named"] = len({e.frame for e in events if e.kind == "unreachable"})
    result["raw"] = sum(
        len(list((folder / "run" / sub / "raw.ome.zarr" / "0" / "c").iterdir()))
        for sub in ("", "run-2", "run-3")
    )
    return result


def batch_absent(frames: int) -> dict[str, Any] | str:
    """restore over a raw store with one chunk deleted and the last quarter never written."""
    import useq

    from live_restore import demo_core, release_core
    from live_restore.serving import restore_store

    folder = Path(tempfile.mkdtemp(prefix="faults-batch-"))
    raw = folder / "raw.ome.zarr"
    core = demo_core()
    try:
        core.setProperty("Camera", "FrameSize", 64)
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": frames}), output=str(raw))
    finally:
        release_core(core)
    gone = [1, *range(frames - frames // 4, frames)]
    for t in gone:
        (raw / "0" / "c" / str(t) / "0" / "0").unlink()
    started = time.monotonic()
    report = restore_store(raw, "identity", folder / "out.ome.zarr")
    return {
        "written": report.written_now,
        "absent_named": len(report.absent),
        "absent": len(gone),
        "complete": report.complete,
        "s": time.monotonic() - started,
    }


def crashed_acquisition(frames: int) -> dict[str, Any] | str:
    """`acquire` SIGKILLed (its whole session) half-way, then `live-restore inspect`."""
    folder = Path(tempfile.mkdtemp(prefix="faults-crash-"))
    sequence = folder / "seq.yaml"
    sequence.write_text(f"time_plan: {{interval: 0.1, loops: {frames}}}\n")
    out = folder / "run"
    args = [sys.executable, "-m", "live_restore", "acquire", "--sequence", str(sequence)]
    args += ["-m", MODEL, "--executor", "process", "--out", str(out)]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    chunks = out / "raw.ome.zarr" / "0" / "c"
    while not (chunks.is_dir() and len(list(chunks.iterdir())) >= frames // 2):
        if process.poll() is not None:
            return "failed: the acquisition ended before the kill"
        time.sleep(0.02)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    started = time.monotonic()
    done = subprocess.run(
        [sys.executable, "-m", "live_restore", "inspect", str(out)],
        capture_output=True,
        text=True,
    )
    summary = json.loads((out / "summary.json").read_text())
    rows = (out / "frames.csv").read_text().splitlines()[1:]
    return {
        "raw_written": len(list(chunks.iterdir())),
        "summary_running": summary["finished"] is None,
        "rows": len(rows),
        "inspect_exit": done.returncode,
        "inspect_s": time.monotonic() - started,
    }


SERVICE_SCENARIOS = {
    "server": (
        "Triton server SIGKILLed after an MDA, restarted after another",
        server_killed_and_restarted,
    ),
    "batch": ("`restore` of a store missing 1 chunk and its last quarter", batch_absent),
    "crash": ("`acquire` (process executor) SIGKILLed half-way", crashed_acquisition),
}


def _main() -> None:
    np.seterr(all="ignore")
    for name, (what, scenario) in SERVICE_SCENARIOS.items():
        print(name, what, json.dumps(scenario(int(sys.argv[1]) if len(sys.argv) > 1 else 20)))


if __name__ == "__main__":
    _main()
