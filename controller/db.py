"""One SQL layer over SQLite (default) and PostgreSQL (psycopg 3).

Every query in the controller is plain SQL written once, with ``?`` placeholders; this
module is the one place that adapts it to the backend (``%s`` for psycopg). The schema is
created and upgraded by numbered files in ``controller/migrations/`` (``0001_name.sql``),
each applied in one transaction and recorded in ``schema_migrations``; a database that has
a migration this code does not know is refused with :class:`DatabaseTooNew`.

Timestamps are stored as fixed-width ISO-8601 UTC text (see :func:`now_text`) so that
comparison and ordering are plain string comparison on both backends.
"""

from __future__ import annotations

import json
import queue
import re
import sqlite3
import threading
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from importlib import resources
from pathlib import Path
from typing import Any, Iterator, Protocol, Sequence
from urllib.parse import unquote, urlsplit

import orjson
import platformdirs

Row = dict[str, Any]

#: The page size of a new SQLite database (bytes); see Database.migrate.
SQLITE_PAGE_SIZE = 16384

_MIGRATION_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


class DatabaseError(Exception):
    """A failure of the controller's database that a person can act on."""


class BadDatabaseUrl(DatabaseError):
    """The ``--db`` URL is not one this controller understands."""


class DatabaseUnavailable(DatabaseError):
    """The database cannot be reached or is busy; retrying later may work."""


class DatabaseTooNew(DatabaseError):
    """The database was upgraded by a newer controller than this one."""


class UniqueViolation(DatabaseError):
    """An insert broke a unique constraint (used to detect exactly-once races)."""


def now_text(moment: datetime | None = None) -> str:
    """A UTC moment as fixed-width text that sorts in time order."""
    moment = (moment or datetime.now(timezone.utc)).astimezone(timezone.utc)
    if moment.year < 1000:  # isoformat pads years as strftime does not; keep strftime's text
        return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    # The same text as strftime("%Y-%m-%dT%H:%M:%S.%fZ"), several times faster.
    return moment.replace(tzinfo=None).isoformat(timespec="microseconds") + "Z"


def later_text(seconds: float) -> str:
    """The moment ``seconds`` from now, as :func:`now_text` text."""
    return now_text(datetime.now(timezone.utc) + timedelta(seconds=seconds))


def default_url() -> str:
    """The default database: a SQLite file in the user's data directory."""
    folder = Path(platformdirs.user_data_dir("keyworker-controller"))
    return f"sqlite:///{folder / 'controller.sqlite3'}"


