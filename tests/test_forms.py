"""Forms as data: every shipped form loads, broken forms are refused by name, and answers
are checked, tidied and dropped when their question is not shown."""

from __future__ import annotations

import copy
import json
from collections.abc import Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from keyworker_app import forms
from keyworker_app.forms import (
    Condition,
    FieldType,
    FormDefinitionError,
    FormNotFound,
    is_shown,
    list_forms,
    load_form,
    parse_form,
    validate_answers,
)

TODAY = date(2024, 6, 15)
SHIPPED = {
    "registration", "referral", "initial_assessment", "barriers_to_work", "progress_review",
    "action_plan", "exit", "esf_participant", "consent", "household_member", "job_start",
    "sustainment",
}


# --- The shipped forms ------------------------------------------------------------------------

def test_every_form_is_shipped_and_loads() -> None:
    assert {form.id for form in list_forms()} == SHIPPED


@pytest.mark.parametrize("form_id", sorted(SHIPPED))
def test_each_form_round_trips_its_file(form_id: str) -> None:
    form = load_form(form_id)
    assert form.version >= 1
    assert form.title
    ids = [f.id for f in form.fields]
    assert len(ids) == len(set(ids))
    for question in form.fields:
        assert question.label
        if question.type in (FieldType.CHOICE, FieldType.MULTICHOICE):
            assert question.options()


def test_registration_covers_the_fields_the_notices_list() -> None:
    mapped = {f.maps_to for f in load_form("registration").fields}
    for name in [
        "given_name", "family_name", "date_of_birth", "address_line1", "postcode", "phone",
        "email", "ni_number", "nhs_number", "gender", "ethnicity", "language",
        "interpreter_needed", "nationality", "country_of_birth", "religion", "marital_status",
        "disability", "employment_status", "weekly_hours_worked", "benefit_status",
        "education", "gp_name", "gp_practice", "health_visitor",
    ]:
        assert f"participant.{name}" in mapped


def test_load_form_by_version_and_unknown_forms() -> None:
    assert load_form("consent", 1) is load_form("consent")
    with pytest.raises(FormNotFound):
        load_form("no_such_form")
    with pytest.raises(FormNotFound, match="version 99"):
        load_form("consent", 99)


def test_field_lookup() -> None:
    form = load_form("registration")
    assert form.field("ni_number").type is FieldType.NI_NUMBER
    with pytest.raises(KeyError):
        form.field("shoe_size")


# --- Versions and file names --------------------------------------------------------------------

@pytest.fixture
def forms_folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    monkeypatch.setattr(forms, "_forms_folder", lambda: tmp_path)
    forms._read_form.cache_clear()
    yield tmp_path
    forms._read_form.cache_clear()


def _minimal(form_id: str = "demo", version: int = 1) -> dict[str, Any]:
    return {
        "id": form_id, "version": version, "title": "Demo",
        "sections": [{"id": "main", "title": "Main", "fields": [
            {"id": "name", "label": "Name", "type": "text"},
        ]}],
    }


def test_latest_version_is_the_default(forms_folder: Path) -> None:
    for version in (1, 2, 10):
        (forms_folder / f"demo.v{version}.json").write_text(json.dumps(_minimal(version=version)))
    assert load_form("demo").version == 10
    assert load_form("demo", 2).version == 2
    assert [f.version for f in list_forms()] == [10]


def test_file_name_must_match_the_form(forms_folder: Path) -> None:
    (forms_folder / "demo.v2.json").write_text(json.dumps(_minimal(version=1)))
    with pytest.raises(FormDefinitionError, match="demo.v2.json: its id and version"):
        load_form("demo")


def test_badly_named_file_is_refused(forms_folder: Path) -> None:
    (forms_folder / "demo.json").write_text(json.dumps(_minimal()))
    with pytest.raises(FormDefinitionError, match="demo.json: form files must be named"):
        list_forms()


# --- Broken definitions ---------------------------------------------------------------------------

def _form(*fields: dict[str, Any]) -> dict[str, Any]:
    data = _minimal()
    data["sections"][0]["fields"] = [
        {"id": "in_work", "label": "In work?", "type": "boolean"},
        {"id": "status", "label": "Status", "type": "choice", "codelist": "mhsds_employment_status"},
        *fields,
    ]
    return data


