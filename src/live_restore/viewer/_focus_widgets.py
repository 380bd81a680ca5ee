"""The dock's focus indicator and its plot of defocus over time.

Both only draw what they are given (``DefocusReading``s from the hook's focus estimator); they
never compute. The plot is painted with QPainter: a few hundred points, no plotting library on
the GUI thread.
"""

from __future__ import annotations

from collections import deque

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QPainter, QPaintEvent, QPen
from qtpy.QtWidgets import QLabel, QWidget

from live_restore.focus import DefocusReading

__all__ = ["DefocusPlot", "FocusIndicator", "focus_state"]

IN_FOCUS_COLOUR = "#2ca02c"
DEFOCUSED_COLOUR = "#d62728"
UNCERTAIN_COLOUR = "#7f7f7f"


def focus_state(
    reading: DefocusReading | None, threshold_um: float, min_confidence: float
) -> tuple[str, str]:
    """(text, colour) for one reading: in focus, defocused by N µm, or uncertain."""
    if reading is None:
        return "focus: no estimate yet", UNCERTAIN_COLOUR
    if reading.state:  # the focus monitor's verdict, with its hysteresis and cross-check
        where = (
            f"focal plane {reading.focal_plane_um:+.2f} µm"
            if reading.focal_plane_um is not None
            else f"{reading.defocus_um:+.2f} µm"
        )
        if reading.flagged:
            return f"OUT OF FOCUS ({where})", DEFOCUSED_COLOUR
        if reading.evidence == "uncertain":
            return f"focus: uncertain ({reading.note})", UNCERTAIN_COLOUR
        return f"in focus ({where})", IN_FOCUS_COLOUR
    if reading.confidence < min_confidence:
        return (
            f"focus: uncertain ({reading.defocus_um:+.2f} ± {reading.uncertainty_um:.2f} µm)",
            UNCERTAIN_COLOUR,
        )
    if abs(reading.defocus_um) <= threshold_um:
        return f"in focus ({reading.defocus_um:+.2f} µm)", IN_FOCUS_COLOUR
    return f"defocused by {reading.defocus_um:+.2f} µm", DEFOCUSED_COLOUR


class FocusIndicator(QLabel):
    """A coloured line: in focus / defocused by N µm / uncertain."""

    def __init__(
        self, threshold_um: float = 0.5, min_confidence: float = 0.3, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.threshold_um = threshold_um
        self.min_confidence = min_confidence
        self.show_reading(None)

    def show_reading(self, reading: DefocusReading | None) -> None:
        """Show ``reading`` (None: no estimate)."""
        text, colour = focus_state(reading, self.threshold_um, self.min_confidence)
        self.setText(text)
        self.setStyleSheet(f"color: white; background: {colour}; padding: 3px; font-weight: bold")


class DefocusPlot(QWidget):
    """Defocus (µm) of the last ``length`` readings; the in-focus band shaded."""

    def __init__(
        self, length: int = 300, threshold_um: float = 0.5, parent: QWidget | None = None
    ) -> None:
        super().__init__(parent)
        self.threshold_um = threshold_um
        self.readings: deque[DefocusReading] = deque(maxlen=length)
        self.setMinimumHeight(90)

    def add(self, reading: DefocusReading) -> None:
        """Append one reading and repaint (soon, on Qt's schedule)."""
        self.readings.append(reading)
        self.update()

    def clear(self) -> None:
        """Forget the readings."""
        self.readings.clear()
        self.update()

    def span_um(self) -> float:
        """Half-height of the plot: the largest |defocus| seen, at least twice the threshold."""
        peak = max((abs(r.defocus_um) for r in self.readings), default=0.0)
        return max(2 * self.threshold_um, peak * 1.1)

    def paintEvent(self, event: QPaintEvent | None) -> None:
        """Draw the band, the zero line and the readings."""
        painter = QPainter(self)
        try:
            self._paint(painter)
        finally:
            painter.end()

    def _paint(self, painter: QPainter) -> None:
        width, height = float(self.width()), float(self.height())
        painter.fillRect(QRectF(0, 0, width, height), QColor("#262930"))
        span = self.span_um()

        def y_of(defocus_um: float) -> float:
            return height / 2 - defocus_um / span * (height / 2 - 4)

        band = QRectF(QPointF(0, y_of(self.threshold_um)), QPointF(width, y_of(-self.threshold_um)))
        painter.fillRect(band, QColor(44, 160, 44, 60))
        painter.setPen(QPen(QColor("#888888"), 1, Qt.PenStyle.DashLine))
        painter.drawLine(QPointF(0, y_of(0)), QPointF(width, y_of(0)))
        painter.setPen(QColor("#cccccc"))
        painter.drawText(QPointF(4, 12), f"+{span:.1f} µm")
        painter.drawText(QPointF(4, height - 4), f"-{span:.1f} µm")
        if len(self.readings) < 1:
            return
        n = self.readings.maxlen or len(self.readings)
        step = width / max(n - 1, 1)
        start = width - step * (len(self.readings) - 1)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        previous: QPointF | None = None
        for i, reading in enumerate(self.readings):
            point = QPointF(start + i * step, y_of(reading.defocus_um))
            colour = IN_FOCUS_COLOUR if abs(reading.defocus_um) <= self.threshold_um else "#ff7f0e"
            painter.setPen(QPen(QColor(colour), 2))
            if previous is not None:
                painter.drawLine(previous, point)
            else:
                painter.drawPoint(point)
            previous = point
