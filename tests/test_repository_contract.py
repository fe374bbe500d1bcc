"""One contract, two implementations: the SQLCipher repository and the in-memory one."""

from __future__ import annotations

from typing import Any, Iterator

import pytest

from keyworker_app.errors import RecordNotFound, VersionConflict
from keyworker_app.records import Barrier, Participant
from keyworker_app.repositories import MemoryRepository, RecordRepository
from keyworker_app.store.store import Store


@pytest.fixture(params=["sqlcipher", "memory"])
def barriers(request: pytest.FixtureRequest, store: Store) -> Iterator[tuple[RecordRepository[Any], str]]:
    pid = store.save(Participant(given_name="Contract", family_name="Test")).id
    if request.param == "sqlcipher":
        yield store.repo(Barrier), pid
    else:
        yield MemoryRepository[Barrier](), pid


def test_save_assigns_version_one_then_bumps(barriers: tuple[RecordRepository[Any], str]) -> None:
    repo, pid = barriers
    b = repo.save(Barrier(participant_id=pid, category="transport", severity=4))
    assert b.version == 1 and repo.get(b.id).severity == 4
    b2 = repo.save(b.replace(severity=2))
    assert b2.version == 2 and repo.get(b.id).severity == 2 and repo.count() == 1


def test_stale_save_conflicts(barriers: tuple[RecordRepository[Any], str]) -> None:
    repo, pid = barriers
    b = repo.save(Barrier(participant_id=pid, category="housing"))
    repo.save(b.replace(severity=1))
    with pytest.raises(VersionConflict):
        repo.save(b.replace(severity=5))


def test_missing_and_deleted(barriers: tuple[RecordRepository[Any], str]) -> None:
    repo, pid = barriers
    assert repo.find("no-such-id") is None
    with pytest.raises(RecordNotFound):
        repo.get("no-such-id")
    b = repo.save(Barrier(participant_id=pid, category="debt"))
    repo.delete(b.id, reason="duplicate")
    assert repo.find(b.id) is None and repo.count() == 0
    with pytest.raises(RecordNotFound):
        repo.save(b)
    with pytest.raises(RecordNotFound):
        repo.delete(b.id, reason="again")


def test_for_participant_lists_only_theirs(barriers: tuple[RecordRepository[Any], str]) -> None:
    repo, pid = barriers
    mine = [repo.save(Barrier(participant_id=pid, category=c)).id for c in ("childcare", "skills")]
    assert [b.id for b in repo.for_participant(pid)] == mine
    assert repo.for_participant("someone-else") == []