def _refusal(data: dict[str, Any]) -> str:
    with pytest.raises(FormDefinitionError) as caught:
        parse_form(json.dumps(data), "demo.v1.json")
    assert caught.value.source == "demo.v1.json"
    assert str(caught.value).startswith("Form demo.v1.json: ")
    return caught.value.problem


def test_the_base_of_the_broken_cases_is_itself_fine() -> None:
    form = parse_form(json.dumps(_form({"id": "x", "label": "X", "type": "integer", "min": 1})), "demo.v1.json")
    assert form.field("x").minimum == Decimal(1)


def _field(**changes: Any) -> dict[str, Any]:
    return {"id": "q", "label": "Question", "type": "text", **changes}


@pytest.mark.parametrize(
    ("field", "problem"),
    [
        (_field(type="colour"), "unknown type 'colour'"),
        (_field(id="in_work"), "'in_work' appears more than once"),
        (_field(label=""), "'label' must be text"),
        (_field(required="yes"), "'required' must be true or false"),
        (_field(colour="red"), "unknown keys 'colour'"),
        ({"id": "q", "type": "text"}, "missing 'label'"),
        (_field(id="Bad Id"), "must be lower case"),
        (_field(type="choice"), "must have one"),
        (_field(codelist="gender"), "only choice and multichoice"),
        (_field(type="choice", codelist="no_such_list"), "'no_such_list', which cannot be loaded"),
        (_field(type="choice", codelist="esf_evidence_type", codelist_group="shoe_size"),
         "has no group 'shoe_size'"),
        (_field(codelist_group="age"), "needs a 'codelist'"),
        (_field(type="integer", min=5, max=1), "'min' is greater than 'max'"),
        (_field(type="decimal", min=2.5, max=2.4), "'min' is greater than 'max'"),
        (_field(type="integer", min=1.5), "whole number"),
        (_field(type="integer", max="10"), "must be a number"),
        (_field(min=1), "only applies to integer"),
        (_field(type="integer", max_length=3), "only applies to text"),
        (_field(max_length=0), "1 or more"),
        (_field(maps_to="participant.shoe_size"), "not a record field"),
        (_field(maps_to="spaceship.name"), "not a record field"),
        (_field(shown_when={"field": "nowhere", "equals": True}), "'nowhere', which is not an earlier"),
        (_field(required_when={"field": "nowhere", "equals": True}), "'nowhere', which is not an earlier"),
        (_field(shown_when={"field": "q", "equals": True}), "'q', which is not an earlier"),
        (_field(shown_when={"any": [{"field": "in_work", "equals": True},
                                    {"field": "later", "equals": 1}]}), "'later'"),
        (_field(shown_when={"field": "in_work", "equals": "yes"}), "compare with true or false"),
        (_field(shown_when={"field": "status", "in": ["01", "42"]}), "'42' is not an option of 'status'"),
        (_field(shown_when={"field": "status", "in": []}), "non-empty list"),
        (_field(shown_when={"field": "status", "equals": ["01"]}), "text, numbers or true/false"),
        (_field(shown_when={"field": "status", "is": "01"}), "must be {field, equals}"),
        (_field(shown_when={"all": []}), "non-empty list of conditions"),
        (_field(shown_when="in_work"), "must be a JSON object"),
        (_field(required=True, required_when={"field": "in_work", "equals": True}),
         "both 'required' and 'required_when'"),
    ],
)
def test_broken_question_is_refused_with_the_reason(field: dict[str, Any], problem: str) -> None:
    assert problem in _refusal(_form(field))


def test_a_question_that_comes_later_cannot_be_referred_to() -> None:
    data = _form()
    data["sections"].append(
        {"id": "later", "title": "Later", "fields": [_field(id="later_q")]}
    )
    data["sections"][0]["fields"].append(_field(shown_when={"field": "later_q", "equals": "x"}))
    assert "'later_q', which is not an earlier question" in _refusal(data)


