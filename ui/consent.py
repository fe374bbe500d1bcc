"""Consent: the privacy notice, per-recipient choices, signature or verbal, and withdrawal.

The screen is built from data: the programme's privacy notice (``resources/notices``) and
its consent-based sharing profiles (``resources/sharing``). For each recipient it says who,
why, exactly which fields would be shared (in plain words) and on what lawful basis. A
choice is recorded as a :class:`~keyworker_app.records.Consent` per recipient with the
notice version shown, the method (signed on the pad, or said out loud with the keyworker
as witness) and when. Withdrawal is one button beside the recipient, and says what it
stops before it is pressed.

Dumb widget: ``render(ConsentState)`` in; ``sig_save(list)`` out (a signature attachment
first when there is one, then the Consent records).
"""

from __future__ import annotations

import functools
import html
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QButtonGroup, QGroupBox, QHBoxLayout, QLabel, QPushButton, QRadioButton, QSizePolicy,
    QTextBrowser, QVBoxLayout, QWidget,
)

from keyworker_app.errors import KeyworkerError
from keyworker_app.forms import list_forms
from keyworker_app.programmes import PrivacyNotice, Programme, load_notice
from keyworker_app.records import (
    Consent, ConsentMethod, ConsentStatus, Participant, Record, utcnow,
)
from keyworker_app.sharing import SharingProfile, applicable_profiles, latest_consent
from ui.signature import SignatureBox, signature_attachment

#: The lawful bases in plain English (UK GDPR Articles 6(1) and 9(2)); the law, not programme data.
ARTICLE_6 = {
    "6(1)(a)": "your consent",
    "6(1)(b)": "a contract with you",
    "6(1)(c)": "a legal obligation",
    "6(1)(d)": "protecting someone's life (vital interests)",
    "6(1)(e)": "a task in the public interest (public task)",
    "6(1)(f)": "legitimate interests",
}
ARTICLE_9 = {
    "9(2)(a)": "your explicit consent",
    "9(2)(b)": "employment and social protection law",
    "9(2)(c)": "protecting someone's life when they cannot consent",
    "9(2)(f)": "legal claims",
    "9(2)(g)": "substantial public interest",
    "9(2)(h)": "health or social care",
    "9(2)(i)": "public health",
    "9(2)(j)": "research and statistics",
}
RECORD_TYPE_LABELS = {
    "participant": "Their details", "household_member": "Family members", "referral": "Referral",
    "enrolment": "Time on the programme", "assessment": "Assessments", "barrier": "Barriers to work",
    "barrier_review": "Barrier reviews", "action_plan": "Action plan", "case_note": "Contact notes",
    "consent": "Consent choices", "esf_form": "ESF form", "outcome": "Outcomes",
    "attachment": "Documents",
}


@functools.cache
def _labels_from_forms() -> dict[str, str]:
    labels: dict[str, str] = {}
    for form in list_forms():
        for question in form.fields:
            if question.maps_to and question.maps_to not in labels:
                labels[question.maps_to] = question.label
    return labels


def field_label(record_type: str, field_name: str) -> str:
    """A record field in plain words: the question that asks for it, else its name spelt out."""
    found = _labels_from_forms().get(f"{record_type}.{field_name}")
    if found:
        return found.rstrip("?")
    return field_name.replace("_", " ").capitalize()


def shared_fields_text(profile: SharingProfile) -> str:
    """What a profile would share, e.g. 'Their details: First name, Last name; Outcomes: …'."""
    parts = []
    for record_type, names in profile.records.items():
        heading = RECORD_TYPE_LABELS.get(record_type, record_type.replace("_", " ").capitalize())
        parts.append(f"{heading}: " + ", ".join(field_label(record_type, n) for n in names))
    return "; ".join(parts)


