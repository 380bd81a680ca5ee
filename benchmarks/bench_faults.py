"""What the hook keeps and names when a stage or the disk misbehaves, and how long exit takes.

Each scenario runs one MDA (default 40 frames of 64x64 from the simulated camera) with the
hook's default settings, and prints: raw frames kept (and whether each is bit-identical to what
the camera delivered), frames restored and on disk, frames named by the records (error events
with a frame number, and frames.csv rows that are not ``restored``) against the frames that
were not restored, and the seconds ``close()`` took.

    python benchmarks/bench_faults.py [--frames 40]

A second table covers the services around the hook (``_service_faults.py``): a Triton server
killed and restarted during acquisitions (needs ``make serve-env``), batch restoration of a
store with absent frames, and an acquisition killed half-way, inspected after.

The full-disk scenario needs root and a private mount namespace (``unshare``); it is left out,
with the reason, where the machine refuses one.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

import numpy as np

from live_restore import __version__

_SCENARIO = textwrap.dedent(
    """
    import csv, json, sys, threading, time
    import numpy as np, useq, zarr
    from live_restore import IdentityRestorer, RestoreHook, demo_core, release_core

    kind, out, raw_path, frames = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])

    class Scribbles(IdentityRestorer):
        name = "stage"
        def __call__(self, frame):
            frame[...] = 0
            return super().__call__(frame)

    class Raises(IdentityRestorer):
        name = "stage"
        calls = 0
        def __call__(self, frame):
            self.calls += 1
            if self.calls % 3 == 0:
                raise RuntimeError("every third frame fails")
            return super().__call__(frame)

    class Nan(IdentityRestorer):
        name = "stage"
        def __call__(self, frame):
            out = super().__call__(frame)
            out[0, 0] = np.nan
            return out

    release = threading.Event()

    class Hangs(IdentityRestorer):
        name = "stage"
        calls = 0
        def __call__(self, frame):
            self.calls += 1
            if self.calls > 1:  # frame 0 returns, so close() knows how long a frame takes
                release.wait(600)
            return super().__call__(frame)

    class Plain(IdentityRestorer):
        name = "stage"

    stage = {"scribbles": Scribbles, "raises": Raises, "nan": Nan, "hangs": Hangs,
             "full-disk": Plain}[kind]()
    core = demo_core()
    core.setProperty("Camera", "FrameSize", 64)
    core.setExposure(5.0)
    delivered = []
    core.mda.events.frameReady.connect(lambda image, *_: delivered.append(image.copy()))
    named = set()
    hook = RestoreHook(core, stage, output=out, progress=False)
    hook.open()
    hook.events.error.connect(lambda e: e.frame is not None and named.add(e.frame))
    core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": frames}), output=raw_path)
    started = time.perf_counter()
    hook.close()
    exit_s = time.perf_counter() - started
    release.set()
    release_core(core)
    raw = np.asarray(zarr.open_group(raw_path, mode="r")["0"][:]).reshape(-1, 64, 64)
    identical = len(raw) == len(delivered) and all(
        np.array_equal(a, b) for a, b in zip(raw, delivered))
    try:
        stored = np.asarray(zarr.open_group(out + "/stage.ome.zarr", mode="r")["0"][:])
        stored = stored.reshape(-1, 64, 64)
    except Exception:
        stored = np.zeros((0, 64, 64))
    identity = IdentityRestorer()
    on_disk = sum(t < len(stored) and bool(np.array_equal(stored[t], identity(raw[t])))
                  for t in range(len(raw)))
    rows = {}
    try:
        with open(out + "/frames.csv", newline="") as f:
            rows = {int(r["frame"]): r["status"] for r in csv.DictReader(f)
                    if r["stage"] == "stage"}
    except OSError:
        pass
    report = hook.report
    print(json.dumps({
        "raw": len(raw), "identical": identical, "restored": report.frames_restored,
        "on_disk": on_disk, "not_restored": frames - report.frames_restored,
        "named_events": len(named),
        "named_rows": sum(1 for s in rows.values() if s != "restored"),
        "exit_s": exit_s,
    }))
    """
)

SCENARIOS = {
    "scribbles": "stage writes into its input",
    "raises": "stage raises on every 3rd frame",
    "nan": "stage returns NaN",
    "hangs": "stage hangs from frame 1 on (default settings)",
    "full-disk": "restored outputs on a 300 kB disk",
}


def _namespace_refused() -> str | None:
    if shutil.which("unshare") is None:
        return "no unshare"
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True, text=True)
    return probe.stderr.strip() or None if probe.returncode else None


def run(kind: str, frames: int) -> dict | str:
    folder = Path(tempfile.mkdtemp(prefix=f"faults-{kind}-"))
    out, raw = folder / "run", folder / "raw.ome.zarr"
    command = [sys.executable, "-c", _SCENARIO, kind, str(out), str(raw), str(frames)]
    if kind == "full-disk":
        reason = _namespace_refused()
        if reason:
            return f"skipped: {reason}"
        disk = folder / "disk"
        disk.mkdir()
        out = disk / "run"
        quoted = " ".join(__import__("shlex").quote(c) for c in command[:3])
        shell = f"mount -t tmpfs -o size=300k tmpfs {disk} && {quoted} {kind} {out} {raw} {frames}"
        command = ["unshare", "--mount", "--propagation", "private", "sh", "-c", shell]
    done = subprocess.run(command, capture_output=True, text=True, timeout=900)
    shutil.rmtree(folder, ignore_errors=True)
    if done.returncode != 0:
        return f"failed: {done.stderr.strip().splitlines()[-1] if done.stderr else done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=40)
    args = parser.parse_args()
    print(
        f"live-restore {__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {time.strftime('%Y-%m-%d')}; {args.frames} frames of 64x64"
    )
    header = (
        "| fault | raw kept (bit-identical) | restored / on disk | not restored | "
        "named by events / rows | close() s |"
    )
    print(header)
    print("|" + "---|" * 6)
    for kind, what in SCENARIOS.items():
        result = run(kind, args.frames)
        if isinstance(result, str):
            print(f"| {what} | {result} | | | | |")
            continue
        identical = "yes" if result["identical"] else "NO"
        print(
            f"| {what} | {result['raw']} of {args.frames} ({identical}) | "
            f"{result['restored']} / {result['on_disk']} | {result['not_restored']} | "
            f"{result['named_events']} / {result['named_rows']} | {result['exit_s']:.2f} |"
        )
    _services(args.frames // 2)


def _services(frames: int) -> None:
    """The services around the hook: a killed server, absent frames, a killed acquisition."""
    sys.path.insert(0, str(Path(__file__).parent))
    from _service_faults import SERVICE_SCENARIOS

    print(f"\n{frames} frames per acquisition:\n")
    print("| fault | what happened | measured |")
    print("|---|---|---|")
    for what, scenario in SERVICE_SCENARIOS.values():
        result = scenario(frames)
        print(f"| {what} | {result if isinstance(result, str) else _said(result)} |")


def _said(result: dict) -> str:
    times = {k: v for k, v in result.items() if k.endswith("_s") or k == "s"}
    facts = {k: v for k, v in result.items() if k not in times}
    said = ", ".join(f"{k} {v}" for k, v in facts.items())
    return said + " | " + ", ".join(f"{k} {v:.1f} s" for k, v in times.items())


if __name__ == "__main__":
    np.seterr(all="ignore")
    main()
