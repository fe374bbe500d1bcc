"""The SQLCipher connection: opening with a raw key, settings, migrations, checks.

One long-lived connection per profile. Every setting that decides how the file is
encrypted is fixed when the profile is created, recorded with the profile, and checked at
each open, so a library upgrade with other defaults can never silently misread the file.
"""

from __future__ import annotations

import contextlib
import hashlib
import re
import sqlite3
import threading
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any, Callable, Iterator, Protocol

from ..errors import DamagedProfile, NewerDatabase, StoreClosed
from ..timing import fastest_run


try:  # both drivers' errors derive from their own DatabaseError; catch either
    from sqlcipher3 import DatabaseError as _CipherDatabaseError
except ImportError:  # pragma: no cover - sqlcipher3 is a hard dependency
    _CipherDatabaseError = sqlite3.DatabaseError
DatabaseError: tuple[type[Exception], ...] = (_CipherDatabaseError, sqlite3.DatabaseError)


class Connection(Protocol):
    """The DB-API subset both ``sqlite3`` and ``sqlcipher3`` connections provide."""

    def execute(self, sql: str, parameters: Any = ..., /) -> Any: ...
    def executemany(self, sql: str, parameters: Any, /) -> Any: ...
    def executescript(self, sql: str, /) -> Any: ...
    def cursor(self) -> Any: ...
    def close(self) -> None: ...


@dataclass(frozen=True)
class CipherSettings:
    """SQLCipher 4 settings, recorded at creation and checked at every open."""

    compatibility: int = 4
    page_size: int = 4096
    hmac_algorithm: str = "HMAC_SHA512"
    kdf_algorithm: str = "PBKDF2_HMAC_SHA512"
    plaintext_header_size: int = 0

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)

    @classmethod
    def for_this_machine(cls) -> CipherSettings:
        """The settings for a new profile: SQLCipher 4's, with the page HMAC this CPU seals
        fastest (:func:`choose_hmac_algorithm`). Recorded with the profile, so a profile
        moved to another machine keeps its own."""
        return cls(hmac_algorithm=choose_hmac_algorithm())


def choose_hmac_algorithm(rounds: int = 300,
                          clock: Callable[[], float] = time.perf_counter) -> str:
    """``HMAC_SHA256`` where this CPU hashes a page with SHA-256 faster than with SHA-512,
    else SQLCipher 4's default ``HMAC_SHA512``.

    SQLCipher authenticates every page it writes or reads from disk with an HMAC, and each
    one costs about 20 µs with SHA-512: about a fifth of an edit's time. Processors with
    SHA extensions (most laptops sold since about 2020) compute SHA-256 roughly twice as fast
    as SHA-512; older ones are the other way round. Both give a 256-bit or longer tag, well
    beyond what page authentication needs. Each is timed three times over ``rounds``
    4 KiB pages (a few milliseconds) and the fastest run kept, as a busy moment only ever
    makes a run look slower.
    """
    page = bytes(4096)

    def hash_pages(name: str) -> Callable[[], None]:
        def work() -> None:
            for _ in range(rounds):
                hashlib.new(name, page).digest()
        return work

    sha512 = fastest_run(hash_pages("sha512"), 3, clock)
    sha256 = fastest_run(hash_pages("sha256"), 3, clock)
    return "HMAC_SHA256" if sha256 < sha512 else "HMAC_SHA512"


@dataclass(frozen=True)
class Migration:
    number: int
    name: str
    sql: str


def load_migrations() -> tuple[Migration, ...]:
    """The numbered SQL files in ``store/migrations``, in order, with no gaps."""
    found: list[Migration] = []
    for entry in resources.files("keyworker_app.store.migrations").iterdir():
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", entry.name)
        if match:
            found.append(Migration(int(match[1]), match[2], entry.read_text(encoding="utf-8")))
    found.sort(key=lambda m: m.number)
    for expected, migration in enumerate(found, start=1):
        if migration.number != expected:
            raise RuntimeError(f"migration {expected:04d} is missing")  # a packaging bug
    return tuple(found)


MIGRATIONS = load_migrations()
SCHEMA_VERSION = MIGRATIONS[-1].number

# 64 MB page cache: with SQLCipher every cache miss is a decrypt and an HMAC check, so a
# caseload-sized cache is what brings reads near plain SQLite.
CACHE_KIB = 64 * 1024

