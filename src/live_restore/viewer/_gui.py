"""The napari window: microscope controls (pymmcore-widgets), the Live Restore dock, the demo.

``live-restore gui`` opens it on a Micro-Manager config; ``live-restore demo`` (without
``--headless``) opens it on the simulated microscope with a low-light time-lapse already
running. Either can save a screenshot of the whole window and close once enough frames are
restored (``screenshot=``), which is how the README's picture is made.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import napari
import numpy as np

from ._dock import LiveRestoreDock
from ._icons import seed_icon_cache

__all__ = [
    "GuiWindow",
    "PluginDock",
    "arrange_window",
    "build_window",
    "canvas_share",
    "current_core",
    "make_dock",
    "screenshot_is_blank",
]

log = logging.getLogger(__name__)

DOCK_WIDTH_PX = 380  # the docks' column: wide enough for the dock's forms, no wider
_GUI_CORE: list[Any] = []  # the core `live-restore gui` opened (the npe2 dock uses it)


def current_core(viewer: Any = None) -> Any:
    """The core the dock restores, asked each time (the front end may have swapped it).

    In order: the core of the running ``live-restore gui`` window; the core of
    napari-micromanager's main window docked in ``viewer`` (it makes its own core, and a new
    one when a config with or without Python devices is loaded); pymmcore-plus's global core.
    """
    if _GUI_CORE:
        return _GUI_CORE[-1]
    if viewer is not None and (core := _napari_micromanager_core(viewer)) is not None:
        return core
    from pymmcore_plus import CMMCorePlus

    return CMMCorePlus.instance()


def _napari_micromanager_core(viewer: Any) -> Any:
    """The core of napari-micromanager's main window in ``viewer``, if it has one docked."""
    try:
        from napari_micromanager.main_window import MainWindow
    except ImportError:
        return None
    for widget in viewer.window.dock_widgets.values():
        if isinstance(widget, MainWindow):
            return widget.core
    return None


class PluginDock(LiveRestoreDock):
    """The dock as napari's Plugins > Live Restore builds it (the npe2 widget).

    It restores on the core :func:`current_core` names, asked again at each Start, so it follows
    napari-micromanager when that swaps cores. napari 0.9 hands the viewer only to a widget
    class whose ``__init__`` has a ``napari_viewer`` parameter; a factory function gets none.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer, lambda: current_core(napari_viewer))


def make_dock(napari_viewer: napari.viewer.Viewer) -> LiveRestoreDock:
    """The plugin's dock for ``napari_viewer`` (what the Plugins menu builds)."""
    return PluginDock(napari_viewer)


@dataclass
class GuiWindow:
    """A napari viewer with the microscope controls and the dock, on one core."""

    viewer: Any
    core: Any
    dock: LiveRestoreDock
    mda_widget: Any


def build_window(
    viewer: Any,
    core: Any,
    output: str | Path | None = None,
    models: Sequence[str] | None = None,
    backend: str = "auto",
    policy: str = "all",
    estimate_focus: bool = True,
) -> GuiWindow:
    """Add pymmcore-widgets' controls and the Live Restore dock to ``viewer`` for ``core``."""
    seed_icon_cache()  # before any pymmcore-widgets widget asks pyconify for an icon
    from pymmcore_widgets import (
        ExposureWidget,
        GroupPresetTableWidget,
        LiveButton,
        MDAWidget,
        SnapButton,
    )
    from qtpy.QtWidgets import QHBoxLayout, QVBoxLayout, QWidget

    _GUI_CORE.append(core)
    controls = QWidget()
    layout = QVBoxLayout(controls)
    buttons = QHBoxLayout()
    buttons.addWidget(SnapButton(mmcore=core))
    buttons.addWidget(LiveButton(mmcore=core))
    buttons.addWidget(ExposureWidget(mmcore=core))
    layout.addLayout(buttons)
    # presets: channel (widefield / SIM patterns) and light level on the demo microscope.
    # pymmcore-widgets' StageWidget is left out: with a Python focus stage (UniMMCore) it
    # sets Core-Focus through C++ MMCore, which rejects the label, and aborts the process.
    layout.addWidget(GroupPresetTableWidget(mmcore=core))
    mda = MDAWidget(mmcore=core)
    dock = LiveRestoreDock(
        viewer,
        core,
        output=output,
        models=list(models) if models else None,
        backend=backend,
        policy=policy,
        estimate_focus=estimate_focus,
    )
    _start_on_widefield(core, mda)
    docks = [
        viewer.window.add_dock_widget(dock, name="Live Restore", area="right"),
        viewer.window.add_dock_widget(controls, name="Microscope", area="right", tabify=True),
        # the MDA widget asks for ~590 px; in a scroll area it shares the narrow column
        viewer.window.add_dock_widget(_scrolling(mda), name="MDA", area="right", tabify=True),
    ]
    arrange_window(viewer, docks)
    return GuiWindow(viewer, core, dock, mda)


