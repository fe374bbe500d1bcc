"""A tamper-evident audit log: views, edits, exports, shares and consent changes.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own canonical
JSON, and the newest (seq, hash) is kept in ``meta``. Editing an entry breaks its hash,
reordering or deleting one breaks the links or the numbering, and cutting entries off the
end no longer matches the recorded head. Details hold field names and ids only, never the
values a person typed.
"""

from __future__ import annotations

import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any, Mapping

from ..records import utcnow
from .database import Connection, Database

GENESIS = "0" * 64
HEAD_KEY = "audit_head"


@dataclass(frozen=True)
class AuditEntry:
    seq: int
    at: str
    actor: str
    action: str
    record_type: str
    record_id: str
    participant_id: str
    detail: Mapping[str, Any]
    prev_hash: str
    hash: str


def entry_hash(prev_hash: str, seq: int, at: str, actor: str, action: str, record_type: str,
               record_id: str, participant_id: str, detail_json: str) -> str:
    body = json.dumps([seq, at, actor, action, record_type, record_id, participant_id, detail_json],
                      ensure_ascii=False, separators=(",", ":"))
    return hashlib.sha256((prev_hash + body).encode("utf-8")).hexdigest()


def _head(conn: Connection) -> tuple[int, str]:
    row = conn.execute("SELECT value FROM meta WHERE key = ?", (HEAD_KEY,)).fetchone()
    if row is None:
        return 0, GENESIS
    seq, _, digest = str(row[0]).partition(":")
    return int(seq), digest


def _current_head(db: Database, conn: Connection) -> tuple[int, str]:
    """The head as the current transaction sees it: its own appends first, then ``meta``
    (outside a transaction ``transaction_state`` is empty)."""
    head: tuple[int, str] | None = db.transaction_state.get(HEAD_KEY)
    return head if head is not None else _head(conn)


def append(conn: Connection, actor: str, action: str, record_type: str = "", record_id: str = "",
           participant_id: str = "", detail: Mapping[str, Any] | None = None, at: str | None = None,
           *, db: Database) -> int:
    """Add an entry inside the caller's :meth:`Database.transaction`; returns its sequence
    number.

    The chain's head is read from ``meta`` once per transaction, kept in memory while it
    runs and written back to ``meta`` once, just before the commit (the same transaction,
    so a crash or a rollback keeps entries and head together). ``db`` is required so that
    no caller can read a stale head from ``meta`` in the middle of such a transaction.
    """
    seq, prev = _current_head(db, conn)
    seq += 1
    at = at or utcnow().isoformat()
    detail_json = json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = entry_hash(prev, seq, at, actor, action, record_type, record_id, participant_id, detail_json)
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
        " detail, prev_hash, hash) VALUES (?,?,?,?,?,?,?,?,?,?)",
        (seq, at, actor, action, record_type, record_id, participant_id, detail_json, prev, digest),
    )
    # Registering again replaces the earlier write: the head goes to meta once, at commit.
    db.before_commit(HEAD_KEY, functools.partial(_flush_head, db))
    db.transaction_state[HEAD_KEY] = (seq, digest)
    return seq


def _flush_head(db: Database, conn: Connection) -> None:
    head: tuple[int, str] | None = db.transaction_state.get(HEAD_KEY)
    if head is not None:
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE"
                     " SET value = excluded.value", (HEAD_KEY, f"{head[0]}:{head[1]}"))


def verify(db: Database) -> list[str]:
    """Every break in the chain, naming the entry; an empty list means the log is intact."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    with db.lock:
        rows = db.conn.execute(
            "SELECT seq, at, actor, action, record_type, record_id, participant_id, detail,"
            " prev_hash, hash FROM audit_log ORDER BY seq"
        ).fetchall()
        # Inside this thread's own transaction the head may not be written back yet.
        head_seq, head_hash = _current_head(db, db.conn)
    for row in rows:
        seq, at, actor, action, rtype, rid, pid, detail, prev_hash, digest = row
        if seq != expected_seq:
            problems.append(f"audit entry {expected_seq} is missing (next entry is {seq})")
        if prev_hash != prev:
            problems.append(f"audit entry {seq} does not follow the entry before it (reordered or removed)")
        if entry_hash(prev_hash, seq, at, actor, action, rtype, rid, pid, detail) != digest:
            problems.append(f"audit entry {seq} was changed after it was written")
        expected_seq, prev = seq + 1, digest
    last_seq = expected_seq - 1
    if (last_seq, prev) != (head_seq, head_hash):
        problems.append(f"the audit log ends at entry {last_seq} but entry {head_seq} was the last written "
                        "(entries were removed from the end or the log was replaced)")
    return problems


def entries(db: Database, participant_id: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    """Newest first; for one participant when ``participant_id`` is given."""
    sql = ("SELECT seq, at, actor, action, record_type, record_id, participant_id, detail, prev_hash, hash"
           " FROM audit_log")
    params: tuple[Any, ...] = ()
    if participant_id is not None:
        sql += " WHERE participant_id = ?"
        params = (participant_id,)
    sql += " ORDER BY seq DESC LIMIT ?"
    rows = db.query(sql, params + (limit,))
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9]) for r in rows]
