"""The caseload model with no widget (napari style): rows, search, each filter, sort, count."""

from __future__ import annotations

import re
import threading
from datetime import date, timedelta

import pytest
from PySide6.QtCore import QModelIndex, Qt
from pytestqt.qtbot import QtBot

from shell_support import MakeParticipant, participant
from keyworker_app.records import Consent, ConsentStatus, EsfForm, Participant, ParticipantStatus
from keyworker_app.store.store import Store
from ui.models import FIRST_PAGE_SIZE, PAGE_SIZE, CaseloadFilter, CaseloadQuery, QtCaseloadModel, SortKey

TODAY = date(2025, 3, 1)


def model_for(qtbot: QtBot, store: Store) -> QtCaseloadModel:
    """A model over ``store`` once its first list has been read (on the reader's thread)."""
    model = QtCaseloadModel()
    with qtbot.waitSignal(model.sig_loaded):
        model.set_query(CaseloadQuery(store.db, today=lambda: TODAY))
    return model


def apply(qtbot: QtBot, model: QtCaseloadModel, f: CaseloadFilter) -> None:
    """Set a filter and wait for its answer, as the list does (the same filter reads nothing)."""
    if f == model.filter:
        return
    with qtbot.waitSignal(model.sig_loaded):
        model.set_filter(f)


def names(model: QtCaseloadModel) -> list[str]:
    return [model.data(model.index(r, 0)) for r in range(model.rowCount())]


def test_rows_count_and_columns(qtbot: QtBot, make_participant: MakeParticipant, ui_store: Store) -> None:
    make_participant(given_name="Amira", family_name="Khan")
    make_participant(given_name="Ben", family_name="Adams")
    model = model_for(qtbot, ui_store)
    assert model.rowCount() == 2 and model.total == 2
    assert names(model) == ["Adams, Ben", "Khan, Amira"]
    assert model.headerData(0, Qt.Orientation.Horizontal) == "Name"
    assert model.data(model.index(0, 2)) == "Active"
    assert model.data(model.index(0, 0), QtCaseloadModel.ParticipantIdRole) == model.participant_id(0)


def test_search_narrows_by_name_ni_postcode_and_ref(qtbot: QtBot, make_participant: MakeParticipant,
                                                    ui_store: Store) -> None:
    a = make_participant(given_name="Amira", family_name="Khan", ni_number="QQ123456C", postcode="M13 9PL")
    make_participant(given_name="Ben", family_name="Adams", ni_number="AB654321D", postcode="OL1 1AA")
    model = model_for(qtbot, ui_store)
    for text in ("khan", "Ami", "QQ123456C", "QQ 12 34 56 C", "M13", a.participant_ref):
        apply(qtbot, model, CaseloadFilter(text=text))
        assert names(model) == ["Khan, Amira"], text
        assert model.total == 1
    apply(qtbot, model, CaseloadFilter(text="nobody"))
    assert model.rowCount() == 0 and model.total == 0
    apply(qtbot, model, CaseloadFilter(text="  "))
    assert model.total == 2


def test_each_filter(qtbot: QtBot, make_participant: MakeParticipant, ui_store: Store) -> None:
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
    model = model_for(qtbot, ui_store)

    def only(**flags: object) -> list[str]:
        apply(qtbot, model, CaseloadFilter(**flags))  # type: ignore[arg-type]
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
        # The controller set one of Held's items aside, and an old one of Later's was resolved.
        for key, who, resolved in (("k1", held.id, None), ("k2", due.id, "2025-02-01T10:00:00Z")):
            conn.execute("INSERT INTO quarantine (idempotency_key, record_type, record_id, version,"
                         " participant_id, recipient, code, reason, quarantined_at, resolved_at)"
                         " VALUES (?, 'esf_form', 'r', 1, ?, 'controller', 'invalid', 'x',"
                         " '2025-01-01T10:00:00Z', ?)", (key, who, resolved))
    with qtbot.waitSignal(model.sig_loaded):
        model.refresh()  # what the window does when an operation reports a change
    assert "Due" not in only(unsynced=True)
    assert only(quarantined=True) == ["Held"]
    assert only(signature_owed=True, status="active") == []
    # The flags column says why a participant needs attention.
    apply(qtbot, model, CaseloadFilter(text="Held"))
    assert model.data(model.index(0, 4)) == "Consent missing, Signature owed"


