"""Sharing profiles: they load, broken ones are refused, and the projection sends only what it may."""

from __future__ import annotations

import json
from dataclasses import fields as dataclass_fields
from datetime import date, datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from keyworker_app.records import (
    RECORD_TYPE_BY_NAME,
    Barrier,
    CaseNote,
    Confidentiality,
    Consent,
    ConsentMethod,
    ConsentStatus,
    Enrolment,
    Outcome,
    OutcomeKind,
    Participant,
    Record,
)
from keyworker_app.sharing import (
    IDENTIFIER_FIELDS,
    HeldBack,
    HoldReason,
    OneOffShareError,
    Share,
    SharingProfile,
    SharingProfileError,
    applicable_profiles,
    load_sharing_profiles,
    parse_sharing_profile,
    project,
    project_one_off,
    read_sharing_profiles,
)

TODAY = date(2025, 6, 1)
WHEN = datetime(2025, 3, 1, 10, tzinfo=timezone.utc)
PROFILES = load_sharing_profiles()


def person(programme: str = "working_well_ses", strand: str = "ips", **changes: Any) -> Participant:
    return Participant(
        programme=programme, strand=strand, given_name="Siân", family_name="O'Connor",
        nhs_number="9990000018", ni_number="AB123456C", health_summary="Anxiety.",
        disability="yes", disability_description="Hearing loss.", phone="07700900123", **changes,
    )


def consent(p: Participant, profile: str, status: ConsentStatus = ConsentStatus.GIVEN, **changes: Any) -> Consent:
    values: dict[str, Any] = {"method": ConsentMethod.VERBAL, "witness": "KW-0001", "given_on": WHEN, **changes}
    return Consent(participant_id=p.id, sharing_profile=profile, status=status, **values)


def outcome(p: Participant) -> Outcome:
    return Outcome(participant_id=p.id, kind=OutcomeKind.JOB_START, outcome_on=TODAY,
                   employer="Example Ltd", job_title="Barista", weekly_hours=20.0)


# --- Every shipped profile -----------------------------------------------------------------


def test_every_shipped_profile_loads() -> None:
    assert {
        "referrer_updates", "employer", "controller_evaluation", "esf_audit", "nhs_digital_mhsds",
        "dwp_jobcentre_plus", "health_team_referral", "adhoc_delivery_partner", "individuals_at_risk",
        "research_partner_evaluation", "early_help_partner_agency", "national_research_linkage",
        "delivery_case_record",
    } <= set(PROFILES)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
def test_every_field_named_exists_and_special_category_needs_article_9(profile_id: str) -> None:
    profile = PROFILES[profile_id]
    for programme in profile.programmes:
        resolved = profile.for_programme(programme)
        for record_type, names in resolved.records.items():
            record_class = RECORD_TYPE_BY_NAME[record_type]
            assert set(names) <= {f.name for f in dataclass_fields(record_class)}
            if resolved.article_9 is None:
                assert not set(names) & record_class.special_category


def test_lawful_bases_follow_the_notices() -> None:
    assert (PROFILES["referrer_updates"].article_6, PROFILES["referrer_updates"].consent_required) == ("6(1)(a)", True)
    assert PROFILES["controller_evaluation"].article_9 == "9(2)(g)"
    assert PROFILES["controller_evaluation"].for_programme("working_well_whp").article_9 == "9(2)(j)"
    assert (PROFILES["esf_audit"].article_6, PROFILES["esf_audit"].article_9) == ("6(1)(e)", "9(2)(b)")
    assert (PROFILES["nhs_digital_mhsds"].programmes, PROFILES["nhs_digital_mhsds"].strands) == (
        ("working_well_ses",), ("ips",))
    at_risk = PROFILES["individuals_at_risk"]
    assert (at_risk.article_6, at_risk.article_9, at_risk.one_off, at_risk.requires_reason) == (
        "6(1)(d)", "9(2)(c)", True, True)
    assert PROFILES["national_research_linkage"].records["participant"] == (
        "given_name", "family_name", "date_of_birth", "gender", "address_line1", "address_line2", "town", "postcode")


@pytest.mark.parametrize("programme", ["working_well_ses", "working_well_whp"])
def test_an_employer_never_receives_nhs_numbers_or_health_details(programme: str) -> None:
    employer = PROFILES["employer"].for_programme(programme)
    never = {"nhs_number", "health_summary", "gp_name", "gp_practice", "condition_summary", "health_visitor"}
    for names in employer.records.values():
        assert not set(names) & never
    assert "barrier" not in employer.records and "case_note" not in employer.records
    # Only the Work and Health Programme's notice allows a description of disability (seed 003).
    allowed = "disability_description" in employer.fields_for("participant")
    assert allowed == (programme == "working_well_whp")


