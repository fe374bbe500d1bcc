"""The sync's own tables (migration 0004): delivery state, sent log, quarantine, run state.

What is written, per item (one record version for one recipient):

* delivered (``accepted``, or ``duplicate``: the controller already held it): one line in
  ``sent_line``, the participant's sharing history, pointing at its ``sent_basis`` (record
  type, op, programme, strand, field names, lawful bases: the same for many lines, kept
  once), and at its participant by number (``sent_person``, so that a push's lines go at
  the end of the index); the view ``sent_log`` reads them together (migrations 0011, 0014).
  That line is also how the ledger knows the item is delivered.
* refused (``rejected``, ``conflict``) or ``held_back``: a ``sync_item`` row with the
  reason, and for a refusal a ``quarantine`` line.
* sent and not yet answered: nothing. Which items each outbox row (or one-off share) is
  waiting for is kept in memory for the run (:class:`Ledger` ``_open``), and a row is
  marked done (or quarantined) in the same transaction as the answer that completes it.

So "exactly once, nothing lost" rests on the outbox: a row stays ``pending`` until every
item projected from it has a final answer written down. A crash between sending and
writing an answer leaves the row pending; the next run projects it again, skips the items
already answered, sends the rest again, and the controller answers ``duplicate`` for those
it had stored. (Until late 2026 every item was also written as ``pending`` before it was
sent and updated when answered: three index-heavy writes per item where one will do. Such
rows in older stores are read as "not answered" and replaced when their item is sent.)
"""

from __future__ import annotations

import functools
import json
import operator
from collections import Counter
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from itertools import chain
from typing import Any

from keyworker_app.records import RECORD_TYPE_BY_NAME
from keyworker_app.store.database import Connection
from keyworker_app.store.store import Store

from .projection import HeldItem, PlannedItem, Requeue, SourcePlan, idempotency_key, json_values
from .wire import ItemAnswer, ItemStatus



def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="seconds")


@functools.lru_cache(maxsize=1024)
def _field_names_json(names: tuple[str, ...]) -> str:
    """The sent log's ``fields`` column: a JSON list of field names (never values)."""
    return json.dumps(list(names))


#: ``x IN`` this: the values of one JSON list parameter. One statement text whatever the
#: number of values, so SQLite prepares it once (per-length ``IN (?,?,...)`` texts would
#: crowd the connection's statement cache and be prepared again and again).
_JSON_LIST = "(SELECT value FROM json_each(?))"

#: Held-back lines of older versions of a record for a recipient, once a newer version
#: is decided (sent or held back): they will never go, so they are no longer held back.
#: Parameter: JSON [[participant id, recipient, record id, version], ...]; CROSS JOIN keeps
#: the list outside, each entry one probe of sync_item_by_participant (the planner, left to
#: itself, scanned sync_item once per entry).
_SUPERSEDED_SQL = (
    "DELETE FROM sync_item WHERE idempotency_key IN (SELECT s.idempotency_key FROM json_each(?) AS j"
    " CROSS JOIN sync_item AS s ON s.participant_id = j.value ->> 0 AND s.recipient = j.value ->> 1"
    " AND s.status = 'held_back' AND s.record_id = j.value ->> 2 AND s.version < j.value ->> 3)"
)

_HOLD_SQL = (
    "INSERT INTO sync_item (idempotency_key, outbox_seq, one_off_seq, record_type,"
    " record_id, version, participant_id, recipient, op, status, reason, updated_at)"
    " VALUES (?,?,?,?,?,?,?,?,'upsert','held_back',?,?)"
    " ON CONFLICT(idempotency_key) DO UPDATE SET status = 'held_back',"
    " reason = excluded.reason, message = '', updated_at = excluded.updated_at"
    " WHERE sync_item.status IN ('pending', 'held_back')"
)

_REFUSED_SQL = (
    "INSERT INTO sync_item (idempotency_key, outbox_seq, one_off_seq, record_type,"
    " record_id, version, participant_id, recipient, op, status, reason, message, attempts,"
    " updated_at) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,1,?)"
    " ON CONFLICT(idempotency_key) DO UPDATE SET status = excluded.status,"
    " reason = excluded.reason, message = excluded.message, op = excluded.op,"
    " outbox_seq = excluded.outbox_seq, one_off_seq = excluded.one_off_seq,"
    " attempts = sync_item.attempts + 1, updated_at = excluded.updated_at"
)