def test_duplicate_ids_across_sections_are_refused() -> None:
    data = _form()
    data["sections"].append({"id": "other", "title": "Other", "fields": [_field(id="status")]})
    assert "'status' appears more than once" in _refusal(data)


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("title"), "missing 'title'"),
        (lambda d: d.pop("sections"), "missing 'sections'"),
        (lambda d: d.update(version=0), "'version'"),
        (lambda d: d.update(version=True), "'version'"),
        (lambda d: d.update(sections=[]), "'sections' must be a non-empty list"),
        (lambda d: d.update(author="me"), "unknown keys 'author'"),
        (lambda d: d["sections"][0].update(fields=[]), "'fields' must be a non-empty list"),
        (lambda d: d["sections"][0].pop("title"), "section 1 is missing 'title'"),
        (lambda d: d["sections"].append(copy.deepcopy(d["sections"][0])), "appears more than once"),
        (lambda d: d["sections"].append({"id": "main", "title": "Again", "fields": [_field(id="z")]}),
         "two sections have the same id"),
        (lambda d: d["sections"].append("section"), "must be a JSON object"),
    ],
)
def test_broken_form_is_refused_with_the_reason(change: Any, problem: str) -> None:
    data = _minimal()
    change(data)
    assert problem in _refusal(data)


def test_invalid_json_is_named() -> None:
    with pytest.raises(FormDefinitionError, match="demo.v1.json: not valid JSON"):
        parse_form("{", "demo.v1.json")


# --- Conditions ---------------------------------------------------------------------------------

def test_condition_semantics() -> None:
    in_work = Condition("equals", "in_work", (True,))
    assert in_work.holds({"in_work": True})
    assert not in_work.holds({"in_work": False})
    assert not in_work.holds({})
    assert not in_work.holds({"in_work": 1})  # a number is not a yes
    assert not Condition("equals", "n", (1,)).holds({"n": True})
    several = Condition("in", "barriers", ("housing", "debt_finances"))
    assert several.holds({"barriers": ("transport", "housing")})
    assert not several.holds({"barriers": ("transport",)})
    assert several.holds({"barriers": "housing"})
    both = Condition("all", parts=(in_work, several))
    either = Condition("any", parts=(in_work, several))
    answers = {"in_work": True, "barriers": ["transport"]}
    assert not both.holds(answers)
    assert either.holds(answers)
    assert list(both.fields()) == ["in_work", "barriers"]


def test_is_shown_follows_shown_when() -> None:
    form = load_form("registration")
    employer = form.field("employer_name")
    assert not is_shown(employer, {})
    assert not is_shown(employer, {"employment_status": "02"})
    assert is_shown(employer, {"employment_status": "01"})
    assert is_shown(form.field("given_name"), {})


# --- Answering forms ----------------------------------------------------------------------------

def _registration() -> dict[str, Any]:
    return {
        "given_name": " Sam ", "family_name": "Jones", "date_of_birth": "31/01/1990",
        "address_line1": "1 Market Street", "postcode": "m1 1ae", "phone": "+44 7700 900123",
        "email": "sam@Example.COM", "ni_number": "ab 12 34 56 c", "nhs_number": "943 476 5919",
        "gender": "female", "employment_status": "02", "interpreter_needed": False,
    }


def test_registration_answers_are_tidied() -> None:
    result = validate_answers(load_form("registration"), _registration(), today=TODAY)
    assert result.ok, result.errors
    assert dict(result.answers) == {
        "given_name": "Sam", "family_name": "Jones", "date_of_birth": date(1990, 1, 31),
        "address_line1": "1 Market Street", "postcode": "M1 1AE", "phone": "07700900123",
        "email": "sam@example.com", "ni_number": "AB123456C", "nhs_number": "9434765919",
        "gender": "female", "employment_status": "02", "interpreter_needed": False,
    }


def test_missing_and_wrong_answers_are_listed_in_form_order_with_labels() -> None:
    answers = _registration() | {"given_name": "", "postcode": "nowhere", "nhs_number": "9434765918"}
    del answers["date_of_birth"]
    result = validate_answers(load_form("registration"), answers, today=TODAY)
    assert not result.ok
    assert [e.field for e in result.errors] == ["given_name", "date_of_birth", "postcode", "nhs_number"]
    assert result.errors[0].label == "First name"
    assert result.error_for("given_name") == "This question needs an answer."
    assert "postcode" in (result.error_for("postcode") or "")
    assert result.error_for("family_name") is None
    # An answer that failed is not kept.
    assert "postcode" not in result.answers
    assert result.answers["family_name"] == "Jones"


