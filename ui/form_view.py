"""Any form in ``resources/forms/`` as a screen: questions, checks, conditions and drafts.

:class:`FormView` is dumb (STYLE habit 3): a :class:`FormState` comes in through
:meth:`FormView.render`; what the keyworker does goes out as signals:

- ``sig_save(list)``: the records to save, in order, once every answer is accepted
  (signature images first, then the records that point at them);
- ``sig_submitted(object)``: the same moment as a :class:`Submission` (checked answers and
  signature attachments), for screens that want to build their own records;
- ``sig_save_draft(key, form_id, participant_id, answers)``: unsaved answers, a moment
  after the last change, so a lock or a crash loses nothing;
- ``sig_discard_draft(key)``: the draft is no longer needed (the form was cancelled). On
  saving, the latest answers are kept as the draft first and the form does *not* discard
  it: whoever saves the records discards it once the save has succeeded, so a save that
  fails loses nothing;
- ``sig_cancelled()``: the keyworker left the form without saving.

Answers are checked by :func:`keyworker_app.forms.validate_answers`; each problem is shown
beside its question and in a summary at the top, whose entries move focus to the question.
"""

from __future__ import annotations

import dataclasses
import enum
import typing
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from typing import Any

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtWidgets import (
    QCheckBox, QComboBox, QFormLayout, QFrame, QGroupBox, QHBoxLayout, QLabel, QLineEdit,
    QListWidget, QListWidgetItem, QPlainTextEdit, QPushButton, QScrollArea, QVBoxLayout,
    QWidget,
)

from keyworker_app.forms import (
    FieldType, FormDefinition, FormField, ValidationResult, is_shown, validate_answers,
)
from keyworker_app.records import (
    RECORD_TYPE_BY_NAME, Assessment, Attachment, Participant, Record, new_id,
)
from keyworker_app.store.store import Draft
from ui.signature import SignatureBox, signature_attachment

#: How long after the last change unsaved answers are kept as a draft.
DRAFT_DELAY_MS = 800
_CHOOSE = "Choose…"
_DAY_MONTH_YEAR = "%d/%m/%Y"


@dataclass(frozen=True)
class Submission:
    """Answers that passed every check, and the signature images captured on the form."""

    form: FormDefinition
    participant_id: str
    answers: Mapping[str, Any]
    attachments: tuple[Attachment, ...] = ()
    draft_key: str = ""


RecordBuilder = Callable[[Submission], list[Record]]


@dataclass(frozen=True)
class FormState:
    """What a form screen shows.

    ``initial`` holds answers already on record (for example from ``targets``, see
    :func:`answers_from_targets`); a ``draft`` with this ``draft_key`` wins over them.
    ``targets`` are the records that answers with ``maps_to`` update (by record type; a
    type missing gets a new record). ``build`` turns a submission into records; by default
    :func:`records_from_submission`.
    """

    form: FormDefinition
    participant_id: str
    today: date
    draft_key: str = ""
    initial: Mapping[str, Any] = field(default_factory=dict)
    draft: Draft | None = None
    targets: Mapping[str, Record] = field(default_factory=dict)
    assessor: str = ""
    submit_label: str = "Save"
    build: RecordBuilder | None = None


def draft_key_for(participant_id: str, form_id: str, target: str = "new") -> str:
    """The key a form's draft is kept under: one draft per participant, form and target."""
    return f"{participant_id}:{form_id}:{target}"


# --- Answers <-> records -------------------------------------------------------------------


def _coerce(hint: Any, value: Any) -> Any:
    """A checked answer as the record field declared by ``hint`` holds it."""
    origin = typing.get_origin(hint)
    if origin is not None and type(None) in typing.get_args(hint):
        inner = next(a for a in typing.get_args(hint) if a is not type(None))
        return None if value is None else _coerce(inner, value)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return hint(value)
    if hint is float and isinstance(value, (Decimal, int, str)):
        return float(value)
    if hint is int and isinstance(value, (Decimal, str)):
        return int(value)
    if hint is str and not isinstance(value, str):
        return "" if value is None else str(value)
    if origin is tuple and isinstance(value, str):
        return tuple(line.strip() for line in value.splitlines() if line.strip())
    return value


def _field_hints(record_type: type[Record]) -> dict[str, Any]:
    return typing.get_type_hints(record_type)


