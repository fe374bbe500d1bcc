"""The compiled projection (sync.projection) gives exactly what the core's project() gives.

The projector reads most records' stored rows and projects them with field getters worked
out once per profile, instead of decoding each record and calling
``keyworker_app.sharing.project``. Nothing else may leave the laptop, so this checks, on
every outbox row of a mixed synthetic caseload (every programme, restricted and objecting
participants, refused and withdrawn consents), that each item carries the same fields, in
the same order, with the same values, field names and Article 9 basis as the core's
Share, and that every hold has the core's reason.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from sync_testkit import TODAY, Laptop

from keyworker_app.demo import save_caseload
from keyworker_app.records import RECORD_TYPE_BY_NAME, CaseNote, Confidentiality, Consent, Participant
from keyworker_app.sharing import (
    IDENTIFIER_FIELDS, HoldReason, Share, applicable_profiles, load_sharing_profiles, project,
)
from keyworker_app.store.store import Store
from keyworker_app.synthetic import generate_caseload
from sync.projection import Projector


def _core_plan(store: Store, row: Any) -> tuple[dict[str, Any], dict[str, str]] | None:
    """(items by key, hold reasons by key) as project() decides them, or None if superseded."""
    kind = RECORD_TYPE_BY_NAME[row.record_type]
    record = store.repo(kind).find(row.record_id)
    if record is None or record.version != row.version:
        return None
    participant = record if isinstance(record, Participant) else store.participants.find(row.participant_id)
    assert participant is not None
    consents = store.repo(Consent).for_participant(participant.id)
    items: dict[str, Any] = {}
    held: dict[str, str] = {}
    for profile in applicable_profiles(participant.programme, participant.strand, load_sharing_profiles()):
        if profile.one_off:
            continue
        key = f"{record.id}:{record.version}:{profile.id}"
        outcome = project(record, profile, participant, consents, TODAY)
        if isinstance(outcome, Share):
            names = tuple(n for n in outcome.fields if n not in IDENTIFIER_FIELDS)
            special = profile.article_9 if set(names) & type(record).special_category else None
            items[key] = (list(outcome.fields.items()), names, special, profile.article_6)
        elif outcome.reason is not HoldReason.NOT_IN_PROFILE:
            held[key] = outcome.reason.value
    return items, held


def _compare_every_row(store: Store) -> int:
    rows = store.outbox_pending(limit=100_000)
    plans = Projector(store, today=TODAY).plan_many(rows)
    compared = 0
    for row, plan in zip(rows, plans, strict=True):
        expected = _core_plan(store, row)
        if expected is None:
            assert not plan.items and not plan.held
            continue
        items, held = expected
        # A consent row may carry a withdrawal notice instead of a copy of the consent:
        # notices are tested end to end.
        notices = {i.key for i in plan.items if i.op == "withdraw"}
        items = {key: item for key, item in items.items() if key not in notices}
        got = {i.key: (list(i.fields.items()), i.field_names, i.article_9, i.article_6)
               for i in plan.items if i.key not in notices}
        assert got == items, row.record_type
        assert {h.key: h.reason.value for h in plan.held} == held, row.record_type
        compared += len(items) + len(held)
    return compared


@pytest.fixture
def store(tmp_path: Path) -> Store:
    laptop = Laptop(tmp_path / "laptop")
    opened = laptop.open()
    yield opened
    if opened.db.is_open:
        opened.close()


def test_compiled_projection_matches_the_core_on_a_mixed_caseload(store: Store) -> None:
    save_caseload(store, generate_caseload(150, seed=11, keyworker_id=store.actor, today=TODAY))
    compared = _compare_every_row(store)
    assert compared > 1000
    reasons = {h.reason for p in Projector(store, today=TODAY).plan_many(store.outbox_pending(limit=100_000))
               for h in p.held}
    # The caseload exercises the gate, not just the happy path.
    assert {HoldReason.RESTRICTED, HoldReason.OBJECTED, HoldReason.CONSENT_REFUSED} <= reasons


def test_compiled_projection_matches_the_core_on_edge_values(store: Store) -> None:
    """Health Team notes, empty optional values and changed records, row by row (not bulk)."""
    save_caseload(store, generate_caseload(6, seed=3, keyworker_id=store.actor, today=TODAY))
    notes = store.repo(CaseNote).all()
    store.save(replace(notes[0], confidentiality=Confidentiality.HEALTH_TEAM))
    store.save(replace(notes[1], contact_on=None, summary=""))
    _compare_every_row(store)
    projector = Projector(store, today=TODAY)
    for row in store.outbox_pending(limit=100_000):
        if row.record_type == CaseNote.record_type and row.record_id == notes[0].id and row.version > notes[0].version:
            plan = projector.plan(row)
            assert not plan.items
            assert plan.held and {h.reason for h in plan.held} == {HoldReason.HEALTH_TEAM_CONFIDENTIAL}
            break
    else:
        pytest.fail("the Health Team note's new version is not in the outbox")


@pytest.mark.parametrize("hint, values", [
    ("datetime", ["2025-01-31T09:00:00", "2025-01-31T09:00:00.123456", "2025-01-31T09:00:00+00:00",
                  "2025-01-31T09:00:00.000000", "2025-01-31T09:00:00.000000+01:00",
                  "2025-01-31T09:00:00-00:00", "2025-01-31T09:00:00.5+05:30", "2025-01-31 09:00:00",
                  "0999-01-31T09:00:00.000001-08:00"]),
    ("date", ["2025-01-31", "0999-12-01", "20250131"]),
    ("tuple", ['["a", 1, null, {"b": [2.5]}]', "[]", "[123456789012345678901234567890, NaN]"]),
    ("mapping", ['{"a": [1, "x"], "b": {"c": null}}', "{}", '{"n": -98765432109876543210}']),
    ("enum", ["health_team", "standard"]),
    ("text", ["", "x", "é"]),
])
def test_each_quick_converter_gives_what_decoding_gives(hint: str, values: list[str]) -> None:
    from collections.abc import Mapping
    from datetime import date, datetime

    from keyworker_app.sharing import _json_ready
    from keyworker_app.store.codec import _codec_for
    from sync.projection import _json_converter

    hints: dict[str, Any] = {"datetime": datetime | None, "date": date, "tuple": tuple[Any, ...],
                             "mapping": Mapping[str, Any], "enum": Confidentiality, "text": str}
    _, decode = _codec_for(hints[hint])
    convert = _json_converter(hints[hint], decode)
    for value in values:
        assert convert(value) == _json_ready(decode(value)), value
        assert type(convert(value)) is type(_json_ready(decode(value))), value


def test_a_quick_converter_remembers_canonical_texts_only_and_within_its_bound(monkeypatch: Any) -> None:
    """Dates seen before are answered from memory; a text that is not canonical is never
    remembered, and once the bound is reached the memory starts again, answers unchanged."""
    from datetime import date

    from keyworker_app.sharing import _json_ready
    from keyworker_app.store.codec import _codec_for
    from sync import projection

    monkeypatch.setattr(projection, "_CANONICAL_SEEN", 3)
    checked: list[str] = []
    day = projection._CANONICAL_DAY

    class Counting:
        @staticmethod
        def fullmatch(text: str) -> Any:
            checked.append(text)
            return day.fullmatch(text)

    monkeypatch.setattr(projection, "_CANONICAL_DAY", Counting)
    _, decode = _codec_for(date)
    convert = projection._json_converter(date, decode)
    texts = ["2025-01-01", "2025-01-02", "20250103", "2025-01-04", "2025-01-05"]
    for _ in range(2):
        for text in texts:
            assert convert(text) == _json_ready(decode(text)), text
    assert convert("2025-01-05") == "2025-01-05"
    # First pass: each checked once; the bound (3) is met at the 5th, so the memory starts
    # again with 2025-01-05 alone. Second pass: -01 and -02 are checked and remembered,
    # the non-canonical text checked again, -04 meets the bound (the memory starts again
    # with it), so -05 is checked once more; after that it is remembered.
    assert checked == texts + ["2025-01-01", "2025-01-02", "20250103", "2025-01-04", "2025-01-05"]


def test_a_chunks_records_are_read_inside_the_reading_hook_and_projected_outside(store: Store) -> None:
    """The engine pauses its writer while plan_many reads (Projector's ``reading`` hook):
    every read of the chunk's records happens inside it, and the projecting after it."""
    import contextlib

    save_caseload(store, generate_caseload(8, seed=2, keyworker_id=store.actor, today=TODAY))
    inside = False
    reads: list[bool] = []

    @contextlib.contextmanager
    def reading() -> Any:
        nonlocal inside
        inside = True
        try:
            yield
        finally:
            inside = False

    query = store.db.query

    def watched(sql: str, params: Any = ()) -> Any:
        reads.append(inside)
        return query(sql, params)

    store.db.query = watched  # type: ignore[method-assign]
    projector = Projector(store, today=TODAY, reading=reading,
                          after_reading=lambda: reads.append(inside))
    plans = projector.plan_many(store.outbox_pending(limit=100_000))
    assert sum(len(p.items) for p in plans) > 50
    # Record reads first, all inside the hook; then the hand-over, outside it.
    assert reads.count(True) >= 3 and reads[-1] is False
    assert all(reads[:reads.index(False)])
