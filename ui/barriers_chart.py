"""Barriers to work and how they changed across reviews ("distance travelled").

:func:`distance_travelled` turns barriers and their reviews into one series of
(date, severity) points per barrier; :class:`DistanceChart` draws them with QPainter (one
line per barrier, severity 1 to 5 up the side, review dates along the bottom) and
:func:`series_summary` gives the same information as text ("Housing: 5 → 2 over 3
reviews") for screen readers and for anyone who prefers words to a chart.

:class:`BarriersPanel` is the record's "Barriers to work" section: a table of barriers
with severity and actions, the chart and its text alternative, and a way to record a
review. It is dumb: ``render(barriers, reviews, today, ...)`` in, ``sig_save(list)`` out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from PySide6.QtCore import QPointF, QRectF, Qt, Signal
from PySide6.QtGui import QColor, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QAbstractItemView, QFormLayout, QGroupBox, QHBoxLayout, QHeaderView, QLabel, QLineEdit,
    QListWidget, QPushButton, QSizePolicy, QSpinBox, QTableWidget, QTableWidgetItem,
    QVBoxLayout, QWidget,
)

from keyworker_app import validators
from keyworker_app.codelists import CodeListError, load_codelist
from keyworker_app.records import Barrier, BarrierReview, BarrierStatus, Record

SEVERITY_MIN = 1
SEVERITY_MAX = 5
# Colours far enough apart to tell lines apart; each line also has its own marker shape.
_PALETTE = ("#1d70b8", "#d4351c", "#00703c", "#f47738", "#4c2c92", "#28a197", "#b58840",
            "#d53880", "#505a5f", "#0b0c0c")


def category_label(code: str) -> str:
    """The plain-English name of a barrier category ('' codes read 'Barrier')."""
    try:
        return load_codelist("barrier_category").label(code)
    except (KeyError, CodeListError):
        return code.replace("_", " ").capitalize() or "Barrier"


@dataclass(frozen=True)
class BarrierSeries:
    """One barrier's severity over time: when identified, then at each review."""

    barrier_id: str
    label: str
    points: tuple[tuple[date, int], ...]

    @property
    def reviews(self) -> int:
        """How many reviews after the first assessment."""
        return max(len(self.points) - 1, 0)


def distance_travelled(barriers: Iterable[Barrier], reviews: Iterable[BarrierReview]) -> list[BarrierSeries]:
    """A series per barrier: its severity when identified, then each review by date."""
    by_barrier: dict[str, list[BarrierReview]] = {}
    for review in reviews:
        if review.reviewed_on is not None:
            by_barrier.setdefault(review.barrier_id, []).append(review)
    series = []
    for barrier in barriers:
        points: list[tuple[date, int]] = []
        if barrier.identified_on is not None:
            points.append((barrier.identified_on, barrier.severity))
        for review in sorted(by_barrier.get(barrier.id, []), key=lambda r: (r.reviewed_on, r.version)):
            assert review.reviewed_on is not None
            points.append((review.reviewed_on, review.severity))
        series.append(BarrierSeries(barrier.id, category_label(barrier.category), tuple(points)))
    return series


def series_summary(series: BarrierSeries) -> str:
    """E.g. 'Housing: 5 → 2 over 3 reviews' (what the chart shows, in words)."""
    if not series.points:
        return f"{series.label}: no severity recorded yet"
    first, last = series.points[0][1], series.points[-1][1]
    if series.reviews == 0:
        return f"{series.label}: {first}, not reviewed yet"
    plural = "review" if series.reviews == 1 else "reviews"
    return f"{series.label}: {first} → {last} over {series.reviews} {plural}"


def current_severity(barrier: Barrier, reviews: Iterable[BarrierReview]) -> int:
    """The barrier's severity at its latest review (or when identified, if never reviewed)."""
    mine = [r for r in reviews if r.barrier_id == barrier.id and r.reviewed_on is not None]
    if not mine:
        return barrier.severity
    return max(mine, key=lambda r: (r.reviewed_on, r.version)).severity