def _blank(record_type: type[Record], field_name: str) -> Any:
    """A field's empty value: its default (for a blank or no-longer-asked question)."""
    for item in dataclasses.fields(record_type):
        if item.name == field_name:
            if item.default is not dataclasses.MISSING:
                return item.default
            if item.default_factory is not dataclasses.MISSING:
                return item.default_factory()
    return None


def mapped_values(form: FormDefinition, answers: Mapping[str, Any]) -> dict[str, dict[str, Any]]:
    """Answers to questions with ``maps_to``, by record type and field, coerced to the field's type.

    A question left blank, or no longer asked, empties its field: clearing an answer on
    screen must clear it on record too, and nothing is kept that the person was not asked.
    """
    out: dict[str, dict[str, Any]] = {}
    for question in form.fields:
        if not question.maps_to:
            continue
        record_name, _, field_name = question.maps_to.partition(".")
        record_type = RECORD_TYPE_BY_NAME[record_name]
        if question.id in answers:
            value = _coerce(_field_hints(record_type)[field_name], answers[question.id])
        else:
            value = _blank(record_type, field_name)
        out.setdefault(record_name, {})[field_name] = value
    return out


def unmapped_answers(form: FormDefinition, answers: Mapping[str, Any]) -> dict[str, Any]:
    """Answers to questions without ``maps_to`` (kept on the Assessment record)."""
    return {q.id: answers[q.id] for q in form.fields if not q.maps_to and q.id in answers}


def answers_from_targets(form: FormDefinition, targets: Mapping[str, Record]) -> dict[str, Any]:
    """The answers already on record for questions with ``maps_to``, for a form's first showing."""
    answers: dict[str, Any] = {}
    for question in form.fields:
        if not question.maps_to:
            continue
        record_name, _, field_name = question.maps_to.partition(".")
        record = targets.get(record_name)
        if record is None:
            continue
        value = getattr(record, field_name)
        if isinstance(value, enum.Enum):
            value = value.value
        if value is None or value == "" or value == ():
            continue
        if isinstance(value, float):
            value = str(value)
        answers[question.id] = value
    return answers


def records_from_submission(
    submission: Submission, targets: Mapping[str, Record], today: date, assessor: str = ""
) -> list[Record]:
    """The default records for a submitted form.

    Signature images first; then each record that ``maps_to`` answers update (the target
    of that type, or a new one for the participant); then an :class:`Assessment` holding the
    form id, form version and the answers that belong to no other record, so each answer is
    kept in one place only.
    """
    records: list[Record] = list(submission.attachments)
    answered = {q.maps_to.partition(".")[0] for q in submission.form.fields
                if q.maps_to and q.id in submission.answers}
    for record_name, values in mapped_values(submission.form, submission.answers).items():
        base = targets.get(record_name)
        if base is None and record_name not in answered:
            continue  # nothing asked about this record was answered: no empty record
        if base is None:
            record_type = RECORD_TYPE_BY_NAME[record_name]
            if record_type is Participant:
                raise ValueError("a form that updates the participant needs the participant as a target")
            base = record_type(participant_id=submission.participant_id)  # type: ignore[call-arg]
        records.append(base.replace(**values))
    rest = unmapped_answers(submission.form, submission.answers)
    if rest or not records:
        records.append(Assessment(
            participant_id=submission.participant_id, form_id=submission.form.id,
            form_version=submission.form.version, answers=rest, completed_on=today,
            assessor=assessor))
    return records


def display_answer(question: FormField, value: Any) -> str:
    """An answer as a person reads it: option labels, Yes/No, dates written out."""
    if value is None or value == "":
        return "Not answered"
    if question.type == FieldType.BOOLEAN:
        return "Yes" if value else "No"
    labels = {c.code: c.label for c in question.options()}
    if question.type == FieldType.MULTICHOICE:
        return ", ".join(labels.get(v, str(v)) for v in value)
    if question.type == FieldType.CHOICE:
        return labels.get(value, str(value))
    if question.type in (FieldType.DATE, FieldType.DATE_OF_BIRTH):
        day = value if isinstance(value, date) else _parse_date(str(value))
        return day.strftime("%d %B %Y") if day else str(value)
    return str(value)


def _parse_date(text: str) -> date | None:
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None



# --- One editor per question type ----------------------------------------------------------


