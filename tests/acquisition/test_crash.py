"""A crashed acquisition leaves a record: SIGKILL to `acquire`, then `live-restore inspect`."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time

import pytest

FRAMES = 40


@pytest.mark.parametrize("executor", ["thread", "process"])
def test_a_killed_acquisition_can_be_inspected(tmp_path, cli, executor):
    sequence = tmp_path / "seq.yaml"
    sequence.write_text(f"time_plan: {{interval: 0.2, loops: {FRAMES}}}\n")
    out = tmp_path / "run"
    args = [sys.executable, "-m", "live_restore", "acquire", "--sequence", str(sequence)]
    args += ["-m", "identity", "--executor", executor, "--out", str(out)]
    process = subprocess.Popen(
        args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    chunks = out / "raw.ome.zarr" / "0" / "c"
    deadline = time.monotonic() + 240  # a bound on a broken test, not a speed requirement
    while _written(chunks) < 3:
        assert process.poll() is None and time.monotonic() < deadline, "no frames came"
        time.sleep(0.05)
    os.killpg(process.pid, signal.SIGKILL)  # the whole session: as a power cut leaves it
    process.wait(30)
    started = json.loads((out / "summary.json").read_text())
    assert started["finished"] is None and started["stages"] == ["identity"]
    assert started["sequence"]["time_plan"]["loops"] == FRAMES
    assert (out / "frames.csv").read_text().startswith("frame,")  # the header, at least
    result = cli("inspect", str(out))
    assert result.exit_code == 1, result.output
    assert "the run never finished" in result.output
    written = _written(chunks)
    assert 3 <= written < FRAMES
    assert f"{written} / {FRAMES}" in result.output
    assert f"not written {FRAMES - written} frames (t={written} .. t={FRAMES - 1})" in result.output


def _written(chunks):
    """Time points whose chunk file exists, as inspect counts them.

    zarr writes a chunk to a temporary file beside it and renames it: a kill mid-write leaves
    the next time point's folder with that temporary file in it, and no chunk.
    """
    if not chunks.is_dir():
        return 0
    return sum(
        1 for t in chunks.iterdir() if any(p.is_file() and p.name.isdigit() for p in t.rglob("*"))
    )
