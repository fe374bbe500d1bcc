"""Helpers for the participant-record GUI tests (``test_record_*``).

Real records on the real encrypted store: a cheap-KDF profile on ``working_well_ses``, a
synthetic participant (nothing here is a real person), and a stand-in for the window glue
that saves what a widget emits and renders it again, as the window does.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, Sequence
from datetime import date
from pathlib import Path

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from keyworker_app.paths import app_paths  # noqa: E402
from keyworker_app.profile import Profile  # noqa: E402
from keyworker_app.programmes import load_programme  # noqa: E402
from keyworker_app.records import Participant, ParticipantStatus, Record  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from support import PASSPHRASE, fast_kdf, write_org_config  # noqa: E402
from ui.record import RecordState, SentItem  # noqa: E402

PROGRAMME = "working_well_ses"
KEYWORKER = "KW-1"
TODAY = date(2025, 5, 14)


@pytest.fixture
def record_store(tmp_path: Path) -> Iterator[Store]:
    """An unlocked store on a fresh encrypted profile."""
    paths = app_paths(tmp_path / "record-profile")
    write_org_config(paths)
    store, _ = Profile.at(paths).create(KEYWORKER, PROGRAMME, PASSPHRASE, kdf=fast_kdf())
    try:
        yield store
    finally:
        store.close()


def synthetic_participant(**fields: object) -> Participant:
    values: dict[str, object] = dict(
        participant_ref="WW-000042", programme=PROGRAMME, strand="ips", keyworker_id=KEYWORKER,
        given_name="Testy", family_name="Example", date_of_birth=date(1985, 3, 9),
        postcode="M1 1AE", ni_number="AB123456C", gender="female", status=ParticipantStatus.ACTIVE)
    values.update(fields)
    return Participant(**values)  # type: ignore[arg-type]


def save_all(store: Store, records: Sequence[Record]) -> list[Record]:
    """Save emitted records in order, as the window's operations layer does."""
    return [store.save(record) for record in records]


def record_state(store: Store, participant_id: str, sharing: Sequence[SentItem] = ()) -> RecordState:
    """The RecordState the window builds from the store."""
    return RecordState(
        participant_file=store.participant_file(participant_id, audit_view=False),
        programme=load_programme(PROGRAMME), keyworker_id=KEYWORKER, today=TODAY,
        drafts=tuple(store.drafts()), sharing_history=tuple(sharing),
        audit_entries=tuple(store.audit_entries(participant_id)))


def draw_stroke(qtbot: object, widget: QWidget, points: Sequence[tuple[int, int]]) -> None:
    """Drag the mouse through ``points`` on ``widget`` with the left button held."""
    first = QPoint(*points[0])
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=first)  # type: ignore[attr-defined]
    for x, y in points[1:]:
        qtbot.mouseMove(widget, QPoint(x, y))  # type: ignore[attr-defined]
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(*points[-1]))  # type: ignore[attr-defined]
