"""The sync strip and the list of items set aside, as widgets alone (no window, no store)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from sync.service import ProblemItem
from ui.sync_status import SyncProblemsDialog, SyncState, SyncStatusWidget, describe_last_sync


def problem(n: int, ref: str = "") -> ProblemItem:
    return ProblemItem(participant_id=f"p-{n}", participant_ref=ref, record_type="outcome",
                       record_id=f"o-{n}", version=2, recipient="The participant's employer",
                       code="field_not_in_profile", reason="field 'employer' is not in sharing profile 'employer'",
                       quarantined_at="2025-06-02T10:15:00+00:00")


def test_the_strip_says_each_state_in_words(qtbot: QtBot) -> None:
    strip = SyncStatusWidget()
    qtbot.addWidget(strip)
    assert strip.connection.text() == "Not enrolled with a controller — see Settings"
    assert not strip.last_sync.isVisibleTo(strip)
    strip.render(SyncState(enrolled=True))
    assert strip.connection.text() == "Not synced yet" and strip.last_sync.text() == "Last sync: Never"
    strip.render(SyncState(enrolled=True, online=True, last_sync=datetime.now(timezone.utc), waiting=1))
    assert strip.connection.text() == "● Online" and strip.last_sync.text() == "Last sync: Just now"
    assert strip.waiting.text() == "Waiting to send: 1 item"
    strip.render(SyncState(enrolled=True, online=False, waiting=1_234, quarantined=2))
    assert strip.connection.text().startswith("○ Offline — the controller could not be reached")
    assert strip.waiting.text() == "Waiting to send: 1,234 items"
    assert strip.quarantined.isVisibleTo(strip) and strip.quarantined.text() == "⚠ 2 items set aside — see why"
    with qtbot.waitSignal(strip.sig_show_problems):
        qtbot.mouseClick(strip.quarantined, Qt.MouseButton.LeftButton)


def test_the_strip_shows_progress_while_syncing(qtbot: QtBot) -> None:
    strip = SyncStatusWidget()
    qtbot.addWidget(strip)
    strip.render(SyncState(enrolled=True, running=True, stage="Sending", progress_done=3, progress_total=10))
    assert strip.progress.isVisibleTo(strip) and strip.progress.value() == 3
    assert strip.progress.text() == "Sending: 3 of 10"
    assert not strip.sync_button.isEnabled() and strip.sync_button.text() == "Syncing…"
    strip.render(SyncState(enrolled=True))
    assert not strip.progress.isVisibleTo(strip) and strip.sync_button.isEnabled()


def test_last_sync_in_words() -> None:
    now = datetime(2025, 6, 2, 12, 0, tzinfo=timezone.utc)
    assert describe_last_sync(None, now) == "Never"
    assert describe_last_sync(now - timedelta(minutes=1), now) == "1 minute ago"
    assert describe_last_sync(now - timedelta(minutes=5), now) == "5 minutes ago"


def test_the_problem_list_names_the_record_and_the_controllers_reason(qtbot: QtBot) -> None:
    dialog = SyncProblemsDialog()
    qtbot.addWidget(dialog)
    dialog.render([problem(1, "WWS-000001"), problem(2)])
    assert dialog.summary.text() == "2 items set aside."
    row = [dialog.table.item(0, c).text() for c in range(dialog.table.columnCount())]
    assert row == ["WWS-000001", "Outcome (version 2)", "The participant's employer",
                   "A field went that this recipient may not receive",
                   "field 'employer' is not in sharing profile 'employer'", "2025-06-02 10:15"]
    assert dialog.table.item(1, 0).text() == "no reference yet"
    dialog.table.selectRow(1)
    with qtbot.waitSignal(dialog.sig_open_participant, check_params_cb=lambda pid: pid == "p-2"):
        qtbot.mouseClick(dialog.open_button, Qt.MouseButton.LeftButton)
    dialog.render([])
    assert dialog.summary.text().startswith("Nothing is set aside") and not dialog.open_button.isEnabled()
    assert all(w.accessibleName() for w in (dialog.table, dialog.open_button, dialog.summary))
