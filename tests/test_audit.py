"""The audit log is a hash chain: edits, reordering, deletion and truncation are caught."""

from __future__ import annotations

import pytest

from keyworker_app.records import Participant
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
