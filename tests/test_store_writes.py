"""How the store writes: only changed columns, no bookkeeping rows of its own per edit, and
the connection settings both drivers share. Each test checks an outcome, not a timing."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyworker_app.errors import VersionConflict
from keyworker_app.records import CaseNote, Participant
from keyworker_app.store import database
from keyworker_app.store.database import STATEMENT_CACHE, Database
from keyworker_app.store.store import Store


def updated_columns_log(store: Store, *columns: str) -> None:
    """Install test-only triggers that note which of ``columns`` an UPDATE sets."""
    conn = store.db.conn
    conn.execute("CREATE TEMP TABLE set_columns (name TEXT)")
    for column in columns:
        conn.execute(f"CREATE TEMP TRIGGER log_{column} AFTER UPDATE OF {column} ON main.participant"
                     f" BEGIN INSERT INTO set_columns VALUES ('{column}'); END")


def set_columns(store: Store) -> list[str]:
    names = [r[0] for r in store.db.query("SELECT name FROM set_columns ORDER BY rowid")]
    store.db.conn.execute("DELETE FROM set_columns")
    return names


def test_an_edit_writes_only_the_columns_that_changed(store: Store) -> None:
    p = store.save(Participant(given_name="Ada", family_name="Lovelace", ni_number="AB123456C",
                               postcode="M1 1AE", phone="07700 900001"))
    updated_columns_log(store, "phone", "ni_number", "family_name", "postcode", "version", "updated_at")
    # updated_at is only written when the clock has moved on (it is kept to the second).
    p = store.save(p.replace(phone="07700 900002"))
    assert set(set_columns(store)) - {"updated_at"} == {"phone", "version"}
    p = store.save(p.replace(ni_number="CD654321A", family_name="Byron"))
    assert set(set_columns(store)) - {"updated_at"} == {"family_name", "ni_number", "version"}
    p = store.save(p)  # nothing changed: a new version all the same
    assert set(set_columns(store)) - {"updated_at"} == {"version"} and p.version == 4
    back = store.participants.get(p.id)
    assert (back.phone, back.ni_number, back.family_name, back.postcode, back.given_name) == (
        "07700 900002", "CD654321A", "Byron", "M1 1AE", "Ada")
    assert store.audit_entries(p.id)[1].detail == {"fields": ["family_name", "ni_number"]}


def test_a_partial_update_still_refuses_a_stale_copy(store: Store) -> None:
    v1 = store.save(Participant(given_name="Stale", family_name="Copy"))
    store.save(v1.replace(phone="07700 900003"))
    with pytest.raises(VersionConflict):
        store.save(v1.replace(email="stale@example.org"))
    assert store.participants.get(v1.id).email == ""


def marked(store: Store) -> list[int]:
    """Audit entries carrying the chain's end mark."""
    return [r[0] for r in store.db.query("SELECT seq FROM audit_log WHERE chain_end = 1 ORDER BY seq")]


def log_writes(store: Store, table: str) -> None:
    """Install test-only triggers that note every row written to ``table``."""
    conn = store.db.conn
    conn.execute(f"CREATE TEMP TABLE {table}_writes (op TEXT)")
    for op in ("INSERT", "UPDATE", "DELETE"):
        conn.execute(f"CREATE TEMP TRIGGER log_{table}_{op.lower()} AFTER {op} ON main.{table}"
                     f" BEGIN INSERT INTO {table}_writes VALUES ('{op}'); END")


def test_an_edit_writes_no_bookkeeping_rows_of_its_own(store: Store) -> None:
    """The audit chain's end and the outbox sequence live on pages an edit writes anyway:
    no meta row, no sqlite_sequence row (each would be one more page to seal)."""
    p = store.save(Participant(given_name="Few", family_name="Pages"))
    log_writes(store, "meta")
    sequence = store.db.query("SELECT name, seq FROM sqlite_sequence ORDER BY name")
    for phone in ("07700 900011", "07700 900012"):
        p = store.save(p.replace(phone=phone))
    store.repo(CaseNote).save(CaseNote(participant_id=p.id, summary="met"))
    store.audit("view", "participant", p.id, p.id)
    assert store.db.query("SELECT op FROM meta_writes") == []
    assert store.db.query("SELECT name, seq FROM sqlite_sequence ORDER BY name") == sequence
    assert [n for (n,) in store.db.query("SELECT name FROM sqlite_sequence")].count("outbox") == 0
    assert marked(store) == [store.audit_entries(limit=1)[0].seq] and store.verify_audit() == []


