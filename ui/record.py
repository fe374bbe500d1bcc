"""The participant record: every section of a participant's file on one screen.

Sections (a list on the left, a page on the right): profile, household (programmes that
record family members), referral, assessments, barriers to work, the action plan (Return to
Work / Thrive in Work plan), contacts and notes, consent, the ESF form (ESF-funded
programmes), outcomes and exit, sharing history and audit history.

:class:`ParticipantRecordView` is dumb (STYLE habit 3). Data comes in through
``render(RecordState)``; what the keyworker does goes out as signals, which the window
turns into store operations before rendering again:

- ``sig_save(list)``: records to save, in order (attachments before what points at them);
- ``sig_save_form(list, key)``: the same for a submitted form, with the key of its draft,
  which the window discards only once the save has succeeded (a failed save keeps it);
- ``sig_delete(record_type, record_id, reason)``;
- ``sig_save_draft(key, form_id, participant_id, answers)`` and ``sig_discard_draft(key)``.

Health Team case notes never appear here, whatever the store holds (seed 003: the Health
Team keeps a separate confidential record).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timezone
from typing import Any, TypeVar

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QAbstractScrollArea,
    QComboBox,
    QFormLayout,
    QFrame,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QListWidget,
    QListWidgetItem,
    QPlainTextEdit,
    QPushButton,
    QScrollArea,
    QStackedWidget,
    QStyle,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from keyworker_app import validators
from keyworker_app.codelists import CodeListError, load_codelist
from keyworker_app.errors import KeyworkerError
from keyworker_app.forms import FormDefinition, FormNotFound, load_form
from keyworker_app.programmes import Programme, load_programme
from keyworker_app.records import (
    ActionPlan,
    Assessment,
    Attachment,
    Barrier,
    BarrierReview,
    CaseNote,
    Confidentiality,
    Consent,
    EsfForm,
    ExitReason,
    HouseholdMember,
    Outcome,
    OutcomeKind,
    Participant,
    ParticipantStatus,
    Record,
    Referral,
)
from keyworker_app.store.audit import AuditEntry
from keyworker_app.store.store import Draft, ParticipantFile
from ui.barriers_chart import BarriersPanel, barriers_from_answers
from ui.consent import (
    RECORD_TYPE_LABELS,
    ConsentState,
    ConsentView,
    consent_profiles,
    field_label,
)
from ui.esf import ESF_FORM_ID, EsfState, EsfView
from ui.flow import flow_widget
from ui.form_view import (
    FormState,
    FormView,
    Submission,
    answers_from_targets,
    display_answer,
    draft_key_for,
    records_from_submission,
)
from ui.turns import TurnTimer

R = TypeVar("R", bound=Record)

HOUSEHOLD_FORM_ID = "household_member"
JOB_START_FORM_ID = "job_start"
SUSTAINMENT_FORM_ID = "sustainment"

#: After ``render_soon`` shows the section on screen, the other sections are filled from
#: this many turns of the event loop later, one a turn: the next turn paints the record, and
#: the one after the list beside it (the window selects who is open then).
FILL_AFTER_TURNS = 3

#: Forms with a section of their own; every other form the programme uses is an assessment.
_OWN_SECTION_FORMS = frozenset({"registration", "referral", "barriers_to_work", "action_plan",
                                "exit", ESF_FORM_ID, "consent", HOUSEHOLD_FORM_ID, JOB_START_FORM_ID,
                                SUSTAINMENT_FORM_ID})


@dataclass(frozen=True)
class SentItem:
    """One thing sent to a recipient: what, to whom, when, on what basis, and how it went.

    ``fields`` are the names of the fields that went (never their values); ``op`` is
    ``upsert``, ``delete`` (the recipient was told it was deleted) or ``withdraw`` (a consent
    withdrawal notice).
    """

    sent_at: datetime | str
    recipient: str
    record_type: str
    record_id: str = ""
    sharing_profile: str = ""
    lawful_basis: str = ""
    status: str = ""
    fields: tuple[str, ...] = ()
    op: str = "upsert"


@dataclass(frozen=True)
class RecordState:
    """Everything the participant record shows.

    ``programme`` is the Programme pack or its id. ``drafts`` may hold any participant's
    drafts; only this participant's are offered. ``audit_entries`` are
    ``store.audit_entries(participant_id)``.
    """

    participant_file: ParticipantFile
    programme: Programme | str
    keyworker_id: str
    today: date
    drafts: Sequence[Draft] = ()
    sharing_history: Sequence[SentItem] = ()
    audit_entries: Sequence[AuditEntry] = ()

    @property
    def participant(self) -> Participant:
        return self.participant_file.participant

    @property
    def programme_pack(self) -> Programme:
        return self.programme if isinstance(self.programme, Programme) else load_programme(self.programme)

    def records(self, record_type: type[R]) -> list[R]:
        """The participant's records of one type, in the order the store gave them."""
        return [r for r in self.participant_file.records.get(record_type.record_type, [])
                if isinstance(r, record_type)]

    def my_drafts(self) -> list[Draft]:
        return [d for d in self.drafts if d.participant_id == self.participant.id]

    def draft(self, key: str) -> Draft | None:
        return next((d for d in self.drafts if d.key == key), None)


# --- Small building blocks -----------------------------------------------------------------


def _named(widget: QWidget, name: str, description: str = "") -> QWidget:
    widget.setAccessibleName(name)
    if description:
        widget.setAccessibleDescription(description)
    return widget


def _button(text: str, name: str, parent: QWidget, slot: Callable[[], Any] | None = None) -> QPushButton:
    button = QPushButton(text, parent)
    button.setAccessibleName(name)
    if slot is not None:
        button.clicked.connect(lambda _=False: slot())
    return button


def _fmt(value: Any) -> str:
    if value is None or value == "" or value == ():
        return ""
    if isinstance(value, datetime):
        return value.strftime("%d/%m/%Y %H:%M")
    if isinstance(value, date):
        return value.strftime("%d/%m/%Y")
    if isinstance(value, bool):
        return "Yes" if value else "No"
    if isinstance(value, (list, tuple)):
        return "; ".join(_fmt(v) for v in value)
    if hasattr(value, "value"):
        return str(value.value).replace("_", " ").capitalize()
    return str(value)


def _code_label(codelist: str, code: str) -> str:
    try:
        return load_codelist(codelist).label(code)
    except (KeyError, CodeListError):
        return code.replace("_", " ").capitalize()


@functools.lru_cache(maxsize=256)
def _form_title(form_id: str, version: int | None = None) -> str:
    # Cached: load_form lists the forms folder on every call, and a record shows many titles.
    try:
        return load_form(form_id, version).title
    except (FormNotFound, KeyworkerError):
        return form_id.replace("_", " ").capitalize()


