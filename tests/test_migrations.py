"""Migrations: each applies in one transaction; a newer database is refused untouched."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from keyworker_app.errors import NewerDatabase
from keyworker_app.records import RECORD_TYPES, record_fields
from keyworker_app.store.database import MIGRATIONS, SCHEMA_VERSION, Database, Migration, split_sql


def plain_db(tmp_path: Path) -> Database:
    return Database.connect_plain(tmp_path / "plain.db")


@pytest.fixture
def audit_left_out(monkeypatch: pytest.MonkeyPatch) -> None:
    """Saves without audit entries, for tests that drive today's Store over a schema older
    than 0010, whose audit log has no end mark (0010's own test covers the audit log)."""
    from keyworker_app.store import audit

    monkeypatch.setattr(audit, "append", lambda *args, **kwargs: 0)


def test_migrations_are_numbered_without_gaps() -> None:
    assert [m.number for m in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1))


@pytest.mark.parametrize("migration", MIGRATIONS, ids=lambda m: f"{m.number:04d}_{m.name}")
def test_each_migration_applies_on_top_of_the_previous(tmp_path: Path, migration: Migration) -> None:
    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[: migration.number - 1])
    assert db.user_version == migration.number - 1
    assert db.migrate(MIGRATIONS[: migration.number]) == [migration.number]
    assert db.user_version == migration.number
    assert db.integrity_problems() == []


def test_schema_has_a_column_for_every_record_field(tmp_path: Path) -> None:
    db = plain_db(tmp_path)
    db.migrate()
    for record_type in RECORD_TYPES:
        columns = [r[1] for r in db.query(f"PRAGMA table_info({record_type.record_type})")]
        assert columns == list(record_fields(record_type)), record_type.record_type


def test_migrating_twice_does_nothing(tmp_path: Path) -> None:
    db = plain_db(tmp_path)
    db.migrate()
    assert db.migrate() == []


def test_a_migration_another_instance_applied_meanwhile_is_skipped(tmp_path: Path) -> None:
    """The app started twice on one profile after an upgrade: both read the old version,
    one migrates, and the other must then find the migration applied (read again under
    the write lock) and skip it, rather than run it twice and fail half way (which was
    reported as a damaged profile)."""
    path = tmp_path / "shared.db"
    first = Database.connect_plain(path)
    first.migrate(MIGRATIONS[:-1])
    second = Database.connect_plain(path)

    class FirstMigratesMeanwhile(tuple):  # type: ignore[type-arg]
        def __iter__(self):  # type: ignore[no-untyped-def]
            first.migrate()   # after `second` has read the version, before it takes the lock
            return super().__iter__()

    assert second.migrate(FirstMigratesMeanwhile(MIGRATIONS)) == []
    assert second.user_version == first.user_version == SCHEMA_VERSION
    assert second.integrity_problems() == []


def test_a_failing_migration_rolls_back_whole(tmp_path: Path) -> None:
    db = plain_db(tmp_path)
    db.migrate()
    bad = Migration(SCHEMA_VERSION + 1, "broken", "CREATE TABLE half_done (x INTEGER);\nTHIS IS NOT SQL;")
    with pytest.raises(Exception):
        db.migrate(MIGRATIONS + (bad,))
    assert db.user_version == SCHEMA_VERSION
    assert db.query("SELECT name FROM sqlite_master WHERE name = 'half_done'") == []


def test_newer_database_is_refused_before_anything_changes(tmp_path: Path) -> None:
    db = plain_db(tmp_path)
    db.migrate()
    db.conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(NewerDatabase) as info:
        db.migrate()
    assert (info.value.found, info.value.supported) == (SCHEMA_VERSION + 1, SCHEMA_VERSION)


def test_split_sql_keeps_trigger_bodies_whole() -> None:
    statements = split_sql("-- c\nCREATE TABLE a (x);\nCREATE TRIGGER t AFTER INSERT ON a BEGIN\n"
                           "  INSERT INTO a VALUES (1);\n  INSERT INTO a VALUES (2);\nEND;\n")
    assert len(statements) == 2 and statements[1].rstrip().endswith("END;")


def _two_saved_and_one_saved(store: Any) -> tuple[Any, Any]:
    """Participant A saved twice (two outbox rows) and B once."""
    from keyworker_app.records import Participant

    a = store.save(Participant(given_name="A", family_name="One"))
    a = store.save(a.replace(phone="07700 900001"))
    return a, store.save(Participant(given_name="B", family_name="Two"))