class _Editor:
    """A question's input widget(s): read and write its answer, report changes."""

    def __init__(self, question: FormField, parent: QWidget) -> None:
        self.question = question
        self.widget: QWidget = QWidget(parent)
        self.focus_widget: QWidget = self.widget
        self._on_change: Callable[[], None] = lambda: None

    def on_change(self, callback: Callable[[], None]) -> None:
        self._on_change = callback

    def changed(self, *_: object) -> None:
        self._on_change()

    def value(self) -> Any:
        raise NotImplementedError

    def set_value(self, value: Any) -> None:
        raise NotImplementedError

    def set_accessible(self, name: str, description: str) -> None:
        self.focus_widget.setAccessibleName(name)
        self.focus_widget.setAccessibleDescription(description)


class _LineEditor(_Editor):
    """Text, numbers, dates and UK formats: typed as text and checked on saving."""

    _PLACEHOLDER = {
        FieldType.DATE: "DD/MM/YYYY", FieldType.DATE_OF_BIRTH: "DD/MM/YYYY",
        FieldType.NI_NUMBER: "like AB 12 34 56 C", FieldType.NHS_NUMBER: "like 943 476 5919",
        FieldType.POSTCODE: "like M1 1AE", FieldType.PHONE: "like 07700 900123",
        FieldType.EMAIL: "like name@example.co.uk",
    }

    def __init__(self, question: FormField, parent: QWidget) -> None:
        super().__init__(question, parent)
        self.edit = QLineEdit(parent)
        self.edit.setPlaceholderText(self._PLACEHOLDER.get(question.type, ""))
        if question.max_length:
            self.edit.setMaxLength(question.max_length + 1)  # so "too long" can be said
        self.widget = self.focus_widget = self.edit
        self.edit.textEdited.connect(self.changed)

    def value(self) -> Any:
        return self.edit.text()

    def set_value(self, value: Any) -> None:
        if isinstance(value, (date, datetime)) and self.question.type in (FieldType.DATE, FieldType.DATE_OF_BIRTH):
            text = value.strftime(_DAY_MONTH_YEAR)
        elif isinstance(value, str) and self.question.type in (FieldType.DATE, FieldType.DATE_OF_BIRTH):
            try:
                text = date.fromisoformat(value).strftime(_DAY_MONTH_YEAR)
            except ValueError:
                text = value
        else:
            text = "" if value is None else str(value)
        self.edit.setText(text)


class _MultilineEditor(_Editor):
    def __init__(self, question: FormField, parent: QWidget) -> None:
        super().__init__(question, parent)
        self.edit = QPlainTextEdit(parent)
        self.edit.setTabChangesFocus(True)  # Tab moves on, as in every other field
        self.edit.setFixedHeight(80)
        self.widget = self.focus_widget = self.edit
        self.edit.textChanged.connect(self.changed)

    def value(self) -> Any:
        return self.edit.toPlainText()

    def set_value(self, value: Any) -> None:
        if isinstance(value, (list, tuple)):
            value = "\n".join(str(v) for v in value)
        self.edit.setPlainText("" if value is None else str(value))