def test_sort_order_in_sql(qtbot: QtBot, make_participant: MakeParticipant, ui_store: Store) -> None:
    make_participant(family_name="Brown", review_due=date(2025, 5, 1))
    make_participant(family_name="adams", review_due=None)
    make_participant(family_name="Clarke", review_due=date(2025, 4, 1))
    model = model_for(qtbot, ui_store)
    assert [n.split(",")[0] for n in names(model)] == ["adams", "Brown", "Clarke"]
    with qtbot.waitSignal(model.sig_loaded):
        model.sort(0, Qt.SortOrder.DescendingOrder)
    assert [n.split(",")[0] for n in names(model)] == ["Clarke", "Brown", "adams"]
    with qtbot.waitSignal(model.sig_loaded):
        model.sort(3, Qt.SortOrder.AscendingOrder)
    assert model.filter.sort is SortKey.REVIEW_DUE
    assert [n.split(",")[0] for n in names(model)] == ["Clarke", "Brown", "adams"]  # no date goes last
    model.sort(4, Qt.SortOrder.AscendingOrder)  # "Needs attention" is not sortable: unchanged
    assert model.filter.sort is SortKey.REVIEW_DUE


def test_paging_fetches_windows(qtbot: QtBot, ui_store: Store) -> None:

    ui_store.repo(Participant).save_many(participant(n) for n in range(PAGE_SIZE * 2 + 5))
    model = model_for(qtbot, ui_store)
    assert model.total == PAGE_SIZE * 2 + 5
    # A new list reads a short first window (what a window shows), then PAGE_SIZE at a time.
    assert model.rowCount() == FIRST_PAGE_SIZE and model.canFetchMore(QModelIndex())
    with qtbot.waitSignal(model.rowsInserted):
        model.fetchMore(QModelIndex())
        assert not model.canFetchMore(QModelIndex())  # one window at a time
    assert model.rowCount() == FIRST_PAGE_SIZE + PAGE_SIZE
    with qtbot.waitSignal(model.rowsInserted):
        model.fetchMore(QModelIndex())
    assert model.rowCount() == model.total and not model.canFetchMore(QModelIndex())
    # The pages join up in order, with nobody missing or repeated.
    refs = [model.row(i).participant_ref for i in range(model.rowCount())]
    assert len(set(refs)) == len(refs)
    family = [model.row(i).name for i in range(model.rowCount())]
    assert family == sorted(family, key=str.lower)
    # Refresh keeps what was scrolled to.
    with qtbot.waitSignal(model.sig_loaded):
        model.refresh()
    assert model.rowCount() == model.total


class _HeldQuery(CaseloadQuery):
    """A caseload query whose searches for ``held_text`` wait until released (a slow search)."""

    def __init__(self, store: Store, held_text: str) -> None:
        super().__init__(store.db, today=lambda: TODAY)
        self.held_text = held_text
        self.release = threading.Event()
        self.threads: set[str] = set()

    def count(self, f: CaseloadFilter) -> int:
        self.threads.add(threading.current_thread().name)
        if f.text == self.held_text:
            self.release.wait(10)
        return super().count(f)


def test_the_sql_runs_off_the_gui_thread_and_stale_answers_are_dropped(
        qtbot: QtBot, make_participant: MakeParticipant, ui_store: Store) -> None:
    make_participant(given_name="Amira", family_name="Khan")
    make_participant(given_name="Ahmed", family_name="Ali")
    query = _HeldQuery(ui_store, held_text="a")
    model = QtCaseloadModel()
    with qtbot.waitSignal(model.sig_loaded):
        model.set_query(query)
    loaded: list[int] = []
    model.sig_loaded.connect(lambda: loaded.append(model.total))
    busy: list[bool] = []
    model.sig_busy.connect(busy.append)
    model.set_filter(CaseloadFilter(text="a"))        # slow: held on the reader thread
    assert model.loading and model.total == 2         # the old list stays until the answer
    model.set_filter(CaseloadFilter(text="ahmed"))    # typed before "a" came back
    with qtbot.waitSignal(model.sig_loaded):
        query.release.set()
    assert names(model) == ["Ali, Ahmed"] and model.total == 1
    assert loaded == [1]                              # the answer for "a" never reached the list
    assert busy == [True, False]
    assert threading.current_thread().name not in query.threads
    assert query.threads == {"keyworker-caseload"}
    model.shutdown()