def test_pending_counts_follow_the_outbox(tmp_path: Path) -> None:
    """0005's triggers keep participant_pending equal to a count of the outbox, whatever happens."""
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate()
    store = Store(db, "KW-1")
    a, b = _two_saved_and_one_saved(store)

    def counts() -> dict[str, int]:
        return dict(db.query("SELECT participant_id, pending FROM participant_pending"))

    def truth() -> dict[str, int]:
        return dict(db.query("SELECT participant_id, count(*) FROM outbox WHERE state = 'pending'"
                             " GROUP BY participant_id"))

    assert counts() == truth() == {a.id: 2, b.id: 1}
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (a.id,))
    assert counts() == truth() == {b.id: 1}
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'pending' WHERE participant_id = ? AND version = 2", (a.id,))
        conn.execute("UPDATE outbox SET state = 'quarantined' WHERE participant_id = ?", (b.id,))
    assert counts() == truth() == {a.id: 1}
    with db.transaction() as conn:
        conn.execute("DELETE FROM outbox")
    assert counts() == truth() == {}


def test_0006_search_still_finds_everyone_after_the_rebuild(tmp_path: Path, audit_left_out: None) -> None:
    """The search index rebuilt by 0006 still holds what was saved before it."""
    from keyworker_app.records import Participant
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:5])
    store = Store(db, "KW-1")
    before = store.save(Participant(given_name="Siobhán", family_name="Ó Briain", postcode="OL1 1AA"))
    assert db.migrate(MIGRATIONS[:6]) == [6]
    after = store.save(Participant(given_name="Sam", family_name="Smith"))
    assert [p.id for p in store.participants.search("siob")] == [before.id]
    assert [p.id for p in store.participants.search("s")] and after.id in [p.id for p in store.participants.search("s")]
    assert [p.id for p in store.participants.search("ol1")] == [before.id]
    plan = " ".join(str(r) for r in db.query(
        "EXPLAIN QUERY PLAN SELECT id FROM participant p ORDER BY p.review_due IS NULL, p.review_due"))
    assert "participant_by_review_due" in plan


def test_0007_outcomes_saved_before_it_read_back_with_no_in_work_answer(tmp_path: Path, audit_left_out: None) -> None:
    """Outcomes from before 0007 come back with ``in_work`` None (not asked) and no notes."""
    from datetime import date

    from keyworker_app.records import Outcome, OutcomeKind
    from keyworker_app.store.codec import codec_for
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:6])
    old = Outcome(participant_id="p-1", kind=OutcomeKind.SUSTAINMENT, outcome_on=date(2025, 5, 14),
                  employer="Example Bakery Ltd", weekly_hours=22.5)
    codec = codec_for(Outcome)
    columns = [c for c in codec.columns if c not in ("in_work", "notes")]
    row = dict(zip(codec.columns, codec.to_row(old)))
    with db.transaction() as conn:
        conn.execute(f"INSERT INTO outcome ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                     [row[c] for c in columns])
    assert db.migrate(MIGRATIONS[:7]) == [7]
    store = Store(db, "KW-1")
    (back,) = [r for r in db.query("SELECT in_work, notes FROM outcome")]
    assert tuple(back) == (None, "")
    loaded = store.repo(Outcome).get(old.id)
    assert loaded.in_work is None and loaded.notes == "" and loaded.employer == "Example Bakery Ltd"
    fresh = store.save(Outcome(participant_id="p-1", kind=OutcomeKind.SUSTAINMENT, in_work=False,
                               notes="Contract ended."))
    again = store.repo(Outcome).get(fresh.id)
    assert again.in_work is False and again.notes == "Contract ended."


def test_0008_search_index_is_rewritten_only_when_a_searched_column_changes(tmp_path: Path, audit_left_out: None) -> None:
    """After 0008 an edit to an unsearched field leaves the search index's pages alone."""
    from keyworker_app.records import Participant
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:7])
    store = Store(db, "KW-1")
    before = store.save(Participant(given_name="Ada", family_name="Lovelace", ni_number="AB123456C"))
    assert db.migrate(MIGRATIONS[:8]) == [8]

    def index_pages() -> list[object]:
        return db.query("SELECT id, block FROM participant_search_data ORDER BY id")

    pages = index_pages()
    p = store.save(before.replace(phone="07700 900123", review_due=None))
    assert index_pages() == pages
    p = store.save(p.replace(family_name="Byron"))
    assert index_pages() != pages
    assert [x.id for x in store.participants.search("byron")] == [p.id]
    assert store.participants.search("lovelace") == []
    p = store.save(p.replace(ni_number="CD654321A"))
    assert [x.id for x in store.participants.search("CD654321A")] == [p.id]
    assert store.participants.search("AB123456C") == []
    db.conn.execute("INSERT INTO participant_search(participant_search) VALUES ('integrity-check')")


