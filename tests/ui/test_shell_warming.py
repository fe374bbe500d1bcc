"""Warming the page cache for searching after the unlock (ui.models, CaseloadReader.warm).

Each page SQLCipher reads from the file is decrypted, so the first keystrokes after an
unlock were the slow ones. Once the first list is shown, the caseload reader reads what
searching needs, a short step at a time, whenever nobody is waiting for the store. These
tests check what it reads and that it never keeps a keystroke or an operation waiting;
never how long anything takes.
"""

from __future__ import annotations

import dataclasses
import re
import threading
from collections.abc import Iterator

import pytest
from pytestqt.qtbot import QtBot
from shell_support import participant

from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.records import Consent, ConsentStatus, EsfForm, Participant
from keyworker_app.store.store import Store
from ui import models
from ui.models import CaseloadFilter, CaseloadQuery, QtCaseloadModel, WarmWalk
from ui.operations import Operations

#: Every part the warming reads, with what its plan must search (never scan from the start).
PLANS = {
    "participants": "USING INTEGER PRIMARY KEY",
    "consent given": "USING COVERING INDEX consent_by_status",
    "signature owed": "USING COVERING INDEX esf_form_signature_owed",
    "search index": "participant_search_data USING INTEGER PRIMARY KEY",
    "name order": "USING COVERING INDEX participant_by_family_name",
}


def _seed(store: Store, count: int, **fields: object) -> list[Participant]:
    return store.repo(Participant).save_many(participant(n, **fields) for n in range(1, count + 1))


def _walk(store: Store, walk: WarmWalk, rows_per_step: int) -> list[tuple[object, ...]]:
    """The keys the reader's steps would stop at, walking ``walk`` to its end."""
    keys: list[tuple[object, ...]] = []
    key = walk.first
    while True:
        rows = store.db.query(walk.sql, (*key, rows_per_step - 1))
        if not rows:
            return keys
        key = tuple(rows[0])
        keys.append(key)


class _LoggedQuery(CaseloadQuery):
    """Notes when lists are read and when warming asks what to read, in order."""

    def __init__(self, store: Store, rows_per_step: int = 7) -> None:
        super().__init__(store.db)
        self.events: list[str] = []
        self.rows_per_step = rows_per_step

    def page(self, *args: object, **kwargs: object) -> list[models.CaseloadRow]:
        self.events.append("page")
        return super().page(*args, **kwargs)  # type: ignore[arg-type]

    def warm_walks(self) -> tuple[WarmWalk, ...]:
        self.events.append("warm")
        return tuple(dataclasses.replace(w, rows_per_step=self.rows_per_step) for w in super().warm_walks())


class _EndlessWarming(CaseloadQuery):
    """A warming step that never ends by itself: only being abandoned stops it."""

    ENDLESS = WarmWalk("endless", "WITH RECURSIVE n(i) AS (SELECT ?1 UNION ALL SELECT i + 1 FROM n)"
                                  " SELECT i FROM n WHERE i < 0 LIMIT 1 OFFSET ?2", (0,))

    def __init__(self, store: Store) -> None:
        super().__init__(store.db)
        self.started = threading.Event()

    def warm_walks(self) -> tuple[WarmWalk, ...]:
        self.started.set()   # the step is about to run
        return (self.ENDLESS,)


@pytest.fixture
def model() -> Iterator[QtCaseloadModel]:
    made = QtCaseloadModel()
    yield made
    made.shutdown()


def test_every_part_is_searched_for_in_key_order_as_the_probes_search_it(ui_store: Store) -> None:
    """Each step starts where the last stopped (an index search, not a scan from the
    start), and the flags' walks read the very index entries a row's flag probe reads."""
    walks = {w.part: w for w in models.WARM_WALKS}
    assert set(PLANS) <= set(walks)
    for part, expected in PLANS.items():
        walk = walks[part]
        plan = " | ".join(str(r[-1]) for r in ui_store.db.query(
            "EXPLAIN QUERY PLAN " + walk.sql, (*walk.first, 0)))
        assert "SEARCH" in plan and expected in plan, (part, plan)
        assert "SCAN" not in plan and "TEMP B-TREE" not in plan, (part, plan)
    query = CaseloadQuery(ui_store.db)
    where, params = query.where(CaseloadFilter(text="x"))
    probes = " | ".join(str(r[-1]) for r in ui_store.db.query(
        "EXPLAIN QUERY PLAN SELECT EXISTS (SELECT 1 FROM consent c WHERE c.status = 'given'"
        " AND c.participant_id = p.id), EXISTS (SELECT 1 FROM esf_form e WHERE e.signature_owed = 1"
        " AND e.participant_id = p.id) FROM participant p" + where, params))
    assert "consent_by_status" in probes and "esf_form_signature_owed" in probes, probes


def test_each_walk_reads_every_row_once_even_where_names_repeat(ui_store: Store) -> None:
    people = _seed(ui_store, 20, family_name="Same", given_name="Same")
    for person in people[:11]:
        ui_store.save(Consent(participant_id=person.id, sharing_profile="controller_evaluation",
                              status=ConsentStatus.GIVEN))
        ui_store.save(EsfForm(participant_id=person.id, signature_owed=True))
    walks = {w.part: w for w in models.WARM_WALKS}
    for part, rows in (("participants", 20), ("name order", 20), ("consent given", 11),
                       ("signature owed", 11)):
        keys = _walk(ui_store, walks[part], 3)
        # A key every third row, each further on than the last: nothing read twice or skipped.
        assert len(keys) == rows // 3, part
        assert keys == sorted(keys) and len(set(keys)) == len(keys), part
    blocks = ui_store.db.scalar("SELECT count(*) FROM participant_search_data")
    assert len(_walk(ui_store, walks["search index"], 3)) == blocks // 3
    assert _walk(ui_store, walks["participant count"], 3) == []    # one step, no key


