"""ui.turns.TurnTimer: work put off by whole turns of the event loop, never by a time."""

from __future__ import annotations

from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from ui.turns import TurnTimer


def test_the_slot_runs_after_the_turns_asked_for_and_once(qtbot: QtBot) -> None:
    calls: list[int] = []
    timer = TurnTimer(lambda: calls.append(1))
    timer.start(2)
    for _turn in range(3):   # two turns waited, then the one it runs in
        assert calls == [] and timer.isActive()
        QApplication.processEvents()
    assert calls == [1] and not timer.isActive()
    for _turn in range(3):
        QApplication.processEvents()
    assert calls == [1]


def test_put_off_and_stop(qtbot: QtBot) -> None:
    calls: list[int] = []
    timer = TurnTimer(lambda: calls.append(1))
    timer.start()
    timer.put_off(1)
    QApplication.processEvents()
    assert calls == []
    QApplication.processEvents()
    assert calls == [1]
    timer.start(0)
    timer.stop()
    QApplication.processEvents()
    assert calls == [1] and not timer.isActive()