def test_a_slow_search_says_searching(qtbot: QtBot, make_participant: MakeParticipant,
                                      ui_store: Store) -> None:
    from ui.caseload import CaseloadView

    make_participant(given_name="Amira", family_name="Khan")
    query = _HeldQuery(ui_store, held_text="khan")
    model = QtCaseloadModel()
    with qtbot.waitSignal(model.sig_loaded):
        model.set_query(query)
    view = CaseloadView(debounce_ms=0)
    qtbot.addWidget(view)
    view.set_model(model)
    view.sig_filter_changed.connect(model.set_filter)
    view.search.setText("khan")
    view.search_now()
    qtbot.waitUntil(lambda: not view.searching.isHidden())  # after SEARCHING_SHOWN_AFTER_MS
    with qtbot.waitSignal(model.sig_loaded):
        query.release.set()
    assert view.searching.isHidden() and view.count.text() == "1 participant matches"
    model.shutdown()


def test_each_flag_is_answered_from_an_index(ui_store: Store) -> None:
    """At 100,000 participants a flag must not scan the outbox, consents, forms or quarantine."""
    query = CaseloadQuery(ui_store.db, today=lambda: TODAY)
    for flag in ("consent_missing", "signature_owed", "unsynced", "quarantined"):
        where, params = query.where(CaseloadFilter(**{flag: True}))
        plan = " | ".join(str(r[-1]) for r in ui_store.db.query(
            f"EXPLAIN QUERY PLAN SELECT count(*) FROM participant p{where}", params))
        # Only the participant list itself is walked; every other table is searched.
        assert not re.search(r"SCAN (c|e|pp|q|outbox|consent|esf_form|quarantine|participant_pending)\b",
                             plan), (flag, plan)
        assert "INDEX" in plan or "PRIMARY KEY" in plan, (flag, plan)


# --- first rows before the count, plans, abandoned reads -----------------------------------

def _many(ui_store: Store, count: int = PAGE_SIZE * 2 + 5) -> int:
    ui_store.repo(Participant).save_many(participant(n) for n in range(count))
    return count


def test_a_long_filtered_list_shows_its_rows_then_its_count(
        qtbot: QtBot, ui_store: Store, monkeypatch: object) -> None:
    from ui import caseload, models
    monkeypatch.setattr(models, "FIRST_ROWS_BUDGET_S", 60.0)  # type: ignore[attr-defined]
    count = _many(ui_store)
    model = model_for(qtbot, ui_store)
    view = caseload.CaseloadView(debounce_ms=0)
    qtbot.addWidget(view)
    view.set_model(model)
    totals: list[int] = []
    texts: list[str] = []
    model.sig_total_changed.connect(lambda total: (totals.append(total), texts.append(view.count.text())))
    view.status.setCurrentIndex(view.status.findData("active"))  # everyone: a long filtered list
    with qtbot.waitSignal(model.sig_loaded):
        model.set_filter(view.current_filter())
    assert model.rowCount() == FIRST_PAGE_SIZE
    qtbot.waitUntil(lambda: model.total == count)
    # The rows came first, "Counting…" until the count arrived, then the count.
    assert totals == [-1, count]
    assert texts == ["Counting…", f"{count:,} participants match"]
    assert not model.counting
    # Scrolling fetches the next windows, and the pages join up with nobody repeated.
    while model.canFetchMore(QModelIndex()):
        with qtbot.waitSignal(model.rowsInserted):
            model.fetchMore(QModelIndex())
    refs = [model.row(i).participant_ref for i in range(model.rowCount())]
    assert len(refs) == count and len(set(refs)) == count
    model.shutdown()