def test_answers_to_hidden_and_unknown_questions_are_dropped() -> None:
    answers = _registration() | {"employer_name": "Acme", "job_role": "Porter", "shoe_size": 9}
    result = validate_answers(load_form("registration"), answers, today=TODAY)
    assert result.ok
    assert "employer_name" not in result.answers
    assert "shoe_size" not in result.answers


def test_follow_up_questions_are_checked_only_when_shown() -> None:
    form = load_form("registration")
    in_work = _registration() | {"employment_status": "01", "employer_name": "Acme"}
    result = validate_answers(form, in_work, today=TODAY)
    assert [e.field for e in result.errors] == ["weekly_hours_worked"]
    result = validate_answers(form, in_work | {"weekly_hours_worked": "02"}, today=TODAY)
    assert result.ok
    assert result.answers["employer_name"] == "Acme"


def test_required_when() -> None:
    form = load_form("registration")
    wants_interpreter = _registration() | {"interpreter_needed": True}
    assert validate_answers(form, wants_interpreter, today=TODAY).error_for("language")
    assert validate_answers(form, wants_interpreter | {"language": "Polish"}, today=TODAY).ok
    # Not needed, so may be left blank, and is kept when given.
    result = validate_answers(form, _registration() | {"language": "Urdu"}, today=TODAY)
    assert result.ok
    assert result.answers["language"] == "Urdu"


def test_hiding_cascades_to_questions_that_depend_on_hidden_ones() -> None:
    form = load_form("action_plan")
    answers = {
        "kind": "return_to_work", "goal": "Get a job", "agreed_on": "2024-06-01",
        "step_1_action": "Update CV",
        # Left over from when the plan was Thrive in Work:
        "employer_aware": True, "employer_support": "Flexible hours",
    }
    result = validate_answers(form, answers, today=TODAY)
    assert result.ok
    assert "employer_aware" not in result.answers
    assert "employer_support" not in result.answers
    answers["kind"] = "thrive_in_work"
    result = validate_answers(form, answers, today=TODAY)
    assert result.answers["employer_support"] == "Flexible hours"


def test_exit_form_job_questions_and_decimal_hours() -> None:
    form = load_form("exit")
    leaving = {"exit_on": "2024-06-01", "exit_reason": "completed", "got_job": True,
               "further_support": False}
    result = validate_answers(form, leaving, today=TODAY)
    assert {e.field for e in result.errors} == {"job_start_on", "employer", "job_title", "weekly_hours"}
    job = {"job_start_on": "03/06/2024", "employer": "Acme", "job_title": "Porter", "weekly_hours": "22.5"}
    result = validate_answers(form, leaving | job, today=TODAY)
    assert result.ok, result.errors
    assert result.answers["weekly_hours"] == Decimal("22.5")
    result = validate_answers(form, leaving | job | {"weekly_hours": "81"}, today=TODAY)
    assert result.error_for("weekly_hours") == "Please type a number from 0 to 80."
    result = validate_answers(form, leaving | job | {"got_job": False}, today=TODAY)
    assert result.ok
    assert "employer" not in result.answers


def test_barriers_follow_the_categories_chosen() -> None:
    form = load_form("barriers_to_work")
    answers: dict[str, Any] = {"identified_on": "2024-06-01", "categories": ["housing", "transport"],
                               "housing_severity": "4", "debt_finances_severity": 5}
    result = validate_answers(form, answers, today=TODAY)
    assert [e.field for e in result.errors] == ["transport_severity"]
    assert result.answers["categories"] == ("housing", "transport")
    assert result.answers["housing_severity"] == 4
    assert "debt_finances_severity" not in result.answers
    answers["transport_severity"] = 6
    result = validate_answers(form, answers, today=TODAY)
    assert result.error_for("transport_severity") == "Please type a number from 1 to 5."
    answers["categories"] = ["housing", "flying"]
    result = validate_answers(form, answers, today=TODAY)
    assert result.error_for("categories") == "That isn't one of the options. Please choose from the list."


def test_code_list_membership_and_groups() -> None:
    form = load_form("esf_participant")
    evidence = form.field("right_to_work_evidence")
    assert {c.group for c in evidence.options()} == {"right_to_work"}
    result = validate_answers(form, {"right_to_work_evidence": "age_passport", "gender": "robot"}, today=TODAY)
    assert result.error_for("right_to_work_evidence")
    assert result.error_for("gender")
    result = validate_answers(form, {"right_to_work_evidence": "rtw_passport"}, today=TODAY)
    assert result.error_for("right_to_work_evidence") is None


