"""The sync's own tables (migration 0004): delivery state, sent log, quarantine, run state.

Two writes matter for "exactly once, nothing lost":

* :meth:`Ledger.prepare` records every item planned for a set of outbox rows as
  ``pending`` (or ``held_back``) *before* any of them is sent, so the ledger always knows
  the full set of items a row must get answers for.
* :meth:`Ledger.apply_answers` applies one batch's answers in one transaction, and marks an
  outbox row done (or quarantined, when something in it was rejected) only once every
  item of that row has a final answer.

A crash between sending and applying leaves items pending; the next run sends them again
and the controller answers ``duplicate``, which counts as delivered.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

from keyworker_app.records import RECORD_TYPE_BY_NAME
from keyworker_app.store.database import Connection
from keyworker_app.store.store import Store

from .projection import PlannedItem, SourcePlan
from .wire import ItemAnswer, ItemStatus



def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@dataclass(frozen=True)
class SentEntry:
    """One line of a participant's sharing history."""

    recipient: str
    record_type: str
    record_id: str
    version: int
    op: str
    fields: tuple[str, ...]
    article_6: str
    article_9: str | None
    sent_at: str
    controller_status: str
    one_off: bool


@dataclass(frozen=True)
class QuarantinedItem:
    """An item the controller refused, with its reason (names fields and ids only)."""

    idempotency_key: str
    record_type: str
    record_id: str
    version: int
    participant_id: str
    recipient: str
    code: str
    reason: str
    quarantined_at: str


@dataclass(frozen=True)
class LastRun:
    at: str | None
    outcome: str
    summary: Mapping[str, Any]