def test_a_transaction_leaves_the_mark_on_its_last_entry_only(store: Store) -> None:
    store.save(Participant(given_name="First", family_name="Entry"))
    before = marked(store)
    with store.db.transaction():
        people = store.participants.save_many(
            [Participant(given_name=f"P{i}", family_name="Batch") for i in range(5)])
        store.repo(CaseNote).save_many([CaseNote(participant_id=p.id, summary="met") for p in people])
        # Inside the transaction the entries it wrote keep their marks until the commit,
        # and the chain already verifies.
        assert store.verify_audit() == []
        assert len(marked(store)) == 10 and before[0] not in marked(store)
    last = store.audit_entries(limit=1)[0]
    assert marked(store) == [last.seq] and last.seq == before[0] + 10
    assert store.verify_audit() == [] and store.db.transaction_state == {}


def test_a_rolled_back_transaction_leaves_the_mark_as_it_was(store: Store) -> None:
    store.save(Participant(given_name="Kept", family_name="One"))
    mark, entries = marked(store), len(store.audit_entries())
    with pytest.raises(RuntimeError):
        with store.db.transaction():
            store.save(Participant(given_name="Gone", family_name="Two"))
            store.save(Participant(given_name="Gone", family_name="Three"))
            raise RuntimeError("power cut")
    assert (marked(store), len(store.audit_entries())) == (mark, entries)
    assert store.db.transaction_state == {}
    # The next transaction carries on from the committed end, not the discarded one.
    p = store.save(Participant(given_name="After", family_name="Four"))
    assert store.audit_entries(limit=1)[0].seq == mark[0] + 1 == marked(store)[0]
    assert store.verify_audit() == [] and p.version == 1


def test_cutting_off_a_batch_is_still_caught(store: Store) -> None:
    store.participants.save_many([Participant(given_name=f"C{i}", family_name="Cut") for i in range(4)])
    last = store.audit_entries(limit=1)[0].seq
    store.db.conn.execute("DELETE FROM audit_log WHERE seq >= ?", (last - 1,))
    assert any("entries were removed from the end" in p for p in store.verify_audit())


def test_a_failing_write_before_commit_rolls_the_transaction_back(store: Store) -> None:
    count = store.participants.count()

    def broken(conn: Any) -> None:
        raise OSError("disk full")

    with pytest.raises(OSError):
        with store.db.transaction():
            store.save(Participant(given_name="Never", family_name="Saved"))
            store.db.before_commit("broken", broken)
    assert store.participants.count() == count and store.db.transaction_state == {}
    with pytest.raises(RuntimeError):
        store.db.before_commit("outside", broken)


def test_search_limits_are_numbers_and_are_honoured(store: Store) -> None:
    store.participants.save_many([Participant(given_name=f"Sam{i}", family_name="Smith") for i in range(5)])
    assert len(store.participants.search("smith", limit=3)) == 3
    assert len(store.participants.search("", limit=2)) == 2
    with pytest.raises(ValueError):
        store.participants.search("smith", limit="1; DROP TABLE participant")  # type: ignore[arg-type]
    assert store.participants.count() == 5


def test_both_drivers_get_the_same_statement_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import sqlite3

    import sqlcipher3

    seen: dict[str, Any] = {}
    for name, module in (("sqlite3", sqlite3), ("sqlcipher3", sqlcipher3)):
        real = module.connect

        def spy(*args: Any, _real: Any = real, _name: str = name, **kwargs: Any) -> Any:
            seen[_name] = kwargs.get("cached_statements")
            return _real(*args, **kwargs)

        monkeypatch.setattr(module, "connect", spy)
    Database.connect_plain(tmp_path / "plain.db").close()
    Database.connect_encrypted(tmp_path / "enc.db", b"k" * 32, database.CipherSettings(), create=True).close()
    # More than the store's distinct statements (three per record table and the rest).
    assert seen == {"sqlite3": STATEMENT_CACHE, "sqlcipher3": STATEMENT_CACHE} and STATEMENT_CACHE >= 256


def test_an_edit_writes_one_page_per_table_it_changes(store: Store) -> None:
    """Each page a save writes is sealed (encrypted) on its way to the WAL: an edit of a
    participant writes the participant's row, the outbox row and its index, the audit entry,
    and the participant's one bookkeeping row (pending count and newest audit entry), and
    nothing else."""
    people = store.participants.save_many([Participant(given_name=f"W{i}", family_name="Wal") for i in range(20)])
    conn = store.db.conn
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    conn.execute("PRAGMA wal_autocheckpoint = 0")
    wal = Path(f"{store.db.path}-wal")
    frames = []
    for p in people[:5]:
        before = wal.stat().st_size if wal.exists() else 0
        store.save(p.replace(phone="07700 900020"))
        frames.append((wal.stat().st_size - max(before, 32)) // (4096 + 24))
    conn.execute("PRAGMA wal_autocheckpoint = 1000")
    # Five pages (before 0012 six: the pending count and the audit index were apart; before
    # 0010 eight: meta and sqlite_sequence too); now and then a page that fills up adds a
    # new page and the database header.
    assert frames.count(5) >= 4 and max(frames) <= 7, frames