# Prepared statements kept per connection. The store uses about 60 distinct statements
# (three per record table, plus outbox, audit, search, sync). sqlcipher3's default cache
# is far smaller than the standard library's 128, and past it every wide INSERT or SELECT
# is compiled again (15-25 µs each); both drivers get the same, ample cache.
STATEMENT_CACHE = 512


def _is_not_a_database(exc: Exception) -> bool:
    return "file is not a database" in str(exc) or "database disk image is malformed" in str(exc)


class Database:
    """One open store. Thread-safe: every use of the connection holds ``self.lock``.

    ``connect_encrypted`` opens a SQLCipher file with a raw key; ``connect_plain`` opens
    the same schema in plain SQLite (benchmarks use it as the baseline, nothing else).
    """

    def __init__(self, conn: Connection, path: Path, encrypted: bool) -> None:
        self._conn: Connection | None = conn
        self.path = path
        self.encrypted = encrypted
        self.lock = threading.RLock()
        self._depth = 0
        #: Values kept for the current transaction only (e.g. the audit chain's head), and
        #: writes to run once just before it commits; both are dropped on commit or rollback.
        self.transaction_state: dict[str, Any] = {}
        self._before_commit: dict[str, Callable[[Connection], None]] = {}

    # --- opening --------------------------------------------------------------------

    @classmethod
    def connect_encrypted(
        cls, path: Path, key: bytes, settings: CipherSettings, *, create: bool
    ) -> Database:
        import sqlcipher3

        if create and path.exists():
            raise FileExistsError(path)
        if not create and not path.exists():
            raise DamagedProfile("the database file is missing")
        conn = sqlcipher3.connect(str(path), isolation_level=None, check_same_thread=False,
                                  cached_statements=STATEMENT_CACHE)
        try:
            # SQLCipher's own log goes to stderr: keep a person's terminal for our messages.
            conn.execute("PRAGMA cipher_log_level = NONE")
            conn.execute(f"PRAGMA key = \"x'{key.hex()}'\"")
            conn.execute(f"PRAGMA cipher_compatibility = {settings.compatibility}")
            conn.execute(f"PRAGMA cipher_page_size = {settings.page_size}")
            conn.execute(f"PRAGMA cipher_hmac_algorithm = {settings.hmac_algorithm}")
            conn.execute(f"PRAGMA cipher_kdf_algorithm = {settings.kdf_algorithm}")
            conn.execute(f"PRAGMA cipher_plaintext_header_size = {settings.plaintext_header_size}")
            try:
                conn.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlcipher3.DatabaseError as exc:
                # The key came out of an authenticated wrap, so it is the right key:
                # a file that will not decrypt with it is damaged or was replaced.
                if _is_not_a_database(exc):
                    raise DamagedProfile("the database does not decrypt with this profile's key") from None
                raise
            cls._check_settings(conn, settings)
        except BaseException:
            conn.close()
            raise
        db = cls(conn, path, encrypted=True)
        db._configure()
        return db

    @classmethod
    def connect_plain(cls, path: Path) -> Database:
        conn = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False,
                               cached_statements=STATEMENT_CACHE)
        db = cls(conn, path, encrypted=False)
        db._configure()
        return db

    @staticmethod
    def _check_settings(conn: Any, settings: CipherSettings) -> None:
        seen = {
            "page_size": int(conn.execute("PRAGMA cipher_page_size").fetchone()[0]),
            "hmac_algorithm": str(conn.execute("PRAGMA cipher_hmac_algorithm").fetchone()[0]),
            "kdf_algorithm": str(conn.execute("PRAGMA cipher_kdf_algorithm").fetchone()[0]),
        }
        for name, value in seen.items():
            if value != getattr(settings, name):
                raise DamagedProfile(f"cipher setting {name} is {value}, the profile records "
                                     f"{getattr(settings, name)}")

    def _configure(self) -> None:
        conn = self.conn
        conn.execute("PRAGMA journal_mode = WAL")
        # FULL: a power cut after "saved" must never lose the save (DESIGN: never lose it).
        conn.execute("PRAGMA synchronous = FULL")
        conn.execute(f"PRAGMA cache_size = -{CACHE_KIB}")
        conn.execute("PRAGMA temp_store = MEMORY")
        conn.execute("PRAGMA secure_delete = ON")
        conn.execute("PRAGMA foreign_keys = ON")
        conn.execute("PRAGMA busy_timeout = 5000")

    @property
    def conn(self) -> Connection:
        if self._conn is None:
            raise StoreClosed()
        return self._conn

    @property
    def is_open(self) -> bool:
        return self._conn is not None

    def close(self) -> None:
        with self.lock:
            if self._conn is not None:
                # Fold the WAL back into the encrypted main file so nothing lingers beside it.
                with contextlib.suppress(Exception):
                    self._conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
                self._conn.close()
                self._conn = None

    # --- transactions ---------------------------------------------------------------

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Connection]:
        """``BEGIN IMMEDIATE`` … ``COMMIT``; nested uses join the outer transaction."""
        with self.lock:
            conn = self.conn
            if self._depth:
                self._depth += 1
                try:
                    yield conn
                finally:
                    self._depth -= 1
                return
            conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield conn
                # Inside the transaction: a write that fails here rolls everything back.
                for write in list(self._before_commit.values()):
                    write(conn)
            except BaseException:
                self._depth = 0
                self._end_transaction_state()
                conn.execute("ROLLBACK")
                raise
            self._depth = 0
            self._end_transaction_state()
            conn.execute("COMMIT")

    def before_commit(self, key: str, write: Callable[[Connection], None]) -> None:
        """Run ``write`` once, inside the current transaction, just before it commits.

        Registering the same ``key`` again replaces the earlier write. Dropped on rollback.
        """
        if not self._depth:
            raise RuntimeError("before_commit outside a transaction")
        self._before_commit[key] = write

    def _end_transaction_state(self) -> None:
        self.transaction_state.clear()
        self._before_commit.clear()

    def query(self, sql: str, params: Any = ()) -> list[Any]:
        with self.lock:
            return list(self.conn.execute(sql, params).fetchall())

    def scalar(self, sql: str, params: Any = ()) -> Any:
        with self.lock:
            row = self.conn.execute(sql, params).fetchone()
        return None if row is None else row[0]

    # --- schema ---------------------------------------------------------------------

    @property
    def user_version(self) -> int:
        return int(self.scalar("PRAGMA user_version"))

    def migrate(self, migrations: tuple[Migration, ...] = MIGRATIONS) -> list[int]:
        """Apply every migration newer than the file, each in one transaction.

        A file from a newer app is refused before anything is touched.
        """
        supported = migrations[-1].number if migrations else 0
        current = self.user_version
        if current > supported:
            raise NewerDatabase(found=current, supported=supported)
        applied: list[int] = []
        for migration in migrations:
            if migration.number <= current:
                continue
            with self.lock:
                conn = self.conn
                conn.execute("BEGIN IMMEDIATE")
                try:
                    # Read again under the write lock: another process opening the same
                    # profile at the same moment (the app started twice) may have applied
                    # it since the version was read above.
                    if int(conn.execute("PRAGMA user_version").fetchone()[0]) >= migration.number:
                        conn.execute("ROLLBACK")
                        continue
                    for statement in split_sql(migration.sql):
                        conn.execute(statement)
                    conn.execute(f"PRAGMA user_version = {migration.number}")
                except BaseException:
                    conn.execute("ROLLBACK")
                    raise
                conn.execute("COMMIT")
            applied.append(migration.number)
        return applied

    # --- checks ---------------------------------------------------------------------

    def integrity_problems(self) -> list[str]:
        """Every problem SQLCipher and SQLite find, in plain words (empty when healthy)."""
        problems: list[str] = []
        with self.lock:
            if self.encrypted:
                # cipher_integrity_check returns one row per damaged page: read them all.
                for (row,) in self.conn.execute("PRAGMA cipher_integrity_check").fetchall():
                    problems.append(f"encrypted page check: {row}")
            try:
                for (row,) in self.conn.execute("PRAGMA integrity_check").fetchall():
                    if row != "ok":
                        problems.append(f"database structure: {row}")
                for row in self.conn.execute("PRAGMA foreign_key_check").fetchall():
                    problems.append(f"record in {row[0]} points at a missing {row[2]}")
            except DatabaseError as exc:
                # A damaged page stops SQLite's own walk; the page check above names it.
                problems.append(f"database structure could not be read ({exc})")
        return problems


def split_sql(script: str) -> list[str]:
    """Statements of a migration file, honouring BEGIN … END trigger bodies and comments."""
    statements: list[str] = []
    buffer: list[str] = []
    for line in script.splitlines():
        stripped = line.strip()
        if not buffer and (not stripped or stripped.startswith("--")):
            continue
        buffer.append(line)
        candidate = "\n".join(buffer)
        if stripped.endswith(";") and sqlite3.complete_statement(candidate):
            statements.append(candidate)
            buffer = []
    if "".join(buffer).strip():
        statements.append("\n".join(buffer))
    return statements