class Ledger:
    """Reads and writes the sync tables of one store."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.db = store.db

    # -- before sending ---------------------------------------------------------------

    def prepare(self, plans: Sequence[SourcePlan]) -> list[PlannedItem]:
        """Record the plans; returns the items still to send (not already answered)."""
        to_send: list[PlannedItem] = []
        now = _now()
        with self.db.transaction() as conn:
            for plan in plans:
                for held in plan.held:
                    conn.execute(
                        "INSERT INTO sync_item (idempotency_key, outbox_seq, one_off_seq, record_type,"
                        " record_id, version, participant_id, recipient, op, status, reason, updated_at)"
                        " VALUES (?,?,?,?,?,?,?,?,'upsert','held_back',?,?)"
                        " ON CONFLICT(idempotency_key) DO UPDATE SET status = 'held_back',"
                        " reason = excluded.reason, message = '', updated_at = excluded.updated_at"
                        " WHERE sync_item.status IN ('pending', 'held_back')",
                        (held.key, plan.outbox_seq, plan.one_off_seq, held.record_type, held.record_id,
                         held.version, held.participant_id, held.recipient, held.reason.value, now),
                    )
                for item in plan.items:
                    # An item answered in an earlier run (that stopped before its row was
                    # done) keeps its answer and is not sent again: no row comes back.
                    fresh = conn.execute(
                        "INSERT INTO sync_item (idempotency_key, outbox_seq, one_off_seq, record_type,"
                        " record_id, version, participant_id, recipient, op, status, updated_at)"
                        " VALUES (?,?,?,?,?,?,?,?,?,'pending',?)"
                        " ON CONFLICT(idempotency_key) DO UPDATE SET status = 'pending', reason = '',"
                        " message = '', op = excluded.op, outbox_seq = excluded.outbox_seq,"
                        " one_off_seq = excluded.one_off_seq, updated_at = excluded.updated_at"
                        " WHERE sync_item.status IN ('pending', 'held_back') RETURNING 1",
                        (item.key, plan.outbox_seq, plan.one_off_seq, item.record_type, item.record_id,
                         item.version, item.participant_id, item.recipient, item.op, now),
                    ).fetchone()
                    if fresh is not None:
                        to_send.append(item)
                for requeue in plan.requeue:
                    self._requeue(conn, requeue.participant_id, requeue.reasons, requeue.recipient)
            self._settle(conn, {p.outbox_seq for p in plans if p.outbox_seq is not None},
                         {p.one_off_seq for p in plans if p.one_off_seq is not None})
        return to_send

    def _requeue(self, conn: Connection, participant_id: str, reasons: Iterable[Any],
                 recipient: str | None) -> None:
        """New outbox rows for the current versions of records held back for ``reasons``."""
        codes = sorted(str(getattr(r, "value", r)) for r in reasons)
        sql = ("SELECT DISTINCT record_type, record_id FROM sync_item WHERE participant_id = ?"
               f" AND status = 'held_back' AND reason IN ({','.join('?' for _ in codes)})")
        params: list[Any] = [participant_id, *codes]
        if recipient is not None:
            sql += " AND recipient = ?"
            params.append(recipient)
        for record_type, record_id in conn.execute(sql, params).fetchall():
            if record_type not in RECORD_TYPE_BY_NAME:
                continue
            # record_type is a known table name (checked just above).
            current = conn.execute(f"SELECT version FROM {record_type} WHERE id = ?", (record_id,)).fetchone()
            if current is None:
                continue
            waiting = conn.execute(
                "SELECT 1 FROM outbox WHERE record_type = ? AND record_id = ? AND version = ?"
                " AND state = 'pending'", (record_type, record_id, current[0])).fetchone()
            if waiting is None:
                conn.execute(
                    "INSERT INTO outbox (record_type, record_id, version, participant_id, op, created_at)"
                    " VALUES (?,?,?,?,'upsert',?)", (record_type, record_id, current[0], participant_id, _now()))

    # -- after an answer --------------------------------------------------------------

    def apply_answers(self, items: Sequence[PlannedItem], answers: Sequence[ItemAnswer]) -> None:
        """Apply one batch's answers (already checked against ``items``) in one transaction."""
        now = _now()
        with self.db.transaction() as conn:
            for item, answer in zip(items, answers, strict=True):
                self._apply_one(conn, item, answer.status.value, answer.code, answer.reason, now)
            self._settle(conn, {i.outbox_seq for i in items if i.outbox_seq is not None},
                         {i.one_off_seq for i in items if i.one_off_seq is not None})

    def set_aside(self, items: Sequence[PlannedItem], code: str, reason: str) -> None:
        """Quarantine items without sending them (e.g. one item larger than any batch)."""
        now = _now()
        with self.db.transaction() as conn:
            for item in items:
                self._apply_one(conn, item, "rejected", code, reason, now)
            self._settle(conn, {i.outbox_seq for i in items if i.outbox_seq is not None},
                         {i.one_off_seq for i in items if i.one_off_seq is not None})

    def _apply_one(self, conn: Connection, item: PlannedItem, status: str, code: str, reason: str,
                   now: str) -> None:
        conn.execute(
            "UPDATE sync_item SET status = ?, reason = ?, message = ?, attempts = attempts + 1,"
            " updated_at = ? WHERE idempotency_key = ?",
            (status, code, reason if status != "accepted" else "", now, item.key),
        )
        if status in (ItemStatus.ACCEPTED, ItemStatus.DUPLICATE):
            conn.execute(
                "INSERT INTO sent_log (idempotency_key, participant_id, recipient, record_type, record_id,"
                " version, op, programme, strand, fields, article_6, article_9, one_off_reason, sent_at,"
                " controller_status) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(idempotency_key) DO NOTHING",
                (item.key, item.participant_id, item.recipient, item.record_type, item.record_id,
                 item.version, item.op, item.programme, item.strand, json.dumps(list(item.field_names)),
                 item.article_6, item.article_9, item.one_off_reason, now, status),
            )
            # A newer version got through: earlier refusals of this record are resolved.
            resolved = conn.execute(
                "UPDATE quarantine SET resolved_at = ? WHERE record_id = ? AND recipient = ?"
                " AND version < ? AND resolved_at IS NULL",
                (now, item.record_id, item.recipient, item.version),
            ).rowcount
            if resolved:
                conn.execute(
                    "UPDATE outbox SET state = 'done' WHERE state = 'quarantined' AND record_id = ?"
                    " AND version < ? AND NOT EXISTS (SELECT 1 FROM sync_item s JOIN quarantine q"
                    " ON q.idempotency_key = s.idempotency_key WHERE s.outbox_seq = outbox.seq"
                    " AND q.resolved_at IS NULL)",
                    (item.record_id, item.version),
                )
        elif status == ItemStatus.REJECTED:
            conn.execute(
                "INSERT INTO quarantine (idempotency_key, record_type, record_id, version, participant_id,"
                " recipient, code, reason, quarantined_at) VALUES (?,?,?,?,?,?,?,?,?)"
                " ON CONFLICT(idempotency_key) DO UPDATE SET code = excluded.code,"
                " reason = excluded.reason, resolved_at = NULL",
                (item.key, item.record_type, item.record_id, item.version, item.participant_id,
                 item.recipient, code or "rejected", reason, now),
            )

    def _settle(self, conn: Connection, outbox_seqs: set[int], one_off_seqs: set[int]) -> None:
        """Close each source whose items all have final answers."""
        for seq in sorted(outbox_seqs):
            statuses = [r[0] for r in conn.execute(
                "SELECT status FROM sync_item WHERE outbox_seq = ?", (seq,)).fetchall()]
            if "pending" in statuses:
                continue
            state = "quarantined" if "rejected" in statuses else "done"
            conn.execute("UPDATE outbox SET state = ? WHERE seq = ? AND state = 'pending'", (state, seq))
        for seq in sorted(one_off_seqs):
            pending = conn.execute(
                "SELECT 1 FROM sync_item WHERE one_off_seq = ? AND status = 'pending'", (seq,)).fetchone()
            if pending is None:
                conn.execute("UPDATE one_off_share SET state = 'done' WHERE seq = ?", (seq,))

    # -- reading ----------------------------------------------------------------------

    def pending_one_offs(self) -> list[tuple[int, str, str, str, tuple[str, ...], str]]:
        rows = self.db.query(
            "SELECT seq, record_type, record_id, recipient, fields, reason FROM one_off_share"
            " WHERE state = 'pending' ORDER BY seq")
        return [(int(r[0]), r[1], r[2], r[3], tuple(json.loads(r[4])), r[5]) for r in rows]

    def sharing_history(self, participant_id: str) -> list[SentEntry]:
        """What each recipient received about a participant, oldest first."""
        rows = self.db.query(
            "SELECT recipient, record_type, record_id, version, op, fields, article_6, article_9,"
            " sent_at, controller_status, one_off_reason FROM sent_log WHERE participant_id = ?"
            " ORDER BY seq", (participant_id,))
        return [SentEntry(r[0], r[1], r[2], int(r[3]), r[4], tuple(json.loads(r[5])), r[6], r[7], r[8],
                          r[9], bool(r[10])) for r in rows]

    def quarantined(self, participant_id: str | None = None) -> list[QuarantinedItem]:
        """Items set aside and not yet resolved by a newer version."""
        sql = ("SELECT idempotency_key, record_type, record_id, version, participant_id, recipient,"
               " code, reason, quarantined_at FROM quarantine WHERE resolved_at IS NULL")
        params: tuple[Any, ...] = ()
        if participant_id is not None:
            sql += " AND participant_id = ?"
            params = (participant_id,)
        return [QuarantinedItem(r[0], r[1], r[2], int(r[3]), r[4], r[5], r[6], r[7], r[8])
                for r in self.db.query(sql + " ORDER BY quarantined_at, idempotency_key", params)]

    def held_back(self, participant_id: str | None = None) -> Counter[str]:
        """Items held back now, counted by reason."""
        sql = "SELECT reason, count(*) FROM sync_item WHERE status = 'held_back'"
        params: tuple[Any, ...] = ()
        if participant_id is not None:
            sql += " AND participant_id = ?"
            params = (participant_id,)
        return Counter({r[0]: int(r[1]) for r in self.db.query(sql + " GROUP BY reason", params)})

    def status_of(self, key: str) -> tuple[str, str] | None:
        row = self.db.query("SELECT status, reason FROM sync_item WHERE idempotency_key = ?", (key,))
        return (row[0][0], row[0][1]) if row else None

    # -- run state --------------------------------------------------------------------

    def record_run(self, outcome: str, summary: Mapping[str, Any], at: str | None = None) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE sync_state SET last_sync_at = ?, last_outcome = ?, last_summary = ?"
                         " WHERE id = 1", (at or _now(), outcome, json.dumps(dict(summary), sort_keys=True)))

    def set_referral_cursor(self, cursor: str | None) -> None:
        with self.db.transaction() as conn:
            conn.execute("UPDATE sync_state SET referral_cursor = ? WHERE id = 1", (cursor,))

    def referral_cursor(self) -> str | None:
        value = self.db.scalar("SELECT referral_cursor FROM sync_state WHERE id = 1")
        return None if value is None else str(value)

    def last_run(self) -> LastRun:
        row = self.db.query("SELECT last_sync_at, last_outcome, last_summary FROM sync_state WHERE id = 1")
        at, outcome, summary = row[0]
        return LastRun(at, outcome, json.loads(summary))