class DistanceChart(QWidget):
    """A line chart of barrier severity by review date, drawn with QPainter."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._series: list[BarrierSeries] = []
        self.setMinimumSize(420, 240)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.setAccessibleName("Distance travelled chart")

    def set_series(self, series: Sequence[BarrierSeries]) -> None:
        self._series = list(series)
        summary = "; ".join(series_summary(s) for s in self._series) or "No barriers recorded yet."
        self.setAccessibleDescription(summary)
        self.setToolTip(summary)
        self.update()

    @property
    def series(self) -> list[BarrierSeries]:
        return list(self._series)

    def _dates(self) -> list[date]:
        return sorted({d for s in self._series for d, _ in s.points})

    def plot_area(self) -> QRectF:
        """Where the lines are drawn, inside the axes and the legend."""
        return QRectF(48, 16, max(self.width() - 48 - 170, 60), max(self.height() - 16 - 40, 40))

    def points_for(self, series: BarrierSeries) -> list[QPointF]:
        """Where each of the series' points is drawn, in widget coordinates."""
        dates = self._dates()
        area = self.plot_area()
        if not dates:
            return []
        span = max((dates[-1] - dates[0]).days, 1)

        def x_of(day: date) -> float:
            if len(dates) == 1:
                return area.center().x()
            return area.left() + area.width() * (day - dates[0]).days / span

        def y_of(severity: int) -> float:
            fraction = (severity - SEVERITY_MIN) / (SEVERITY_MAX - SEVERITY_MIN)
            return area.bottom() - area.height() * fraction

        return [QPointF(x_of(d), y_of(s)) for d, s in series.points]

    def paintEvent(self, event: QPaintEvent) -> None:  # noqa: N802 (Qt override)
        painter = QPainter(self)
        painter.setRenderHint(QPainter.RenderHint.Antialiasing)
        painter.fillRect(self.rect(), QColor("white"))
        area = self.plot_area()
        axis = QPen(QColor("#0b0c0c"), 1)
        grid = QPen(QColor("#dddddd"), 1, Qt.PenStyle.DotLine)
        for severity in range(SEVERITY_MIN, SEVERITY_MAX + 1):
            y = area.bottom() - area.height() * (severity - SEVERITY_MIN) / (SEVERITY_MAX - SEVERITY_MIN)
            painter.setPen(grid)
            painter.drawLine(QPointF(area.left(), y), QPointF(area.right(), y))
            painter.setPen(axis)
            painter.drawText(QRectF(4, y - 8, 36, 16), Qt.AlignmentFlag.AlignRight, str(severity))
        painter.setPen(axis)
        painter.drawLine(area.bottomLeft(), area.bottomRight())
        painter.drawLine(area.bottomLeft(), area.topLeft())
        painter.save()
        painter.translate(12, area.center().y())
        painter.rotate(-90)
        painter.drawText(QRectF(-60, -10, 120, 16), Qt.AlignmentFlag.AlignCenter, "Severity")
        painter.restore()
        dates = self._dates()
        if not dates:
            painter.drawText(area, Qt.AlignmentFlag.AlignCenter, "No barriers recorded yet.")
            painter.end()
            return
        probe = BarrierSeries("", "", tuple((d, SEVERITY_MIN) for d in dates))
        for point, day in zip(self.points_for(probe), dates):
            painter.drawText(QRectF(point.x() - 40, area.bottom() + 4, 80, 16),
                             Qt.AlignmentFlag.AlignCenter, day.strftime("%d %b %y"))
        for index, series in enumerate(self._series):
            colour = QColor(_PALETTE[index % len(_PALETTE)])
            painter.setPen(QPen(colour, 2.5))
            points = self.points_for(series)
            for start, end in zip(points, points[1:]):
                painter.drawLine(start, end)
            painter.setBrush(colour)
            for point in points:
                if index % 2:
                    painter.drawRect(QRectF(point.x() - 4, point.y() - 4, 8, 8))
                else:
                    painter.drawEllipse(point, 4, 4)
            legend_y = area.top() + 18 * index
            painter.drawLine(QPointF(area.right() + 12, legend_y + 8), QPointF(area.right() + 30, legend_y + 8))
            painter.setPen(axis)
            painter.drawText(QRectF(area.right() + 34, legend_y, 130, 16),
                             Qt.AlignmentFlag.AlignLeft, series.label)
        painter.end()


