"""On the wire: every request body the laptop sends, checked field by field.

The client's requests are captured with an httpx event hook (the bytes as sent, gzip
and all), decompressed and compared with the sharing profiles: each recipient gets only
its profile's fields; an employer never gets an NHS number or health details; no Health
Team confidential note goes anywhere; MHSDS gets nothing outside the IPS strand; an
objecting participant never reaches the evaluation; nothing goes without the consent its
profile needs; a restricted participant's records do not go at all.
"""

from __future__ import annotations

import gzip
import itertools
import json
from collections import defaultdict
from datetime import datetime, timezone
from types import MappingProxyType
from typing import Any

import httpx
from msgspec.structs import replace
import pytest

from keyworker_app.records import (
    CaseNote, Confidentiality, Consent, ConsentStatus, Participant,
)
from keyworker_app.sharing import IDENTIFIER_FIELDS, latest_consent, load_sharing_profiles
from sync.engine import RunOutcome, SyncConfig, SyncEngine, encode_item
from sync.enrolment import open_client
from sync.projection import WITHDRAWAL_FIELDS, PlannedItem, share_one_off
from sync.retry import RetryPolicy
from sync_testkit import TODAY, Laptop, caseload

HEALTH_TEAM_MARK = "HTC-CONFIDENTIAL-7f3a"


class Capture:
    """Every request the client sends: path, headers and the body bytes exactly as sent."""

    def __init__(self) -> None:
        self.requests: list[tuple[str, dict[str, str], bytes]] = []

    def __call__(self, request: httpx.Request) -> None:
        self.requests.append((request.url.path, dict(request.headers), request.read()))

    def pushed_items(self) -> list[dict[str, Any]]:
        for path, headers, _ in self.requests:
            if path == "/v1/push":
                assert headers.get("content-encoding") == "gzip"
        return [item for items in self.pushes() for item in items]

    def pushes(self) -> list[list[dict[str, Any]]]:
        """The items of each push, one list per request."""
        return [json.loads(gzip.decompress(body))["items"]
                for path, _, body in self.requests if path == "/v1/push"]

    def all_plain_bytes(self) -> bytes:
        out = []
        for path, headers, body in self.requests:
            out.append(gzip.decompress(body) if headers.get("content-encoding") == "gzip" else body)
        return b"\n".join(out)


def _mixed_caseload(laptop: Laptop) -> None:
    cases = caseload(16, seed=31) + caseload(10, seed=32, programme="working_well_whp")
    laptop.add_cases(cases)
    with laptop.opened() as store:
        participants = store.participants.all()
        # Some objections to the evaluation, and Health Team notes on many files.
        for p in participants[:5]:
            store.save(p.replace(objections=("evaluation",)))
        for p in participants[::2]:
            store.save(CaseNote(participant_id=p.id, summary=f"{HEALTH_TEAM_MARK} clinical detail",
                                confidentiality=Confidentiality.HEALTH_TEAM, author="health-team",
                                contact_on=datetime(2025, 5, 1, 10, tzinfo=timezone.utc)))


def _sync(laptop: Laptop, capture: Capture) -> Any:
    with laptop.opened() as store:
        client = open_client(store, laptop.paths, RetryPolicy(sleep=lambda s: None),
                             event_hooks={"request": [capture]})
        try:
            return SyncEngine(store, client, today=TODAY).run()
        finally:
            client.close()


@pytest.fixture
def synced(enrolled: tuple[Any, Laptop]) -> tuple[Laptop, Capture, list[dict[str, Any]]]:
    _, laptop = enrolled
    _mixed_caseload(laptop)
    capture = Capture()
    result = _sync(laptop, capture)
    assert result.outcome is RunOutcome.OK, result.summary()
    items = capture.pushed_items()
    assert len(items) > 500
    return laptop, capture, items


def _participants(laptop: Laptop) -> tuple[dict[str, Participant], dict[str, list[Consent]]]:
    with laptop.opened() as store:
        people = {p.id: p for p in store.participants.all()}
        consents: dict[str, list[Consent]] = defaultdict(list)
        for c in store.repo(Consent).all():
            consents[c.participant_id].append(c)
        return people, consents


