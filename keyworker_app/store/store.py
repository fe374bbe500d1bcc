"""The open store: repositories per record type, search, outbox, audit and checks.

Every change goes through :meth:`SqlRecordRepository.save` or ``delete``, which write the
record, its outbox row and its audit entry in one transaction: a crash leaves all three or
none.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any, Generic, Iterable, Mapping, NamedTuple, TypeVar

from ..errors import RecordNotFound, VersionConflict
from ..records import (
    RECORD_TYPES, Participant, Record, utcnow,
)
from ..repositories import next_version, participant_of
from . import audit
from .audit import AuditEntry
from .codec import codec_for, plain
from .database import Connection, Database

R = TypeVar("R", bound=Record)


class OutboxItem(NamedTuple):
    """One outbox row (a named tuple: a sync reads thousands at a time)."""

    seq: int
    record_type: str
    record_id: str
    version: int
    participant_id: str
    op: str
    created_at: str


class SqlRecordRepository(Generic[R]):
    """Records of one type in their own table; see :class:`RecordRepository`."""

    def __init__(self, store: Store, record_type: type[R]) -> None:
        self._store = store
        self._db = store.db
        self._type = record_type
        self._codec = codec_for(record_type)  # type: ignore[arg-type]
        self.table = record_type.record_type
        cols = self._codec.columns
        self._select = f"SELECT {', '.join(cols)} FROM {self.table}"
        self._insert = (f"INSERT INTO {self.table} ({', '.join(cols)}) "
                        f"VALUES ({', '.join('?' for _ in cols)})")
        self._updates: dict[tuple[int, ...], str] = {}
        self._has_participant = "participant_id" in cols
        self._version_index = cols.index("version")

    def _update_sql(self, positions: tuple[int, ...]) -> str:
        """``UPDATE`` of the columns at ``positions`` (never the id), by id and old version."""
        sql = self._updates.get(positions)
        if sql is None:
            cols = self._codec.columns
            sql = (f"UPDATE {self.table} SET {', '.join(f'{cols[i]} = ?' for i in positions)} "
                   "WHERE id = ? AND version = ?")
            self._updates[positions] = sql
        return sql

    def _decode(self, row: tuple[Any, ...]) -> R:
        return self._codec.from_row(row)  # type: ignore[return-value]

    def find(self, record_id: str) -> R | None:
        rows = self._db.query(self._select + " WHERE id = ?", (record_id,))
        return self._decode(rows[0]) if rows else None

    def get(self, record_id: str) -> R:
        record = self.find(record_id)
        if record is None:
            raise RecordNotFound()
        return record

    def for_participant(self, participant_id: str) -> list[R]:
        column = "participant_id" if self._has_participant else "id"
        rows = self._db.query(self._select + f" WHERE {column} = ? ORDER BY rowid",
                              (participant_id,))
        return [self._decode(r) for r in rows]

    def all(self) -> list[R]:
        return [self._decode(r) for r in self._db.query(self._select + " ORDER BY rowid")]

    def count(self) -> int:
        return int(self._db.scalar(f"SELECT count(*) FROM {self.table}"))

    def save(self, record: R) -> R:
        with self._db.transaction() as conn:
            return self._save_in(conn.cursor(), record)

    def save_many(self, records: Iterable[R]) -> list[R]:
        with self._db.transaction() as conn:
            # One cursor for the batch: sqlcipher3 builds a new one for every
            # Connection.execute, which costs more than many of these statements.
            cursor = conn.cursor()
            return [self._save_in(cursor, r) for r in records]

    def _save_in(self, conn: Connection, record: R) -> R:
        """Save inside the caller's transaction; ``conn`` may be a cursor on it."""
        if not isinstance(record, self._type):
            raise TypeError(f"expected {self._type.__name__}")
        row = conn.execute(self._select + " WHERE id = ?", (record.id,)).fetchone()
        if row is None and conn.execute(
            "SELECT 1 FROM tombstone WHERE record_type = ? AND record_id = ?", (self.table, record.id)
        ).fetchone():
            raise RecordNotFound()
        # The stored row is already in column form: its version and the changed columns are
        # read from it directly, without decoding it into a record and encoding it back.
        old_version = None if row is None else int(row[self._version_index])
        stored = next_version(record, old_version)
        values = self._codec.to_row(stored)
        if row is None:
            conn.execute(self._insert, values)
            action, detail = "create", {}
        else:
            # Only the columns whose stored value changes are written: an index or trigger on
            # an unchanged column is left alone, so an edit dirties (and, encrypted, seals)
            # only the pages it has to. version and updated_at always change.
            positions = tuple(i for i, (a, b) in enumerate(zip(row, values)) if i and a != b)
            cursor = conn.execute(self._update_sql(positions),
                                  tuple(values[i] for i in positions) + (stored.id, old_version))
            if cursor.rowcount != 1:
                raise VersionConflict()
            changed = [self._codec.columns[i] for i in positions
                       if self._codec.columns[i] not in ("version", "updated_at")]
            action, detail = "edit", {"fields": changed}
        pid = participant_of(stored)
        self._store._enqueue(conn, self.table, stored.id, stored.version, pid, "upsert")
        audit.append(conn, self._store.actor, action, self.table, stored.id, pid, detail, db=self._db)
        return stored

    def delete(self, record_id: str, reason: str) -> None:
        with self._db.transaction() as conn:
            row = conn.execute(self._select + " WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise RecordNotFound()
            record = self._decode(row)
            pid = participant_of(record)
            conn.execute(f"DELETE FROM {self.table} WHERE id = ?", (record_id,))
            conn.execute(
                "INSERT INTO tombstone (record_type, record_id, version, participant_id, deleted_at, reason)"
                " VALUES (?,?,?,?,?,?)",
                (self.table, record_id, record.version + 1, pid, utcnow().isoformat(), reason),
            )
            self._store._enqueue(conn, self.table, record_id, record.version + 1, pid, "delete")
            audit.append(conn, self._store.actor, "delete", self.table, record_id, pid,
                         {"reason_given": bool(reason)}, db=self._db)


class ParticipantRepository(SqlRecordRepository[Participant]):
    """Participants, with full-text search over names, NI number, postcode and id."""

    def search(self, text: str, limit: int = 200) -> list[Participant]:
        query = fts_query(text)
        # The limit is written into the statement as a number, not bound: SQLCipher's newer
        # SQLite plans "ORDER BY rank LIMIT ?" over the search index about 50% slower than
        # the same query with a literal limit. int() keeps anything but a number out.
        limit = int(limit)
        if not query:
            rows = self._db.query(self._select + " ORDER BY family_name COLLATE NOCASE,"
                                  f" given_name COLLATE NOCASE LIMIT {limit}")
        else:
            cols = ", ".join(f"p.{c}" for c in self._codec.columns)
            rows = self._db.query(
                f"SELECT {cols} FROM participant_search s JOIN participant p ON p.rowid = s.rowid"
                f" WHERE participant_search MATCH ? ORDER BY s.rank LIMIT {limit}",
                (query,),
            )
        return [self._decode(r) for r in rows]


def fts_query(text: str) -> str:
    """An FTS5 query matching every word typed as a prefix.

    Typed identifiers are often spaced ("AB 12 34 56 C"); the words run together are
    tried as one token too, so both spellings find the same person.
    """
    words = re.findall(r"\w+", text)
    if not words:
        return ""
    terms = " ".join(f'"{w}"*' for w in words)
    if len(words) > 1 and any(ch.isdigit() for ch in text):
        return f'({terms}) OR "{"".join(words)}"*'
    return terms


@dataclass(frozen=True)
class Draft:
    """Unsaved answers to a form, offered back after an unlock or a crash."""

    key: str
    form_id: str
    participant_id: str
    answers: Mapping[str, Any]
    saved_at: str


@dataclass(frozen=True)
class ParticipantFile:
    """Everything held about one participant, by record type."""

    participant: Participant
    records: Mapping[str, list[Record]] = field(default_factory=dict)


class Store:
    """An unlocked profile's records. ``actor`` is the keyworker id written to the audit log."""

    def __init__(self, db: Database, actor: str) -> None:
        self.db = db
        self.actor = actor
        self._repos: dict[type[Record], SqlRecordRepository[Any]] = {}
        self.participants = ParticipantRepository(self, Participant)
        self._repos[Participant] = self.participants

    def repo(self, record_type: type[R]) -> SqlRecordRepository[R]:
        if record_type not in self._repos:
            self._repos[record_type] = SqlRecordRepository(self, record_type)
        return self._repos[record_type]

    def save(self, record: R) -> R:
        return self.repo(type(record)).save(record)

    def participant_file(self, participant_id: str, *, audit_view: bool = True) -> ParticipantFile:
        """A participant with all their records; opening it is audited as a view."""
        participant = self.participants.get(participant_id)
        records = {t.record_type: self.repo(t).for_participant(participant_id)
                   for t in RECORD_TYPES if t is not Participant}
        if audit_view:
            self.audit("view", "participant", participant_id, participant_id)
        return ParticipantFile(participant, records)

    # --- audit ----------------------------------------------------------------------

    def audit(self, action: str, record_type: str = "", record_id: str = "",
              participant_id: str = "", detail: Mapping[str, Any] | None = None,
              at: str | None = None) -> int:
        with self.db.transaction() as conn:
            return audit.append(conn, self.actor, action, record_type, record_id, participant_id, detail, at,
                                db=self.db)

    def verify_audit(self) -> list[str]:
        return audit.verify(self.db)

    def audit_entries(self, participant_id: str | None = None, limit: int = 1000) -> list[AuditEntry]:
        return audit.entries(self.db, participant_id, limit)

    # --- outbox ---------------------------------------------------------------------

    def _enqueue(self, conn: Connection, record_type: str, record_id: str, version: int,
                 participant_id: str, op: str) -> None:
        conn.execute(
            "INSERT INTO outbox (record_type, record_id, version, participant_id, op, created_at)"
            " VALUES (?,?,?,?,?,?)",
            (record_type, record_id, version, participant_id, op, utcnow().isoformat()),
        )

    def outbox_pending(self, limit: int = 1000, after_seq: int = 0) -> list[OutboxItem]:
        rows = self.db.query(
            "SELECT seq, record_type, record_id, version, participant_id, op, created_at FROM outbox"
            " WHERE state = 'pending' AND seq > ? ORDER BY seq LIMIT ?", (after_seq, limit))
        return list(map(OutboxItem._make, rows))   # (no Python-level __new__ per row)

    def outbox_count(self, state: str = "pending") -> int:
        if state == "pending":
            # Kept per participant by triggers (migration 0005): a sum over the caseload,
            # not a count over millions of outbox rows.
            return int(self.db.scalar("SELECT coalesce(sum(pending), 0) FROM participant_pending"))
        return int(self.db.scalar("SELECT count(*) FROM outbox WHERE state = ?", (state,)))

    # --- drafts -------------------------------------------------------------------

    def save_draft(self, key: str, form_id: str, participant_id: str, answers: Mapping[str, Any]) -> None:
        """Keep unsaved form answers (encrypted, like everything else in the store)."""
        with self.db.transaction() as conn:
            conn.execute(
                "INSERT INTO draft (key, form_id, participant_id, answers, saved_at) VALUES (?,?,?,?,?)"
                " ON CONFLICT(key) DO UPDATE SET answers = excluded.answers, saved_at = excluded.saved_at",
                (key, form_id, participant_id, json.dumps(plain(dict(answers)), ensure_ascii=False),
                 utcnow().isoformat()))

    def drafts(self, key: str | None = None) -> list[Draft]:
        """Every draft, oldest first, or the one saved under ``key``."""
        sql = "SELECT key, form_id, participant_id, answers, saved_at FROM draft"
        rows = (self.db.query(sql + " WHERE key = ?", (key,)) if key is not None
                else self.db.query(sql + " ORDER BY saved_at"))
        return [Draft(r[0], r[1], r[2], json.loads(r[3]), r[4]) for r in rows]

    def load_draft(self, key: str) -> Draft | None:
        found = self.drafts(key)
        return found[0] if found else None

    def discard_draft(self, key: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("DELETE FROM draft WHERE key = ?", (key,))

    # --- meta -----------------------------------------------------------------------

    def get_meta(self, key: str, default: str = "") -> str:
        value = self.db.scalar("SELECT value FROM meta WHERE key = ?", (key,))
        return default if value is None else str(value)

    def set_meta(self, key: str, value: str) -> None:
        with self.db.transaction() as conn:
            conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
                         " SET value = excluded.value", (key, value))

    def check(self) -> list[str]:
        """Integrity, cipher integrity and audit-chain problems (empty when all is well)."""
        return self.db.integrity_problems() + self.verify_audit()

    def close(self) -> None:
        self.db.close()
