"""The dock inside the napari set-up microscopists already have: the Plugins menu and
napari-micromanager (its own core, swapped when a config is loaded, its MDA widget)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.devices import config_path
from live_restore.viewer import LiveRestoreDock, screenshot_is_blank
from live_restore.viewer._icons import seed_icon_cache

napari = pytest.importorskip("napari")
pytest.importorskip("napari_micromanager")

WAIT_MS = 60_000
DOCS_SCREENSHOT = Path(__file__).parents[2] / "docs" / "napari-micromanager.png"


def _plugin_dock(viewer) -> LiveRestoreDock:
    # what napari's Plugins > Live Restore menu entry does
    _, dock = viewer.window.add_plugin_dock_widget("live-restore", "Live Restore")
    assert isinstance(dock, LiveRestoreDock)
    return dock


@pytest.fixture
def micromanager(make_napari_viewer, qtbot, monkeypatch):
    from qtpy.QtWidgets import QWidget

    def console(*_):  # napari's test viewer has a bare widget; napari-micromanager pushes to it
        widget = QWidget()
        widget._update_theme = widget.push = lambda *a, **k: None
        return widget

    monkeypatch.setattr("napari._qt.qt_viewer.QtViewer._get_console", console)
    seed_icon_cache()  # napari-micromanager's icons, offline (pymmcore-widgets' and its own)
    viewer = make_napari_viewer(show=True)
    _, window = viewer.window.add_plugin_dock_widget("napari-micromanager", "Main Window")
    yield viewer, window
    window._cleanup()  # releases the core it owns (napari-micromanager's own teardown)


def test_the_dock_follows_napari_micromanagers_core_and_restores_its_mda_widgets_run(
    micromanager, qtbot, tmp_path
):
    viewer, window = micromanager
    dock = _plugin_dock(viewer)  # Plugins > Live Restore
    assert not dock.running
    first = window.core
    assert dock.core is first  # napari-micromanager's own core, not the global one
    # loading a config of Python devices makes napari-micromanager swap in a UniMMCore
    window.core.loadSystemConfiguration(str(config_path("sim_demo.cfg")))
    core = window.core
    assert core is not first and dock.core is core
    assert core.getPixelSizeUm() == pytest.approx(0.065)
    core.setProperty("Camera", "FrameSize", 64)
    core.setConfig("LightLevel", "Medium")
    for row in range(dock.models.count()):  # identity: restored == raw - offset, exactly
        item = dock.models.item(row)
        item.setCheckState(
            item.checkState().Checked if item.text() == "identity" else item.checkState().Unchecked
        )
    dock.output.setText(str(tmp_path / "restored"))
    dock.estimate_focus.setChecked(False)
    assert dock.start(), dock.status.text()
    dock.set_side_by_side(True)
    window._show_dock_widget("MDA")  # napari-micromanager's MDA widget, run by its own button
    mda = window._dock_widgets["MDA"].widget()
    mda.setValue(useq.MDASequence(time_plan={"interval": 0.05, "loops": 6}))
    mda.run_mda()

    def restored_all() -> None:
        assert not core.mda.is_running()
        assert dock.hook.report.frames_restored == 6

    qtbot.waitUntil(restored_all, timeout=WAIT_MS)
    ours = [layer for layer in viewer.layers if "live_restore" in layer.metadata]
    theirs = [layer for layer in viewer.layers if "live_restore" not in layer.metadata]
    assert {layer.name for layer in ours} == {"raw", "identity"}
    assert theirs, "napari-micromanager shows the run in a layer of its own"
    # side by side tiles only our layers: napari-micromanager's are hidden meanwhile
    assert viewer.canvas.grid.enabled and not any(layer.visible for layer in theirs)
    viewer.reset_view()
    shot = viewer.screenshot(str(DOCS_SCREENSHOT), canvas_only=False, flash=False)
    assert not screenshot_is_blank(shot)
    latest = dock.hook.latest()
    np.testing.assert_allclose(
        latest.restored, np.clip(latest.raw.astype(np.float32) - 100.0, 0, None)
    )
    dock.close_hook()
    restored = zarr.open_group(str(tmp_path / "restored" / "identity.ome.zarr"), mode="r")["0"]
    assert restored.shape == (6, 64, 64) and float(np.asarray(restored[5]).mean()) > 2
