"""The "Live Restore" dock: choose models, backend and policy; start/stop; watch it work.

Start opens a :class:`RestoreHook` on the core: from then on every MDA on that core is restored,
whoever starts it (our CLI, pymmcore-widgets' MDA widget, a script), and so is live mode. Stop
closes the hook on a background thread (it may have frames left to finish), so the GUI never
waits for restoration.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from qtpy.QtCore import Qt, QTimer
from qtpy.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFileDialog,
    QFormLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPushButton,
    QSpinBox,
    QVBoxLayout,
    QWidget,
)

from live_restore.acquisition import (
    FocusConfig,
    HoldConfig,
    HookConfig,
    HookStats,
    RestoreHook,
    StageError,
    build_hook,
    restorer_names,
)
from live_restore.focus import DefocusReading

from ._focus_widgets import DefocusPlot, FocusIndicator
from ._view import DisplayStats, LiveView

__all__ = ["LiveRestoreDock"]

log = logging.getLogger(__name__)

FOCUS_MODEL = "focus-est"
DISPLAY_IDLE_S = 3.0  # no MDA and no update for this long: the rate shown is the last run's


def _default_models(available: list[str]) -> list[str]:
    for name in ("dfcan-sr2x", "dfcan-sr2x-lite", "richardson-lucy"):
        if name in available:
            return [name]
    return available[:1]


class LiveRestoreDock(QWidget):
    """Dock widget: restoration controls, live statistics and the focus indicator.

    Parameters
    ----------
    viewer : napari.Viewer
    core : CMMCorePlus, or a callable that returns one
        The microscope whose acquisitions are restored. A callable is asked again whenever the
        dock needs the core while stopped, so the dock follows a front end that swaps cores
        (napari-micromanager does when a config is loaded); a running hook keeps its core.
    output : path, optional
        Folder for restored stores (``run-N`` per acquisition); empty: display only.
    models : list of str, optional
        Models ticked at start (default: DFCAN, else Richardson-Lucy).
    backend, process : str
        Initial choices.
    estimate_focus : bool
        Run the focus estimator on the newest frame (the indicator and the plot).
    """

    def __init__(
        self,
        viewer: Any,
        core: Any,
        output: str | Path | None = None,
        models: list[str] | None = None,
        backend: str = "auto",
        policy: str = "all",
        estimate_focus: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        from live_restore.inference import available_backends

        self.viewer = viewer
        self._core_source: Callable[[], Any] = core if callable(core) else lambda: core
        self.hook: RestoreHook | None = None
        self._hidden_for_grid: list[Any] = []  # other layers hidden while side by side
        self.view: LiveView | None = None
        self.last_report: Any = None
        self._closer: threading.Thread | None = None
        self._closer_timer = QTimer(self)
        self._closer_timer.setInterval(100)
        self._closer_timer.timeout.connect(self._check_closed)

        available = restorer_names()
        chosen = models if models is not None else _default_models(available)
        # a requested name the list lacks (a model folder, or a model this install does not
        # ship) is offered too; a wrong one fails at Start, with its reason
        available += [name for name in chosen if name not in available]
        self.models = QListWidget()
        for name in available:
            item = QListWidgetItem(name)
            item.setFlags(item.flags() | Qt.ItemFlag.ItemIsUserCheckable)
            item.setCheckState(Qt.CheckState.Checked if name in chosen else Qt.CheckState.Unchecked)
            self.models.addItem(item)
        self.models.setMaximumHeight(110)
        self.backend = QComboBox()
        # only what runs here: choosing tensorrt on a laptop would fail only at start
        self.backend.addItems(["auto", *available_backends()])
        self.backend.setCurrentText(backend)
        self.policy = QComboBox()
        self.policy.addItems(["all", "latest"])
        self.policy.setCurrentText(policy)
        self.policy.setToolTip(
            "all: every frame is restored and saved (catching up from the raw store);\n"
            "latest: the newest frame wins (display), skipped frames are counted"
        )
        self.executor = QComboBox()
        self.executor.setEditable(True)  # or a server: grpc://HOST:PORT
        self.executor.addItems(["thread", "process"])
        self.executor.setToolTip(
            "thread: in this process's restoration thread;\n"
            "process: a worker process that owns the models (the camera keeps its cores);\n"
            "grpc://HOST:8001: a Triton server started with `live-restore serve`"
        )
        self.interp_factor = QSpinBox()
        self.interp_factor.setRange(2, 16)
        self.interp_factor.setToolTip(
            "interp-t / interp-z: full-rate frames per acquired step (acquire every k-th time "
            "point or plane; k-1 are filled in)"
        )
        self.estimate_focus = QCheckBox(f"estimate focus ({FOCUS_MODEL})")
        self.estimate_focus.setChecked(estimate_focus)
        self.output = QLineEdit("" if output is None else str(output))
        self.output.setPlaceholderText("folder for restored stores (empty: display only)")
        self.start_button = QPushButton("Start")
        self.start_button.setCheckable(True)
        self.start_button.clicked.connect(self._on_start_clicked)
        self.side_by_side = QPushButton("Side by side")
        self.side_by_side.setCheckable(True)
        self.side_by_side.toggled.connect(self.set_side_by_side)

        settings = QFormLayout()
        settings.addRow("models", self.models)
        settings.addRow("backend", self.backend)
        settings.addRow("policy", self.policy)
        settings.addRow("run in", self.executor)
        settings.addRow("interpolate x", self.interp_factor)
        settings.addRow("save to", self.output)
        settings.addRow(self.estimate_focus)
        self.hold_focus = QCheckBox("hold focus (moves the focus stage)")
        self.hold_focus.setChecked(False)
        settings.addRow(self.hold_focus)
        buttons = QHBoxLayout()
        buttons.addWidget(self.start_button)
        buttons.addWidget(self.side_by_side)
        self.save_button = QPushButton("Save…")
        self.save_button.setToolTip("Save these settings as a hook config (acquire --hook-config)")
        self.save_button.clicked.connect(self._on_save_clicked)
        self.load_button = QPushButton("Load…")
        self.load_button.setToolTip("Load settings from a hook config file")
        self.load_button.clicked.connect(self._on_load_clicked)
        buttons.addWidget(self.save_button)
        buttons.addWidget(self.load_button)

        self.status = QLabel("stopped")
        self.status.setWordWrap(True)
        self.stats_labels: dict[str, QLabel] = {}
        stats_box = QGroupBox("live statistics")
        stats_form = QFormLayout(stats_box)
        keys = ("restored", "frames/s", "latency", "queue", "skipped", "failed", "display", "trust")
        for key in keys:
            self.stats_labels[key] = QLabel("-")
            stats_form.addRow(key, self.stats_labels[key])
        focus_box = QGroupBox("focus")
        focus_layout = QVBoxLayout(focus_box)
        self.focus_indicator = FocusIndicator()
        self.defocus_plot = DefocusPlot()
        focus_layout.addWidget(self.focus_indicator)
        focus_layout.addWidget(self.defocus_plot)
        self.last_error = QLabel("")
        self.last_error.setWordWrap(True)
        self.last_error.setStyleSheet("color: #ff7f0e")

        layout = QVBoxLayout(self)
        layout.addLayout(settings)
        layout.addLayout(buttons)
        layout.addWidget(self.status)
        layout.addWidget(stats_box)
        layout.addWidget(focus_box)
        layout.addWidget(self.last_error)
        layout.addStretch()

    # -- choices ----------------------------------------------------------------------------

    def chosen_models(self) -> list[str]:
        """The ticked models, in list order."""
        items = (self.models.item(i) for i in range(self.models.count()))
        return [it.text() for it in items if it and it.checkState() == Qt.CheckState.Checked]

    def hook_config(self) -> HookConfig:
        """The settings as a :class:`HookConfig` (ValueError on a bad choice)."""
        if not self.chosen_models():
            raise ValueError("tick at least one model")
        focus = None
        if self.estimate_focus.isChecked() or self.hold_focus.isChecked():
            hold = HoldConfig() if self.hold_focus.isChecked() else None
            # the window's focus is about the newest frame: behind, estimate every 4th
            focus = FocusConfig(estimator=FOCUS_MODEL, hold=hold, every_nth_when_behind=4)
        return HookConfig.model_validate(
            {
                "models": self.chosen_models(),
                "backend": self.backend.currentText(),
                "policy": self.policy.currentText(),
                "output": self.output.text().strip() or None,
                "progress": False,  # no terminal bar behind a window
                "focus": focus,
                "executor": self.executor.currentText().strip() or "thread",
                "interp_factor": self.interp_factor.value(),
            }
        )

    def apply_config(self, config: HookConfig) -> None:
        """Show ``config``'s choices in the controls (models it names are added if missing)."""
        items = [self.models.item(i) for i in range(self.models.count())]
        present = {item.text() for item in items if item is not None}
        for name in config.models:
            if name not in present:
                added = QListWidgetItem(name)
                added.setFlags(added.flags() | Qt.ItemFlag.ItemIsUserCheckable)
                self.models.addItem(added)
        for i in range(self.models.count()):
            row = self.models.item(i)
            if row is not None:
                ticked = row.text() in config.models
                row.setCheckState(Qt.CheckState.Checked if ticked else Qt.CheckState.Unchecked)
        self.backend.setCurrentText(str(config.backend))
        self.policy.setCurrentText(str(config.policy))
        self.executor.setCurrentText(config.executor)
        self.interp_factor.setValue(config.interp_factor)
        self.output.setText("" if config.output is None else str(config.output))
        self.estimate_focus.setChecked(config.focus is not None)
        self.hold_focus.setChecked(config.focus is not None and config.focus.hold is not None)

    def save_config(self, path: str | Path) -> Path:
        """Write the settings to ``path`` (YAML)."""
        return self.hook_config().save(path)

    def load_config(self, path: str | Path) -> HookConfig:
        """Read ``path`` and show its settings (ConfigError names what is wrong)."""
        config = HookConfig.from_file(path)
        self.apply_config(config)
        return config

    def _on_save_clicked(self) -> None:
        path, _ = QFileDialog.getSaveFileName(self, "Save hook config", "hook.yaml", "*.yaml")
        if path:
            try:
                self.status.setText(f"saved {self.save_config(path)}")
            except (ValueError, OSError) as e:
                self.status.setText(f"not saved: {e}")

    def _on_load_clicked(self) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Load hook config", "", "*.yaml *.yml *.json")
        if path:
            try:
                self.load_config(path)
                self.status.setText(f"loaded {path}")
            except ValueError as e:
                self.status.setText(f"not loaded: {e}")

    @property
    def core(self) -> Any:
        """The core a running hook follows, else the one the dock would start on now."""
        return self.hook.core if self.hook is not None else self._core_source()

    def set_side_by_side(self, on: bool) -> None:
        """Raw and restored in a grid of their own (on) or overlaid in world space (off).

        napari's grid gives every visible layer a cell, so the other layers shown when it turns
        on (napari-micromanager's preview, the user's own) are hidden, and shown again when it
        turns off. A layer added while it is on keeps its cell: hiding a plugin's layer as it
        is added, or each time the plugin shows it again, crashed Qt with napari-micromanager
        (it shows its preview from its own timer). Turning it on again tiles ours alone.
        """
        layers = self.viewer.layers
        if on and not self.viewer.canvas.grid.enabled:
            self._hide_foreign_layers()
        elif not on and self.viewer.canvas.grid.enabled:
            for layer in self._hidden_for_grid:
                if layer in layers:
                    layer.visible = True
            self._hidden_for_grid.clear()
        self.viewer.canvas.grid.enabled = bool(on)
        self.viewer.reset_view()  # one camera for every cell: zoom and pan stay in step
        if self.side_by_side.isChecked() != bool(on):
            self.side_by_side.setChecked(bool(on))

    def _hide_foreign_layers(self, event: Any = None) -> None:
        for layer in list(self.viewer.layers):
            if "live_restore" not in layer.metadata and layer.visible:
                layer.visible = False
                self._hidden_for_grid.append(layer)

    # -- start / stop -----------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """Whether a hook is open (restoring this core's acquisitions)."""
        return self.hook is not None

    def _on_start_clicked(self, checked: bool) -> None:
        if checked:
            self.start()
        else:
            self.stop()

    def start(self) -> bool:
        """Open the hook with the chosen settings; on a bad choice, say why and stay stopped."""
        if self.hook is not None or self._closer is not None:
            return self.hook is not None
        hook = None
        try:
            config = self.hook_config()
            hook = build_hook(self.core, config)
            hook.open()
        except Exception as e:  # a wrong model, backend or folder: shown, nothing started
            if hook is not None:
                hook.close()  # a worker process it started goes with it
            self.status.setText(f"not started: {e}")
            self.start_button.setChecked(False)
            log.warning("Live Restore not started: %s", e)
            return False
        self.hook = hook
        self.defocus_plot.clear()
        self.focus_indicator.show_reading(None)
        self.view = LiveView(
            self.viewer,
            hook,
            self.core,
            on_stats=self.show_stats,
            on_defocus=self.show_defocus,
            on_error=self.show_error,
            parent=self,
        )
        self.view.start()
        self._set_controls_enabled(False)
        self.start_button.setText("Stop")
        self.start_button.setChecked(True)
        where = f", saving to {config.output}" if config.output else " (display only)"
        self.status.setText(f"restoring every acquisition with {', '.join(config.models)}{where}")
        return True

    def stop(self) -> None:
        """Close the hook off the GUI thread; the view keeps showing until it has finished."""
        hook = self.hook
        if hook is None or self._closer is not None:
            return
        self.start_button.setEnabled(False)
        self.start_button.setText("finishing…")
        pending = hook.stats().frames_pending
        self.status.setText(f"finishing {pending} pending frames")
        self._closer = threading.Thread(target=hook.close, name="live-restore-close", daemon=True)
        self._closer.start()
        self._closer_timer.start()

    def _check_closed(self) -> None:
        if self._closer is None or self._closer.is_alive():
            return
        self._closer_timer.stop()
        self._closer = None
        self._closed()

    def _closed(self) -> None:
        hook, self.hook = self.hook, None
        if hook is None:
            return
        self.last_report = report = hook.report
        if self.view is not None:
            # the last frames and the final statistics: a plain tick shows statistics at most
            # twice a second, so a run shorter than that would be left reading "0 of 0"
            self.view.refresh()
            self.view.stop()
        self.status.setText(
            f"stopped: {report.frames_restored} of {report.frames_received} frames restored"
            f", {report.frames_failed} failed, {report.frames_skipped} skipped"
        )
        self._set_controls_enabled(True)
        self.start_button.setEnabled(True)
        self.start_button.setText("Start")
        self.start_button.setChecked(False)

    def close_hook(self, timeout_s: float = 10.0) -> None:
        """Close now, blocking up to ``timeout_s``; safe after the window's widgets are gone."""
        hook = self.hook
        if self._closer is not None:
            self._closer.join(timeout_s)
        elif hook is not None:
            hook.drain_timeout_s = timeout_s
            hook.close()
        self._closer = None
        try:
            self._closer_timer.stop()
            self._closed()
        except RuntimeError:  # the window closed first: its widgets are deleted, the hook is not
            if self.hook is not None:
                self.last_report, self.hook = self.hook.report, None

    def _set_controls_enabled(self, enabled: bool) -> None:
        for widget in (
            self.models,
            self.backend,
            self.policy,
            self.executor,
            self.interp_factor,
            self.output,
            self.estimate_focus,
            self.hold_focus,
            self.load_button,
        ):
            widget.setEnabled(enabled)

    # -- what the view reports (main thread) ---------------------------------------------------

    def show_stats(self, stats: HookStats, display: DisplayStats) -> None:
        """Fill the statistics box."""
        labels = self.stats_labels
        report = stats.report
        labels["restored"].setText(f"{report.frames_restored} of {report.frames_received}")
        labels["frames/s"].setText(f"{stats.throughput_fps:.1f}")
        labels["latency"].setText(
            f"p50 {stats.latency_p50_ms:.0f} ms, p99 {stats.latency_p99_ms:.0f} ms"
        )
        queue = f"{stats.frames_pending} frames ({stats.held_mb:.0f} MB held)"
        labels["queue"].setText(queue + (", paused" if stats.paused else ""))
        labels["skipped"].setText(str(report.frames_skipped))
        failed = str(report.frames_failed)
        if report.disabled_stages:
            failed += f" (disabled: {', '.join(report.disabled_stages)})"
        labels["failed"].setText(failed)
        ended = display.updates > 0 and not self.core.mda.is_running()
        idle = " (last run)" if ended and display.idle_s > DISPLAY_IDLE_S else ""
        labels["display"].setText(
            f"{display.updates_per_s:.1f} updates/s{idle}, frame to screen "
            f"p50 {display.screen_latency_p50_ms:.0f} ms"
        )
        labels["trust"].setText(self._trust_text())

    def _trust_text(self) -> str:
        """The newest frame's untrusted share per trust stage, and the threshold it uses."""
        from live_restore.acquisition import UNTRUSTED_FRACTION_OF_SPAN, untrusted_fraction

        if self.hook is None:
            return "-"
        parts = []
        for name, _scale in self.hook.stages:
            frame = self.hook.latest(name)
            if frame is None or frame.kind != "sigma" or frame.raw.size == 0:
                continue
            share = untrusted_fraction(frame.restored, frame.raw)
            if share is not None:
                parts.append(f"{100 * share:.1f}% untrusted (frame {frame.numbers[-1]})")
        if not parts:
            return "- (add MODEL+trust)"
        return "; ".join(parts) + f", where sigma > {UNTRUSTED_FRACTION_OF_SPAN:g} x the span"

    def show_defocus(self, reading: DefocusReading) -> None:
        """Update the indicator and the plot."""
        self.focus_indicator.show_reading(reading)
        self.defocus_plot.add(reading)

    def show_error(self, error: StageError) -> None:
        """Show the newest error (all of them are in the log and the frame table)."""
        where = f" frame {error.frame}" if error.frame is not None else ""
        self.last_error.setText(f"{error.stage}{where}: {error.kind}: {error.message}")
