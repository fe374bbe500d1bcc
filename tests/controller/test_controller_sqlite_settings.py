"""The SQLite settings in force on every connection the controller opens.

WAL with ``synchronous = NORMAL`` keeps every committed push across a crash of the
controller (never ``OFF``); a new database gets 16 KiB pages (cheaper pushes), while an
existing one keeps the page size it was made with.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from controller import db as dbmod
from controller.db import Database


def _settings(database: Database) -> dict[str, int | str]:
    with database.transaction() as tx:
        return {
            name: next(iter(row.values()))
            for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout", "page_size")
            if (row := tx.one(f"PRAGMA {name}")) is not None
        }


def test_every_connection_is_wal_with_normal_sync_and_a_new_file_has_16k_pages(tmp_path: Path) -> None:
    database = Database(f"sqlite:///{tmp_path / 'controller.sqlite3'}")
    database.migrate()
    settings = _settings(database)
    # A second connection (the pool opens more under concurrent requests) has them too.
    fresh = Database(database.url)
    try:
        assert _settings(fresh) == settings
    finally:
        fresh.close()
        database.close()
    assert settings == {
        "journal_mode": "wal",
        "synchronous": 1,          # NORMAL; 0 (OFF) could lose commits a crash must keep
        "foreign_keys": 1,
        "busy_timeout": 10000,
        "page_size": dbmod.SQLITE_PAGE_SIZE,
    }
    assert dbmod.SQLITE_PAGE_SIZE == 16384


def test_an_existing_database_keeps_its_page_size_and_still_migrates(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA page_size = 4096")
    conn.execute("CREATE TABLE made_before (id TEXT)")
    conn.commit()
    conn.close()
    database = Database(f"sqlite:///{path}")
    try:
        database.migrate()
        settings = _settings(database)
    finally:
        database.close()
    assert settings["page_size"] == 4096
    assert settings["journal_mode"] == "wal"
