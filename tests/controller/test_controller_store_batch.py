"""The push fast paths in-process: reading a batch with msgspec, and set-wise storing.

* ``api._read_batch`` reads a batch that passes every check as it is with msgspec
  (``api._read_wire``); any other body goes down the exact path: orjson (or the standard
  parser), the envelope, then pydantic item by item. Whatever the body, it must make
  exactly what the exact path makes: the same items with the same values (compared by
  repr, so 1 is not 1.0 and -0.0 is not 0.0), each bad item answered ``invalid_item`` in
  pydantic's words, the rest kept, and the same error for a body that is not a batch.
* ``service.apply_items`` stores a batch set-wise (two reads, one write per table); its
  answers and what it stores must be exactly those of storing the items one by one
  (``service._store_item``), including repeats and versions in one batch; and when a write
  finds the database changed under it (another delivery), it must fall back to that path.
* On PostgreSQL those writes are one ``INSERT ... SELECT`` per table (``Tx.insert_many``):
  on each backend they must store exactly what one-by-one stores, and a delivery that
  commits between the two reads must not turn a repeat into a conflict.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable

import msgspec
import pytest
from hypothesis import given, settings, strategies as st

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


def _body(*items: Any, **envelope: Any) -> bytes:
    """A batch as JSON; the standard encoder, which writes any integer and NaN."""
    return json.dumps({"batch_id": "batch-1", "items": list(items), **envelope}).encode()


def _outcome(read: Callable[[bytes], Any], body: bytes) -> str:
    """What ``read`` made of ``body``, or the error it raised, as text to compare."""
    try:
        return repr(read(body))
    except api.ApiError as exc:
        return f"ApiError {exc.status} {exc.error} {exc.message}"
    except RecursionError:
        return "RecursionError"


def _exact(body: bytes) -> tuple[str, list[service.PushItem | service.ItemResult]]:
    """The exact path: what the controller made of every body before msgspec."""
    envelope = api._envelope(api._loads(body))
    api._check_count(len(envelope.items), 500)
    return envelope.batch_id, api._parse_items(envelope)


def _read(body: bytes) -> tuple[str, list[service.PushItem | service.ItemResult]]:
    return api._read_batch(body, 500)


def _wire_reads(body: bytes) -> bool:
    """Whether msgspec's path reads ``body`` on its own (no exact path)."""
    wire = api._read_wire(body)
    return wire is not None and api._wire_items(wire) is not None


def _items(*raws: dict[str, Any]) -> list[service.PushItem]:
    """Service items for good raw items, read as the API reads them."""
    body = _body(*raws)
    assert _wire_reads(body)
    items = _read(body)[1]
    assert all(isinstance(item, service.PushItem) for item in items)
    return items  # type: ignore[return-value]


_REQUIRED = ["idempotency_key", "record_type", "record_id", "version", "recipient",
             "participant_id", "programme", "op"]

# Each a change that pydantic refuses, one check at a time.
_REFUSED: list[dict[str, Any]] = [
    *({name: value + "\n"} for name, value in _raw("r-1", 3).items()
      if name in ("record_type", "record_id", "recipient", "participant_id", "programme")),
    {"strand": "ips\n"}, {"strand": "bad strand"}, {"strand": None}, {"strand": 1},
    {"version": True}, {"version": False}, {"version": "3"}, {"version": 3.0}, {"version": None},
    {"version": 0}, {"version": -1}, {"version": 2**62 + 1}, {"version": 2**64}, {"version": 2**70},
    {"op": "UPSERT"}, {"op": None}, {"op": "upsert\n"},
    {"fields": None}, {"fields": []}, {"fields": "x"}, {"fields": 1}, {"fields": True},
    {"extra": 1}, {"Version": 3},
    {"record_type": "Case_Note"}, {"record_type": ""}, {"record_type": "a" * 41},
    {"idempotency_key": "k" * 301}, {"idempotency_key": "😀" * 301}, {"idempotency_key": None},
    {"idempotency_key": 5},
    {"programme": ""}, {"record_id": "-r"}, {"record_id": "r" * 101}, {"record_id": "é"},
    {"recipient": "١"}, {"participant_id": " p-1"}, {"record_id": ["r-1"]},
    *({"missing": name} for name in _REQUIRED),
]