class Tx(Protocol):
    """An open transaction. SQL uses ``?`` placeholders on every backend."""

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]: ...

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None: ...

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int: ...

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int: ...

    def any_of(self, values: Sequence[Any]) -> tuple[str, Any]: ...

    def insert_many(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> int: ...


@dataclass(frozen=True)
class BulkInsert:
    """An INSERT of many rows into ``table`` at once, written once for both backends.

    ``tail`` follows the rows (e.g. ``ON CONFLICT (...) DO NOTHING``); ``types`` gives the
    SQL type of each column that is not TEXT. Rows hold str, int or None. SQLite runs one
    ``INSERT ... VALUES (?, ...)`` per row (:meth:`Tx.executemany`); PostgreSQL runs one
    statement for them all (see :meth:`_PostgresTx.insert_many`), which changes the same
    rows in the same order.
    """

    table: str
    columns: tuple[str, ...]
    tail: str = ""
    types: dict[str, str] = field(default_factory=dict)

    def values_sql(self) -> str:
        """One row: ``INSERT INTO table (columns) VALUES (?, ...) tail``."""
        marks = ", ".join("?" * len(self.columns))
        return f"INSERT INTO {self.table} ({', '.join(self.columns)}) VALUES ({marks}) {self.tail}".rstrip()

    def columns_sql(self) -> str:
        """Every row at once, from one JSON array parameter per column (PostgreSQL)."""
        names = [f"c{i}" for i in range(len(self.columns))]
        picked = ", ".join(
            f"{name}::{self.types[column]}" if column in self.types else name
            for name, column in zip(names, self.columns, strict=True)
        )
        arrays = ", ".join("json_array_elements_text(?::json)" for _ in self.columns)
        return (
            f"INSERT INTO {self.table} ({', '.join(self.columns)})"
            f" SELECT {picked} FROM ROWS FROM ({arrays}) AS r ({', '.join(names)}) {self.tail}"
        ).rstrip()


def json_text(values: Sequence[Any]) -> str:
    """``values`` (str, int or None) as one JSON array: orjson, or the standard encoder for
    what orjson refuses (an integer beyond 64 bits, a lone surrogate)."""
    try:
        return orjson.dumps(values).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return json.dumps(list(values))


@dataclass(frozen=True)
class Migration:
    """One numbered schema file."""

    version: int
    name: str
    sql: str


def load_migrations() -> list[Migration]:
    """The migration files shipped in ``controller/migrations``, in order."""
    found: list[Migration] = []
    folder = resources.files("controller") / "migrations"
    for entry in folder.iterdir():
        match = _MIGRATION_NAME.match(entry.name)
        if match:
            found.append(Migration(int(match.group(1)), entry.name, entry.read_text("utf-8")))
    found.sort(key=lambda m: m.version)
    versions = [m.version for m in found]
    if versions != list(range(1, len(found) + 1)):
        raise DatabaseError(f"controller migrations are not numbered 1..n: {versions}")
    return found


def _statements(sql: str) -> list[str]:
    """Split a migration into statements (our migrations keep ';' out of literals)."""
    lines = [line for line in sql.splitlines() if not line.strip().startswith("--")]
    return [s.strip() for s in "\n".join(lines).split(";") if s.strip()]


class _Cursorish(Protocol):
    rowcount: int
    description: Any

    def fetchall(self) -> list[Any]: ...


class _BaseTx:
    """Shared shape of a transaction over a DB-API connection."""

    def __init__(self, conn: Any) -> None:
        self._conn = conn

    def _run(self, sql: str, params: Sequence[Any]) -> _Cursorish:
        raise NotImplementedError

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[Row]:
        cur = self._run(sql, params)
        if cur.description is None:
            return []
        names = [d[0] for d in cur.description]
        return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    def one(self, sql: str, params: Sequence[Any] = ()) -> Row | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params).rowcount

    def executemany(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        """One statement for each of ``rows``; returns the rows changed in all."""
        if not rows:
            return 0
        return self._run_many(sql, rows)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        raise NotImplementedError

    def insert_many(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> int:
        """Insert ``rows`` in order as ``insert`` says; returns the rows changed in all."""
        return self.executemany(insert.values_sql(), rows)

    def any_of(self, values: Sequence[Any]) -> tuple[str, Any]:
        """``column IN`` + the text and the one parameter for "one of ``values``".

        One statement text whatever the number of values, so each backend prepares it
        once, and one JSON text parameter: ``IN (SELECT value FROM json_each(?))`` on
        SQLite, ``IN (SELECT json_array_elements_text(?::json))`` on PostgreSQL.
        """
        raise NotImplementedError


class _SqliteTx(_BaseTx):
    def any_of(self, values: Sequence[Any]) -> tuple[str, Any]:
        return " IN (SELECT value FROM json_each(?))", json_text(values)

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        try:
            return int(self._conn.executemany(sql, rows).rowcount)
        except sqlite3.Error as exc:
            return self._failed(exc)

    def _run(self, sql: str, params: Sequence[Any]) -> _Cursorish:
        try:
            return self._conn.execute(sql, tuple(params))  # type: ignore[no-any-return]
        except sqlite3.Error as exc:
            return self._failed(exc)

    @staticmethod
    def _failed(exc: sqlite3.Error) -> Any:
        try:
            raise exc
        except sqlite3.IntegrityError as exc:
            if "UNIQUE" in str(exc):
                raise UniqueViolation("unique constraint") from exc
            raise DatabaseError(f"SQLite failed: {type(exc).__name__}") from exc
        except sqlite3.OperationalError as exc:
            if "locked" in str(exc) or "busy" in str(exc):
                raise DatabaseUnavailable("the database is busy") from exc
            raise DatabaseError(f"SQLite failed: {type(exc).__name__}") from exc
        except sqlite3.Error as exc:
            # The class only: SQLite's text can quote the statement's values.
            raise DatabaseError(f"SQLite failed: {type(exc).__name__}") from exc


class _PostgresTx(_BaseTx):
    # Lists go to the server as one JSON text each (written by orjson, unpacked by the
    # server): psycopg adapts a Python list parameter element by element, several µs
    # each, more than the rest of a push item's work in this process.

    def any_of(self, values: Sequence[Any]) -> tuple[str, Any]:
        return " IN (SELECT json_array_elements_text(?::json))", json_text(values)

    def insert_many(self, insert: BulkInsert, rows: Sequence[Sequence[Any]]) -> int:
        """One ``INSERT ... SELECT`` of all ``rows``, each column sent as one JSON array
        and unpacked side by side (``ROWS FROM``), in the order given: about a tenth of
        psycopg's ``executemany`` in this process and two thirds in the server's.

        As in one statement, ``ON CONFLICT DO UPDATE`` must not meet the same target
        twice among ``rows`` (PostgreSQL refuses it).
        """
        if not rows:
            return 0
        return self.execute(
            insert.columns_sql(), [json_text(column) for column in zip(*rows, strict=True)]
        )

    def _run_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> int:
        adapted = sql.replace("%", "%%").replace("?", "%s")
        try:
            with self._conn.cursor() as cur:
                cur.executemany(adapted, [tuple(r) for r in rows])
                return int(cur.rowcount)
        except Exception as exc:  # noqa: BLE001 - mapped as for one statement
            return self._failed(exc)

    def _run(self, sql: str, params: Sequence[Any]) -> _Cursorish:
        # The one place placeholders are adapted: '?' -> '%s' (and a literal '%' escaped).
        adapted = sql.replace("%", "%%").replace("?", "%s")
        try:
            return self._conn.execute(adapted, tuple(params))  # type: ignore[no-any-return]
        except Exception as exc:  # noqa: BLE001 - mapped below
            return self._failed(exc)

    @staticmethod
    def _failed(exc: Exception) -> Any:
        import psycopg

        try:
            raise exc
        except psycopg.errors.UniqueViolation as exc:
            raise UniqueViolation(exc.diag.constraint_name or "unique") from exc
        except psycopg.OperationalError as exc:
            raise DatabaseUnavailable("the database is unavailable") from exc
        except psycopg.Error as exc:
            # SQLSTATE and class only: PostgreSQL's detail can quote the row's values.
            raise DatabaseError(
                f"PostgreSQL failed: {type(exc).__name__} (SQLSTATE {exc.sqlstate})"
            ) from exc


class Database:
    """A connection pool and transactions for one ``--db`` URL."""

    def __init__(self, url: str, pool_size: int = 8) -> None:
        self.url = url
        parts = urlsplit(url)
        if parts.scheme == "sqlite":
            # sqlite:///relative/or/abs -> path after the third slash; sqlite:////abs too.
            path = unquote(parts.path)
            if parts.netloc:
                raise BadDatabaseUrl("a SQLite URL looks like sqlite:///path/to/file.sqlite3")
            if not path or path == "/":
                raise BadDatabaseUrl("the SQLite URL names no file: use sqlite:///path/to/file")
            self.backend = "sqlite"
            self._sqlite_path = path
        elif parts.scheme in ("postgresql", "postgres"):
            self.backend = "postgresql"
            self._sqlite_path = ""
        else:
            raise BadDatabaseUrl(
                "the database URL must start with sqlite:/// or postgresql:// "
                f"(got scheme {parts.scheme!r})"
            )
        self._pool: queue.LifoQueue[Any] = queue.LifoQueue(maxsize=pool_size)
        self._closed = threading.Event()
        # SQLite takes one writer at a time; the others wait here, each let in the moment
        # the last commits, rather than in SQLite's busy handler, which sleeps and polls
        # (up to 100 ms between looks) and would leave the file idle meanwhile.
        self._write_lock = threading.Lock()

    # -- connections ---------------------------------------------------------------------

    def _connect(self) -> Any:
        if self.backend == "sqlite":
            Path(self._sqlite_path).parent.mkdir(parents=True, exist_ok=True)
            try:
                conn = sqlite3.connect(
                    self._sqlite_path, isolation_level=None, check_same_thread=False, timeout=10
                )
            except sqlite3.OperationalError as exc:
                raise DatabaseUnavailable(f"cannot open the SQLite file: {exc}") from exc
            conn.execute("PRAGMA busy_timeout = 10000")
            conn.execute("PRAGMA foreign_keys = ON")
            # In WAL mode (see migrate) NORMAL syncs at each checkpoint, not at each commit:
            # a committed push survives the controller crashing or being killed; only a
            # power cut or OS crash can lose the last commits, never corrupt the file.
            # This is SQLite's usual setting for servers. Never OFF.
            conn.execute("PRAGMA synchronous = NORMAL")
            return conn
        import psycopg

        try:
            return psycopg.connect(self.url, autocommit=True, connect_timeout=10)
        except psycopg.OperationalError as exc:
            # libpq's message names host and port, never the password.
            first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else "unreachable"
            raise DatabaseUnavailable(f"cannot connect to PostgreSQL: {first_line}") from exc

    def _take(self) -> Any:
        try:
            return self._pool.get_nowait()
        except queue.Empty:
            return self._connect()

    def _give_back(self, conn: Any) -> None:
        if self._closed.is_set():
            conn.close()
            return
        try:
            self._pool.put_nowait(conn)
        except queue.Full:
            conn.close()

    def close(self) -> None:
        """Close every pooled connection."""
        self._closed.set()
        while True:
            try:
                self._pool.get_nowait().close()
            except queue.Empty:
                return

    # -- transactions --------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[Tx]:
        """One transaction: committed when the block ends, rolled back if it raises.

        On SQLite the write lock is taken at the start (BEGIN IMMEDIATE) so that two
        writers queue instead of failing when one upgrades a read lock.
        """
        conn = self._take()
        healthy = True
        try:
            if self.backend == "sqlite":
                with self._write_lock:
                    try:
                        conn.execute("BEGIN IMMEDIATE")
                    except sqlite3.OperationalError as exc:
                        raise DatabaseUnavailable("the database is busy") from exc
                    try:
                        yield _SqliteTx(conn)
                    except BaseException:
                        conn.execute("ROLLBACK")
                        raise
                    conn.execute("COMMIT")
            else:
                import psycopg

                try:
                    with conn.transaction():
                        yield _PostgresTx(conn)
                except psycopg.OperationalError as exc:
                    healthy = False
                    raise DatabaseUnavailable("the database is unavailable") from exc
        except DatabaseUnavailable:
            healthy = False
            raise
        finally:
            if healthy and not getattr(conn, "closed", False):
                self._give_back(conn)
            else:
                conn.close()

    # -- schema --------------------------------------------------------------------------

    def migrate(self) -> int:
        """Bring the schema up to date; returns the schema version now in force."""
        migrations = load_migrations()
        if self.backend == "sqlite":
            conn = self._connect()
            try:
                # A new file only (a no-op once the database exists). A push writes rows
                # of ~1 KB into several indexes; with 16 KiB pages it writes them to the WAL
                # and checkpoints them in fewer, larger writes: measured, about half the
                # system CPU per pushed record of 4 KiB pages. Must precede WAL mode.
                conn.execute(f"PRAGMA page_size = {SQLITE_PAGE_SIZE}")
                # WAL lets readers carry on while a push is being written.
                conn.execute("PRAGMA journal_mode = WAL")
            finally:
                conn.close()
        with self.transaction() as tx:
            tx.execute(
                "CREATE TABLE IF NOT EXISTS schema_migrations ("
                " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at TEXT NOT NULL)"
            )
        with self.transaction() as tx:
            row = tx.one("SELECT MAX(version) AS v FROM schema_migrations")
        current = int(row["v"]) if row and row["v"] is not None else 0
        if current > len(migrations):
            raise DatabaseTooNew(
                f"the database was upgraded by a newer controller (schema version {current}; "
                f"this one knows up to {len(migrations)}): upgrade this controller to use it"
            )
        for migration in migrations[current:]:
            with self.transaction() as tx:
                for statement in _statements(migration.sql):
                    tx.execute(statement)
                tx.execute(
                    "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                    (migration.version, migration.name, now_text()),
                )
        return len(migrations)

    def describe(self) -> str:
        """The URL without any password, safe to print."""
        parts = urlsplit(self.url)
        if parts.password:
            netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
            return parts._replace(netloc=netloc).geturl()
        return self.url
