"""The ledger on its own, against the real encrypted store: what it writes for each answer,
and when an outbox row is finished. The engine and wire tests cover the same through a
controller; these pin down the cases a run only meets by chance (a row answered across
batches, a run that stops between them, items held back and then sent, an older store).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from typing import TypeVar

import msgspec
import pytest

from keyworker_app.demo import save_caseload
from keyworker_app.store.store import Store
from sync.ledger import _LINES_AT_ONCE, Ledger
from sync.projection import PlannedItem, Projector, SourcePlan
from sync.wire import ItemAnswer, ItemStatus
from sync_testkit import caseload

T = TypeVar("T")


def answers(items: Sequence[PlannedItem], status: ItemStatus = ItemStatus.ACCEPTED) -> list[ItemAnswer]:
    reason = "" if status is ItemStatus.ACCEPTED else "field 'x' is not in the profile"
    code = "" if status is ItemStatus.ACCEPTED else "not_in_any_profile"
    return [ItemAnswer(i.key, status, code, reason) for i in items]


def row_state(store: Store, seq: int) -> str:
    return str(store.db.scalar("SELECT state FROM outbox WHERE seq = ?", (seq,)))


@pytest.fixture
def plans(store: Store) -> list[SourcePlan]:
    save_caseload(store, caseload(2, seed=51, keyworker_id=store.actor))
    return Projector(store).plan_many(store.outbox_pending(limit=100_000))


def write_item_row(store: Store, plan: SourcePlan, item: PlannedItem, status: str, reason: str = "") -> None:
    """A ``sync_item`` row as an earlier run (or an earlier version of the app) left it."""
    with store.db.transaction() as conn:
        conn.execute(
            "INSERT INTO sync_item (idempotency_key, outbox_seq, record_type, record_id, version,"
            " participant_id, recipient, op, status, reason, updated_at)"
            " VALUES (?,?,?,?,?,?,?,'upsert',?,?,'2026-01-01')",
            (item.key, plan.outbox_seq, item.record_type, item.record_id, item.version,
             item.participant_id, item.recipient, status, reason))


def a_plan_with_items(plans: Sequence[SourcePlan], at_least: int = 2) -> SourcePlan:
    return next(p for p in plans if len(p.items) >= at_least and p.outbox_seq is not None)


def test_a_row_answered_across_batches_is_done_only_with_its_last_answer(
    store: Store, plans: list[SourcePlan]
) -> None:
    plan = a_plan_with_items(plans)
    ledger = Ledger(store)
    to_send = ledger.prepare([plan])
    assert to_send == list(plan.items)
    assert plan.outbox_seq is not None
    first, rest = to_send[:1], to_send[1:]
    ledger.apply_answers(first, answers(first))
    assert row_state(store, plan.outbox_seq) == "pending"
    ledger.apply_answers(rest, answers(rest))
    assert row_state(store, plan.outbox_seq) == "done"
    # A delivered item is one sent-log line and nothing else.
    logged = {k for (k,) in store.db.query("SELECT idempotency_key FROM sent_log")}
    assert logged == {i.key for i in to_send}
    assert store.db.scalar("SELECT count(*) FROM sync_item WHERE idempotency_key IN"
                           " (SELECT idempotency_key FROM sent_log)") == 0


def test_a_run_stopped_between_batches_sends_only_the_unanswered_items_again(
    store: Store, plans: list[SourcePlan]
) -> None:
    plan = a_plan_with_items(plans)
    assert plan.outbox_seq is not None
    ledger = Ledger(store)
    first = ledger.prepare([plan])[:1]
    ledger.apply_answers(first, answers(first))
    # The run stops here. The next run projects the row again and starts afresh.
    again = Ledger(store)
    again.begin_run()
    to_send = again.prepare([plan])
    assert [i.key for i in to_send] == [i.key for i in plan.items[1:]]
    assert row_state(store, plan.outbox_seq) == "pending"
    again.apply_answers(to_send, answers(to_send, ItemStatus.DUPLICATE))
    assert row_state(store, plan.outbox_seq) == "done"
    statuses = dict(store.db.query("SELECT idempotency_key, controller_status FROM sent_log"))
    assert statuses == {plan.items[0].key: "accepted", **{i.key: "duplicate" for i in plan.items[1:]}}


def test_a_refusal_quarantines_the_row_once_every_item_is_answered(
    store: Store, plans: list[SourcePlan]
) -> None:
    plan = a_plan_with_items(plans)
    assert plan.outbox_seq is not None
    ledger = Ledger(store)
    to_send = ledger.prepare([plan])
    ledger.apply_answers(to_send[:1], answers(to_send[:1], ItemStatus.REJECTED))
    assert row_state(store, plan.outbox_seq) == "pending"
    ledger.apply_answers(to_send[1:], answers(to_send[1:]))
    assert row_state(store, plan.outbox_seq) == "quarantined"
    assert store.db.query("SELECT status, reason FROM sync_item WHERE idempotency_key = ?",
                          (to_send[0].key,)) == [("rejected", "not_in_any_profile")]
    assert [q.idempotency_key for q in ledger.quarantined()] == [to_send[0].key]
    # Projected again (a run that stopped before the row was closed), the refused item is
    # not sent again and the row still ends up quarantined.
    store.db.conn.execute("UPDATE outbox SET state = 'pending' WHERE seq = ?", (plan.outbox_seq,))
    assert Ledger(store).prepare([plan]) == []
    assert row_state(store, plan.outbox_seq) == "quarantined"


def test_an_item_held_back_and_then_sent_is_no_longer_counted_as_held(
    store: Store, plans: list[SourcePlan]
) -> None:
    plan = a_plan_with_items(plans)
    item = plan.items[0]
    ledger = Ledger(store)
    write_item_row(store, plan, item, "held_back", "consent_missing")   # before consent was given
    assert ledger.held_back()["consent_missing"] == 1
    to_send = ledger.prepare([plan])
    assert item in to_send
    assert ledger.held_back()["consent_missing"] == 0
    ledger.apply_answers(to_send, answers(to_send))
    assert ledger.status_of(item.key) is None
    assert store.db.scalar("SELECT controller_status FROM sent_log WHERE idempotency_key = ?",
                           (item.key,)) == "accepted"


def test_an_item_left_pending_by_an_older_version_is_sent_and_replaced(
    store: Store, plans: list[SourcePlan]
) -> None:
    plan = a_plan_with_items(plans)
    item = plan.items[0]
    write_item_row(store, plan, item, "pending")   # older versions wrote every item as pending first
    ledger = Ledger(store)
    to_send = ledger.prepare([plan])
    assert item in to_send
    ledger.apply_answers(to_send, answers(to_send))
    assert store.db.scalar("SELECT count(*) FROM sync_item WHERE status = 'pending'") == 0
    assert plan.outbox_seq is not None and row_state(store, plan.outbox_seq) == "done"


def test_a_key_in_two_rows_of_one_chunk_is_sent_once(store: Store, plans: list[SourcePlan]) -> None:
    plan = a_plan_with_items(plans, at_least=1)
    assert plan.outbox_seq is not None
    twin = SourcePlan(plan.outbox_seq + 100_000, None, plan.items[:1])
    with store.db.transaction() as conn:
        conn.execute("INSERT INTO outbox (seq, record_type, record_id, version, participant_id, op,"
                     " created_at) SELECT ?, record_type, record_id, version, participant_id, op,"
                     " created_at FROM outbox WHERE seq = ?", (twin.outbox_seq, plan.outbox_seq))
    ledger = Ledger(store)
    to_send = ledger.prepare([plan, twin])
    assert [i.key for i in to_send] == [i.key for i in plan.items]
    # The twin waits for nothing of its own: the item goes (and is answered) for the first.
    assert twin.outbox_seq is not None and row_state(store, twin.outbox_seq) == "done"
    ledger.apply_answers(to_send, answers(to_send))
    assert row_state(store, plan.outbox_seq) == "done"


def _traced(store: Store, action: Callable[[], T]) -> tuple[T, list[str]]:
    """What ``action()`` returns, and every SQL statement the store's connection ran meanwhile."""
    statements: list[str] = []
    store.db.conn.set_trace_callback(statements.append)
    try:
        return action(), statements
    finally:
        store.db.conn.set_trace_callback(None)


