"""The caseload screen: search as you type, filters, the list and its count.

A dumb widget over :class:`ui.models.QtCaseloadModel`: it turns what the keyworker types
and ticks into a :class:`CaseloadFilter` (``sig_filter_changed``) and says which
participant to open (``sig_open``) or that a new one should be registered
(``sig_new_participant``). It never touches the store; the window applies the filter.

Also here: :class:`NewParticipantDialog`, the short registration that puts a person on the
caseload (the full registration form is filled in afterwards from their record).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Any, Callable

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QAbstractItemView, QCheckBox, QComboBox, QDialog, QDialogButtonBox, QFormLayout, QHBoxLayout, QHeaderView, QLabel, QLineEdit, QPlainTextEdit, QPushButton, QTableView,
    QVBoxLayout, QWidget,
)

from keyworker_app import validators
from keyworker_app.records import ReferralSource
from keyworker_app.validators import ValidationError

from .flow import flow_widget
from .models import STATUS_LABELS, CaseloadFilter, QtCaseloadModel
from .start import Banner

#: Wait this long after the last keystroke before searching, so fast typing runs one query
#: rather than one per letter. Short enough to feel instant.
SEARCH_DEBOUNCE_MS = 120

#: Columns are as wide as their heading and the longest of this many first rows.
SIZED_FROM_ROWS = 25
#: Room either side of a cell's text (pixels), as the table's style leaves it.
CELL_PADDING = 10

#: A search that takes longer than this says "Searching…"; a quicker one shows nothing.
SEARCHING_SHOWN_AFTER_MS = 150


def _labelled(text: str, widget: QWidget) -> QWidget:
    """A label and its box kept together on one row (the label's mnemonic focuses the box)."""
    holder = QWidget()
    row = QHBoxLayout(holder)
    row.setContentsMargins(0, 0, 0, 0)
    label = QLabel(text, holder)
    label.setBuddy(widget)
    row.addWidget(label)
    row.addWidget(widget)
    return holder


class _CaseloadTable(QTableView):
    """The list; Enter opens the selected participant (double-click does too)."""

    sig_activate = Signal(int)

    def keyPressEvent(self, event: QKeyEvent) -> None:  # noqa: N802 - Qt's name
        if event.key() in (Qt.Key.Key_Return, Qt.Key.Key_Enter) and self.currentIndex().isValid():
            self.sig_activate.emit(self.currentIndex().row())
            return
        super().keyPressEvent(event)


class CaseloadView(QWidget):
    """Search box, filters, count and table. ``set_model`` gives it the rows to show."""

    sig_filter_changed = Signal(object)   # CaseloadFilter
    sig_open = Signal(str)                # participant id
    sig_new_participant = Signal()

    def __init__(self, parent: QWidget | None = None, debounce_ms: int = SEARCH_DEBOUNCE_MS) -> None:
        super().__init__(parent)
        self._model: QtCaseloadModel | None = None
        self._filter = CaseloadFilter()
        self._sized = False

        self.search = QLineEdit()
        self.search.setPlaceholderText("Search by name, NI number, postcode or participant ref")
        self.search.setAccessibleName("Search the caseload")
        self.search.setClearButtonEnabled(True)
        self.new_button = QPushButton("&New participant")
        self.new_button.setAccessibleName("Register a new participant")
        self.new_button.setToolTip("Register a new participant (Ctrl+N)")

        self.programme = QComboBox()
        self.programme.setAccessibleName("Programme filter")
        self.status = QComboBox()
        self.status.setAccessibleName("Status filter")
        self.status.addItem("Any status", "")
        for value, label in STATUS_LABELS.items():
            self.status.addItem(label, str(value))
        self.review_due = QCheckBox("Review due")
        self.review_due.setToolTip("Reviews overdue or due in the next 7 days")
        self.consent_missing = QCheckBox("Consent missing")
        self.consent_missing.setToolTip("No consent recorded as given")
        self.signature_owed = QCheckBox("Signature owed")
        self.signature_owed.setToolTip("An ESF participant form is waiting for the participant's signature")
        self.unsynced = QCheckBox("Not yet sent")
        self.unsynced.setToolTip("Changes on this laptop waiting to be sent at the next sync")
        self.quarantined = QCheckBox("Sync problem")
        self.quarantined.setToolTip("Something was set aside at sync and needs you to look at it")
        self.flag_boxes: dict[str, QCheckBox] = {
            "review_due": self.review_due, "consent_missing": self.consent_missing,
            "signature_owed": self.signature_owed, "unsynced": self.unsynced,
            "quarantined": self.quarantined,
        }
        for box in self.flag_boxes.values():
            box.setAccessibleName(f"Show only: {box.text()}")
        self.clear_button = QPushButton("Clear filters")
        self.clear_button.setAccessibleName("Clear search and filters")
        self.count = QLabel()
        self.count.setAccessibleName("Number of participants shown")
        self.count.setProperty("role", "hint")
        self.table = _CaseloadTable()
        self.table.setAccessibleName("Caseload")
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(False)  # one line a row: cut short with "…", not wrapped (and quicker to paint)
        self.table.setSortingEnabled(True)
        self.table.setTabKeyNavigation(False)
        self.table.verticalHeader().hide()
        self.table.horizontalHeader().setStretchLastSection(True)
        self.table.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        self.empty = QLabel()
        self.empty.setProperty("role", "hint")
        self.empty.setWordWrap(True)
        self.empty.hide()

        for combo in (self.programme, self.status):
            # Programme names are long: the box may be narrower than the longest, the list is not.
            combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
            combo.setMinimumContentsLength(12)
        self.searching = QLabel("Searching…")
        self.searching.setAccessibleName("Searching")
        self.searching.setProperty("role", "hint")
        self.searching.hide()
        self._searching_delay = QTimer(self)
        self._searching_delay.setSingleShot(True)
        self._searching_delay.setInterval(SEARCHING_SHOWN_AFTER_MS)
        self._searching_delay.timeout.connect(self.searching.show)

        top = QHBoxLayout()
        top.addWidget(self.search, 1)
        top.addWidget(self.new_button)
        # Filters flow onto more rows when the list is narrow (an open record, 150% scaling).
        choices = flow_widget(_labelled("&Programme", self.programme), _labelled("S&tatus", self.status),
                              parent=self)
        flags = flow_widget(QLabel("Show only:"), *self.flag_boxes.values(), self.clear_button, parent=self)
        counts = QHBoxLayout()
        counts.addWidget(self.count)
        counts.addWidget(self.searching)
        counts.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 8, 8, 8)
        layout.addLayout(top)
        layout.addWidget(choices)
        layout.addWidget(flags)
        layout.addLayout(counts)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.empty)

        self._debounce = QTimer(self)
        self._debounce.setSingleShot(True)
        self._debounce.setInterval(debounce_ms)
        self._debounce.timeout.connect(self._emit_filter)
        self.search.textChanged.connect(lambda _t: self._debounce.start())
        self.search.returnPressed.connect(self._search_now_and_focus_list)
        self.programme.currentIndexChanged.connect(lambda _i: self._emit_filter())
        self.status.currentIndexChanged.connect(lambda _i: self._emit_filter())
        for box in self.flag_boxes.values():
            box.toggled.connect(lambda _c: self._emit_filter())
        self.clear_button.clicked.connect(self.clear_filters)
        self.new_button.clicked.connect(self.sig_new_participant)
        self.table.doubleClicked.connect(lambda index: self._open_row(index.row()))
        self.table.sig_activate.connect(self._open_row)

        chain: list[QWidget] = [self.search, self.new_button, self.programme, self.status,
                                *self.flag_boxes.values(), self.clear_button, self.table]
        for first, second in zip(chain, chain[1:]):
            self.setTabOrder(first, second)

    # --- data in --------------------------------------------------------------------

    def set_model(self, model: QtCaseloadModel) -> None:
        self._model = model
        self.table.setModel(model)
        model.sig_total_changed.connect(self._show_count)
        model.modelReset.connect(self._after_reset)
        model.sig_busy.connect(self._show_busy)
        self.table.horizontalHeader().setSortIndicator(
            model.sort_column(), Qt.SortOrder.DescendingOrder if model.filter.descending
            else Qt.SortOrder.AscendingOrder)
        self._show_count(model.total)
        self._size_columns()

    def set_programmes(self, programmes: list[tuple[str, str]]) -> None:
        """``(programme id, name)`` pairs for the programme filter."""
        self.programme.blockSignals(True)
        self.programme.clear()
        self.programme.addItem("All programmes", "")
        for programme_id, name in programmes:
            self.programme.addItem(name, programme_id)
        self.programme.blockSignals(False)

    # --- data out -------------------------------------------------------------------

    def current_filter(self) -> CaseloadFilter:
        sort = self._model.filter if self._model is not None else self._filter
        return CaseloadFilter(
            text=self.search.text(),
            programme=str(self.programme.currentData() or ""),
            status=str(self.status.currentData() or ""),
            sort=sort.sort, descending=sort.descending,
            **{name: box.isChecked() for name, box in self.flag_boxes.items()},
        )

    @property
    def typing(self) -> bool:
        """Whether a search is waiting for the typing pause to end."""
        return self._debounce.isActive()

    def search_now(self) -> None:
        """Apply the search without waiting for the typing pause."""
        self._debounce.stop()
        self._emit_filter()

    def clear_filters(self) -> None:
        for widget in (self.search, self.programme, self.status, *self.flag_boxes.values()):
            widget.blockSignals(True)
        self.search.clear()
        self.programme.setCurrentIndex(0)
        self.status.setCurrentIndex(0)
        for box in self.flag_boxes.values():
            box.setChecked(False)
        for widget in (self.search, self.programme, self.status, *self.flag_boxes.values()):
            widget.blockSignals(False)
        self.search_now()

    def focus_search(self) -> None:
        self.search.setFocus()
        self.search.selectAll()

    def select_participant(self, participant_id: str) -> None:
        if self._model is None:
            return
        row = self._model.row_of(participant_id)
        if row >= 0:
            self.table.selectRow(row)
            self.table.scrollTo(self._model.index(row, 0))

    # --- internals ------------------------------------------------------------------

    def _emit_filter(self) -> None:
        self._filter = self.current_filter()
        self.sig_filter_changed.emit(self._filter)

    def _search_now_and_focus_list(self) -> None:
        self.search_now()
        if self._model is not None and self._model.rowCount():
            self.table.setFocus()
            self.table.selectRow(0)

    def _open_row(self, row: int) -> None:
        if self._model is not None and 0 <= row < self._model.rowCount():
            self.sig_open.emit(self._model.participant_id(row))

    def _show_count(self, total: int) -> None:
        if total < 0:  # a long filtered list: its first rows are in, its count is coming
            self.count.setText("Counting…")
            self.empty.hide()
            return
        word = "participant" if total == 1 else "participants"
        filtered = self.current_filter()
        narrowed = bool(filtered.text.strip() or filtered.programme or filtered.status
                        or any(b.isChecked() for b in self.flag_boxes.values()))
        self.count.setText(f"{total:,} {word}" + (" match" + ("es" if total == 1 else "")
                                                  if narrowed else " on your caseload"))
        if total == 0:
            self.empty.setText("Nobody matches. Check the spelling, or press Clear filters."
                               if narrowed else
                               "Your caseload is empty. Press New participant (Ctrl+N) to register "
                               "someone, or wait for referrals to arrive at the next sync.")
            self.empty.show()
        else:
            self.empty.hide()

    def _show_busy(self, busy: bool) -> None:
        """'Searching…' only when a search is slow enough to notice, so quick ones never flicker."""
        if busy:
            self._searching_delay.start()
        else:
            self._searching_delay.stop()
            self.searching.hide()

    def _after_reset(self) -> None:
        if self._model is not None and not self._sized and self._model.rowCount():
            self._sized = True
            self._size_columns()
        if self._model is not None:
            self.table.horizontalHeader().setSortIndicator(
                self._model.sort_column(), Qt.SortOrder.DescendingOrder if self._model.filter.descending
                else Qt.SortOrder.AscendingOrder)

    def _size_columns(self) -> None:
        """Fit columns to their heading and the first rows (never all 100,000).

        Measured with the font's metrics rather than ``resizeColumnsToContents``, which
        styles every cell it measures: that made the first list after unlocking a pause.
        """
        header = self.table.horizontalHeader()
        model = self.table.model()
        if model is None:
            return
        metrics = self.table.fontMetrics()
        rows = min(model.rowCount(), SIZED_FROM_ROWS)
        for column in range(header.count() - 1):
            texts = (model.data(model.index(row, column)) for row in range(rows))
            widest = max((metrics.horizontalAdvance(str(t)) for t in texts if t), default=0)
            self.table.setColumnWidth(column, min(max(widest + CELL_PADDING, header.sectionSizeHint(column)) + 12,
                                                  320))


