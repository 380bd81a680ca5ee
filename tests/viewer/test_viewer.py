"""The napari live view under Xvfb: a real viewer, a real core, real stores."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import useq
import zarr

from live_restore.inference import available_backends

napari = pytest.importorskip("napari")

from live_restore.acquisition import RESTORERS, IdentityRestorer  # noqa: E402
from live_restore.viewer import (  # noqa: E402
    LiveRestoreDock,
    SafeStoreView,
    StreamLayers,
    build_window,
    canvas_share,
    focus_state,
    make_dock,
    restored_translate_um,
    screenshot_is_blank,
)
from live_restore.viewer._focus_widgets import (  # noqa: E402
    DEFOCUSED_COLOUR,
    IN_FOCUS_COLOUR,
    UNCERTAIN_COLOUR,
)

FRAMES = 6
WAIT_MS = 60_000


def _store(path: Path) -> np.ndarray:
    return np.asarray(zarr.open_group(str(path), mode="r")["0"][:])


@pytest.fixture
def window(make_napari_viewer, core, tmp_path):
    core.setExposure(5.0)
    core.setConfig("LightLevel", "Medium")
    viewer = make_napari_viewer(show=True)  # a hidden canvas screenshots as black under Xvfb
    win = build_window(viewer, core, output=tmp_path / "restored", models=["richardson-lucy"])
    yield win
    win.dock.close_hook()
    if win.dock.view is not None:
        win.dock.view.stop()


def _run_mda(win, frames: int = FRAMES) -> Path:
    hook = win.dock.hook
    raw = hook.raw_path_for_next_run()
    raw.parent.mkdir(parents=True, exist_ok=True)
    win.core.run_mda(useq.MDASequence(time_plan={"interval": 0, "loops": frames}), output=str(raw))
    return raw.parent


def _shown_all(win, frames: int):
    def check() -> None:
        hook, view = win.dock.hook, win.dock.view
        assert not win.core.mda.is_running()
        assert hook.report.frames_restored == frames
        latest = hook.latest()
        assert latest is not None and latest.numbers[-1] == frames - 1
        assert view._shown is hook.latest_raw()  # the timer showed the newest frame
        assert view._shown.number == frames - 1

    return check


def test_dock_builds_with_the_models_backends_and_policies(window):
    dock = window.dock
    assert isinstance(dock, LiveRestoreDock)
    names = [dock.models.item(i).text() for i in range(dock.models.count())]
    assert {"identity", "richardson-lucy", "dfcan-sr2x-lite", "refocus"} <= set(names)
    assert "focus-est" not in names  # estimates focus; not a restoration stage
    assert "dfcan-sr2x-tiny+trust" in names  # a calibrated model's trust map is a choice
    assert "refocus+trust" not in names  # refocus has no trust calibration
    assert dock.chosen_models() == ["richardson-lucy"]
    backends = [dock.backend.itemText(i) for i in range(dock.backend.count())]
    assert backends[0] == "auto" and "torch-cpu" in backends
    assert backends[1:] == available_backends()
    assert not dock.running


def test_bad_choices_are_refused_with_a_message_and_nothing_starts(window):
    from qtpy.QtCore import Qt

    dock = window.dock
    for i in range(dock.models.count()):
        dock.models.item(i).setCheckState(Qt.CheckState.Unchecked)
    assert not dock.start()
    assert "tick at least one model" in dock.status.text()
    assert not dock.running and not dock.start_button.isChecked()


def test_the_dock_saves_its_settings_and_loads_them_back(window, tmp_path):
    from live_restore import HookConfig

    dock = window.dock
    dock.policy.setCurrentText("latest")
    dock.executor.setCurrentText("process")
    dock.hold_focus.setChecked(True)
    saved = dock.save_config(tmp_path / "hook.yaml")
    config = HookConfig.from_file(saved)
    assert config.models == ["richardson-lucy"] and config.policy == "latest"
    assert config.executor == "process"
    assert config.focus is not None and config.focus.hold is not None
    assert config.output == tmp_path / "restored"
    # another set-up, then the file: the controls show what was saved
    dock.policy.setCurrentText("all")
    dock.executor.setCurrentText("thread")
    dock.hold_focus.setChecked(False)
    dock.output.setText("")
    assert dock.load_config(saved) == config
    assert dock.policy.currentText() == "latest" and dock.hold_focus.isChecked()
    assert dock.executor.currentText() == "process"  # never dropped on the way to Start
    assert dock.output.text() == str(tmp_path / "restored")
    assert dock.hook_config() == config


def test_mda_fills_both_layers_from_the_stores_and_they_match_what_was_saved(window, qtbot):
    dock = window.dock
    assert dock.start()
    folder = _run_mda(window)
    qtbot.waitUntil(_shown_all(window, FRAMES), timeout=WAIT_MS)
    layers = dock.view.layers
    assert layers.mode == "stores"
    raw_layer, restored_layer = layers.layers["raw"], layers.layers["richardson-lucy"]
    # backed by the stores, read a plane at a time: memory does not grow with the run
    assert isinstance(raw_layer.data, SafeStoreView)
    assert isinstance(restored_layer.data, SafeStoreView)
    assert raw_layer.data.shape[0] == restored_layer.data.shape[0] == FRAMES
    assert window.viewer.dims.current_step[0] == FRAMES - 1  # the slider followed
    dock.close_hook()
    raw_store = _store(folder / "raw.ome.zarr")
    restored_store = _store(folder / "richardson-lucy.ome.zarr")
    for t in range(FRAMES):
        np.testing.assert_array_equal(restored_layer.data[t], restored_store[t])
        np.testing.assert_array_equal(raw_layer.data[t], raw_store[t])
    assert restored_store[FRAMES - 1].std() > 0  # real frames, not fill
    # the focus estimator ran on the frames and fed the indicator and the plot
    assert len(dock.defocus_plot.readings) >= 1
    assert "no estimate" not in dock.focus_indicator.text()
    assert dock.stats_labels["restored"].text().startswith(f"{FRAMES} of {FRAMES}")
    assert "stopped: 6 of 6 frames restored" in dock.status.text()


def test_screenshot_shows_non_blank_raw_and_restored_images(window, qtbot, tmp_path):
    dock = window.dock
    assert dock.start()
    _run_mda(window)
    qtbot.waitUntil(_shown_all(window, FRAMES), timeout=WAIT_MS)
    viewer = window.viewer
    raw_layer = dock.view.layers.layers["raw"]
    restored_layer = dock.view.layers.layers["richardson-lucy"]
    shots = {}
    for shown, hidden in ((raw_layer, restored_layer), (restored_layer, raw_layer)):
        shown.visible, hidden.visible = True, False
        shots[shown.name] = viewer.screenshot(canvas_only=True, flash=False)
    raw_layer.visible = restored_layer.visible = True
    dock.set_side_by_side(True)
    assert viewer.canvas.grid.enabled
    path = tmp_path / "live-view.png"
    image = viewer.screenshot(str(path), canvas_only=False, flash=False)
    assert path.is_file() and path.stat().st_size > 10_000
    assert not screenshot_is_blank(shots["raw"])
    assert not screenshot_is_blank(shots["richardson-lucy"])
    assert not screenshot_is_blank(image)
    blank = np.zeros_like(shots["raw"])
    assert screenshot_is_blank(blank)  # the check itself can fail


def test_the_window_gives_the_images_most_of_its_area_and_fits_them(window, qtbot):
    viewer = window.viewer
    # the canvas, not the docks, takes most of the window (docks are tabs in one column)
    qtbot.waitUntil(lambda: canvas_share(viewer) >= 0.6, timeout=WAIT_MS)
    dock = window.dock
    assert dock.start()
    dock.set_side_by_side(True)
    _run_mda(window)
    qtbot.waitUntil(_shown_all(window, FRAMES), timeout=WAIT_MS)
    # side by side, each image is drawn at a useful size: fitted to its half of the canvas
    canvas_px = viewer.window._qt_viewer.canvas.native.size()
    raw_layer = dock.view.layers.layers["raw"]
    low, high = raw_layer.extent.world[0][-2:], raw_layer.extent.world[1][-2:]
    shown_px = (high - low) * viewer.scene.camera.zoom
    # fitted: the binding side of the image fills most of its cell (napari pads the fit)
    assert max(shown_px[0] / canvas_px.height(), shown_px[1] / (canvas_px.width() / 2)) > 0.8
    assert not screenshot_is_blank(viewer.screenshot(canvas_only=True, flash=False))


def test_the_mda_widget_starts_on_the_widefield_preset(window):
    # pymmcore-widgets would offer the group's first preset, a SIM pattern on the demo config
    assert [c.config for c in window.mda_widget.value().channels] == ["Widefield"]


def test_display_rate_after_a_run_is_the_last_rate_not_zero():
    from live_restore.viewer._view import _DisplayMeter

    meter = _DisplayMeter(span_s=3.0)
    for i in range(21):  # 20 updates/s for a second
        meter.add(100.0 + i * 0.05, latency_ms=10.0)
    during = meter.stats(101.0)
    after = meter.stats(160.0)  # a minute after the run ended
    assert during.updates_per_s == pytest.approx(20.0)
    assert after.updates_per_s == pytest.approx(20.0) and after.idle_s == pytest.approx(59.0)
    assert meter.stats(0.0).updates == 21


def test_an_mda_started_from_the_pymmcore_widgets_mda_widget_is_restored_and_shown(window, qtbot):
    dock = window.dock
    assert dock.start()
    mda = window.mda_widget
    mda.setValue(useq.MDASequence(time_plan={"interval": 0, "loops": 4}))
    mda.run_mda()  # the widget's own Run: no raw store (saving unticked)
    qtbot.waitUntil(_shown_all(window, 4), timeout=WAIT_MS)
    layers = dock.view.layers
    assert layers.mode == "frames"  # no raw store to back the layer: the newest frame
    latest = dock.hook.latest()
    np.testing.assert_array_equal(layers.layers["raw"].data, latest.raw)
    np.testing.assert_array_equal(layers.layers["richardson-lucy"].data, latest.restored)


def test_live_mode_is_restored_for_display(window, qtbot):
    dock = window.dock
    assert dock.start()
    window.core.startContinuousSequenceAcquisition()
    try:

        def shown_live() -> None:
            latest = dock.hook.latest_raw()
            assert latest is not None and latest.live and dock.view._shown is latest
            assert dock.hook.latest() is not None

        qtbot.waitUntil(shown_live, timeout=WAIT_MS)
    finally:
        window.core.stopSequenceAcquisition()
    assert dock.view.layers.mode == "frames"
    assert dock.view.layers.layers["richardson-lucy"].data.shape == (64, 64)


def test_a_failing_stage_is_shown_in_the_dock_and_raw_is_still_shown(
    make_napari_viewer, core, qtbot, monkeypatch
):
    class Explodes(IdentityRestorer):
        name = "explodes"

        def __call__(self, frame):
            raise RuntimeError("model exploded")

    monkeypatch.setitem(RESTORERS, "explodes", (lambda instrument: Explodes(), "test"))
    viewer = make_napari_viewer()
    dock = LiveRestoreDock(viewer, core, models=["explodes", "identity"], estimate_focus=False)
    assert dock.start()
    try:
        core.mda.run(useq.MDASequence(time_plan={"interval": 0, "loops": 3}))
        qtbot.waitUntil(lambda: "model exploded" in dock.last_error.text(), timeout=WAIT_MS)
        assert "explodes" in dock.last_error.text()

        def shown() -> None:
            latest = dock.hook.latest_raw()
            assert latest is not None and latest.number == 2 and dock.view._shown is latest

        qtbot.waitUntil(shown, timeout=WAIT_MS)
        layers = dock.view.layers.layers
        np.testing.assert_array_equal(layers["raw"].data, dock.hook.latest_raw().image)
        np.testing.assert_array_equal(
            layers["identity"].data, dock.hook.latest("identity").restored
        )
        assert "explodes" not in layers  # nothing restored to show
    finally:
        dock.close_hook()
        dock.view.stop()


def test_a_sim_timelapse_shows_each_reconstruction_beside_its_raw_set(
    make_napari_viewer, core, qtbot, tmp_path
):
    sim_px, time_points = 256, 2
    core.setProperty("Camera", "FrameSize", sim_px)
    core.setConfig("LightLevel", "High")
    viewer = make_napari_viewer(show=True)
    win = build_window(viewer, core, output=tmp_path / "restored", models=["sim-classical"])
    dock = win.dock
    try:
        assert dock.start()
        raw_path = dock.hook.raw_path_for_next_run()
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        channels = [
            {"config": f"SIM-A{a}P{p}", "group": "Channel"} for a in range(3) for p in range(3)
        ]
        sequence = useq.MDASequence(
            time_plan={"interval": 0, "loops": time_points}, channels=channels, axis_order="tc"
        )
        core.run_mda(sequence, output=str(raw_path))

        def shown() -> None:
            assert not core.mda.is_running()
            assert dock.hook.report.frames_done == 9 * time_points
            assert dock.view._shown is dock.hook.latest_raw()
            assert "sim-classical" in dock.view.layers.layers

        qtbot.waitUntil(shown, timeout=WAIT_MS)
        layers = dock.view.layers.layers
        raw_layer, sim_layer = layers["raw"], layers["sim-classical"]
        assert raw_layer.data.shape == (time_points, 9, sim_px, sim_px)
        assert sim_layer.data.shape == (time_points, 1, 2 * sim_px, 2 * sim_px)
        # whichever pattern frame the slider shows, the reconstruction of its set is beside it
        for pattern in (0, 4, 8):
            world = (1, pattern, 3.0, 5.0)
            data_index = np.round(sim_layer.world_to_data(world)).astype(int)
            assert tuple(data_index[:2]) == (1, 0), (pattern, data_index)
        dock.close_hook()
        saved = _store(raw_path.parent / "sim-classical.ome.zarr")
        np.testing.assert_array_equal(sim_layer.data[1, 0], saved[1])
        assert saved[1].std() > 0
        viewer.dims.current_step = (1, 4, *viewer.dims.current_step[2:])
        raw_layer.visible = False
        shot = viewer.screenshot(str(tmp_path / "sim.png"), canvas_only=True, flash=False)
        assert not screenshot_is_blank(shot)
    finally:
        dock.close_hook()
        if dock.view is not None:
            dock.view.stop()


def test_an_interpolated_timelapse_shows_at_the_full_rate_beside_raw(
    make_napari_viewer, core, qtbot, tmp_path
):
    time_points = 3
    viewer = make_napari_viewer(show=True)
    win = build_window(viewer, core, output=tmp_path / "restored", models=["interp-t"])
    dock = win.dock
    try:
        assert dock.start()
        raw_path = dock.hook.raw_path_for_next_run()
        raw_path.parent.mkdir(parents=True, exist_ok=True)
        sequence = useq.MDASequence(time_plan={"interval": 0, "loops": time_points})
        core.run_mda(sequence, output=str(raw_path))

        def shown() -> None:
            assert not core.mda.is_running()
            assert dock.hook.report.frames_done == time_points
            assert "interp-t" in dock.view.layers.layers
            assert dock.view.layers.layers["interp-t"].data.shape[0] == 2 * time_points - 1

        qtbot.waitUntil(shown, timeout=WAIT_MS)
        layers = dock.view.layers.layers
        raw_layer, full_layer = layers["raw"], layers["interp-t"]
        assert raw_layer.data.shape[0] == time_points
        # world time 1.5 (between raw t=1 and t=2) is the interpolated full-rate frame 3
        assert round(full_layer.world_to_data((1.5, 3.0, 5.0))[0]) == 3
        assert round(full_layer.world_to_data((2.0, 3.0, 5.0))[0]) == 4
        dock.close_hook()
        saved = _store(raw_path.parent / "interp-t.ome.zarr")
        np.testing.assert_array_equal(full_layer.data[3], saved[3])
        assert saved[3].std() > 0
        viewer.dims.current_step = (3, *viewer.dims.current_step[1:])
        raw_layer.visible = False
        shot = viewer.screenshot(str(tmp_path / "interp.png"), canvas_only=True, flash=False)
        assert not screenshot_is_blank(shot)
    finally:
        dock.close_hook()
        if dock.view is not None:
            dock.view.stop()


def test_restored_pixels_tile_the_raw_pixels_in_world_coordinates(make_napari_viewer):
    viewer = make_napari_viewer()
    pixel_um = 0.065
    assert restored_translate_um(pixel_um, 2) == pytest.approx(-pixel_um / 4)
    layers = StreamLayers(viewer, pixel_um, [("sr2x", 2), ("same", 1)])
    raw = np.random.default_rng(0).random((16, 24)).astype(np.float32)
    layers.show_frames(raw, {"sr2x": np.ones((32, 48)), "same": raw}, contrast=True)

    def edges(name: str, shape: tuple[int, int]) -> np.ndarray:
        layer = layers.layers[name]
        corners = [(-0.5, -0.5), (shape[0] - 0.5, shape[1] - 0.5)]
        return np.array([layer.data_to_world(c) for c in corners])

    np.testing.assert_allclose(edges("sr2x", (32, 48)), edges("raw", (16, 24)), atol=1e-9)
    np.testing.assert_allclose(edges("same", (16, 24)), edges("raw", (16, 24)), atol=1e-9)
    np.testing.assert_allclose(edges("raw", (16, 24))[1], [15.5 * pixel_um, 23.5 * pixel_um])


def test_focus_indicator_states():
    from live_restore.focus import DefocusReading

    def reading(defocus_um: float, confidence: float = 0.9) -> DefocusReading:
        return DefocusReading(0, {}, defocus_um, 0.1, confidence)

    assert focus_state(None, 0.5, 0.3)[1] == UNCERTAIN_COLOUR
    assert focus_state(reading(0.2), 0.5, 0.3) == ("in focus (+0.20 µm)", IN_FOCUS_COLOUR)
    assert focus_state(reading(-1.25), 0.5, 0.3) == ("defocused by -1.25 µm", DEFOCUSED_COLOUR)
    assert focus_state(reading(-1.25, 0.1), 0.5, 0.3)[1] == UNCERTAIN_COLOUR


def test_npe2_manifest_contributes_the_dock(window):
    from npe2 import PluginManifest

    manifest = PluginManifest.from_distribution("live-restore")
    (widget,) = manifest.contributions.widgets
    (command,) = [c for c in manifest.contributions.commands if c.id == widget.command]
    assert command.python_name == "live_restore.viewer:PluginDock"
    dock = make_dock(window.viewer)  # the plugin's dock drives the window's core
    assert isinstance(dock, LiveRestoreDock) and dock.core is window.core


def test_demo_window_cli_saves_a_screenshot_and_the_stores(tmp_path):
    out, shot = tmp_path / "demo", tmp_path / "demo.png"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "live_restore",
            "demo",
            "--interval-s",
            "0",
            "--frames",
            "3",
            "--frame-size",
            "128",
            "-m",
            "richardson-lucy",
            "--out",
            str(out),
            "--screenshot",
            str(shot),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "3 of 3 frames restored" in result.stdout
    assert (out / "raw.ome.zarr").is_dir() and (out / "richardson-lucy.ome.zarr").is_dir()
    from PIL import Image

    assert not screenshot_is_blank(np.asarray(Image.open(shot)))


def test_a_trust_map_shows_as_a_red_overlay_on_its_restored_layer(
    make_napari_viewer, core, qtbot, tmp_path
):
    core.setConfig("LightLevel", "Low")
    viewer = make_napari_viewer(show=True)
    models = ["dfcan-sr2x-tiny", "dfcan-sr2x-tiny+trust"]
    win = build_window(viewer, core, output=tmp_path / "restored", models=models)
    dock = win.dock
    try:
        assert dock.start()
        _run_mda(win, frames=2)
        qtbot.waitUntil(_shown_all(win, 2), timeout=WAIT_MS)
        qtbot.waitUntil(lambda: "dfcan-sr2x-tiny-trust" in dock.view.layers.layers, timeout=WAIT_MS)
        layers = dock.view.layers.layers
        restored, trust = layers["dfcan-sr2x-tiny"], layers["dfcan-sr2x-tiny-trust"]
        assert trust.metadata["live_restore"]["kind"] == "trust"
        assert trust.colormap.name == "red" and trust.blending == "additive"
        # on the restored layer's pixels: the same scale and place in the world
        assert tuple(trust.scale) == tuple(restored.scale)
        assert tuple(trust.translate) == tuple(restored.translate)
        assert viewer.layers.index(trust) > viewer.layers.index(restored)  # drawn on top
        # the dock names the newest frame's untrusted share and the threshold
        dock.view.refresh()
        text = dock.stats_labels["trust"].text()
        assert "% untrusted (frame 1)" in text and "sigma > 0.1 x the span" in text
    finally:
        dock.close_hook()
        if dock.view is not None:
            dock.view.stop()
