"""The keyworker's desktop: unlock, the caseload, a participant's record, sync status.

This is the glue. Widgets are dumb (data in through setters/``render``, ``sig_…`` out);
only this window and the operations layer touch the store. Every write goes through
:class:`ui.operations.Operations`, and every screen refreshes from the :class:`OpChanges`
report that comes back (``_on_changed``), whoever made the change.

Locking (Ctrl+L, or :class:`ui.idle.IdleWatcher` after the organisation's idle time) asks
the record view to keep its unsaved form work as drafts, throws the record widgets away,
empties the caseload, closes the store and shows the unlock screen. After unlocking, the
participant who was open is opened again and their drafts are offered back.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import time
from dataclasses import dataclass
from datetime import date
from typing import Any, Callable, Sequence

from PySide6.QtCore import Qt, QTimer, Signal
from PySide6.QtGui import QAction, QCloseEvent, QKeySequence
from PySide6.QtWidgets import (
    QLabel, QMainWindow, QMessageBox, QProgressBar, QSplitter, QStackedWidget, QVBoxLayout,
    QWidget,
)

from keyworker_app.errors import KeyworkerError
from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.programmes import Programme, list_programmes
from keyworker_app.records import (
    RECORD_TYPE_BY_NAME, Attachment, Enrolment, Participant, ParticipantStatus, Record, Referral,
    ReferralSource,
)
from keyworker_app.store.store import Draft, ParticipantFile, Store

from .caseload import CaseloadView, NewParticipantDialog, Registration
from .idle import IdleWatcher
from .models import CaseloadQuery, QtCaseloadModel
from sync.engine import RunOutcome
from sync.service import NewReferral, SharedItem

from .operations import OpChanges, OpFailure, OpHandle, Operations, Report
from .settings import SettingsDialog, SettingsState, versions
from .start import Banner, StartScreen, UnlockInfo
from .sync_status import SyncProblemsDialog, SyncService, SyncState, SyncStatusWidget
from .turns import TurnTimer

log = logging.getLogger("keyworker.ui")

try:  # the other UI engineer's record screen; the placeholder below is only a guard
    from .record import ParticipantRecordView, RecordState, SentItem
    HAVE_RECORD_VIEW = True
except ImportError:  # pragma: no cover - only until ui/record.py lands
    HAVE_RECORD_VIEW = False

#: How many of a participant's audit entries the record shows (newest history first).
AUDIT_SHOWN = 200

#: Every record type: what a sync run may have changed.
ALL_RECORD_TYPES = frozenset(RECORD_TYPE_BY_NAME)

#: Makes the sync service for a store the window has just unlocked.
SyncFactory = Callable[[Store], SyncService]

#: The record screen is built a slice at a time after unlocking, this far apart (ms).
PREBUILD_GAP_MS = 15
#: A slice whose timer comes this much later than asked (ms) finds the app busy (a list
#: being painted, a record opening) and waits for the next quiet moment instead.
PREBUILD_LATE_MS = 8
#: ...but never more than this many times in a row, so a busy machine still gets it built.
PREBUILD_MAX_WAITS = 5

#: Turns of the event loop between showing a record and selecting its participant in the
#: list: the record is painted in the turn after it is shown, so the list's repaint comes in
#: one of its own. (The record's other sections are filled after both: ``ui.record``'s
#: ``FILL_AFTER_TURNS``.)
SELECT_AFTER_TURNS = 1
#: Turns between the list making room for the first record opened and that record being
#: shown beside it (the list's repaint comes in between, in a turn of its own).
REVEAL_AFTER_TURNS = 1

#: How much of the window's width the caseload keeps while a record is open.
LIST_SHARE_WITH_RECORD = 0.38

#: At most this many participant references are named when new referrals arrive.
REFERRALS_NAMED = 10


def leave_out_of_collections() -> None:
    """Leave every object made so far out of later garbage collections (``gc.freeze``).

    The window's screens, models and form definitions live as long as the app. A full
    collection walks every object the collector tracks, and with all of them built one
    took about 30 ms on the GUI thread whenever it fell due, in the middle of a search say:
    with the rest of a keystroke's work, a stall over 50 ms. Frozen objects are never
    walked again, nor freed if they become garbage: a lock, which throws the record
    screen away, first unfreezes everything (``gc.unfreeze``), and the
    next record screen is built only after a full collection has freed the old one.
    """
    gc.freeze()


@dataclass(frozen=True)
class SyncRun:
    """What one "Sync now" did: the engine's result and the referrals it brought."""

    result: Any                                  # sync.engine.SyncResult
    new_referrals: tuple[NewReferral, ...] = ()

    @property
    def store_gone(self) -> bool:
        """The controller revoked or locked this laptop: the store is closed."""
        return getattr(self.result, "outcome", None) in (RunOutcome.REVOKED, RunOutcome.LOCKED)


@dataclass(frozen=True)
class FallbackRecordState:
    """The state the placeholder record view shows (same shape as ``ui.record.RecordState``)."""

    file: ParticipantFile
    programme: Programme | None
    drafts: tuple[Draft, ...] = ()


class PlaceholderRecordView(QWidget):
    """A read-only summary, used only when ``ui.record`` is not installed.

    Same signals as ``ParticipantRecordView`` so the window's wiring is identical.
    """

    sig_save = Signal(list)
    sig_delete = Signal(str, str, str)
    sig_save_draft = Signal(str, str, str, dict)
    sig_discard_draft = Signal(str)
    sig_attach = Signal(object)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.text = QLabel()
        self.text.setWordWrap(True)
        self.text.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)
        self.text.setAccessibleName("Participant summary")
        self.text.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByKeyboard
                                          | Qt.TextInteractionFlag.TextSelectableByMouse)
        layout = QVBoxLayout(self)
        layout.addWidget(self.text, 1)
        self.state: FallbackRecordState | None = None

    def render(self, state: FallbackRecordState) -> None:  # type: ignore[override]  # the render(state) convention
        self.state = state
        p = state.file.participant
        counts = ", ".join(f"{len(v)} {k.replace('_', ' ')}" for k, v in state.file.records.items() if v)
        drafts = "".join(f"<li>Unsaved {d.form_id.replace('_', ' ')} (kept {d.saved_at[:16]})</li>"
                         for d in state.drafts)
        self.text.setText(
            f"<h2>{p.display_name}</h2><p>{p.participant_ref} · {p.status} · "
            f"{state.programme.name if state.programme else p.programme}</p>"
            f"<p>{counts or 'No records yet.'}</p>"
            + (f"<p><b>Unsaved work kept for you:</b></p><ul>{drafts}</ul>" if drafts else ""))

    def flush_drafts(self) -> None:
        """Nothing to keep: the placeholder has no forms."""
        return None


