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


def test_two_writers_in_one_controller_queue_on_its_lock_not_in_sqlite(tmp_path: Path, monkeypatch: object) -> None:
    """A second transaction waits for the first on the controller's own lock and goes the
    moment the first commits. Here SQLite's busy handler is off (busy_timeout 0) on the
    pool's connections: a second writer that reached SQLite while the first held it would
    fail at once ("database is busy") instead."""
    import threading

    database = Database(f"sqlite:///{tmp_path / 'controller.sqlite3'}")
    database.migrate()
    database.close()
    database = Database(database.url)
    connect = Database._connect

    def impatient(self: Database) -> sqlite3.Connection:
        conn = connect(self)
        conn.execute("PRAGMA busy_timeout = 0")
        return conn

    monkeypatch.setattr(Database, "_connect", impatient)  # type: ignore[attr-defined]
    waiting = threading.Event()
    real = database._write_lock

    class Observed:
        """The real lock; says when a thread finds it held and starts to wait."""

        def __enter__(self) -> None:
            if not real.acquire(blocking=False):
                waiting.set()
                real.acquire()

        def __exit__(self, *_: object) -> None:
            real.release()

    database._write_lock = Observed()  # type: ignore[assignment]
    first_in, failures = threading.Event(), []
    release = threading.Event()

    def first() -> None:
        with database.transaction() as tx:
            tx.execute("INSERT INTO enrolment_codes (code_hash, keyworker_id, created_at, expires_at)"
                       " VALUES ('a', 'kw', 'now', 'later')")
            first_in.set()
            release.wait()

    def second() -> None:
        try:
            with database.transaction() as tx:
                tx.execute("INSERT INTO enrolment_codes (code_hash, keyworker_id, created_at, expires_at)"
                           " VALUES ('b', 'kw', 'now', 'later')")
        except Exception as exc:  # noqa: BLE001 - what the test reports
            failures.append(exc)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    threads[0].start()
    assert first_in.wait(timeout=30)
    threads[1].start()
    reached_lock = waiting.wait(timeout=30)
    release.set()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert reached_lock and failures == []
        with database.transaction() as tx:
            assert [r["code_hash"] for r in tx.query("SELECT code_hash FROM enrolment_codes ORDER BY 1")] == ["a", "b"]
    finally:
        database.close()