def _changed(raw: dict[str, Any], change: dict[str, Any]) -> dict[str, Any]:
    raw = dict(raw)
    if "missing" in change:
        del raw[change["missing"]]
    else:
        raw.update(change)
    return raw


@pytest.mark.parametrize("change", _REFUSED)
def test_an_item_pydantic_refuses_is_left_to_pydantic_and_the_rest_kept(change: dict[str, Any]) -> None:
    bad = _changed(_raw("r-2", 3), change)
    with pytest.raises(api.ValidationError):
        api.PushItem.model_validate(bad)
    body = _body(_raw("r-1", 1), bad, _raw("r-3", 2))
    assert not _wire_reads(body)
    assert _outcome(_read, body) == _outcome(_exact, body)
    items = _read(body)[1]
    assert [type(item) for item in items] == [service.PushItem, service.ItemResult, service.PushItem]
    assert items[1].code == "invalid_item"  # type: ignore[union-attr]
    assert items[1].reason.startswith("The item is not valid: ")  # type: ignore[union-attr]


# Each a change that pydantic takes: msgspec's path must read it, to the same values.
_TAKEN: list[dict[str, Any]] = [
    {}, {"strand": "ips"}, {"fields": {}}, {"version": 2**62}, {"version": 1},
    {"missing": "strand"}, {"missing": "fields"},
    {"idempotency_key": "k" * 300}, {"idempotency_key": "😀" * 300}, {"idempotency_key": ""},
    {"record_id": "r" * 100}, {"record_type": "a" * 40}, {"op": "delete"},
    {"fields": {"summary": "Máire \u2028 \x00 \x7f 😀", "n": [1, 2.5, -0.0, None, True, {"x": {}}]}},
    {"fields": {"big": 2**64 - 1, "bigger": 2**64, "huge": 2**70, "low": -2**63, "lower": -2**63 - 1}},
    {"fields": {"f": 1e308, "g": 5e-324, "h": 1e-400, "i": 0.1, "j": 1e16}},
    {"fields": {"same": 1, "Same": 2, "": 3}},
]


@pytest.mark.parametrize("change", _TAKEN)
def test_an_item_pydantic_takes_is_read_by_msgspec_to_the_same_values(change: dict[str, Any]) -> None:
    good = _changed(_raw("r-1", 3), change)
    api.PushItem.model_validate(api._loads(_body(good))["items"][0])
    body = _body(good, _raw("r-2", 1))
    assert _wire_reads(body)
    assert _outcome(_read, body) == _outcome(_exact, body)