def sent_items(history: Sequence[SharedItem]) -> tuple[Any, ...]:
    """The sync's sharing history as the record view's ``SentItem`` rows."""
    if not HAVE_RECORD_VIEW:
        return ()
    return tuple(SentItem(sent_at=h.entry.sent_at, recipient=h.recipient, record_type=h.entry.record_type,
                          record_id=h.entry.record_id, sharing_profile=h.entry.recipient,
                          lawful_basis=h.lawful_basis, status=h.entry.controller_status,
                          fields=h.entry.fields, op=h.entry.op)
                 for h in history)


def make_record_state(file: ParticipantFile, programme: Programme | None, drafts: tuple[Draft, ...],
                      *, keyworker_id: str = "", today: date | None = None,
                      audit_entries: tuple[Any, ...] = (), sharing_history: tuple[Any, ...] = ()) -> Any:
    """A ``RecordState`` for whichever record view is installed.

    ``ui.record.RecordState`` belongs to the record screen's author: its fields are filled
    by name, and any field this window does not know keeps its default.
    """
    if not HAVE_RECORD_VIEW:
        return FallbackRecordState(file, programme, drafts)
    offered: dict[str, Any] = {
        "participant_file": file, "programme": programme or file.participant.programme,
        "drafts": drafts, "keyworker_id": keyworker_id, "today": today or date.today(),
        "audit_entries": audit_entries, "sharing_history": sharing_history,
    }
    names = {f.name for f in dataclasses.fields(RecordState)}
    return RecordState(**{k: v for k, v in offered.items() if k in names})


def flush_record_drafts(view: QWidget) -> None:
    """Ask the record view to emit its unsaved form work now (before a lock or quit).

    Uses the view's ``flush_drafts()`` when it has one; otherwise every form inside it
    that is on screen or has a draft pending (``flush_draft()``, ``has_pending_draft()``).
    """
    flush = getattr(view, "flush_drafts", None)
    if callable(flush):
        flush()
        return
    for child in view.findChildren(QWidget):
        child_flush = getattr(child, "flush_draft", None)
        if not callable(child_flush):
            continue
        pending = getattr(child, "has_pending_draft", None)
        if child.isVisible() or (callable(pending) and pending()):
            child_flush()


def render_record(view: QWidget, state: Any, later_turns: int = 0) -> None:
    """Show ``state`` in the record view: the section on screen at once, the rest in the
    idle moments after, when the view can (``render_soon``; ``later_turns`` more turns of
    the event loop after, when the view is shown only then)."""
    render_soon = getattr(view, "render_soon", None)
    if render_soon is None:
        view.render(state)  # type: ignore[attr-defined]
    else:
        render_soon(state, later_turns=later_turns)


def default_record_view() -> QWidget:
    return ParticipantRecordView() if HAVE_RECORD_VIEW else PlaceholderRecordView()


