"""Locking after a spell without input (DESIGN §3: the app locks itself when left alone).

:class:`IdleWatcher` watches every key press, click, wheel turn and mouse move in the whole
application through an event filter, and emits ``sig_idle`` once no input has arrived for
the timeout. The filter only notes the time of the last input: one float per event, so the
watcher costs nothing while someone is typing. The timeout is injectable for tests.
"""

from __future__ import annotations

import time
from typing import Callable

from PySide6.QtCore import QEvent, QObject, QTimer, Signal
from PySide6.QtWidgets import QApplication

_INPUT_EVENTS = frozenset({
    QEvent.Type.KeyPress, QEvent.Type.KeyRelease, QEvent.Type.MouseButtonPress,
    QEvent.Type.MouseButtonRelease, QEvent.Type.MouseMove, QEvent.Type.Wheel,
    QEvent.Type.TouchBegin, QEvent.Type.TouchUpdate, QEvent.Type.TabletPress,
    QEvent.Type.InputMethod,
})


class IdleWatcher(QObject):
    """Emits ``sig_idle`` after ``timeout_ms`` with no input; ``start``/``stop`` around use."""

    sig_idle = Signal()

    def __init__(self, timeout_ms: int, parent: QObject | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self._timeout_ms = max(1, int(timeout_ms))
        self._clock = clock
        self._last_input = clock()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.timeout.connect(self._check)
        self._installed = False

    @classmethod
    def minutes(cls, minutes: float, parent: QObject | None = None) -> IdleWatcher:
        return cls(int(minutes * 60_000), parent)

    @property
    def timeout_ms(self) -> int:
        return self._timeout_ms

    def set_timeout_ms(self, timeout_ms: int) -> None:
        self._timeout_ms = max(1, int(timeout_ms))
        if self._timer.isActive():
            self._check()

    @property
    def active(self) -> bool:
        return self._timer.isActive()

    def start(self) -> None:
        """Begin watching (after unlocking)."""
        app = QApplication.instance()
        if app is not None and not self._installed:
            app.installEventFilter(self)
            self._installed = True
        self._last_input = self._clock()
        self._timer.start(self._timeout_ms)

    def stop(self) -> None:
        """Stop watching (when locked: nothing to protect)."""
        self._timer.stop()
        app = QApplication.instance()
        if app is not None and self._installed:
            app.removeEventFilter(self)
            self._installed = False

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() in _INPUT_EVENTS:
            self._last_input = self._clock()
        return False

    def _check(self) -> None:
        idle_ms = (self._clock() - self._last_input) * 1000
        if idle_ms >= self._timeout_ms:
            self.stop()
            self.sig_idle.emit()
        else:
            self._timer.start(max(1, int(self._timeout_ms - idle_ms)))