def arrange_window(viewer: Any, docks: Sequence[Any], dock_width_px: int = DOCK_WIDTH_PX) -> None:
    """Give the images the window: one narrow column of tabbed docks, the canvas the rest.

    napari's layer controls and layer list join our docks as tabs (Window menu brings any of
    them back as it was); the window fills the screen (up to 1600x1000), the Live Restore tab
    is in front, and the view is fitted once the canvas has its final size.
    """
    from qtpy.QtCore import Qt, QTimer
    from qtpy.QtWidgets import QApplication

    window = viewer.window._qt_window  # napari has no public API for dock placement
    qt_viewer = viewer.window._qt_viewer
    column = [*docks, qt_viewer.dockLayerControls, qt_viewer.dockLayerList]
    for widget in column[1:]:
        window.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, widget)
    for previous, widget in itertools.pairwise(column):
        window.tabifyDockWidget(previous, widget)
    for widget in column:
        widget.setMinimumWidth(dock_width_px // 2)
    screen = QApplication.primaryScreen()
    if screen is not None:
        available = screen.availableGeometry()
        window.resize(min(available.width(), 1600), min(available.height(), 1000))

    def settle() -> None:  # once the window is laid out: before that, Qt ignores the sizes
        docks[0].raise_()
        window.resizeDocks([docks[0]], [dock_width_px], Qt.Orientation.Horizontal)
        viewer.reset_view()

    settle()
    again = QTimer(window)  # parented: it dies with the window, never fires on a closed one
    again.setSingleShot(True)
    again.timeout.connect(settle)
    again.start(0)


def _scrolling(widget: Any) -> Any:
    from qtpy.QtWidgets import QScrollArea

    area = QScrollArea()
    area.setWidgetResizable(True)
    area.setWidget(widget)
    return area


def canvas_share(viewer: Any) -> float:
    """Fraction of the window's area the image canvas takes."""
    canvas = viewer.window._qt_viewer.canvas.native.size()
    window = viewer.window._qt_window.size()
    canvas_px = int(canvas.width()) * int(canvas.height())
    return canvas_px / max(int(window.width()) * int(window.height()), 1)


def _start_on_widefield(core: Any, mda_widget: Any) -> None:
    """The MDA widget's channel is the camera's plain widefield preset where there is one.

    (pymmcore-widgets adds the group's first preset, a SIM pattern on the demo config.)
    """
    import useq

    if "Widefield" not in core.getAvailableConfigs("Channel"):
        return
    mda_widget.setValue(
        useq.MDASequence(
            channels=[{"config": "Widefield", "group": "Channel", "exposure": core.getExposure()}]
        )
    )


def forget_core(core: Any) -> None:
    """The window on ``core`` closed: the npe2 dock no longer uses it."""
    if core in _GUI_CORE:
        _GUI_CORE.remove(core)


def screenshot_is_blank(image: np.ndarray) -> bool:
    """True when an RGB(A) region shows (almost) nothing: too few distinct grey levels."""
    grey = np.asarray(image)[..., :3].mean(axis=-1)
    return bool(grey.std() < 2.0 or np.unique(grey.astype(np.uint8)).size < 16)