# --- registering a new participant ------------------------------------------------------

@dataclass(frozen=True)
class Registration:
    """What the short registration collects, already checked and in stored form."""

    programme: str
    given_name: str
    family_name: str
    date_of_birth: date
    ni_number: str
    postcode: str
    phone: str
    email: str
    referral_source: str
    referral_reason: str


_SOURCE_LABELS: dict[str, str] = {
    ReferralSource.NHS_TRUST: "NHS trust",
    ReferralSource.LOCAL_AUTHORITY: "Local authority",
    ReferralSource.JOBCENTRE_PLUS: "Jobcentre Plus",
    ReferralSource.EMPLOYER: "Employer",
    ReferralSource.SELF: "Self-referral",
    ReferralSource.HEALTH_PROFESSIONAL: "Health professional (GP, nurse...)",
    ReferralSource.OTHER: "Other",
}


class NewParticipantDialog(QDialog):
    """The few details that put a person on the caseload, checked as UK formats.

    ``registration()`` is the checked result after ``accept``; nothing is saved here.
    """

    def __init__(self, programmes: list[tuple[str, str]], default_programme: str = "",
                 parent: QWidget | None = None, today: Callable[[], date] = date.today) -> None:
        super().__init__(parent)
        self.setWindowTitle("New participant")
        self._today = today
        self._result: Registration | None = None
        self.programme = QComboBox()
        for programme_id, name in programmes:
            self.programme.addItem(name, programme_id)
        if default_programme:
            self.programme.setCurrentIndex(max(0, self.programme.findData(default_programme)))
        self.given_name = QLineEdit()
        self.family_name = QLineEdit()
        self.date_of_birth = QLineEdit()
        self.date_of_birth.setPlaceholderText("day/month/year, e.g. 31/01/1985")
        self.ni_number = QLineEdit()
        self.ni_number.setPlaceholderText("e.g. AB 12 34 56 C (optional)")
        self.postcode = QLineEdit()
        self.phone = QLineEdit()
        self.phone.setPlaceholderText("optional")
        self.email = QLineEdit()
        self.email.setPlaceholderText("optional")
        self.source = QComboBox()
        for value, label in _SOURCE_LABELS.items():
            self.source.addItem(label, str(value))
        self.reason = QPlainTextEdit()
        self.reason.setTabChangesFocus(True)
        self.reason.setFixedHeight(70)
        self.banner = Banner()
        form = QFormLayout()
        self.fields: dict[str, tuple[str, QWidget]] = {
            "programme": ("&Programme", self.programme),
            "given_name": ("&First name", self.given_name),
            "family_name": ("&Last name", self.family_name),
            "date_of_birth": ("&Date of birth", self.date_of_birth),
            "ni_number": ("&NI number", self.ni_number),
            "postcode": ("Post&code", self.postcode),
            "phone": ("P&hone", self.phone),
            "email": ("&Email", self.email),
            "referral_source": ("&Referred by", self.source),
            "referral_reason": ("Reason for &referral", self.reason),
        }
        for label, widget in self.fields.values():
            widget.setAccessibleName(label.replace("&", ""))
            form.addRow(label, widget)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Save
                                   | QDialogButtonBox.StandardButton.Cancel)
        save = buttons.button(QDialogButtonBox.StandardButton.Save)
        save.setText("Register")
        save.setAccessibleName("Register participant")
        save.setProperty("primary", True)
        buttons.button(QDialogButtonBox.StandardButton.Cancel).setAccessibleName("Cancel")
        self.save_button = save
        buttons.accepted.connect(self.accept)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        intro = QLabel("The essentials to put someone on your caseload. You can complete the full "
                       "registration from their record afterwards.")
        intro.setWordWrap(True)
        intro.setProperty("role", "hint")
        layout.addWidget(intro)
        layout.addLayout(form)
        layout.addWidget(self.banner)
        layout.addWidget(buttons)
        widgets = [w for _l, w in self.fields.values()] + [save, buttons.button(
            QDialogButtonBox.StandardButton.Cancel)]
        for first, second in zip(widgets, widgets[1:]):
            self.setTabOrder(first, second)
        self.given_name.setFocus()

    def check(self) -> Registration:
        """The checked answers, or ``ValidationError`` for the first one that is wrong."""
        def optional(check: Callable[[Any, str], str], value: str, field: str) -> str:
            return check(value, field) if value.strip() else ""

        reason = self.reason.toPlainText().strip()
        return Registration(
            programme=str(self.programme.currentData() or ""),
            given_name=validators.required(validators.text(self.given_name.text(), "given_name", 100),
                                           "given_name"),
            family_name=validators.required(validators.text(self.family_name.text(), "family_name", 100),
                                            "family_name"),
            date_of_birth=validators.date_of_birth(self.date_of_birth.text(), today=self._today()),
            ni_number=optional(validators.ni_number, self.ni_number.text(), "ni_number"),
            postcode=validators.postcode(self.postcode.text()),
            phone=optional(validators.phone_number, self.phone.text(), "phone"),
            email=optional(validators.email, self.email.text(), "email"),
            referral_source=str(self.source.currentData()),
            referral_reason=reason,
        )

    def accept(self) -> None:
        try:
            self._result = self.check()
        except ValidationError as problem:
            label, widget = self.fields.get(problem.field, ("", self.given_name))
            where = label.replace("&", "")
            self.banner.show_message("error", f"{where}: {problem.message}" if where else problem.message)
            widget.setFocus()
            return
        super().accept()

    def registration(self) -> Registration | None:
        return self._result