def _esf() -> dict[str, Any]:
    return {
        "gender": "male", "date_of_birth": "2000-02-01", "joined_on": "2024-06-03", "age_at_start": 24,
        "employment_status_on_entry": "unemployed", "long_term_unemployed": True,
        "household_situation": ["jobless_household"], "disability": "prefer_not_to_say",
        "ethnic_minority": "no", "migrant_or_foreign_background": "no", "other_disadvantaged": "no",
        "homeless_or_housing_exclusion": "no", "education_level": "isced_3_4",
        "right_to_work_evidence": "rtw_passport", "right_to_work_evidence_seen_on": "2024-06-03",
        "right_to_work_reference": "123456789", "age_evidence": "age_passport",
        "age_evidence_seen_on": "2024-06-03", "residency_evidence": "res_council_tax_letter",
        "residency_evidence_seen_on": "2024-06-03", "employment_status_evidence": "status_self_declaration",
        "employment_status_evidence_seen_on": "2024-06-03", "leaflet_acknowledged": True,
        "remote_delivery": False, "signature": "attachment-1", "signed_on": "2024-06-03",
    }


def test_esf_form_signature_or_remote_delivery() -> None:
    form = load_form("esf_participant")
    assert validate_answers(form, _esf(), today=TODAY).ok
    remote = _esf() | {"remote_delivery": True}
    result = validate_answers(form, remote, today=TODAY)
    assert [e.field for e in result.errors] == ["signature_arrangements"]
    assert "signature" not in result.answers
    unsigned = _esf()
    del unsigned["signature"]
    assert [e.field for e in validate_answers(form, unsigned, today=TODAY).errors] == ["signature"]


def test_esf_age_range_and_date_of_birth_use_today() -> None:
    form = load_form("esf_participant")
    result = validate_answers(form, _esf() | {"age_at_start": 15, "date_of_birth": "2010-01-01"}, today=TODAY)
    assert result.error_for("age_at_start") == "Please type a number from 16 to 100."
    assert "younger than 16" in (result.error_for("date_of_birth") or "")
    # The same birthday is fine a few years on.
    assert validate_answers(form, _esf() | {"date_of_birth": "2010-01-01"}, today=date(2026, 1, 1)).ok


def test_date_of_birth_ages_come_from_min_and_max() -> None:
    data = _minimal()
    data["sections"][0]["fields"] = [
        {"id": "born", "label": "Child's date of birth", "type": "date_of_birth", "min": 0, "max": 17},
    ]
    form = parse_form(json.dumps(data), "demo.v1.json")
    assert validate_answers(form, {"born": "2020-01-01"}, today=TODAY).ok
    assert "older than 17" in (validate_answers(form, {"born": "2000-01-01"}, today=TODAY).error_for("born") or "")


def test_consent_witness_or_signature_by_method() -> None:
    form = load_form("consent")
    base = {"notice_version": "1k", "notice_explained": True, "consent_referrer": "given",
            "consent_employer": "refused", "consent_specialist_services": "given",
            "consent_health_team": "refused", "given_on": "2024-06-03"}
    assert validate_answers(form, base | {"method": "verbal"}, today=TODAY).error_for("witness")
    assert validate_answers(form, base | {"method": "verbal", "witness": "KW-0001"}, today=TODAY).ok
    signed = validate_answers(form, base | {"method": "signed", "witness": "KW-0001"}, today=TODAY)
    assert [e.field for e in signed.errors] == ["signature"]
    assert "witness" not in signed.answers


def test_text_length_defaults_and_limits() -> None:
    form = load_form("referral")
    answers = {"source_type": "self", "received_on": "2024-06-01", "given_name": "A" * 101,
               "family_name": "B", "reason": "x" * 1001}
    result = validate_answers(form, answers, today=TODAY)
    assert {e.field for e in result.errors} == {"given_name", "reason"}
    assert "100 characters or fewer" in (result.error_for("given_name") or "")


def test_result_answers_cannot_be_changed() -> None:
    result = validate_answers(load_form("registration"), _registration(), today=TODAY)
    with pytest.raises(TypeError):
        result.answers["given_name"] = "Changed"  # type: ignore[index]
