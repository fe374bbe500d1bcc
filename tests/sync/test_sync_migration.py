"""Migrations of the sync tables: 0004 adds them on top of 0003 in one transaction; 0011
splits the sent log into lines and their bases; 0014 keys the lines by participant number."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from keyworker_app.store.database import MIGRATIONS, Database


def _at(tmp_path: Path, number: int) -> Database:
    db = Database.connect_plain(tmp_path / "plain.db")
    db.migrate(MIGRATIONS[:number])
    return db


def test_0004_adds_the_sync_tables_on_top_of_0003(tmp_path: Path) -> None:
    db = _at(tmp_path, 3)
    db.conn.execute("INSERT INTO outbox (record_type, record_id, version, participant_id, op, created_at)"
                    " VALUES ('participant', 'p1', 1, 'p1', 'upsert', '2025-01-01')")
    assert db.migrate(MIGRATIONS[:4]) == [4]
    tables = {r[0] for r in db.query("SELECT name FROM sqlite_master WHERE type = 'table'")}
    assert {"sync_item", "sent_log", "quarantine", "one_off_share", "sync_state"} <= tables
    assert db.query("SELECT id, last_sync_at, referral_cursor FROM sync_state") == [(1, None, None)]
    assert db.scalar("SELECT count(*) FROM outbox WHERE state = 'pending'") == 1   # untouched
    assert db.integrity_problems() == []


def test_the_sync_tables_refuse_unknown_states(tmp_path: Path) -> None:
    db = _at(tmp_path, 4)
    with pytest.raises(sqlite3.IntegrityError):
        db.conn.execute("INSERT INTO sync_item (idempotency_key, record_type, record_id, version, participant_id,"
                        " recipient, op, status, updated_at) VALUES ('k', 't', 'r', 1, 'p', 'x', 'upsert', 'lost', 'now')")
    with pytest.raises(sqlite3.IntegrityError):
        db.conn.execute("INSERT INTO sent_log (idempotency_key, participant_id, recipient, record_type, record_id,"
                        " version, op, programme, strand, fields, article_6, sent_at, controller_status)"
                        " VALUES ('k', 'p', 'x', 't', 'r', 1, 'upsert', 'pr', '', '[]', '6(1)(e)', 'now', 'rejected')")
    with pytest.raises(sqlite3.IntegrityError):
        db.conn.execute("INSERT INTO sync_state (id) VALUES (2)")


def test_0004_rolls_back_whole_if_it_fails_part_way(tmp_path: Path) -> None:
    db = _at(tmp_path, 3)
    db.conn.execute("CREATE TABLE one_off_share (x INTEGER)")   # makes 0004 fail half way
    with pytest.raises(sqlite3.OperationalError):
        db.migrate(MIGRATIONS[:4])
    assert db.user_version == 3
    assert db.query("SELECT name FROM sqlite_master WHERE name IN ('sync_item', 'sent_log')") == []


_SENT_LOG_9 = ("INSERT INTO sent_log (idempotency_key, participant_id, recipient, record_type, record_id,"
               " version, op, programme, strand, fields, article_6, article_9, one_off_reason, sent_at,"
               " controller_status) VALUES (?, ?, ?, ?, ?, ?, ?, 'working_well', '', ?, '6(1)(e)', ?, ?,"
               " '2026-11-21T10:00:00+00:00', ?)")


def test_0011_keeps_every_sent_log_line_as_it_reads(tmp_path: Path) -> None:
    """0011 keeps each line's own values in sent_line and what many lines share once in
    sent_basis; the view sent_log reads exactly what the table did, line for line and seq
    for seq, and the sequence carries on past a deleted last line."""
    db = _at(tmp_path, 10)
    lines = [  # participant, record type, record, version, recipient, op, fields, article 9, reason, status
        ("p-1", "contact", "rec-1", 1, "employer", "upsert", '["kind"]', None, "", "accepted"),
        ("p-1", "contact", "rec-1", 2, "referrer_updates", "upsert", '["kind"]', "9(2)(a)", "", "duplicate"),
        ("p-1", "contact", "rec-10", 1, "employer", "upsert", '["kind"]', None, "", "accepted"),
        ("p-2", "contact", "rec-1", 3, "employer", "delete", "[]", None, "", "accepted"),
        ("p-2", "case_note", "rec-4", 1, "individuals_at_risk", "upsert", '["summary"]', "9(2)(c)",
         "Synthetic reason: a risk to life", "accepted"),
        ("p-3", "contact", "rec-5", 1, "employer", "upsert", '["kind"]', None, "", "accepted"),
    ]
    with db.transaction() as conn:
        for participant, record_type, record_id, version, recipient, op, fields, article_9, reason, status in lines:
            conn.execute(_SENT_LOG_9, (f"{record_id}:{version}:{recipient}", participant, recipient,
                                       record_type, record_id, version, op, fields, article_9, reason, status))
        conn.execute("DELETE FROM sent_log WHERE record_id = 'rec-5'")   # the sequence is past it
    before = db.query("SELECT * FROM sent_log ORDER BY seq")
    assert db.migrate(MIGRATIONS[:11]) == [11]
    assert db.query("SELECT * FROM sent_log ORDER BY seq") == before
    assert db.scalar("SELECT count(*) FROM sent_basis") == 4   # the two employer contact lines share one
    assert db.integrity_problems() == []
    with db.transaction() as conn:
        conn.execute("INSERT INTO sent_line (participant_id, recipient, record_id, version, basis, sent_at,"
                     " controller_status) VALUES ('p-3', 'employer', 'rec-6', 1, 1, 'now', 'accepted')")
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):   # one line per item key
            conn.execute("INSERT INTO sent_line (participant_id, recipient, record_id, version, basis, sent_at,"
                         " controller_status) VALUES ('p-1', 'employer', 'rec-1', 1, 1, 'now', 'accepted')")
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):   # a line keeps its basis
            conn.execute("INSERT INTO sent_line (participant_id, recipient, record_id, version, basis, sent_at,"
                         " controller_status) VALUES ('p-3', 'employer', 'rec-7', 1, 99, 'now', 'accepted')")
    assert db.scalar("SELECT seq FROM sent_log WHERE record_id = 'rec-6'") == 7
    assert db.scalar("SELECT idempotency_key FROM sent_log WHERE record_id = 'rec-6'") == "rec-6:1:employer"
    explained = " ".join(str(r) for r in db.query(
        "EXPLAIN QUERY PLAN SELECT op FROM sent_log WHERE participant_id = 'p-1' AND recipient = 'employer'"))
    assert "sent_line_item" in explained and "SCAN" not in explained


def test_0011_rolls_back_whole_if_it_fails_part_way(tmp_path: Path) -> None:
    db = _at(tmp_path, 10)
    db.conn.execute("CREATE TABLE sent_line (x INTEGER)")   # makes 0011 fail half way
    with pytest.raises(sqlite3.OperationalError):
        db.migrate(MIGRATIONS[:11])
    assert db.user_version == 10
    assert db.query("SELECT name FROM sqlite_master WHERE name = 'sent_basis'") == []
    assert db.query("SELECT type FROM sqlite_master WHERE name = 'sent_log'") == [("table",)]


_SENT_LINE_13 = ("INSERT INTO sent_line (participant_id, recipient, record_id, version, basis, sent_at,"
                 " controller_status) VALUES (?, ?, ?, ?, ?, '2026-11-21T10:00:00+00:00', ?)")


def test_0014_numbers_people_in_the_order_of_their_first_line_and_keeps_every_line(tmp_path: Path) -> None:
    """0014 gives each participant in the sent log a number, in the order of their first
    line, and keys the lines by it: sent_log reads exactly as before, line for line and seq
    for seq, a new line goes after every line kept (with no sqlite_sequence row to keep up
    at each insert), and a participant's lines are still one index search away."""
    db = _at(tmp_path, 13)
    with db.transaction() as conn:
        conn.execute("INSERT INTO sent_basis (recipient, record_type, op, programme, strand, fields, article_6,"
                     " article_9) VALUES ('employer', 'contact', 'upsert', 'working_well', '', '[\"kind\"]',"
                     " '6(1)(a)', '')")
        conn.execute("INSERT INTO sent_basis (recipient, record_type, op, programme, strand, fields, article_6,"
                     " article_9) VALUES ('referrer_updates', 'case_note', 'upsert', 'working_well', '',"
                     " '[\"summary\"]', '6(1)(e)', '9(2)(h)')")
        for line in [("p-2", "employer", "rec-1", 1, 1, "accepted"),
                     ("p-1", "referrer_updates", "rec-2", 1, 2, "duplicate"),
                     ("p-2", "referrer_updates", "rec-3", 2, 2, "accepted"),
                     ("p-3", "employer", "rec-4", 1, 1, "accepted"),
                     ("p-1", "employer", "rec-5", 1, 1, "accepted")]:
            conn.execute(_SENT_LINE_13, line)
        conn.execute("DELETE FROM sent_line WHERE record_id = 'rec-5'")   # the last line gone
    before = db.query("SELECT * FROM sent_log ORDER BY seq")
    assert len(before) == 4
    assert db.migrate(MIGRATIONS[:14]) == [14]
    assert db.query("SELECT * FROM sent_log ORDER BY seq") == before
    assert db.query("SELECT no, participant_id FROM sent_person ORDER BY no") == [(1, "p-2"), (2, "p-1"), (3, "p-3")]
    assert db.query("SELECT person FROM sent_line ORDER BY seq") == [(1,), (2,), (1,), (3,)]
    assert db.integrity_problems() == []
    employer_line = ("INSERT INTO sent_line (person, recipient, record_id, version, basis, sent_at,"
                     " controller_status) VALUES (?, 'employer', ?, 1, 1, 'now', 'accepted')")
    with db.transaction() as conn:
        conn.execute(employer_line, (3, "rec-6"))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):   # one line per item key
            conn.execute(employer_line, (1, "rec-1"))
        with pytest.raises(sqlite3.IntegrityError, match="FOREIGN KEY"):   # a line keeps its participant
            conn.execute(employer_line, (99, "rec-7"))
        with pytest.raises(sqlite3.IntegrityError, match="UNIQUE"):   # one number per participant
            conn.execute("INSERT INTO sent_person (participant_id) VALUES ('p-1')")
    assert db.query("SELECT seq, participant_id, idempotency_key FROM sent_log WHERE record_id = 'rec-6'") == [
        (5, "p-3", "rec-6:1:employer")]   # one past the highest kept
    assert db.query("SELECT name FROM sqlite_sequence WHERE name LIKE 'sent_line%'") == []
    explained = " ".join(str(r) for r in db.query(
        "EXPLAIN QUERY PLAN SELECT op FROM sent_log WHERE participant_id = 'p-1' AND recipient = 'employer'"))
    assert "sqlite_autoindex_sent_person_1" in explained and "sent_line_item (person=? AND recipient=?)" in explained
    assert "SCAN" not in explained


def test_0014_rolls_back_whole_if_it_fails_part_way(tmp_path: Path) -> None:
    db = _at(tmp_path, 13)
    db.conn.execute("CREATE TABLE sent_line_new (x INTEGER)")   # makes 0014 fail half way
    with pytest.raises(sqlite3.OperationalError):
        db.migrate(MIGRATIONS[:14])
    assert db.user_version == 13
    assert db.query("SELECT name FROM sqlite_master WHERE name = 'sent_person'") == []
    assert db.query("SELECT type FROM sqlite_master WHERE name = 'sent_log'") == [("view",)]
    assert "participant_id" in {r[1] for r in db.query("PRAGMA table_info(sent_line)")}