#: A delivered item's sent-log line (migrations 0011, 0014): what differs from line to line,
#: its basis (what is the same for every item of one kind to one recipient) and its
#: participant's number.
_SENT_LINE_INTO = ("INSERT INTO sent_line (person, recipient, record_id, version, basis, one_off_reason,"
                   " sent_at, controller_status) VALUES ")
_SENT_LINE_VALUES = "(?,?,?,?,?,?,?,?)"
_SENT_LINE_CONFLICT = " ON CONFLICT(person, recipient, record_id, version) DO NOTHING"   # the item's key
_SENT_LINE_SQL = _SENT_LINE_INTO + _SENT_LINE_VALUES + _SENT_LINE_CONFLICT

#: Sent-log lines go this many to a statement (the rest one to a statement), in order.
#: ``executemany`` runs a statement per row, and the driver lets go of Python's lock for
#: each and takes it back after: with the engine's thread busy, the writer waited for the
#: lock at every line (its 84,469 lines in a push of 51,028 records: 0.44 s of CPU, 1.38 s
#: of wall time), and each hand-over cost both threads. A hundred to a statement: 2.4%
#: fewer instructions in the whole push (callgrind, 20,200 records).
_LINES_AT_ONCE = 100
_SENT_LINES_SQL = _SENT_LINE_INTO + ",".join([_SENT_LINE_VALUES] * _LINES_AT_ONCE) + _SENT_LINE_CONFLICT

#: Numbers for participants given their first sent-log line (migration 0014): new people
#: are numbered in the order given, counting up, so their lines go at the end of the index.
_NUMBER_PEOPLE_SQL = (
    "INSERT INTO sent_person (participant_id) SELECT value FROM json_each(?) WHERE true"
    " ON CONFLICT(participant_id) DO NOTHING"
)
_PERSON_NUMBERS_SQL = f"SELECT participant_id, no FROM sent_person WHERE participant_id IN {_JSON_LIST}"

_BASIS_SQL = (
    "INSERT INTO sent_basis (recipient, record_type, op, programme, strand, fields, article_6,"
    " article_9) VALUES (?,?,?,?,?,?,?,?) ON CONFLICT DO NOTHING"
)

_BASIS_ID_SQL = (
    "SELECT id FROM sent_basis WHERE recipient = ? AND record_type = ? AND op = ? AND programme = ?"
    " AND strand = ? AND fields = ? AND article_6 = ? AND article_9 = ?"
)

#: Each answer's status as stored (a dict lookup: an enum's ``value`` per item adds up).
_STATUS_TEXT = {status: status.value for status in ItemStatus}
_DELIVERED = frozenset({ItemStatus.ACCEPTED.value, ItemStatus.DUPLICATE.value})
_status = operator.attrgetter("status")
_code = operator.attrgetter("code")
_reason = operator.attrgetter("reason")

#: Answers after which an item is never sent again.
_FINAL = frozenset({"accepted", "duplicate", "rejected", "conflict"})


def _source(outbox_seq: int | None, one_off_seq: int | None) -> tuple[str, int] | None:
    if outbox_seq is not None:
        return ("outbox", outbox_seq)
    if one_off_seq is not None:
        return ("one_off", one_off_seq)
    return None


def _may_requeue(holding: set[tuple[str, str]] | None, requeue: Requeue) -> bool:
    """Whether the participant's held-back items (``holding``, by (reason, recipient),
    or None: nothing) include any that ``requeue`` would queue again."""
    return any(
        reason in requeue.reasons and (requeue.recipient is None or recipient == requeue.recipient)
        for reason, recipient in holding or ())