#: Columns this wide or narrower are never squeezed when a table is too narrow (pixels).
_NARROW_COLUMN = 200
#: The least a shrunk column keeps, so one long word ("Document") is not cut (pixels).
_WORD_ROOM = 110


class _RecordTable(QWidget):
    """A read-only table of records, one per row, with an optional delete-with-reason."""

    sig_delete = Signal(str, str, str)
    sig_selected = Signal(str)

    def __init__(self, name: str, headers: Sequence[str], record_type: str = "",
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.record_type = record_type
        self.table = QTableWidget(0, len(headers), self)
        self.table.setHorizontalHeaderLabels(list(headers))
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setTabKeyNavigation(False)  # Tab leaves the table; arrows move inside it
        self.table.setWordWrap(True)
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.table.verticalHeader().hide()  # row numbers mean nothing to a keyworker
        header = self.table.horizontalHeader()
        header.setMinimumSectionSize(60)
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        # The last column (the answer, the note, the fields) takes what is left and wraps.
        header.setSectionResizeMode(len(headers) - 1, QHeaderView.ResizeMode.Stretch)
        self.table.setAccessibleName(name)
        self.table.itemSelectionChanged.connect(lambda: self.sig_selected.emit(self.selected_id()))
        self._fit_pending = False
        self.table.viewport().installEventFilter(self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.table, 1)
        self.reason: QLineEdit | None = None
        self.delete_button: QPushButton | None = None
        if record_type:
            row = QHBoxLayout()
            self.reason = QLineEdit(self)
            self.reason.setPlaceholderText("Why it is being deleted")
            _named(self.reason, f"Reason for deleting from {name.lower()}")
            self.delete_button = _button("Delete selected…", f"Delete the selected entry from {name.lower()}",
                                         self, self._delete)
            row.addWidget(QLabel("Reason:", self))
            row.addWidget(self.reason, 1)
            row.addWidget(self.delete_button)
            layout.addLayout(row)
            self.problem = QLabel(self)
            self.problem.setStyleSheet("color: #d4351c; font-weight: bold;")
            self.problem.hide()
            layout.addWidget(self.problem)

    def set_rows(self, rows: Sequence[tuple[str, Sequence[str]]]) -> None:
        """Rows as (record id, cell texts)."""
        self.table.setUpdatesEnabled(False)
        try:
            self.table.setRowCount(len(rows))
            for index, (record_id, cells) in enumerate(rows):
                for column, text in enumerate(cells):
                    item = QTableWidgetItem(text)
                    item.setData(Qt.ItemDataRole.UserRole, record_id)
                    if len(text) > 15:  # may be wrapped or cut short in a narrow pane
                        item.setToolTip(text)
                    self.table.setItem(index, column, item)
        finally:
            self.table.setUpdatesEnabled(True)
        if self.table.viewport().isVisible():
            self.fit_columns()
        else:
            # Measuring every cell is the dearest part of a render: a table on a section
            # nobody is looking at is fitted when it is shown (see eventFilter).
            self._fit_pending = True

    def fit_columns(self) -> None:
        """Every column but the last fits its contents and heading; the last stretches over
        the rest. When they cannot all fit, the first ones give up room in proportion and
        their text wraps onto more lines, rather than pushing the last column off-screen."""
        self._fit_pending = False
        header = self.table.horizontalHeader()
        columns = header.count()
        if columns < 2:
            return
        padding = 2 * self.table.style().pixelMetric(QStyle.PixelMetric.PM_HeaderMargin) + 12
        wanted = [max(self.table.sizeHintForColumn(c), header.sectionSizeHint(c)) + padding
                  for c in range(columns - 1)]
        width = self.table.viewport().width()
        room = width - max(120, header.sectionSizeHint(columns - 1))
        # The last column (the answer, the note, the fields) keeps at least half the width
        # beside a question, and at least 30% beside several columns.
        room = min(room, int(width * (0.5 if columns == 2 else 0.7)))
        if sum(wanted) > room > 0:
            # Narrow columns (dates, short codes) keep their width: cut short they say
            # nothing. Only the wide ones give up room, in proportion, and wrap.
            narrow = sum(w for w in wanted if w <= _NARROW_COLUMN)
            wide = sum(w for w in wanted if w > _NARROW_COLUMN)
            scale = max(0.2, (room - narrow) / wide) if wide else room / sum(wanted)
            # A shrunk column keeps room for a word or so (a word cannot wrap).
            wanted = [w if wide and w <= _NARROW_COLUMN
                      else max(header.sectionSizeHint(c), min(w, _WORD_ROOM), int(w * scale))
                      for c, w in enumerate(wanted)]
        for column, width in enumerate(wanted):
            self.table.setColumnWidth(column, width)
        self.table.resizeRowsToContents()

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        # The viewport's own resize: the true width, also when a hidden page is first shown.
        if watched is self.table.viewport():
            if event.type() == QEvent.Type.Resize or (event.type() == QEvent.Type.Show and self._fit_pending):
                self.fit_columns()
        return False

    def row_count(self) -> int:
        return self.table.rowCount()

    def cell(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return "" if item is None else item.text()

    def selected_id(self) -> str:
        items = self.table.selectedItems()
        return str(items[0].data(Qt.ItemDataRole.UserRole)) if items else ""

    def _delete(self) -> None:
        assert self.reason is not None
        record_id = self.selected_id()
        reason = self.reason.text().strip()
        if not record_id or not reason:
            self.problem.setText("Choose an entry in the table and say why it is being deleted.")
            self.problem.show()
            return
        self.problem.hide()
        self.reason.clear()
        self.sig_delete.emit(self.record_type, record_id, reason)


class _Page(QWidget):
    """A section page: a heading, then its content."""

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = QLabel(title, self)
        self.heading.setStyleSheet("font-size: 1.3em; font-weight: bold;")
        self.body = QVBoxLayout(self)
        self.body.addWidget(self.heading)


# --- The record view -----------------------------------------------------------------------


SECTIONS: tuple[tuple[str, str], ...] = (
    ("profile", "Profile"),
    ("household", "Household"),
    ("referral", "Referral"),
    ("assessments", "Assessments"),
    ("barriers", "Barriers to work"),
    ("action_plan", "Action plan"),
    ("notes", "Contacts and notes"),
    ("consent", "Consent"),
    ("esf", "ESF form"),
    ("outcomes", "Outcomes and exit"),
    ("sharing", "Sharing history"),
    ("audit", "Audit history"),
)
_FORM_PAGE = "form"


class ParticipantRecordView(QWidget):
    """A participant's whole record; see the module docstring for its signals."""

    sig_save = Signal(list)
    sig_save_form = Signal(list, str)
    sig_delete = Signal(str, str, str)
    sig_save_draft = Signal(str, str, str, dict)
    sig_discard_draft = Signal(str)

    def __init__(self, parent: QWidget | None = None, *, build_now: bool = True) -> None:
        """``build_now=False`` makes only the frame: the sections are built by
        ``build_step()`` calls (the window makes them in idle moments, a section at a time,
        so no moment of building is a pause) or all at once by the first ``render``."""
        super().__init__(parent)
        self._state: RecordState | None = None
        self._return_to = "profile"
        #: Sections rendered lazily (their widgets are costly to fill): the state each last
        #: showed, so they are filled when first shown rather than on every render.
        self._lazy_rendered: dict[str, RecordState | None] = {"esf": None}
        #: Sections still showing an older state than ``_state``: after ``render_soon`` they
        #: are filled one per idle moment (``_fill_timer``), or at once when shown.
        self._stale: list[str] = []
        self._fill_timer = TurnTimer(self._fill_next_stale, self)
        self.title = QLabel(self)
        self.title.setStyleSheet("font-size: 1.5em; font-weight: bold;")
        self.nav = QListWidget(self)
        self.nav.setAccessibleName("Sections of the record")
        self.nav.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.nav.setSizeAdjustPolicy(QAbstractScrollArea.SizeAdjustPolicy.AdjustToContents)
        self.stack = QStackedWidget(self)
        self._pages: dict[str, QWidget] = {}
        self._shown: dict[str, QWidget] = {}  # what the stack holds for a page (its scroll area)
        self._items: dict[str, QListWidgetItem] = {}
        for section_id, label in SECTIONS:
            item = QListWidgetItem(label)
            item.setData(Qt.ItemDataRole.UserRole, section_id)
            self.nav.addItem(item)
            self._items[section_id] = item
        self.nav.currentItemChanged.connect(self._nav_changed)

        self.title.setWordWrap(True)
        body = QHBoxLayout()
        body.setContentsMargins(0, 0, 0, 0)
        body.addWidget(self.nav)
        body.addWidget(self.stack, 1)
        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addLayout(body, 1)
        self.setTabOrder(self.nav, self.stack)
        #: What is still to be built, in order; each is a few milliseconds.
        self._to_build: list[Callable[[], Any]] = [
            self._build_profile, self._build_household, self._build_referral,
            self._build_assessments, self._build_barriers, self._build_action_plan,
            self._build_notes, self._build_consent, self._build_esf, self._build_outcomes,
            self._build_sharing, self._build_audit, self._build_form_view]
        if build_now:
            self.finish_building()

    # --- building, all at once or a section at a time ---------------------------------

    @property
    def built(self) -> bool:
        return not self._to_build

    def build_step(self) -> bool:
        """Build the next section and apply the style to it; True while more remain."""
        if self._to_build:
            before = len(self._shown)
            self._to_build.pop(0)()
            for shown in list(self._shown.values())[before:]:
                shown.ensurePolished()  # the style, now: not as the section is first shown
            if not self._to_build:
                self.nav.setCurrentRow(0)
                self._fit_nav()
        return bool(self._to_build)

    def prepare_for(self, programmes: Sequence[Programme], main: Programme | None = None) -> None:
        """Add to what ``build_step`` does the first-render work for participants on
        ``programmes``: reading their forms, making their consent boxes and privacy
        notice, and ``main``'s assessment buttons, so the first record opened renders as
        quickly as the next."""
        steps: list[Callable[[], Any]] = [functools.partial(_form_title, f)
                                          for f in sorted({f for p in programmes for f in p.forms})]
        # Naming one field reads every form once: how the sharing lists name fields.
        steps.append(functools.partial(field_label, "participant", "given_name"))
        boxes = {(profile.id, profile.recipient, programme.id): profile for programme in programmes
                 for strand in ["", *(s.id for s in programme.strands)]
                 for profile in consent_profiles(programme, strand)}
        # The consent section is built by an earlier step: looked up when the step runs.
        steps += [functools.partial(self._make_consent_box, p) for p in boxes.values()]
        steps.append(functools.partial(self._widen_nav_for, list(programmes)))
        if main is not None:
            steps.append(functools.partial(self._prepare_consent_notice, main))
            forms = [f for f in main.forms if f not in _OWN_SECTION_FORMS]
            steps.append(functools.partial(self._make_assessment_buttons, forms))
        self._to_build.extend(steps)

    def _make_consent_box(self, profile: Any) -> None:
        self.consent.make_box(profile)

    def _prepare_consent_notice(self, programme: Programme) -> None:
        self.consent.prepare_notice(programme)

    def finish_building(self) -> None:
        """Build whatever is not built yet (the record is about to be shown)."""
        while self.build_step():
            pass

    def _new_page(self, section_id: str, title: str) -> _Page:
        """An empty section page, already in its place: filled after, so the style is
        applied to each widget once rather than again as a finished page is moved in."""
        page = _Page(title)
        self._add_page(section_id, page)
        return page

    def _build_form_view(self) -> None:
        self.form_view = FormView(self)
        self.form_view.sig_save.connect(self._form_saved)
        self.form_view.sig_save_draft.connect(self.sig_save_draft)
        self.form_view.sig_discard_draft.connect(self.sig_discard_draft)
        self.form_view.sig_cancelled.connect(self._form_closed)
        self._add_page(_FORM_PAGE, self.form_view, scroll=False)  # the form scrolls itself

    def _add_page(self, section_id: str, page: QWidget, scroll: bool = True) -> None:
        """Add a section page, inside a scroll area unless it scrolls by itself.

        The scroll area lets every page fit a small or scaled screen: its content is never
        squeezed below the height its wrapped text needs, it scrolls instead.
        """
        self._pages[section_id] = page
        shown: QWidget = page
        if scroll:
            area = QScrollArea(self.stack)
            area.setWidgetResizable(True)
            area.setFrameShape(QFrame.Shape.NoFrame)
            area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            area.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAsNeeded)
            area.setWidget(page)
            shown = area
        self._shown[section_id] = shown
        self.stack.addWidget(shown)

    def _fit_nav(self) -> None:
        """Make the sections list as wide as its longest entry, so none is cut off.

        It only ever widens: a narrower list for the next participant would lay the whole
        record out again (every page, every table fitted anew) and repaint the window.
        ``prepare_for`` widens it once for every programme's names (``_widen_nav_for``).
        """
        widest = self.nav.sizeHintForColumn(0)  # every entry, hidden ones too: no jumping about
        width = widest + 2 * self.nav.frameWidth() + 12
        if width > self.nav.minimumWidth():
            self.nav.setFixedWidth(width)

    def _widen_nav_for(self, programmes: Sequence[Programme]) -> None:
        """Widen the sections list for the longest action-plan name of ``programmes``, so
        opening a participant on another programme never changes its width."""
        item = self._items["action_plan"]
        shown = item.text()
        for programme in programmes:
            item.setText(_plan_names(programme)[0])
            self._fit_nav()
        item.setText(shown)

    # --- navigation ----------------------------------------------------------------------

    def _nav_changed(self, current: QListWidgetItem | None, _previous: QListWidgetItem | None) -> None:
        if current is not None:
            section_id = current.data(Qt.ItemDataRole.UserRole)
            self._render_lazy(section_id)
            self.stack.setCurrentWidget(self._shown[section_id])

    def show_section(self, section_id: str) -> None:
        """Go to a section (as if chosen in the list)."""
        self.nav.setCurrentItem(self._items[section_id])
        self._render_lazy(section_id)
        self.stack.setCurrentWidget(self._shown[section_id])

    def _render_lazy(self, section_id: str) -> None:
        """Fill a section from the current state, if it does not show it yet."""
        self._render_section(section_id)
        state = self._state
        if state is None or section_id not in self._lazy_rendered or self._lazy_rendered[section_id] is state:
            return
        self._lazy_rendered[section_id] = state
        if section_id == "esf" and not self._items["esf"].isHidden():
            self._render_esf(state, state.programme_pack)

    def current_section(self) -> str:
        widget = self.stack.currentWidget()
        return next(k for k, v in self._shown.items() if v is widget)

    def section_ids(self) -> list[str]:
        """The sections shown for this participant's programme, in order."""
        return [s for s, _ in SECTIONS if not self._items[s].isHidden()]

    def page(self, section_id: str) -> QWidget:
        return self._pages[section_id]

    # --- forms ---------------------------------------------------------------------------

    def open_form(self, form_id: str, target: Record | None = None) -> FormView:
        """Show a form for this participant, restoring its draft if there is one."""
        state = self._require_state()
        form = load_form(form_id)
        participant = state.participant
        targets: dict[str, Record] = {"participant": participant}
        build: Callable[[Submission], list[Record]] | None = None
        target_id = "new"
        if form_id == "referral":
            referrals = state.records(Referral)
            if referrals:
                targets["referral"] = referrals[-1]
                target_id = referrals[-1].id
        elif form_id == "action_plan" and isinstance(target, ActionPlan):
            targets["action_plan"] = target
            target_id = target.id
        elif form_id == HOUSEHOLD_FORM_ID and isinstance(target, HouseholdMember):
            targets["household_member"] = target
            target_id = target.id
        elif form_id == "registration":
            target_id = participant.id
        if form_id == "barriers_to_work":
            existing = state.records(Barrier)
            build = lambda s: barriers_from_answers(s.answers, participant.id, existing)  # noqa: E731
        elif form_id == "action_plan":
            build = lambda s: _action_plan_records(s, targets.get("action_plan"), state.today)  # noqa: E731
        elif form_id == "exit":
            build = lambda s: _exit_records(s, participant, state.today)  # noqa: E731
        elif form_id == JOB_START_FORM_ID:
            build = lambda s: _job_start_records(s, state.today, state.keyworker_id)  # noqa: E731
        elif form_id == SUSTAINMENT_FORM_ID:
            outcomes = state.records(Outcome)
            build = lambda s: _sustainment_records(s, outcomes, state.today, state.keyworker_id)  # noqa: E731
        initial = answers_from_targets(form, targets)
        if isinstance(target, ActionPlan):
            initial.update(_action_plan_answers(target))
        key = draft_key_for(participant.id, form_id, target_id)
        self._return_to = self.current_section() if self.current_section() != _FORM_PAGE else self._return_to
        self.form_view.render(FormState(
            form=form, participant_id=participant.id, today=state.today, draft_key=key,
            initial=initial, draft=state.draft(key), targets=targets,
            assessor=state.keyworker_id, build=build))
        self.stack.setCurrentWidget(self._shown[_FORM_PAGE])
        self.form_view.setFocus()
        return self.form_view

    def flush_drafts(self) -> None:
        """Emit unsaved form work now, as drafts (the window calls this before it locks or
        quits). Only forms with something typed since their draft was last kept: a form that
        was merely opened leaves no "unfinished form" behind."""
        if not self.built:
            return  # nothing built, so nothing typed
        for form in (self.form_view, self.esf.form):
            if form.has_pending_draft() or form.has_unsaved_changes():
                form.flush_draft()

    def _form_saved(self, records: list[Record]) -> None:
        state = self.form_view.state
        self.sig_save_form.emit(records, state.draft_key if state is not None else "")
        self._form_closed()

    def _form_closed(self) -> None:
        self.show_section(self._return_to)

    def _require_state(self) -> RecordState:
        if self._state is None:
            raise RuntimeError("render() has not been called")
        return self._state

    # --- building the pages --------------------------------------------------------------

    def _build_profile(self) -> None:
        page = self._new_page("profile", "Profile")
        self.profile_table = _RecordTable("Their details", ["Question", "Answer"], parent=page)
        self.edit_details = _button("Edit their details…", "Edit their details", page,
                                    lambda: self.open_form("registration"))
        self.drafts_list = QListWidget(page)
        _named(self.drafts_list, "Unfinished forms")
        self.drafts_list.setMaximumHeight(100)
        self.drafts_list.itemActivated.connect(self._resume_draft)
        self.resume_button = _button("Carry on with this form", "Carry on with the selected unfinished form",
                                     page, lambda: self._resume_draft(self.drafts_list.currentItem()))
        page.body.addWidget(self.profile_table, 1)
        page.body.addWidget(self.edit_details, 0, Qt.AlignmentFlag.AlignLeft)
        self.drafts_label = QLabel("Unfinished forms:", page)
        page.body.addWidget(self.drafts_label)
        page.body.addWidget(self.drafts_list)
        page.body.addWidget(self.resume_button, 0, Qt.AlignmentFlag.AlignLeft)

    def _build_household(self) -> None:
        page = self._new_page("household", "Household")
        page.body.addWidget(QLabel("The people in the participant's household, children too.", page))
        self.household_table = _RecordTable(
            "Family members", ["Name", "Relationship", "Date of birth", "Education"], "household_member", parent=page)
        self.household_table.sig_delete.connect(self.sig_delete)
        buttons = QHBoxLayout()
        self.add_member_button = _button("Add a family member…", "Add a family member", page,
                                         lambda: self.open_form(HOUSEHOLD_FORM_ID))
        self.edit_member_button = _button("Change the selected family member…",
                                          "Change the selected family member's details", page,
                                          self._edit_member)
        buttons.addWidget(self.add_member_button)
        buttons.addWidget(self.edit_member_button)
        buttons.addStretch(1)
        self.household_problem = QLabel(page)
        self.household_problem.setStyleSheet("color: #d4351c; font-weight: bold;")
        self.household_problem.hide()
        page.body.addLayout(buttons)
        page.body.addWidget(self.household_problem)
        page.body.addWidget(self.household_table, 1)

    def _edit_member(self) -> None:
        state = self._state
        record_id = self.household_table.selected_id()
        member = next((m for m in state.records(HouseholdMember) if m.id == record_id), None) if state else None
        if member is None:
            self.household_problem.setText("Choose a family member in the table first.")
            self.household_problem.show()
            return
        self.household_problem.hide()
        self.open_form(HOUSEHOLD_FORM_ID, member)

    def _build_referral(self) -> None:
        page = self._new_page("referral", "Referral")
        self.referral_table = _RecordTable("Referral details", ["Question", "Answer"], parent=page)
        self.referral_button = _button("Record the referral…", "Record or update the referral", page,
                                       lambda: self.open_form("referral"))
        page.body.addWidget(self.referral_table, 1)
        page.body.addWidget(self.referral_button, 0, Qt.AlignmentFlag.AlignLeft)

    def _build_assessments(self) -> None:
        page = self._new_page("assessments", "Assessments")
        self.assessment_table = _RecordTable(
            "Assessments", ["Form", "Version", "Completed on", "By"], "assessment", parent=page)
        self.assessment_table.sig_delete.connect(self.sig_delete)
        self.assessment_table.sig_selected.connect(self._show_assessment)
        self.assessment_detail = _RecordTable("Answers to the selected assessment", ["Question", "Answer"], parent=page)
        # Which assessments there are comes from the programme: they wrap onto more rows.
        self.assessment_button_row = flow_widget(parent=page)
        self.assessment_buttons = self.assessment_button_row.layout()
        self._assessment_button_widgets: list[QPushButton] = []
        self._assessment_button_forms: list[str] | None = None
        page.body.addWidget(QLabel("Start a new assessment:", page))
        page.body.addWidget(self.assessment_button_row)
        page.body.addWidget(self.assessment_table, 1)
        page.body.addWidget(QLabel("Choose an assessment above to see its answers here.", page))
        page.body.addWidget(self.assessment_detail, 1)

    def _build_barriers(self) -> None:
        page = self._new_page("barriers", "Barriers to work")
        self.barriers = BarriersPanel(page)
        self.barriers.sig_save.connect(self.sig_save)
        self.barriers.sig_add_barriers.connect(lambda: self.open_form("barriers_to_work"))
        page.body.addWidget(self.barriers, 1)

    def _build_action_plan(self) -> None:
        page = self._new_page("action_plan", "Action plan")
        self.action_plan_page = page
        self.plan_table = _RecordTable("Plans", ["Plan", "Goal", "Agreed on", "Review on"], "action_plan", parent=page)
        self.plan_table.sig_delete.connect(self.sig_delete)
        self.plan_table.sig_selected.connect(self._show_plan)
        self.plan_steps = _RecordTable("Steps of the selected plan", ["Step", "Who", "By when", "Done"], parent=page)
        buttons = QHBoxLayout()
        buttons.addWidget(_button("New plan…", "Start a new plan", page, lambda: self.open_form("action_plan")))
        buttons.addWidget(_button("Change the selected plan…", "Change the selected plan", page,
                                  self._edit_plan))
        buttons.addStretch(1)
        page.body.addLayout(buttons)
        page.body.addWidget(self.plan_table, 1)
        page.body.addWidget(self.plan_steps, 1)

    def _build_notes(self) -> None:
        page = self._new_page("notes", "Contacts and notes")
        self.notes_table = _RecordTable(
            "Contact notes", ["When", "How", "Who can read it", "By", "Note"], "case_note", parent=page)
        self.notes_table.sig_delete.connect(self.sig_delete)
        box = QGroupBox("Add a note", page)
        form = QFormLayout(box)
        self.note_type = QComboBox(box)
        for code in load_codelist("contact_type").codes:
            self.note_type.addItem(code.label, code.code)
        _named(self.note_type, "How you were in contact (required)")
        self.note_date = QLineEdit(box)
        self.note_date.setPlaceholderText("DD/MM/YYYY")
        _named(self.note_date, "Date of the contact (required)")
        self.note_confidentiality = QComboBox(box)
        # Health Team notes are never written from a keyworker profile (seed 003).
        self.note_confidentiality.addItem("Standard: the keyworker team", Confidentiality.STANDARD.value)
        self.note_confidentiality.addItem("Sensitive: only people who need to know", Confidentiality.SENSITIVE.value)
        _named(self.note_confidentiality, "Who can read this note (required)")
        self.note_text = QPlainTextEdit(box)
        self.note_text.setTabChangesFocus(True)
        self.note_text.setFixedHeight(90)
        _named(self.note_text, "What happened and what you discussed (required)")
        self.note_error = QLabel(box)
        self.note_error.setStyleSheet("color: #d4351c; font-weight: bold;")
        self.note_error.setWordWrap(True)
        self.note_error.hide()
        self.note_save = _button("Save note", "Save the contact note", box, self.save_note)
        form.addRow("How you were in contact *", self.note_type)
        form.addRow("Date *", self.note_date)
        form.addRow("Who can read it *", self.note_confidentiality)
        form.addRow("Note *", self.note_text)
        form.addRow(self.note_error)
        form.addRow(self.note_save)
        page.body.addWidget(self.notes_table, 1)
        page.body.addWidget(box)

    def _build_consent(self) -> None:
        page = self._new_page("consent", "Consent")
        self.consent = ConsentView(page)
        self.consent.sig_save.connect(self.sig_save)
        page.body.addWidget(self.consent, 1)

    def _build_esf(self) -> None:
        page = self._new_page("esf", "ESF form")
        self.esf = EsfView(page)
        self.esf.sig_save_form.connect(self.sig_save_form)
        self.esf.sig_save_draft.connect(self.sig_save_draft)
        self.esf.sig_discard_draft.connect(self.sig_discard_draft)
        page.body.addWidget(self.esf, 1)

    def _build_outcomes(self) -> None:
        page = self._new_page("outcomes", "Outcomes and exit")
        self.outcomes_table = _RecordTable(
            "Outcomes", ["What", "Date", "Employer", "Job title", "Hours a week", "Left"], "outcome", parent=page)
        self.outcomes_table.sig_delete.connect(self.sig_delete)
        buttons = QHBoxLayout()
        self.job_start_button = _button("Record a job start…", "Record a job start", page,
                                        lambda: self.open_form(JOB_START_FORM_ID))
        self.sustainment_button = _button("Record a sustainment point…", "Record a sustainment point", page,
                                          lambda: self.open_form(SUSTAINMENT_FORM_ID))
        self.exit_button = _button("Record leaving the programme…", "Record leaving the programme", page,
                                   lambda: self.open_form("exit"))
        for button in (self.job_start_button, self.sustainment_button, self.exit_button):
            buttons.addWidget(button)
        buttons.addStretch(1)
        page.body.addLayout(buttons)
        page.body.addWidget(self.outcomes_table, 1)

    def _build_sharing(self) -> None:
        page = self._new_page("sharing", "Sharing history")
        page.body.addWidget(QLabel("What was sent to whom, when, and on what basis.", page))
        self.sharing_table = _RecordTable("Sharing history", ["When", "Sent to", "What", "Lawful basis", "Fields"], parent=page)
        page.body.addWidget(self.sharing_table, 1)

    def _build_audit(self) -> None:
        page = self._new_page("audit", "Audit history")
        page.body.addWidget(QLabel("Every time this record was opened, changed, shared or exported.", page))
        self.audit_table = _RecordTable("Audit history", ["When", "Who", "What", "Record", "Fields"], parent=page)
        page.body.addWidget(self.audit_table, 1)

    # --- rendering ---------------------------------------------------------------------

    def render(self, state: RecordState, *, now: bool = True) -> None:  # type: ignore[override]
        """Show ``state``. Keeps the section (and any open form) the keyworker is on.

        ``now=False`` is ``render_soon``."""
        self.finish_building()
        self._state = state
        programme = state.programme_pack
        participant = state.participant
        self.title.setText(f"{participant.display_name} ({participant.participant_ref or 'no reference yet'})")
        self.setAccessibleName(f"Record of {participant.display_name}")
        self._show_item("household", programme.records_household_members)
        # Adding and changing go through forms; a pack offers only the forms it lists.
        for button, form_id in ((self.add_member_button, HOUSEHOLD_FORM_ID),
                                (self.edit_member_button, HOUSEHOLD_FORM_ID),
                                (self.job_start_button, JOB_START_FORM_ID),
                                (self.sustainment_button, SUSTAINMENT_FORM_ID)):
            button.setHidden(not programme.uses_form(form_id))
        self._show_item("esf", programme.esf_funded and programme.uses_form(ESF_FORM_ID))
        plan_entry, plan_title = _plan_names(programme)
        plan_item = self._items["action_plan"]
        plan_item.setToolTip(plan_title)
        self.action_plan_page.heading.setText(plan_title)
        if plan_item.text() != plan_entry:   # only then can the list need to widen
            plan_item.setText(plan_entry)
            self._fit_nav()
        self._stale = [s for s, _ in SECTIONS if s in self._renderers]
        if self.current_section() in {s for s, _ in SECTIONS} and self._items[self.current_section()].isHidden():
            self.show_section("profile")
        # The ESF form is dozens of questions: filled when it is shown, not on every render.
        self._render_lazy(self.current_section())
        if now:
            while self._stale:
                self._render_section(self._stale[0])
        elif self._stale:
            # The section on screen is painted in the next turn of the event loop; the
            # others start ``FILL_AFTER_TURNS`` turns on, one a turn, so none of them is
            # filled in a turn that paints (see ``_fill_next_stale``).
            self._fill_timer.start(FILL_AFTER_TURNS)

    def _show_item(self, section_id: str, shown: bool) -> None:
        """Show or hide a section's entry in the list, if it changes: hiding a row lays the
        whole list out again and repaints it, even a row hidden already."""
        item = self._items[section_id]
        if item.isHidden() == shown:
            item.setHidden(not shown)

    def render_soon(self, state: RecordState, *, later_turns: int = 0) -> None:
        """``render``, filling the section on screen now and the others in the idle moments
        after (or as soon as one is shown): showing a record is then never a long pause.
        ``later_turns``: the others start that many turns of the event loop later still
        (the window shows the first record a turn or two after rendering it)."""
        self.render(state, now=False)
        if self._stale:
            self._fill_timer.put_off(later_turns)

    @property
    def rendered(self) -> bool:
        """Whether every section shows the latest state (see ``render_soon``)."""
        return not self._stale

    def _fill_next_stale(self) -> None:
        if self._stale:
            self._render_section(self._stale[0])
        if self._stale:
            self._fill_timer.start()

    def _render_section(self, section_id: str) -> None:
        state = self._state
        if state is None or section_id not in self._stale:
            return
        self._stale.remove(section_id)
        self._renderers[section_id](state)

    @property
    def _renderers(self) -> dict[str, Callable[[RecordState], None]]:
        return {
            "profile": lambda s: self._render_profile(s, s.programme_pack),
            "household": self._render_household,
            "referral": self._render_referral,
            "assessments": lambda s: self._render_assessments(s, s.programme_pack),
            "barriers": lambda s: self.barriers.render(s.participant.id, s.records(Barrier),
                                                       s.records(BarrierReview), s.today),
            "action_plan": self._render_plans,
            "notes": self._render_notes,
            "consent": lambda s: self.consent.render(ConsentState(
                s.participant, s.programme_pack, tuple(s.records(Consent)), s.today, s.keyworker_id)),
            "outcomes": self._render_outcomes,
            "sharing": self._render_sharing,
            "audit": self._render_audit,
        }

    def _render_profile(self, state: RecordState, programme: Programme) -> None:
        p = state.participant
        strand = ""
        if p.strand:
            try:
                strand = programme.strand(p.strand).name
            except KeyError:
                strand = p.strand
        rows: list[tuple[str, Sequence[str]]] = [
            (p.id, ("Reference", p.participant_ref)),
            (p.id, ("Programme", programme.name + (f": {strand}" if strand else ""))),
            (p.id, ("Status", _fmt(p.status))),
            (p.id, (programme.worker_title, p.keyworker_id)),
        ]
        form = load_form("registration")
        answers = answers_from_targets(form, {"participant": p})
        for question in form.fields:
            if question.id in answers:
                rows.append((p.id, (question.label, display_answer(question, answers[question.id]))))
        self.profile_table.set_rows(rows)
        self.drafts_list.clear()
        for draft in state.my_drafts():
            item = QListWidgetItem(f"{_form_title(draft.form_id)}: last saved {draft.saved_at[:16].replace('T', ' ')}")
            item.setData(Qt.ItemDataRole.UserRole, draft.key)
            self.drafts_list.addItem(item)
        has_drafts = bool(state.my_drafts())
        for widget in (self.drafts_label, self.drafts_list, self.resume_button):
            widget.setVisible(has_drafts)

    def _resume_draft(self, item: QListWidgetItem | None) -> None:
        state = self._state
        if item is None or state is None:
            return
        draft = state.draft(str(item.data(Qt.ItemDataRole.UserRole)))
        if draft is None:
            return
        if draft.form_id == ESF_FORM_ID:
            self.show_section("esf")
            return
        target: Record | None = None
        target_id = draft.key.rsplit(":", 1)[-1]
        if draft.form_id == "action_plan":
            target = next((a for a in state.records(ActionPlan) if a.id == target_id), None)
        elif draft.form_id == HOUSEHOLD_FORM_ID:
            target = next((m for m in state.records(HouseholdMember) if m.id == target_id), None)
        self.open_form(draft.form_id, target)

    def _render_household(self, state: RecordState) -> None:
        self.household_table.set_rows([
            (m.id, (f"{m.given_name} {m.family_name}".strip(),
                    _code_label("household_relationship", m.relationship) if m.relationship else "",
                    _fmt(m.date_of_birth), m.education))
            for m in state.records(HouseholdMember)])

    def _render_referral(self, state: RecordState) -> None:
        referrals = state.records(Referral)
        if not referrals:
            self.referral_table.set_rows([("", ("Referral", "Not recorded yet"))])
            return
        referral = referrals[-1]
        rows: list[tuple[str, Sequence[str]]] = []
        form = load_form("referral")
        answers = answers_from_targets(form, {"referral": referral})
        for question in form.fields:
            if question.id in answers and question.maps_to.startswith("referral."):
                rows.append((referral.id, (question.label, display_answer(question, answers[question.id]))))
        self.referral_table.set_rows(rows)

    def _render_assessments(self, state: RecordState, programme: Programme) -> None:
        forms = [f for f in programme.forms if f not in _OWN_SECTION_FORMS]
        if forms != self._assessment_button_forms:
            self._make_assessment_buttons(forms)
        self.assessment_table.set_rows([
            (a.id, (_form_title(a.form_id, a.form_version), str(a.form_version), _fmt(a.completed_on), a.assessor))
            for a in state.records(Assessment)])
        self.assessment_detail.set_rows([])

    def _make_assessment_buttons(self, forms: list[str]) -> None:
        """One button per assessment the programme uses (kept while the next participant's
        programme uses the same ones)."""
        self._assessment_button_forms = forms
        for button in self._assessment_button_widgets:
            button.setParent(None)  # type: ignore[call-overload]
            button.deleteLater()
        self._assessment_button_widgets = []
        page = self._pages["assessments"]
        for form_id in forms:
            title = _form_title(form_id)
            button = _button(f"{title}…", f"Start a new {title.lower()}", page,
                             lambda f=form_id: self.open_form(f))
            self.assessment_buttons.addWidget(button)
            button.show()
            self._assessment_button_widgets.append(button)
        # Buttons made now would come last in the Tab order: put them first on the page,
        # in the order they are shown, then the table and its delete row.
        table = self.assessment_table
        chain: list[QWidget] = [self.nav, *self._assessment_button_widgets, table.table]
        chain += [w for w in (table.reason, table.delete_button) if w is not None]
        chain.append(self.assessment_detail.table)
        for first, second in zip(chain, chain[1:]):
            QWidget.setTabOrder(first, second)

    def _show_assessment(self, record_id: str) -> None:
        state = self._state
        assessment = next((a for a in state.records(Assessment) if a.id == record_id), None) if state else None
        if assessment is None:
            self.assessment_detail.set_rows([])
            return
        try:
            form: FormDefinition | None = load_form(assessment.form_id, assessment.form_version)
        except (FormNotFound, KeyworkerError):
            form = None
        rows: list[tuple[str, Sequence[str]]] = []
        for key, value in assessment.answers.items():
            if form is not None:
                try:
                    question = form.field(key)
                    rows.append((assessment.id, (question.label, display_answer(question, value))))
                    continue
                except KeyError:
                    pass
            rows.append((assessment.id, (key.replace("_", " ").capitalize(), _fmt(value))))
        self.assessment_detail.set_rows(rows)

    def _render_plans(self, state: RecordState) -> None:
        self.plan_table.set_rows([
            (a.id, (_code_label("action_plan_kind", a.kind), a.goal, _fmt(a.agreed_on), _fmt(a.review_on)))
            for a in state.records(ActionPlan)])
        self.plan_steps.set_rows([])

    def _show_plan(self, record_id: str) -> None:
        state = self._state
        plan = next((a for a in state.records(ActionPlan) if a.id == record_id), None) if state else None
        self.plan_steps.set_rows([] if plan is None else [
            (plan.id, (str(s.get("action", "")), str(s.get("owner", "")), _fmt(s.get("due")),
                       "Yes" if s.get("done") else "No")) for s in plan.steps])

    def _edit_plan(self) -> None:
        state = self._state
        record_id = self.plan_table.selected_id()
        plan = next((a for a in state.records(ActionPlan) if a.id == record_id), None) if state else None
        if plan is not None:
            self.open_form("action_plan", plan)

    def _render_notes(self, state: RecordState) -> None:
        notes = [n for n in state.records(CaseNote) if n.confidentiality is not Confidentiality.HEALTH_TEAM]
        notes.sort(key=lambda n: n.contact_on or n.created_at, reverse=True)
        self.notes_table.set_rows([
            (n.id, (_fmt(n.contact_on), _code_label("contact_type", n.contact_type),
                    _fmt(n.confidentiality), n.author, n.summary)) for n in notes])
        if not self.note_date.text():
            self.note_date.setText(state.today.strftime("%d/%m/%Y"))

    def save_note(self) -> bool:
        """Check the new note and emit it as a CaseNote. True when emitted."""
        state = self._require_state()
        summary = self.note_text.toPlainText().strip()
        try:
            day = validators.date_value(self.note_date.text(), "contact_on")
            if day > state.today:
                raise validators.ValidationError("contact_on", "The date can't be in the future.")
            if not summary:
                raise validators.ValidationError("summary", "Please write what happened.")
        except validators.ValidationError as err:
            self.note_error.setText(err.message)
            self.note_error.show()
            (self.note_date if err.field == "contact_on" else self.note_text).setFocus()
            return False
        self.note_error.hide()
        note = CaseNote(
            participant_id=state.participant.id, contact_type=str(self.note_type.currentData()),
            contact_on=datetime.combine(day, time(12, 0), tzinfo=timezone.utc), summary=summary,
            confidentiality=Confidentiality(self.note_confidentiality.currentData()),
            author=state.keyworker_id)
        self.note_text.clear()
        self.sig_save.emit([note])
        return True

    def _render_esf(self, state: RecordState, programme: Programme) -> None:
        forms = state.records(EsfForm)
        esf = forms[-1] if forms else None
        attachments = {a.id: a for a in state.records(Attachment)}
        key = draft_key_for(state.participant.id, ESF_FORM_ID, esf.id if esf else "new")
        self.esf.render(EsfState(state.participant, programme, state.today, esf, attachments,
                                 state.draft(key), state.keyworker_id))

    def _render_outcomes(self, state: RecordState) -> None:
        self.outcomes_table.set_rows([
            (o.id, (_fmt(o.kind) + (" (not in work)" if o.in_work is False else ""),
                    _fmt(o.outcome_on), o.employer, o.job_title,
                    "" if o.weekly_hours is None else f"{o.weekly_hours:g}",
                    _code_label("exit_reason", o.exit_reason.value) if o.exit_reason else ""))
            for o in state.records(Outcome)])

    def _render_sharing(self, state: RecordState) -> None:
        self.sharing_table.set_rows([
            (s.record_id, (_fmt(s.sent_at) if not isinstance(s.sent_at, str) else s.sent_at[:16].replace("T", " "),
                           s.recipient, _SENT_OPS.get(s.op, "{}").format(_fmt_record_type(s.record_type))
                           + _SENT_STATUS.get(s.status, ""),
                           s.lawful_basis, ", ".join(field_label(s.record_type, f) for f in s.fields)))
            for s in reversed(state.sharing_history)]
            or [("", ("", "Nothing has been shared yet.", "", "", ""))])

    def _render_audit(self, state: RecordState) -> None:
        self.audit_table.set_rows([
            (e.record_id, (e.at[:16].replace("T", " "), e.actor, e.action, _fmt_record_type(e.record_type),
                           ", ".join(field_label(e.record_type, f) for f in e.detail.get("fields", ()))))
            for e in sorted(state.audit_entries, key=lambda e: e.seq, reverse=True)])


#: How the sharing history says what went. Every line was accepted; "already held" is a
#: copy the recipient had from an earlier delivery whose answer was lost.
_SENT_OPS = {"upsert": "{}", "delete": "{} (told it was deleted)", "withdraw": "{} (withdrawal notice)"}
_SENT_STATUS = {"duplicate": " (already held)"}


def _plan_names(programme: Programme) -> tuple[str, str]:
    """The action plan's entry in the sections list and its page heading, for
    ``programme``: two plan names go on two lines in the list, so the list can stay narrow."""
    kinds = [_code_label("action_plan_kind", k) for k in programme.action_plan_kinds]
    if not kinds:
        return "Action plan", "Action plan"
    return " /\n".join(kinds), " / ".join(kinds)


def _fmt_record_type(record_type: str) -> str:
    return RECORD_TYPE_LABELS.get(record_type, record_type.replace("_", " ").capitalize())


# --- Form-specific record builders ---------------------------------------------------------


def _action_plan_answers(plan: ActionPlan) -> dict[str, Any]:
    answers: dict[str, Any] = {}
    for number, step in enumerate(plan.steps[:3], 1):
        for part in ("action", "owner", "due"):
            if step.get(part):
                answers[f"step_{number}_{part}"] = step[part]
    return answers


def _action_plan_records(submission: Submission, existing: Record | None, today: date) -> list[Record]:
    """An ActionPlan (its steps gathered from step_N_* answers) and the rest as an assessment."""
    answers = dict(submission.answers)
    steps = []
    for number in range(1, 4):
        action = answers.pop(f"step_{number}_action", None)
        owner = answers.pop(f"step_{number}_owner", "")
        due = answers.pop(f"step_{number}_due", None)
        if action:
            steps.append({"action": action, "owner": owner, "due": due, "done": False})
    trimmed = Submission(submission.form, submission.participant_id, answers, submission.attachments,
                         submission.draft_key)
    targets = {} if existing is None else {"action_plan": existing}
    records = records_from_submission(trimmed, targets, today)
    return [r.replace(steps=tuple(steps)) if isinstance(r, ActionPlan) else r for r in records]


def _job_start_records(submission: Submission, today: date, assessor: str) -> list[Record]:
    """A job start Outcome from the job start form."""
    records = records_from_submission(submission, {}, today, assessor)
    return [r.replace(kind=OutcomeKind.JOB_START) if isinstance(r, Outcome) else r for r in records]


def _sustainment_records(submission: Submission, outcomes: Sequence[Outcome], today: date,
                         assessor: str) -> list[Record]:
    """A sustainment point: one Outcome holding the check (date, still in work, hours, notes)
    with the employer and job of their latest job start.

    A check that finds them out of work is the same kind of record, with ``in_work`` False.
    """
    out: list[Record] = []
    for record in records_from_submission(submission, {}, today, assessor):
        if isinstance(record, Outcome):
            day = record.outcome_on
            starts = [o for o in outcomes if o.kind is OutcomeKind.JOB_START
                      and (day is None or o.outcome_on is None or o.outcome_on <= day)]
            starts.sort(key=lambda o: (o.outcome_on or date.min, o.created_at))
            job = starts[-1] if starts else None
            record = record.replace(kind=OutcomeKind.SUSTAINMENT,
                                    employer=job.employer if job else "",
                                    job_title=job.job_title if job else "")
        out.append(record)
    return out


def _exit_records(submission: Submission, participant: Participant, today: date) -> list[Record]:
    """An exit Outcome (and a job start when they got a job); the participant marked as exited."""
    answers = submission.answers
    records = records_from_submission(submission, {"participant": participant}, today)
    onward = tuple(line.strip() for line in str(answers.get("onward_referrals", "")).splitlines() if line.strip())
    out: list[Record] = []
    for record in records:
        if isinstance(record, Outcome):
            exit_reason = record.exit_reason if isinstance(record.exit_reason, ExitReason) else None
            record = record.replace(kind=OutcomeKind.EXIT, onward_referrals=onward, exit_reason=exit_reason)
            if answers.get("got_job") and answers.get("job_start_on"):
                out.append(Outcome(participant_id=participant.id, kind=OutcomeKind.JOB_START,
                                   outcome_on=answers["job_start_on"], employer=record.employer,
                                   job_title=record.job_title, weekly_hours=record.weekly_hours))
        out.append(record)
    out.append(participant.replace(status=ParticipantStatus.EXITED))
    return out


__all__ = ["ParticipantRecordView", "RecordState", "SentItem", "SECTIONS"]