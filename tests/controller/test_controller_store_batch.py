"""The push fast paths in-process: plain item checks, and set-wise storing of a batch.

* ``api._plain_item`` stands in for ``PushItem`` validation on the items that pass every
  check as they are; anything else must be left to pydantic (None).
* ``service.apply_items`` stores a batch set-wise (two reads, one write per table); its
  answers and what it stores must be exactly those of storing the items one by one
  (``service._store_item``), including repeats and versions in one batch; and when a write
  finds the database changed under it (another delivery), it must fall back to that path.
* On PostgreSQL those writes are one ``INSERT ... SELECT`` per table (``Tx.insert_many``):
  on each backend they must store exactly what one-by-one stores, and a delivery that
  commits between the two reads must not turn a repeat into a conflict.
"""

from __future__ import annotations

import dataclasses
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


# --- each backend: the one-statement inserts, and reads that race a delivery --------------

def test_push_item_and_item_result_are_the_dataclasses_they_declare() -> None:
    """Their hand-written __init__ (one per pushed item, for speed) sets exactly the
    declared fields, positionally or by name, with the same defaults; still frozen."""
    values = ("k", "case_note", "r-1", 3, "fixture_notes", "p-1", "prog_a", "", "upsert", {"a": 1})
    names = [f.name for f in dataclasses.fields(service.PushItem)]
    by_position = service.PushItem(*values)
    assert vars(by_position) == dict(zip(names, values, strict=True))
    assert service.PushItem(**dict(zip(names, values, strict=True))) == by_position
    answer = service.ItemResult("k", service.ItemStatus.ACCEPTED)
    assert vars(answer) == {"idempotency_key": "k", "status": service.ItemStatus.ACCEPTED,
                            "code": None, "reason": None}
    assert [f.name for f in dataclasses.fields(service.ItemResult)] == list(vars(answer))
    assert service.ItemResult(idempotency_key="k", status=service.ItemStatus.REJECTED, code="c",
                              reason="r") == service.ItemResult("k", service.ItemStatus.REJECTED, "c", "r")
    with pytest.raises(dataclasses.FrozenInstanceError):
        answer.code = "x"  # type: ignore[misc]
    with pytest.raises(dataclasses.FrozenInstanceError):
        by_position.version = 4  # type: ignore[misc]


_SCRATCH = dbmod.BulkInsert(
    "scratch", ("k", "n", "s", "maybe"), "ON CONFLICT (k) DO NOTHING", {"n": "bigint"},
)
_AWKWARD = [
    '{"a":"x\\"y","b":"c\\\\d"}', "line\nbreak\ttab", "Máire Ó Súilleabháin 😀", "NULL", "",
    "{}", "a,b", '"', "\\", "{1,2}", "' OR 1=1 --", "%s ? %",
]


def test_insert_many_stores_exactly_the_rows_given(db_url: str) -> None:
    """One statement for all rows on PostgreSQL, one per row on SQLite: the same rows,
    values unchanged (quotes, backslashes, NULL, text that looks like SQL or an array),
    and the count of rows changed leaves out those the conflict clause skipped."""
    database = Database(db_url)
    try:
        with database.transaction() as tx:
            tx.execute("CREATE TABLE scratch (k TEXT PRIMARY KEY, n BIGINT NOT NULL, s TEXT NOT NULL, maybe TEXT)")
            assert tx.insert_many(_SCRATCH, []) == 0
            assert tx.insert_many(_SCRATCH, [("held", 1, "first", None)]) == 1
        rows = [(f"k{i:02d}", 2**62 - i, text, None if i % 3 else text) for i, text in enumerate(_AWKWARD)]
        rows.insert(4, ("held", 7, "again", "x"))
        with database.transaction() as tx:
            assert tx.insert_many(_SCRATCH, rows) == len(_AWKWARD)
            stored = [tuple(r.values()) for r in tx.query("SELECT k, n, s, maybe FROM scratch ORDER BY k")]
    finally:
        database.close()
    assert stored == sorted([r for r in rows if r[0] != "held"] + [("held", 1, "first", None)])


def _stored_in_full(database: Database) -> list[list[tuple[Any, ...]]]:
    """Every column the store writes, but the device and the time (they differ)."""
    with database.transaction() as tx:
        return [
            [tuple(r.values()) for r in tx.query(
                "SELECT idempotency_key, recipient, record_type, record_id, version, op, participant_id,"
                " programme, strand, payload, batch_id FROM received_items ORDER BY idempotency_key")],
            [tuple(r.values()) for r in tx.query(
                "SELECT record_id, recipient, version FROM record_heads ORDER BY record_id, recipient")],
            [tuple(r.values()) for r in tx.query(
                "SELECT idempotency_key, recipient, participant_id, consent_id, withdrawn_on"
                " FROM withdrawals ORDER BY idempotency_key")],
        ]


