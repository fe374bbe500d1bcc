"""The ESF participant form: fill, sign, PDF in the store, view and print."""

from __future__ import annotations

import hashlib
from datetime import date

from PySide6.QtCore import QBuffer, QByteArray, QIODevice, Qt
from PySide6.QtGui import QImage, QPdfWriter
from PySide6.QtPrintSupport import QPrintDialog

from keyworker_app.programmes import load_programme
from keyworker_app.records import Attachment, EsfForm
from record_support import (  # noqa: F401
    KEYWORKER, PROGRAMME, TODAY, draw_stroke, record_state, record_store, save_all, synthetic_participant,
)
from ui.esf import EsfState, EsfView, signatures_owed
from ui.pdf import print_pdf
from ui.record import ParticipantRecordView


def _esf_view(qtbot, store):
    participant = store.save(synthetic_participant())
    view = EsfView()
    qtbot.addWidget(view)
    view.resize(1000, 1400)
    view.show()

    def render() -> None:
        records = store.participant_file(participant.id, audit_view=False).records
        forms = records["esf_form"]
        view.render(EsfState(participant, load_programme(PROGRAMME), TODAY, forms[-1] if forms else None,
                             {a.id: a for a in records["attachment"]}, None, KEYWORKER))

    render()
    view.sig_save.connect(lambda records: (save_all(store, records), render()))
    return view, participant


def _fill_eligibility(form) -> None:
    answers = {
        "joined_on": "01/05/2025", "age_at_start": "40", "employment_status_on_entry": "unemployed",
        "long_term_unemployed": True, "disability": "no", "ethnic_minority": "prefer_not_to_say",
        "migrant_or_foreign_background": "no", "other_disadvantaged": "no",
        "homeless_or_housing_exclusion": "no", "education_level": "isced_3_4",
        "right_to_work_evidence": "rtw_passport", "right_to_work_evidence_seen_on": "01/05/2025",
        "right_to_work_reference": "123456789", "age_evidence": "age_passport",
        "age_evidence_seen_on": "01/05/2025", "residency_evidence": "res_council_tax_letter",
        "residency_evidence_seen_on": "01/05/2025", "employment_status_evidence": "status_jobcentre_plus_letter",
        "employment_status_evidence_seen_on": "01/05/2025", "leaflet_acknowledged": True,
    }
    for key, value in answers.items():
        form.set_answer(key, value)
    form.editor_object("household_situation").check("none_of_these").setChecked(True)


def test_complete_sign_and_make_the_pdf(qtbot, record_store) -> None:
    view, participant = _esf_view(qtbot, record_store)
    form = view.form
    # Gender and date of birth come from the participant's record.
    assert form.editor("gender").currentData() == "female"
    assert form.editor("date_of_birth").text() == "09/03/1985"
    _fill_eligibility(form)
    form.set_answer("remote_delivery", False)
    form.set_answer("signed_on", "14/05/2025")

    with qtbot.assertNotEmitted(view.sig_save):
        assert not form.submit()
    assert form.error_text("signature") == "This question needs an answer."

    pad = form.editor_object("signature").box.pad
    draw_stroke(qtbot, pad, [(20, 80), (80, 30), (150, 90), (220, 40)])
    with qtbot.waitSignal(view.sig_save) as saved:
        assert form.submit()
    records = saved.args[0]
    signature, pdf, esf = records
    assert isinstance(signature, Attachment) and signature.media_type == "image/png"
    assert isinstance(pdf, Attachment) and pdf.media_type == "application/pdf"
    assert isinstance(esf, EsfForm)
    assert pdf.content.startswith(b"%PDF")
    assert esf.pdf_attachment_id == pdf.id
    assert esf.pdf_sha256 == hashlib.sha256(pdf.content).hexdigest() == pdf.sha256
    assert esf.signature_attachment_id == signature.id and not esf.signature_owed
    assert esf.leaflet_acknowledged and not esf.remote_delivery
    assert esf.signed_on == date(2025, 5, 14)
    assert {e["proves"] for e in esf.evidence} == {"right_to_work", "age", "residency", "employment_status"}
    assert esf.answers["household_situation"] == ("none_of_these",)

    # Saved to the store and rendered again: the stored PDF is shown, its hash checked.
    stored = record_store.participant_file(participant.id, audit_view=False).records
    assert stored["esf_form"][0].pdf_sha256 == esf.pdf_sha256
    assert "Signed on 14 May 2025" in view.status.text()
    assert view.viewer.pdf == pdf.content
    assert "fingerprint matches" in view.viewer.message.text()
    assert view.viewer.print_button.isEnabled()
    # The viewer draws the stored PDF's own pages, and the PDF says what was signed.
    assert view.viewer.page_count >= 1
    shown = pdf_text(pdf.content)
    assert "Evidence seen of right to work in the UK" in shown
    assert "Signed by the participant on 14 May 2025" in shown
    assert "Testy Example (WW-000042)" in shown
    # Printing sends those same pages: print into an in-memory PDF and count them.
    out = QByteArray()
    buffer = QBuffer(out)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    writer = QPdfWriter(buffer)
    assert print_pdf(pdf.content, writer) == view.viewer.page_count
    del writer
    printed = bytes(out.data())
    assert printed.startswith(b"%PDF") and pdf_pages(printed) == view.viewer.page_count
    printer, dialog = view.viewer.printer_and_dialog()
    assert isinstance(dialog, QPrintDialog) and not dialog.isVisible()
    assert signatures_owed(stored["esf_form"]) == []


