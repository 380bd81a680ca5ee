"""Run the napari window until it closes: ``live-restore gui`` and the non-headless demo."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

from live_restore._demo import DemoSettings

from ._gui import GuiWindow, build_window, forget_core, screenshot_is_blank

__all__ = ["WindowResult", "run_window"]

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class WindowResult:
    """How the window's session ended."""

    frames_received: int
    frames_restored: int
    screenshot: Path | None
    display_updates: int


def _screenshot_when_ready(
    window: GuiWindow, path: Path, wanted_restored: int, timeout_s: float
) -> None:
    """Poll on the GUI thread; save the window once ``wanted_restored`` frames are shown."""
    from qtpy.QtCore import QTimer

    started = time.monotonic()
    timer = QTimer(window.dock)  # parented: stops with the window

    def check() -> None:
        dock = window.dock
        view = dock.view
        restored = dock.hook.report.frames_restored if dock.hook is not None else 0
        shown = view is not None and view.meter.updates > 0
        timed_out = time.monotonic() - started > timeout_s
        if not timed_out and not (restored >= wanted_restored and shown):
            return
        timer.stop()
        if view is not None:
            view.refresh()
        if timed_out:
            log.warning(
                "screenshot taken after %.0f s with %d frames restored", timeout_s, restored
            )
        path.parent.mkdir(parents=True, exist_ok=True)
        image = window.viewer.screenshot(str(path), canvas_only=False, flash=False)
        if screenshot_is_blank(image):
            log.warning("the screenshot %s looks blank", path)
        window.viewer.close()

    timer.timeout.connect(check)
    timer.start(200)


def run_window(
    config: str | Path | None = None,
    output: str | Path | None = None,
    models: list[str] | None = None,
    backend: str = "auto",
    policy: str = "all",
    demo: DemoSettings | None = None,
    screenshot: Path | None = None,
    screenshot_after: int | None = None,
    screenshot_timeout_s: float = 600.0,
) -> WindowResult:
    """Open napari on ``config`` (the simulated microscope by default) until it is closed.

    With ``demo``, the dock starts restoring at once and the time-lapse starts. With
    ``screenshot``, the window is saved there and closed once ``screenshot_after`` frames are
    restored (default: all of the demo's, else 1).
    """
    import napari

    from live_restore._demo import configure_demo_core, demo_sequence
    from live_restore.devices import demo_core, load_core, release_core

    viewer = napari.Viewer(title="live-restore")
    core = demo_core() if config is None else load_core(config)
    window: GuiWindow | None = None
    try:
        if demo is not None:
            configure_demo_core(core, demo)
        window = build_window(viewer, core, output, models, backend, policy)
        if demo is not None:
            window.dock.set_side_by_side(True)  # raw beside restored from the first frame
            if not window.dock.start():
                raise RuntimeError(window.dock.status.text())
            assert window.dock.hook is not None
            raw = window.dock.hook.raw_path_for_next_run()
            if raw is not None:
                raw.parent.mkdir(parents=True, exist_ok=True)
            core.run_mda(
                demo_sequence(demo),
                output=None if raw is None else str(raw),
            )
        if screenshot is not None:
            wanted = screenshot_after or (demo.frames if demo is not None else 1)
            _screenshot_when_ready(window, Path(screenshot), wanted, screenshot_timeout_s)
        napari.run()
    finally:
        if core.mda.is_running():
            core.mda.cancel()
            deadline = time.monotonic() + 10
            while core.mda.is_running() and time.monotonic() < deadline:
                time.sleep(0.05)
        if window is not None:
            window.dock.close_hook()
        forget_core(core)
        release_core(core)
    report = window.dock.last_report if window is not None else None
    updates = window.dock.view.meter.updates if window and window.dock.view else 0
    return WindowResult(
        frames_received=report.frames_received if report else 0,
        frames_restored=report.frames_restored if report else 0,
        screenshot=screenshot,
        display_updates=updates,
    )
