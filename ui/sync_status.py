"""The always-visible sync strip: online or not, last sync, items waiting, sync problems.

Dumb: ``render(SyncState)`` in, ``sig_sync_now`` out. Where the numbers come from (the
outbox) and how a sync runs (an injected ``SyncService``) is the window's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol

from PySide6.QtCore import Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QProgressBar, QPushButton, QWidget

from .resources import restyle

ProgressCallback = Callable[[int, int, str], None]


class SyncService(Protocol):
    """What the sync engine offers the window (the ``sync`` package implements it).

    ``run`` is called on a worker thread and reports ``progress(done, total, stage)`` as
    it goes; it returns when the run is over and raises a ``KeyworkerError`` subclass to
    say why a run stopped (authentication refused, controller unreachable...).
    """

    def run(self, progress_callback: ProgressCallback) -> Any: ...


@dataclass(frozen=True)
class SyncState:
    """What the strip shows."""

    enrolled: bool = False
    online: bool | None = None          # None when the network state is unknown
    last_sync: datetime | None = None
    waiting: int = 0                    # outbox items pending
    quarantined: int = 0                # outbox items set aside by the controller
    running: bool = False
    progress_done: int = 0
    progress_total: int = 0
    stage: str = ""
    last_problem: str = ""


def describe_last_sync(when: datetime | None, now: datetime | None = None) -> str:
    """'Never', 'Just now', '5 minutes ago', 'Today at 14:05' or '3 Mar at 09:10'."""
    if when is None:
        return "Never"
    now = now or datetime.now(timezone.utc)
    seconds = (now - when).total_seconds()
    if seconds < 60:
        return "Just now"
    if seconds < 3600:
        minutes = int(seconds // 60)
        return f"{minutes} minute{'s' if minutes != 1 else ''} ago"
    local = when.astimezone()
    if local.date() == now.astimezone().date():
        return f"Today at {local:%H:%M}"
    return f"{local.day} {local:%b} at {local:%H:%M}"


class SyncStatusWidget(QFrame):
    """One line, always on screen: connection, last sync, waiting, problems, Sync now."""

    sig_sync_now = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("syncStatus")
        self.connection = QLabel()
        self.connection.setAccessibleName("Connection")
        self.last_sync = QLabel()
        self.last_sync.setAccessibleName("Last sync")
        self.waiting = QLabel()
        self.waiting.setAccessibleName("Items waiting to send")
        self.quarantined = QLabel()
        self.quarantined.setAccessibleName("Items with a sync problem")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Sync progress")
        self.progress.setMaximumWidth(220)
        self.progress.hide()
        self.sync_button = QPushButton("Sync now")
        self.sync_button.setAccessibleName("Sync now")
        self.sync_button.setToolTip("Send waiting changes and fetch new referrals (F5)")
        layout = QHBoxLayout(self)
        layout.setContentsMargins(10, 4, 10, 4)
        for widget in (self.connection, self.last_sync, self.waiting, self.quarantined):
            layout.addWidget(widget)
            layout.addSpacing(14)
        layout.addStretch(1)
        layout.addWidget(self.progress)
        layout.addWidget(self.sync_button)
        self.sync_button.clicked.connect(self.sig_sync_now)
        self.state = SyncState()
        self.render(self.state)

    def render(self, state: SyncState) -> None:  # type: ignore[override]  # the render(state) convention
        self.state = state
        if not state.enrolled:
            self._set(self.connection, "Not enrolled with a controller — see Settings", "offline")
        elif state.online is None:
            self._set(self.connection, "Connection unknown", "")
        elif state.online:
            self._set(self.connection, "● Online", "online")
        else:
            self._set(self.connection, "○ Offline — your work is saved on this laptop", "offline")
        self.last_sync.setText(f"Last sync: {describe_last_sync(state.last_sync)}")
        self.last_sync.setVisible(state.enrolled)
        word = "item" if state.waiting == 1 else "items"
        self.waiting.setText(f"Waiting to send: {state.waiting:,} {word}")
        if state.quarantined:
            self._set(self.quarantined, f"⚠ Sync problems: {state.quarantined:,} — open the "
                      "list with “Sync problem”", "attention")
            self.quarantined.show()
        else:
            self.quarantined.hide()
        if state.running:
            self.progress.show()
            if state.progress_total:
                self.progress.setRange(0, state.progress_total)
                self.progress.setValue(state.progress_done)
                self.progress.setFormat(f"{state.stage} %v of %m" if state.stage else "%v of %m")
            else:
                self.progress.setRange(0, 0)
            self.sync_button.setEnabled(False)
            self.sync_button.setText("Syncing…")
        else:
            self.progress.hide()
            self.sync_button.setEnabled(True)
            self.sync_button.setText("Sync now")
        tip = state.last_problem or ""
        self.setToolTip(tip)

    @staticmethod
    def _set(label: QLabel, text: str, state: str) -> None:
        label.setText(text)
        label.setProperty("state", state)
        restyle(label)