def pdf_pages(pdf: bytes) -> int:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    try:
        return len(document)
    finally:
        document.close()


def pdf_text(pdf: bytes) -> str:
    import pypdfium2 as pdfium

    document = pdfium.PdfDocument(pdf)
    try:
        return "\n".join(document[i].get_textpage().get_text_range() for i in range(len(document)))
    finally:
        document.close()


def test_a_damaged_stored_pdf_is_reported_not_shown(qtbot) -> None:
    from ui.pdf import PdfViewer

    viewer = PdfViewer()
    qtbot.addWidget(viewer)
    viewer.show_pdf(b"%PDF-1.4 this is not really a PDF", expected_sha256="0" * 64)
    assert "damaged" in viewer.message.text() and "does not match" in viewer.message.text()
    assert viewer.page_count == 0 and not viewer.print_button.isEnabled()


def test_remote_delivery_leaves_the_signature_owed(qtbot, record_store) -> None:
    view, participant = _esf_view(qtbot, record_store)
    form = view.form
    _fill_eligibility(form)
    form.set_answer("remote_delivery", True)
    form.set_answer("signature_arrangements", "Will sign at the next face-to-face meeting.")
    with qtbot.waitSignal(view.sig_save) as saved:
        assert form.submit()
    (esf,) = saved.args[0]
    assert esf.remote_delivery and esf.signature_owed and not esf.pdf_attachment_id
    assert "signature is still owed" in view.status.text()
    assert view.viewer.message.text().startswith("No PDF yet")
    assert not view.viewer.print_button.isVisible()
    stored = record_store.participant_file(participant.id, audit_view=False).records["esf_form"]
    assert [f.id for f in signatures_owed(stored)] == [esf.id]


def test_signatures_owed_lists_only_unsigned_forms() -> None:
    signed = EsfForm(participant_id="a", signature_owed=False, signature_attachment_id="s1")
    remote = EsfForm(participant_id="b", remote_delivery=True)
    unfinished = EsfForm(participant_id="c")
    assert signatures_owed([signed, remote, unfinished]) == [remote, unfinished]


# --- A form marked signed that has no PDF (signed on paper, or synthetic demo data) -----------

# A PNG header whose image data fails its checksum: Qt cannot decode it.
_UNREADABLE_PNG = bytes.fromhex(
    "89504e470d0a1a0a0000000d49484452000000010000000108060000001f15c489"
    "0000000d4944415478da63f8cfc0f01f0005000201a0a5b1f40000000049454e44ae426082")


def _png() -> bytes:
    image = QImage(120, 40, QImage.Format.Format_ARGB32)
    image.fill(0xFFFFFFFF)
    data = QByteArray()
    buffer = QBuffer(data)
    buffer.open(QIODevice.OpenModeFlag.WriteOnly)
    image.save(buffer, "PNG")
    return bytes(data.data())