def lawful_basis_text(profile: SharingProfile) -> str:
    """E.g. 'Article 6(1)(a): your consent. Article 9(2)(a): your explicit consent.'"""
    text = f"Article {profile.article_6}: {ARTICLE_6.get(profile.article_6, 'see the privacy notice')}."
    if profile.article_9:
        text += f" Article {profile.article_9}: {ARTICLE_9.get(profile.article_9, 'see the privacy notice')}."
    else:
        text += " No health or other special category information is shared."
    return text


def shared_fields_html(profile: SharingProfile) -> str:
    """What a profile would share as a list: one line per kind of record, its fields after."""
    items = []
    for record_type, names in profile.records.items():
        heading = RECORD_TYPE_LABELS.get(record_type, record_type.replace("_", " ").capitalize())
        fields = ", ".join(field_label(record_type, n) for n in names)
        items.append(f"<li><b>{html.escape(heading)}:</b> {html.escape(fields)}</li>")
    return "<ul style='margin-top: 0; margin-bottom: 0;'>" + "".join(items) + "</ul>"


def withdrawal_text(profile: SharingProfile) -> str:
    """What withdrawing consent for ``profile`` stops, said before the button is pressed."""
    return (f"Withdrawing stops sharing {shared_fields_text(profile)} with {profile.recipient}. "
            "Data already shared will be told to stop.")


def consent_profiles(programme: Programme, strand: str = "") -> list[SharingProfile]:
    """The programme's sharing profiles that need the participant's consent."""
    return [p for p in applicable_profiles(programme.id, strand) if p.consent_required]


def notice_html(notice: PrivacyNotice) -> str:
    """A privacy notice as simple HTML: a heading per section and its paragraphs."""
    parts = [f"<h2>{html.escape(notice.title)}</h2>",
             f"<p><i>{html.escape(notice.version)}</i></p>"]
    for section in notice.sections:
        parts.append(f"<h3>{html.escape(section.heading)}</h3>")
        parts.extend(f"<p>{html.escape(p)}</p>" for p in section.paragraphs)
    return "\n".join(parts)


def status_text(consent: Consent | None) -> str:
    """The latest decision in words, e.g. 'Agreed on 3 May 2025 (signed)'."""
    if consent is None:
        return "Not asked yet."
    how = {ConsentMethod.SIGNED: "signed", ConsentMethod.VERBAL: "verbal, keyworker as witness",
           ConsentMethod.ONLINE: "online"}[consent.method]
    when = consent.given_on.strftime("%d %B %Y") if consent.given_on else "date not recorded"
    if consent.status is ConsentStatus.WITHDRAWN or consent.withdrawn_on is not None:
        withdrawn = consent.withdrawn_on.strftime("%d %B %Y") if consent.withdrawn_on else ""
        return f"Withdrawn {('on ' + withdrawn) if withdrawn else ''} (had agreed on {when})."
    if consent.status is ConsentStatus.REFUSED:
        return f"Did not agree, on {when} ({how})."
    return f"Agreed on {when} ({how})."


@dataclass(frozen=True)
class ConsentState:
    """What the consent screen shows."""

    participant: Participant
    programme: Programme
    consents: tuple[Consent, ...]
    today: date
    keyworker_id: str


def _wrapping(label: QLabel) -> QLabel:
    """A label that wraps and asks for the height its wrapped text needs (never overlaps)."""
    label.setWordWrap(True)
    label.setTextInteractionFlags(Qt.TextInteractionFlag.NoTextInteraction)
    policy = QSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Minimum)
    policy.setHeightForWidth(True)
    label.setSizePolicy(policy)
    return label


