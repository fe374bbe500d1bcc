"""Migration 0004: the sync tables, applied on top of 0003 in one transaction."""

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
