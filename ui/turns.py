"""Work put off by whole turns of the event loop, not by a time.

Showing a record is done in pieces, each in a turn of the event loop of its own: the record
is painted in the turn after it is shown, the list beside it in the one after that, and only
then are the record's hidden sections filled. A time would be wrong on a slow or busy
machine (a paint can take longer than any delay chosen); a count of turns is not.
"""

from __future__ import annotations

from typing import Callable

from PySide6.QtCore import QObject, QTimer


class TurnTimer(QObject):
    """Calls ``slot`` once, ``turns`` turns of the event loop after ``start(turns)``.

    A zero-interval timer that starts itself again until its turns are used up: Qt never
    fires a timer again in the pass that started it, so each start is one more turn.
    """

    def __init__(self, slot: Callable[[], object], parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._slot = slot
        self._turns = 0
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(0)
        self._timer.timeout.connect(self._tick)

    def start(self, turns: int = 0) -> None:
        """Call the slot in the turn after ``turns`` more (0: the next turn); a call
        already waiting is put off to then."""
        self._turns = turns
        self._timer.start()

    def put_off(self, turns: int) -> None:
        """Wait ``turns`` more turns before the call already waiting."""
        self._turns += turns

    def stop(self) -> None:
        self._timer.stop()

    def isActive(self) -> bool:  # noqa: N802 - as QTimer names it
        return self._timer.isActive()

    def _tick(self) -> None:
        if self._turns > 0:
            self._turns -= 1
            self._timer.start()
            return
        self._slot()
