"""The always-visible sync strip, and the list of items the controller set aside.

Dumb: ``render(SyncState)`` in; ``sig_sync_now`` and ``sig_show_problems`` out. The problem
list takes its rows through ``render`` and says which participant to open with
``sig_open_participant``. Where the numbers come from (a :class:`SyncService`) and when a
sync runs is the window's business.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, Callable, Protocol, Sequence

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView, QDialog, QDialogButtonBox, QFrame, QHBoxLayout, QHeaderView, QLabel,
    QProgressBar, QPushButton, QTableWidget, QTableWidgetItem, QVBoxLayout, QWidget,
)

from sync.service import NewReferral, ProblemItem, SharedItem

from .resources import restyle

#: ``progress(stage, done, total)``, as the sync reports it.
ProgressCallback = Callable[[str, int, int], None]


class SyncService(Protocol):
    """What the window asks of the sync (``sync.service.SyncService`` is the real one).

    ``run`` and ``enrol`` are called on the operations worker, never on the GUI thread;
    ``run`` reports ``progress(stage, done, total)`` as it goes and returns the run's
    result (``sync.engine.SyncResult``); failures a person can meet are raised as, or
    carried in, ``KeyworkerError`` subclasses with plain messages. The readers are cheap
    queries on the open store.
    """

    def run(self, progress: ProgressCallback) -> Any: ...
    def enrol(self, controller_url: str, code: str) -> Any: ...
    def is_enrolled(self) -> bool: ...
    def controller_url(self) -> str: ...
    def is_online(self) -> bool | None: ...
    def last_sync_at(self) -> datetime | None: ...
    def waiting(self) -> int: ...
    def quarantined(self) -> list[ProblemItem]: ...
    def quarantined_count(self) -> int: ...
    def sharing_history(self, participant_id: str) -> list[SharedItem]: ...
    def referral_mark(self) -> int: ...
    def new_referrals_since(self, mark: int) -> list[NewReferral]: ...


@dataclass(frozen=True)
class SyncState:
    """What the strip shows."""

    enrolled: bool = False
    online: bool | None = None          # the last run reached the controller; None before one
    last_sync: datetime | None = None
    waiting: int = 0                    # outbox items pending
    quarantined: int = 0                # items the controller set aside, not yet put right
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
    """One line, always on screen: connection, last sync, waiting, set aside, Sync now."""

    sig_sync_now = Signal()
    sig_show_problems = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("syncStatus")
        self.connection = QLabel()
        self.connection.setAccessibleName("Connection")
        self.last_sync = QLabel()
        self.last_sync.setAccessibleName("Last sync")
        self.waiting = QLabel()
        self.waiting.setAccessibleName("Items waiting to send")
        self.quarantined = QPushButton()
        self.quarantined.setAccessibleName("Items set aside by the controller")
        self.quarantined.setToolTip("See what the controller refused and why, and open the record to put it right")
        self.progress = QProgressBar()
        self.progress.setAccessibleName("Sync progress")
        self.progress.setMinimumWidth(260)
        self.progress.setMaximumWidth(320)
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
        self.quarantined.clicked.connect(self.sig_show_problems)
        self.state = SyncState()
        self.render(self.state)

    def render(self, state: SyncState) -> None:  # type: ignore[override]  # the render(state) convention
        self.state = state
        if not state.enrolled:
            self._set(self.connection, "Not enrolled with a controller — see Settings", "offline")
        elif state.online is None:
            self._set(self.connection, "Not synced yet", "")
        elif state.online:
            self._set(self.connection, "● Online", "online")
        else:
            self._set(self.connection, "○ Offline — the controller could not be reached", "offline")
        self.last_sync.setText(f"Last sync: {describe_last_sync(state.last_sync)}")
        self.last_sync.setVisible(state.enrolled)
        word = "item" if state.waiting == 1 else "items"
        self.waiting.setText(f"Waiting to send: {state.waiting:,} {word}")
        if state.quarantined:
            word = "item" if state.quarantined == 1 else "items"
            self.quarantined.setText(f"⚠ {state.quarantined:,} {word} set aside — see why")
            self.quarantined.show()
        else:
            self.quarantined.hide()
        if state.running:
            self.progress.show()
            if state.progress_total:
                self.progress.setRange(0, state.progress_total)
                self.progress.setValue(state.progress_done)
                self.progress.setFormat(f"{state.stage}: %v of %m" if state.stage else "%v of %m")
            else:
                self.progress.setRange(0, 0)
            self.progress.setAccessibleDescription(state.stage)
            self.sync_button.setEnabled(False)
            self.sync_button.setText("Syncing…")
        else:
            self.progress.hide()
            self.sync_button.setEnabled(True)
            self.sync_button.setText("Sync now")
        self.setToolTip(state.last_problem or "")

    @staticmethod
    def _set(label: QLabel, text: str, state: str) -> None:
        label.setText(text)
        label.setProperty("state", state)
        restyle(label)


#: The controller's rejection codes (docs/protocol.md), as a keyworker would say them.
PROBLEM_WORDS: dict[str, str] = {
    "invalid_item": "Something in the record is not in a form the controller accepts",
    "idempotency_key_mismatch": "The item's identifiers did not match",
    "field_not_in_profile": "A field went that this recipient may not receive",
    "record_type_not_in_profile": "This recipient does not receive this kind of record",
    "form_not_in_profile": "This recipient does not receive this form",
    "programme_not_in_profile": "This recipient does not cover the participant's programme",
    "strand_not_in_profile": "This recipient does not cover the participant's strand",
    "unknown_profile": "The controller does not know this recipient",
    "unknown_record_type": "The controller does not know this kind of record",
    "identifier_mismatch": "The record's identifiers did not match",
    "health_team_confidential": "Health Team confidential notes are never shared",
    "item_too_large": "Too large to send",
    "withdraw_needs_consent": "A withdrawal was sent for something other than consent",
    "withdraw_status": "A withdrawal did not say the consent was withdrawn",
}


def problem_words(code: str) -> str:
    return PROBLEM_WORDS.get(code, "Refused by the controller")


class SyncProblemsDialog(QDialog):
    """The items the controller set aside: what, whose, to whom, and the controller's reason.

    Dumb: ``render(items)`` in, ``sig_open_participant(participant_id)`` out when the
    keyworker asks to open the record to put it right.
    """

    sig_open_participant = Signal(str)

    HEADERS = ("Participant", "Record", "Recipient", "Problem", "Controller's reason", "Set aside")
    WIDTHS = (215, 170, 220, 220, 240, 130)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Items set aside by the controller")
        self.setMinimumSize(1200, 420)
        explain = QLabel(
            "The controller refused these items, so they were set aside and nothing else was held "
            "up. Open the record, correct it and save: the new version is sent at the next sync, "
            "and the item leaves this list once the controller accepts it.")
        explain.setWordWrap(True)
        explain.setProperty("role", "hint")
        self.summary = QLabel()
        self.summary.setAccessibleName("How many items are set aside")
        self.table = QTableWidget(0, len(self.HEADERS))
        self.table.setHorizontalHeaderLabels(list(self.HEADERS))
        self.table.setAccessibleName("Items set aside")
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setTabKeyNavigation(False)
        self.table.setWordWrap(True)
        self.table.verticalHeader().hide()
        self.table.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        for column, width in enumerate(self.WIDTHS):
            self.table.setColumnWidth(column, width)
        # The controller's reason takes what is left; long texts wrap rather than hide it.
        header.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)
        self.open_button = QPushButton("Open record to fix")
        self.open_button.setAccessibleName("Open the selected participant's record to fix it")
        self.open_button.setProperty("primary", True)
        self.open_button.setEnabled(False)
        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName("Close the list")
        buttons.addButton(self.open_button, QDialogButtonBox.ButtonRole.ActionRole)
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(explain)
        layout.addWidget(self.summary)
        layout.addWidget(self.table, 1)
        layout.addWidget(buttons)
        self.table.itemSelectionChanged.connect(
            lambda: self.open_button.setEnabled(bool(self.selected_participant())))
        self.table.doubleClicked.connect(lambda _index: self._open())
        self.open_button.clicked.connect(self._open)
        self.items: tuple[ProblemItem, ...] = ()

    def render(self, items: Sequence[ProblemItem]) -> None:  # type: ignore[override]  # the render(state) convention
        self.items = tuple(items)
        count = len(self.items)
        self.summary.setText("Nothing is set aside: every item was accepted." if not count else
                             f"{count:,} item{'s' if count != 1 else ''} set aside.")
        self.table.setRowCount(count)
        for row, item in enumerate(self.items):
            cells = (item.participant_ref or "no reference yet",
                     f"{item.record_type.replace('_', ' ').capitalize()} (version {item.version})",
                     item.recipient, problem_words(item.code), item.reason,
                     item.quarantined_at[:16].replace("T", " "))
            for column, text in enumerate(cells):
                cell = QTableWidgetItem(text)
                cell.setToolTip(text)
                self.table.setItem(row, column, cell)
        self.table.resizeRowsToContents()
        if count:
            self.table.selectRow(0)
        self.open_button.setEnabled(bool(self.selected_participant()))

    def selected_participant(self) -> str:
        rows = self.table.selectionModel().selectedRows()
        if not rows or rows[0].row() >= len(self.items):
            return ""
        return self.items[rows[0].row()].participant_id

    def _open(self) -> None:
        pid = self.selected_participant()
        if pid:
            self.sig_open_participant.emit(pid)
            self.accept()
