"""Programme packs: every seed programme loads, and each kind of broken pack is refused."""

from __future__ import annotations

import dataclasses
import json
import shutil
from importlib import resources
from pathlib import Path
from typing import Any, Callable

import pytest

from keyworker_app.programmes import (
    ProgrammeNotFound,
    ProgrammePackError,
    known_form_ids,
    list_programmes,
    load_notice,
    load_programme,
    read_programmes,
)
from keyworker_app.sharing import load_sharing_profiles

SEED_PROGRAMMES = {"working_well", "working_well_ses", "early_help", "working_well_whp", "workwell"}
FORM_IDS = {"registration", "referral", "initial_assessment", "barriers_to_work", "progress_review",
            "action_plan", "exit", "esf_participant", "consent", "household_member", "job_start",
            "sustainment"}


def test_every_seed_programme_has_a_pack_that_loads() -> None:
    assert {p.id for p in list_programmes()} == SEED_PROGRAMMES


def test_the_packs_say_what_the_notices_say() -> None:
    ses = load_programme("working_well_ses")
    assert (ses.max_months("ips"), ses.max_months("supported_employment")) == (13, 18)
    assert ses.privacy_notice.version == "Version 1k, 19.07.2021"
    assert ses.esf_funded and "nhs_digital_mhsds" in ses.recipients
    whp = load_programme("working_well_whp")
    assert whp.max_months() == 21 and whp.esf_funded and whp.collects_gp_details
    assert whp.privacy_notice.version == "last updated 16 January 2020"
    assert "health_team_referral" in whp.recipients
    early_help = load_programme("early_help")
    assert early_help.records_household_members and not early_help.esf_funded
    assert not early_help.uses_form("esf_participant")
    workwell = load_programme("workwell")
    assert set(workwell.action_plan_kinds) == {"return_to_work", "thrive_in_work"}
    assert {"dwp_jobcentre_plus", "research_partner_evaluation"} <= set(workwell.recipients)
    assert workwell.controllers[0].name == "Lancaster City Council"


@pytest.mark.parametrize("programme_id", sorted(SEED_PROGRAMMES))
def test_each_pack_is_consistent_with_its_profiles_forms_and_notice(programme_id: str) -> None:
    programme = load_programme(programme_id)
    profiles = load_sharing_profiles()
    assert set(programme.forms) <= FORM_IDS
    for profile_id in programme.recipients:
        assert programme_id in profiles[profile_id].programmes
    notice = load_notice(programme.privacy_notice.id)
    assert notice.version == programme.privacy_notice.version
    assert notice.programme == programme_id and notice.sections


def test_the_shipped_forms_are_the_ones_checked() -> None:
    forms = known_form_ids()
    if forms is None:
        pytest.skip("no form definitions in resources/forms yet")
    assert FORM_IDS <= forms


def test_an_unknown_programme_is_a_typed_error() -> None:
    with pytest.raises(ProgrammeNotFound):
        load_programme("no_such_programme")
    with pytest.raises(ProgrammeNotFound):
        load_notice("../../etc/passwd")


# --- Broken packs ------------------------------------------------------------------------------


@pytest.fixture
def pack_folder(tmp_path: Path) -> Path:
    """A copy of the shipped packs, to break one of them."""
    folder = tmp_path / "programmes"
    folder.mkdir()
    source = resources.files("resources").joinpath("programmes")
    for entry in source.iterdir():
        if entry.name.endswith(".json"):
            (folder / entry.name).write_text(entry.read_text(encoding="utf-8"), encoding="utf-8")
    return folder


