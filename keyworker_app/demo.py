"""Saving a generated synthetic caseload into a store (the demo command, tests, benchmarks)."""

from __future__ import annotations

import dataclasses
from collections import defaultdict
from typing import Any, Iterable

from .records import Participant, Record
from .store.store import Store


def case_records(case: Any) -> list[Record]:
    """Every record in a case file, participant first, in field order.

    Works from the dataclass's fields so a new kind of record in the generator is saved
    without a change here.
    """
    found: list[Record] = []
    for f in dataclasses.fields(case):
        value = getattr(case, f.name)
        items = value if isinstance(value, (list, tuple)) else [value]
        found.extend(item for item in items if isinstance(item, Record))
    found.sort(key=lambda r: not isinstance(r, Participant))
    return found


def save_caseload(store: Store, cases: Iterable[Any], batch: int = 500) -> int:
    """Save case files in transactions of ``batch`` participants; returns how many."""
    count = 0
    pending: list[Any] = []

    def flush() -> None:
        with store.db.transaction():
            by_type: dict[type[Record], list[Record]] = defaultdict(list)
            for case in pending:
                for record in case_records(case):
                    by_type[type(record)].append(record)
            store.repo(Participant).save_many(by_type.pop(Participant, []))  # type: ignore[arg-type]
            for record_type, records in by_type.items():
                store.repo(record_type).save_many(records)
        pending.clear()

    for case in cases:
        pending.append(case)
        count += 1
        if len(pending) >= batch:
            flush()
    if pending:
        flush()
    return count