class _ComboEditor(_Editor):
    """One answer from a list: a code list's options, or Yes/No."""

    def __init__(self, question: FormField, parent: QWidget) -> None:
        super().__init__(question, parent)
        self.combo = QComboBox(parent)
        # Long options must not make the whole form wider than the pane; the list shows them whole.
        self.combo.setSizeAdjustPolicy(QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(16)
        self.combo.addItem(_CHOOSE, None)
        if question.type == FieldType.BOOLEAN:
            self.combo.addItem("Yes", True)
            self.combo.addItem("No", False)
        else:
            for code in question.options():
                self.combo.addItem(code.label, code.code)
        self.widget = self.focus_widget = self.combo
        self.combo.currentIndexChanged.connect(self.changed)

    def value(self) -> Any:
        return self.combo.currentData()

    def set_value(self, value: Any) -> None:
        for index in range(self.combo.count()):
            data = self.combo.itemData(index)
            if data is not None and isinstance(data, bool) == isinstance(value, bool) and data == value:
                self.combo.setCurrentIndex(index)
                return
        self.combo.setCurrentIndex(0)


class _MultiEditor(_Editor):
    """Several answers from a code list: one tick box per option."""

    def __init__(self, question: FormField, parent: QWidget) -> None:
        super().__init__(question, parent)
        box = QWidget(parent)
        layout = QVBoxLayout(box)
        layout.setContentsMargins(0, 0, 0, 0)
        self.boxes: list[tuple[str, QCheckBox]] = []
        for code in question.options():
            check = QCheckBox(code.label, box)
            check.setAccessibleName(f"{question.label}: {code.label}")
            check.toggled.connect(self.changed)
            layout.addWidget(check)
            self.boxes.append((code.code, check))
        self.widget = box
        self.focus_widget = self.boxes[0][1] if self.boxes else box

    def value(self) -> Any:
        return [code for code, check in self.boxes if check.isChecked()]

    def set_value(self, value: Any) -> None:
        chosen = set(value or ())
        for code, check in self.boxes:
            check.setChecked(code in chosen)

    def set_accessible(self, name: str, description: str) -> None:
        for _, check in self.boxes:
            check.setAccessibleDescription(f"{name}. {description}".strip(". "))

    def check(self, code: str) -> QCheckBox:
        """The tick box for ``code`` (tests and keyboard shortcuts use it)."""
        return next(c for k, c in self.boxes if k == code)


class _SignatureEditor(_Editor):
    """A signature: the answer is the id of the image's attachment, made when the form is saved."""

    def __init__(self, question: FormField, parent: QWidget) -> None:
        super().__init__(question, parent)
        self.box = SignatureBox(question.label, parent)
        self.widget = self.box
        self.focus_widget = self.box.clear_button
        self.existing_id = ""
        self.pending_id = ""
        self.box.sig_changed.connect(self._signed)

    def _signed(self) -> None:
        self.pending_id = "" if self.box.is_empty() else (self.pending_id or new_id())
        self.changed()

    def value(self) -> Any:
        return self.pending_id or self.existing_id

    def set_value(self, value: Any) -> None:
        self.existing_id = value if isinstance(value, str) else ""

    def set_accessible(self, name: str, description: str) -> None:
        self.box.pad.setAccessibleName(f"{name}: signature pad")
        self.box.pad.setAccessibleDescription(description)
        self.box.clear_button.setAccessibleName(f"Clear: {self.question.label}")

    def attachment(self, participant_id: str, form_id: str) -> Attachment | None:
        """The new signature image as an attachment, or None when nothing new was signed."""
        if not self.pending_id or self.box.is_empty():
            return None
        return signature_attachment(self.box.to_png(), participant_id,
                                    f"{form_id}-{self.question.id}.png", self.pending_id)


def _editor_for(question: FormField, parent: QWidget) -> _Editor:
    if question.type == FieldType.MULTILINE:
        return _MultilineEditor(question, parent)
    if question.type in (FieldType.CHOICE, FieldType.BOOLEAN):
        return _ComboEditor(question, parent)
    if question.type == FieldType.MULTICHOICE:
        return _MultiEditor(question, parent)
    if question.type == FieldType.SIGNATURE:
        return _SignatureEditor(question, parent)
    return _LineEditor(question, parent)


@dataclass
class _Row:
    """One question on screen: its label, editor, and the message shown beside it."""

    question: FormField
    label: QLabel
    editor: _Editor
    container: QWidget
    error: QLabel
    accessible_name: str
    description: str


# --- The form ------------------------------------------------------------------------------


class FormView(QWidget):
    """Renders any :class:`FormDefinition`; see the module docstring for its signals."""

    sig_save = Signal(list)
    sig_submitted = Signal(object)
    sig_save_draft = Signal(str, str, str, dict)
    sig_discard_draft = Signal(str)
    sig_cancelled = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state: FormState | None = None
        self._rows: dict[str, _Row] = {}
        self._sections: dict[str, tuple[QGroupBox, QFormLayout]] = {}
        self._built: FormDefinition | None = None  # the form the widgets on screen were made for
        self._loading = False
        self._unsaved = False
        self.last_result: ValidationResult | None = None

        self.title = QLabel(self)
        self.title.setObjectName("formTitle")
        self.title.setStyleSheet("font-size: 1.3em; font-weight: bold;")
        self.legend = QLabel("Questions marked * need an answer.", self)

        self.summary = QFrame(self)
        self.summary.setObjectName("errorSummary")
        self.summary.setStyleSheet("#errorSummary { border: 3px solid #d4351c; }")
        self.summary_heading = QLabel(self.summary)
        self.summary_heading.setStyleSheet("font-weight: bold;")
        self.summary_list = QListWidget(self.summary)
        self.summary_list.setAccessibleName("Problems to fix")
        self.summary_list.setAccessibleDescription(
            "Each problem in a list. Press Enter on one to go to its question.")
        self.summary_list.itemActivated.connect(self._go_to_problem)
        self.summary_list.itemClicked.connect(self._go_to_problem)
        summary_layout = QVBoxLayout(self.summary)
        summary_layout.addWidget(self.summary_heading)
        summary_layout.addWidget(self.summary_list)
        self.summary.hide()

        self.scroll_area = QScrollArea(self)
        self.scroll_area.setWidgetResizable(True)
        self.scroll_area.setAccessibleName("Questions")
        self.scroll_area.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.body = QWidget()
        self.scroll_area.setWidget(self.body)

        self.save_button = QPushButton("Save", self)
        self.save_button.setDefault(True)
        self.save_button.clicked.connect(self.submit)
        self.cancel_button = QPushButton("Cancel", self)
        self.cancel_button.clicked.connect(self._cancel)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.cancel_button)
        buttons.addWidget(self.save_button)

        layout = QVBoxLayout(self)
        layout.addWidget(self.title)
        layout.addWidget(self.legend)
        layout.addWidget(self.summary)
        layout.addWidget(self.scroll_area, 1)
        layout.addLayout(buttons)

        self._draft_timer = QTimer(self)
        self._draft_timer.setSingleShot(True)
        self._draft_timer.setInterval(DRAFT_DELAY_MS)
        self._draft_timer.timeout.connect(self.flush_draft)

    # --- rendering ---------------------------------------------------------------------

    @property
    def state(self) -> FormState | None:
        return self._state

    def render(self, state: FormState) -> None:
        """Show ``state``'s form, keeping what is typed when the same form is shown again."""
        previous = self._state
        self._state = state
        same = (previous is not None and previous.form == state.form
                and previous.draft_key == state.draft_key and previous.initial == state.initial)
        self.title.setText(state.form.title)
        self.save_button.setText(state.submit_label)
        self.save_button.setAccessibleName(f"{state.submit_label}: {state.form.title}")
        self.cancel_button.setAccessibleName(f"Cancel {state.form.title}")
        if same:
            return
        self._draft_timer.stop()
        self._unsaved = False
        if self._built is not None and self._built == state.form:
            # The same form again (another participant's ESF form, say): making its widgets
            # is most of the cost of showing it, so keep them and only reset what they hold.
            self._reset_rows()
        else:
            self._build(state.form)
        answers: dict[str, Any] = {**answers_from_targets(state.form, state.targets), **state.initial}
        draft = state.draft
        if draft is not None and draft.key == state.draft_key and draft.form_id == state.form.id:
            answers.update(draft.answers)
        self._load(answers)
        self._show_errors(None)

    def _build(self, form: FormDefinition) -> None:
        self._rows.clear()
        self._sections.clear()
        body = QWidget()
        outer = QVBoxLayout(body)
        if form.description:
            intro = QLabel(form.description, body)
            intro.setWordWrap(True)
            outer.addWidget(intro)
        for section in form.sections:
            group = QGroupBox(section.title, body)
            group.setAccessibleName(section.title)
            form_layout = QFormLayout(group)
            form_layout.setFieldGrowthPolicy(QFormLayout.FieldGrowthPolicy.AllNonFixedFieldsGrow)
            form_layout.setRowWrapPolicy(QFormLayout.RowWrapPolicy.WrapLongRows)
            if section.help:
                help_label = QLabel(section.help, group)
                help_label.setWordWrap(True)
                form_layout.addRow(help_label)
            for question in section.fields:
                self._rows[question.id] = self._add_row(question, group, form_layout)
            self._sections[section.id] = (group, form_layout)
            outer.addWidget(group)
        outer.addStretch(1)
        self.scroll_area.setWidget(body)  # the old body is deleted by the scroll area
        self.body = body
        self._built = form
        self._set_tab_order()

    def _reset_rows(self) -> None:
        """Make the widgets already built look as if just made: no signature, top of the form."""
        self._loading = True
        try:
            for row in self._rows.values():
                editor = row.editor
                if isinstance(editor, _SignatureEditor):
                    if not editor.box.is_empty():
                        editor.box.clear()
                    editor.pending_id = ""
                    editor.existing_id = ""
        finally:
            self._loading = False
        self.scroll_area.verticalScrollBar().setValue(0)

    def _add_row(self, question: FormField, group: QWidget, form_layout: QFormLayout) -> _Row:
        marker = " *" if question.required else ""
        label = QLabel(question.label + marker, group)
        label.setWordWrap(True)
        editor = _editor_for(question, group)
        container = QWidget(group)
        column = QVBoxLayout(container)
        column.setContentsMargins(0, 0, 0, 0)
        column.addWidget(editor.widget)
        if question.help:
            help_label = QLabel(question.help, container)
            help_label.setWordWrap(True)
            help_label.setStyleSheet("color: #505a5f;")
            column.addWidget(help_label)
        error = QLabel(container)
        error.setWordWrap(True)
        error.setStyleSheet("color: #d4351c; font-weight: bold;")
        error.hide()
        column.addWidget(error)
        label.setBuddy(editor.focus_widget)
        name = question.label + (" (required)" if question.required else "")
        editor.set_accessible(name, question.help)
        editor.on_change(lambda: self._changed())
        form_layout.addRow(label, container)
        return _Row(question, label, editor, container, error, name, question.help)

    def _set_tab_order(self) -> None:
        chain: list[QWidget] = []
        for row in self._rows.values():
            editor = row.editor
            if isinstance(editor, _MultiEditor):
                chain.extend(check for _, check in editor.boxes)
            else:
                chain.append(editor.focus_widget)
        chain.extend([self.cancel_button, self.save_button])
        for first, second in zip(chain, chain[1:]):
            QWidget.setTabOrder(first, second)

    def _load(self, answers: Mapping[str, Any]) -> None:
        self._loading = True
        try:
            for question_id, row in self._rows.items():
                row.editor.set_value(answers.get(question_id))
        finally:
            self._loading = False
        self._update_visibility()

    # --- reading answers ---------------------------------------------------------------

    def raw_answers(self) -> dict[str, Any]:
        """What is on screen now, before any checks (blank answers left out)."""
        answers: dict[str, Any] = {}
        for question_id, row in self._rows.items():
            value = row.editor.value()
            if value is None or value == "" or value == []:
                continue
            answers[question_id] = value
        return answers

    def draft_answers(self) -> dict[str, Any]:
        """The answers worth keeping in a draft: everything typed but signatures."""
        return {k: v for k, v in self.raw_answers().items()
                if self._rows[k].question.type != FieldType.SIGNATURE}

    def editor(self, question_id: str) -> QWidget:
        """The input widget for a question (its first tick box for several choices)."""
        return self._rows[question_id].editor.focus_widget

    def editor_object(self, question_id: str) -> _Editor:
        return self._rows[question_id].editor

    def set_answer(self, question_id: str, value: Any) -> None:
        """Put an answer on screen as if typed (tests and pre-filling use it)."""
        self._rows[question_id].editor.set_value(value)
        self._changed()

    def is_question_visible(self, question_id: str) -> bool:
        """Whether the question is asked now (its condition holds)."""
        row = self._rows[question_id]
        return not row.container.isHidden()

    def error_text(self, question_id: str) -> str:
        """The message shown beside a question ('' when none)."""
        row = self._rows[question_id]
        return "" if row.error.isHidden() else row.error.text()

    def summary_entries(self) -> list[str]:
        return [self.summary_list.item(i).text() for i in range(self.summary_list.count())]

    # --- changes, conditions and drafts --------------------------------------------------

    def _changed(self) -> None:
        if self._loading or self._state is None:
            return
        self._update_visibility()
        if self._state.draft_key:
            self._unsaved = True
            self._draft_timer.start()

    def _update_visibility(self) -> None:
        answers = self.raw_answers()
        seen: dict[str, Any] = {}
        for question_id, row in self._rows.items():
            shown = is_shown(row.question, seen)
            if shown and question_id in answers:
                seen[question_id] = answers[question_id]
            hidden = row.container.isHidden()
            if hidden == shown:
                _, form_layout = self._group_of(question_id)
                form_layout.setRowVisible(row.container, shown)
        for group, form_layout in self._sections.values():
            visible = any(not r.container.isHidden() for r in self._rows.values()
                          if r.container.parentWidget() is group)
            group.setHidden(not visible)

    def _group_of(self, question_id: str) -> tuple[QGroupBox, QFormLayout]:
        container = self._rows[question_id].container
        return next(pair for pair in self._sections.values() if container.parentWidget() is pair[0])

    def flush_draft(self) -> None:
        """Emit the draft now (the window calls this before it locks)."""
        self._draft_timer.stop()
        state = self._state
        if state is None or not state.draft_key:
            return
        self._unsaved = False
        self.sig_save_draft.emit(state.draft_key, state.form.id, state.participant_id,
                                 _json_ready(self.draft_answers()))

    def has_pending_draft(self) -> bool:
        return self._draft_timer.isActive()

    def has_unsaved_changes(self) -> bool:
        """Whether something was typed since the form was shown or its draft last kept."""
        return self._unsaved

    # --- checking and saving -------------------------------------------------------------

    def validate(self) -> ValidationResult:
        """Check the answers, show any problems, and write tidied answers back on screen."""
        assert self._state is not None
        result = validate_answers(self._state.form, self.raw_answers(), self._state.today)
        self.last_result = result
        self._loading = True
        try:
            for question_id, value in result.answers.items():
                row = self._rows[question_id]
                if row.question.type not in (FieldType.SIGNATURE, FieldType.MULTICHOICE):
                    row.editor.set_value(value)
        finally:
            self._loading = False
        self._show_errors(result)
        return result

    def submit(self) -> bool:
        """Check the answers; when all are accepted emit the records. True when saved."""
        state = self._state
        if state is None:
            return False
        result = self.validate()
        if not result.ok:
            self.summary_list.setFocus()
            if self.summary_list.count():
                self.summary_list.setCurrentRow(0)
            return False
        self._draft_timer.stop()
        attachments = []
        answers = dict(result.answers)
        for question_id, row in self._rows.items():
            editor = row.editor
            if isinstance(editor, _SignatureEditor) and question_id in answers:
                attachment = editor.attachment(state.participant_id, state.form.id)
                if attachment is not None:
                    attachments.append(attachment)
        submission = Submission(state.form, state.participant_id, answers, tuple(attachments),
                                state.draft_key)
        self.sig_submitted.emit(submission)
        if state.build is not None:
            records = state.build(submission)
        else:
            records = records_from_submission(submission, state.targets, state.today, state.assessor)
        self.flush_draft()  # what was typed is kept until the save is known to have worked
        self.sig_save.emit(records)
        return True

    def _show_errors(self, result: ValidationResult | None) -> None:
        errors = () if result is None else result.errors
        by_field = {e.field: e.message for e in errors}
        for question_id, row in self._rows.items():
            message = by_field.get(question_id, "")
            row.error.setText(message)
            row.error.setHidden(not message)
            description = " ".join(p for p in (message, row.description) if p)
            row.editor.set_accessible(row.accessible_name, description)
        self.summary_list.clear()
        for error in errors:
            item = QListWidgetItem(f"{error.label}: {error.message}")
            item.setData(Qt.ItemDataRole.UserRole, error.field)
            self.summary_list.addItem(item)
        count = len(errors)
        self.summary_heading.setText(
            "There is a problem with 1 answer" if count == 1
            else f"There is a problem with {count} answers")
        self.summary.setHidden(count == 0)

    def _go_to_problem(self, item: QListWidgetItem) -> None:
        question_id = item.data(Qt.ItemDataRole.UserRole)
        row = self._rows.get(question_id)
        if row is None:
            return
        self.scroll_area.ensureWidgetVisible(row.container)
        row.editor.focus_widget.setFocus(Qt.FocusReason.OtherFocusReason)

    def _cancel(self) -> None:
        state = self._state
        self._draft_timer.stop()
        self._unsaved = False
        if state is not None and state.draft_key:
            self.sig_discard_draft.emit(state.draft_key)
        self.sig_cancelled.emit()


def _json_ready(answers: Mapping[str, Any]) -> dict[str, Any]:
    """Draft answers as JSON holds them (dates as ISO text, several choices as lists)."""
    out: dict[str, Any] = {}
    for key, value in answers.items():
        if isinstance(value, (date, datetime)):
            value = value.isoformat()
        elif isinstance(value, Decimal):
            value = str(value)
        elif isinstance(value, tuple):
            value = list(value)
        out[key] = value
    return out
