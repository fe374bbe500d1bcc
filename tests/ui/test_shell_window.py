"""The main window end to end on the real encrypted store: create, unlock, register,
search, filter, sync status, auto-lock with the draft kept. No sleeps: signals and waitUntil."""

from __future__ import annotations

import json
from typing import Any, Callable, Iterator

import pytest
from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import QDialogButtonBox, QLabel, QWidget
from pytestqt.qtbot import QtBot

from keyworker_app.errors import (
    DamagedProfile, DeviceSecretMissing, KeyringUnavailable, LockedOut, NewerDatabase,
    UnlockTooSoon, WrongPassphrase,
)
from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.records import Participant
from keyworker_app.security import keyring_status
from keyworker_app.store.store import Store
from shell_support import participant
from support import PASSPHRASE, MemoryKeyring, fast_kdf, write_org_config
from ui.models import CaseloadFilter
from ui.window import MainWindow

MakeWindow = Callable[..., MainWindow]


@pytest.fixture
def make_window(qtbot: QtBot) -> Iterator[MakeWindow]:
    made: list[MainWindow] = []

    def make(paths: AppPaths, **kwargs: Any) -> MainWindow:
        window = MainWindow(paths, **kwargs)
        qtbot.addWidget(window)
        window.show()
        made.append(window)
        return window

    yield make
    for window in made:
        window.close()  # flushes, closes the store and stops the worker


def unlock(qtbot: QtBot, window: MainWindow, passphrase: str = PASSPHRASE) -> None:
    page = window.start.unlock_page
    page.passphrase.setText(passphrase)
    # Unlocked, and the first page of the caseload read (on the caseload reader's thread).
    with qtbot.waitSignals([window.sig_unlocked, window.model.sig_loaded], timeout=20_000):
        qtbot.mouseClick(page.unlock_button, Qt.MouseButton.LeftButton)


def seed(paths: AppPaths, count: int = 0, **fields: Any) -> None:
    store, _ = Profile.at(paths).create("KW-0001", "working_well_ses", PASSPHRASE, kdf=fast_kdf())
    try:
        store.repo(Participant).save_many(participant(n, **fields) for n in range(1, count + 1))
    finally:
        store.close()


def error_text(window: MainWindow) -> str:
    return window.start.unlock_page.banner.text()


# --- creating and unlocking ----------------------------------------------------------------