def test_each_recipient_gets_only_its_profiles_fields(synced: tuple[Laptop, Capture, list[dict[str, Any]]]) -> None:
    _, _, items = synced
    profiles = load_sharing_profiles()
    for item in items:
        profile = profiles[item["recipient"]].for_programme(item["programme"])
        assert not profile.one_off, "one-off profiles only go by an explicit keyworker action"
        allowed = set(IDENTIFIER_FIELDS)
        if item["op"] == "upsert":
            allowed |= set(profile.fields_for(item["record_type"]))
        elif item["op"] == "withdraw":
            allowed |= set(WITHDRAWAL_FIELDS)
        outside = set(item["fields"]) - allowed
        assert not outside, (item["recipient"], item["record_type"], sorted(outside))
        assert item["idempotency_key"] == f"{item['record_id']}:{item['version']}:{item['recipient']}"


def test_a_push_carries_each_participants_items_together_and_in_order(
    synced: tuple[Laptop, Capture, list[dict[str, Any]]]
) -> None:
    """Within a push, a participant's items come one after another (the sent log's index
    is written a participant at a time), in the order their outbox rows were saved."""
    laptop, capture, _ = synced
    with laptop.opened() as store:
        saved_at = {(record_id, version): seq for record_id, version, seq
                    in store.db.query("SELECT record_id, version, seq FROM outbox")}
    pushes = capture.pushes()
    assert max(len({i["participant_id"] for i in items}) for items in pushes) > 10
    for items in pushes:
        runs = [person for person, _ in itertools.groupby(i["participant_id"] for i in items)]
        assert len(runs) == len(set(runs)), "a participant's items are apart within a push"
        for _, theirs in itertools.groupby(items, key=lambda i: i["participant_id"]):
            order = [saved_at[(i["record_id"], i["version"])] for i in theirs]
            assert order == sorted(order)


def test_an_item_goes_as_its_wire_form() -> None:
    """An item's JSON is its wire form, whatever is in it; what orjson refuses (a lone
    surrogate, an integer beyond 64 bits) goes the standard encoder's way, still as UTF-8."""
    sound = PlannedItem(
        key="c-1:1:employer", record_type="contact", record_id="c-1", version=1, participant_id="p-1",
        recipient="employer", programme="working_well_ses", strand="", op="upsert",
        fields={"id": "c-1", "version": 1, "summary": "Met at the library", "hours": 16.5, "tags": ["a"]},
        field_names=("summary", "hours", "tags"), article_6="consent", article_9=None)
    items = [
        sound,
        replace(sound, fields={"summary": 'a "quote", a \\ and a line\nbreak; café ☃ 😀 \u2028 \x00'}),
        replace(sound, fields={"summary": "\ud800"}),        # a lone surrogate: orjson refuses it
        replace(sound, version=2 ** 70),                      # beyond 64 bits: orjson refuses it
        replace(sound, op="withdraw", fields=MappingProxyType({"status": "withdrawn"})),
        replace(sound, recipient='an "odd" recipient', programme="ses\u2028", strand="ips", record_type="é"),
        replace(sound, fields={}),
    ]
    for item in items:
        body = encode_item(item)
        body.decode("utf-8")   # UTF-8 throughout
        assert json.loads(body) == json.loads(json.dumps(item.wire())), item


def test_a_push_body_is_its_batch_id_and_items_in_order() -> None:
    engine = SyncEngine.__new__(SyncEngine)   # (batch_body reads only the config)
    engine.config = SyncConfig()
    for encoded in ([], [b'{"a":1}'], [b'{"a":1}', b'{"b":"\xc3\xa9"}', b"[3]"]):
        body = json.loads(gzip.decompress(engine.batch_body("b-7", encoded)))
        assert body == {"batch_id": "b-7", "items": [json.loads(e) for e in encoded]}


def test_an_employer_never_gets_an_nhs_number_or_health_details(
    synced: tuple[Laptop, Capture, list[dict[str, Any]]]
) -> None:
    laptop, _, items = synced
    people, _ = _participants(laptop)
    employer = [i for i in items if i["recipient"] == "employer"]
    assert employer, "the caseload must give the employer something to check"
    # Seed 003 lets the WHP employer see a description of disability (Art. 9(2)(b));
    # nothing else of health, and never an NHS number, on any programme.
    health_fields = Participant.special_category | {"condition_summary", "answers", "description"}
    for item in employer:
        allowed = {"disability_description"} if item["programme"] == "working_well_whp" else set()
        assert not set(item["fields"]) & (health_fields - allowed), item["programme"]
        person = people[item["participant_id"]]
        text = json.dumps(item["fields"])
        for value in (person.nhs_number, person.health_summary, person.gp_name, person.gp_practice):
            if value:
                assert value not in text
    assert any(i["programme"] == "working_well_ses" for i in employer)


