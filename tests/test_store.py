"""The store: every record type round-trips; versions, tombstones, outbox, search."""

from __future__ import annotations

import dataclasses
import enum
import typing
from datetime import date, datetime, timezone
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from keyworker_app.errors import RecordNotFound, VersionConflict
from keyworker_app.records import (
    RECORD_TYPES, Consent, ConsentStatus, Participant, Record, record_fields,
)
from keyworker_app.store.store import Store, fts_query


def sample_value(hint: Any, name: str, n: int) -> Any:
    """A distinctive, non-default value for a field, so a dropped column shows up."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin in (typing.Union, __import__("types").UnionType):
        return sample_value(next(a for a in args if a is not type(None)), name, n)
    if hint is bool:
        return True
    if hint is int:
        return 4 + n
    if hint is float:
        return 37.5
    if hint is str:
        return f"{name} ✓ O'Brien-Żółć {n}"
    if hint is bytes:
        return bytes(range(256)) * 3
    if hint is date:
        return date(1987, 2, 28)
    if hint is datetime:
        return datetime(2026, 3, 4, 5, 6, 7, tzinfo=timezone.utc)
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return list(hint)[-1]
    if origin is tuple:
        inner = args[0]
        if typing.get_origin(inner) is not None:  # tuple of mappings
            return ({"action": "ring the college", "done": True, "n": [1, 2]},)
        return ("evaluation", "marketing")
    return {"q1": "yes", "q2": 3, "nested": {"a": ["b", "c"]}}


def full_record(record_type: type[Record], participant_id: str, n: int = 1) -> Record:
    hints = typing.get_type_hints(record_type)
    values = {f.name: sample_value(hints[f.name], f.name, n) for f in dataclasses.fields(record_type)
              if f.name not in ("id", "version", "created_at", "updated_at")}
    if "participant_id" in values:
        values["participant_id"] = participant_id
    return record_type(**values)


def test_every_record_type_round_trips(store: Store) -> None:
    participant = store.save(full_record(Participant, ""))
    for record_type in RECORD_TYPES:
        original = participant if record_type is Participant else store.save(full_record(record_type, participant.id))
        loaded = store.repo(record_type).get(original.id)
        for name in record_fields(record_type):
            assert getattr(loaded, name) == getattr(original, name), f"{record_type.record_type}.{name}"
        assert loaded.version == 1
        assert original.id in [r.id for r in store.repo(record_type).for_participant(participant.id)]


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture], deadline=None)
@given(given_name=st.text(max_size=60), family_name=st.text(max_size=60),
       dob=st.one_of(st.none(), st.dates()))
def test_any_text_round_trips(store: Store, given_name: str, family_name: str, dob: date | None) -> None:
    saved = store.save(Participant(given_name=given_name, family_name=family_name, date_of_birth=dob))
    loaded = store.participants.get(saved.id)
    assert (loaded.given_name, loaded.family_name, loaded.date_of_birth) == (given_name, family_name, dob)


def test_versions_bump_and_stale_writes_conflict(store: Store) -> None:
    v1 = store.save(Participant(given_name="Anne-Marie", family_name="Lee"))
    v2 = store.save(v1.replace(phone="07700 900123"))
    assert (v1.version, v2.version) == (1, 2)
    with pytest.raises(VersionConflict):
        store.save(v1.replace(phone="07700 900999"))  # edited from an old copy
    assert store.participants.get(v1.id).phone == "07700 900123"
    with pytest.raises(VersionConflict):
        store.save(Participant(id=v1.id, version=0, given_name="dup"))


def test_every_change_writes_outbox_and_audit_in_the_same_transaction(store: Store) -> None:
    before_outbox = store.outbox_count()
    p = store.save(Participant(given_name="José", family_name="García"))
    store.save(p.replace(email="jose@example.org"))
    items = store.outbox_pending()[before_outbox:]
    assert [(i.record_id, i.version, i.op) for i in items] == [(p.id, 1, "upsert"), (p.id, 2, "upsert")]
    edit = store.audit_entries(p.id)[0]
    assert edit.action == "edit" and edit.detail == {"fields": ["email"]}


def test_a_failed_transaction_leaves_nothing(store: Store) -> None:
    outbox, audit = store.outbox_count(), len(store.audit_entries())
    with pytest.raises(RuntimeError):
        with store.db.transaction():
            store.save(Participant(given_name="Ghost", family_name="Record"))
            raise RuntimeError("power cut")
    assert store.participants.count() == 0
    assert (store.outbox_count(), len(store.audit_entries())) == (outbox, audit)


def test_delete_leaves_a_tombstone_and_cannot_come_back(store: Store) -> None:
    p = store.save(Participant(given_name="Tom", family_name="Stone"))
    consent = store.save(Consent(participant_id=p.id, sharing_profile="employer", status=ConsentStatus.GIVEN))
    store.repo(Consent).delete(consent.id, reason="entered on the wrong person")
    with pytest.raises(RecordNotFound):
        store.repo(Consent).get(consent.id)
    with pytest.raises(RecordNotFound):
        store.save(consent)  # an old copy must not resurrect it
    row = store.db.query("SELECT version, reason FROM tombstone WHERE record_id = ?", (consent.id,))
    assert row == [(2, "entered on the wrong person")]
    assert store.outbox_pending()[-1].op == "delete"
    with pytest.raises(RecordNotFound):
        store.repo(Consent).delete(consent.id, reason="again")


@pytest.mark.parametrize("typed, found", [
    ("zoe", True), ("Zoë", True), ("o'con", True), ("oconnor", False), ("smith", True),
    ("AB123456C", True), ("ab 12 34 56 c", True), ("m1 1ae", True), ("WW-0042", True),
    ("connor zo", True), ("nobody", False), ("", True),
])
def test_search_by_name_ni_postcode_and_ref(store: Store, typed: str, found: bool) -> None:
    p = store.save(Participant(given_name="Zoë", family_name="O'Connor-Smith", ni_number="AB123456C",
                               postcode="M1 1AE", participant_ref="WW-004211"))
    store.save(Participant(given_name="Other", family_name="Person", ni_number="CE654321A", postcode="LA1 4YW"))
    ids = [r.id for r in store.participants.search(typed)]
    assert (p.id in ids) is found


def test_search_terms_cannot_inject_fts_syntax(store: Store) -> None:
    store.save(Participant(given_name="Ann", family_name="Lee"))
    for nasty in ['"', 'NEAR(', "ann OR", "*", "a:b", "ann AND NOT lee", "')--"]:
        store.participants.search(nasty)  # no error whatever is typed
    assert fts_query('ann" OR x') == '"ann"* "OR"* "x"*'


def test_participant_file_gathers_everything_and_audits_the_view(store: Store) -> None:
    p = store.save(Participant(given_name="Kofi", family_name="Mensah"))
    store.save(Consent(participant_id=p.id, sharing_profile="employer"))
    case = store.participant_file(p.id)
    assert case.participant.id == p.id and len(case.records["consent"]) == 1
    assert store.audit_entries(p.id)[0].action == "view"


def test_drafts_survive_closing_and_are_encrypted(store: Store, paths) -> None:  # type: ignore[no-untyped-def]
    from support import PASSPHRASE
    from keyworker_app.profile import Profile

    p = store.save(Participant(given_name="Draft", family_name="Keeper"))
    store.save_draft(f"form:initial_assessment:{p.id}", "initial_assessment", p.id,
                     {"health_needs": "Draftcanary back pain", "hours": 12})
    store.close()
    assert b"Draftcanary" not in paths.database.read_bytes()
    reopened = Profile.at(paths).unlock(PASSPHRASE)
    draft = reopened.load_draft(f"form:initial_assessment:{p.id}")
    assert draft is not None and draft.answers == {"health_needs": "Draftcanary back pain", "hours": 12}
    reopened.discard_draft(draft.key)
    assert reopened.drafts() == []
    reopened.close()
