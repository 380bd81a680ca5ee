"""Display updates per second and frame-to-screen latency of the napari live view.

Run under an X server (``make bench-viewer`` uses xvfb-run). A demo-core MDA at full camera
speed, restored by a cheap stage (so that the display, not the model, is what is measured),
with the window's timer at its default 33 ms. Frame to screen: from the hook receiving the frame
to its layers being updated on the GUI thread (napari paints on the next event-loop pass).
"""

from __future__ import annotations

import argparse
import time

import useq
from qtpy.QtWidgets import QApplication
from rich.console import Console
from rich.table import Table

from live_restore.devices import demo_core, release_core


def measure(frame_size: int, frames: int, model: str, store: bool, tmp: str) -> dict[str, float]:
    import napari

    from live_restore.viewer import build_window

    viewer = napari.Viewer(show=True)
    core = demo_core()
    core.setProperty("Camera", "FrameSize", frame_size)
    core.setExposure(5.0)
    try:
        output = f"{tmp}/{model}-{frame_size}-{store}" if store else None
        window = build_window(viewer, core, output=output, models=[model], process="latest")
        dock = window.dock
        assert dock.start(), dock.status.text()
        raw = dock.hook.raw_path_for_next_run() if store else None
        if raw is not None:
            raw.parent.mkdir(parents=True, exist_ok=True)
        started = time.perf_counter()
        core.run_mda(
            useq.MDASequence(time_plan={"interval": 0, "loops": frames}),
            output=None if raw is None else str(raw),
        )
        app = QApplication.instance()
        while core.mda.is_running() or dock.hook.stats().frames_pending:
            app.processEvents()
            time.sleep(0.002)
        elapsed = time.perf_counter() - started
        for _ in range(10):
            app.processEvents()
            time.sleep(0.01)
        display = dock.view.meter.stats(time.perf_counter())  # latencies of every update
        result = {
            "acquired_fps": frames / elapsed,
            "updates": display.updates,
            "updates_per_s": display.updates / elapsed,
            "latency_p50_ms": display.screen_latency_p50_ms,
            "latency_p99_ms": display.screen_latency_p99_ms,
        }
        dock.close_hook()
        return result
    finally:
        release_core(core)
        viewer.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--frames", type=int, default=150)
    args = parser.parse_args()
    import tempfile

    table = Table(title="napari live view (Xvfb, Mesa llvmpipe)")
    for column in ("frame", "model", "layers", "acquired fps", "display updates/s", "p50", "p99"):
        table.add_column(column)
    with tempfile.TemporaryDirectory() as tmp:
        for size, model, store in ((512, "identity", False), (512, "identity", True)):
            r = measure(size, args.frames, model, store, tmp)
            table.add_row(
                f"{size}²",
                model,
                "OME-Zarr stores" if store else "newest frame",
                f"{r['acquired_fps']:.1f}",
                f"{r['updates_per_s']:.1f}",
                f"{r['latency_p50_ms']:.0f} ms",
                f"{r['latency_p99_ms']:.0f} ms",
            )
    Console().print(table)


if __name__ == "__main__":
    main()
