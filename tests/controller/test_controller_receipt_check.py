"""The receipt check (controller.service.check_item) in-process, on fixture profiles.

These pin rules that the live tests cannot reach through whichever real profiles exist:
per-programme fields, the Health Team's confidential notes, assessment forms.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import msgspec
import pytest

from controller import profiles, service

# --- TEST FIXTURE PROFILES (not real sharing profiles) ---------------------------------
FIXTURE_PROFILES: list[dict[str, Any]] = [
    {
        "id": "fixture_notes",
        "records": {
            "case_note": ["summary", "confidentiality"],
            "assessment": ["form_id", "answers"],
        },
        "programmes": ["prog_a", "prog_b"],
        "strands": [],
        "assessment_forms": ["form_ok"],
    },
]


@pytest.fixture
def fixture_profiles(tmp_path: Path) -> Iterator[None]:
    path = tmp_path / "fixture-profiles.json"
    path.write_text(json.dumps(FIXTURE_PROFILES), "utf-8")
    profiles.use_profiles_file(path)
    yield
    profiles.use_profiles_file(None)


def _item(record_type: str, fields: dict[str, Any], programme: str = "prog_a") -> service.PushItem:
    record_id = str(uuid.uuid4())
    return service.PushItem(
        idempotency_key=f"{record_id}:1:fixture_notes", record_type=record_type,
        record_id=record_id, version=1, recipient="fixture_notes",
        participant_id=str(uuid.uuid4()), programme=programme, strand="", op="upsert",
        fields=fields,
    )


def _code(item: service.PushItem) -> str | None:
    result = service.check_item(item)
    return None if result is None else result.code


@pytest.mark.usefixtures("fixture_profiles")
def test_receipt_check_rules() -> None:
    assert _code(_item("case_note", {"summary": "s", "confidentiality": "standard"})) is None
    assert _code(_item("case_note", {"summary": "s", "confidentiality": "health_team"})) == (
        "health_team_confidential"
    )
    assert _code(_item("assessment", {"form_id": "form_ok"})) is None
    assert _code(_item("assessment", {"form_id": "form_other"})) == "form_not_in_profile"
    assert _code(_item("case_note", {}, programme="prog_c")) == "programme_not_in_profile"
    assert _code(_item("barrier", {})) == "record_type_not_in_profile"
    assert _code(_item("case_note", {"author": "x"})) == "field_not_in_profile"


@pytest.mark.usefixtures("fixture_profiles")
def test_rejection_reasons_never_hold_values() -> None:
    secret = "Jane Example has a diagnosis"
    result = service.check_item(_item("assessment", {"form_id": secret}))
    assert result is not None and secret not in (result.reason or "")


def test_packaged_profiles_apply_programme_overrides() -> None:
    import keyworker_app.sharing as sharing
    profiles.use_profiles_file(None)
    for profile in sharing.load_sharing_profiles().values():
        for programme in profile.programmes:
            resolved = profile.for_programme(programme)
            for record_type, fields in resolved.records.items():
                assert profiles.allowed_fields(profile.id, record_type, programme) == frozenset(fields)


_ENVELOPE = {"id": "record_id", "participant_id": "participant_id", "record_type": "record_type",
             "version": "version"}


@pytest.mark.usefixtures("fixture_profiles")
@pytest.mark.parametrize("sent", [
    {}, {"id"}, {"version"}, {"id", "participant_id"}, {"id", "participant_id", "record_type"},
    set(_ENVELOPE),
])
def test_identifier_fields_sent_must_each_equal_the_envelope(sent: set[str]) -> None:
    """Any identifiers may be sent; each one sent must equal its envelope value (by ==, so
    version 1.0 is 1), and the first that does not, in name order, is the one named."""
    item = _item("case_note", {"summary": "s"})
    same = {name: getattr(item, attribute) for name, attribute in _ENVELOPE.items() if name in sent}
    assert service.check_item(_item_with(item, same)) is None
    if "version" in sent:
        assert service.check_item(_item_with(item, {**same, "version": 1.0})) is None
    for wrong in sorted(sent):
        for other in ("someone-else", 2, None):
            result = service.check_item(_item_with(item, {**same, wrong: other}))
            assert result is not None and result.code == "identifier_mismatch"
            assert f"field '{wrong}'" in (result.reason or "")
    if len(sent) > 1:
        first, *rest = sorted(sent)
        result = service.check_item(_item_with(item, {**same, **{name: "x" for name in rest}, first: "x"}))
        assert result is not None and f"field '{first}'" in (result.reason or "")


def _item_with(item: service.PushItem, identifiers: dict[str, Any]) -> service.PushItem:
    return msgspec.structs.replace(item, fields={**item.fields, **identifiers})