def test_delivered_items_are_found_through_the_sent_log_index(store: Store, plans: list[SourcePlan]) -> None:
    """The ledger asks the sent log about a whole chunk of items at once; each is one
    probe of its one index (migrations 0009, 0011), never a scan of every line ever sent."""
    plan = a_plan_with_items(plans)
    ledger = Ledger(store)
    to_send = ledger.prepare([plan])
    ledger.apply_answers(to_send, answers(to_send))
    again, statements = _traced(store, lambda: ledger.prepare([plan]))
    assert again == []   # everything in it is delivered already
    people, lookup = [s for s in statements if "FROM json_each" in s and "sent_line" in s]
    explained = " ".join(str(r) for r in store.db.query("EXPLAIN QUERY PLAN " + lookup))
    assert "SEARCH p USING COVERING INDEX sqlite_autoindex_sent_person_1" in explained
    assert "SEARCH s USING INDEX sent_line_item (person=? AND recipient=? AND record_id=? AND version=?)" in explained
    assert "SCAN s" not in explained and "SCAN p" not in explained
    # First, whether each participant has any line at all: one probe each.
    explained = " ".join(str(r) for r in store.db.query("EXPLAIN QUERY PLAN " + people))
    assert "USING COVERING INDEX sent_line_item (person=?)" in explained and "SCAN s" not in explained


