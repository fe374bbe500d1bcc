"""The ESF participant form: eligibility, evidence, leaflet, signature, and its signed PDF.

The questions come from ``resources/forms/esf_participant``; this screen turns a submitted
form into an :class:`~keyworker_app.records.EsfForm` (answers, evidence seen, leaflet
acknowledged, remote delivery and whether a signature is still owed). When the participant
has signed, the completed form is rendered to a PDF in memory and kept in the store as an
:class:`~keyworker_app.records.Attachment`; the EsfForm records the PDF's id and SHA-256.

A form marked signed that has no PDF (one signed on paper, or synthetic demo data) offers
"Make the PDF": the PDF is rendered from the stored form and its signature image, if the
app holds one, and kept in the same way.

Dumb widget: ``render(EsfState)`` in; ``sig_save(list)`` (attachments first, then the
EsfForm) for every save, and at the same moment ``sig_save_form(list, key)`` with the draft
to discard once saved (``""`` when there is none, as for a PDF made later): connect one of
the two. ``sig_save_draft`` and ``sig_discard_draft`` out.
"""

from __future__ import annotations

import html
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from PySide6.QtCore import Signal
from PySide6.QtGui import QImage
from PySide6.QtWidgets import QGroupBox, QLabel, QPushButton, QVBoxLayout, QWidget

from keyworker_app.forms import FieldType, FormDefinition, load_form
from keyworker_app.programmes import Programme
from keyworker_app.records import Attachment, EsfForm, Participant, Record
from keyworker_app.store.store import Draft
from ui.form_view import (
    FormState, FormView, Submission, answers_from_targets, display_answer, draft_key_for,
    mapped_values, unmapped_answers,
)
from ui.pdf import PDF_MEDIA_TYPE, PdfViewer, PrintableDocument, render_pdf, sha256_hex

ESF_FORM_ID = "esf_participant"
_SIGNATURE_IMAGE = "signature.png"


def signatures_owed(esf_forms: Iterable[EsfForm]) -> list[EsfForm]:
    """ESF forms whose participant has not signed yet (remote delivery or unfinished), oldest first.

    A form marked signed on a date with no signature image here (signed on paper) is not owed.
    """
    owed = [f for f in esf_forms
            if f.signature_owed or not (f.signature_attachment_id or f.signed_on)]
    return sorted(owed, key=lambda f: f.created_at)


def _evidence(form: FormDefinition, answers: Mapping[str, Any]) -> tuple[dict[str, Any], ...]:
    """The evidence seen, one entry per ``*_evidence`` question answered."""
    out = []
    for question in form.fields:
        if not question.id.endswith("_evidence") or question.id not in answers:
            continue
        stem = question.id.removesuffix("_evidence")
        out.append({
            "proves": stem,
            "type": answers[question.id],
            "reference": answers.get(f"{stem}_reference", ""),
            "seen_on": answers.get(f"{question.id}_seen_on"),
        })
    return tuple(out)


def esf_form_from_submission(submission: Submission, existing: EsfForm | None) -> EsfForm:
    """The EsfForm a submitted ESF participant form describes (not yet with its PDF)."""
    mapped = mapped_values(submission.form, submission.answers).get("esf_form", {})
    remote = bool(mapped.get("remote_delivery", False))
    signature_id = "" if remote else str(mapped.get("signature_attachment_id", ""))
    base = existing or EsfForm(participant_id=submission.participant_id)
    return base.replace(
        answers=unmapped_answers(submission.form, submission.answers),
        evidence=_evidence(submission.form, submission.answers),
        leaflet_acknowledged=bool(mapped.get("leaflet_acknowledged", False)),
        remote_delivery=remote,
        signature_owed=not signature_id,
        signed_on=mapped.get("signed_on") if signature_id else None,
        signature_attachment_id=signature_id,
        pdf_attachment_id="" if not signature_id else base.pdf_attachment_id,
        pdf_sha256="" if not signature_id else base.pdf_sha256,
    )


def esf_answers(esf: EsfForm, form: FormDefinition) -> dict[str, Any]:
    """Every answer of an EsfForm by question id (its own answers plus the mapped fields)."""
    answers = dict(esf.answers)
    answers.update(answers_from_targets(form, {"esf_form": esf}))
    return answers


