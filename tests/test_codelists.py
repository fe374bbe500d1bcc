"""Code lists: every shipped list loads, holds the official codes, and bad files are named."""

from __future__ import annotations

import json
from typing import Any

import pytest

from keyworker_app import records
from keyworker_app.codelists import (
    CodeListNotFound,
    MalformedCodeList,
    list_codelists,
    load_codelist,
    parse_codelist,
)
from keyworker_app.forms import load_form


@pytest.mark.parametrize("name", list_codelists())
def test_every_shipped_list_loads(name: str) -> None:
    codelist = load_codelist(name)
    assert codelist.id == name
    assert codelist.codes
    assert all(code.code in codelist for code in codelist.codes)


def test_lists_the_forms_need_are_shipped() -> None:
    assert {
        "mhsds_employment_status", "mhsds_weekly_hours_worked", "barrier_category", "gender",
        "ethnicity", "referral_source", "contact_type", "benefit_status",
        "yes_no_prefer_not_to_say", "esf_employment_status_on_entry", "esf_household_situation",
        "esf_isced_level", "esf_evidence_type", "esf_participant_data_field",
        "household_relationship", "social_care_status",
    } <= set(list_codelists())


def test_mhsds_employment_status_matches_the_data_dictionary() -> None:
    codelist = load_codelist("mhsds_employment_status")
    assert codelist.values == ("01", "02", "03", "04", "05", "06", "07", "08", "ZZ")
    assert codelist.label("01") == "Employed"
    assert codelist.label("02") == "Unemployed and actively seeking work"
    assert codelist.label("04") == (
        "Long-term sick or disabled, those receiving government sickness and disability benefits"
    )
    assert codelist.label("08") == "Retired"
    assert codelist.label("ZZ") == "Not stated (PERSON asked but declined to provide a response)"


def test_mhsds_weekly_hours_matches_the_data_dictionary() -> None:
    codelist = load_codelist("mhsds_weekly_hours_worked")
    assert codelist.values == ("01", "02", "03", "04", "97", "98", "99")
    assert codelist.label("02") == "Working 16 to 29 hours per week"
    assert codelist.label("98") == "Number of hours worked not known"
    assert codelist.label("99") == "Not known (not recorded)"


def test_membership_and_unknown_labels() -> None:
    codelist = load_codelist("mhsds_employment_status")
    assert "01" in codelist
    assert "09" not in codelist
    assert 1 not in codelist
    with pytest.raises(KeyError):
        codelist.label("09")


def test_lists_that_mirror_records_match_them() -> None:
    assert set(load_codelist("referral_source").values) == {s.value for s in records.ReferralSource}
    assert set(load_codelist("exit_reason").values) == {r.value for r in records.ExitReason}
    assert set(load_codelist("consent_method").values) == {m.value for m in records.ConsentMethod}
    assert set(load_codelist("consent_decision").values) <= {s.value for s in records.ConsentStatus}
    # records.CaseNote.contact_type documents its values in a comment, not an enum.
    assert set(load_codelist("contact_type").values) == {
        "face_to_face", "phone", "home_visit", "video", "email", "other"
    }
    assert set(load_codelist("yes_no_prefer_not_to_say").values) == {"yes", "no", "prefer_not_to_say"}


def test_ethnicity_has_the_19_ons_2021_categories_in_5_groups() -> None:
    codes = [c for c in load_codelist("ethnicity").codes if c.group]
    assert len(codes) == 19
    assert len({c.group for c in codes}) == 5


def test_esf_evidence_is_grouped_by_what_it_proves() -> None:
    groups = {c.group for c in load_codelist("esf_evidence_type").codes}
    assert groups == {"right_to_work", "age", "residency", "employment_status"}


def test_esf_data_fields_are_questions_on_the_esf_form() -> None:
    form_fields = {f.id for f in load_form("esf_participant").fields}
    assert set(load_codelist("esf_participant_data_field").values) <= form_fields


def test_loading_is_cached() -> None:
    assert load_codelist("gender") is load_codelist("gender")


@pytest.mark.parametrize("name", ["no_such_list", "../forms/consent.v1", "Gender"])
def test_unknown_list_is_a_typed_error(name: str) -> None:
    with pytest.raises(CodeListNotFound) as caught:
        load_codelist(name)
    assert f"{name}.json" in str(caught.value)


def _good() -> dict[str, Any]:
    return {"id": "demo", "version": 1, "title": "Demo", "codes": [{"code": "a", "label": "A"}]}


def test_a_good_list_parses() -> None:
    codelist = parse_codelist(json.dumps(_good()), "demo.json")
    assert codelist.values == ("a",)
    assert codelist.label("a") == "A"


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        (lambda d: d.pop("id"), "'id'"),
        (lambda d: d.pop("title"), "'title'"),
        (lambda d: d.update(version=0), "'version'"),
        (lambda d: d.update(version="1"), "'version'"),
        (lambda d: d.update(codes=[]), "'codes'"),
        (lambda d: d.update(codes={"a": "A"}), "'codes'"),
        (lambda d: d.update(colour="red"), "unknown keys"),
        (lambda d: d["codes"].append({"code": "a", "label": "Again"}), "more than once"),
        (lambda d: d["codes"].append({"code": "b"}), "code number 2 needs 'label'"),
        (lambda d: d["codes"].append({"code": "", "label": "B"}), "code number 2 needs 'code'"),
        (lambda d: d["codes"].append({"code": "b", "label": "B", "lable": "x"}), "unknown keys"),
        (lambda d: d["codes"].append({"code": "b", "label": "B", "group": 3}), "'group'"),
        (lambda d: d["codes"].append("b"), "not an object"),
    ],
)
def test_malformed_lists_say_which_file_and_what_is_wrong(change: Any, problem: str) -> None:
    data = _good()
    change(data)
    with pytest.raises(MalformedCodeList) as caught:
        parse_codelist(json.dumps(data), "demo.json")
    assert caught.value.source == "demo.json"
    assert "demo.json" in str(caught.value)
    assert problem in caught.value.problem


def test_invalid_json_and_wrong_top_level_are_named() -> None:
    with pytest.raises(MalformedCodeList, match="broken.json: not valid JSON"):
        parse_codelist('{"id": ', "broken.json")
    with pytest.raises(MalformedCodeList, match="one JSON object"):
        parse_codelist("[]", "list.json")


def test_household_lists_hold_the_codes_the_household_form_and_synthetic_data_use() -> None:
    from keyworker_app import synthetic

    relationship = load_codelist("household_relationship")
    care = load_codelist("social_care_status")
    assert set(synthetic._RELATIONSHIPS) <= set(relationship.values)
    assert set(synthetic._SOCIAL_CARE) <= set(care.values)
    assert {"none", "early_help_plan", "child_in_need_plan", "child_protection_plan",
            "looked_after_child", "care_leaver", "not_known"} <= set(care.values)
    form = load_form("household_member")
    assert (form.field("relationship").type, form.field("relationship").codelist) == ("choice", "household_relationship")
    assert (form.field("social_care_status").type, form.field("social_care_status").codelist) == (
        "choice", "social_care_status")