def test_items_of_people_never_sent_anything_are_not_looked_up_one_by_one(
        store: Store, plans: list[SourcePlan]) -> None:
    """A first sync: nobody in the chunk has a sent-log line or a sync item, so the ledger
    asks once per participant and never item by item."""
    plan = a_plan_with_items(plans)
    to_send, statements = _traced(store, lambda: Ledger(store).prepare([plan]))
    assert [i.key for i in to_send] == [i.key for i in plan.items]
    assert [s for s in statements if "CROSS JOIN sent_line" in s or "idempotency_key IN" in s] == []


def test_an_item_held_by_one_row_and_sent_by_a_later_row_of_the_chunk_is_not_left_held(
    store: Store, plans: list[SourcePlan]
) -> None:
    """Two rows for the same record version in one chunk can be decided differently (a
    consent row between them changes the answer): the later decides, as it would have
    row by row, and nothing delivered is left counted as held back."""
    from sync.projection import HeldItem
    from keyworker_app.sharing import HoldReason

    plan = a_plan_with_items(plans, at_least=1)
    item = plan.items[0]
    assert plan.outbox_seq is not None
    held = HeldItem(item.key, item.record_type, item.record_id, item.version, item.participant_id,
                    item.recipient, HoldReason.CONSENT_MISSING, plan.outbox_seq)
    earlier = SourcePlan(plan.outbox_seq, None, (), (held,))
    item = msgspec.structs.replace(item, outbox_seq=plan.outbox_seq + 100_000)
    later = SourcePlan(item.outbox_seq, None, (item,))
    with store.db.transaction() as conn:
        conn.execute("INSERT INTO outbox (seq, record_type, record_id, version, participant_id, op,"
                     " created_at) SELECT ?, record_type, record_id, version, participant_id, op,"
                     " created_at FROM outbox WHERE seq = ?", (later.outbox_seq, plan.outbox_seq))
    ledger = Ledger(store)
    assert ledger.prepare([earlier, later]) == [item]
    assert ledger.held_back()[HoldReason.CONSENT_MISSING.value] == 0
    ledger.apply_answers([item], answers([item]))
    assert ledger.status_of(item.key) is None
    assert row_state(store, plan.outbox_seq) == "done" and row_state(store, later.outbox_seq) == "done"


def test_each_line_points_at_the_basis_it_went_on(store: Store, plans: list[SourcePlan]) -> None:
    """A delivered item's line and its basis together read back as the item went (record
    type, op, programme, strand, field names, lawful bases), one basis row per distinct
    basis; a basis written in a transaction that was rolled back is written again by the
    next run, never pointed at."""
    items = [i for p in plans if p.outbox_seq is not None for i in p.items]
    ledger = Ledger(store)
    ledger.begin_run()
    to_send = ledger.prepare(plans)

    class Interrupted(Exception):
        pass

    with pytest.raises(Interrupted), store.db.transaction():   # its bases go with the rollback
        ledger.apply_answers(to_send, answers(to_send))
        raise Interrupted()
    assert store.db.scalar("SELECT count(*) FROM sent_basis") == 0
    assert store.db.scalar("SELECT count(*) FROM sent_person") == 0   # and so did its numbers
    ledger.begin_run()
    to_send = ledger.prepare(plans)
    ledger.apply_answers(to_send, answers(to_send))
    # Each participant is numbered at their first line, counting up (migration 0014), so a
    # newcomer's lines go at the end of the index.
    assert [p for (p,) in store.db.query("SELECT participant_id FROM sent_person ORDER BY no")] == list(
        dict.fromkeys(i.participant_id for i in to_send))
    numbers = [n for (n,) in store.db.query("SELECT person FROM sent_line ORDER BY seq")]
    assert list(dict.fromkeys(numbers)) == sorted(set(numbers)) and len(set(numbers)) > 1
    logged = {r[0]: r[1:] for r in store.db.query(
        "SELECT idempotency_key, record_type, op, programme, strand, fields, article_6, article_9"
        " FROM sent_log")}
    assert set(logged) == {i.key for i in items}
    for item in items:
        assert logged[item.key] == (item.record_type, item.op, item.programme, item.strand,
                                    json.dumps(list(item.field_names)), item.article_6, item.article_9)
    distinct = {(i.recipient, *logged[i.key]) for i in items}
    assert store.db.scalar("SELECT count(*) FROM sent_basis") == len(distinct) < len(items)