def _deep(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


_GOOD_ITEM = json.dumps(_raw("r-1", 3)).encode()
_ITEM_HEAD = _GOOD_ITEM[: _GOOD_ITEM.index(b'"fields"')]

# Bodies where JSON parsers part ways: msgspec must never read one that orjson would not
# (nor read it differently); the exact path decides, as it always has.
_AWKWARD_BODIES: list[bytes] = [
    b'{"batch_id": "b", "items": [%s]}' % _GOOD_ITEM,
    b' \r\n\t{"batch_id": "b", "items": [%s]} \n' % _GOOD_ITEM,
    b'\xef\xbb\xbf{"batch_id": "b", "items": [%s]}' % _GOOD_ITEM,              # a BOM
    '{"batch_id": "b", "items": []}'.encode("utf-16"),
    b'{"batch_id": "b", "items": [%s], "note": "x"}' % _GOOD_ITEM,               # a key pydantic ignores
    b'{"batch_id": "b", "items": [%s], "note": "\xff"}' % _GOOD_ITEM,           # ... not UTF-8
    b'{"batch_id": "b", "items": [%s], "note": [01]}' % _GOOD_ITEM,
    b'{"batch_id": "b", "batch_id": "c", "items": [%s]}' % _GOOD_ITEM,           # repeated keys
    b'{"batch_id": "b", "items": [1], "items": [%s]}' % _GOOD_ITEM,
    b'{"batch_id": "b", "items": [%s], "items": [1]}' % _GOOD_ITEM,
    b'{"batch_id": "b", "items": [%s"version": 4, "version": 3, "fields": {}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"version": true, "version": 3, "fields": {}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": 1, "summary": "x"}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": NaN}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": Infinity}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": 1e400}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": -1e400}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": 123456789012345678901234567890}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\\ud800"}}]}' % _ITEM_HEAD,   # lone surrogate
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\\udc00 x"}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\xff"}}]}' % _ITEM_HEAD,     # not UTF-8
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\xc0\xaf"}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\xed\xa0\x80"}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\xf4\x90\x80\x80"}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": "\x01"}}]}' % _ITEM_HEAD,     # raw control
    b'{"batch_id": "b", "items": [%s"fields": {"\xff": 1}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": 1,}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": 01}}]}' % _ITEM_HEAD,
    b'{"batch_id": "b", "items": [%s"fields": {"summary": %s}}]}' % (_ITEM_HEAD, _deep(200)),
    b'{"batch_id": "b", "items": [%s"fields": {"summary": %s}}]}' % (_ITEM_HEAD, _deep(300)),
    b'{"batch_id": "b", "items": [%s"fields": {"summary": %s}}]}' % (_ITEM_HEAD, _deep(1019)),
    b'{"batch_id": "b", "items": [%s"fields": {"summary": %s}}]}' % (_ITEM_HEAD, _deep(1022)),
    b'{"batch_id": "b", "items": [%s"fields": {"summary": %s}}]}' % (_ITEM_HEAD, _deep(1100)),
    b'{"batch_id": "b", "items": [%s"fields": %s}]}' % (_ITEM_HEAD, _deep(3)),
    b'{"batch_id": "b\\n", "items": [%s]}' % _GOOD_ITEM,
    b'{"batch_id": "\xff", "items": [%s]}' % _GOOD_ITEM,
    b'{"batch_id": "b", "items": {}}', b'{"batch_id": "b"}', b'{"items": []}', b'[]', b'',
    b'{"batch_id": "b", "items": [%s]} x' % _GOOD_ITEM,
    b'{"batch_id": "b", "items": [%s]}' % b",".join([_GOOD_ITEM] * 501),
    b'{"batch_id": "b", "items": [%s, 1]}' % b",".join([_GOOD_ITEM] * 501),
]


@pytest.mark.parametrize("body", _AWKWARD_BODIES)
def test_an_awkward_body_is_read_as_the_exact_path_reads_it(body: bytes) -> None:
    assert _outcome(_read, body) == _outcome(_exact, body)


def test_a_value_matched_earlier_in_the_batch_is_still_checked_against_each_field() -> None:
    """msgspec's path matches each distinct value once per batch; a value that passes as
    an id must still fail as a record type, and a bad one must fail every time."""
    batch = [
        _raw("r-1", 1, programme="Prog-A"),           # a good id, not a good record type
        _raw("r-2", 1, record_type="Prog-A"),
        _raw("r-3", 1, strand="Prog-A"),              # good as a strand (an id)
        _raw("r-4", 1, recipient="bad id"),
        _raw("r-5", 1, programme="bad id"),
        _raw("r-6", 1, record_type="case_note", strand="case_note"),
        _raw("", 1, strand=""),                       # an empty strand is good, an empty id not
    ]
    body = _body(*batch)
    assert not _wire_reads(body)
    parsed = _read(body)[1]
    refused = [isinstance(item, service.ItemResult) for item in parsed]
    assert refused == [False, True, False, True, True, False, True]
    assert all(item.code == "invalid_item" for item in parsed if isinstance(item, service.ItemResult))
    assert _outcome(_read, body) == _outcome(_exact, body)
    good = [batch[0], batch[2], batch[5]]
    assert _wire_reads(_body(*good))
    assert [parsed[0], parsed[2], parsed[5]] == _items(*good)


