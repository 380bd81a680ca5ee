"""A napari session as a microscopist runs it: napari-micromanager, then Plugins > Live Restore.

Run in a fresh interpreter by ``test_user_stack.py`` (``python THIS OUT_FOLDER``; the picture it
saves there is docs/napari-micromanager.png): napari-
micromanager's main window, made after other napari viewers in one process, crashes Qt on a
posted show event of a dock that is gone (seen here with napari 0.9.2 and napari-micromanager
0.3.1), and a user's napari has one viewer per process anyway. Prints one JSON line of what it saw.
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np
import useq
from qtpy.QtWidgets import QApplication

from live_restore.devices import config_path
from live_restore.viewer import LiveRestoreDock, screenshot_is_blank
from live_restore.viewer._icons import seed_icon_cache

FRAMES = 6
FRAME_PX = 128
WAIT_S = 120.0


def _wait_until(condition, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError("napari-micromanager's run was not restored in time")
        QApplication.processEvents()
        time.sleep(0.01)


def _settle(seconds: float = 0.3) -> None:
    """Let Qt's event loop run between two user actions, as it does between two clicks.

    Back to back, napari-micromanager's core swap (it closes its docks) and the next dock's
    show left a posted show event for a deleted widget, and Qt crashed on it.
    """
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QApplication.processEvents()
        time.sleep(0.01)


def main(out: Path) -> dict[str, object]:
    import napari

    seed_icon_cache()  # pymmcore-widgets' and napari-micromanager's icons, offline
    viewer = napari.Viewer(show=True)
    viewer.window._qt_window.resize(1600, 1000)  # a laptop's screen, as the README's picture
    _settle()
    # as `napari-micromanager` (its command) opens it: its main window docked at the top
    from napari_micromanager.main_window import MainWindow

    window = MainWindow(viewer)
    viewer.window.add_dock_widget(window, name="MicroManager", area="top")
    _settle()
    _, dock = viewer.window.add_plugin_dock_widget("live-restore", "Live Restore")  # Plugins menu
    _settle()
    assert isinstance(dock, LiveRestoreDock)
    seen: dict[str, object] = {"first_core_followed": dock.core is window.core}
    first = window.core
    # a config with Python devices: napari-micromanager swaps in a new UniMMCore
    window.core.loadSystemConfiguration(str(config_path("sim_demo.cfg")))
    _settle()
    core = window.core
    seen["core_swapped"] = core is not first
    seen["swap_followed"] = dock.core is core
    seen["core_type"] = type(core).__name__
    seen["pixel_size_um"] = core.getPixelSizeUm()
    core.setProperty("Camera", "FrameSize", FRAME_PX)
    core.setConfig("LightLevel", "Medium")
    for row in range(dock.models.count()):  # identity: restored == raw - offset, exactly
        item = dock.models.item(row)
        checked = item.text() == "identity"
        item.setCheckState(item.checkState().Checked if checked else item.checkState().Unchecked)
    dock.output.setText(str(out / "restored"))
    dock.estimate_focus.setChecked(False)
    seen["started"] = dock.start()
    dock.set_side_by_side(True)  # on during the run: napari-micromanager's layer comes after
    window._show_dock_widget("MDA")  # napari-micromanager's own MDA widget and its Run
    _settle()
    mda = window._dock_widgets["MDA"].widget()
    mda.setValue(useq.MDASequence(time_plan={"interval": 0.05, "loops": FRAMES}))
    _settle()
    mda.run_mda()
    _wait_until(lambda: not core.mda.is_running() and dock.hook.report.frames_restored == FRAMES)
    _wait_until(lambda: dock.view.layers.layers.keys() >= {"raw", "identity"})
    # napari-micromanager's layer, added during the run, kept its cell; switched on again with
    # the run in, the grid tiles raw and restored alone
    dock.set_side_by_side(False)
    dock.set_side_by_side(True)
    seen["ours"] = sorted(layer.name for layer in _ours(viewer))
    theirs = [layer for layer in viewer.layers if "live_restore" not in layer.metadata]
    seen["theirs"] = len(theirs)
    seen["theirs_hidden_side_by_side"] = not any(layer.visible for layer in theirs)
    seen["grid"] = viewer.canvas.grid.enabled
    latest = dock.hook.latest()
    seen["identity_exact"] = bool(
        np.array_equal(latest.restored, np.clip(latest.raw.astype(np.float32) - 100.0, 0, None))
    )
    viewer.reset_view()
    dock.parentWidget().raise_()  # its tab in front of the MDA widget's, for the picture
    _settle()
    shot = viewer.screenshot(str(out / "napari-micromanager.png"), canvas_only=False, flash=False)
    seen["screenshot_blank"] = screenshot_is_blank(shot)
    dock.close_hook()
    seen["report_restored"] = dock.last_report.frames_restored
    dock.set_side_by_side(False)
    seen["grid_after"] = viewer.canvas.grid.enabled
    window._cleanup()  # napari-micromanager releases the core it owns
    viewer.close()
    return seen


def _ours(viewer) -> list:
    return [layer for layer in viewer.layers if "live_restore" in layer.metadata]


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]))))
