"""A tamper-evident audit log: views, edits, exports, shares and consent changes.

Each entry's hash is SHA-256 over the previous entry's hash and the entry's own canonical
JSON. Editing an entry breaks its hash; reordering or deleting one breaks the links or the
numbering. Both ends of the chain are anchored: the last entry carries a mark
(``chain_end``) that each transaction moves to its own last entry, so cutting entries off the
end leaves a last entry with no mark; and the hash of entry 1 is kept in ``meta`` (written
once), so emptying the log or putting another chain in its place is caught too. Details hold
field names and ids only, never the values a person typed.

The mark lives on the entry rather than in a row of its own because the entry's page is
written anyway: an edit seals (encrypts and authenticates) one page fewer.

A participant's entries are found by links rather than an index (migration 0012): each entry
about a participant names the one before it about them (``participant_prev``), and their row
in ``participant_activity`` names the newest (``last_audit``, moved by a trigger). That row
also holds their pending outbox count, so an edit writes one per-participant page, not two.
Verification checks every link and every ``last_audit``, so a history cut short is caught.
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
#: ``meta`` key holding the hash of entry 1 (migration 0010 set it for older stores).
START_KEY = "audit_start"
#: ``Database.transaction_state`` keys: the chain's (seq, hash) as the current transaction
#: has left it so far, and the seq of the first entry that transaction appended.
HEAD_KEY = "audit_head"
FIRST_KEY = "audit_first"


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


def _committed_head(conn: Connection) -> tuple[int, str, bool]:
    """The last entry's (seq, hash) and whether it carries the end mark; (0, GENESIS) and
    whether a chain was ever begun, for an empty log."""
    row = conn.execute("SELECT seq, hash, chain_end FROM audit_log ORDER BY seq DESC LIMIT 1").fetchone()
    if row is None:
        begun = conn.execute("SELECT 1 FROM meta WHERE key = ?", (START_KEY,)).fetchone() is not None
        return 0, GENESIS, not begun
    return int(row[0]), str(row[1]), bool(row[2])


def append(conn: Connection, actor: str, action: str, record_type: str = "", record_id: str = "",
           participant_id: str = "", detail: Mapping[str, Any] | None = None, at: str | None = None,
           *, db: Database) -> int:
    """Add an entry inside the caller's :meth:`Database.transaction`; returns its sequence
    number.

    Every entry is written with the end mark. The transaction's first entry takes the mark
    off the entry before it; if it wrote more than one, all but its last lose theirs just
    before the commit (one statement, in the same transaction, so a crash or a rollback
    keeps entries and mark together). The chain's end is read once per transaction and kept
    in memory while it runs, which is why ``db`` is required.
    """
    head: tuple[int, str] | None = db.transaction_state.get(HEAD_KEY)
    if head is None:
        seq, prev, marked = _committed_head(conn)
        if seq and marked:
            conn.execute("UPDATE audit_log SET chain_end = 0 WHERE seq = ?", (seq,))
        elif not marked:
            # Entries were cut off the end (or the log emptied): leave a gap in the
            # numbering so that the cut stays visible after this entry is added.
            seq += 1
        db.transaction_state[FIRST_KEY] = seq + 1
    else:
        seq, prev = head
        if seq == db.transaction_state[FIRST_KEY]:
            # This transaction's second entry: all but its last lose their marks at commit.
            db.before_commit(HEAD_KEY, functools.partial(_unmark_all_but_last, db))
    seq += 1
    at = at or utcnow().isoformat()
    detail_json = json.dumps(dict(detail or {}), ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    digest = entry_hash(prev, seq, at, actor, action, record_type, record_id, participant_id, detail_json)
    # participant_prev: the newest entry about the same participant so far (none for an
    # entry about no participant, as participant_activity has no row for '').
    conn.execute(
        "INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
        " detail, prev_hash, hash, chain_end, participant_prev) VALUES (?,?,?,?,?,?,?,?,?,?,1,"
        " (SELECT last_audit FROM participant_activity WHERE participant_id = ?))",
        (seq, at, actor, action, record_type, record_id, participant_id, detail_json, prev, digest,
         participant_id),
    )
    if seq == 1:
        # Never fails a save: an anchor already there (which cannot match) stays, and verify
        # reports it.
        conn.execute("INSERT INTO meta (key, value) VALUES (?, ?) ON CONFLICT(key) DO NOTHING",
                     (START_KEY, digest))
    db.transaction_state[HEAD_KEY] = (seq, digest)
    return seq


def _unmark_all_but_last(db: Database, conn: Connection) -> None:
    head: tuple[int, str] | None = db.transaction_state.get(HEAD_KEY)
    first: int | None = db.transaction_state.get(FIRST_KEY)
    if head is not None and first is not None:
        conn.execute("UPDATE audit_log SET chain_end = 0 WHERE seq >= ? AND seq < ?", (first, head[0]))


def verify(db: Database) -> list[str]:
    """Every break in the chain, naming the entry; an empty list means the log is intact."""
    problems: list[str] = []
    expected_seq, prev = 1, GENESIS
    with db.lock:
        rows = db.conn.execute(
            "SELECT seq, at, actor, action, record_type, record_id, participant_id, detail,"
            " prev_hash, hash, chain_end, participant_prev FROM audit_log ORDER BY seq"
        ).fetchall()
        start = db.conn.execute("SELECT value FROM meta WHERE key = ?", (START_KEY,)).fetchone()
        last_audit = dict(db.conn.execute(
            "SELECT participant_id, last_audit FROM participant_activity WHERE last_audit IS NOT NULL"
        ).fetchall())
        # Entries this thread's own open transaction wrote keep their marks until it commits.
        first_own = db.transaction_state.get(FIRST_KEY) or (rows[-1][0] + 1 if rows else 1)
    newest: dict[str, int] = {}  # participant id -> their newest entry so far
    for row in rows:
        seq, at, actor, action, rtype, rid, pid, detail, prev_hash, digest, chain_end, pid_prev = row
        if seq != expected_seq:
            problems.append(f"audit entry {expected_seq} is missing (next entry is {seq})")
        if prev_hash != prev:
            problems.append(f"audit entry {seq} does not follow the entry before it (reordered or removed)")
        if entry_hash(prev_hash, seq, at, actor, action, rtype, rid, pid, detail) != digest:
            problems.append(f"audit entry {seq} was changed after it was written")
        if seq == 1 and (start is None or start[0] != digest):
            problems.append("audit entry 1 is not the one the log began with (the log was replaced)")
        if chain_end and seq != rows[-1][0] and seq < first_own:
            problems.append(f"audit entry {seq} was the last written but entries follow it "
                            "(entries were added around the app)")
        if pid:
            if pid_prev != newest.get(pid):
                problems.append(f"audit entry {seq} is not linked to the entry before it about the "
                                "same participant (their history was altered)")
            newest[pid] = seq
        expected_seq, prev = seq + 1, digest
    for pid in newest.keys() | last_audit.keys():
        if newest.get(pid) != last_audit.get(pid):
            problems.append(f"participant {pid}'s history does not end at their newest audit entry "
                            f"({newest.get(pid)}; the history was altered)")
    if rows and not rows[-1][10]:
        problems.append(f"the audit log ends at entry {rows[-1][0]} but later entries were written "
                        "(entries were removed from the end or the log was replaced)")
    if not rows and start is not None:
        problems.append("the audit log is empty but entries were written "
                        "(entries were removed from the end or the log was replaced)")
    return problems


_COLUMNS = "seq, at, actor, action, record_type, record_id, participant_id, detail, prev_hash, hash"

#: A participant's entries, newest first: their newest, then each entry's link to the one
#: before it. A link must point back (so a damaged one cannot loop) to an entry about the
#: same participant.
_HISTORY = f"""
WITH RECURSIVE history(seq) AS (
    SELECT last_audit FROM participant_activity WHERE participant_id = :pid
    UNION ALL
    SELECT a.participant_prev FROM audit_log AS a JOIN history AS h ON a.seq = h.seq
    WHERE a.participant_prev < a.seq AND a.participant_id = :pid
    LIMIT :limit
)
SELECT {', '.join('a.' + c for c in _COLUMNS.split(', '))}
FROM history AS h JOIN audit_log AS a ON a.seq = h.seq
WHERE a.participant_id = :pid ORDER BY a.seq DESC"""


def entries(db: Database, participant_id: str | None = None, limit: int = 1000) -> list[AuditEntry]:
    """Newest first; for one participant when ``participant_id`` is given."""
    if participant_id:
        rows = db.query(_HISTORY, {"pid": participant_id, "limit": limit})
    elif participant_id is None:
        rows = db.query(f"SELECT {_COLUMNS} FROM audit_log ORDER BY seq DESC LIMIT ?", (limit,))
    else:  # entries about no participant: not linked, and rarely asked for
        rows = db.query(f"SELECT {_COLUMNS} FROM audit_log WHERE participant_id = '' ORDER BY seq DESC"
                        " LIMIT ?", (limit,))
    return [AuditEntry(r[0], r[1], r[2], r[3], r[4], r[5], r[6], json.loads(r[7]), r[8], r[9]) for r in rows]