class _RecipientBox(QGroupBox):
    """One recipient: who, why, what, basis, current decision, choice and withdrawal."""

    def __init__(self, profile: SharingProfile, parent: QWidget) -> None:
        super().__init__(profile.recipient, parent)
        self.profile = profile
        self.setAccessibleName(profile.recipient)
        question = QLabel(f"<b>{html.escape(profile.consent_question or 'Do they agree to this sharing?')}</b>", self)
        why = QLabel(f"<b>Why:</b> {html.escape(profile.purpose)}", self)
        # Field lists run long: a list, one kind of record a line, wrapped, never one clipped line.
        what = QLabel("<b>What would be shared:</b>" + shared_fields_html(profile), self)
        what.setAccessibleName(f"What would be shared: {shared_fields_text(profile)}")
        basis = QLabel(f"<b>Lawful basis:</b> {html.escape(lawful_basis_text(profile))}", self)
        self.status = QLabel(self)
        self.status.setProperty("role", "status")
        for label in (question, why, what, basis, self.status):
            _wrapping(label)
        self.agree = QRadioButton("Agrees", self)
        self.agree.setAccessibleName(f"Agrees to sharing with {profile.recipient}")
        self.refuse = QRadioButton("Does not agree", self)
        self.refuse.setAccessibleName(f"Does not agree to sharing with {profile.recipient}")
        self.choice = QButtonGroup(self)
        self.choice.addButton(self.agree)
        self.choice.addButton(self.refuse)
        # The button's description names every field; the note on screen points at the list.
        self.withdraw_note = QLabel(
            f"Withdrawing stops sharing everything listed above with {profile.recipient}. "
            "Data already shared will be told to stop.", self)
        _wrapping(self.withdraw_note)
        self.withdraw = QPushButton("Withdraw consent", self)
        self.withdraw.setAccessibleName(f"Withdraw consent for {profile.recipient}")
        self.withdraw.setAccessibleDescription(withdrawal_text(profile))
        choices = QHBoxLayout()
        choices.addWidget(self.agree)
        choices.addWidget(self.refuse)
        choices.addStretch(1)
        choices.addWidget(self.withdraw)
        layout = QVBoxLayout(self)
        for widget in (question, why, what, basis, self.status):
            layout.addWidget(widget)
        layout.addLayout(choices)
        layout.addWidget(self.withdraw_note)

    def show_current(self, consent: Consent | None) -> None:
        self.status.setText(f"Now: {status_text(consent)}")
        active = consent is not None and consent.status is ConsentStatus.GIVEN and consent.withdrawn_on is None
        self.withdraw.setVisible(active)
        self.withdraw_note.setVisible(active)
        self.choice.setExclusive(False)
        self.agree.setChecked(False)
        self.refuse.setChecked(False)
        self.choice.setExclusive(True)

    def decision(self) -> ConsentStatus | None:
        if self.agree.isChecked():
            return ConsentStatus.GIVEN
        if self.refuse.isChecked():
            return ConsentStatus.REFUSED
        return None