def esf_document(esf: EsfForm, participant: Participant, programme_name: str,
                 signature_png: bytes | None, made_on: date,
                 form: FormDefinition | None = None) -> PrintableDocument:
    """The completed ESF participant form, laid out for the PDF and for printing."""
    form = form or load_form(ESF_FORM_ID)
    answers = esf_answers(esf, form)
    parts = [
        f"<h1>{html.escape(form.title)}</h1>",
        f"<p>{html.escape(programme_name)}<br>Participant: {html.escape(participant.display_name)}"
        f" ({html.escape(participant.participant_ref or participant.id)})</p>",
    ]
    for section in form.sections:
        rows = [q for q in section.fields if q.type != FieldType.SIGNATURE and q.id in answers]
        if not rows:
            continue
        parts.append(f"<h2>{html.escape(section.title)}</h2><table border='1' cellpadding='4' cellspacing='0' width='100%'>")
        for question in rows:
            parts.append(f"<tr><td width='55%'>{html.escape(question.label)}</td>"
                         f"<td>{html.escape(display_answer(question, answers[question.id]))}</td></tr>")
        parts.append("</table>")
    parts.append("<h2>Signature</h2>")
    signed = esf.signed_on.strftime("%d %B %Y") if esf.signed_on else "date not recorded"
    # An image Qt cannot decode would blank the whole page of the PDF: leave it out, and say so.
    readable = signature_png is not None and not QImage.fromData(signature_png).isNull()
    if readable:
        parts.append(f"<p><img src='{_SIGNATURE_IMAGE}' width='300'></p>")
        parts.append(f"<p>Signed by the participant on {html.escape(signed)}.</p>")
    elif signature_png:
        parts.append(f"<p>Signed by the participant on {html.escape(signed)}. The signature image held in "
                     "the Keyworker app could not be read, so it is not shown here.</p>")
    elif not esf.signature_owed and esf.signed_on is not None:
        parts.append(f"<p>Signed by the participant on {html.escape(signed)}. The signature itself is "
                     "not held in the Keyworker app (for example, the form was signed on paper).</p>")
    else:
        parts.append("<p>Not signed yet: support is remote and the signature is owed.</p>")
    parts.append(f"<p><small>Made on {made_on.strftime('%d %B %Y')} by the Keyworker app.</small></p>")
    images = {_SIGNATURE_IMAGE: signature_png} if readable and signature_png else {}
    return PrintableDocument(title=f"{form.title}: {participant.participant_ref or participant.id}",
                             html="\n".join(parts), images=images)


def is_signed_without_pdf(esf: EsfForm | None) -> bool:
    """Whether the form is marked signed, with a date, but no PDF of it was ever made."""
    return (esf is not None and not esf.signature_owed and esf.signed_on is not None
            and not esf.pdf_attachment_id)


def pdf_attachment(pdf: bytes, participant_id: str) -> Attachment:
    """The signed ESF form's PDF as an attachment."""
    return Attachment(participant_id=participant_id, name="esf-participant-form.pdf",
                      media_type=PDF_MEDIA_TYPE, sha256=sha256_hex(pdf), content=pdf)


@dataclass(frozen=True)
class EsfState:
    """What the ESF screen shows. ``attachments`` are the participant's, by id."""

    participant: Participant
    programme: Programme
    today: date
    esf_form: EsfForm | None = None
    attachments: Mapping[str, Attachment] = field(default_factory=dict)
    draft: Draft | None = None
    keyworker_id: str = ""


