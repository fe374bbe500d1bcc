"""The audit log is a hash chain: edits, reordering, deletion and truncation are caught."""

from __future__ import annotations

import pytest

from keyworker_app.records import Participant
from keyworker_app.store import audit
from keyworker_app.store.store import Store


@pytest.fixture
def audited(store: Store) -> Store:
    p = store.save(Participant(given_name="Audit", family_name="Trail"))
    for phone in ("07700 900001", "07700 900002", "07700 900003"):
        p = store.save(p.replace(phone=phone))
    store.participant_file(p.id)
    assert store.verify_audit() == []
    return store


def raw(store: Store, sql: str, *params: object) -> None:
    # Someone with the key editing the file directly, around the app.
    store.db.conn.execute(sql, params)


def test_intact_chain_verifies(audited: Store) -> None:
    assert len(audited.audit_entries()) >= 6 and audited.check() == []


def test_edited_entry_is_caught(audited: Store) -> None:
    raw(audited, "UPDATE audit_log SET action = 'view' WHERE seq = 3")
    assert "audit entry 3 was changed after it was written" in audited.verify_audit()


def test_edited_detail_is_caught(audited: Store) -> None:
    raw(audited, "UPDATE audit_log SET detail = '{}' WHERE seq = 4")
    assert any("entry 4 was changed" in p for p in audited.verify_audit())


def test_deleted_entry_is_caught(audited: Store) -> None:
    raw(audited, "DELETE FROM audit_log WHERE seq = 3")
    problems = audited.verify_audit()
    assert "audit entry 3 is missing (next entry is 4)" in problems


def test_reordered_entries_are_caught(audited: Store) -> None:
    raw(audited, "UPDATE audit_log SET seq = 100 WHERE seq = 3")
    raw(audited, "UPDATE audit_log SET seq = 3 WHERE seq = 4")
    raw(audited, "UPDATE audit_log SET seq = 4 WHERE seq = 100")
    problems = audited.verify_audit()
    assert any("does not follow" in p for p in problems)


def test_truncated_tail_is_caught(audited: Store) -> None:
    last = audited.audit_entries()[0].seq
    raw(audited, "DELETE FROM audit_log WHERE seq = ?", last)
    assert any("entries were removed from the end" in p for p in audited.verify_audit())


def test_audit_detail_never_holds_typed_values(audited: Store) -> None:
    text = " ".join(str(e.detail) for e in audited.audit_entries())
    assert "07700" not in text and "Audit" not in text


def test_cutting_the_last_entry_stays_caught_after_more_are_written(audited: Store) -> None:
    last = audited.audit_entries()[0].seq
    raw(audited, "DELETE FROM audit_log WHERE seq = ?", last)
    p = audited.participants.all()[0]
    audited.save(p.replace(phone="07700 900004"))
    # The next entry leaves a gap where the cut was, so the cut is still reported.
    problems = audited.verify_audit()
    assert f"audit entry {last} is missing (next entry is {last + 1})" in problems


def test_emptying_the_log_is_caught(audited: Store) -> None:
    raw(audited, "DELETE FROM audit_log")
    assert any("the audit log is empty but entries were written" in p for p in audited.verify_audit())
    audited.audit("view")
    assert "audit entry 1 is missing (next entry is 2)" in audited.verify_audit()


def test_another_chain_put_in_place_of_the_log_is_caught(audited: Store) -> None:
    # A whole, self-consistent chain (entry 1 onwards, marked at its end) written over the log.
    entries = audited.audit_entries()
    raw(audited, "DELETE FROM audit_log")
    prev = audit.GENESIS
    for seq in range(1, len(entries) + 1):
        digest = audit.entry_hash(prev, seq, "2026-01-01T00:00:00+00:00", "KW-X", "view", "", "", "", "{}")
        raw(audited, "INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
            " detail, prev_hash, hash, chain_end) VALUES (?, '2026-01-01T00:00:00+00:00', 'KW-X', 'view',"
            " '', '', '', '{}', ?, ?, ?)", seq, prev, digest, int(seq == len(entries)))
        prev = digest
    assert any("the log was replaced" in p for p in audited.verify_audit())


