"""The dock inside the napari set-up microscopists already have: the Plugins menu and
napari-micromanager (its own core, swapped when a config is loaded, its MDA widget)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import zarr

from live_restore.viewer import LiveRestoreDock

napari = pytest.importorskip("napari")
pytest.importorskip("napari_micromanager")

SESSION = Path(__file__).with_name("napari_micromanager_session.py")


def _plugin_dock(viewer) -> LiveRestoreDock:
    # what napari's Plugins > Live Restore menu entry does
    _, dock = viewer.window.add_plugin_dock_widget("live-restore", "Live Restore")
    assert isinstance(dock, LiveRestoreDock)
    return dock


def test_side_by_side_keeps_other_layers_hidden_and_gives_them_back(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    dock = _plugin_dock(viewer)
    ours = viewer.add_image(np.ones((8, 8)), name="raw", metadata={"live_restore": {}})
    shown = viewer.add_image(np.ones((8, 8)), name="user's")
    hidden = viewer.add_image(np.ones((8, 8)), name="user's hidden", visible=False)
    dock.set_side_by_side(True)
    assert ours.visible and not shown.visible and not hidden.visible
    late = viewer.add_image(np.ones((8, 8)), name="preview")  # another plugin, mid-run
    assert late.visible  # left to its plugin (taking it from under napari-micromanager crashed)
    dock.set_side_by_side(False)
    assert not viewer.canvas.grid.enabled
    assert shown.visible and late.visible and ours.visible
    assert not hidden.visible  # hidden before: left as it was


def test_the_dock_follows_napari_micromanagers_core_and_restores_its_mda_widgets_run(tmp_path):
    # napari-micromanager's window, then Plugins > Live Restore, in a fresh napari session
    done = subprocess.run(
        [sys.executable, "-X", "faulthandler", str(SESSION), str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-4000:]
    seen = json.loads(done.stdout.strip().splitlines()[-1])
    assert seen["first_core_followed"]  # napari-micromanager's own core, not the global one
    assert seen["core_swapped"] and seen["swap_followed"] and seen["core_type"] == "UniMMCore"
    assert seen["pixel_size_um"] == pytest.approx(0.065)
    assert seen["started"] and seen["report_restored"] == 6
    assert seen["ours"] == ["identity", "raw"] and seen["identity_exact"]
    # napari-micromanager shows the run in a layer of its own; side by side, switched on once
    # the run is in, tiles only ours
    assert seen["theirs"] >= 1 and seen["theirs_hidden_side_by_side"] and seen["grid"]
    # (which layers come back is checked above, where no plugin's timer races the test)
    assert not seen["grid_after"]
    assert not seen["screenshot_blank"]
    restored = zarr.open_group(str(tmp_path / "restored" / "identity.ome.zarr"), mode="r")["0"]
    assert restored.shape == (6, 128, 128) and float(np.asarray(restored[5]).mean()) > 2