def _enrolled(url: str) -> tuple[Database, service.Device]:
    database = Database(url)
    database.migrate()
    code = service.create_enrolment_code(database, "kw-1")
    device, _ = service.enrol(database, code, "kw-1", "laptop")
    return database, device


@pytest.mark.usefixtures("fixture_profiles")
def test_each_backend_stores_a_batch_set_wise_as_one_by_one(db_url: str, tmp_path: Path) -> None:
    """On PostgreSQL the accepted rows go in with one statement per table: the answers
    and every stored column must be those of storing the items one by one (on SQLite),
    with a repeat inside one batch, two versions of one record in one batch (heads moved
    row by row), several records (heads moved in one statement) and a withdrawal."""
    set_wise, device_a = _enrolled(db_url)
    single, device_b = _enrolled(f"sqlite:///{tmp_path / 'single.sqlite3'}")
    many = [api._plain_item(_raw(str(uuid.uuid4()), 1 + n % 2, fields={"summary": "Ó'\"\\\n😀"}))
            for n in range(12)]
    try:
        for batch in [*_batches(), many, many]:
            fast = service.apply_items(set_wise, device_a, "batch", batch)  # type: ignore[arg-type]
            slow = _one_by_one(single, device_b, batch)  # type: ignore[arg-type]
            assert [(a.idempotency_key, a.status, a.code, a.reason) for a in fast] == \
                   [(a.idempotency_key, a.status, a.code, a.reason) for a in slow]
        assert {a.status for a in fast} == {service.ItemStatus.DUPLICATE}
        assert _stored_in_full(set_wise) == _stored_in_full(single)
    finally:
        set_wise.close()
        single.close()


@pytest.mark.usefixtures("fixture_profiles")
def test_a_write_that_finds_the_database_changed_falls_back_on_each_backend(
    db_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_wise, device_a = _enrolled(db_url)
    single, device_b = _enrolled(f"sqlite:///{tmp_path / 'single.sqlite3'}")
    raced: list[bool] = []
    for cls in (dbmod._SqliteTx, dbmod._PostgresTx):
        original = cls.insert_many

        def short_count(self: Any, insert: Any, rows: Any, original: Any = original) -> int:
            changed = original(self, insert, rows)
            if insert is service._RECEIVED and rows and not raced:
                raced.append(True)
                return int(changed) - 1
            return int(changed)

        monkeypatch.setattr(cls, "insert_many", short_count)
    try:
        for batch in _batches():
            fast = service.apply_items(set_wise, device_a, "batch", batch)
            slow = _one_by_one(single, device_b, batch)
            assert [(a.status, a.code) for a in fast] == [(a.status, a.code) for a in slow]
        assert raced == [True]
        assert _stored_in_full(set_wise) == _stored_in_full(single)
    finally:
        set_wise.close()
        single.close()


# PostgreSQL only: SQLite takes the write lock before reading, so nothing can commit
# between the two reads there.
@pytest.mark.parametrize("db_url", [pytest.param("postgres", marks=pytest.mark.postgres)], indirect=True)
@pytest.mark.usefixtures("fixture_profiles")
def test_a_delivery_committed_between_the_two_reads_is_answered_duplicate(
    db_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL: each read sees what was committed when it began. Another delivery of
    the same batch commits between this one's two reads (as it did, now and then, when
    four laptops' retries raced): every item must be answered duplicate, none conflict."""
    database, device = _enrolled(db_url)
    batch = [api._plain_item(_raw(str(uuid.uuid4()), 1)) for _ in range(5)]
    original = dbmod._PostgresTx.query
    reads: list[str] = []

    def query(self: Any, sql: str, params: Any = ()) -> Any:
        rows = original(self, sql, params)
        if sql.startswith("SELECT") and ("FROM received_items" in sql or "FROM record_heads" in sql):
            reads.append(sql)
            if len(reads) == 1:   # the other delivery, on its own connection, commits now
                monkeypatch.setattr(dbmod._PostgresTx, "query", original)
                assert {a.status for a in service.apply_items(database, device, "other", batch)} == {
                    service.ItemStatus.ACCEPTED}  # type: ignore[arg-type]
                monkeypatch.setattr(dbmod._PostgresTx, "query", query)
        return rows

    monkeypatch.setattr(dbmod._PostgresTx, "query", query)
    try:
        answers = service.apply_items(database, device, "batch", batch)  # type: ignore[arg-type]
    finally:
        monkeypatch.setattr(dbmod._PostgresTx, "query", original)
    try:
        assert [a.status for a in answers] == [service.ItemStatus.DUPLICATE] * 5
        with database.transaction() as tx:
            assert tx.one("SELECT COUNT(*) AS n FROM received_items") == {"n": 5}
    finally:
        database.close()
