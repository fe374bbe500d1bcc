"""The synthetic caseload: varied, clearly fake, valid by the app's own rules, and repeatable."""

from __future__ import annotations

from collections import Counter
from datetime import date

import pytest

from keyworker_app import validators
from keyworker_app.codelists import load_codelist
from keyworker_app.forms import load_form, validate_answers
from keyworker_app.programmes import load_programme
from keyworker_app.records import Confidentiality, ConsentMethod, ConsentStatus, Participant
from keyworker_app.sharing import applicable_profiles
from keyworker_app.synthetic import SYNTHETIC_REF_PREFIX, CaseFile, generate_caseload

TODAY = date(2025, 6, 1)


@pytest.fixture(scope="module")
def caseload() -> list[CaseFile]:
    return list(generate_caseload(1000, seed=7, today=TODAY))


def _people(caseload: list[CaseFile]) -> list[Participant]:
    return [case.participant for case in caseload]


def test_names_are_varied(caseload: list[CaseFile]) -> None:
    names = [f"{p.given_name} {p.family_name}" for p in _people(caseload)]
    assert any("'" in n for n in names)                              # O'Connor, D'Souza
    assert any("-" in n for n in names)                              # Smith-Jones, Anne-Marie
    assert any(ch in n for n in names for ch in "ëâéóáíúłçș")        # Zoë, Siân, José, Chloé
    assert len(set(names)) > 700
    assert len({p.ethnicity for p in _people(caseload)}) >= 8


def test_identifiers_pass_the_validators_and_sit_in_test_ranges(caseload: list[CaseFile]) -> None:
    for p in _people(caseload):
        assert p.participant_ref.startswith(SYNTHETIC_REF_PREFIX)
        if p.ni_number:
            assert validators.ni_number(p.ni_number) == p.ni_number
            assert not p.ni_number.startswith("TN")
        if p.nhs_number:
            assert validators.nhs_number(p.nhs_number) == p.nhs_number
            assert p.nhs_number.startswith("999")
        assert validators.postcode(p.postcode) == p.postcode
        outward = p.postcode.split()[0]
        assert outward.rstrip("0123456789") in {"M", "SK", "OL", "BL", "WN", "LA"}
        assert validators.phone_number(p.phone) == p.phone
        assert p.phone.startswith("07700900") or p.phone.startswith("01614960")
        if p.email:
            assert validators.email(p.email) == p.email
            assert p.email.endswith(("@example.org", "@example.com"))
        assert p.date_of_birth is not None
        assert 16 <= validators.age_on(p.date_of_birth, TODAY) <= 70
    relationships = load_codelist("household_relationship")
    care = load_codelist("social_care_status")
    for case in caseload:
        for member in case.household_members:
            if member.nhs_number:
                validators.nhs_number(member.nhs_number)
            assert member.relationship in relationships
            assert not member.social_care_status or member.social_care_status in care


def test_workwell_people_live_in_lancaster() -> None:
    for case in generate_caseload(50, seed=1, programme="workwell", today=TODAY):
        assert case.participant.postcode.startswith("LA1 ")


def test_same_seed_same_caseload_and_different_seed_differs() -> None:
    first = list(generate_caseload(40, seed=3, today=TODAY))
    assert first == list(generate_caseload(40, seed=3, today=TODAY))
    assert first != list(generate_caseload(40, seed=4, today=TODAY))


def test_every_record_belongs_to_its_participant_and_ids_are_unique(caseload: list[CaseFile]) -> None:
    ids = Counter()
    for case in caseload:
        pid = case.participant.id
        for record in case.records():
            ids[record.id] += 1
            if record is not case.participant:
                assert getattr(record, "participant_id") == pid
    assert max(ids.values()) == 1


def test_assessment_answers_are_keyed_as_in_the_forms(caseload: list[CaseFile]) -> None:
    seen = Counter()
    for case in caseload[:300]:
        for assessment in case.assessments:
            form = load_form(assessment.form_id, assessment.form_version)
            result = validate_answers(form, assessment.answers, TODAY)
            assert result.ok, (assessment.form_id, result.errors)
            assert set(assessment.answers) == set(result.answers)  # nothing the form does not ask
            seen[assessment.form_id] += 1
        for esf in case.esf_forms:
            result = validate_answers(load_form("esf_participant"), esf.answers, TODAY)
            assert result.ok, result.errors
    assert {"initial_assessment", "barriers_to_work", "progress_review", "exit"} <= set(seen)