def _signed_without_pdf(store, with_signature: bool, png: bytes | None = None):
    """A participant whose ESF form is marked signed on 2 May 2025 but has no PDF."""
    participant = store.save(synthetic_participant())
    signature_id = ""
    if with_signature:
        png = png if png is not None else _png()
        signature = store.save(Attachment(participant_id=participant.id, name="signature.png",
                                          media_type="image/png", sha256=hashlib.sha256(png).hexdigest(),
                                          content=png, purpose="esf_signature"))
        signature_id = signature.id
    store.save(EsfForm(participant_id=participant.id, answers={"joined_on": "2025-05-01", "age_at_start": 40},
                       leaflet_acknowledged=True, signature_owed=False, signed_on=date(2025, 5, 2),
                       signature_attachment_id=signature_id))
    return participant


def _render_esf(view, store, participant) -> None:
    records = store.participant_file(participant.id, audit_view=False).records
    view.render(EsfState(participant, load_programme(PROGRAMME), TODAY, records["esf_form"][-1],
                         {a.id: a for a in records.get("attachment", [])}, None, KEYWORKER))


def test_make_the_pdf_of_a_signed_form_that_has_none(qtbot, record_store) -> None:
    participant = _signed_without_pdf(record_store, with_signature=True)
    view = EsfView()
    qtbot.addWidget(view)
    view.resize(1000, 1400)
    view.show()
    view.sig_save.connect(lambda records: (save_all(record_store, records), _render_esf(view, record_store, participant)))
    _render_esf(view, record_store, participant)
    assert view.status.text() == "Signed on 02 May 2025."
    assert "No PDF yet" not in view.viewer.message.text()
    assert "no PDF of it" in view.viewer.message.text()
    assert view.make_pdf_button.isVisible() and view.make_pdf_button.accessibleName()
    assert signatures_owed(record_store.participant_file(participant.id, audit_view=False).records["esf_form"]) == []

    with qtbot.waitSignal(view.sig_save) as saved:
        qtbot.mouseClick(view.make_pdf_button, Qt.MouseButton.LeftButton)
    pdf, esf = saved.args[0]
    assert isinstance(pdf, Attachment) and pdf.media_type == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and pdf.participant_id == participant.id
    assert isinstance(esf, EsfForm)
    assert esf.pdf_attachment_id == pdf.id
    assert esf.pdf_sha256 == hashlib.sha256(pdf.content).hexdigest() == pdf.sha256
    assert esf.signed_on == date(2025, 5, 2) and not esf.signature_owed
    shown = pdf_text(pdf.content)
    assert "Signed by the participant on 02 May 2025" in shown
    assert "Testy Example (WW-000042)" in shown

    # Saved and shown: the stored PDF, its fingerprint checked; nothing more to make.
    (stored,) = record_store.participant_file(participant.id, audit_view=False).records["esf_form"]
    assert (stored.pdf_attachment_id, stored.pdf_sha256) == (pdf.id, pdf.sha256)
    assert view.viewer.pdf == pdf.content
    assert "fingerprint matches" in view.viewer.message.text()
    assert not view.make_pdf_button.isVisible()


def test_the_pdf_of_a_form_signed_on_paper_says_so(qtbot, record_store) -> None:
    participant = _signed_without_pdf(record_store, with_signature=False)
    view = ParticipantRecordView()
    qtbot.addWidget(view)
    view.resize(1200, 900)
    view.show()
    view.render(record_state(record_store, participant.id))
    view.show_section("esf")
    assert view.esf.make_pdf_button.isVisible()
    # From the record, the PDF goes out as a form save with no draft to discard.
    with qtbot.waitSignal(view.sig_save_form) as saved:
        qtbot.mouseClick(view.esf.make_pdf_button, Qt.MouseButton.LeftButton)
    records, draft_key = saved.args
    assert draft_key == ""
    pdf, esf = records
    assert pdf.content.startswith(b"%PDF") and esf.pdf_sha256 == hashlib.sha256(pdf.content).hexdigest()
    assert "(for example, the form was signed on paper)" in pdf_text(pdf.content)


def test_an_unreadable_signature_image_does_not_blank_the_pdf(qtbot, record_store) -> None:
    participant = _signed_without_pdf(record_store, with_signature=True, png=_UNREADABLE_PNG)
    view = EsfView()
    qtbot.addWidget(view)
    _render_esf(view, record_store, participant)
    with qtbot.waitSignal(view.sig_save) as saved:
        assert view.make_pdf()
    pdf, _esf = saved.args[0]
    shown = pdf_text(pdf.content)
    assert "Testy Example (WW-000042)" in shown
    assert "could not be read" in shown