def test_applicable_profiles_respect_programme_and_strand() -> None:
    ips = {p.id for p in applicable_profiles("working_well_ses", "ips")}
    supported = {p.id for p in applicable_profiles("working_well_ses", "supported_employment")}
    assert "nhs_digital_mhsds" in ips and "nhs_digital_mhsds" not in supported
    assert {p.id for p in applicable_profiles("early_help")} == {
        "delivery_case_record", "early_help_partner_agency", "national_research_linkage"}
    assert all(p.programmes == ("working_well_whp",) for p in applicable_profiles("working_well_whp"))


# --- Broken profiles ---------------------------------------------------------------------------


def good_profile() -> dict[str, Any]:
    text = resources.files("resources").joinpath("sharing", "employer.json").read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text)
    return data


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[key] = value
    return change


def _drop(key: str) -> Callable[[dict[str, Any]], None]:
    return lambda data: data.pop(key)


def _records(record_type: str, names: list[str]) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["records"][record_type] = names
    return change


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "missing key": (_drop("purpose"), "missing keys ['purpose']"),
    "unknown key": (_set("colour", "blue"), "unknown keys ['colour']"),
    "unknown record type": (_records("horoscope", ["sign"]), "unknown record type 'horoscope'"),
    "unknown field": (_records("participant", ["given_name", "shoe_size"]), "'shoe_size', which is not a field"),
    "special category without article 9": (
        _records("participant", ["given_name", "nhs_number"]), "'nhs_number', which is special category"),
    "bad article 6": (_set("article_6", "consent"), "'article_6' must be like"),
    "bad article 9": (_set("article_9", "9(9)"), "'article_9' must be null or like"),
    "no programmes": (_set("programmes", []), "at least one programme"),
    "override for another programme": (
        _set("programme_overrides", {"workwell": {"article_9": None}}), "not in 'programmes'"),
    "consent without a question": (_set("consent_question", ""), "must say what is asked"),
    "objection without a purpose": (_set("stops_on_objection", True), "needs an 'objection_purpose'"),
    "reason without one-off": (_set("requires_reason", True), "only applies to a one-off"),
    "not a flag": (_set("consent_required", "yes"), "'consent_required' must be true or false"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_profile_is_refused_naming_file_and_problem(case: str) -> None:
    change, problem = BROKEN[case]
    data = good_profile()
    change(data)
    with pytest.raises(SharingProfileError) as caught:
        parse_sharing_profile(json.dumps(data), "employer.json")
    assert caught.value.source == "employer.json"
    assert problem in caught.value.problem


def test_an_override_cannot_smuggle_special_category_data() -> None:
    data = good_profile()
    data["programme_overrides"]["working_well_whp"]["article_9"] = None
    with pytest.raises(SharingProfileError, match="special category"):
        parse_sharing_profile(json.dumps(data), "employer.json")


def test_a_file_whose_id_differs_from_its_name_is_refused(tmp_path: Path) -> None:
    (tmp_path / "boss.json").write_text(json.dumps(good_profile()), encoding="utf-8")
    with pytest.raises(SharingProfileError, match="does not match the file name"):
        read_sharing_profiles(tmp_path)


def test_not_json_is_refused() -> None:
    with pytest.raises(SharingProfileError, match="not valid JSON"):
        parse_sharing_profile("{", "employer.json")


# --- The projection --------------------------------------------------------------------------


def test_a_share_holds_only_the_profiles_fields_and_identifiers() -> None:
    p = person()
    shared = project(p, PROFILES["nhs_digital_mhsds"], p, [], TODAY)
    assert isinstance(shared, Share)
    assert set(shared.fields) == set(IDENTIFIER_FIELDS) | set(PROFILES["nhs_digital_mhsds"].records["participant"])
    assert shared.fields["participant_id"] == p.id and shared.fields["record_type"] == "participant"
    assert "given_name" not in shared.fields


def test_values_are_json_ready() -> None:
    p = person(date_of_birth=date(1990, 2, 3), objections=())
    o = Outcome(participant_id=p.id, kind=OutcomeKind.EXIT, outcome_on=TODAY, onward_referrals=("CAB",))
    shared = project(o, PROFILES["delivery_case_record"], p, [], TODAY)
    assert isinstance(shared, Share)
    assert shared.fields["kind"] == "exit" and shared.fields["outcome_on"] == "2025-06-01"
    assert shared.fields["onward_referrals"] == ["CAB"]
    json.dumps(dict(shared.fields))


def test_mhsds_holds_back_a_participant_not_on_ips() -> None:
    p = person(strand="supported_employment")
    assert project(p, PROFILES["nhs_digital_mhsds"], p, [], TODAY) == HeldBack(HoldReason.STRAND_NOT_COVERED)


def test_a_profile_for_another_programme_holds_back() -> None:
    p = person(programme="early_help", strand="")
    assert project(p, PROFILES["esf_audit"], p, [], TODAY) == HeldBack(HoldReason.PROGRAMME_NOT_COVERED)


def test_a_record_type_outside_the_profile_holds_back() -> None:
    p = person()
    note = CaseNote(participant_id=p.id, summary="Talked about work.")
    assert project(note, PROFILES["employer"], p, [consent(p, "employer")], TODAY) == HeldBack(
        HoldReason.NOT_IN_PROFILE)


def test_evaluation_holds_back_a_participant_who_objected() -> None:
    p = person(objections=("evaluation",))
    assert project(p, PROFILES["controller_evaluation"], p, [], TODAY) == HeldBack(HoldReason.OBJECTED)
    # An objection to evaluation does not stop the ESF audit, which it is not about.
    assert isinstance(project(p, PROFILES["esf_audit"], p, [], TODAY), Share)


def test_evaluation_goes_without_an_objection_and_without_names() -> None:
    p = person()
    shared = project(p, PROFILES["controller_evaluation"], p, [], TODAY)
    assert isinstance(shared, Share) and "given_name" not in shared.fields  # seed 001: no names


@pytest.mark.parametrize(
    ("decisions", "reason"),
    [
        ([], HoldReason.CONSENT_MISSING),
        ([ConsentStatus.REFUSED], HoldReason.CONSENT_REFUSED),
        ([ConsentStatus.WITHDRAWN], HoldReason.CONSENT_WITHDRAWN),
        ([ConsentStatus.GIVEN, ConsentStatus.WITHDRAWN], HoldReason.CONSENT_WITHDRAWN),
        ([ConsentStatus.REFUSED, ConsentStatus.GIVEN], None),
    ],
)
def test_the_latest_consent_decides(decisions: list[ConsentStatus], reason: HoldReason | None) -> None:
    p = person()
    consents = [
        consent(p, "referrer_updates", status, given_on=WHEN + timedelta(days=n))
        for n, status in enumerate(decisions)
    ]
    result = project(outcome(p), PROFILES["referrer_updates"], p, list(reversed(consents)), TODAY)
    if reason is None:
        assert isinstance(result, Share)
    else:
        assert result == HeldBack(reason)


def test_consent_for_another_profile_or_person_does_not_count() -> None:
    p, other = person(), person()
    consents = [consent(p, "employer"), consent(other, "referrer_updates")]
    assert project(outcome(p), PROFILES["referrer_updates"], p, consents, TODAY) == HeldBack(
        HoldReason.CONSENT_MISSING)


def test_a_consent_marked_withdrawn_by_date_counts_as_withdrawn() -> None:
    p = person()
    c = consent(p, "employer", withdrawn_on=WHEN + timedelta(days=2))
    assert project(outcome(p), PROFILES["employer"], p, [c], TODAY) == HeldBack(HoldReason.CONSENT_WITHDRAWN)


@pytest.mark.parametrize("profile_id", sorted(PROFILES))
def test_restricted_processing_holds_everything_back(profile_id: str) -> None:
    profile = PROFILES[profile_id]
    programme = profile.programmes[0]
    p = person(programme=programme, strand=profile.strands[0] if profile.strands else "", restricted=True)
    consents = [consent(p, profile_id)]
    expected = HoldReason.ONE_OFF_ONLY if profile.one_off else HoldReason.RESTRICTED
    for record in (p, outcome(p), Enrolment(participant_id=p.id), Barrier(participant_id=p.id)):
        result = project(record, profile, p, consents, TODAY)
        if record.record_type in profile.for_programme(programme).records:
            assert result == HeldBack(expected)
        else:
            assert isinstance(result, HeldBack)


def test_health_team_notes_are_never_shared_even_by_a_malformed_profile() -> None:
    p = person(programme="working_well_whp", strand="")
    malformed = SharingProfile(
        id="leaky", recipient="Anyone", recipient_type="", purpose="Testing", article_6="6(1)(e)",
        article_9="9(2)(h)", programmes=("working_well_whp",), records={"case_note": ("summary",)},
    )
    secret = CaseNote(participant_id=p.id, summary="Clinical detail.", confidentiality=Confidentiality.HEALTH_TEAM)
    assert project(secret, malformed, p, [], TODAY) == HeldBack(HoldReason.HEALTH_TEAM_CONFIDENTIAL)
    one_off = SharingProfile(
        id="leaky_once", recipient="Anyone", recipient_type="", purpose="Testing", article_6="6(1)(d)",
        article_9="9(2)(c)", programmes=("working_well_whp",), records={"case_note": ("summary",)},
        one_off=True, requires_reason=True,
    )
    assert project_one_off(secret, one_off, p, ["summary"], "Risk of harm") == HeldBack(
        HoldReason.HEALTH_TEAM_CONFIDENTIAL)
    for profile in PROFILES.values():
        assert isinstance(project(secret, profile, p, [consent(p, profile.id)], TODAY), HeldBack)


def test_one_off_profiles_never_go_routinely() -> None:
    p = person(programme="working_well_ses")
    assert project(p, PROFILES["individuals_at_risk"], p, [], TODAY) == HeldBack(HoldReason.ONE_OFF_ONLY)


def test_a_one_off_share_sends_only_the_chosen_fields_with_a_reason() -> None:
    p = person(programme="working_well_ses", restricted=True)
    profile = PROFILES["individuals_at_risk"]
    shared = project_one_off(p, profile, p, ["given_name", "phone"], "Said they feel unsafe at home")
    assert isinstance(shared, Share)
    assert set(shared.fields) == set(IDENTIFIER_FIELDS) | {"given_name", "phone"}
    with pytest.raises(OneOffShareError):
        project_one_off(p, profile, p, ["given_name"], "  ")
    with pytest.raises(OneOffShareError, match="ni_number"):
        project_one_off(p, profile, p, ["ni_number"], "Risk of harm")
    with pytest.raises(OneOffShareError):
        project_one_off(p, PROFILES["employer"], p, ["given_name"], "Risk of harm")


def test_a_record_of_another_participant_is_a_programming_error() -> None:
    p, other = person(), person()
    with pytest.raises(ValueError):
        project(outcome(other), PROFILES["delivery_case_record"], p, [], TODAY)


# --- Property: nothing outside the profile ever leaves ----------------------------------------

_TEXT = st.text(max_size=8)


def _records_strategy() -> st.SearchStrategy[Record]:
    def build(record_type: type[Record]) -> st.SearchStrategy[Record]:
        text_fields = {
            f.name: _TEXT for f in dataclass_fields(record_type)
            if f.type == "str" and f.name not in ("id", "participant_id")
        }
        return st.builds(record_type, **text_fields)  # type: ignore[arg-type]
    return st.one_of([build(t) for t in RECORD_TYPE_BY_NAME.values()])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    record=_records_strategy(),
    profile_id=st.sampled_from(sorted(PROFILES)),
    restricted=st.booleans(),
    objected=st.booleans(),
    status=st.sampled_from(list(ConsentStatus) + [None]),
    confidentiality=st.sampled_from(list(Confidentiality)),
)
def test_no_field_outside_the_profile_ever_leaves(
    record: Record, profile_id: str, restricted: bool, objected: bool,
    status: ConsentStatus | None, confidentiality: Confidentiality,
) -> None:
    profile = PROFILES[profile_id]
    programme = profile.programmes[0]
    p = person(programme=programme, strand=profile.strands[0] if profile.strands else "",
               restricted=restricted, objections=("evaluation", "research") if objected else ())
    if isinstance(record, Participant):
        record = p
    else:
        record = record.replace(participant_id=p.id)
    if isinstance(record, CaseNote):
        record = record.replace(confidentiality=confidentiality)
    consents = [] if status is None else [consent(p, profile_id, status)]
    result = project(record, profile, p, consents, TODAY)
    if isinstance(result, Share):
        allowed = set(profile.for_programme(programme).fields_for(record.record_type)) | set(IDENTIFIER_FIELDS)
        assert set(result.fields) <= allowed
        assert not restricted
        assert not (isinstance(record, CaseNote) and record.confidentiality is Confidentiality.HEALTH_TEAM)
        json.dumps(dict(result.fields))

