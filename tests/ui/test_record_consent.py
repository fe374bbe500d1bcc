"""Consent: notice, per-recipient choices, signature pad, verbal consent and withdrawal."""

from __future__ import annotations

import html
import re

from PySide6.QtCore import QPointF
from PySide6.QtGui import QImage

from keyworker_app.programmes import load_programme
from keyworker_app.records import Attachment, Consent, ConsentMethod, ConsentStatus
from keyworker_app.sharing import latest_consent, load_sharing_profiles
from record_support import (  # noqa: F401
    KEYWORKER, PROGRAMME, TODAY, draw_stroke, record_store, save_all, synthetic_participant,
)
from ui.consent import (
    ConsentState, ConsentView, consent_profiles, lawful_basis_text, shared_fields_text,
    withdrawal_text,
)
from ui.signature import SignaturePad


def _consent_view(qtbot, store) -> tuple[ConsentView, object]:
    participant = store.save(synthetic_participant())
    view = ConsentView()
    qtbot.addWidget(view)
    view.resize(900, 1000)
    view.show()

    def render() -> None:
        consents = tuple(store.participant_file(participant.id, audit_view=False).records["consent"])
        view.render(ConsentState(participant, load_programme(PROGRAMME), consents, TODAY, KEYWORKER))

    render()
    view.sig_save.connect(lambda records: (save_all(store, records), render()))
    return view, participant


def test_signature_pad_captures_mouse_strokes_as_png(qtbot) -> None:
    pad = SignaturePad()
    qtbot.addWidget(pad)
    pad.resize(400, 150)
    pad.show()
    assert pad.is_empty()
    with qtbot.waitSignal(pad.sig_changed):
        draw_stroke(qtbot, pad, [(20, 100), (60, 40), (120, 90), (200, 50)])
    assert not pad.is_empty()
    assert len(pad.strokes) == 1 and len(pad.strokes[0]) >= 3
    png = pad.to_png()
    image = QImage.fromData(png)
    assert png.startswith(b"\x89PNG") and image.width() == 400
    # Ink where the stroke went, white far away from it.
    assert image.pixelColor(20, 100).lightness() < 200
    assert image.pixelColor(390, 5).lightness() == 255
    with qtbot.waitSignal(pad.sig_changed):
        pad.clear()
    assert pad.is_empty()


def test_the_notice_and_each_recipient_are_explained(qtbot, record_store) -> None:
    view, _ = _consent_view(qtbot, record_store)
    text = view.notice.toPlainText()
    assert "Who we share it with" in text and "Version 1k" in view.notice_heading.text()
    profiles = consent_profiles(load_programme(PROGRAMME), "ips")
    assert {p.id for p in profiles} == {"employer", "referrer_updates"}
    employer = view.box("employer")
    # As read on screen: the labels are rich text (bold headings, the fields as a list).
    labels = html.unescape(re.sub(r"<[^>]+>", " ", " ".join(
        label.text() for label in employer.findChildren(type(view.notice_heading)))))
    labels = re.sub(r"\s+", " ", labels).replace(" :", ":")
    assert "The participant's employer" in employer.title()
    assert "Why: Keep your employer up to date" in labels
    assert "First name" in labels and "Last name" in labels  # field labels from the forms
    assert "Article 6(1)(a): your consent" in labels
    assert "Now: Not asked yet." in labels
    assert "given_name" not in shared_fields_text(load_sharing_profiles()["employer"])
    assert "Article 9" not in lawful_basis_text(load_sharing_profiles()["employer"])


def test_written_consent_with_signature_then_withdrawal(qtbot, record_store) -> None:
    view, participant = _consent_view(qtbot, record_store)
    view.box("employer").agree.click()
    view.box("referrer_updates").refuse.click()
    view.signed.click()
    assert view.signature.isVisible()

    # Signing is required for written consent.
    with qtbot.assertNotEmitted(view.sig_save):
        view.record_button.click()
    assert "sign" in view.error.text()

    draw_stroke(qtbot, view.signature.pad, [(30, 80), (90, 30), (160, 85), (230, 40)])
    with qtbot.waitSignal(view.sig_save) as saved:
        view.record_button.click()
    records = saved.args[0]
    signature = records[0]
    assert isinstance(signature, Attachment) and signature.media_type == "image/png"
    assert signature.content.startswith(b"\x89PNG")
    consents = [r for r in records if isinstance(r, Consent)]
    by_profile = {c.sharing_profile: c for c in consents}
    assert by_profile["employer"].status is ConsentStatus.GIVEN
    assert by_profile["referrer_updates"].status is ConsentStatus.REFUSED
    for consent in consents:
        assert consent.method is ConsentMethod.SIGNED
        assert consent.signature_attachment_id == signature.id
        assert consent.notice_version == "Version 1k, 19.07.2021"
        assert consent.given_on is not None

    # After saving and rendering again: status shown, withdrawal offered and explained.
    employer = view.box("employer")
    assert employer.status.text().startswith("Now: Agreed on")
    assert employer.withdraw.isVisible()
    assert employer.withdraw_note.text() == (
        "Withdrawing stops sharing everything listed above with The participant's employer. "
        "Data already shared will be told to stop.")
    assert employer.withdraw.accessibleDescription() == withdrawal_text(employer.profile)
    assert not view.box("referrer_updates").withdraw.isVisible()

    with qtbot.waitSignal(view.sig_save) as withdrawn:
        employer.withdraw.click()
    assert withdrawn.args[0][0].status is ConsentStatus.WITHDRAWN
    stored = record_store.participant_file(participant.id, audit_view=False).records["consent"]
    latest = latest_consent(stored, "employer", participant.id)
    assert latest is not None and latest.status is ConsentStatus.WITHDRAWN and latest.withdrawn_on
    assert view.box("employer").status.text().startswith("Now: Withdrawn")
    assert not view.box("employer").withdraw.isVisible()
    attachments = record_store.participant_file(participant.id, audit_view=False).records["attachment"]
    assert [a.id for a in attachments] == [signature.id]


def test_verbal_consent_records_the_keyworker_as_witness(qtbot, record_store) -> None:
    view, participant = _consent_view(qtbot, record_store)
    view.box("referrer_updates").agree.click()
    view.verbal.click()
    assert not view.signature.isVisible()
    with qtbot.waitSignal(view.sig_save) as saved:
        view.record_button.click()
    (consent,) = saved.args[0]
    assert consent.method is ConsentMethod.VERBAL and consent.witness == KEYWORKER
    assert consent.signature_attachment_id == ""
    assert view.box("referrer_updates").withdraw.isVisible()


def test_nothing_chosen_says_what_to_do(qtbot, record_store) -> None:
    view, _ = _consent_view(qtbot, record_store)
    view.verbal.click()
    with qtbot.assertNotEmitted(view.sig_save):
        assert not view.record()
    assert "at least one recipient" in view.error.text()


def test_touch_and_tablet_input_paths_draw_too(qtbot) -> None:
    pad = SignaturePad()
    qtbot.addWidget(pad)
    pad._begin(QPointF(5, 5))
    pad._extend(QPointF(50, 50))
    pad._end(QPointF(60, 40))
    assert not pad.is_empty() and len(pad.strokes[0]) == 3