def test_before_the_count_comes_fetch_more_still_loads_the_next_window(
        qtbot: QtBot, ui_store: Store, monkeypatch: object) -> None:
    from ui import models
    monkeypatch.setattr(models, "FIRST_ROWS_BUDGET_S", 60.0)  # type: ignore[attr-defined]
    count = _many(ui_store)

    class SlowCount(CaseloadQuery):
        """Counting a filtered list waits until released: the count comes late."""
        release = threading.Event()

        def count(self, f: CaseloadFilter) -> int:
            if f.status:
                self.release.wait(10)
            return super().count(f)

    query = SlowCount(ui_store.db, today=lambda: TODAY)
    model = QtCaseloadModel()
    with qtbot.waitSignal(model.sig_loaded):
        model.set_query(query)
    with qtbot.waitSignal(model.sig_loaded):
        model.set_filter(CaseloadFilter(status="active"))
    assert model.counting and model.total == -1 and model.rowCount() == FIRST_PAGE_SIZE
    assert model.canFetchMore(QModelIndex())  # a full window: there may be more
    query.release.set()  # the count may now land before or after the next window
    with qtbot.waitSignal(model.rowsInserted):
        model.fetchMore(QModelIndex())
    assert model.rowCount() == FIRST_PAGE_SIZE + PAGE_SIZE
    qtbot.waitUntil(lambda: model.total == count)
    model.shutdown()


def test_a_slow_filtered_list_is_counted_first(qtbot: QtBot, ui_store: Store, monkeypatch: object) -> None:
    """Rows that take too long (the few matches scattered through a big caseload) are
    abandoned; the list is counted first and read knowing the count: one answer, no wait."""
    from ui import models
    monkeypatch.setattr(models, "FIRST_ROWS_BUDGET_S", 0.0)  # type: ignore[attr-defined]
    monkeypatch.setattr(models, "CHECK_EVERY_STEPS", 1)  # type: ignore[attr-defined]
    count = _many(ui_store)
    query = CaseloadQuery(ui_store.db, today=lambda: TODAY)
    first = query.first_page(CaseloadFilter(status="active"))
    assert first.total == count and len(first.rows) == FIRST_PAGE_SIZE
    nobody = query.first_page(CaseloadFilter(quarantined=True))
    assert nobody.total == 0 and nobody.rows == ()
    # The budget only ever applied to that read: the connection works as before.
    assert query.participant_count() == count


def test_a_read_overtaken_by_a_newer_one_is_abandoned(ui_store: Store, monkeypatch: object) -> None:
    from ui import models
    monkeypatch.setattr(models, "CHECK_EVERY_STEPS", 1)  # type: ignore[attr-defined]
    _many(ui_store, 50)
    query = CaseloadQuery(ui_store.db, today=lambda: TODAY)
    with pytest.raises(models.StaleRead):
        query.first_page(CaseloadFilter(text="Family"), stale=lambda: True)
    with pytest.raises(models.StaleRead):
        query.first_page(CaseloadFilter(status="active"), stale=lambda: True)
    # A real fault is never mistaken for an abandoned read.
    with pytest.raises(models.DatabaseError), models.abandoned_when(ui_store.db, lambda: False):
        ui_store.db.query("SELECT * FROM no_such_table")
    assert query.first_page(CaseloadFilter(text="Family")).total == 50


def test_a_search_matching_everyone_lists_everyone(qtbot: QtBot, ui_store: Store) -> None:
    """Every reference starts "WW-": "w" filters nothing, and reads the list unfiltered."""
    count = _many(ui_store)
    query = CaseloadQuery(ui_store.db, today=lambda: TODAY)
    everyone = query.first_page(CaseloadFilter())
    searched = query.first_page(CaseloadFilter(text="w"))
    assert searched.total == everyone.total == count == searched.matches
    assert searched.rows == everyone.rows
    fewer = query.first_page(CaseloadFilter(text="Given1"))  # Given1, Given10…, Given100…
    assert fewer.total == fewer.matches < count
    assert all(r.name.split(", ")[1].startswith("Given1") for r in fewer.rows)