def test_the_cache_is_warmed_after_the_first_list(qtbot: QtBot, ui_store: Store,
                                                 model: QtCaseloadModel) -> None:
    _seed(ui_store, 50)
    query = _LoggedQuery(ui_store, rows_per_step=7)
    with qtbot.waitSignals([model.sig_loaded, model.sig_warmed], timeout=20_000):
        model.set_query(query)
    assert model.warmed
    assert query.events[0] == "page" and "warm" in query.events   # the first list came first
    # 50 participants a step of 7 at a time, twice (rows, name order), and each other part.
    steps = model._reader.warm_steps
    assert steps >= 2 * (50 // 7 + 1) + len(models.WARM_WALKS) - 2
    # A list read afterwards is the same list: warming only read.
    with qtbot.waitSignal(model.sig_loaded):
        model.set_filter(CaseloadFilter(text="Family0001"))
    assert model.total == 1
    # Locking forgets the store: no warming for it, and no failure when it closes.
    failures: list[object] = []
    model.sig_failed.connect(failures.append)
    model.set_query(None)
    assert not model.warmed and failures == []


def test_warming_waits_for_a_quiet_moment(qtbot: QtBot, ui_store: Store, model: QtCaseloadModel,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Questions that come one after another (typing, a benchmark) are never interleaved
    with warming steps: it starts only once nothing has been asked for a while."""
    _seed(ui_store, 20)
    monkeypatch.setattr(models, "WARM_AFTER_QUIET_S", 3600.0)   # no quiet moment comes
    query = _LoggedQuery(ui_store)
    with qtbot.waitSignal(model.sig_loaded, timeout=20_000):
        model.set_query(query)
    for text in ("F", "Fa", "Fam", "Family0001"):
        with qtbot.waitSignal(model.sig_loaded, timeout=20_000):
            model.set_filter(CaseloadFilter(text=text))
    assert model._reader.warm_steps == 0 and "warm" not in query.events and not model.warmed
    monkeypatch.setattr(models, "WARM_AFTER_QUIET_S", 0.0)      # now one has
    with qtbot.waitSignal(model.sig_warmed, timeout=20_000):
        model._reader.warm(query)                               # (wakes the reader to see it)
    assert model._reader.warm_steps > 0 and model.total == 1


def test_a_keystroke_during_a_warming_step_is_answered_first(
        qtbot: QtBot, ui_store: Store, model: QtCaseloadModel) -> None:
    _seed(ui_store, 5)
    query = _EndlessWarming(ui_store)
    with qtbot.waitSignal(model.sig_loaded, timeout=20_000):
        model.set_query(query)
    qtbot.waitUntil(query.started.is_set, timeout=20_000)
    # The step never ends on its own: the search is answered only because it gives way.
    with qtbot.waitSignal(model.sig_loaded, timeout=20_000):
        model.set_filter(CaseloadFilter(text="Family0002"))
    assert model.total == 1 and not model.warmed
    query.started.clear()
    qtbot.waitUntil(query.started.is_set, timeout=20_000)   # and then warming carries on
    model.shutdown()                                        # which does not keep it running
    assert not model._reader._thread.is_alive()


def test_warming_waits_while_an_operation_has_work(qtbot: QtBot, ui_store: Store,
                                                   model: QtCaseloadModel) -> None:
    """The window holds warming while the operations thread is busy (opening a record,
    saving): an operation never queues behind a warming step, endless or not."""
    _seed(ui_store, 5)
    ops = Operations(ui_store)
    model.hold_warming_while(lambda: ops.busy)
    query = _EndlessWarming(ui_store)
    with qtbot.waitSignal(model.sig_loaded, timeout=20_000):
        model.set_query(query)
    qtbot.waitUntil(query.started.is_set, timeout=20_000)
    with qtbot.waitSignal(ops.sig_finished, timeout=20_000):
        handle = ops.run("Reading", lambda store: len(store.db.query("SELECT id FROM participant")))
    assert handle.failure is None and handle.result == 5
    assert not model.warmed
    ops.shutdown()
    model.shutdown()


def test_the_window_warms_after_the_unlock_and_holds_it_for_operations(
        qtbot: QtBot, ui_paths: AppPaths) -> None:
    from support import PASSPHRASE, fast_kdf

    from ui.window import MainWindow

    store, _ = Profile.at(ui_paths).create("KW-0001", "working_well_ses", PASSPHRASE, kdf=fast_kdf())
    try:
        _seed(store, 30)
    finally:
        store.close()
    window = MainWindow(ui_paths)
    qtbot.addWidget(window)
    window.show()
    try:
        hold = window.model._reader._hold
        assert not window.record_screen_ready and hold()   # the record screen is built first
        window.start.unlock_page.passphrase.setText(PASSPHRASE)
        with qtbot.waitSignals([window.sig_unlocked, window.model.sig_warmed], timeout=20_000):
            window.start.unlock_page.unlock_button.click()
        assert window.model.warmed and window.record_screen_ready
        with qtbot.waitSignal(window.ops.sig_finished, timeout=20_000):
            window.ops.run("Reading", lambda s: None)
            assert hold()            # an operation has work: warming waits
        assert not hold()
        window.lock()
        assert not window.model.warmed
    finally:
        window.close()


def test_no_warming_step_reads_past_its_share(ui_store: Store) -> None:
    """Each walk's SQL passes over at most the rows it is given (LIMIT 1 OFFSET n-1)."""
    for walk in models.WARM_WALKS:
        assert re.search(r"LIMIT 1 OFFSET \?\d$", walk.sql) or walk.first == (), walk.part