class MainWindow(QMainWindow):
    """The whole app in one window. Injected: the sync service factory, idle timeout, today."""

    sig_locked = Signal()
    sig_unlocked = Signal()
    sig_record_shown = Signal(str)           # participant id
    sig_sync_state = Signal(object)          # SyncState, whenever the strip changes

    def __init__(self, paths: AppPaths, *, sync_factory: SyncFactory | None = None,
                 idle_timeout_ms: int | None = None,
                 record_view_factory: Callable[[], QWidget] = default_record_view,
                 today: Callable[[], date] = date.today) -> None:
        super().__init__()
        self.setWindowTitle("Keyworker")
        self.resize(1280, 800)
        self.paths = paths
        self._sync_factory = sync_factory
        self._record_view_factory = record_view_factory
        self._today = today
        self._idle_override_ms = idle_timeout_ms
        self.ops = Operations(parent=self)
        self.profile: Profile | None = None
        self.programmes: dict[str, Programme] = {p.id: p for p in list_programmes()}
        self.store_programme = ""
        self._profile_programme = ""  # the profile's programme, known before unlocking
        self.sync_service: SyncService | None = None
        self.sync_state = SyncState()
        self.sync_handle: OpHandle[SyncRun] | None = None
        self.problems_dialog: SyncProblemsDialog | None = None
        self.record_view: QWidget | None = None
        self._prebuilt_record_view: Any = None   # a ParticipantRecordView being built in idle moments
        self._prebuild_timer = QTimer(self)
        self._prebuild_timer.setSingleShot(True)
        # A gap between the slices: typing and scrolling come first while it builds.
        self._prebuild_timer.setInterval(PREBUILD_GAP_MS)
        self._prebuild_timer.timeout.connect(self._prebuild_step)
        self._prebuild_due = 0.0
        self._prebuild_waits = 0
        self._prebuild_held = False
        self._collect_before_prebuild = False   # set by a lock: see leave_out_of_collections
        self._record_screen_laid_out = False    # see _lay_out_record_screen
        self.open_participant_id = ""
        # Selecting who is open in the list, and showing the first record opened: each a
        # turn or two after the paint before it (``SELECT_AFTER_TURNS``, ``REVEAL_AFTER_TURNS``).
        self._select_timer = TurnTimer(self._select_open_participant, self)
        self._reveal_timer = TurnTimer(self._reveal_record, self)
        self._reopen_after_unlock = ""
        self.new_participant_dialog: NewParticipantDialog | None = None
        self.settings_dialog: SettingsDialog | None = None
        self._locked = True

        # --- the first window: the start screen only --------------------------------------
        # Everything behind the unlock is built afterwards, a slice at a time while the
        # keyworker types their passphrase (``_build_main_page``), so neither the first
        # window nor any moment after it waits for the whole app to be built.
        self.pages = QStackedWidget()
        self.setCentralWidget(self.pages)
        self.start = StartScreen(self.pages)
        self.pages.addWidget(self.start)

        self.busy = QProgressBar()
        self.busy.setRange(0, 0)
        self.busy.setMaximumWidth(160)
        self.busy.setAccessibleName("Working")
        self.busy.hide()
        self.statusBar().addPermanentWidget(self.busy)

        self.idle = IdleWatcher(self._idle_timeout_ms(10), self)
        self._build_menus()

        # --- wiring ---
        self.start.sig_create.connect(self._create_profile)
        self.start.sig_unlock.connect(self._unlock)
        self.idle.sig_idle.connect(lambda: self.lock(reason="idle"))
        self.ops.sig_changed.connect(self._on_changed)
        self.ops.sig_failed.connect(self._on_failed)
        self.ops.sig_busy.connect(self._on_busy)

        self._main_page_steps: list[Callable[[], None]] = [
            self._build_frame, self._build_caseload, self._build_caseload_model,
            self._build_record_area,
            # Polishing (applying the stylesheet) and laying out are what the first show of
            # a page costs: done here, a part at a time, the caseload appears without a pause.
            lambda: self.sync_status.ensurePolished(), lambda: self.caseload.ensurePolished(),
            lambda: self.record_area.ensurePolished(), self._lay_out_main_page,
        ]
        self._main_page_timer = QTimer(self)
        self._main_page_timer.setSingleShot(True)
        self._main_page_timer.setInterval(0)
        self._main_page_timer.timeout.connect(self._build_main_page_step)
        self._main_page_timer.start()
        self._show_start()

    # --- building what is behind the unlock, a slice at a time --------------------------

    #: Made by ``_build_main_page``; reading one before then builds the rest at once.
    _MAIN_PAGE_PARTS = frozenset({"sync_status", "notice", "problem", "caseload", "model",
                                  "record_area", "record_hint", "splitter", "main_page"})

    def __getattr__(self, name: str) -> Any:
        # Only called for attributes not (yet) set: the main page's parts before it is built.
        if name in MainWindow._MAIN_PAGE_PARTS and not self.__dict__.get("_building_main_page"):
            self._build_main_page()
            return self.__dict__[name]
        raise AttributeError(name)

    @property
    def main_page_built(self) -> bool:
        """Whether everything behind the unlock has been built."""
        return not self._main_page_steps

    @property
    def record_screen_ready(self) -> bool:
        """Whether a record can be shown without building the record screen first."""
        prebuilt = self._prebuilt_record_view
        return self.record_view is not None or (
            prebuilt is not None and prebuilt.built and self._record_screen_laid_out)

    def _build_main_page_step(self) -> None:
        """One slice of the main page (each well under 50 ms); the next comes after any events."""
        if self._main_page_steps:
            self._run_main_page_step()
        if self._main_page_steps:
            self._main_page_timer.start()

    def _build_main_page(self) -> None:
        """Whatever of the main page is not built yet, now (it is needed at once)."""
        self._main_page_timer.stop()
        while self._main_page_steps:
            self._run_main_page_step()

    def _run_main_page_step(self) -> None:
        step = self._main_page_steps.pop(0)
        self._building_main_page = True
        try:
            step()
        finally:
            self._building_main_page = False
        if not self._main_page_steps:
            leave_out_of_collections()
            self._prebuild_record_view()  # next: the record screen, in the moments after

    def _build_frame(self) -> None:
        """The main page's frame, empty, already in place: what goes in is made inside
        it, so the stylesheet reaches each widget once (moving a finished part in would
        restyle all of it)."""
        main = QWidget()
        self.pages.addWidget(main)
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 0, 0, 0)
        main_layout.setSpacing(4)
        self.sync_status = SyncStatusWidget(main)
        self.notice = Banner(main)
        self.problem = Banner(main)
        main_layout.addWidget(self.sync_status)
        for banner in (self.notice, self.problem):
            main_layout.addWidget(banner)
        self.splitter = QSplitter(Qt.Orientation.Horizontal, main)
        self.splitter.setChildrenCollapsible(False)
        main_layout.addWidget(self.splitter, 1)
        self.main_page = main
        self.sync_status.sig_sync_now.connect(self.sync_now)
        self.sync_status.sig_show_problems.connect(self.show_sync_problems)

    def _build_caseload(self) -> None:
        self.caseload = CaseloadView(self.splitter)
        self.splitter.addWidget(self.caseload)
        self.caseload.set_programmes([(p.id, p.name) for p in self.programmes.values()])
        self.caseload.sig_open.connect(self.open_participant)
        self.caseload.sig_new_participant.connect(self.new_participant)

    def _build_caseload_model(self) -> None:
        self.model = QtCaseloadModel(programme_names={p.id: p.short_name for p in self.programmes.values()})
        self.caseload.set_model(self.model)
        self.caseload.sig_filter_changed.connect(self.model.set_filter)
        self.model.sig_failed.connect(self._on_failed)
        # Warming the cache for searching waits while an operation (opening a record,
        # saving) has work, what the keyworker asked for comes first, and until the record
        # screen has been built in the quiet moments after the unlock (one at a time: both
        # together left the GUI thread too little of a busy laptop).
        ops = self.ops
        prebuilds = HAVE_RECORD_VIEW and self._record_view_factory is default_record_view
        self.model.hold_warming_while(
            lambda: ops.busy or (prebuilds and not self.record_screen_ready))

    def _build_record_area(self) -> None:
        self.record_area = QStackedWidget(self.splitter)
        self.splitter.addWidget(self.record_area)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.record_hint = QLabel("Choose someone from your caseload and press Enter (or double-click) "
                                  "to open their record.", self.record_area)
        self.record_hint.setWordWrap(True)
        self.record_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.record_hint.setProperty("role", "hint")
        self.record_area.addWidget(self.record_hint)

    def _lay_out_main_page(self) -> None:
        """Lay the hidden main page out at the size it will have, so showing it after the
        unlock does not have to (the filters' flow layouts are worked out in Python)."""
        self.main_page.setGeometry(self.pages.contentsRect())
        layout = self.main_page.layout()
        if layout is not None:
            layout.activate()

    # --- menus and shortcuts ---------------------------------------------------------

    def _action(self, text: str, shortcut: QKeySequence | QKeySequence.StandardKey | str | None, slot: Callable[[], Any],
                tip: str = "") -> QAction:
        action = QAction(text, self)
        if shortcut is not None:
            action.setShortcut(QKeySequence(shortcut))
        if tip:
            action.setStatusTip(tip)
        action.triggered.connect(lambda _checked=False: slot())
        return action

    def _build_menus(self) -> None:
        bar = self.menuBar()
        file_menu = bar.addMenu("&File")
        self.new_action = self._action("&New participant…", QKeySequence.StandardKey.New,
                                       self.new_participant, "Register a new participant")
        self.lock_action = self._action("&Lock", "Ctrl+L", self.lock,
                                        "Lock Keyworker now; your unsaved work is kept")
        self.settings_action = self._action("&Settings…", "Ctrl+,", self.open_settings)
        self.quit_action = self._action("&Quit", QKeySequence.StandardKey.Quit, self.close)
        file_menu.addActions([self.new_action, self.lock_action])
        file_menu.addSeparator()
        file_menu.addAction(self.settings_action)
        file_menu.addSeparator()
        file_menu.addAction(self.quit_action)
        view_menu = bar.addMenu("&Caseload")
        self.find_action = self._action("&Find…", QKeySequence.StandardKey.Find,
                                        lambda: self.caseload.focus_search(), "Search the caseload")
        self.clear_action = self._action("&Clear filters", "Ctrl+Shift+F",
                                         lambda: self.caseload.clear_filters())
        self.list_action = self._action("Go to the &list", "Ctrl+1", lambda: self.caseload.table.setFocus())
        view_menu.addActions([self.find_action, self.clear_action, self.list_action])
        sync_menu = bar.addMenu("&Sync")
        self.sync_action = self._action("&Sync now", "F5", self.sync_now,
                                        "Send waiting changes and fetch new referrals")
        self.problems_action = self._action("Items set &aside…", None, self.show_sync_problems,
                                            "What the controller refused, and why")
        sync_menu.addActions([self.sync_action, self.problems_action])
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", "F1", self.show_shortcuts))
        help_menu.addAction(self._action("&About Keyworker", None,
                                         lambda: self.open_settings(tab=2)))
        self.data_actions = [self.new_action, self.lock_action, self.find_action,
                             self.clear_action, self.list_action, self.sync_action,
                             self.problems_action]

    def show_shortcuts(self) -> None:
        QMessageBox.information(self, "Keyboard shortcuts", "\n".join([
            "Ctrl+F   Search the caseload", "Enter   Open the selected participant",
            "Ctrl+1   Go to the caseload list", "Ctrl+N   New participant",
            "Ctrl+Shift+F   Clear search and filters", "F5   Sync now", "Ctrl+L   Lock now",
            "Ctrl+,   Settings", "Tab / Shift+Tab   Move between controls"]))

    def show_platform_warning(self, text: str) -> None:
        """A fault in the software this copy runs on, said plainly on every screen."""
        label = QLabel("Warning: " + text)
        label.setWordWrap(True)
        label.setProperty("role", "warning")
        label.setAccessibleName("Warning")
        self.statusBar().addWidget(label, 1)

    # --- start: create or unlock ---------------------------------------------------

    def _show_start(self, notice: str = "") -> None:
        self.pages.setCurrentWidget(self.start)
        for action in self.data_actions:
            action.setEnabled(False)
        self.settings_action.setEnabled(True)
        try:
            self.profile = Profile.at(self.paths)
            if not self.profile.exists():
                self.start.show_create([(p.id, p.name) for p in self.programmes.values()])
                return
            info = self.profile.info()
        except KeyworkerError as err:
            self.start.show_unlock(UnlockInfo("?", "this laptop"))
            self.start.show_failure(OpFailure.from_exception(err))
            self.start.unlock_page.set_inputs_enabled(False)
            return
        self._profile_programme = info.programme
        programme = self.programmes.get(info.programme)
        self.start.show_unlock(UnlockInfo(info.keyworker_id, programme.name if programme else info.programme,
                                          locked_out=info.locked_out, notice=notice))

    def _create_profile(self, keyworker_id: str, programme_id: str, passphrase: str) -> None:
        profile = self.profile
        if profile is None:
            return
        self.start.set_busy(True, "Creating your encrypted profile… this takes a few seconds.")
        self.ops.run_task("Creating your profile",
                          lambda: profile.create(keyworker_id, programme_id, passphrase),
                          OpChanges(store=True),
                          on_done=lambda result: self._opened(result[0], result[1].warning),
                          on_failed=self._start_failed)

    def _unlock(self, passphrase: str) -> None:
        profile = self.profile
        if profile is None:
            return
        self.start.set_busy(True, "Unlocking… checking your passphrase.")
        self.ops.run_task("Unlocking", lambda: profile.unlock(passphrase), OpChanges(store=True),
                          on_done=lambda store: self._opened(store), on_failed=self._start_failed)

    def _start_failed(self, failure: OpFailure) -> None:
        self.start.set_busy(False)
        self.start.show_failure(failure)

    def _opened(self, store: Store, keyring_warning: str = "") -> None:
        self.start.set_busy(False)
        self.ops.set_store(store)
        self._locked = False
        self.store_programme = self.profile.info().programme if self.profile else ""
        # The GUI thread's own reads come first: once the caseload reader has started on
        # the first page, they would wait for it (the store has one connection).
        drafts = store.drafts()
        idle_minutes = self._idle_minutes(store)
        self.sync_service = self._sync_factory(store) if self._sync_factory else None
        self.model.set_query(CaseloadQuery(store.db, today=self._today))
        self._prebuild_held = True  # the first list comes first
        self.model.sig_loaded.connect(self._release_prebuild, Qt.ConnectionType.SingleShotConnection)
        self.model.sig_failed.connect(self._release_prebuild, Qt.ConnectionType.SingleShotConnection)
        self.pages.setCurrentWidget(self.main_page)
        for action in self.data_actions:
            action.setEnabled(True)
        self.problem.clear_message()
        if keyring_warning:
            self.notice.show_message("warning", keyring_warning)
        else:
            self.notice.clear_message()
        if drafts:
            word = "form" if len(drafts) == 1 else "forms"
            self.notice.show_message("info", f"You have {len(drafts)} unsaved {word} kept from "
                                     "before Keyworker locked. Open the participant to carry on.")
        self._refresh_sync_status_off_thread()
        self.idle.set_timeout_ms(self._idle_timeout_ms(idle_minutes))
        self.idle.start()
        self.caseload.focus_search()
        self.statusBar().showMessage("Unlocked.", 4000)
        reopen, self._reopen_after_unlock = self._reopen_after_unlock, ""
        if reopen:
            self.open_participant(reopen)
        self.sig_unlocked.emit()

    # --- the caseload and the record --------------------------------------------------

    def new_participant(self) -> None:
        if self._locked:
            return
        dialog = NewParticipantDialog([(p.id, p.name) for p in self.programmes.values()],
                                      self.store_programme, self, today=self._today)
        dialog.accepted.connect(lambda: self._register(dialog.registration()))
        dialog.finished.connect(lambda _r: self._forget_dialog("new_participant_dialog", dialog))
        self.new_participant_dialog = dialog
        dialog.open()

    def _register(self, registration: Registration | None) -> None:
        if registration is None:
            return
        programme = self.programmes.get(registration.programme)
        today = self._today()
        keyworker = self.ops.store.actor if self.ops.store else ""

        def work(store: Store) -> list[Record]:
            participant = Participant(
                participant_ref=next_participant_ref(store, programme),
                programme=registration.programme, keyworker_id=keyworker,
                status=ParticipantStatus.ACTIVE, given_name=registration.given_name,
                family_name=registration.family_name, date_of_birth=registration.date_of_birth,
                ni_number=registration.ni_number, postcode=registration.postcode,
                phone=registration.phone, email=registration.email)
            referral = Referral(participant_id=participant.id,
                                source_type=ReferralSource(registration.referral_source),
                                reason=registration.referral_reason, received_on=today)
            enrolment = Enrolment(participant_id=participant.id, programme=registration.programme,
                                  start_date=today, esf_funded=bool(programme and programme.esf_funded))
            with store.db.transaction():
                return [store.save(r) for r in (participant, referral, enrolment)]

        def done(saved: list[Record]) -> None:
            self.statusBar().showMessage("Participant registered.", 5000)
            self.open_participant(saved[0].id)

        self.ops.run("Registering", work, OpChanges.for_records, on_done=done)

    def open_participant(self, participant_id: str) -> None:
        """Read the participant's file (audited as a view) off the GUI thread, then show it."""
        if self._locked:
            return

        service = self.sync_service

        def work(store: Store) -> tuple[ParticipantFile, tuple[Draft, ...], tuple[Any, ...], tuple[Any, ...]]:
            file = store.participant_file(participant_id)
            drafts = tuple(d for d in store.drafts() if d.participant_id == participant_id)
            sharing = sent_items(service.sharing_history(participant_id)) if service else ()
            return file, drafts, tuple(store.audit_entries(participant_id, limit=AUDIT_SHOWN)), sharing

        self.ops.run("Opening record", work, on_done=lambda r: self._show_record(*r))

    def _show_record(self, file: ParticipantFile, drafts: tuple[Draft, ...],
                     audit_entries: tuple[Any, ...], sharing: tuple[Any, ...] = ()) -> None:
        if self._locked:
            return
        view = self._ensure_record_view()
        self.open_participant_id = file.participant.id
        first = self.record_area.currentWidget() is not view
        render_record(view, self._record_state(file, drafts, audit_entries, sharing),
                      later_turns=REVEAL_AFTER_TURNS + 1 if first else 0)
        if first:
            # The first record since the hint showed: the list makes room now (narrower,
            # it is laid out and repainted whole in the next turn), and the record is shown
            # in the turn after that (``_reveal_record``), at the size it was laid out at
            # while it was built (``_lay_out_record_screen``). Both at once held the GUI
            # thread for twice as long as any later opening.
            self.splitter.setSizes(self._record_split())
            self._reveal_timer.start(REVEAL_AFTER_TURNS)
            return
        self._record_shown()

    def _reveal_record(self) -> None:
        view = self.record_view
        if self._locked or view is None or not self.open_participant_id:
            return
        self.record_area.setCurrentWidget(view)
        self._record_shown()

    def _record_shown(self) -> None:
        # The list shows who is open a turn after the record is painted (``SELECT_AFTER_TURNS``):
        # scrolling to them repaints the whole list, and the two paints together were the
        # longest the GUI thread was held while opening records.
        self._select_timer.start(SELECT_AFTER_TURNS)
        self.sig_record_shown.emit(self.open_participant_id)

    def _select_open_participant(self) -> None:
        if self.open_participant_id and not self._locked:
            self.caseload.select_participant(self.open_participant_id)

    def _record_state(self, file: ParticipantFile, drafts: tuple[Draft, ...],
                      audit_entries: tuple[Any, ...] | None = None,
                      sharing: tuple[Any, ...] | None = None) -> Any:
        store = self.ops.store
        pid = file.participant.id
        if audit_entries is None:
            audit_entries = tuple(store.audit_entries(pid, limit=AUDIT_SHOWN)) if store else ()
        if sharing is None:
            sharing = sent_items(self.sync_service.sharing_history(pid)) if self.sync_service else ()
        return make_record_state(file, self.programmes.get(file.participant.programme), drafts,
                                 keyworker_id=store.actor if store else "", today=self._today(),
                                 audit_entries=audit_entries, sharing_history=sharing)

    def _prebuild_record_view(self) -> None:
        """Build an empty record screen from now on, a section at a time with gaps between,
        so the first record opened does not wait for it (building it all at once is a pause
        of a third of a second). It starts behind the unlock screen, while the passphrase is
        typed (it waits while the key is derived, or anything else is being done), and holds
        nothing until a record is shown in it. Only the standard record screen is built this
        way."""
        if (self.record_view is not None or self._prebuilt_record_view is not None
                or self._prebuild_timer.isActive()
                or not HAVE_RECORD_VIEW or self._record_view_factory is not default_record_view):
            return
        self._prebuild_later()

    def _release_prebuild(self, *_failure: Any) -> None:
        self._prebuild_held = False

    def _prebuild_later(self, gap_ms: int = PREBUILD_GAP_MS) -> None:
        self._prebuild_due = time.perf_counter() + gap_ms / 1000
        self._prebuild_timer.start(gap_ms)

    @property
    def _unlocking(self) -> bool:
        """Whether the key is being derived (or a profile made) behind the start screen."""
        return self._locked and self.ops.busy

    def _prebuild_step(self) -> None:
        view = self._prebuilt_record_view
        if self.record_view is not None:
            return
        # While the key is derived the keyworker can only wait, and nothing on screen needs
        # the GUI thread: the record screen is built then, a step a turn with no gaps, so
        # that no step is left to land between the keystrokes of the first search after.
        # (It takes a processor from the key derivation for about a tenth of a second.)
        unlocking = self._unlocking
        if not unlocking and (self.ops.busy or self._prebuild_held or (
                self.main_page_built and (self.model.loading or self.caseload.typing))):
            # Saving, the first list after unlocking still to show, or the keyworker
            # searching (a list being read, or typing): not now, so that the list's answer
            # never waits behind a build step.
            self._prebuild_later()
            return
        late = time.perf_counter() - self._prebuild_due > PREBUILD_LATE_MS / 1000
        if late and not unlocking and self._prebuild_waits < PREBUILD_MAX_WAITS:
            self._prebuild_waits += 1
            self._prebuild_later()  # the app was busy just now: not a quiet moment
            return
        self._prebuild_waits = 0
        gap_ms = 0 if unlocking else PREBUILD_GAP_MS
        if view is None and self._collect_before_prebuild:
            # A step of its own (a full collection takes tens of ms): the record screen
            # thrown away at the lock, now that Qt has let go of it, and anything else.
            self._collect_before_prebuild = False
            gc.collect()
            self._prebuild_later(gap_ms)
            return
        if view is None:
            view = ParticipantRecordView(build_now=False)
            view.prepare_for(list(self.programmes.values()), self.programmes.get(self._profile_programme))
            self._wire_record_view(view)
            self.record_area.addWidget(view)  # built in place: moving it in later restyles it all
            self._prebuilt_record_view = view
            self._record_screen_laid_out = False
            self._prebuild_later(gap_ms)
        elif not view.built:
            view.build_step()
            self._prebuild_later(gap_ms)
        elif not self._record_screen_laid_out:
            self._lay_out_record_screen(view)   # the last step, one of its own
            leave_out_of_collections()   # the record screen is built: it lives as long as we do

    def _record_split(self, total: int | None = None) -> list[int]:
        """The list's and the record's widths once a record is open, of ``total`` (by
        default what the list and the record area have now)."""
        if total is None:
            total = sum(self.splitter.sizes()) or self.width()
        return [int(total * LIST_SHARE_WITH_RECORD), total - int(total * LIST_SHARE_WITH_RECORD)]

    def _lay_out_record_screen(self, view: QWidget) -> None:
        """Lay the hidden record screen out at the size it will have beside the list, so
        the first record shown is not laid out again (most of that first showing's work).
        Measured from the splitter itself: its parts are sized only once it is shown."""
        self._record_screen_laid_out = True
        total = self.splitter.width() - self.splitter.handleWidth()
        view.setGeometry(0, 0, self._record_split(total)[1], self.splitter.height())
        layout = view.layout()
        if layout is not None:
            layout.activate()

    def _ensure_record_view(self) -> QWidget:
        if self.record_view is None and self._prebuilt_record_view is not None:
            view = self._prebuilt_record_view
            self._prebuilt_record_view = None
            self._prebuild_timer.stop()
            view.finish_building()
            leave_out_of_collections()
            self.record_view = view
        if self.record_view is None:
            view = self._record_view_factory()
            self._wire_record_view(view)
            self.record_area.addWidget(view)
            self.record_view = view
        return self.record_view

    def _wire_record_view(self, view: QWidget) -> None:
        view.setAccessibleName("Participant record")
        view.sig_save.connect(self._save_from_record)  # type: ignore[attr-defined]
        view.sig_delete.connect(self._delete_from_record)  # type: ignore[attr-defined]
        view.sig_save_draft.connect(self._save_draft)  # type: ignore[attr-defined]
        view.sig_discard_draft.connect(self.ops.discard_draft)  # type: ignore[attr-defined]
        if hasattr(view, "sig_save_form"):
            view.sig_save_form.connect(self._save_form_from_record)
        if hasattr(view, "sig_attach"):
            view.sig_attach.connect(self._attach)

    def _save_from_record(self, records: list[Record]) -> None:
        self.ops.save_records(list(records),
                              on_done=lambda _saved: self.statusBar().showMessage("Saved.", 4000))

    def _save_form_from_record(self, records: list[Record], draft_key: str) -> None:
        """Save a submitted form; only then discard its draft (a failed save keeps it)."""
        def done(_saved: list[Record]) -> None:
            self.statusBar().showMessage("Saved.", 4000)
            if draft_key:
                self.ops.discard_draft(draft_key)

        self.ops.save_records(list(records), on_done=done)

    def _delete_from_record(self, record_type: str, record_id: str, reason: str) -> None:
        kind = RECORD_TYPE_BY_NAME.get(record_type)
        if kind is None:
            return
        self.ops.delete_record(kind, record_id, reason, self.open_participant_id,
                               on_done=lambda _r: self.statusBar().showMessage("Deleted.", 4000))

    def _save_draft(self, key: str, form_id: str, participant_id: str, answers: dict[str, Any]) -> None:
        self.ops.save_draft(key, form_id, participant_id, dict(answers))

    def _attach(self, attachment: Attachment) -> None:
        self.ops.save_records([attachment])

    def _on_changed(self, changes: OpChanges) -> None:
        """Every screen refreshes itself from what an operation reports."""
        store = self.ops.store
        if store is None or self._locked:
            return
        if changes.touches("participant") or changes.outbox or changes.record_types & {
                "consent", "esf_form"}:
            self.model.refresh()
        # Not for a store just opened: _opened has read the strip's numbers a moment ago, and
        # counting what waits in a big outbox is a GUI-thread read worth doing once only.
        if changes.outbox or changes.sync or changes.settings:
            self.refresh_sync_status()
        if changes.sync and self.problems_dialog is not None and self.sync_service is not None:
            self.problems_dialog.render(self.sync_service.quarantined())
        pid = self.open_participant_id
        if pid and (pid in changes.participant_ids or changes.drafts or changes.sync) \
                and self.record_view is not None:
            try:
                file = store.participant_file(pid, audit_view=False)
            except KeyworkerError:  # deleted meanwhile: go back to the hint
                self.open_participant_id = ""
                self.record_area.setCurrentWidget(self.record_hint)
                return
            drafts = tuple(d for d in store.drafts() if d.participant_id == pid)
            render_record(self.record_view, self._record_state(file, drafts))

    def _on_failed(self, failure: OpFailure) -> None:
        if self._locked:
            return  # the start screen shows its own failures
        self.problem.show_failure(failure)
        self.statusBar().showMessage(failure.message, 8000)

    def _on_busy(self, busy: bool, label: str) -> None:
        self.busy.setVisible(busy)
        if busy and label:
            self.statusBar().showMessage(f"{label}…")
        elif not busy and self.statusBar().currentMessage().endswith("…"):
            self.statusBar().clearMessage()

    # --- locking --------------------------------------------------------------------

    def _idle_minutes(self, store: Store | None) -> int:
        limit = self.profile.config.idle_lock_minutes if self.profile else 10
        if store is None:
            return limit
        try:
            chosen = int(store.get_meta("ui.idle_lock_minutes", str(limit)))
        except ValueError:
            chosen = limit
        return max(1, min(limit, chosen))

    def _idle_timeout_ms(self, minutes: int) -> int:
        return self._idle_override_ms if self._idle_override_ms is not None else minutes * 60_000

    @property
    def locked(self) -> bool:
        return self._locked

    def lock(self, reason: str = "", notice: str = "") -> None:
        """Keep unsaved work as drafts, forget every screen's data, close the store.

        ``reason`` ``"controller"`` is a lock the controller asked for, after the sync has
        already closed the store: there is nowhere left to keep drafts.
        """
        if self._locked:
            return
        view = self.record_view
        if view is not None and reason != "controller":
            flush_record_drafts(view)  # emits sig_save_draft now: those saves queue before the close
        self._locked = True
        self._reopen_after_unlock = self.open_participant_id
        self.idle.stop()
        if view is not None:  # it showed a record: thrown away; a fresh empty one is built
            self.record_area.removeWidget(view)
            view.deleteLater()
            gc.unfreeze()   # so that it can be freed (see leave_out_of_collections)
            self._collect_before_prebuild = True
        self.record_view = None
        self._prebuild_record_view()
        self.open_participant_id = ""
        self._reveal_timer.stop()
        self.record_area.setCurrentWidget(self.record_hint)
        self.model.set_query(None)
        self.caseload.clear_filters()
        self.sync_service = None
        self.notice.clear_message()
        self.problem.clear_message()
        for dialog in (self.new_participant_dialog, self.settings_dialog, self.problems_dialog):
            if dialog is not None and dialog.isVisible():
                dialog.reject()
        notice = notice or ("Keyworker locked itself because it was not used for a while. "
                            "Any form you were filling in was kept." if reason == "idle" else
                            "Keyworker is locked. Any form you were filling in was kept.")
        self.ops.close_store(on_done=lambda _r: self.sig_locked.emit())
        self._show_start(notice)

    # --- sync -----------------------------------------------------------------------

    def refresh_sync_status(self) -> None:
        """Read the strip's numbers from the sync service (cheap queries on the open store)."""
        store = self.ops.store
        if store is None or self._locked:
            return
        self._render_sync(_read_sync_numbers(self.sync_state, store, self.sync_service))

    def _refresh_sync_status_off_thread(self) -> None:
        """As ``refresh_sync_status``, reading on the operations thread: just unlocked, the
        outbox sum over a big caseload is the dearest read of the unlock."""
        service, base = self.sync_service, self.sync_state

        def show(state: SyncState) -> None:
            if not self._locked and self.sync_service is service:
                self._render_sync(dataclasses.replace(
                    self.sync_state, enrolled=state.enrolled, online=state.online,
                    last_sync=state.last_sync, waiting=state.waiting, quarantined=state.quarantined))

        self.ops.run("Counting what waits to be sent",
                     lambda store: _read_sync_numbers(base, store, service), on_done=show)

    def _render_sync(self, state: SyncState) -> None:
        self.sync_state = state
        self.sync_status.render(state)
        self.sig_sync_state.emit(state)

    @property
    def syncing(self) -> bool:
        return self.sync_handle is not None and not self.sync_handle.finished

    def sync_now(self) -> OpHandle[SyncRun] | None:
        """Run one sync through the operations layer; returns its handle (None if not started)."""
        if self._locked:
            return None
        service = self.sync_service
        if service is None or not service.is_enrolled():
            self.statusBar().showMessage("Not enrolled with a controller — see Settings (Ctrl+,).", 8000)
            self.notice.show_message("info", "This laptop is not enrolled with a controller yet, so "
                                     "there is nowhere to sync to. Your work is saved here. "
                                     "Enrol in Settings (Ctrl+,) with the code from your manager.")
            return None
        if self.syncing:
            return self.sync_handle

        def work(store: Store, report: Report) -> SyncRun:
            mark = service.referral_mark()
            result = service.run(report)
            if not store.db.is_open:   # revoked or locked by the controller
                return SyncRun(result)
            return SyncRun(result, tuple(self._give_references(store, service.new_referrals_since(mark))))

        def changes(run: SyncRun) -> OpChanges:
            pulled = frozenset(r.participant_id for r in run.new_referrals)
            return OpChanges(ALL_RECORD_TYPES if pulled else frozenset(), pulled, outbox=True, sync=True)

        self.problem.clear_message()
        self._render_sync(dataclasses.replace(self.sync_state, running=True, progress_done=0,
                                              progress_total=0, stage="Connecting", last_problem=""))
        handle = self.ops.run_reporting("Syncing", work, changes, on_done=self._on_sync_done,
                                        on_failed=self._on_sync_failed,
                                        on_progress=self._on_sync_progress)
        handle.sig_finished.connect(self._on_sync_finished)
        self.sync_handle = handle
        return handle

    def _give_references(self, store: Store, pulled: list[NewReferral]) -> list[NewReferral]:
        """Give participants who came with a referral their reference on this laptop (worker thread)."""
        named: list[NewReferral] = []
        for new in pulled:
            participant = store.participants.find(new.participant_id)
            if participant is None:
                continue
            if not participant.participant_ref:
                ref = next_participant_ref(store, self.programmes.get(participant.programme))
                participant = store.save(participant.replace(participant_ref=ref))
            named.append(dataclasses.replace(new, participant_ref=participant.participant_ref))
        return named

    def _on_sync_progress(self, stage: str, done: int, total: int) -> None:
        if self.sync_state.running:
            self._render_sync(dataclasses.replace(self.sync_state, progress_done=done,
                                                  progress_total=total, stage=stage))

    def _on_sync_finished(self) -> None:
        self._render_sync(dataclasses.replace(self.sync_state, running=False))
        self.refresh_sync_status()

    def _on_sync_failed(self, failure: OpFailure) -> None:
        # The problem banner shows it, as for every failed operation (_on_failed).
        self._render_sync(dataclasses.replace(self.sync_state, last_problem=failure.text))

    def _on_sync_done(self, run: SyncRun) -> None:
        result = run.result
        error = getattr(result, "error", None)
        text = f"{error.message}\n{error.next_step}".strip() if error is not None else ""
        if run.store_gone:
            self.ops.set_store(None)
            revoked = getattr(result, "outcome", None) is RunOutcome.REVOKED
            self.lock(reason="controller", notice=text or "Your organisation asked this laptop to lock.")
            if revoked:
                self.start.show_failure(OpFailure(error.message if error else "This laptop was revoked.",
                                                  error.next_step if error else ""))
            return
        self._render_sync(dataclasses.replace(self.sync_state, last_problem=text))
        if self._locked:
            return
        if text:
            self.problem.show_message("error", "Sync stopped. " + text)
        elif getattr(result, "outcome", None) is RunOutcome.PARTIAL:
            self.problem.show_message("warning", "Sync finished, but the controller set some items aside. "
                                      "Use “see why” in the sync bar to put them right.")
        if run.new_referrals:
            self.notice.show_message("info", describe_new_referrals(run.new_referrals))
        self.statusBar().showMessage("Sync stopped." if text else "Sync finished.", 5000)

    def show_sync_problems(self) -> None:
        """The list of items the controller set aside, each with a way to open the record."""
        service = self.sync_service
        if self._locked or service is None:
            return
        if self.problems_dialog is None:
            dialog = SyncProblemsDialog(self)
            dialog.sig_open_participant.connect(self.open_participant)
            dialog.finished.connect(lambda _r: self._forget_dialog("problems_dialog", dialog))
            self.problems_dialog = dialog
        self.problems_dialog.render(service.quarantined())
        self.problems_dialog.open()

    def _forget_dialog(self, attribute: str, dialog: QWidget) -> None:
        """A closed dialog is deleted; forget it first, so nothing touches it afterwards."""
        if getattr(self, attribute) is dialog:
            setattr(self, attribute, None)
        dialog.deleteLater()

    # --- settings -------------------------------------------------------------------

    def _settings_state(self) -> SettingsState:
        store = self.ops.store
        service = self.sync_service if not self._locked else None
        cipher = ""
        if store is not None:
            rows = store.db.query("PRAGMA cipher_version")
            cipher = str(rows[0][0]) if rows else ""
        limit = self.profile.config.idle_lock_minutes if self.profile else 10
        controller = (service.controller_url() if service else "") or (
            self.profile.config.controller_url if self.profile else "")
        return SettingsState(
            controller_url=controller, enrolled=bool(service and service.is_enrolled()),
            can_enrol=service is not None, idle_minutes=self._idle_minutes(store),
            idle_max_minutes=limit, versions=versions(cipher))

    def open_settings(self, tab: int = 0) -> None:
        dialog = SettingsDialog(self)
        dialog.render(self._settings_state())
        dialog.tabs.setCurrentIndex(tab)
        dialog.sig_enrol.connect(lambda url, code: self._do_enrol(dialog, url, code))
        dialog.sig_idle_minutes.connect(self._set_idle_minutes)
        dialog.finished.connect(lambda _r: self._forget_dialog("settings_dialog", dialog))
        self.settings_dialog = dialog
        dialog.open()

    def _do_enrol(self, dialog: SettingsDialog, url: str, code: str) -> None:
        service = self.sync_service
        if service is None:
            return

        def done(_result: Any) -> None:
            if self._locked or self.settings_dialog is not dialog:   # closed meanwhile
                return
            dialog.render(self._settings_state())
            dialog.show_enrol_result(True, f"This laptop is now enrolled with {service.controller_url()}. "
                                     "Press Sync now (F5) to send your work.")

        def failed(failure: OpFailure) -> None:
            if self.settings_dialog is dialog:
                dialog.show_enrol_result(False, failure.text)

        self.ops.run("Enrolling", lambda _store: service.enrol(url, code), OpChanges(settings=True),
                     on_done=done, on_failed=failed)

    def _set_idle_minutes(self, minutes: int) -> None:
        self.ops.run("Saving settings", lambda s: s.set_meta("ui.idle_lock_minutes", str(minutes)),
                     OpChanges(settings=True))
        self.idle.set_timeout_ms(self._idle_timeout_ms(minutes))

    # --- closing --------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.record_view is not None and not self._locked:
            flush_record_drafts(self.record_view)
        self.idle.stop()
        self._main_page_timer.stop()
        if "model" in self.__dict__:  # built (its reader thread is running)
            self.model.set_query(None)
            self.model.shutdown()
        self.ops.shutdown()
        super().closeEvent(event)