def test_lines_written_many_to_a_statement_keep_their_order_and_skip_what_is_logged(store: Store) -> None:
    """Sent-log lines go a hundred to a statement and the rest one by one: every line in
    answer order, each with its own values, and a line already in the log left as it is
    (here: the first 30 answered again by a later batch, as "duplicate")."""
    save_caseload(store, caseload(8, seed=52, keyworker_id=store.actor))
    ledger = Ledger(store)
    to_send = ledger.prepare(Projector(store).plan_many(store.outbox_pending(limit=100_000)))
    assert len(to_send) > 2 * _LINES_AT_ONCE + 30 and len(to_send) % _LINES_AT_ONCE
    ledger.apply_answers(to_send[:30], answers(to_send[:30]))
    Ledger(store).apply_answers(to_send, answers(to_send, ItemStatus.DUPLICATE))
    lines = store.db.query("SELECT idempotency_key, participant_id, recipient, record_id, version,"
                           " controller_status FROM sent_log ORDER BY seq")
    assert lines == [(i.key, i.participant_id, i.recipient, i.record_id, i.version,
                      "accepted" if n < 30 else "duplicate") for n, i in enumerate(to_send)]


def _push_everything(store: Store, ledger: Ledger) -> None:
    """Project every pending row, as one chunk, and answer every item accepted."""
    to_send = ledger.prepare(Projector(store).plan_many(store.outbox_pending(limit=100_000)))
    ledger.apply_answers(to_send, answers(to_send))


def test_records_held_back_for_a_restriction_are_queued_again_once_it_is_lifted(store: Store) -> None:
    """A restricted participant's records are held back, every row finished; lifting the
    restriction queues each held record's current version again, and those then go."""
    from keyworker_app.sharing import HoldReason

    cases = caseload(2, seed=52, keyworker_id=store.actor)
    save_caseload(store, cases)
    person = cases[0].participant
    stored = store.participants.find(person.id)
    assert stored is not None
    store.save(stored.replace(restricted=True))
    ledger = Ledger(store)
    _push_everything(store, ledger)
    held = {(r, i) for r, i in store.db.query(
        "SELECT record_type, record_id FROM sync_item WHERE participant_id = ? AND status = 'held_back'"
        " AND reason = 'restricted'", (person.id,))}
    assert len(held) > 3 and store.outbox_count("pending") == 0

    restricted = store.participants.find(person.id)
    assert restricted is not None
    store.save(restricted.replace(restricted=False))
    ledger.prepare(Projector(store).plan_many(store.outbox_pending(limit=100_000)))
    queued = {(row.record_type, row.record_id) for row in store.outbox_pending(limit=100_000)}
    assert held <= queued

    _push_everything(store, ledger)
    sent = {(r, i) for r, i in store.db.query(
        "SELECT record_type, record_id FROM sent_log WHERE participant_id = ?", (person.id,))}
    assert held - {("participant", person.id)} <= sent
    # Nothing is counted as held back for the restriction any more: not the records sent,
    # nor the restricted version of the participant record, which a newer one replaced.
    assert ledger.held_back(person.id)[HoldReason.RESTRICTED.value] == 0


def test_held_back_items_are_read_person_by_person_never_all_of_them(store: Store) -> None:
    """What a lifted hold reads (who holds what back, which records to queue again) and a
    participant's held-back count each probe that participant's sync items. The planner,
    left to itself, took the index by status and read every held-back item in the store
    (once per participant in the lookup): a fifth of a second in a push of 50,000."""
    cases = caseload(8, seed=52, keyworker_id=store.actor)
    save_caseload(store, cases)
    person = store.participants.find(cases[0].participant.id)
    assert person is not None
    store.save(person.replace(restricted=True))
    ledger = Ledger(store)
    _push_everything(store, ledger)
    restricted = store.participants.find(person.id)
    assert restricted is not None
    store.save(restricted.replace(restricted=False))
    plans = Projector(store).plan_many(store.outbox_pending(limit=100_000))
    _, statements = _traced(store, lambda: ledger.prepare(plans))
    _, counted = _traced(store, lambda: ledger.held_back(person.id))
    reads = [s for s in statements + counted if s.startswith("SELECT") and "status = 'held_back'" in s]
    assert len(reads) == 3   # who holds what, which records to queue again, the count
    for sql in reads:
        explained = " ".join(str(r) for r in store.db.query("EXPLAIN QUERY PLAN " + sql))
        assert "sync_item_by_participant (participant_id=?" in explained, sql
        assert "sync_item_by_status" not in explained, sql


