"""The push fast paths in-process: plain item checks, and set-wise storing of a batch.

* ``api._plain_item`` stands in for ``PushItem`` validation on the items that pass every
  check as they are; anything else must be left to pydantic (None).
* ``service.apply_items`` stores a batch set-wise (two reads, one write per table); its
  answers and what it stores must be exactly those of storing the items one by one
  (``service._store_item``), including repeats and versions in one batch; and when a write
  finds the database changed under it (another delivery), it must fall back to that path.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller import api, db as dbmod, profiles, service
from controller.db import Database

PROFILES: list[dict[str, Any]] = [
    {"id": "fixture_notes", "records": {"case_note": ["summary", "confidentiality"],
                                        "consent": ["sharing_profile", "status"]},
     "programmes": ["prog_a"], "strands": []},
]


@pytest.fixture
def fixture_profiles(tmp_path: Path) -> Iterator[None]:
    path = tmp_path / "profiles.json"
    path.write_text(json.dumps(PROFILES), "utf-8")
    profiles.use_profiles_file(path)
    yield
    profiles.use_profiles_file(None)


def _raw(record_id: str, version: int, **changes: Any) -> dict[str, Any]:
    item = {
        "idempotency_key": f"{record_id}:{version}:fixture_notes", "record_type": "case_note",
        "record_id": record_id, "version": version, "recipient": "fixture_notes",
        "participant_id": "p-1", "programme": "prog_a", "strand": "", "op": "upsert",
        "fields": {"summary": f"v{version}", "confidentiality": "standard"},
    }
    item.update(changes)
    return item


@pytest.mark.parametrize("change", [
    {"record_id": "r-1\n"}, {"version": True}, {"version": "3"}, {"version": 0}, {"version": 2**62 + 1},
    {"op": "UPSERT"}, {"strand": "bad strand"}, {"fields": None}, {"fields": []}, {"extra": 1},
    {"record_type": "Case_Note"}, {"idempotency_key": "k" * 301}, {"programme": ""},
])
def test_an_item_failing_any_plain_check_is_left_to_pydantic(change: dict[str, Any]) -> None:
    raw = _raw("r-1", 3)
    raw.update(change)
    assert api._plain_item(raw) is None
    with pytest.raises(api.ValidationError):
        api.PushItem.model_validate(raw)


@pytest.mark.parametrize("change", [{}, {"strand": "ips"}, {"fields": {}}, {"version": 2**62}])
def test_a_plain_item_is_what_pydantic_makes_of_it(change: dict[str, Any]) -> None:
    raw = _raw("r-1", 3)
    raw.update(change)
    missing = {k: v for k, v in raw.items() if k not in ("strand", "fields")}   # defaults
    for candidate in (raw, missing):
        plain = api._plain_item(candidate)
        parsed = api.PushItem.model_validate(candidate)
        assert plain is not None
        assert plain == service.PushItem(**parsed.model_dump())


def test_a_value_matched_earlier_in_the_batch_is_still_checked_against_each_field() -> None:
    """_parse_items matches each distinct value once per batch; a value that passed as an
    id must still fail as a record type, and a bad one must fail every time."""
    batch = [
        _raw("r-1", 1, programme="Prog-A"),           # a good id, not a good record type
        _raw("r-2", 1, record_type="Prog-A"),
        _raw("r-3", 1, strand="Prog-A"),              # good as a strand (an id)
        _raw("r-4", 1, recipient="bad id"),
        _raw("r-5", 1, programme="bad id"),
        _raw("r-6", 1, record_type="case_note", strand="case_note"),
    ]
    envelope = api._PushEnvelope.model_construct(batch_id="batch", items=batch)
    parsed = api._parse_items(envelope)
    refused = [isinstance(item, service.ItemResult) for item in parsed]
    assert refused == [False, True, False, True, True, False]
    assert all(item.code == "invalid_item" for item in parsed if isinstance(item, service.ItemResult))
    assert parsed[0] == api._plain_item(batch[0])
    assert parsed[2] == api._plain_item(batch[2])


def _database(tmp_path: Path, name: str) -> tuple[Database, service.Device]:
    database = Database(f"sqlite:///{tmp_path / name}")
    database.migrate()
    code = service.create_enrolment_code(database, "kw-1")
    device, _ = service.enrol(database, code, "kw-1", "laptop")
    return database, device


def _one_by_one(database: Database, device: service.Device, items: list[service.PushItem]) -> list[service.ItemResult]:
    answers: list[service.ItemResult] = []
    for item in items:
        refused = service.check_item(item)
        if refused is not None:
            answers.append(refused)
            continue
        with database.transaction() as tx:
            answers.append(service._store_item(tx, device, "batch", item))
    return answers


def _stored(database: Database) -> list[tuple[Any, ...]]:
    with database.transaction() as tx:
        received = [(r["idempotency_key"], r["version"], r["payload"]) for r in tx.query(
            "SELECT idempotency_key, version, payload FROM received_items ORDER BY idempotency_key")]
        heads = [tuple(r.values()) for r in tx.query(
            "SELECT record_id, recipient, version FROM record_heads ORDER BY record_id, recipient")]
        withdrawn = [tuple(r.values()) for r in tx.query(
            "SELECT idempotency_key, consent_id, withdrawn_on FROM withdrawals ORDER BY idempotency_key")]
    return [received, heads, withdrawn]


def _batches() -> list[list[service.PushItem]]:
    r, s, c = (str(uuid.uuid4()) for _ in range(3))
    withdraw = _raw(c, 2, record_type="consent", op="withdraw",
                    fields={"status": "withdrawn", "withdrawn_on": "2025-01-31"})
    batches = [
        [_raw(r, 3)],
        [_raw(r, 2), _raw(r, 4), _raw(r, 4), _raw(r, 6), _raw(r, 5), _raw(s, 1), _raw(s, 1), withdraw,
         _raw(s, 2, fields={"summary": "x", "not_allowed": 1}), _raw(s, 3)],
    ]
    batches.append(batches[1] + [_raw(s, 4)])   # again: duplicates and conflicts, one new
    return [[api._plain_item(raw) for raw in batch] for batch in batches]  # type: ignore[misc]


@pytest.mark.usefixtures("fixture_profiles")
def test_a_batch_stored_set_wise_answers_and_stores_as_one_by_one(tmp_path: Path) -> None:
    set_wise, device_a = _database(tmp_path, "a.sqlite3")
    single, device_b = _database(tmp_path, "b.sqlite3")
    for batch in _batches():
        fast = service.apply_items(set_wise, device_a, "batch", batch)
        slow = _one_by_one(single, device_b, batch)
        assert [(a.idempotency_key, a.status, a.code, a.reason) for a in fast] == \
               [(a.idempotency_key, a.status, a.code, a.reason) for a in slow]
    statuses = [a.status.value for a in fast]
    assert {"accepted", "duplicate", "conflict", "rejected"} <= set(statuses)
    assert _stored(set_wise) == _stored(single)


@pytest.mark.usefixtures("fixture_profiles")
def test_a_write_that_finds_the_database_changed_falls_back_to_one_by_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As when a concurrent delivery stored some of the items between the reads and the
    writes: the set-wise attempt is rolled back and the batch stored item by item."""
    set_wise, device_a = _database(tmp_path, "a.sqlite3")
    single, device_b = _database(tmp_path, "b.sqlite3")
    original = dbmod._SqliteTx.executemany
    raced: list[bool] = []

    def short_count(self: Any, sql: str, rows: Any) -> int:
        changed = original(self, sql, rows)
        if sql == service._RECEIVED_SQL and rows and not raced:
            raced.append(True)
            return changed - 1
        return changed

    monkeypatch.setattr(dbmod._SqliteTx, "executemany", short_count)
    for batch in _batches():
        fast = service.apply_items(set_wise, device_a, "batch", batch)
        slow = _one_by_one(single, device_b, batch)
        assert [(a.status, a.code) for a in fast] == [(a.status, a.code) for a in slow]
    assert raced == [True]
    assert _stored(set_wise) == _stored(single)