def test_no_health_team_note_leaves_the_laptop(synced: tuple[Laptop, Capture, list[dict[str, Any]]]) -> None:
    _, capture, items = synced
    assert HEALTH_TEAM_MARK.encode() not in capture.all_plain_bytes()
    assert not [i for i in items if i["fields"].get("confidentiality") == Confidentiality.HEALTH_TEAM.value]


def test_mhsds_gets_nothing_outside_the_ips_strand(synced: tuple[Laptop, Capture, list[dict[str, Any]]]) -> None:
    laptop, _, items = synced
    people, _ = _participants(laptop)
    mhsds = [i for i in items if i["recipient"] == "nhs_digital_mhsds"]
    assert mhsds, "IPS participants' records go to MHSDS"
    assert all(people[i["participant_id"]].strand == "ips" for i in mhsds)
    assert any(p.strand != "ips" for p in people.values())


def test_an_objecting_participant_never_reaches_the_evaluation(
    synced: tuple[Laptop, Capture, list[dict[str, Any]]]
) -> None:
    laptop, _, items = synced
    people, _ = _participants(laptop)
    objecting = {pid for pid, p in people.items() if "evaluation" in p.objections}
    assert objecting
    evaluation = [i for i in items if i["recipient"] == "controller_evaluation"]
    assert evaluation and not [i for i in evaluation if i["participant_id"] in objecting]


def test_nothing_goes_without_the_consent_its_profile_needs(
    synced: tuple[Laptop, Capture, list[dict[str, Any]]]
) -> None:
    laptop, _, items = synced
    people, consents = _participants(laptop)
    profiles = load_sharing_profiles()
    checked = 0
    for item in items:
        if item["op"] == "withdraw" or not profiles[item["recipient"]].consent_required:
            continue
        decision = latest_consent(consents[item["participant_id"]], item["recipient"], item["participant_id"], TODAY)
        assert decision is not None and decision.status is ConsentStatus.GIVEN and decision.withdrawn_on is None
        checked += 1
    assert checked
    restricted = {pid for pid, p in people.items() if p.restricted}
    assert not [i for i in items if i["participant_id"] in restricted and i["op"] == "upsert"]


def test_held_back_items_keep_their_reason(synced: tuple[Laptop, Capture, list[dict[str, Any]]]) -> None:
    laptop, _, _ = synced
    with laptop.opened() as store:
        reasons = dict(store.db.query(
            "SELECT reason, count(*) FROM sync_item WHERE status = 'held_back' GROUP BY reason"))
    assert reasons.get("objected") and reasons.get("health_team_confidential")
    assert set(reasons) <= {"consent_missing", "consent_refused", "consent_withdrawn", "restricted",
                            "objected", "health_team_confidential"}


def test_a_one_off_share_sends_the_chosen_fields_and_is_audited(enrolled: tuple[Any, Laptop]) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(1, seed=41))
    assert _sync(laptop, Capture()).outcome is RunOutcome.OK
    with laptop.opened() as store:
        person = store.participants.all()[0]
        share_one_off(store, person, "individuals_at_risk", ["given_name", "phone"],
                      "Synthetic: immediate risk to life")
        audit = [e for e in store.audit_entries(person.id) if e.action == "share_one_off_requested"]
    assert audit and "immediate risk" not in json.dumps(audit[0].detail)
    capture = Capture()
    assert _sync(laptop, capture).outcome is RunOutcome.OK
    sent = [i for i in capture.pushed_items() if i["recipient"] == "individuals_at_risk"]
    assert len(sent) == 1
    assert set(sent[0]["fields"]) == set(IDENTIFIER_FIELDS) | {"given_name", "phone"}
    with laptop.opened() as store:
        history = store.db.query("SELECT fields, one_off_reason FROM sent_log WHERE recipient = 'individuals_at_risk'")
    assert json.loads(history[0][0]) == ["given_name", "phone"] and history[0][1]
