"""The napari window: microscope controls (pymmcore-widgets), the Live Restore dock, the demo.

``live-restore gui`` opens it on a Micro-Manager config; ``live-restore demo`` (without
``--headless``) opens it on the simulated microscope with a low-light time-lapse already
running. Either can save a screenshot of the whole window and close once enough frames are
restored (``screenshot=``), which is how the README's picture is made.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ._dock import LiveRestoreDock
from ._icons import seed_icon_cache

__all__ = ["GuiWindow", "build_window", "current_core", "make_dock", "screenshot_is_blank"]

log = logging.getLogger(__name__)

_GUI_CORE: list[Any] = []  # the core `live-restore gui` opened (the npe2 dock uses it)


def current_core() -> Any:
    """The core of the running live-restore window, else pymmcore-plus's global core."""
    if _GUI_CORE:
        return _GUI_CORE[-1]
    from pymmcore_plus import CMMCorePlus

    return CMMCorePlus.instance()


def make_dock(napari_viewer: Any) -> LiveRestoreDock:
    """npe2 widget factory: the dock for the current core (Plugins > Live Restore)."""
    return LiveRestoreDock(napari_viewer, current_core())


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
    process: str = "all",
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
        process=process,
        estimate_focus=estimate_focus,
    )
    viewer.window.add_dock_widget(controls, name="Microscope", area="left")
    viewer.window.add_dock_widget(mda, name="MDA", area="left", tabify=True)
    viewer.window.add_dock_widget(dock, name="Live Restore", area="right")
    return GuiWindow(viewer, core, dock, mda)


def forget_core(core: Any) -> None:
    """The window on ``core`` closed: the npe2 dock no longer uses it."""
    if core in _GUI_CORE:
        _GUI_CORE.remove(core)


def screenshot_is_blank(image: np.ndarray) -> bool:
    """True when an RGB(A) region shows (almost) nothing: too few distinct grey levels."""
    grey = np.asarray(image)[..., :3].mean(axis=-1)
    return bool(grey.std() < 2.0 or np.unique(grey.astype(np.uint8)).size < 16)