class EsfView(QWidget):
    """The ESF participant form, its signature status and its signed PDF."""

    sig_save = Signal(list)
    sig_save_form = Signal(list, str)   # records, the draft to discard once they are saved
    sig_save_draft = Signal(str, str, str, dict)
    sig_discard_draft = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._state: EsfState | None = None
        self.form_definition = load_form(ESF_FORM_ID)
        self.status = QLabel(self)
        self.status.setWordWrap(True)
        self.status.setStyleSheet("font-weight: bold;")
        self.form = FormView(self)
        self.form.cancel_button.hide()
        self.form.sig_save.connect(self._form_saved)
        self.form.sig_save_draft.connect(self.sig_save_draft)
        self.form.sig_discard_draft.connect(self.sig_discard_draft)
        self.pdf_box = QGroupBox("Signed form (PDF)", self)
        self.viewer = PdfViewer(self.pdf_box)
        self.make_pdf_button = QPushButton("Make the PDF", self.pdf_box)
        self.make_pdf_button.setAccessibleName("Make the PDF of the signed ESF form")
        self.make_pdf_button.clicked.connect(lambda _=False: self.make_pdf())
        self.make_pdf_button.hide()
        box_layout = QVBoxLayout(self.pdf_box)
        box_layout.addWidget(self.viewer)
        box_layout.addWidget(self.make_pdf_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.status)
        layout.addWidget(self.form, 3)
        layout.addWidget(self.pdf_box, 2)
        self._layout = layout

    def render(self, state: EsfState) -> None:
        self._state = state
        esf = state.esf_form
        if esf is None:
            initial: dict[str, Any] = {}
            if state.participant.gender:
                initial["gender"] = state.participant.gender
            if state.participant.date_of_birth:
                initial["date_of_birth"] = state.participant.date_of_birth
            self.status.setText("Not started. Fill in the form with the participant.")
        else:
            initial = esf_answers(esf, self.form_definition)
            if not esf.signature_owed:
                signed = esf.signed_on.strftime("%d %B %Y") if esf.signed_on else ""
                self.status.setText(f"Signed on {signed}.")
            elif esf.remote_delivery:
                self.status.setText("Remote delivery: the participant's signature is still owed.")
            else:
                self.status.setText("The participant's signature is still owed.")
        self.form.render(FormState(
            form=self.form_definition, participant_id=state.participant.id, today=state.today,
            draft_key=draft_key_for(state.participant.id, ESF_FORM_ID, esf.id if esf else "new"),
            initial=initial, draft=state.draft, assessor=state.keyworker_id,
            submit_label="Save ESF form", build=self._records))
        self._show_pdf(state)

    def _form_saved(self, records: list[Record]) -> None:
        form_state = self.form.state
        self.sig_save.emit(records)
        self.sig_save_form.emit(records, form_state.draft_key if form_state else "")

    def _show_pdf(self, state: EsfState) -> None:
        esf = state.esf_form
        pdf = state.attachments.get(esf.pdf_attachment_id) if esf and esf.pdf_attachment_id else None
        # Until there is a signed PDF the form gets all the room; the box says why it is empty.
        self._layout.setStretchFactor(self.pdf_box, 2 if pdf is not None else 0)
        can_make = is_signed_without_pdf(esf)
        self.make_pdf_button.setVisible(can_make)
        self.make_pdf_button.setEnabled(can_make)
        if esf is None or pdf is None:
            self.viewer.clear()
            if can_make:
                self.viewer.message.setText(
                    "This form is marked as signed, but there is no PDF of it (for example, it was "
                    "signed on paper). Make the PDF to view and print it.")
            elif esf is not None and esf.pdf_attachment_id:
                self.viewer.message.setText("The signed PDF is not held on this laptop.")
            else:
                self.viewer.message.setText("No PDF yet: it is made when the participant signs the form.")
            self.viewer.scroll.setVisible(False)
            self.viewer.print_button.setVisible(False)
            return
        self.viewer.scroll.setVisible(True)
        self.viewer.print_button.setVisible(True)
        self.viewer.show_pdf(pdf.content, esf.pdf_sha256)

    def make_pdf(self) -> bool:
        """Render the PDF of a form marked signed that has none, and emit it with the
        updated EsfForm. True when emitted."""
        state = self._state
        esf = state.esf_form if state is not None else None
        if state is None or esf is None or not is_signed_without_pdf(esf):
            return False
        signature = state.attachments.get(esf.signature_attachment_id) if esf.signature_attachment_id else None
        document = esf_document(esf, state.participant, state.programme.name,
                                signature.content if signature else None, state.today,
                                self.form_definition)
        attachment = pdf_attachment(render_pdf(document), state.participant.id)
        records: list[Record] = [
            attachment, esf.replace(pdf_attachment_id=attachment.id, pdf_sha256=attachment.sha256)]
        self.make_pdf_button.setEnabled(False)  # until the save renders the form again
        self.sig_save.emit(records)
        self.sig_save_form.emit(records, "")
        return True

    def _records(self, submission: Submission) -> list[Record]:
        state = self._state
        assert state is not None
        esf = esf_form_from_submission(submission, state.esf_form)
        records: list[Record] = list(submission.attachments)
        if esf.signature_attachment_id:  # signed: the PDF is made of exactly what was saved
            new = {a.id: a for a in submission.attachments}
            signature = new.get(esf.signature_attachment_id) or state.attachments.get(esf.signature_attachment_id)
            document = esf_document(esf, state.participant, state.programme.name,
                                    signature.content if signature else None, state.today,
                                    self.form_definition)
            pdf = render_pdf(document)
            attachment = pdf_attachment(pdf, state.participant.id)
            records.append(attachment)
            esf = esf.replace(pdf_attachment_id=attachment.id, pdf_sha256=attachment.sha256)
        records.append(esf)
        return records
