"""The napari live view: raw beside restored while it acquires (needs ``live-restore[gui]``)."""

from ._app import WindowResult, run_window
from ._dock import LiveRestoreDock
from ._focus_widgets import DefocusPlot, FocusIndicator, focus_state
from ._gui import (
    GuiWindow,
    PluginDock,
    build_window,
    canvas_share,
    current_core,
    make_dock,
    screenshot_is_blank,
)
from ._layers import SafeStoreView, StreamLayers, display_range, restored_translate_um
from ._view import DisplayStats, LiveView

__all__ = [
    "DefocusPlot",
    "DisplayStats",
    "FocusIndicator",
    "GuiWindow",
    "LiveRestoreDock",
    "LiveView",
    "PluginDock",
    "SafeStoreView",
    "StreamLayers",
    "WindowResult",
    "build_window",
    "canvas_share",
    "current_core",
    "display_range",
    "focus_state",
    "make_dock",
    "restored_translate_um",
    "run_window",
    "screenshot_is_blank",
]