class BarriersPanel(QWidget):
    """Barriers with severity and actions, the distance-travelled chart, and a review form."""

    sig_save = Signal(list)
    sig_add_barriers = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._barriers: list[Barrier] = []
        self._reviews: list[BarrierReview] = []
        self._participant_id = ""
        self._today = date.today()
        self._spins: dict[str, QSpinBox] = {}

        self.table = QTableWidget(0, 4, self)
        self.table.setHorizontalHeaderLabels(["Barrier", "Severity now (1–5)", "Status", "Actions"])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.horizontalHeader().setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName("Barriers to work")
        self.table.setTabKeyNavigation(False)

        self.add_button = QPushButton("Record barriers…", self)
        self.add_button.setAccessibleName("Record barriers to work")
        self.add_button.clicked.connect(self.sig_add_barriers)

        self.chart = DistanceChart(self)
        self.summary = QListWidget(self)
        self.summary.setAccessibleName("Distance travelled, in words")
        self.summary.setMaximumHeight(110)

        self.review_box = QGroupBox("Record a review", self)
        review_layout = QVBoxLayout(self.review_box)
        date_form = QFormLayout()
        self.review_form = QFormLayout()  # one severity box per open barrier, rebuilt on render
        self.review_date = QLineEdit(self.review_box)
        self.review_date.setPlaceholderText("DD/MM/YYYY")
        self.review_date.setAccessibleName("Date of the review (required)")
        date_form.addRow(QLabel("Date of the review *"), self.review_date)
        self.review_error = QLabel(self.review_box)
        self.review_error.setStyleSheet("color: #d4351c; font-weight: bold;")
        self.review_error.hide()
        self.save_review = QPushButton("Save review", self.review_box)
        self.save_review.setAccessibleName("Save the barrier review")
        self.save_review.clicked.connect(self.submit_review)
        review_layout.addLayout(date_form)
        review_layout.addLayout(self.review_form)
        review_layout.addWidget(self.review_error)
        review_layout.addWidget(self.save_review, 0, Qt.AlignmentFlag.AlignLeft)

        buttons = QHBoxLayout()
        buttons.addWidget(self.add_button)
        buttons.addStretch(1)
        layout = QVBoxLayout(self)
        layout.addLayout(buttons)
        layout.addWidget(self.table, 1)
        layout.addWidget(QLabel("How they changed across reviews:"))
        layout.addWidget(self.chart, 2)
        layout.addWidget(self.summary)
        layout.addWidget(self.review_box)

    def render(self, participant_id: str, barriers: Sequence[Barrier],
               reviews: Sequence[BarrierReview], today: date) -> None:
        """Show these barriers and reviews."""
        self._participant_id = participant_id
        self._barriers = list(barriers)
        self._reviews = list(reviews)
        self._today = today
        self.table.setRowCount(len(self._barriers))
        for row, barrier in enumerate(self._barriers):
            cells = (category_label(barrier.category) + (f": {barrier.description}" if barrier.description else ""),
                     str(current_severity(barrier, self._reviews)),
                     barrier.status.value.capitalize(),
                     "; ".join(barrier.actions))
            for column, text in enumerate(cells):
                self.table.setItem(row, column, QTableWidgetItem(text))
        series = distance_travelled(self._barriers, self._reviews)
        self.chart.set_series(series)
        self.summary.clear()
        self.summary.addItems([series_summary(s) for s in series] or ["No barriers recorded yet."])
        self._build_review_rows()

    def _build_review_rows(self) -> None:
        while self.review_form.rowCount():
            self.review_form.removeRow(0)
        self._spins.clear()
        open_barriers = [b for b in self._barriers if b.status is not BarrierStatus.RESOLVED]
        for barrier in open_barriers:
            spin = QSpinBox(self.review_box)
            spin.setRange(SEVERITY_MIN, SEVERITY_MAX)
            spin.setValue(current_severity(barrier, self._reviews))
            label = category_label(barrier.category)
            spin.setAccessibleName(f"{label}: severity now, 1 a little to 5 a lot")
            self.review_form.addRow(QLabel(f"{label} (1–5)"), spin)
            self._spins[barrier.id] = spin
        self.review_box.setHidden(not open_barriers)
        chain: list[QWidget] = [self.review_date, *self._spins.values(), self.save_review]
        for first, second in zip(chain, chain[1:]):
            QWidget.setTabOrder(first, second)

    def severity_input(self, barrier_id: str) -> QSpinBox:
        """The severity box for one barrier in the review form."""
        return self._spins[barrier_id]

    def submit_review(self) -> bool:
        """Emit a BarrierReview per open barrier (and any barrier whose status changes)."""
        try:
            reviewed_on = validators.date_value(self.review_date.text(), "reviewed_on")
        except validators.ValidationError as err:
            self.review_error.setText(f"Date of the review: {err.message}")
            self.review_error.show()
            self.review_date.setAccessibleDescription(err.message)
            self.review_date.setFocus()
            return False
        if reviewed_on > self._today:
            self.review_error.setText("Date of the review: it can't be in the future.")
            self.review_error.show()
            self.review_date.setFocus()
            return False
        self.review_error.hide()
        self.review_date.setAccessibleDescription("")
        records: list[Record] = []
        for barrier in self._barriers:
            spin = self._spins.get(barrier.id)
            if spin is None:
                continue
            severity = spin.value()
            records.append(BarrierReview(participant_id=self._participant_id, barrier_id=barrier.id,
                                         reviewed_on=reviewed_on, severity=severity))
            status = BarrierStatus.IMPROVING if severity < barrier.severity else BarrierStatus.OPEN
            if status is not barrier.status:
                records.append(barrier.replace(status=status))
        if records:
            self.sig_save.emit(records)
        return bool(records)