def _set(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data[key] = value
    return change


def _strand_months(months: int) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["strands"][0]["max_duration_months"] = months
    return change


def _rule(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def change(data: dict[str, Any]) -> None:
        data["retention"]["rules"][0][key] = value
    return change


BROKEN: dict[str, tuple[Callable[[dict[str, Any]], None], str]] = {
    "missing key": (lambda d: d.pop("recipients"), "missing keys ['recipients']"),
    "unknown key": (_set("budget", 1), "unknown keys ['budget']"),
    "unknown sharing profile": (_set("recipients", ["delivery_case_record", "astrologer"]),
                                "unknown sharing profile 'astrologer'"),
    "recipient left out": (_set("recipients", ["delivery_case_record"]), "'recipients' does not name it"),
    "unknown form": (_set("forms", ["registration", "horoscope"]), "unknown form 'horoscope'"),
    "negative duration": (_set("max_duration_months", -3), "'max_duration_months' must be a whole number"),
    "negative strand duration": (_strand_months(-1), "'max_duration_months' must be a whole number"),
    "strand longer than programme": (_strand_months(40), "lasts longer than the programme"),
    "duration as text": (_set("max_duration_months", "18"), "'max_duration_months' must be a whole number"),
    "no controllers": (_set("controllers", []), "at least one organisation"),
    "wrong notice version": (_set("privacy_notice", {"id": "working_well_ses", "version": "Version 2"}),
                             "is version 'Version 1k, 19.07.2021'"),
    "missing notice": (_set("privacy_notice", {"id": "nowhere", "version": "1"}), "has no file"),
    "bad retention basis": (_rule("basis", "forever"), "'basis' must be one of"),
    "bad retention date": (_rule("until", "2034-13-01"), "must be a date"),
    "no default retention rule": (_rule("record_types", ["esf_form"]), "exactly one rule"),
    "negative purge days": (lambda d: d["retention"].update(laptop_purge_after_days=-1), "laptop_purge_after_days"),
    "ESF form without ESF": (_set("esf_funded", False), "not ESF-funded"),
    "not a flag": (_set("records_household_members", "no"), "must be true or false"),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_a_broken_pack_is_refused_naming_file_and_problem(pack_folder: Path, case: str) -> None:
    change, problem = BROKEN[case]
    path = pack_folder / "working_well_ses.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    change(data)
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(ProgrammePackError) as caught:
        read_programmes(pack_folder, form_ids=frozenset(FORM_IDS))
    assert caught.value.source == "working_well_ses.json"
    assert problem in caught.value.problem, caught.value.problem


def test_a_pack_must_be_named_after_its_id(pack_folder: Path) -> None:
    (pack_folder / "workwell.json").rename(pack_folder / "work_well.json")
    with pytest.raises(ProgrammePackError, match="does not match the file name"):
        read_programmes(pack_folder)


def test_a_profile_naming_a_programme_without_a_pack_is_refused(pack_folder: Path) -> None:
    (pack_folder / "early_help.json").unlink()
    with pytest.raises(ProgrammePackError) as caught:
        read_programmes(pack_folder)
    assert "early_help" in caught.value.problem


def test_a_new_programme_needs_no_code(pack_folder: Path, tmp_path: Path) -> None:
    """A new JSON pack (with its notice) is picked up as it stands."""
    data = json.loads((pack_folder / "workwell.json").read_text(encoding="utf-8"))
    data.update(id="workwell_morecambe", name="WorkWell (Morecambe)", recipients=["delivery_case_record"],
                privacy_notice={"id": "workwell_morecambe", "version": "1"})
    (pack_folder / "workwell_morecambe.json").write_text(json.dumps(data), encoding="utf-8")
    notices = tmp_path / "notices"
    shutil.copytree(str(resources.files("resources").joinpath("notices")), notices)
    (notices / "workwell_morecambe.json").write_text(json.dumps({
        "id": "workwell_morecambe", "programme": "workwell_morecambe", "title": "WorkWell Morecambe",
        "version": "1", "sections": [{"heading": "About", "paragraphs": ["Plain words."]}],
    }), encoding="utf-8")
    profiles = dict(load_sharing_profiles())
    case_record = profiles["delivery_case_record"]
    profiles["delivery_case_record"] = dataclasses.replace(
        case_record, programmes=case_record.programmes + ("workwell_morecambe",))
    programmes = read_programmes(pack_folder, profiles=profiles, notices=notices)
    assert programmes["workwell_morecambe"].name == "WorkWell (Morecambe)"
