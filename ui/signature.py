"""A signature pad: a participant signs with a mouse, a pen (tablet) or a finger (touch).

The strokes stay in memory; :meth:`SignaturePad.to_png` renders them to PNG bytes in a
``QBuffer`` (never a file), and :func:`signature_attachment` wraps those bytes as an
:class:`~keyworker_app.records.Attachment` for the store. A keyboard-only keyworker cannot
sign, so every screen that offers the pad also offers a keyboard alternative (verbal
consent, or "remote delivery: signature owed").
"""

from __future__ import annotations

import hashlib

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, QPointF, Qt, Signal
from PySide6.QtGui import (
    QColor, QImage, QMouseEvent, QPainter, QPainterPath, QPaintEvent, QPen, QTabletEvent,
    QTouchEvent,
)
from PySide6.QtWidgets import QHBoxLayout, QLabel, QPushButton, QSizePolicy, QVBoxLayout, QWidget

from keyworker_app.records import Attachment

PNG_MEDIA_TYPE = "image/png"
_INK = QColor(20, 20, 60)
_PEN_WIDTH = 2.5


def signature_attachment(png: bytes, participant_id: str, name: str,
                         attachment_id: str | None = None) -> Attachment:
    """An attachment holding a signature image, with its SHA-256 recorded."""
    attachment = Attachment(participant_id=participant_id, name=name, media_type=PNG_MEDIA_TYPE,
                            sha256=hashlib.sha256(png).hexdigest(), content=png)
    return attachment if attachment_id is None else attachment.replace(id=attachment_id)


class SignaturePad(QWidget):
    """Captures strokes from mouse, tablet and touch events; emits ``sig_changed`` after each."""

    sig_changed = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._strokes: list[list[QPointF]] = []
        self._drawing = False
        self.setAttribute(Qt.WidgetAttribute.WA_AcceptTouchEvents, True)
        self.setMinimumSize(320, 120)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)  # nothing to do with the keyboard here
        self.setAccessibleName("Signature pad")
        self.setAccessibleDescription(
            "The participant signs here with a mouse, pen or finger. "
            "Use the clear button to start again.")

    # --- state -----------------------------------------------------------------------

    @property
    def strokes(self) -> list[list[QPointF]]:
        """The strokes drawn so far (each a list of points in widget coordinates)."""
        return [list(s) for s in self._strokes]

    def is_empty(self) -> bool:
        """True until a stroke of at least one point has been drawn."""
        return not any(self._strokes)

    def clear(self) -> None:
        """Forget every stroke."""
        self._strokes.clear()
        self._drawing = False
        self.update()
        self.sig_changed.emit()

    # --- input -----------------------------------------------------------------------

    def _begin(self, point: QPointF) -> None:
        self._strokes.append([point])
        self._drawing = True
        self.update()

    def _extend(self, point: QPointF) -> None:
        if self._drawing and self._strokes:
            self._strokes[-1].append(point)
            self.update()

    def _end(self, point: QPointF) -> None:
        if self._drawing:
            self._extend(point)
            self._drawing = False
            self.sig_changed.emit()

    def mousePressEvent(self, event: QMouseEvent) -> None:  # noqa: N802 (Qt override)
        if event.button() == Qt.MouseButton.LeftButton:
            self._begin(event.position())
        event.accept()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._extend(event.position())
        event.accept()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:  # noqa: N802
        self._end(event.position())
        event.accept()

    def tabletEvent(self, event: QTabletEvent) -> None:  # noqa: N802
        kind = event.type()
        if kind == QTabletEvent.Type.TabletPress:
            self._begin(event.position())
        elif kind == QTabletEvent.Type.TabletMove:
            self._extend(event.position())
        elif kind == QTabletEvent.Type.TabletRelease:
            self._end(event.position())
        event.accept()  # accepted, so Qt does not also send a synthetic mouse event

    def event(self, event: object) -> bool:
        if isinstance(event, QTouchEvent):
            points = event.points()
            if points:
                where = points[0].position()
                kind = event.type()
                if kind == QTouchEvent.Type.TouchBegin:
                    self._begin(where)
                elif kind == QTouchEvent.Type.TouchUpdate:
                    self._extend(where)
                else:
                    self._end(where)
            event.accept()
            return True
        return super().event(event)  # type: ignore[arg-type]

    # --- drawing ---------------------------------------------------------------------

    def _paint_strokes(self, painter: QPainter) -> None:
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.setPen(QPen(_INK, _PEN_WIDTH, Qt.PenStyle.SolidLine, Qt.PenCapStyle.RoundCap,
                            Qt.PenJoinStyle.RoundJoin))
        for stroke in self._strokes:
            if len(stroke) == 1:
                painter.drawPoint(stroke[0])
                continue
            path = QPainterPath(stroke[0])
            for point in stroke[1:]:
                path.lineTo(point)
            painter.drawPath(path)

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802
        painter = QPainter(self)
        painter.fillRect(self.rect(), QColor("white"))
        painter.setPen(QPen(QColor(150, 150, 150), 1, Qt.PenStyle.DashLine))
        baseline = self.height() - 24
        painter.drawLine(12, baseline, self.width() - 12, baseline)
        self._paint_strokes(painter)
        painter.end()

    def to_png(self) -> bytes:
        """The signature as PNG bytes, rendered in memory (white background, dark ink)."""
        image = QImage(self.size(), QImage.Format.Format_RGB32)
        image.fill(QColor("white"))
        painter = QPainter(image)
        self._paint_strokes(painter)
        painter.end()
        data = QByteArray()
        buffer = QBuffer(data)
        buffer.open(QIODevice.OpenModeFlag.WriteOnly)
        image.save(buffer, "PNG")
        buffer.close()
        return bytes(data.data())


class SignatureBox(QWidget):
    """A signature pad with its instructions and a Clear button."""

    sig_changed = Signal()

    def __init__(self, label: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.pad = SignaturePad(self)
        self.pad.setAccessibleName(f"{label}: signature pad")
        self.clear_button = QPushButton("Clear signature", self)
        self.clear_button.setAccessibleName(f"Clear {label.lower()}")
        self.clear_button.clicked.connect(self.pad.clear)
        hint = QLabel("Sign with a mouse, pen or finger in the box.", self)
        hint.setWordWrap(True)
        row = QHBoxLayout()
        row.addWidget(hint, 1)
        row.addWidget(self.clear_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.pad)
        layout.addLayout(row)
        self.pad.sig_changed.connect(self.sig_changed)

    def is_empty(self) -> bool:
        return self.pad.is_empty()

    def clear(self) -> None:
        self.pad.clear()

    def to_png(self) -> bytes:
        return self.pad.to_png()