def barriers_from_answers(answers: Mapping[str, Any], participant_id: str,
                          existing: Sequence[Barrier] = ()) -> list[Record]:
    """Barrier records from a submitted ``barriers_to_work`` form.

    One per category chosen, from ``<category>_description``, ``_severity`` and
    ``_actions``. A category already recorded as an unresolved barrier keeps its first
    severity (the start of its distance travelled): its description and actions are
    updated and the new severity is recorded as a review on the form's date.
    """
    identified_on = answers.get("identified_on")
    by_category = {b.category: b for b in existing if b.status is not BarrierStatus.RESOLVED}
    out: list[Record] = []
    for category in answers.get("categories", ()) or ():
        actions_text = str(answers.get(f"{category}_actions", "") or "")
        description = str(answers.get(f"{category}_description", "") or "")
        severity = int(answers.get(f"{category}_severity", 3) or 3)
        actions = tuple(line.strip() for line in actions_text.splitlines() if line.strip())
        base = by_category.get(category)
        if base is None:
            out.append(Barrier(participant_id=participant_id, category=category,
                               description=description, severity=severity, actions=actions,
                               identified_on=identified_on))
            continue
        out.append(base.replace(description=description or base.description,
                                actions=actions or base.actions))
        out.append(BarrierReview(participant_id=participant_id, barrier_id=base.id,
                                 reviewed_on=identified_on, severity=severity))
    return out
