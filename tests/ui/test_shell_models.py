"""The caseload model with no widget (napari style): rows, search, each filter, sort, count."""

from __future__ import annotations

from datetime import date, timedelta

from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from shell_support import MakeParticipant, participant
from keyworker_app.records import Consent, ConsentStatus, EsfForm, Participant, ParticipantStatus
from keyworker_app.store.store import Store
from ui.models import PAGE_SIZE, CaseloadFilter, CaseloadQuery, QtCaseloadModel, SortKey

TODAY = date(2025, 3, 1)


def model_for(store: Store) -> QtCaseloadModel:
    return QtCaseloadModel(CaseloadQuery(store.db, today=lambda: TODAY))


def names(model: QtCaseloadModel) -> list[str]:
    return [model.data(model.index(r, 0)) for r in range(model.rowCount())]


def test_rows_count_and_columns(qtbot: QtBot, make_participant: MakeParticipant, ui_store: Store) -> None:
    make_participant(given_name="Amira", family_name="Khan")
    make_participant(given_name="Ben", family_name="Adams")
    model = model_for(ui_store)
    assert model.rowCount() == 2 and model.total == 2
    assert names(model) == ["Adams, Ben", "Khan, Amira"]
    assert model.headerData(0, Qt.Orientation.Horizontal) == "Name"
    assert model.data(model.index(0, 2)) == "Active"
    assert model.data(model.index(0, 0), QtCaseloadModel.ParticipantIdRole) == model.participant_id(0)


def test_search_narrows_by_name_ni_postcode_and_ref(make_participant: MakeParticipant, ui_store: Store) -> None:
    a = make_participant(given_name="Amira", family_name="Khan", ni_number="QQ123456C", postcode="M13 9PL")
    make_participant(given_name="Ben", family_name="Adams", ni_number="AB654321D", postcode="OL1 1AA")
    model = model_for(ui_store)
    for text in ("khan", "Ami", "QQ123456C", "QQ 12 34 56 C", "M13", a.participant_ref):
        model.set_filter(CaseloadFilter(text=text))
        assert names(model) == ["Khan, Amira"], text
        assert model.total == 1
    model.set_filter(CaseloadFilter(text="nobody"))
    assert model.rowCount() == 0 and model.total == 0
    model.set_filter(CaseloadFilter(text="  "))
    assert model.total == 2


def test_each_filter(make_participant: MakeParticipant, ui_store: Store) -> None:
    due = make_participant(family_name="Due", review_due=TODAY + timedelta(days=3))
    make_participant(family_name="Later", review_due=TODAY + timedelta(days=60))
    held = make_participant(family_name="Held", status=ParticipantStatus.ON_HOLD, programme="workwell")
    consented = make_participant(family_name="Consented")
    ui_store.save(Consent(participant_id=consented.id, sharing_profile="controller_evaluation",
                          status=ConsentStatus.GIVEN))
    ui_store.save(Consent(participant_id=due.id, sharing_profile="controller_evaluation",
                          status=ConsentStatus.WITHDRAWN))
    ui_store.save(EsfForm(participant_id=held.id, signature_owed=True))
    ui_store.save(EsfForm(participant_id=consented.id, signature_owed=False))
    model = model_for(ui_store)

    def only(**flags: object) -> list[str]:
        model.set_filter(CaseloadFilter(**flags))  # type: ignore[arg-type]
        return [n.split(",")[0] for n in names(model)]

    assert only(review_due=True) == ["Due"]
    assert only(status="on_hold") == ["Held"]
    assert only(programme="workwell") == ["Held"]
    assert only(consent_missing=True) == ["Due", "Held", "Later"]
    assert only(signature_owed=True) == ["Held"]
    # Everyone was saved, so everyone has changes waiting; marking one synced drops them.
    assert len(only(unsynced=True)) == 4
    with ui_store.db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'done' WHERE participant_id = ?", (due.id,))
        conn.execute("UPDATE outbox SET state = 'quarantined' WHERE participant_id = ? AND record_type = 'esf_form'",
                     (held.id,))
    model.refresh()  # what the window does when an operation reports a change
    assert "Due" not in only(unsynced=True)
    assert only(quarantined=True) == ["Held"]
    assert only(signature_owed=True, status="active") == []
    # The flags column says why a participant needs attention.
    model.set_filter(CaseloadFilter(text="Held"))
    assert model.data(model.index(0, 4)) == "Consent missing, Signature owed"


def test_sort_order_in_sql(make_participant: MakeParticipant, ui_store: Store) -> None:
    make_participant(family_name="Brown", review_due=date(2025, 5, 1))
    make_participant(family_name="adams", review_due=None)
    make_participant(family_name="Clarke", review_due=date(2025, 4, 1))
    model = model_for(ui_store)
    assert [n.split(",")[0] for n in names(model)] == ["adams", "Brown", "Clarke"]
    model.sort(0, Qt.SortOrder.DescendingOrder)
    assert [n.split(",")[0] for n in names(model)] == ["Clarke", "Brown", "adams"]
    model.sort(3, Qt.SortOrder.AscendingOrder)
    assert model.filter.sort is SortKey.REVIEW_DUE
    assert [n.split(",")[0] for n in names(model)] == ["Clarke", "Brown", "adams"]  # no date goes last
    model.sort(4, Qt.SortOrder.AscendingOrder)  # "Needs attention" is not sortable: unchanged
    assert model.filter.sort is SortKey.REVIEW_DUE


def test_paging_fetches_windows(qtbot: QtBot, ui_store: Store) -> None:

    ui_store.repo(Participant).save_many(participant(n) for n in range(PAGE_SIZE * 2 + 5))
    model = model_for(ui_store)
    assert model.total == PAGE_SIZE * 2 + 5
    assert model.rowCount() == PAGE_SIZE and model.canFetchMore(QModelIndex())
    with qtbot.waitSignal(model.rowsInserted):
        model.fetchMore(QModelIndex())
    model.fetchMore(QModelIndex())
    assert model.rowCount() == model.total and not model.canFetchMore(QModelIndex())
    # The pages join up in order, with nobody missing or repeated.
    refs = [model.row(i).participant_ref for i in range(model.rowCount())]
    assert len(set(refs)) == len(refs)
    family = [model.row(i).name for i in range(model.rowCount())]
    assert family == sorted(family, key=str.lower)
    # Refresh keeps what was scrolled to.
    model.refresh()
    assert model.rowCount() == model.total