def test_barriers_show_distance_travelled(caseload: list[CaseFile]) -> None:
    improved = 0
    for case in caseload:
        for barrier in case.barriers:
            reviews = [r for r in case.barrier_reviews if r.barrier_id == barrier.id]
            assert 2 <= len(reviews) <= 4
            assert barrier.severity == reviews[-1].severity
            first = case.assessments[1].answers[f"{barrier.category}_severity"]
            improved += reviews[-1].severity < first
    assert improved > 500


def test_consents_cover_the_programmes_consent_based_profiles(caseload: list[CaseFile]) -> None:
    statuses, methods = Counter(), Counter()
    for case in caseload:
        p = case.participant
        expected = {x.id for x in applicable_profiles(p.programme, p.strand) if x.consent_required}
        assert {c.sharing_profile for c in case.consents} == expected
        notice = load_programme(p.programme).privacy_notice.version
        for c in case.consents:
            assert c.notice_version == notice
            statuses[c.status] += 1
            methods[c.method] += 1
            if c.method is ConsentMethod.VERBAL:
                assert c.witness
            if c.method is ConsentMethod.SIGNED:
                assert c.signature_attachment_id in {a.id for a in case.attachments}
            assert (c.withdrawn_on is not None) == (c.status is ConsentStatus.WITHDRAWN)
    assert set(statuses) == set(ConsentStatus) and set(methods) == set(ConsentMethod)


def test_the_caseload_has_the_variety_a_demo_needs(caseload: list[CaseFile]) -> None:
    notes = [n for case in caseload for n in case.case_notes]
    assert any(n.confidentiality is Confidentiality.SENSITIVE for n in notes)
    assert not any(n.confidentiality is Confidentiality.HEALTH_TEAM for n in notes)  # never on a laptop
    assert any(case.outcomes for case in caseload) and not all(case.outcomes for case in caseload)
    assert {case.participant.programme for case in caseload} == {
        "working_well", "working_well_ses", "early_help", "working_well_whp", "workwell"}
    for case in caseload:
        assert bool(case.household_members) == (case.participant.programme == "early_help")
        assert bool(case.esf_forms) == load_programme(case.participant.programme).esf_funded


def test_signature_attachment_is_a_valid_png() -> None:
    import hashlib
    import struct
    import zlib

    from keyworker_app.synthetic import _SIGNATURE_PNG, _SIGNATURE_SHA256

    png = _SIGNATURE_PNG
    assert png.startswith(b"\x89PNG\r\n\x1a\n")
    assert hashlib.sha256(png).hexdigest() == _SIGNATURE_SHA256
    chunks: list[tuple[bytes, bytes]] = []
    pos = 8
    while pos < len(png):
        (length,) = struct.unpack(">I", png[pos:pos + 4])
        kind, data = png[pos + 4:pos + 8], png[pos + 8:pos + 8 + length]
        (crc,) = struct.unpack(">I", png[pos + 8 + length:pos + 12 + length])
        assert zlib.crc32(kind + data) & 0xFFFFFFFF == crc, kind
        chunks.append((kind, data))
        pos += 12 + length
    assert pos == len(png)
    kinds = [kind for kind, _ in chunks]
    assert kinds[0] == b"IHDR" and kinds[-1] == b"IEND" and b"IDAT" in kinds
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", chunks[0][1])
    assert depth == 8 and interlace == 0
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[colour]
    raw = zlib.decompress(b"".join(data for kind, data in chunks if kind == b"IDAT"))
    assert len(raw) == height * (1 + width * channels)
    rows = [raw[r * (1 + width * channels):(r + 1) * (1 + width * channels)] for r in range(height)]
    assert all(row[0] == 0 for row in rows)                       # filter None, as written
    assert any(b < 0x80 for row in rows for b in row[1:])         # there are pen strokes
