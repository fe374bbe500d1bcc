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
import logging
import threading
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, Signal
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
from .operations import OpChanges, OpFailure, Operations
from .settings import SettingsDialog, SettingsState, versions
from .start import Banner, StartScreen, UnlockInfo
from .sync_status import ProgressCallback, SyncService, SyncState, SyncStatusWidget

log = logging.getLogger("keyworker.ui")

try:  # the other UI engineer's record screen; the placeholder below is only a guard
    from .record import ParticipantRecordView, RecordState
    HAVE_RECORD_VIEW = True
except ImportError:  # pragma: no cover - only until ui/record.py lands
    HAVE_RECORD_VIEW = False

#: How many of a participant's audit entries the record shows (newest history first).
AUDIT_SHOWN = 200

#: Every record type: what a sync run may have changed.
ALL_RECORD_TYPES = frozenset(RECORD_TYPE_BY_NAME)

SyncFactory = Callable[[Store], SyncService]
Enrol = Callable[[str, str], Any]


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


def make_record_state(file: ParticipantFile, programme: Programme | None, drafts: tuple[Draft, ...],
                      *, keyworker_id: str = "", today: date | None = None,
                      audit_entries: tuple[Any, ...] = ()) -> Any:
    """A ``RecordState`` for whichever record view is installed.

    ``ui.record.RecordState`` belongs to the record screen's author: its fields are filled
    by name, and any field this window does not know keeps its default.
    """
    if not HAVE_RECORD_VIEW:
        return FallbackRecordState(file, programme, drafts)
    offered: dict[str, Any] = {
        "participant_file": file, "programme": programme or file.participant.programme,
        "drafts": drafts, "keyworker_id": keyworker_id, "today": today or date.today(),
        "audit_entries": audit_entries,
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


def default_record_view() -> QWidget:
    return ParticipantRecordView() if HAVE_RECORD_VIEW else PlaceholderRecordView()


class _SyncRelay(QObject):
    """Carries a sync run's progress and end from its thread to the GUI thread."""

    sig_progress = Signal(int, int, str)
    sig_finished = Signal(object, object)  # result, OpFailure | None


class MainWindow(QMainWindow):
    """The whole app in one window. Injected: sync engine, enrolment, idle timeout, today."""

    sig_locked = Signal()
    sig_unlocked = Signal()
    sig_record_shown = Signal(str)           # participant id
    sig_sync_state = Signal(object)          # SyncState, whenever the strip changes

    def __init__(self, paths: AppPaths, *, sync_factory: SyncFactory | None = None,
                 enrol: Enrol | None = None, idle_timeout_ms: int | None = None,
                 record_view_factory: Callable[[], QWidget] = default_record_view,
                 today: Callable[[], date] = date.today) -> None:
        super().__init__()
        self.setWindowTitle("Keyworker")
        self.resize(1280, 800)
        self.paths = paths
        self._sync_factory = sync_factory
        self._enrol = enrol
        self._record_view_factory = record_view_factory
        self._today = today
        self._idle_override_ms = idle_timeout_ms
        self.ops = Operations(parent=self)
        self.profile: Profile | None = None
        self.programmes: dict[str, Programme] = {p.id: p for p in list_programmes()}
        self.store_programme = ""
        self.sync_service: SyncService | None = None
        self.sync_state = SyncState()
        self._sync_thread: threading.Thread | None = None
        self._sync_relay = _SyncRelay()
        self._sync_relay.sig_progress.connect(self._on_sync_progress)
        self._sync_relay.sig_finished.connect(self._on_sync_finished)
        self.record_view: QWidget | None = None
        self.open_participant_id = ""
        self._reopen_after_unlock = ""
        self.new_participant_dialog: NewParticipantDialog | None = None
        self.settings_dialog: SettingsDialog | None = None
        self._locked = True

        # --- screens ---
        self.start = StartScreen()
        self.sync_status = SyncStatusWidget()
        self.notice = Banner()
        self.problem = Banner()
        self.caseload = CaseloadView()
        self.model = QtCaseloadModel(programme_names={p.id: p.short_name for p in self.programmes.values()})
        self.caseload.set_model(self.model)
        self.caseload.set_programmes([(p.id, p.name) for p in self.programmes.values()])
        self.record_area = QStackedWidget()
        self.record_hint = QLabel("Choose someone from your caseload and press Enter (or double-click) "
                                  "to open their record.")
        self.record_hint.setWordWrap(True)
        self.record_hint.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.record_hint.setProperty("role", "hint")
        self.record_area.addWidget(self.record_hint)
        self.splitter = QSplitter(Qt.Orientation.Horizontal)
        self.splitter.addWidget(self.caseload)
        self.splitter.addWidget(self.record_area)
        self.splitter.setStretchFactor(0, 3)
        self.splitter.setStretchFactor(1, 2)
        self.splitter.setChildrenCollapsible(False)
        main = QWidget()
        main_layout = QVBoxLayout(main)
        main_layout.setContentsMargins(0, 0, 0, 0)
        main_layout.setSpacing(4)
        main_layout.addWidget(self.sync_status)
        for banner in (self.notice, self.problem):
            main_layout.addWidget(banner)
        main_layout.addWidget(self.splitter, 1)
        self.main_page = main
        self.pages = QStackedWidget()
        self.pages.addWidget(self.start)
        self.pages.addWidget(main)
        self.setCentralWidget(self.pages)

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
        self.caseload.sig_filter_changed.connect(self.model.set_filter)
        self.caseload.sig_open.connect(self.open_participant)
        self.caseload.sig_new_participant.connect(self.new_participant)
        self.sync_status.sig_sync_now.connect(self.sync_now)
        self.idle.sig_idle.connect(lambda: self.lock(reason="idle"))
        self.ops.sig_changed.connect(self._on_changed)
        self.ops.sig_failed.connect(self._on_failed)
        self.ops.sig_busy.connect(self._on_busy)
        self.model.sig_failed.connect(self._on_failed)

        self._show_start()

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
                                        self.caseload.focus_search, "Search the caseload")
        self.clear_action = self._action("&Clear filters", "Ctrl+Shift+F", self.caseload.clear_filters)
        self.list_action = self._action("Go to the &list", "Ctrl+1", self.caseload.table.setFocus)
        view_menu.addActions([self.find_action, self.clear_action, self.list_action])
        sync_menu = bar.addMenu("&Sync")
        self.sync_action = self._action("&Sync now", "F5", self.sync_now,
                                        "Send waiting changes and fetch new referrals")
        sync_menu.addAction(self.sync_action)
        help_menu = bar.addMenu("&Help")
        help_menu.addAction(self._action("&Keyboard shortcuts", "F1", self.show_shortcuts))
        help_menu.addAction(self._action("&About Keyworker", None,
                                         lambda: self.open_settings(tab=2)))
        self.data_actions = [self.new_action, self.lock_action, self.find_action,
                             self.clear_action, self.list_action, self.sync_action]

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
        self.model.set_query(CaseloadQuery(store.db, today=self._today))
        self.pages.setCurrentWidget(self.main_page)
        for action in self.data_actions:
            action.setEnabled(True)
        self.problem.clear_message()
        if keyring_warning:
            self.notice.show_message("warning", keyring_warning)
        else:
            self.notice.clear_message()
        drafts = store.drafts()
        if drafts:
            word = "form" if len(drafts) == 1 else "forms"
            self.notice.show_message("info", f"You have {len(drafts)} unsaved {word} kept from "
                                     "before Keyworker locked. Open the participant to carry on.")
        self.sync_service = self._sync_factory(store) if self._sync_factory else None
        self.refresh_sync_status()
        self.idle.set_timeout_ms(self._idle_timeout_ms(self._idle_minutes(store)))
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
        dialog.finished.connect(lambda _r: dialog.deleteLater())
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

        def work(store: Store) -> tuple[ParticipantFile, tuple[Draft, ...], tuple[Any, ...]]:
            file = store.participant_file(participant_id)
            drafts = tuple(d for d in store.drafts() if d.participant_id == participant_id)
            return file, drafts, tuple(store.audit_entries(participant_id, limit=AUDIT_SHOWN))

        self.ops.run("Opening record", work, on_done=lambda r: self._show_record(*r))

    def _show_record(self, file: ParticipantFile, drafts: tuple[Draft, ...],
                     audit_entries: tuple[Any, ...]) -> None:
        if self._locked:
            return
        view = self._ensure_record_view()
        self.open_participant_id = file.participant.id
        programme = self.programmes.get(file.participant.programme)
        view.render(self._record_state(file, drafts, audit_entries))
        if self.record_area.currentWidget() is not view:
            self.record_area.setCurrentWidget(view)
            # The record needs the room now; the list keeps enough to pick someone else.
            total = sum(self.splitter.sizes()) or self.width()
            self.splitter.setSizes([int(total * 0.38), total - int(total * 0.38)])
        self.caseload.select_participant(file.participant.id)
        self.sig_record_shown.emit(file.participant.id)

    def _record_state(self, file: ParticipantFile, drafts: tuple[Draft, ...],
                      audit_entries: tuple[Any, ...] | None = None) -> Any:
        store = self.ops.store
        if audit_entries is None:
            audit_entries = tuple(store.audit_entries(file.participant.id, limit=AUDIT_SHOWN)) if store else ()
        return make_record_state(file, self.programmes.get(file.participant.programme), drafts,
                                 keyworker_id=store.actor if store else "", today=self._today(),
                                 audit_entries=audit_entries)

    def _ensure_record_view(self) -> QWidget:
        if self.record_view is None:
            view = self._record_view_factory()
            view.setAccessibleName("Participant record")
            view.sig_save.connect(self._save_from_record)  # type: ignore[attr-defined]
            view.sig_delete.connect(self._delete_from_record)  # type: ignore[attr-defined]
            view.sig_save_draft.connect(self._save_draft)  # type: ignore[attr-defined]
            view.sig_discard_draft.connect(self.ops.discard_draft)  # type: ignore[attr-defined]
            if hasattr(view, "sig_save_form"):
                view.sig_save_form.connect(self._save_form_from_record)
            if hasattr(view, "sig_attach"):
                view.sig_attach.connect(self._attach)
            self.record_area.addWidget(view)
            self.record_view = view
        return self.record_view

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
        if changes.outbox or changes.store:
            self.refresh_sync_status()
        pid = self.open_participant_id
        if pid and (pid in changes.participant_ids or changes.drafts) and self.record_view is not None:
            try:
                file = store.participant_file(pid, audit_view=False)
            except KeyworkerError:  # deleted meanwhile: go back to the hint
                self.open_participant_id = ""
                self.record_area.setCurrentWidget(self.record_hint)
                return
            drafts = tuple(d for d in store.drafts() if d.participant_id == pid)
            self.record_view.render(self._record_state(file, drafts))

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

    def lock(self, reason: str = "") -> None:
        """Keep unsaved work as drafts, forget every screen's data, close the store."""
        if self._locked:
            return
        view = self.record_view
        if view is not None:
            flush_record_drafts(view)  # emits sig_save_draft now: those saves queue before the close
        self._locked = True
        self._reopen_after_unlock = self.open_participant_id
        self.idle.stop()
        if view is not None:
            self.record_area.removeWidget(view)
            view.deleteLater()
            self.record_view = None
        self.open_participant_id = ""
        self.record_area.setCurrentWidget(self.record_hint)
        self.model.set_query(None)
        self.caseload.clear_filters()
        self.sync_service = None
        self.notice.clear_message()
        self.problem.clear_message()
        for dialog in (self.new_participant_dialog, self.settings_dialog):
            if dialog is not None and dialog.isVisible():
                dialog.reject()
        notice = ("Keyworker locked itself because it was not used for a while. "
                  "Any form you were filling in was kept." if reason == "idle" else
                  "Keyworker is locked. Any form you were filling in was kept.")
        self.ops.close_store(on_done=lambda _r: self.sig_locked.emit())
        self._show_start(notice)

    # --- sync -----------------------------------------------------------------------

    def refresh_sync_status(self) -> None:
        store = self.ops.store
        if store is None:
            return
        last = store.get_meta("sync.last_success_at", "") or store.get_meta("last_sync_at", "")
        getter = getattr(self.sync_service, "last_sync_at", None)
        when: datetime | None = None
        if callable(getter):
            value = getter()
            when = value if isinstance(value, datetime) else None
        elif last:
            try:
                when = datetime.fromisoformat(last)
            except ValueError:
                when = None
        online_probe = getattr(self.sync_service, "is_online", None)
        online = online_probe() if callable(online_probe) else network_online()
        self._render_sync(dataclasses.replace(
            self.sync_state, enrolled=self.sync_service is not None, online=online, last_sync=when,
            waiting=store.outbox_count("pending"), quarantined=store.outbox_count("quarantined")))

    def _render_sync(self, state: SyncState) -> None:
        self.sync_state = state
        self.sync_status.render(state)
        self.sig_sync_state.emit(state)

    def sync_now(self) -> None:
        if self._locked:
            return
        if self.sync_service is None:
            self.statusBar().showMessage("Not enrolled with a controller — see Settings (Ctrl+,).", 8000)
            self.notice.show_message("info", "This laptop is not enrolled with a controller yet, so "
                                     "there is nowhere to sync to. Your work is saved here. "
                                     "Enrol in Settings (Ctrl+,) with the code from your manager.")
            return
        if self._sync_thread is not None and self._sync_thread.is_alive():
            return
        service = self.sync_service
        relay = self._sync_relay

        def progress(done: int, total: int, stage: str = "") -> None:
            relay.sig_progress.emit(int(done), int(total), str(stage))

        def work() -> None:
            try:
                result = service.run(progress)
            except Exception as exc:  # shown as plain words on the GUI thread
                relay.sig_finished.emit(None, OpFailure.from_exception(exc))
                return
            relay.sig_finished.emit(result, None)

        self._render_sync(dataclasses.replace(self.sync_state, running=True, progress_done=0,
                                              progress_total=0, stage="", last_problem=""))
        self._sync_thread = threading.Thread(target=work, name="keyworker-sync", daemon=True)
        self._sync_thread.start()

    def _on_sync_progress(self, done: int, total: int, stage: str) -> None:
        self._render_sync(dataclasses.replace(self.sync_state, running=True, progress_done=done,
                                              progress_total=total, stage=stage))

    def _on_sync_finished(self, _result: Any, failure: OpFailure | None) -> None:
        self._render_sync(dataclasses.replace(self.sync_state, running=False,
                                              last_problem=failure.text if failure else ""))
        if self._locked:
            return
        if failure is not None:
            self.problem.show_message("error", "Sync stopped. " + failure.text)
        else:
            self.statusBar().showMessage("Sync finished.", 5000)
        # A sync can bring referrals and change any record's state: refresh everything.
        self._on_changed(OpChanges(ALL_RECORD_TYPES, frozenset({self.open_participant_id} - {""}),
                                   outbox=True))

    # --- settings -------------------------------------------------------------------

    def open_settings(self, tab: int = 0) -> None:
        dialog = SettingsDialog(self)
        store = self.ops.store
        cipher = ""
        if store is not None:
            rows = store.db.query("PRAGMA cipher_version")
            cipher = str(rows[0][0]) if rows else ""
        limit = self.profile.config.idle_lock_minutes if self.profile else 10
        controller = (store.get_meta("sync.controller_url", "") if store else "") or (
            self.profile.config.controller_url if self.profile else "")
        dialog.render(SettingsState(
            controller_url=controller, enrolled=self.sync_service is not None,
            can_enrol=self._enrol is not None and store is not None,
            idle_minutes=self._idle_minutes(store), idle_max_minutes=limit,
            versions=versions(cipher)))
        dialog.tabs.setCurrentIndex(tab)
        dialog.sig_enrol.connect(lambda url, code: self._do_enrol(dialog, url, code))
        dialog.sig_idle_minutes.connect(self._set_idle_minutes)
        dialog.finished.connect(lambda _r: dialog.deleteLater())
        self.settings_dialog = dialog
        dialog.open()

    def _do_enrol(self, dialog: SettingsDialog, url: str, code: str) -> None:
        enrol = self._enrol
        if enrol is None:
            return

        def done(_result: Any) -> None:
            dialog.show_enrol_result(True, f"This laptop is now enrolled with {url}.")
            store = self.ops.store
            if store is not None and self._sync_factory is not None:
                self.sync_service = self._sync_factory(store)
            self.refresh_sync_status()

        self.ops.run_task("Enrolling", lambda: enrol(url, code), OpChanges(settings=True),
                          on_done=done,
                          on_failed=lambda failure: dialog.show_enrol_result(False, failure.text))

    def _set_idle_minutes(self, minutes: int) -> None:
        self.ops.run("Saving settings", lambda s: s.set_meta("ui.idle_lock_minutes", str(minutes)),
                     OpChanges(settings=True))
        self.idle.set_timeout_ms(self._idle_timeout_ms(minutes))

    # --- closing --------------------------------------------------------------------

    def closeEvent(self, event: QCloseEvent) -> None:  # noqa: N802 - Qt's name
        if self.record_view is not None and not self._locked:
            flush_record_drafts(self.record_view)
        self.idle.stop()
        self.model.set_query(None)
        self.model.shutdown()
        self.ops.shutdown()
        if self._sync_thread is not None:
            self._sync_thread.join(5)
        super().closeEvent(event)


def next_participant_ref(store: Store, programme: Programme | None) -> str:
    """The next free human-facing id on this laptop, e.g. ``WWS-000042``."""
    words = (programme.short_name if programme else "P").split()
    prefix = "".join(w[0] for w in words if w[0].isalnum()).upper() or "P"
    n = int(store.db.scalar("SELECT count(*) FROM participant")) + 1
    while store.db.scalar("SELECT 1 FROM participant WHERE participant_ref = ?", (f"{prefix}-{n:06d}",)):
        n += 1
    return f"{prefix}-{n:06d}"


_network_info_loaded: bool | None = None


def network_online() -> bool | None:
    """Whether the system says it is online (None when it cannot tell)."""
    global _network_info_loaded
    try:
        from PySide6.QtNetwork import QNetworkInformation
    except ImportError:
        return None
    if _network_info_loaded is None:
        _network_info_loaded = bool(QNetworkInformation.loadDefaultBackend())
    info = QNetworkInformation.instance() if _network_info_loaded else None
    if info is None:
        return None
    reach = info.reachability()
    if reach == QNetworkInformation.Reachability.Unknown:
        return None
    return reach == QNetworkInformation.Reachability.Online