def test_0009_the_sent_log_is_copied_whole_and_indexed_once_by_participant(tmp_path: Path) -> None:
    """0009 rebuilds the sent log with one index: every line and its seq kept, the sequence
    carrying on after them, the same uniqueness, and a deletion still finding exactly the
    recipients that hold that record."""
    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:8])
    sql = ("INSERT INTO sent_log (idempotency_key, participant_id, recipient, record_type, record_id,"
           " version, op, programme, strand, fields, article_6, article_9, sent_at, controller_status)"
           " VALUES (?, ?, ?, 'contact', ?, ?, 'upsert', 'working_well', '', '[\"kind\"]', '6(1)(a)', ?,"
           " '2026-11-21T10:00:00+00:00', ?)")
    lines = [("p-1", "rec-1", 1, "employer", None, "accepted"), ("p-1", "rec-1", 2, "referrer_updates", "9(2)(a)", "duplicate"),
             ("p-1", "rec-10", 1, "evaluation", None, "accepted"), ("p-2", "rec-2", 1, "employer", None, "accepted")]
    with db.transaction() as conn:
        for participant, record_id, version, recipient, article_9, status in lines:
            conn.execute(sql, (f"{record_id}:{version}:{recipient}", participant, recipient, record_id, version,
                               article_9, status))
        conn.execute("DELETE FROM sent_log WHERE record_id = 'rec-2'")   # the sequence is past it
    before = db.query("SELECT * FROM sent_log ORDER BY seq")
    assert db.migrate(MIGRATIONS[:9]) == [9]
    assert db.query("SELECT * FROM sent_log ORDER BY seq") == before
    indexes = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'sent_log'")}
    assert indexes == {"sent_log_item"}
    with db.transaction() as conn:
        conn.execute(sql, ("rec-3:1:employer", "p-3", "employer", "rec-3", 1, None, "accepted"))
        with pytest.raises(Exception, match="UNIQUE"):
            conn.execute(sql.replace("INSERT", "INSERT OR ABORT"),
                         ("rec-1:1:employer", "p-1", "employer", "rec-1", 1, None, "accepted"))
    assert db.scalar("SELECT seq FROM sent_log WHERE record_id = 'rec-3'") == 5

    from keyworker_app.store.store import OutboxItem, Store
    from sync.projection import Projector

    store = Store(db, "KW-1")
    plan = Projector(store, profiles={})._plan_delete(
        OutboxItem(99, "contact", "rec-1", 3, "p-1", "delete", "2026-11-21T11:00:00+00:00"))
    assert sorted(i.recipient for i in plan.items) == ["employer", "referrer_updates"]
    query = "EXPLAIN QUERY PLAN SELECT recipient FROM sent_log WHERE participant_id = 'p-1' AND record_id = 'rec-1'"
    assert "sent_log_item" in " ".join(str(r) for r in db.query(query))