# Values for each key, good and bad, from which hypothesis builds batches.
_IDS = st.sampled_from(["r-1", "prog_a", "case_note", "fixture_notes", "A.b_c-9", "", "-x", "x y",
                        "r-1\n", "é", "x" * 100, "x" * 101])
_VALUES: dict[str, st.SearchStrategy[Any]] = {
    "idempotency_key": st.one_of(st.text(max_size=5), st.sampled_from(["k" * 300, "k" * 301, None, 1])),
    "record_type": st.one_of(_IDS, st.sampled_from(["consent", "a" * 40, "a" * 41, "Case"])),
    "record_id": _IDS, "recipient": _IDS, "participant_id": _IDS, "programme": _IDS,
    "strand": st.one_of(_IDS, st.none()),
    "version": st.one_of(st.integers(min_value=-2, max_value=2**66), st.booleans(), st.floats(),
                         st.sampled_from([2**62, 2**62 + 1, "1", None])),
    "op": st.sampled_from(["upsert", "delete", "withdraw", "Upsert", None]),
    "fields": st.one_of(
        st.dictionaries(st.text(max_size=3), st.one_of(
            st.integers(min_value=-2**70, max_value=2**70), st.floats(allow_nan=False),
            st.text(max_size=5), st.booleans(), st.none(), st.lists(st.integers(), max_size=2),
        ), max_size=3),
        st.sampled_from([None, [], "x"]),
    ),
    "extra": st.integers(),
}


@st.composite
def _bodies(draw: st.DrawFn) -> bytes:
    """A batch of good items with none, one or two keys changed or left out in each."""
    items = []
    for _ in range(draw(st.integers(min_value=1, max_value=4))):
        item = _raw(draw(st.sampled_from(["r-1", "r-2"])), 1)
        for name in draw(st.lists(st.sampled_from(sorted(_VALUES)), max_size=2)):
            if draw(st.booleans()):
                item[name] = draw(_VALUES[name])
            else:
                item.pop(name, None)
        items.append(item)
    return _body(*items)


@settings(max_examples=400, deadline=None)
@given(_bodies())
def test_any_batch_is_read_as_the_exact_path_reads_it(body: bytes) -> None:
    assert _outcome(_read, body) == _outcome(_exact, body)
    if _wire_reads(body):   # then pydantic takes every item
        assert all(isinstance(item, service.PushItem) for item in _exact(body)[1])


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
    return [_items(*batch) for batch in batches]


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

def test_push_item_and_item_result_are_frozen_values() -> None:
    """msgspec structs (one of each per pushed item, for speed): the declared fields,
    positionally or by name, the same defaults, equal by value, and frozen."""
    values = ("k", "case_note", "r-1", 3, "fixture_notes", "p-1", "prog_a", "", "upsert", {"a": 1})
    names = service.PushItem.__struct_fields__
    by_position = service.PushItem(*values)
    assert msgspec.structs.asdict(by_position) == dict(zip(names, values, strict=True))
    assert service.PushItem(**dict(zip(names, values, strict=True))) == by_position
    answer = service.ItemResult("k", service.ItemStatus.ACCEPTED)
    assert msgspec.structs.asdict(answer) == {"idempotency_key": "k", "status": service.ItemStatus.ACCEPTED,
                                              "code": None, "reason": None}
    assert service.ItemResult(idempotency_key="k", status=service.ItemStatus.REJECTED, code="c",
                              reason="r") == service.ItemResult("k", service.ItemStatus.REJECTED, "c", "r")
    with pytest.raises(AttributeError):
        answer.code = "x"  # type: ignore[misc]
    with pytest.raises(AttributeError):
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
    many = _items(*(_raw(str(uuid.uuid4()), 1 + n % 2, fields={"summary": "Ó'\"\\\n😀"})
                    for n in range(12)))
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
    batch = _items(*(_raw(str(uuid.uuid4()), 1) for _ in range(5)))
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