def _read_sync_numbers(base: SyncState, store: Store, service: SyncService | None) -> SyncState:
    """``base`` with the sync strip's numbers read from ``service`` (or the store alone)."""
    if service is None:
        return dataclasses.replace(base, enrolled=False, online=None, last_sync=None,
                                   waiting=store.outbox_count("pending"), quarantined=0)
    return dataclasses.replace(base, enrolled=service.is_enrolled(), online=service.is_online(),
                               last_sync=service.last_sync_at(), waiting=service.waiting(),
                               quarantined=service.quarantined_count())


def describe_new_referrals(new: Sequence[NewReferral]) -> str:
    """"2 new referrals: WWS-000003, WWS-000004. They are in your caseload." (references only)."""
    refs = [r.participant_ref or "no reference yet" for r in new]
    named = ", ".join(refs[:REFERRALS_NAMED])
    if len(refs) > REFERRALS_NAMED:
        named += f" and {len(refs) - REFERRALS_NAMED} more"
    if len(refs) == 1:
        return f"1 new referral: {named}. It is in your caseload."
    return f"{len(refs)} new referrals: {named}. They are in your caseload."


def next_participant_ref(store: Store, programme: Programme | None) -> str:
    """The next free human-facing id on this laptop, e.g. ``WWS-000042``."""
    words = (programme.short_name if programme else "P").split()
    prefix = "".join(w[0] for w in words if w[0].isalnum()).upper() or "P"
    n = int(store.db.scalar("SELECT count(*) FROM participant")) + 1
    while store.db.scalar("SELECT 1 FROM participant WHERE participant_ref = ?", (f"{prefix}-{n:06d}",)):
        n += 1
    return f"{prefix}-{n:06d}"
