"""The repository interface every record store honours, and an in-memory implementation.

The SQLCipher repositories (``store.store``) are the real ones. ``MemoryRepository`` exists
so that code above the store can be tested in isolation; both pass the same contract test
(``tests/test_repository_contract.py``), which is what keeps the fake honest.
"""

from __future__ import annotations

import dataclasses
from typing import Generic, Protocol, TypeVar

from .errors import RecordNotFound, VersionConflict
from .records import Record, utcnow

R = TypeVar("R", bound=Record)


class RecordRepository(Protocol[R]):
    """Records of one type. ``save`` bumps the version; a stale version is a conflict."""

    def get(self, record_id: str) -> R: ...
    def find(self, record_id: str) -> R | None: ...
    def for_participant(self, participant_id: str) -> list[R]:
        """The participant's records of this type, oldest first (in the order first saved)."""
    def save(self, record: R) -> R: ...
    def delete(self, record_id: str, reason: str) -> None: ...
    def count(self) -> int: ...


def next_version(record: R, current_version: int | None) -> R:
    """The record as it will be stored: version bumped, timestamps set.

    Raises :class:`VersionConflict` when ``record`` was read before the stored one changed.
    """
    now = utcnow()
    if current_version is None:
        if record.version != 0:
            raise VersionConflict()
        return dataclasses.replace(record, version=1, created_at=now, updated_at=now)
    if record.version != current_version:
        raise VersionConflict()
    return dataclasses.replace(record, version=current_version + 1, updated_at=now)


def participant_of(record: Record) -> str:
    return str(getattr(record, "participant_id", "") or record.id)


class MemoryRepository(Generic[R]):
    """A dict-backed repository with the same rules as the SQLCipher one (tests only)."""

    def __init__(self) -> None:
        self._records: dict[str, R] = {}
        self._tombstones: set[str] = set()

    def get(self, record_id: str) -> R:
        record = self.find(record_id)
        if record is None:
            raise RecordNotFound()
        return record

    def find(self, record_id: str) -> R | None:
        return self._records.get(record_id)

    def for_participant(self, participant_id: str) -> list[R]:
        # Insertion order, as the SQL repository's rowid order gives.
        return [r for r in self._records.values() if participant_of(r) == participant_id]

    def save(self, record: R) -> R:
        if record.id in self._tombstones:
            raise RecordNotFound()
        current = self._records.get(record.id)
        stored = next_version(record, None if current is None else current.version)
        self._records[record.id] = stored
        return stored

    def delete(self, record_id: str, reason: str) -> None:
        if self._records.pop(record_id, None) is None:
            raise RecordNotFound()
        self._tombstones.add(record_id)

    def count(self) -> int:
        return len(self._records)