def test_create_profile_through_the_ui(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    window = make_window(ui_paths)
    page = window.start.create_page
    assert window.pages.currentWidget() is window.start
    assert page.programme.count() >= 5 and not page.create_button.isEnabled()
    page.programme.setCurrentIndex(page.programme.findData("working_well_ses"))
    page.keyworker_id.setText("KW-0042")
    page.passphrase.setText("short")
    assert page.strength_word.text() == "Too short"
    assert "too easy to guess" in page.advice.text()
    page.passphrase.setText(PASSPHRASE)
    assert page.strength.value() >= 2 and "not the same" in page.advice.text()
    page.confirm.setText(PASSPHRASE)
    assert page.create_button.isEnabled()
    with qtbot.waitSignal(window.sig_unlocked, timeout=20_000):
        qtbot.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    assert window.pages.currentWidget() is window.main_page
    assert Profile.at(ui_paths).info().keyworker_id == "KW-0042"
    # This machine has no secure credential store: the warning is said plainly.
    if not keyring_status().secure:
        assert "no secure credential store" in window.notice.text()
    assert "empty" in window.caseload.empty.text()


def test_keyring_required_but_missing_is_explained(qtbot: QtBot, ui_paths: AppPaths,
                                                   make_window: MakeWindow) -> None:
    write_org_config(ui_paths, keyring_policy="required")
    if keyring_status().secure:
        pytest.skip("this machine has a secure keyring")
    window = make_window(ui_paths)
    page = window.start.create_page
    page.keyworker_id.setText("KW-0042")
    page.passphrase.setText(PASSPHRASE)
    page.confirm.setText(PASSPHRASE)
    with qtbot.waitSignal(window.ops.sig_busy, check_params_cb=lambda busy, _l: not busy, timeout=20_000):
        qtbot.mouseClick(page.create_button, Qt.MouseButton.LeftButton)
    assert KeyringUnavailable.message in page.banner.text()
    assert not Profile.at(ui_paths).exists()


def test_unlock_failures_each_have_their_own_message(qtbot: QtBot, ui_paths: AppPaths,
                                                     make_window: MakeWindow) -> None:
    write_org_config(ui_paths, unlock_delay_after=2, unlock_lockout_after=3,
                     unlock_base_delay_seconds=30)
    seed(ui_paths)
    window = make_window(ui_paths)
    page = window.start.unlock_page
    assert "KW-0001" in page.who.text()

    def attempt(passphrase: str) -> None:
        page.passphrase.setText(passphrase)
        with qtbot.waitSignal(window.ops.sig_busy, check_params_cb=lambda busy, _l: not busy,
                              timeout=20_000):
            page.sig_unlock.emit(passphrase)  # the button may rightly be disabled: press anyway

    attempt("not the passphrase 1")
    assert WrongPassphrase.message in error_text(window) and "2 more tries" in error_text(window)
    assert page.passphrase.text() == ""
    attempt("not the passphrase 2")
    assert "1 more tries" in error_text(window) and "Wait 30 seconds" in error_text(window)
    assert page.seconds_to_wait > 0 and not page.unlock_button.isEnabled()
    assert "wait" in page.unlock_button.text()
    attempt(PASSPHRASE)  # too soon, even with the right passphrase
    assert UnlockTooSoon.message in error_text(window) and "seconds, then try again" in error_text(window)
    # Move the clock past the delay by editing when the last failure was.
    keyfile = json.loads(ui_paths.keyfile.read_text())
    keyfile["unlock"]["last_failure_at"] -= 3600
    ui_paths.keyfile.write_text(json.dumps(keyfile))
    attempt("not the passphrase 3")
    assert LockedOut.message in error_text(window) and "recovery key" in error_text(window)
    assert not page.passphrase.isEnabled() and not page.unlock_button.isEnabled()
    # Opening the app again starts at the locked-out message, not a passphrase box.
    again = make_window(ui_paths)
    assert LockedOut.message in again.start.unlock_page.banner.text()


def test_caps_lock_is_noticed_from_what_is_typed(qtbot: QtBot, locked_profile: AppPaths,
                                                 make_window: MakeWindow) -> None:
    window = make_window(locked_profile)
    page = window.start.unlock_page
    assert page.caps_warning.isHidden()
    qtbot.keyClicks(page.passphrase, "7-")                   # no letters: nothing to go on
    assert page.caps_warning.isHidden()
    qtbot.keyClicks(page.passphrase, "K")                    # a capital without Shift
    assert not page.caps_warning.isHidden()
    qtbot.keyClick(page.passphrase, "k", Qt.KeyboardModifier.ShiftModifier)  # small, with Shift
    assert not page.caps_warning.isHidden()
    qtbot.keyClicks(page.passphrase, "k")                    # Caps Lock is off again
    assert page.caps_warning.isHidden()
    qtbot.keyClick(page.passphrase, "K", Qt.KeyboardModifier.ShiftModifier)
    assert page.caps_warning.isHidden()


def test_damaged_and_newer_profiles(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    seed(ui_paths)
    store = Profile.at(ui_paths).unlock(PASSPHRASE)
    with store.db.lock:
        store.db.conn.execute("PRAGMA user_version = 99")
    store.close()
    window = make_window(ui_paths)
    page = window.start.unlock_page
    page.passphrase.setText(PASSPHRASE)
    with qtbot.waitSignal(window.ops.sig_failed, timeout=20_000):
        qtbot.mouseClick(page.unlock_button, Qt.MouseButton.LeftButton)
    assert NewerDatabase.message in error_text(window) and "Install the latest Keyworker" in error_text(window)

    ui_paths.keyfile.write_text("{ not json")
    damaged = make_window(ui_paths)
    assert DamagedProfile.message in damaged.start.unlock_page.banner.text()
    assert not damaged.start.unlock_page.unlock_button.isEnabled()
    assert ui_paths.database.exists()  # never a new empty database over the old one


def test_missing_device_secret(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow,
                               secure_keyring: MemoryKeyring) -> None:
    seed(ui_paths)
    secure_keyring.entries.clear()  # as if the credential store were reset
    window = make_window(ui_paths)
    page = window.start.unlock_page
    page.passphrase.setText(PASSPHRASE)
    with qtbot.waitSignal(window.ops.sig_failed, timeout=20_000):
        qtbot.mouseClick(page.unlock_button, Qt.MouseButton.LeftButton)
    assert DeviceSecretMissing.message in error_text(window)
    assert "recovery key" in error_text(window)


# --- the caseload --------------------------------------------------------------------------

def test_register_a_participant_through_the_ui(qtbot: QtBot, ui_paths: AppPaths,
                                               make_window: MakeWindow) -> None:
    seed(ui_paths)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    assert window.sync_status.waiting.text() == "Waiting to send: 0 items"
    qtbot.keyClick(window, Qt.Key.Key_N, Qt.KeyboardModifier.ControlModifier)
    dialog = window.new_participant_dialog
    assert dialog is not None and dialog.isVisible()
    dialog.given_name.setText("Amira")
    dialog.family_name.setText("Khan")
    dialog.date_of_birth.setText("31/01/1985")
    dialog.postcode.setText("m13 9pl")
    dialog.ni_number.setText("not an NI number")
    dialog.reason.setPlainText("Wants help back to work after illness")
    save = dialog.findChild(QDialogButtonBox).button(QDialogButtonBox.StandardButton.Save)
    qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    assert dialog.isVisible() and "NI number" in dialog.banner.text()  # says what and where
    dialog.ni_number.setText("ab 12 34 56 c")
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000) as shown:
        qtbot.mouseClick(save, Qt.MouseButton.LeftButton)
    qtbot.waitUntil(lambda: window.model.total == 1)  # the list re-reads off the GUI thread
    assert window.model.row(0).name == "Khan, Amira"
    store = window.ops.store
    assert store is not None
    saved = store.participants.get(shown.args[0])
    assert saved.ni_number == "AB123456C" and saved.postcode == "M13 9PL"
    assert saved.participant_ref.startswith("WWS-")
    # Participant, referral and enrolment each wait to be sent: the strip says so.
    qtbot.waitUntil(lambda: window.sync_state.waiting == 3)
    assert window.sync_status.waiting.text() == "Waiting to send: 3 items"


def test_search_and_filters_through_the_view(qtbot: QtBot, ui_paths: AppPaths,
                                             make_window: MakeWindow) -> None:
    seed(ui_paths, count=30)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    view = window.caseload
    assert window.model.total == 30 and "30 participants on your caseload" in view.count.text()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert view.search.hasFocus()
    qtbot.keyClicks(view.search, "Family0007")
    qtbot.waitUntil(lambda: window.model.total == 1)
    assert view.count.text() == "1 participant matches"
    # Enter in the search box goes to the list; Enter on the list opens the record.
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        qtbot.keyClick(view.search, Qt.Key.Key_Return)
        qtbot.keyClick(view.table, Qt.Key.Key_Return)
    loaded = window.model.sig_loaded
    with qtbot.waitSignal(loaded):
        view.clear_filters()
    assert window.model.total == 30
    with qtbot.waitSignal(loaded):
        view.status.setCurrentIndex(view.status.findData("on_hold"))
    assert window.model.total == 0 and "Nobody matches" in view.empty.text()
    with qtbot.waitSignal(loaded):
        view.clear_filters()
    with qtbot.waitSignal(loaded):
        view.unsynced.setChecked(True)
    assert window.model.total == 30
    assert window.model.filter == CaseloadFilter(unsynced=True)


def test_every_control_has_an_accessible_name(qtbot: QtBot, ui_paths: AppPaths,
                                              make_window: MakeWindow) -> None:
    from PySide6.QtWidgets import (QAbstractButton, QComboBox, QLineEdit, QSpinBox, QTableView)
    seed(ui_paths, count=1)
    window = make_window(ui_paths)
    controls = (QAbstractButton, QComboBox, QLineEdit, QSpinBox, QTableView)

    def unnamed(root: QWidget) -> list[str]:
        return [f"{type(w).__name__} {getattr(w, 'text', lambda: '')()!r}" for w in root.findChildren(QWidget)
                if isinstance(w, controls) and not w.accessibleName()
                # Qt's own parts: a combo box's editor, a line edit's clear button, a table's corner
                and not (isinstance(w, QLineEdit) and isinstance(w.parent(), QComboBox))
                and not isinstance(w.parent(), (QLineEdit, QTableView))
                and w.parent() is not None and type(w.parent()).__name__ != "QDialogButtonBox"
                and "ScrollBar" not in type(w).__name__ and w.objectName() != "qt_spinbox_lineedit"]

    assert unnamed(window.start) == []
    unlock(qtbot, window)
    assert unnamed(window.caseload) == [] and unnamed(window.sync_status) == []


# --- sync status ---------------------------------------------------------------------------

class FakeSync:
    """Stands in for the sync service (tests/ui/test_sync_*.py use the real one): marks the
    outbox sent, as if a controller had accepted everything."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.ran = False

    def run(self, progress: Callable[[str, int, int], None]) -> None:
        items = self.store.outbox_pending()
        for i, item in enumerate(items, 1):
            with self.store.db.transaction() as conn:
                conn.execute("UPDATE outbox SET state = 'done' WHERE seq = ?", (item.seq,))
            progress("Sending", i, len(items))
        self.ran = True

    def enrol(self, controller_url: str, code: str) -> None:
        return None

    def is_enrolled(self) -> bool:
        return True

    def controller_url(self) -> str:
        return "https://controller.example.org"

    def is_online(self) -> bool | None:
        return True if self.ran else None

    def last_sync_at(self) -> None:
        return None

    def waiting(self) -> int:
        return self.store.outbox_count("pending")

    def quarantined(self) -> list[Any]:
        return []

    def quarantined_count(self) -> int:
        return 0

    def sharing_history(self, participant_id: str) -> list[Any]:
        return []

    def referral_mark(self) -> int:
        return 0

    def new_referrals_since(self, mark: int) -> list[Any]:
        return []


def test_sync_status_and_sync_now(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    seed(ui_paths, count=2)
    window = make_window(ui_paths, sync_factory=FakeSync)
    unlock(qtbot, window)
    # The strip's numbers are read off the GUI thread just after the unlock.
    qtbot.waitUntil(lambda: window.sync_state.enrolled)
    assert window.sync_state.waiting == 2
    assert "Never" in window.sync_status.last_sync.text()
    progress: list[int] = []
    window.sig_sync_state.connect(lambda s: progress.append(s.progress_done) if s.running else None)
    with qtbot.waitSignal(window.ops.sig_finished, timeout=20_000,
                          check_params_cb=lambda handle: handle.label == "Syncing"):
        qtbot.keyClick(window, Qt.Key.Key_F5)
    assert window.sync_state.waiting == 0 and not window.sync_state.running
    assert progress[-1] == 2 and window.sync_status.waiting.text() == "Waiting to send: 0 items"
    # A save puts an item back in the outbox, and the strip follows.
    store = window.ops.store
    assert store is not None
    first = store.participants.search("", 1)[0]
    with qtbot.waitSignal(window.ops.sig_changed):
        window.ops.save_records([first.replace(postcode="OL1 1AA")])
    assert window.sync_state.waiting == 1


def test_sync_without_a_controller_says_so(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    seed(ui_paths)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    assert "Not enrolled with a controller — see Settings" in window.sync_status.connection.text()
    qtbot.keyClick(window, Qt.Key.Key_F5)
    assert "not enrolled" in window.notice.text()


# --- locking -------------------------------------------------------------------------------

class FormInProgress(QWidget):
    """A record view with a half-filled form: emits its draft when asked to flush."""

    sig_save = Signal(list)
    sig_save_form = Signal(list, str)
    sig_delete = Signal(str, str, str)
    sig_save_draft = Signal(str, str, str, dict)
    sig_discard_draft = Signal(str)

    def __init__(self) -> None:
        super().__init__()
        self.states: list[Any] = []
        self.label = QLabel(self)

    def render(self, state: Any) -> None:
        self.states.append(state)
        self.label.setText(state.participant_file.participant.display_name)

    def flush_drafts(self) -> None:
        pid = self.states[-1].participant_file.participant.id
        self.sig_save_draft.emit(f"{pid}:initial_assessment:new", "initial_assessment", pid,
                                 {"goals": "Part-time work in a library"})


def fake_record_views() -> tuple[list[FormInProgress], Callable[[], FormInProgress]]:
    """A record-view factory for the window, and the list of the views it has made."""
    views: list[FormInProgress] = []

    def factory() -> FormInProgress:
        views.append(FormInProgress())
        return views[-1]

    return views, factory


def test_auto_lock_keeps_the_draft_and_offers_it_back(qtbot: QtBot, ui_paths: AppPaths,
                                                      make_window: MakeWindow) -> None:
    seed(ui_paths, count=3)
    views, factory = fake_record_views()
    window = make_window(ui_paths, idle_timeout_ms=300, record_view_factory=factory)
    unlock(qtbot, window)
    pid = window.model.participant_id(1)
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(pid)
    store = window.ops.store
    assert store is not None
    # Nobody touches anything: the window locks itself.
    with qtbot.waitSignal(window.sig_locked, timeout=20_000):
        pass
    assert window.locked and window.pages.currentWidget() is window.start
    assert window.ops.store is None and not store.db.is_open
    assert window.model.rowCount() == 0 and window.record_view is None
    assert "not used for a while" in window.start.unlock_page.notice.text()
    unlock(qtbot, window)
    qtbot.waitUntil(lambda: len(views) == 2 and bool(views[1].states), timeout=20_000)
    state = views[1].states[-1]
    assert state.participant_file.participant.id == pid
    assert [d.answers for d in state.drafts] == [{"goals": "Part-time work in a library"}]
    assert "unsaved form" in window.notice.text()
    window.idle.stop()


def test_lock_now_with_the_real_record_view(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    seed(ui_paths, count=1)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(window.model.participant_id(0))
    assert window.record_view is not None
    with qtbot.waitSignal(window.sig_locked, timeout=20_000):
        qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    assert window.record_view is None and window.pages.currentWidget() is window.start
    unlock(qtbot, window)
    qtbot.waitUntil(lambda: window.record_view is not None, timeout=20_000)


def test_a_forms_draft_is_discarded_only_after_its_save_worked(qtbot: QtBot, ui_paths: AppPaths,
                                                               make_window: MakeWindow) -> None:
    seed(ui_paths, count=1)
    views, factory = fake_record_views()
    window = make_window(ui_paths, record_view_factory=factory)
    unlock(qtbot, window)
    pid = window.model.participant_id(0)
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(pid)
    store = window.ops.store
    assert store is not None
    key = f"{pid}:registration:{pid}"
    store.save_draft(key, "registration", pid, {"phone": "07700 900123"})
    stale = store.participants.get(pid)
    store.save(stale.replace(phone="07700 900999"))  # someone else changed it meanwhile
    # The save fails (a version conflict): the draft is still there to carry on from.
    with qtbot.waitSignal(window.ops.sig_failed, timeout=20_000):
        views[0].sig_save_form.emit([stale.replace(phone="07700 900123")], key)
    qtbot.waitUntil(lambda: not window.ops.busy)
    assert [d.key for d in store.drafts()] == [key]
    # Saved from the current version: now the draft goes.
    current = store.participants.get(pid)
    with qtbot.waitSignal(window.ops.sig_changed, timeout=20_000,
                          check_params_cb=lambda changes: changes.drafts):
        views[0].sig_save_form.emit([current.replace(phone="07700 900123")], key)
    assert store.drafts() == []
    assert store.participants.get(pid).phone == "07700 900123"


# --- built in slices: the first window at once, the rest in idle moments ---------------------

def test_the_unlock_screen_comes_first_and_the_rest_is_built_after(
        qtbot: QtBot, locked_profile: AppPaths, make_window: MakeWindow) -> None:
    window = make_window(locked_profile)
    assert window.pages.currentWidget() is window.start and not window.main_page_built
    qtbot.waitUntil(lambda: window.main_page_built)
    assert window.pages.indexOf(window.main_page) >= 0
    # Ctrl+F was made before the caseload: it still reaches the search box once unlocked.
    unlock(qtbot, window)
    window.caseload.table.setFocus()
    qtbot.keyClick(window, Qt.Key.Key_F, Qt.KeyboardModifier.ControlModifier)
    assert window.caseload.search.hasFocus()


def test_reading_a_part_of_the_main_page_early_builds_it_at_once(
        qtbot: QtBot, locked_profile: AppPaths, make_window: MakeWindow) -> None:
    window = make_window(locked_profile)
    assert not window.main_page_built
    assert window.caseload.search.accessibleName() == "Search the caseload"
    assert window.main_page_built and window.caseload.parentWidget() is window.splitter
    unlock(qtbot, window)
    assert window.model.total == 0


def test_the_record_screen_is_built_in_idle_moments_behind_the_unlock_screen(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    assert not window.record_screen_ready
    qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
    prebuilt = window._prebuilt_record_view
    assert window.locked and prebuilt is not None and window.record_view is None
    assert prebuilt.title.text() == "" and not prebuilt.isVisible()  # built, holding nothing
    unlock(qtbot, window)
    assert window._prebuilt_record_view is prebuilt
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(window.model.participant_id(0))
    view = window.record_view
    assert view is prebuilt and window.record_area.currentWidget() is view
    given = window.model.row(0).name.split(", ")[1]
    assert view.title.text().startswith(given) and view.accessibleName().startswith(f"Record of {given}")
    # The sections made in idle moments work from the keyboard like any other.
    view.nav.setFocus()
    qtbot.keyClick(view.nav, Qt.Key.Key_Down)
    assert view.current_section() == view.section_ids()[1]
    view.show_section("notes")
    widget = view.nav.nextInFocusChain()
    while not (widget.isVisible() and widget.focusPolicy() & Qt.FocusPolicy.TabFocus):
        widget = widget.nextInFocusChain()
    assert widget is view.notes_table.table
    # Locking throws the record screen that showed someone away; a fresh empty one is built.
    window.lock()
    assert window.record_view is None and not window.record_screen_ready
    qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
    assert window._prebuilt_record_view is not prebuilt
    assert window._prebuilt_record_view.title.text() == ""


def test_built_screens_are_left_out_of_garbage_collections_until_a_lock_throws_one_away(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    """A full garbage collection walks every object; the built window is frozen out of
    them (gc.freeze) so one never falls due in the middle of a search as a long pause. A
    lock unfreezes, and the next record screen is built only after a full collection."""
    import gc

    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    qtbot.waitUntil(lambda: window.main_page_built, timeout=20_000)
    gc.unfreeze()
    try:
        qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
        assert gc.get_freeze_count() > 0   # frozen when the record screen was finished
        unlock(qtbot, window)
        with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
            window.open_participant(window.model.participant_id(0))
        collections = gc.get_stats()[2]["collections"]
        window.lock()
        assert gc.get_freeze_count() == 0   # the thrown-away screen can be freed
        qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
        assert gc.get_stats()[2]["collections"] > collections
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()


def test_the_record_screen_is_not_built_while_the_keyworker_searches(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    """A build step never runs while a search waits for the typing pause or the list is
    being read: the list's answer must not queue behind it on the GUI thread."""
    import time

    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    qtbot.waitUntil(lambda: not window.model.loading and not window.ops.busy, timeout=20_000)
    # Steps are driven by hand below, from the start of a fresh build.
    window._prebuild_timer.stop()
    window._prebuilt_record_view = None
    window._prebuild_held = False
    assert window.record_view is None

    def step() -> None:
        window._prebuild_due = time.perf_counter()   # on time: not a late, busy moment
        window._prebuild_step()

    window.caseload.search.setText("a")
    assert window.caseload.typing
    step()
    assert window._prebuilt_record_view is None      # typing: held
    window.caseload.search_now()
    assert not window.caseload.typing and window.model.loading
    step()
    assert window._prebuilt_record_view is None      # the list is being read: held
    qtbot.waitUntil(lambda: not window.model.loading, timeout=20_000)
    assert not window.ops.busy
    step()
    assert window._prebuilt_record_view is not None  # a quiet moment: building starts


def test_records_opened_one_after_another_show_the_last_asked_for(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow, monkeypatch: pytest.MonkeyPatch) -> None:
    """The second record is asked for while the first is still being read: each file is
    read off the GUI thread, the record ends on the second participant, and the list
    selects them a turn after the record is shown (its repaint comes in a turn of its
    own, not in the one that paints the record)."""
    import threading

    from PySide6.QtWidgets import QApplication

    from ui.window import SELECT_AFTER_TURNS

    read_on: list[str] = []
    real_file = Store.participant_file

    def participant_file(store: Store, *args: Any, **kwargs: Any) -> Any:
        read_on.append(threading.current_thread().name)
        return real_file(store, *args, **kwargs)

    monkeypatch.setattr(Store, "participant_file", participant_file)
    seed(ui_paths, count=30)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    model, table = window.model, window.caseload.table
    first, second = model.participant_id(0), model.participant_id(25)
    second_ref = model.row(25).participant_ref

    def selected() -> list[int]:
        return [index.row() for index in table.selectionModel().selectedRows()]

    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(model.participant_id(5))   # a record is on screen already
    qtbot.waitUntil(lambda: selected() == [5])
    shown: list[str] = []
    window.sig_record_shown.connect(shown.append)
    window.open_participant(first)
    window.open_participant(second)
    with qtbot.waitSignal(window.sig_record_shown, check_params_cb=lambda pid: pid == second,
                          timeout=20_000):
        pass
    assert shown == [first, second] and window.open_participant_id == second
    assert read_on and threading.main_thread().name not in read_on
    assert window.record_view is not None and second_ref in window.record_view.title.text()


    assert 25 not in selected()           # this turn paints the record
    for _turn in range(SELECT_AFTER_TURNS + 1):
        QApplication.processEvents()
    assert selected() == [25]


def test_the_record_screen_is_built_while_the_key_is_derived(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    """While unlocking the keyworker can only wait: the record screen is built then, a step
    a turn with no gaps between and no waiting for a quieter moment, so no step is left for
    the first search after. Once unlocked, an operation holds it again."""
    import threading
    import time

    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    qtbot.waitUntil(lambda: window.main_page_built, timeout=20_000)

    def fresh_build() -> None:   # steps driven from here, from the start of a new build
        window._prebuild_timer.stop()
        window._prebuilt_record_view = None
        window._prebuild_due = time.perf_counter() - 1.0   # overdue: the app was busy

    def hold_operations() -> threading.Event:
        release = threading.Event()
        window.ops.run_task("Unlocking", lambda: release.wait(20))
        return release

    fresh_build()
    release = hold_operations()   # stands for the key derivation
    assert window.locked and window.ops.busy
    window._prebuild_step()
    assert window._prebuilt_record_view is not None      # built even so
    assert window._prebuild_timer.isActive() and window._prebuild_timer.interval() == 0
    qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
    assert window.ops.busy                                # all of it while "unlocking"
    release.set()
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=20_000)

    unlock(qtbot, window)
    qtbot.waitUntil(lambda: not window.model.loading and not window.ops.busy, timeout=20_000)
    window._prebuild_held = False
    fresh_build()
    release = hold_operations()   # a save, say
    window._prebuild_step()
    assert window._prebuilt_record_view is None           # held while it runs
    release.set()
    qtbot.waitUntil(lambda: not window.ops.busy, timeout=20_000)


def test_the_record_screen_is_laid_out_ahead_at_the_size_it_is_shown_at(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    """Its last build step lays the record screen out at the size it will have beside the
    list, so showing the first record never resizes it (nor lays it out again); the
    record fills its side of the window."""
    from PySide6.QtCore import QEvent, QObject, QSize

    class Resizes(QObject):
        sizes: list[QSize] = []

        def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
            if event.type() == QEvent.Type.Resize:
                self.sizes.append(event.size())
            return False

    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    qtbot.waitUntil(lambda: window.record_screen_ready, timeout=20_000)
    view = window._prebuilt_record_view
    assert view is not None
    laid_out = view.size()
    unlock(qtbot, window)
    resizes = Resizes()
    view.installEventFilter(resizes)
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(window.model.participant_id(0))
    assert window.record_view is view and view.isVisible()
    # Shown once (Qt says so with the size it had all along), never resized.
    assert resizes.sizes and all(size == laid_out for size in resizes.sizes)
    assert view.geometry() == window.record_area.contentsRect()
    assert window.splitter.sizes()[1] == view.width()
    view.removeEventFilter(resizes)


def test_the_first_record_is_shown_after_the_list_has_made_room_for_it(
        qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> None:
    """The first record since unlocking: the list narrows at once and is repainted in a
    turn of its own; the record is shown a turn after, complete for its section on screen,
    with keyboard focus and names as usual, and its other sections are filled only after
    it is on screen."""
    from PySide6.QtWidgets import QApplication

    seed(ui_paths, count=3)
    window = make_window(ui_paths)
    unlock(qtbot, window)
    qtbot.waitUntil(lambda: window.record_screen_ready and not window.ops.busy, timeout=20_000)
    store = window.ops.store
    assert store is not None
    pid = window.model.participant_id(1)
    shown: list[str] = []
    window.sig_record_shown.connect(shown.append)
    view = window._prebuilt_record_view
    stale_at_show: list[list[str]] = []
    window.sig_record_shown.connect(lambda _pid: stale_at_show.append(list(view._stale)))
    window._show_record(store.participant_file(pid, audit_view=False), (), ())
    to_fill = list(view._stale)   # rendered: the section on screen; the others wait
    assert "profile" not in to_fill and len(to_fill) > 1
    assert window.splitter.sizes() == window._record_split()       # room made at once
    assert window.record_area.currentWidget() is window.record_hint and shown == []
    QApplication.processEvents()   # the turn that repaints the narrower list
    assert window.record_area.currentWidget() is window.record_hint and shown == []
    qtbot.waitUntil(lambda: shown == [pid], timeout=20_000)
    assert window.record_area.currentWidget() is view and view.isVisible()
    name = window.model.row(1).name.split(", ")[1]
    assert view.title.text().startswith(name) and view.accessibleName().startswith(f"Record of {name}")
    assert view.current_section() == "profile" and view.profile_table.row_count() > 0
    assert stale_at_show == [to_fill]   # none filled before the record was on screen
    qtbot.waitUntil(lambda: view.rendered, timeout=20_000)
    view.nav.setFocus()
    qtbot.keyClick(view.nav, Qt.Key.Key_Down)
    assert view.current_section() == view.section_ids()[1]
