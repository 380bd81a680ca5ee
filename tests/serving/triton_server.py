"""`live-restore serve` in a subprocess on loopback, for the tests that need a real server."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from live_restore._cli_serving import _serve_python
from live_restore.serving import free_ports, tritonserver_pids


def skip_without_server_env() -> None:
    """Skip the calling module when there is no server environment (unless required)."""
    if _serve_python() is None:
        if os.environ.get("LIVE_RESTORE_REQUIRE_SERVER_TESTS"):
            raise RuntimeError(
                "no server environment (make serve-env) and the server tests are required"
            )
        pytest.skip("no server environment: make serve-env", allow_module_level=True)


class Server:
    """`live-restore serve` in a subprocess; its PID is the server's (the command execs it)."""

    def __init__(self, tmp: Path, *models: str, ports: list[int] | None = None) -> None:
        self.ports = ports or free_ports(3)
        grpc, http, metrics = self.ports
        self.url = f"grpc://127.0.0.1:{grpc}"
        self.log = tmp / f"serve-{grpc}.log"
        args = [sys.executable, "-m", "live_restore", "serve", "--backend", "torch-cpu"]
        for model in models:
            args += ["-m", model]
        args += ["--grpc-port", str(grpc), "--http-port", str(http)]
        args += ["--metrics-port", str(metrics)]
        self.before = tritonserver_pids()
        with self.log.open("w") as out:
            self.process = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 240  # a loaded CI machine imports torch slowly
        while "live-restore serve: ready" not in self.log.read_text():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"the server did not start:\n{self.log.read_text()[-3000:]}")
            time.sleep(0.2)

    def stop(self) -> int:
        """SIGTERM by PID; the exit code (0: a clean shutdown)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()