class ConsentView(QWidget):
    """The consent screen; see the module docstring."""

    sig_save = Signal(list)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state: ConsentState | None = None
        self._boxes: dict[str, _RecipientBox] = {}        # shown now, in order
        self._box_pool: dict[str, list[_RecipientBox]] = {}  # every box made, by profile id
        self._notice_shown: object = None                 # the notice reference last shown

        self.notice_heading = _wrapping(QLabel(self))
        self.notice_heading.setStyleSheet("font-weight: bold;")
        self.notice = QTextBrowser(self)
        self.notice.setAccessibleName("Privacy notice")
        self.notice.setOpenExternalLinks(False)
        # A readable window onto the notice, about 14 lines, scrolling on its own.
        self.notice.setFixedHeight(self.notice.fontMetrics().lineSpacing() * 14)
        self.notice_toggle = QPushButton("Hide the privacy notice", self)
        self.notice_toggle.setAccessibleName("Show or hide the privacy notice")
        self.notice_toggle.setCheckable(True)
        self.notice_toggle.toggled.connect(self._toggle_notice)

        self.recipients = QWidget(self)
        self.recipients_layout = QVBoxLayout(self.recipients)
        self.recipients_layout.setContentsMargins(0, 0, 0, 0)
        self.none_label = QLabel(
            "This programme shares nothing that needs the participant's consent.", self)

        self.how_box = QGroupBox("How did they give their answer?", self)
        self.signed = QRadioButton("In writing: they sign below", self.how_box)
        self.signed.setAccessibleName("Consent given in writing, signed on the pad")
        self.verbal = QRadioButton("Out loud: you are the witness", self.how_box)
        self.verbal.setAccessibleName("Consent given out loud, with you as witness")
        self.method = QButtonGroup(self)
        self.method.addButton(self.signed)
        self.method.addButton(self.verbal)
        self.signature = SignatureBox("Participant's signature", self.how_box)
        self.signature.setVisible(False)
        self.signed.toggled.connect(lambda on: self.signature.setVisible(on))
        how_layout = QVBoxLayout(self.how_box)
        how_layout.addWidget(self.signed)
        how_layout.addWidget(self.signature)
        how_layout.addWidget(self.verbal)

        self.error = QLabel(self)
        self.error.setStyleSheet("color: #d4351c; font-weight: bold;")
        self.error.setWordWrap(True)
        self.error.hide()
        self.record_button = QPushButton("Record their choices", self)
        self.record_button.setAccessibleName("Record consent choices")
        self.record_button.clicked.connect(self.record)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        heading_row = QHBoxLayout()
        heading_row.addWidget(self.notice_heading, 1)
        heading_row.addWidget(self.notice_toggle, 0, Qt.AlignmentFlag.AlignTop)
        layout.addLayout(heading_row)
        layout.addWidget(self.notice)
        layout.addWidget(self.recipients)
        layout.addWidget(self.none_label)
        layout.addWidget(self.how_box)
        layout.addWidget(self.error)
        layout.addWidget(self.record_button, 0, Qt.AlignmentFlag.AlignRight)
        layout.addStretch(1)

    def _toggle_notice(self, hidden: bool) -> None:
        self.notice.setHidden(hidden)
        self.notice_toggle.setText("Show the privacy notice" if hidden else "Hide the privacy notice")

    # --- rendering ---------------------------------------------------------------------

    def render(self, state: ConsentState) -> None:
        """Show the notice and each consent-based recipient with its latest decision."""
        self._state = state
        self._show_notice(state.programme)
        profiles = consent_profiles(state.programme, state.participant.strand)
        if [(p.id, p) for p in profiles] != [(k, b.profile) for k, b in self._boxes.items()]:
            self._arrange_boxes(profiles)
        for profile_id, box in self._boxes.items():
            box.show_current(latest_consent(state.consents, profile_id, state.participant.id))
        self.none_label.setVisible(not profiles)
        self.how_box.setVisible(bool(profiles))
        self.record_button.setVisible(bool(profiles))
        self._clear_entry()

    def _arrange_boxes(self, profiles: Sequence[SharingProfile]) -> None:
        """Show one box per profile, in order. Boxes are kept for reuse: participants on
        different strands see different recipients, and making a box is most of a render."""
        for box in self._boxes.values():
            self.recipients_layout.removeWidget(box)
            box.hide()
        self._boxes = {}
        for profile in profiles:
            # A profile is specialised per programme: same id, different programmes.
            box = self.make_box(profile)
            self.recipients_layout.addWidget(box)
            box.show()  # a child added to a shown parent stays hidden until shown
            self._boxes[profile.id] = box

    def make_box(self, profile: SharingProfile) -> _RecipientBox:
        """The box for ``profile``, made now if it was not made before (kept hidden until
        a render arranges it): the record screen makes them in idle moments, ahead of use."""
        made = self._box_pool.setdefault(profile.id, [])
        box = next((b for b in made if b.profile == profile), None)
        if box is None:
            box = _RecipientBox(profile, self.recipients)
            box.hide()
            box.ensurePolished()  # styled now, not as it is first shown
            box.withdraw.clicked.connect(lambda _=False, pid=profile.id: self.withdraw(pid))
            made.append(box)
        return box

    def prepare_notice(self, programme: Programme) -> None:
        """Lay out ``programme``'s privacy notice ahead of the first render that shows it."""
        self._show_notice(programme)

    def _show_notice(self, programme: Programme) -> None:
        ref = programme.privacy_notice
        if self._notice_shown == (ref, programme.name):
            return  # the same notice as the last participant's: setHtml is not cheap
        self._notice_shown = (ref, programme.name)
        try:
            notice = load_notice(ref.id)
        except KeyworkerError:
            self.notice_heading.setText("Privacy notice")
            self.notice.setPlainText(
                f"The privacy notice for {programme.name} could not be found on this laptop. "
                "Please give the participant the printed notice, and tell your manager or IT "
                "team so it can be put back.")
            return
        self.notice_heading.setText(f"Privacy notice ({notice.version})")  # its title is inside
        self.notice.setHtml(notice_html(notice))

    def _clear_entry(self) -> None:
        self.method.setExclusive(False)
        self.signed.setChecked(False)
        self.verbal.setChecked(False)
        self.method.setExclusive(True)
        self.signature.setVisible(False)
        self.signature.clear()
        self.error.hide()

    def box(self, profile_id: str) -> _RecipientBox:
        """The recipient box for a sharing profile (tests use it)."""
        return self._boxes[profile_id]

    # --- actions -----------------------------------------------------------------------

    def _fail(self, message: str) -> bool:
        self.error.setText(message)
        self.error.show()
        self.error.setFocus()
        self.record_button.setAccessibleDescription(message)
        return False

    def record(self) -> bool:
        """Emit a Consent per recipient with a choice made (and the signature image). True when sent."""
        state = self._state
        if state is None:
            return False
        chosen = [(pid, box.decision()) for pid, box in self._boxes.items() if box.decision() is not None]
        if not chosen:
            return self._fail("Choose Agrees or Does not agree for at least one recipient.")
        if not (self.signed.isChecked() or self.verbal.isChecked()):
            return self._fail("Say how they gave their answer: in writing, or out loud.")
        if self.signed.isChecked() and self.signature.is_empty():
            return self._fail("Ask them to sign in the box, or choose 'Out loud' if they cannot sign.")
        self.record_button.setAccessibleDescription("")
        records: list[Record] = []
        attachment_id = ""
        method = ConsentMethod.SIGNED if self.signed.isChecked() else ConsentMethod.VERBAL
        if method is ConsentMethod.SIGNED:
            attachment = signature_attachment(self.signature.to_png(), state.participant.id,
                                              "consent-signature.png")
            records.append(attachment)
            attachment_id = attachment.id
        now = utcnow()
        for profile_id, decision in chosen:
            assert decision is not None
            records.append(Consent(
                participant_id=state.participant.id, sharing_profile=profile_id, status=decision,
                method=method, notice_version=state.programme.privacy_notice.version, given_on=now,
                witness=state.keyworker_id if method is ConsentMethod.VERBAL else "",
                signature_attachment_id=attachment_id))
        self.sig_save.emit(records)
        return True

    def withdraw(self, profile_id: str) -> bool:
        """Withdraw the participant's current consent for one recipient, in one step."""
        state = self._state
        if state is None:
            return False
        current = latest_consent(state.consents, profile_id, state.participant.id)
        if current is None or current.status is not ConsentStatus.GIVEN or current.withdrawn_on is not None:
            return False
        self.sig_save.emit([current.replace(status=ConsentStatus.WITHDRAWN, withdrawn_on=utcnow())])
        return True


def active_consents(consents: Sequence[Consent], participant_id: str, profiles: Sequence[SharingProfile]) -> list[str]:
    """The ids of profiles the participant currently agrees to."""
    out = []
    for profile in profiles:
        latest = latest_consent(consents, profile.id, participant_id)
        if latest is not None and latest.status is ConsentStatus.GIVEN and latest.withdrawn_on is None:
            out.append(profile.id)
    return out
