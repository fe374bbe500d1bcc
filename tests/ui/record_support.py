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
from typing import Any

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402
from PySide6.QtCore import QPoint, Qt  # noqa: E402
from PySide6.QtWidgets import QWidget  # noqa: E402

from keyworker_app.paths import app_paths  # noqa: E402
from keyworker_app.profile import Profile  # noqa: E402
from keyworker_app.programmes import load_programme  # noqa: E402
from keyworker_app.records import RECORD_TYPE_BY_NAME, Participant, ParticipantStatus, Record  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from support import PASSPHRASE, fast_kdf, write_org_config  # noqa: E402
from ui.record import ParticipantRecordView, RecordState, SentItem  # noqa: E402

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


def record_state(store: Store, participant_id: str, sharing: Sequence[SentItem] = (),
                 programme: str = PROGRAMME) -> RecordState:
    """The RecordState the window builds from the store."""
    return RecordState(
        participant_file=store.participant_file(participant_id, audit_view=False),
        programme=load_programme(programme), keyworker_id=KEYWORKER, today=TODAY,
        drafts=tuple(store.drafts()), sharing_history=tuple(sharing),
        audit_entries=tuple(store.audit_entries(participant_id)))


class Glue:
    """What the window does: save or delete what the record view emits, then render again
    from the store."""

    def __init__(self, qtbot: Any, store: Store, participant_id: str, sharing: Sequence[SentItem] = (),
                 programme: str = PROGRAMME) -> None:
        self.store = store
        self.participant_id = participant_id
        self.sharing = sharing
        self.programme = programme
        self.view = ParticipantRecordView()
        qtbot.addWidget(self.view)
        self.view.resize(1200, 900)
        self.view.show()
        self.deleted: list[tuple[str, str, str]] = []
        self.view.sig_save.connect(self.save)
        self.view.sig_save_form.connect(self.save_form)
        self.view.sig_delete.connect(self.delete)
        self.view.sig_save_draft.connect(lambda k, f, p, a: (store.save_draft(k, f, p, a), self.render()))
        self.view.sig_discard_draft.connect(lambda k: store.discard_draft(k))
        self.render()

    def render(self) -> None:
        self.view.render(record_state(self.store, self.participant_id, self.sharing, self.programme))

    def save(self, records: Sequence[Record]) -> None:
        save_all(self.store, records)
        self.render()

    def save_form(self, records: Sequence[Record], draft_key: str) -> None:
        save_all(self.store, records)  # raises (and keeps the draft) if the save fails
        if draft_key:
            self.store.discard_draft(draft_key)
        self.render()

    def delete(self, record_type: str, record_id: str, reason: str) -> None:
        self.deleted.append((record_type, record_id, reason))
        self.store.repo(RECORD_TYPE_BY_NAME[record_type]).delete(record_id, reason)
        self.render()

    def stored(self, record_type: str) -> list[Record]:
        """The participant's records of one type, as the store holds them now."""
        records = self.store.participant_file(self.participant_id, audit_view=False).records
        return list(records.get(record_type, []))


def draw_stroke(qtbot: object, widget: QWidget, points: Sequence[tuple[int, int]]) -> None:
    """Drag the mouse through ``points`` on ``widget`` with the left button held."""
    first = QPoint(*points[0])
    qtbot.mousePress(widget, Qt.MouseButton.LeftButton, pos=first)  # type: ignore[attr-defined]
    for x, y in points[1:]:
        qtbot.mouseMove(widget, QPoint(x, y))  # type: ignore[attr-defined]
    qtbot.mouseRelease(widget, Qt.MouseButton.LeftButton, pos=QPoint(*points[-1]))  # type: ignore[attr-defined]


def type_answers(qtbot: Any, form: Any, typed: dict[str, str]) -> None:
    """Type each answer into its question on a FormView, key by key, as a keyworker would."""
    for question_id, text in typed.items():
        qtbot.keyClicks(form.editor(question_id), text)