def test_entries_added_after_the_end_are_caught(audited: Store) -> None:
    last = audited.audit_entries()[0]
    digest = audit.entry_hash(last.hash, last.seq + 1, last.at, last.actor, "view", "", "", "", "{}")
    raw(audited, "INSERT INTO audit_log (seq, at, actor, action, record_type, record_id, participant_id,"
        " detail, prev_hash, hash) VALUES (?, ?, ?, 'view', '', '', '', '{}', ?, ?)",
        last.seq + 1, last.at, last.actor, last.hash, digest)
    assert any("entries were removed from the end or the log was replaced" in p for p in audited.verify_audit())
    raw(audited, "UPDATE audit_log SET chain_end = 1 WHERE seq = ?", last.seq + 1)
    assert any(f"audit entry {last.seq} was the last written" in p for p in audited.verify_audit())


def test_exactly_one_entry_carries_the_end_mark(audited: Store) -> None:
    marks = audited.db.query("SELECT seq FROM audit_log WHERE chain_end = 1")
    assert marks == [(audited.audit_entries()[0].seq,)]


# --- a participant's history: linked entries, not an index (migration 0012) ---------------

def scanned_history(store: Store, participant_id: str) -> list[int]:
    """A participant's entries found the slow way, by reading the whole log."""
    return [r[0] for r in store.db.query(
        "SELECT seq FROM audit_log WHERE participant_id = ? ORDER BY seq DESC", (participant_id,))]


def test_a_participants_history_is_every_entry_about_them_newest_first(audited: Store) -> None:
    first = audited.participants.all()[0]
    other = audited.save(Participant(given_name="Other", family_name="Person"))
    audited.audit("export")  # about no participant: between their entries, in no history
    audited.save(audited.participants.get(first.id).replace(phone="07700 900009"))
    audited.save(other.replace(phone="07700 900010"))
    for pid in (first.id, other.id):
        seqs = [e.seq for e in audited.audit_entries(pid)]
        assert seqs == scanned_history(audited, pid) and len(seqs) >= 2
        assert [e.seq for e in audited.audit_entries(pid, limit=2)] == seqs[:2]
    assert audited.audit_entries("")[0].action == "export"
    assert audited.verify_audit() == []


def test_a_broken_link_in_a_participants_history_is_caught(audited: Store) -> None:
    pid = audited.participants.all()[0].id
    newest, older = scanned_history(audited, pid)[:2]
    # Skipping an entry hides it from the participant's history.
    raw(audited, "UPDATE audit_log SET participant_prev = participant_prev - 1 WHERE seq = ?", newest)
    assert older not in [e.seq for e in audited.audit_entries(pid)]
    assert any(f"audit entry {newest} is not linked" in p for p in audited.verify_audit())


def test_a_history_pointed_at_an_older_entry_is_caught(audited: Store) -> None:
    pid = audited.participants.all()[0].id
    newest, older = scanned_history(audited, pid)[:2]
    raw(audited, "UPDATE participant_activity SET last_audit = ? WHERE participant_id = ?", older, pid)
    assert newest not in [e.seq for e in audited.audit_entries(pid)]
    assert any("history does not end at their newest audit entry" in p for p in audited.verify_audit())


def test_a_link_that_points_forward_cannot_loop(audited: Store) -> None:
    pid = audited.participants.all()[0].id
    newest = scanned_history(audited, pid)[0]
    raw(audited, "UPDATE audit_log SET participant_prev = seq WHERE seq = ?", newest)
    assert [e.seq for e in audited.audit_entries(pid)] == [newest]
    assert audited.verify_audit() != []


def test_reading_a_participants_history_never_scans_the_log(audited: Store) -> None:
    pid = audited.participants.all()[0].id
    plan = " | ".join(str(r[-1]) for r in audited.db.query(
        "EXPLAIN QUERY PLAN " + audit._HISTORY, {"pid": pid, "limit": 10}))
    assert "SCAN a" not in plan and "SCAN audit_log" not in plan, plan
    assert "SCAN participant_activity" not in plan, plan