def test_0010_outbox_and_audit_log_carry_over_and_keep_their_guarantees(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0010 copies the outbox without AUTOINCREMENT (every row, seq and pending count kept; a
    seq is still never used twice) and moves the audit chain's end from meta onto the last
    entry: an intact log still verifies, and a log already cut before 0010 is still caught."""
    from keyworker_app.records import Participant
    from keyworker_app.store import audit
    from keyworker_app.store.store import Store

    def old_store(name: str) -> tuple[Database, Store]:
        db = Database.connect_plain(tmp_path / f"{name}.db")
        db.migrate(MIGRATIONS[:9])
        store = Store(db, "KW-1")
        # Before 0010 the chain's head was kept in meta as "seq:hash".
        def append(conn: object, actor: str, action: str, record_type: str = "", record_id: str = "",
                   participant_id: str = "", detail: object = None, at: str | None = None, *, db: Database) -> int:
            row = db.conn.execute("SELECT value FROM meta WHERE key = 'audit_head'").fetchone()
            seq, _, prev = row[0].partition(":") if row else ("0", "", audit.GENESIS)
            seq_n, at = int(seq) + 1, "2026-11-20T10:00:00+00:00"
            digest = audit.entry_hash(prev, seq_n, at, actor, action, record_type, record_id, participant_id, "{}")
            db.conn.execute("INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
                            " detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,'{}',?,?)",
                            (seq_n, at, actor, action, record_type, record_id, participant_id, prev, digest))
            db.conn.execute("INSERT INTO meta (key, value) VALUES ('audit_head', ?) ON CONFLICT(key)"
                            " DO UPDATE SET value = excluded.value", (f"{seq_n}:{digest}",))
            return seq_n
        with monkeypatch.context() as patched:
            patched.setattr(audit, "append", append)
            a = store.save(Participant(given_name="A", family_name="One"))
            a = store.save(a.replace(phone="07700 900001"))
            b = store.save(Participant(given_name="B", family_name="Two"))
            store.save(b.replace(phone="07700 900002"))
        return db, store

    db, store = old_store("intact")
    with db.transaction() as conn:
        # The newest outbox row deleted: AUTOINCREMENT had taken the sequence past the rows kept.
        conn.execute("DELETE FROM outbox WHERE seq = 4")
        conn.execute("UPDATE outbox SET state = 'done' WHERE seq = 1")
    outbox = db.query("SELECT * FROM outbox ORDER BY seq")
    pending = db.query("SELECT * FROM participant_pending ORDER BY participant_id")
    assert db.query("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") == [(4,)]
    assert db.migrate(MIGRATIONS[:10]) == [10]
    assert db.query("SELECT * FROM outbox ORDER BY seq") == outbox
    assert db.query("SELECT * FROM participant_pending ORDER BY participant_id") == pending
    assert "AUTOINCREMENT" not in db.scalar("SELECT sql FROM sqlite_master WHERE name = 'outbox'")
    assert db.query("SELECT seq FROM sqlite_sequence WHERE name = 'outbox'") == []
    assert store.get_meta("outbox_last_seq") == "4"
    assert {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE tbl_name = 'outbox'"
                                   " AND type IN ('index', 'trigger')")} == {
        "outbox_pending", "outbox_pending_insert", "outbox_pending_update", "outbox_pending_delete",
        "outbox_seq_kept", "outbox_seq_never_reused"}
    assert db.query("SELECT seq FROM audit_log WHERE chain_end = 1") == [(4,)]
    assert store.get_meta("audit_head") == ""
    # Today's Store reads the audit log as later migrations leave it.
    db.migrate()
    assert store.verify_audit() == [] and db.integrity_problems() == []
    # Saving carries on: the outbox's next seq is past the one deleted, the chain from entry 4.
    c = store.save(Participant(given_name="C", family_name="Three"))
    assert db.query("SELECT seq FROM outbox WHERE record_id = ?", (c.id,)) == [(5,)]
    assert store.audit_entries(limit=1)[0].seq == 5 and store.verify_audit() == []
    assert store.outbox_count() == 3

    # A log whose last entry had been removed before 0010 is still reported after it, and
    # after more entries are added.
    db, store = old_store("cut")
    db.conn.execute("DELETE FROM audit_log WHERE seq = 4")
    assert db.migrate(MIGRATIONS[:10]) == [10]
    db.migrate()
    assert any("entries were removed from the end" in p for p in store.verify_audit())
    store.save(Participant(given_name="D", family_name="Four"))
    assert "audit entry 4 is missing (next entry is 5)" in store.verify_audit()


def test_outbox_seq_is_never_used_twice(tmp_path: Path) -> None:
    """With AUTOINCREMENT gone (0010), deleting the newest outbox rows still never lets a
    later row take their seq, whoever inserts it."""
    from keyworker_app.records import Participant
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate()
    store = Store(db, "KW-1")
    people = [store.save(Participant(given_name=f"P{i}", family_name="Seq")) for i in range(3)]
    with db.transaction() as conn:
        conn.execute("DELETE FROM outbox WHERE seq >= 2")
    store.save(people[0].replace(phone="07700 900001"))
    with db.transaction() as conn:  # as the sync ledger inserts, with no seq given
        conn.execute("INSERT INTO outbox (record_type, record_id, version, participant_id, op, created_at)"
                     " VALUES ('participant', ?, 1, ?, 'upsert', '2026-11-21T10:00:00+00:00')",
                     (people[1].id, people[1].id))
    assert [r[0] for r in db.query("SELECT seq FROM outbox ORDER BY seq")] == [1, 4, 5]
    with db.transaction() as conn:
        conn.execute("DELETE FROM outbox")
    store.save(people[2].replace(phone="07700 900002"))
    assert [r[0] for r in db.query("SELECT seq FROM outbox")] == [6]
    assert dict(db.query("SELECT participant_id, pending FROM participant_pending")) == {people[2].id: 1}


def test_0012_pending_counts_and_audit_histories_carry_over_into_one_row_per_participant(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """0012 moves the pending counts and the audit log's participant index into one row per
    participant plus a link on each entry: every count and every participant's history
    carries over, the chain still verifies, and saving afterwards goes on linking."""
    from keyworker_app.records import Participant
    from keyworker_app.store import audit
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:11])
    store = Store(db, "KW-1")

    def append(conn: object, actor: str, action: str, record_type: str = "", record_id: str = "",
               participant_id: str = "", detail: object = None, at: str | None = None, *, db: Database) -> int:
        # As 0010 and 0011 wrote entries: the mark on the last, no participant link.
        row = db.conn.execute("SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
        seq, prev = (int(row[0]) + 1, str(row[1])) if row else (1, audit.GENESIS)
        at = "2026-11-20T10:00:00+00:00"
        digest = audit.entry_hash(prev, seq, at, actor, action, record_type, record_id, participant_id, "{}")
        db.conn.execute("UPDATE audit_log SET chain_end = 0 WHERE chain_end = 1")
        db.conn.execute("INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
                        " detail, prev_hash, hash, chain_end) VALUES (?,?,?,?,?,?,?,'{}',?,?,1)",
                        (seq, at, actor, action, record_type, record_id, participant_id, prev, digest))
        if seq == 1:
            db.conn.execute("INSERT INTO meta (key, value) VALUES ('audit_start', ?)", (digest,))
        return seq

    with monkeypatch.context() as patched:
        patched.setattr(audit, "append", append)
        a = store.save(Participant(given_name="A", family_name="One"))
        b = store.save(Participant(given_name="B", family_name="Two"))
        store.audit("export")  # about no participant
        a = store.save(a.replace(phone="07700 900001"))
        c = store.save(Participant(given_name="C", family_name="Three"))
        b = store.save(b.replace(phone="07700 900002"))
    with db.transaction() as conn:  # C's change was sent: C has nothing pending
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (c.id,))

    def histories() -> dict[str, list[int]]:
        return {p.id: [r[0] for r in db.query("SELECT seq FROM audit_log WHERE participant_id = ?"
                                              " ORDER BY seq DESC", (p.id,))] for p in (a, b, c)}

    pending = db.query("SELECT participant_id, pending FROM participant_pending ORDER BY participant_id")
    before = histories()
    assert before == {a.id: [4, 1], b.id: [6, 2], c.id: [5]}
    assert db.migrate(MIGRATIONS[:12]) == [12]

    assert db.query("SELECT participant_id, pending FROM participant_pending ORDER BY participant_id") == pending
    assert {p.id: [e.seq for e in store.audit_entries(p.id)] for p in (a, b, c)} == before
    assert dict(db.query("SELECT participant_id, last_audit FROM participant_activity")) == {
        a.id: 4, b.id: 6, c.id: 5}
    assert db.query("SELECT name FROM sqlite_master WHERE name IN ('audit_by_participant', 'participant_pending')"
                    " AND type IN ('index', 'table')") == []
    assert store.verify_audit() == [] and db.integrity_problems() == []
    assert store.outbox_count() == 4  # A's two saves and B's two; C's was sent

    # Saving carries on linking each participant's entries, and the counts follow the outbox.
    store.save(c.replace(phone="07700 900003"))
    store.save(a.replace(phone="07700 900004"))
    assert [e.seq for e in store.audit_entries(c.id)] == [7, 5]
    assert [e.seq for e in store.audit_entries(a.id)] == [8, 4, 1]
    assert dict(db.query("SELECT participant_id, pending FROM participant_pending")) == {a.id: 3, b.id: 2, c.id: 1}
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id != ?", (c.id,))
    assert dict(db.query("SELECT participant_id, pending FROM participant_pending")) == {c.id: 1}
    assert store.outbox_count() == 1 and store.verify_audit() == []


def test_0013_the_outbox_index_keeps_only_pending_rows_and_a_sync_reads_through_it(tmp_path: Path) -> None:
    """0013 swaps the outbox's (state, seq) index for one of pending rows only (and one of
    quarantined rows by record): the rows carry over, what a sync reads comes out the
    same, through the new indexes, and a row sent leaves the pending index."""
    from keyworker_app.records import Participant
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:12])
    store = Store(db, "KW-1")
    people = [store.save(Participant(given_name=f"P{i}", family_name="Test")) for i in range(5)]
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE record_id = ?", (people[1].id,))
        conn.execute("UPDATE outbox SET state = 'quarantined' WHERE record_id = ?", (people[3].id,))
    outbox = db.query("SELECT * FROM outbox ORDER BY seq")
    pending = store.outbox_pending(limit=100)
    assert len(pending) == 3
    assert db.migrate(MIGRATIONS[:13]) == [13]

    assert db.query("SELECT * FROM outbox ORDER BY seq") == outbox
    assert store.outbox_pending(limit=100) == pending
    assert store.outbox_pending(limit=1, after_seq=pending[0].seq) == pending[1:2]
    assert store.outbox_count() == 3 and store.outbox_count("done") == 1 and store.outbox_count("quarantined") == 1

    def plan(sql: str, params: tuple[object, ...]) -> str:
        return " ".join(str(r[3]) for r in db.query("EXPLAIN QUERY PLAN " + sql, params))

    assert "USING INDEX outbox_pending" in plan(
        "SELECT seq FROM outbox WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?", (0, 10))
    assert "USING INDEX outbox_quarantined" in plan(
        "SELECT seq FROM outbox WHERE state = 'quarantined' AND record_id = ?", (people[3].id,))

    through = {   # rows counted through one index only
        "outbox_pending": "SELECT count(*) FROM outbox INDEXED BY outbox_pending WHERE state = 'pending' AND seq > 0",
        "outbox_quarantined": "SELECT count(*) FROM outbox INDEXED BY outbox_quarantined"
                              " WHERE state = 'quarantined' AND record_id != ''",
    }

    def indexed(name: str) -> int:
        return int(db.scalar(through[name]))

    assert indexed("outbox_pending") == 3 and indexed("outbox_quarantined") == 1
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE seq = ?", (pending[0].seq,))
    assert indexed("outbox_pending") == 2 and store.outbox_pending(limit=100) == pending[1:]
    assert db.integrity_problems() == []


def test_0015_a_row_leaving_pending_counts_down_with_an_update_only(tmp_path: Path) -> None:
    """0015 splits the outbox's state trigger: leaving 'pending' is a plain update of the
    participant's count (no insert attempt first), coming back still upserts. Counts carry
    over and follow the outbox as before; and leaving never makes an activity row, which
    only the upsert could."""
    from keyworker_app.store.store import Store

    db = plain_db(tmp_path)
    db.migrate(MIGRATIONS[:14])
    store = Store(db, "KW-1")
    a, b = _two_saved_and_one_saved(store)

    def counts() -> dict[str, int]:
        return dict(db.query("SELECT participant_id, pending FROM participant_activity"))

    assert counts() == {a.id: 2, b.id: 1}
    assert db.migrate(MIGRATIONS[:15]) == [15]
    assert counts() == {a.id: 2, b.id: 1}
    triggers = dict(db.query("SELECT name, sql FROM sqlite_master WHERE type = 'trigger' AND tbl_name = 'outbox'"))
    assert "outbox_pending_update" not in triggers
    assert "INSERT" not in triggers["outbox_pending_leave"].upper()
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (a.id,))
        conn.execute("UPDATE outbox SET state = 'quarantined' WHERE participant_id = ?", (b.id,))
    assert counts() == {a.id: 0, b.id: 0}
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'pending' WHERE participant_id = ? AND version = 2", (a.id,))
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (b.id,))   # not pending before
    assert counts() == {a.id: 1, b.id: 0}
    with db.transaction() as conn:   # a participant's activity row gone (not something the app does)
        conn.execute("DELETE FROM participant_activity WHERE participant_id = ?", (a.id,))
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (a.id,))
    assert counts() == {b.id: 0}
    with db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'pending' WHERE participant_id = ? AND version = 1", (a.id,))
    assert counts() == {a.id: 1, b.id: 0}
    assert store.outbox_count() == 1 and db.integrity_problems() == []
