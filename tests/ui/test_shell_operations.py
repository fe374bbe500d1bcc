"""The operations layer: writes run off the GUI thread and report what changed."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest
from PySide6.QtCore import QTimer
from pytestqt.qtbot import QtBot

from keyworker_app.errors import VersionConflict
from keyworker_app.records import Participant
from keyworker_app.store.store import Store
from shell_support import participant
from ui.operations import OpChanges, OpFailure, Operations


@pytest.fixture
def ops(ui_store: Store) -> Iterator[Operations]:
    operations = Operations(ui_store)
    yield operations
    operations.set_store(None)  # the fixture closes the store itself
    operations.shutdown()


def test_a_slow_write_does_not_block_the_gui_thread(qtbot: QtBot, ops: Operations) -> None:
    release = threading.Event()
    gui_thread = threading.get_ident()
    ran_on: list[int] = []
    ticks: list[int] = []
    heartbeat = QTimer()
    heartbeat.setInterval(5)
    heartbeat.timeout.connect(lambda: ticks.append(1))
    heartbeat.start()

    def slow_save(store: Store) -> Participant:
        ran_on.append(threading.get_ident())
        release.wait(30)  # held until the GUI thread has shown it keeps going
        return store.save(participant(1))

    with qtbot.waitSignal(ops.sig_changed, timeout=30_000) as changed:
        handle = ops.run("Saving", slow_save, OpChanges.for_records([participant(1)]))
        assert ops.busy
        # The event loop keeps turning while the write is held: the heartbeat ticks.
        qtbot.waitUntil(lambda: len(ticks) >= 5, timeout=10_000)
        assert not handle.finished
        release.set()
    heartbeat.stop()
    assert ran_on and ran_on[0] != gui_thread
    report = changed.args[0]
    assert isinstance(report, OpChanges) and report.touches("participant") and report.outbox
    assert handle.result.version == 1 and not ops.busy


def test_failures_arrive_as_plain_messages(qtbot: QtBot, ops: Operations, ui_store: Store) -> None:
    saved = ui_store.save(participant(1))
    stale = saved.replace(family_name="Changed")
    ui_store.save(saved.replace(family_name="Elsewhere"))
    with qtbot.waitSignal(ops.sig_failed) as failed:
        ops.save_records([stale])
    failure = failed.args[0]
    assert isinstance(failure, OpFailure)
    assert failure.message == VersionConflict.message and "Reopen the record" in failure.next_step
    assert "Traceback" not in failure.text

    def broken(store: Store) -> None:
        raise ValueError("Ms Example, 1 High Street")  # a value that must never be shown

    with qtbot.waitSignal(ops.sig_failed) as failed:
        ops.run("Broken", broken)
    assert "unexpected problem" in failed.args[0].message
    assert "High Street" not in failed.args[0].text and "ValueError" in failed.args[0].next_step


def test_operations_run_in_order_and_close_last(qtbot: QtBot, ui_store: Store) -> None:
    ops = Operations(ui_store)
    try:
        ops.save_draft("form:x:1", "initial_assessment", "1", {"q": "a"})
        with qtbot.waitSignal(ops.close_store().sig_finished):
            pass
        assert ops.store is None and not ui_store.db.is_open
        with qtbot.waitSignal(ops.sig_failed) as failed:
            ops.save_records([participant(2)])
        assert failed.args[0].message == "The profile is locked."
    finally:
        ops.shutdown()
