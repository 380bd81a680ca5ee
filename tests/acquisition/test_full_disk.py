"""A disk that fills mid-run: the records must say, frame by frame, what reached the disk.

The restored outputs go to a small tmpfs mounted in a private mount namespace (``unshare``, as
root), so nothing outside this test sees it; the raw store is on the normal disk. The run and
the read-back both happen inside the namespace (the tmpfs is gone when it ends), and the
script prints what it found as JSON. Skipped, with the reason, where the machine does not allow
a mount namespace.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap

import pytest

FRAMES = 40

_SCRIPT = textwrap.dedent(
    """
    import csv, json, sys
    import numpy as np, useq, zarr
    from live_restore import IdentityRestorer, RestoreHook
    from live_restore.devices import demo_core, release_core

    out, raw_path, frames = sys.argv[1], sys.argv[2], int(sys.argv[3])
    core = demo_core()
    core.setProperty("Camera", "FrameSize", 64)
    core.setExposure(5.0)
    errors = []
    hook = RestoreHook(core, IdentityRestorer(), output=out, progress=False)
    with hook:
        hook.events.error.connect(lambda e: errors.append([e.frame, e.kind]))
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": frames}),
                     output=raw_path)
    release_core(core)
    raw = np.asarray(zarr.open_group(raw_path, mode="r")["0"][:]).reshape(frames, 64, 64)
    try:
        stored = np.asarray(zarr.open_group(out + "/identity.ome.zarr", mode="r")["0"][:])
    except Exception as e:  # the store's own metadata may not have fitted
        stored = None
    identity = IdentityRestorer()
    on_disk = [stored is not None and t < len(stored) and bool(np.array_equal(
        stored[t].reshape(64, 64), identity(raw[t]))) for t in range(frames)]
    try:
        with open(out + "/frames.csv", newline="") as f:
            rows = {int(r["frame"]): r["status"] for r in csv.DictReader(f)
                    if r["stage"] == "identity"}
    except Exception:
        rows = None
    try:
        with open(out + "/summary.json") as f:
            stage_summary = json.load(f)["stages"]["identity"]
    except Exception:
        stage_summary = None
    report = hook.report
    print(json.dumps({
        "summary": stage_summary,
        "raw_frames": int(raw.shape[0]),
        "on_disk": on_disk,
        "rows": rows,
        "by_status": {k: list(v) for k, v in report.frames_by_status.items()},
        "restored": report.frames_restored,
        "unsaved": report.frames_unsaved,
        "errors": errors,
    }))
    """
)


def _namespaces_allowed() -> str | None:
    if shutil.which("unshare") is None:
        return "unshare (util-linux) is not installed"
    if os.geteuid() != 0:
        return "mounting a tmpfs in a private mount namespace needs root"
    probe = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "true"], capture_output=True
    )
    if probe.returncode != 0:
        return f"this machine refuses a private mount namespace: {probe.stderr.decode().strip()}"
    return None


def test_a_disk_that_fills_mid_run_gives_records_that_match_the_disk(tmp_path):
    reason = _namespaces_allowed()
    if reason:
        pytest.skip(reason)
    disk = tmp_path / "small-disk"
    disk.mkdir()
    raw = tmp_path / "raw.ome.zarr"
    # 40 restored 64x64 float32 frames take ~650 kB; 300 kB fills about half-way through
    command = (
        f"mount -t tmpfs -o size=300k tmpfs {disk} && "
        f"{sys.executable} -c {_quote(_SCRIPT)} {disk}/run {raw} {FRAMES}"
    )
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", command],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    found = json.loads(done.stdout.strip().splitlines()[-1])
    on_disk = found["on_disk"]
    assert found["raw_frames"] == FRAMES  # raw is on another disk: all kept
    assert 0 < sum(on_disk) < FRAMES, "the disk should fill part-way through the run"
    saved = [t for t in range(FRAMES) if on_disk[t]]
    not_saved = [t for t in range(FRAMES) if not on_disk[t]]
    # the report: restored means on disk, every other frame is named as unsaved
    assert found["by_status"]["restored"] == saved and found["restored"] == len(saved)
    assert found["by_status"]["unsaved"] == not_saved and found["unsaved"] == len(not_saved)
    # one error event per frame that did not reach the disk, with its number
    assert sorted(f for f, kind in found["errors"] if kind == "unsaved") == not_saved
    # summary.json, where it could still be written, counts what is on disk, and keeps the
    # store's name and why it stopped
    if found["summary"] is not None:
        assert found["summary"]["restored"] == len(saved)
        assert found["summary"]["outputs_by_status"]["unsaved"] == len(not_saved)
        assert found["summary"]["store"] == "identity.ome.zarr"
        assert found["summary"]["store_stopped"] and found["summary"]["missing"] is not None
    # frames.csv, where it could still be written, agrees row by row
    if found["rows"] is not None:
        for frame, status in found["rows"].items():
            assert status == ("restored" if on_disk[int(frame)] else "unsaved"), frame


def _quote(text: str) -> str:
    import shlex

    return shlex.quote(text)