def test_a_lifted_hold_looks_for_held_records_only_for_people_who_may_have_some(store: Store) -> None:
    """A participant or consent row can lift a hold; only participants with sync items
    (or held back in the same call) can have records to queue again, so nobody else's
    row costs a query."""
    save_caseload(store, caseload(6, seed=53, keyworker_id=store.actor))
    ledger = Ledger(store)
    _push_everything(store, ledger)
    with_items = {p for (p,) in store.db.query("SELECT DISTINCT participant_id FROM sync_item")}
    nothing_held = [p for p in store.participants.all() if p.id not in with_items]
    assert len(nothing_held) >= 2
    for person in nothing_held:
        store.save(person.replace(preferred_name=person.preferred_name + "x"))
    plans = Projector(store).plan_many(store.outbox_pending(limit=100_000))
    assert sum(len(p.requeue) for p in plans) >= 2
    _, statements = _traced(store, lambda: ledger.prepare(plans))
    assert [s for s in statements if "status = 'held_back'" in s] == []


def test_a_lifted_hold_looks_for_held_records_only_when_some_are_held_for_it(store: Store) -> None:
    """Someone with records held back only for consent reasons, whose participant record
    changes (which could lift a restriction or an objection, not a consent): nothing is
    held back for what it lifts, so no held-back record is looked for."""
    save_caseload(store, caseload(12, seed=54, keyworker_id=store.actor))
    ledger = Ledger(store)
    _push_everything(store, ledger)
    reasons: dict[str, set[str]] = {}
    for person_id, reason in store.db.query(
            "SELECT participant_id, reason FROM sync_item WHERE status = 'held_back'"):
        reasons.setdefault(person_id, set()).add(reason)
    consent_only = [p for p in store.participants.all()
                    if reasons.get(p.id) and reasons[p.id] <= {"consent_missing", "consent_refused",
                                                               "consent_withdrawn"}
                    and not p.restricted and not p.objections]
    assert consent_only
    for person in consent_only:
        store.save(person.replace(preferred_name=person.preferred_name + "x"))
    plans = Projector(store).plan_many(store.outbox_pending(limit=100_000))
    assert any(p.requeue for p in plans)
    _, statements = _traced(store, lambda: ledger.prepare(plans))
    assert [s for s in statements if "SELECT DISTINCT record_type, record_id FROM sync_item" in s] == []


def test_a_record_edited_while_held_back_is_counted_once_per_recipient(store: Store) -> None:
    """Each version of a record held back replaces the last in the count: a participant
    record edited three times while restricted is one held-back item per recipient."""
    from keyworker_app.sharing import HoldReason

    cases = caseload(1, seed=54, keyworker_id=store.actor)
    save_caseload(store, cases)
    person_id = cases[0].participant.id
    ledger = Ledger(store)
    counts = []
    statements: list[str] = []
    for edit in range(3):
        person = store.participants.find(person_id)
        assert person is not None
        store.save(person.replace(restricted=True, preferred_name=f"Sam{edit}"))
        statements += _traced(store, lambda: _push_everything(store, ledger))[1]
        counts.append(store.db.scalar(
            "SELECT count(*) FROM sync_item WHERE record_id = ? AND status = 'held_back'", (person_id,)))
    assert counts[0] > 0 and counts == [counts[0]] * 3
    # Each older version is found through the participant's index, never by a scan of
    # every sync item per line decided (which took a push of 20,000 records from 3 s to 16).
    deletes = [s for s in statements if s.startswith("DELETE FROM sync_item WHERE idempotency_key IN (SELECT")]
    assert deletes
    explained = " ".join(str(r) for r in store.db.query("EXPLAIN QUERY PLAN " + deletes[-1]))
    assert "SEARCH s USING INDEX sync_item_by_participant" in explained and "SCAN s" not in explained
    assert store.db.scalar("SELECT count(DISTINCT version) FROM sync_item WHERE record_id = ?"
                           " AND status = 'held_back'", (person_id,)) == 1
    assert ledger.held_back(person_id)[HoldReason.RESTRICTED.value] > 0