@dataclass
class _Open:
    """A source's items sent and not answered yet, and whether one was refused."""

    items: int
    refused: bool = False


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
        # Sources (outbox rows, one-off shares) with items sent and not all answered yet.
        self._open: dict[tuple[str, int], _Open] = {}
        # sent_basis ids by their values, and sent_person numbers by participant id, as
        # found or written in this run.
        self._bases: dict[tuple[Any, ...], int] = {}
        self._people: dict[str, int] = {}

    # -- before sending ---------------------------------------------------------------

    def begin_run(self) -> None:
        """Forget what an earlier run was waiting for (its rows are pending again)."""
        self._open.clear()
        self._bases.clear()   # a basis written by a run that then failed was rolled back
        self._people.clear()  # and so was a number

    def prepare(self, plans: Sequence[SourcePlan], *, in_flight: Collection[str] = (),
                projected_before: int = 0) -> list[PlannedItem]:
        """Write down what the plans hold back; returns the items to send.

        An item already answered (in an earlier run that stopped before its row was done)
        is not sent again; an item held back before and now going is no longer held back.
        Each source (outbox row or one-off share) is then waiting for the items returned;
        one with nothing to wait for is closed here.

        For an engine that keeps sending while it projects: ``in_flight`` are keys of
        items sent whose answers are not written yet, and ``projected_before`` an outbox
        seq below which every pending row was already projected in this run. Both make
        this call decide as it would if every answer had already been written: an item in
        flight counts as answered (left alone, not sent again), and a pending row already
        projected does not count as one still to carry a record's current version. The
        same key twice in ``plans`` is sent once, for the first source that has it.
        """
        now = _now()
        skip = set(in_flight)
        with self.db.transaction() as conn:
            # Who may have records held back: anyone with sync items already, and anyone
            # these plans hold something back for. And what each may have held back, by
            # (reason, recipient): a requeue that matches none of it would find nothing.
            requeuing = {r.participant_id for p in plans for r in p.requeue}
            known, may_hold = self._statuses(conn, [h for p in plans for h in p.held]
                                             + [i for p in plans for i in p.items], requeuing)
            holding = self._holding(conn, requeuing & may_hold)
            to_send: list[PlannedItem] = []
            held_rows: dict[str, tuple[Any, ...]] = {}   # by key: a later plan may send it after all
            held_here: set[str] = set()                  # held back by these plans (written or not)
            unheld: list[str] = []
            decided: list[tuple[str, str, str, int]] = []   # (participant, recipient, record, version)
            closing: list[tuple[tuple[str, int], bool]] = []

            def flush() -> None:
                if unheld:
                    conn.execute(f"DELETE FROM sync_item WHERE idempotency_key IN {_JSON_LIST}"
                                 " AND status IN ('pending', 'held_back')", (json_values(unheld),))
                    unheld.clear()
                if held_rows:
                    conn.executemany(_HOLD_SQL, list(held_rows.values()))
                    held_rows.clear()

            for plan in plans:
                source = _source(plan.outbox_seq, plan.one_off_seq)
                waiting = 0
                refused = False
                for held in plan.held:
                    if held.key in skip or known.get(held.key) in _FINAL:
                        refused |= known.get(held.key) == "rejected"
                        continue
                    held_rows[held.key] = (held.key, plan.outbox_seq, plan.one_off_seq, held.record_type,
                                           held.record_id, held.version, held.participant_id,
                                           held.recipient, held.reason.value, now)
                    held_here.add(held.key)
                    may_hold.add(held.participant_id)
                    holding.setdefault(held.participant_id, set()).add((held.reason.value, held.recipient))
                    if held.version > 1:
                        decided.append((held.participant_id, held.recipient, held.record_id, held.version))
                for item in plan.items:
                    key = item.key
                    if key in skip:
                        continue
                    status = known.get(key)
                    if status in _FINAL:
                        refused |= status == "rejected"
                        continue
                    if status is not None or key in held_here:
                        # Held back before (in an earlier run, or by an earlier plan here, when
                        # a consent row between them changed the answer): going now.
                        held_rows.pop(key, None)
                        unheld.append(key)
                    skip.add(key)
                    to_send.append(item)
                    if item.version > 1:   # a first version has nothing older to supersede
                        decided.append((item.participant_id, item.recipient, item.record_id, item.version))
                    waiting += 1
                requeues = ([r for r in plan.requeue if _may_requeue(holding.get(r.participant_id), r)]
                            if plan.requeue else ())
                if requeues:
                    flush()   # the requeue reads the held-back items just written
                    for requeue in requeues:
                        self._requeue(conn, requeue.participant_id, requeue.reasons, requeue.recipient,
                                      projected_before)
                if source is None:
                    continue
                if waiting:
                    self._open[source] = _Open(waiting, refused)
                else:
                    self._open.pop(source, None)
                    closing.append((source, refused))
            flush()
            # Nor has anyone without sync items.
            superseding = [d for d in decided if d[0] in may_hold]
            if superseding:
                conn.execute(_SUPERSEDED_SQL, (json_values(superseding),))
            self._close(conn, closing)
        return to_send

    @staticmethod
    def _statuses(conn: Connection, items: Sequence[PlannedItem | HeldItem],
                  people: Collection[str] = ()) -> tuple[dict[str, str], set[str]]:
        """What the ledger already holds for these items, by key: ``accepted``/``duplicate``
        from the sent log, else the ``sync_item`` status (``held_back``, ``rejected``,
        ``conflict``; ``pending`` in a store written before late 2026). And which of the
        items' participants and ``people`` have any sync items.

        Only the items of participants with anything in either table are looked up: one
        index probe per participant first, which for people never sent anything yet (a
        first sync, new referrals) saves a probe per item.
        """
        everyone = {i.participant_id for i in items}.union(people)
        if not everyone:
            return {}, set()
        held: set[str] = set()
        sent: set[str] = set()
        for person, in_sync_items, in_sent_log in conn.execute(
                "SELECT value, EXISTS (SELECT 1 FROM sync_item WHERE participant_id = value),"
                " EXISTS (SELECT 1 FROM sent_person AS p JOIN sent_line AS s ON s.person = p.no"
                " WHERE p.participant_id = value) FROM json_each(?)",
                (json_values(sorted(everyone)),)).fetchall():
            if in_sync_items:
                held.add(person)
            if in_sent_log:
                sent.add(person)
        found: dict[str, str] = {}
        if held:
            found.update((r[0], r[1]) for r in conn.execute(
                f"SELECT idempotency_key, status FROM sync_item WHERE idempotency_key IN {_JSON_LIST}",
                (json_values([i.key for i in items if i.participant_id in held]),)).fetchall())
        if sent:
            # Sent-log lines are indexed by what the key is made of, the participant by
            # their number (migrations 0009, 0011, 0014).
            found.update((idempotency_key(r[0], r[1], r[2]), r[3]) for r in conn.execute(
                "SELECT s.record_id, s.version, s.recipient, s.controller_status FROM json_each(?) AS j"
                " CROSS JOIN sent_person AS p ON p.participant_id = json_extract(j.value, '$[0]')"
                " CROSS JOIN sent_line AS s ON s.person = p.no"
                " AND s.recipient = json_extract(j.value, '$[1]')"
                " AND s.record_id = json_extract(j.value, '$[2]')"
                " AND s.version = json_extract(j.value, '$[3]')",
                (json_values([(i.participant_id, i.recipient, i.record_id, i.version)
                              for i in items if i.participant_id in sent]),)).fetchall())
        return found, held

    @staticmethod
    def _holding(conn: Connection, people: Collection[str]) -> dict[str, set[tuple[str, str]]]:
        """The (reason, recipient) of what each of ``people`` has held back.

        One probe of each person's sync items. Left to itself, the planner took the status
        index (two columns equal beat one) and read every held-back item once per person:
        a push of 51,028 records spent 0.22 s here, 75 times what the probes take.
        """
        found: dict[str, set[tuple[str, str]]] = {}
        if people:
            for person, reason, recipient in conn.execute(
                    "SELECT DISTINCT s.participant_id, s.reason, s.recipient FROM json_each(?) AS j"
                    " CROSS JOIN sync_item AS s INDEXED BY sync_item_by_participant"
                    " ON s.participant_id = j.value WHERE s.status = 'held_back'",
                    (json_values(sorted(people)),)).fetchall():
                found.setdefault(person, set()).add((reason, recipient))
        return found

    def _requeue(self, conn: Connection, participant_id: str, reasons: Iterable[Any],
                 recipient: str | None, projected_before: int = 0) -> None:
        """New outbox rows for the current versions of records held back for ``reasons``.

        A pending row for the current version makes a new one unnecessary, unless it was
        already projected (``seq < projected_before``): its items are decided already.
        """
        codes = sorted(str(getattr(r, "value", r)) for r in reasons)
        sql = ("SELECT DISTINCT record_type, record_id FROM sync_item INDEXED BY sync_item_by_participant"
               " WHERE participant_id = ?"   # (see _holding)
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
                " AND state = 'pending' AND seq >= ?",
                (record_type, record_id, current[0], projected_before)).fetchone()
            if waiting is None:
                conn.execute(
                    "INSERT INTO outbox (record_type, record_id, version, participant_id, op, created_at)"
                    " VALUES (?,?,?,?,'upsert',?)", (record_type, record_id, current[0], participant_id, _now()))

    # -- after an answer --------------------------------------------------------------

    def apply_answers(self, items: Sequence[PlannedItem], answers: Sequence[ItemAnswer]) -> None:
        """Apply one batch's answers (already checked against ``items``) in one transaction."""
        if len(items) != len(answers):
            raise ValueError("one answer per item is needed")
        with self.db.transaction() as conn:
            # (item, status text, code, reason) for each, zipped in C: no Python-level step
            # per answer.
            self._apply_many(conn, list(zip(items, map(_STATUS_TEXT.__getitem__, map(_status, answers)),
                                            map(_code, answers), map(_reason, answers))))

    def set_aside(self, items: Sequence[PlannedItem], code: str, reason: str) -> None:
        """Quarantine items without sending them (e.g. one item larger than any batch)."""
        with self.db.transaction() as conn:
            self._apply_many(conn, [(item, "rejected", code, reason) for item in items])

    def _apply_many(self, conn: Connection, answered: Sequence[tuple[PlannedItem, str, str, str]]) -> None:
        """Write the answers, in order, and close each source whose last answer this is.

        Sent log lines touch nothing the other statements read, so they go in one
        ``executemany`` after the loop. Quarantine lines and the resolving of earlier
        refusals depend on each other and on order, so they run in order; and the resolving
        runs only for a record and recipient that has an open refusal (read up front, and
        kept up to date as this batch adds its own).
        """
        now = _now()
        open_refusals = self._open_refusals(conn, answered)
        refused_rows: list[tuple[Any, ...]] = []
        sent_rows: list[list[Any]] = []
        closing: list[tuple[tuple[str, int], bool]] = []
        bases = self._bases
        for item, status, code, reason in answered:
            if status in _DELIVERED:
                basis = (item.recipient, item.record_type, item.op, item.programme, item.strand,
                         item.field_names, item.article_6, item.article_9)
                basis_id = bases.get(basis)
                if basis_id is None:
                    basis_id = self._basis(conn, basis)
                # (the participant's id, replaced by their sent_person number below)
                sent_rows.append([item.participant_id, item.recipient, item.record_id, item.version,
                                  basis_id, item.one_off_reason, now, status])
                if open_refusals:
                    target = (item.record_id, item.recipient)
                    versions = open_refusals.get(target)
                    if versions and min(versions) < item.version:
                        self._resolve_refusals(conn, item, now)
                        open_refusals[target] = {v for v in versions if v >= item.version}
            else:
                refused_rows.append((item.key, item.outbox_seq, item.one_off_seq, item.record_type,
                                     item.record_id, item.version, item.participant_id, item.recipient,
                                     item.op, status, code, reason, now))
                if status == ItemStatus.REJECTED:
                    self._quarantine(conn, item, code, reason, now)
                    open_refusals.setdefault((item.record_id, item.recipient), set()).add(item.version)
            source = _source(item.outbox_seq, item.one_off_seq)
            waiting = self._open.get(source) if source is not None else None
            if source is not None and waiting is not None:
                waiting.items -= 1
                waiting.refused |= status == ItemStatus.REJECTED
                if waiting.items <= 0:
                    del self._open[source]
                    closing.append((source, waiting.refused))
        if refused_rows:
            conn.executemany(_REFUSED_SQL, refused_rows)
        if sent_rows:
            people = self._numbers(conn, sent_rows)
            for row in sent_rows:
                row[0] = people[row[0]]
            whole = len(sent_rows) - len(sent_rows) % _LINES_AT_ONCE
            conn.executemany(_SENT_LINES_SQL, [tuple(chain.from_iterable(sent_rows[start:start + _LINES_AT_ONCE]))
                                               for start in range(0, whole, _LINES_AT_ONCE)])
            conn.executemany(_SENT_LINE_SQL, sent_rows[whole:])
        self._close(conn, closing)

    def _numbers(self, conn: Connection, sent_rows: Sequence[list[Any]]) -> dict[str, int]:
        """The sent_person number of each line's participant (numbering those who have
        none yet, in the order of their first line here), kept for the rest of the run."""
        people = self._people
        new = [p for p in dict.fromkeys(row[0] for row in sent_rows) if p not in people]
        if new:
            listed = json_values(new)
            conn.execute(_NUMBER_PEOPLE_SQL, (listed,))
            people.update(conn.execute(_PERSON_NUMBERS_SQL, (listed,)).fetchall())
        return people

    def _basis(self, conn: Connection, basis: tuple[Any, ...]) -> int:
        """The id of a sent-log basis (written if new), kept for the rest of the run."""
        recipient, record_type, op, programme, strand, names, article_6, article_9 = basis
        values = (recipient, record_type, op, programme, strand, _field_names_json(names), article_6,
                  article_9 or "")
        conn.execute(_BASIS_SQL, values)
        basis_id = int(conn.execute(_BASIS_ID_SQL, values).fetchone()[0])
        self._bases[basis] = basis_id
        return basis_id

    @staticmethod
    def _open_refusals(conn: Connection, answered: Sequence[tuple[PlannedItem, str, str, str]],
                       ) -> dict[tuple[str, str], set[int]]:
        """Versions refused and not yet resolved, by (record id, recipient), for the
        records of ``answered``."""
        found: dict[tuple[str, str], set[int]] = {}
        if not conn.execute("SELECT 1 FROM quarantine WHERE resolved_at IS NULL LIMIT 1").fetchone():
            return found
        record_ids = sorted({answer[0].record_id for answer in answered})
        for record_id, recipient, version in conn.execute(
            "SELECT record_id, recipient, version FROM quarantine WHERE resolved_at IS NULL"
            f" AND record_id IN {_JSON_LIST}", (json_values(record_ids),)).fetchall():
            found.setdefault((record_id, recipient), set()).add(int(version))
        return found

    @staticmethod
    def _resolve_refusals(conn: Connection, item: PlannedItem, now: str) -> None:
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

    @staticmethod
    def _quarantine(conn: Connection, item: PlannedItem, code: str, reason: str, now: str) -> None:
        conn.execute(
            "INSERT INTO quarantine (idempotency_key, record_type, record_id, version, participant_id,"
            " recipient, code, reason, quarantined_at) VALUES (?,?,?,?,?,?,?,?,?)"
            " ON CONFLICT(idempotency_key) DO UPDATE SET code = excluded.code,"
            " reason = excluded.reason, resolved_at = NULL",
            (item.key, item.record_type, item.record_id, item.version, item.participant_id,
             item.recipient, code or "rejected", reason, now),
        )

    @staticmethod
    def _close(conn: Connection, sources: Sequence[tuple[tuple[str, int], bool]]) -> None:
        """Mark these sources finished: quarantined when one of their items was refused."""
        for state in ("done", "quarantined"):
            seqs = [seq for (kind, seq), refused in sources
                    if kind == "outbox" and refused == (state == "quarantined")]
            if seqs:
                conn.execute(f"UPDATE outbox SET state = ? WHERE seq IN {_JSON_LIST} AND state = 'pending'",
                             (state, json_values(seqs)))
        one_offs = [(seq,) for (kind, seq), _ in sources if kind == "one_off"]
        if one_offs:
            conn.executemany("UPDATE one_off_share SET state = 'done' WHERE seq = ?", one_offs)

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
        if participant_id is not None:   # one person's items, not every held item (see _holding)
            sql = ("SELECT reason, count(*) FROM sync_item INDEXED BY sync_item_by_participant"
                   " WHERE participant_id = ? AND status = 'held_back'")
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
