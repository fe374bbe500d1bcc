"""The one way the UI changes anything: operations run off the GUI thread (Anki's pattern).

Every write — saving records, deleting, drafts, unlocking, closing the store — is an
:class:`Operation` handed to :class:`Operations`. A single worker thread runs them one after
another (the store has one connection behind one lock, so running writes in parallel would
only queue on that lock; running them in order also means "save the draft, then close the
store" happens in that order). When one finishes, the GUI thread hears about it through a
Qt signal carrying an :class:`OpChanges` report, and each screen refreshes itself from that
report instead of being told by whoever made the change.

Failures arrive as plain-English text (a :class:`KeyworkerError`'s ``message`` and
``next_step``). Anything unexpected is turned into a generic message naming only the
problem type: never a traceback, never a value (it could be personal data).
"""

from __future__ import annotations

import logging
import queue
import threading
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable, Generic, Iterable, TypeVar

from PySide6.QtCore import QObject, Signal

from keyworker_app.errors import KeyworkerError, StoreClosed
from keyworker_app.records import Record
from keyworker_app.repositories import participant_of
from keyworker_app.store.store import Store

log = logging.getLogger("keyworker.ui")

T = TypeVar("T")

#: ``report(stage, done, total)``: how a long operation says how far it has got.
Report = Callable[[str, int, int], None]


@dataclass(frozen=True)
class OpChanges:
    """What an operation touched, so screens know whether to refresh.

    ``record_types`` holds record type names (``"participant"``, ``"consent"``...);
    ``participant_ids`` the participants whose file changed. ``outbox`` is true when items
    waiting to sync may have changed, ``drafts`` when unsaved form work did, ``store`` when
    the store itself was opened or closed, ``sync`` when a sync run may have changed what
    was sent, set aside or pulled (the sent log, the quarantine, new referrals).
    """

    record_types: frozenset[str] = frozenset()
    participant_ids: frozenset[str] = frozenset()
    outbox: bool = False
    drafts: bool = False
    store: bool = False
    settings: bool = False
    sync: bool = False

    @property
    def empty(self) -> bool:
        return not (self.record_types or self.participant_ids or self.outbox or self.drafts
                    or self.store or self.settings or self.sync)

    def touches(self, record_type: str) -> bool:
        return record_type in self.record_types

    def merged(self, other: OpChanges) -> OpChanges:
        return OpChanges(self.record_types | other.record_types,
                         self.participant_ids | other.participant_ids,
                         self.outbox or other.outbox, self.drafts or other.drafts,
                         self.store or other.store, self.settings or other.settings,
                         self.sync or other.sync)

    @classmethod
    def for_records(cls, records: Iterable[Record]) -> OpChanges:
        """The report for saving (or deleting) ``records``: every save writes the outbox."""
        records = list(records)
        return cls(frozenset(r.record_type for r in records),
                   frozenset(pid for r in records if (pid := participant_of(r))),
                   outbox=bool(records))


NO_CHANGES = OpChanges()


@dataclass(frozen=True)
class OpFailure:
    """A failure as a person sees it: what happened and what to do next."""

    message: str
    next_step: str = ""
    error_type: str = ""
    #: The typed error itself, for screens that react to its kind (e.g. a countdown).
    error: KeyworkerError | None = field(default=None, compare=False)

    @property
    def text(self) -> str:
        return f"{self.message}\n{self.next_step}".strip()

    @classmethod
    def from_exception(cls, exc: BaseException) -> OpFailure:
        if isinstance(exc, KeyworkerError):
            return cls(exc.message, exc.next_step, type(exc).__name__, exc)
        # Where it happened goes to the log, never the message: it could quote a value.
        frames = "; ".join(f"{f.filename.rsplit('/', 1)[-1]}:{f.lineno}"
                           for f in traceback.extract_tb(exc.__traceback__))
        log.error("operation failed unexpectedly: %s at %s", type(exc).__name__, frames)
        return cls("Keyworker hit an unexpected problem. Your saved work is safe.",
                   f"Try again. If it happens again, tell your IT team (problem type: "
                   f"{type(exc).__name__}).", type(exc).__name__)


class OpHandle(QObject, Generic[T]):
    """One queued operation's outcome, delivered on the GUI thread.

    ``sig_done(result)`` or ``sig_failed(OpFailure)``; then ``sig_finished`` either way.
    An operation that reports progress emits ``sig_progress(stage, done, total)`` meanwhile.
    """

    sig_progress = Signal(str, int, int)
    sig_done = Signal(object)
    sig_failed = Signal(object)
    sig_finished = Signal()

    def __init__(self, label: str) -> None:
        super().__init__()
        self.label = label
        self.result: Any = None
        self.failure: OpFailure | None = None
        self.finished = False


@dataclass
class _Job:
    label: str
    work: Callable[[Store | None], Any]
    changes: OpChanges | Callable[[Any], OpChanges]
    needs_store: bool
    handle: OpHandle[Any]


class _Relay(QObject):
    """Lives on the GUI thread; the worker emits here and Qt queues it across threads."""

    sig_job_finished = Signal(object, object, object)  # job, result, failure
    sig_job_progress = Signal(object, str, int, int)   # handle, stage, done, total


_STOP = object()


class Operations(QObject):
    """Runs operations one at a time on a worker thread and announces what changed.

    ``sig_changed(OpChanges)`` after every successful operation that changed something;
    ``sig_failed(OpFailure)`` after a failure (screens that asked can also listen on the
    :class:`OpHandle`); ``sig_finished(OpHandle)`` after every operation, done or failed;
    ``sig_busy(bool, str)`` when work starts and stops, for a busy indicator.
    """

    sig_changed = Signal(object)
    sig_failed = Signal(object)
    sig_finished = Signal(object)
    sig_busy = Signal(bool, str)

    def __init__(self, store: Store | None = None, parent: QObject | None = None) -> None:
        super().__init__(parent)
        # Two views of the store: the GUI's (forgotten the moment the app locks, so no screen
        # reads it again) and the worker's (kept until the queued close runs, so work queued
        # before the lock — such as saving a draft — still lands).
        self._store = store
        self._worker_store = store
        self._queue: queue.Queue[Any] = queue.Queue()
        self._relay = _Relay()
        self._relay.sig_job_finished.connect(self._on_job_finished)
        self._relay.sig_job_progress.connect(self._on_job_progress)
        self._pending: set[OpHandle[Any]] = set()
        self._thread = threading.Thread(target=self._work_loop, name="keyworker-operations",
                                         daemon=True)
        self._thread.start()

    # --- the store --------------------------------------------------------------------

    @property
    def store(self) -> Store | None:
        """The open store, or None while locked. GUI-thread reads may use it directly."""
        return self._store

    def set_store(self, store: Store | None) -> None:
        self._store = store
        self._worker_store = store

    @property
    def busy(self) -> bool:
        return bool(self._pending)

    # --- running ----------------------------------------------------------------------

    def run(self, label: str, work: Callable[[Store], T],
            changes: OpChanges | Callable[[T], OpChanges] = NO_CHANGES,
            on_done: Callable[[T], None] | None = None,
            on_failed: Callable[[OpFailure], None] | None = None) -> OpHandle[T]:
        """Queue ``work(store)``; its result goes to ``on_done`` on the GUI thread.

        ``changes`` is the report to announce, or a function making it from the result.
        The store is read when the operation starts, so an operation queued before a lock
        fails with "The profile is locked" rather than writing into a closed store.
        """
        return self._submit(label, lambda store: work(_require(store)), changes, True,
                            on_done, on_failed)

    def run_task(self, label: str, work: Callable[[], T],
                 changes: OpChanges | Callable[[T], OpChanges] = NO_CHANGES,
                 on_done: Callable[[T], None] | None = None,
                 on_failed: Callable[[OpFailure], None] | None = None) -> OpHandle[T]:
        """Queue work that needs no open store (unlocking, creating a profile)."""
        return self._submit(label, lambda _store: work(), changes, False, on_done, on_failed)

    def run_reporting(self, label: str, work: Callable[[Store, Report], T],
                      changes: OpChanges | Callable[[T], OpChanges] = NO_CHANGES,
                      on_done: Callable[[T], None] | None = None,
                      on_failed: Callable[[OpFailure], None] | None = None,
                      on_progress: Callable[[str, int, int], None] | None = None) -> OpHandle[T]:
        """Queue ``work(store, report)``, a long operation that says how far it has got.

        ``report(stage, done, total)`` may be called from the worker as often as it likes;
        each call reaches ``on_progress`` (and the handle's ``sig_progress``) on the GUI thread.
        """
        handle: OpHandle[T] = OpHandle(label)
        if on_progress is not None:
            handle.sig_progress.connect(on_progress)
        relay = self._relay

        def report(stage: str, done: int, total: int) -> None:
            relay.sig_job_progress.emit(handle, str(stage), int(done), int(total))

        return self._submit(label, lambda store: work(_require(store), report), changes, True,
                            on_done, on_failed, handle)

    def _submit(self, label: str, work: Callable[[Store | None], Any],
                changes: OpChanges | Callable[[Any], OpChanges], needs_store: bool,
                on_done: Callable[[Any], None] | None,
                on_failed: Callable[[OpFailure], None] | None,
                handle: OpHandle[Any] | None = None) -> OpHandle[Any]:
        handle = handle if handle is not None else OpHandle(label)
        if on_done is not None:
            handle.sig_done.connect(on_done)
        if on_failed is not None:
            handle.sig_failed.connect(on_failed)
        self._pending.add(handle)
        if len(self._pending) == 1:
            self.sig_busy.emit(True, label)
        self._queue.put(_Job(label, work, changes, needs_store, handle))
        return handle

    # --- common writes ----------------------------------------------------------------

    def save_records(self, records: list[Record], on_done: Callable[[list[Record]], None] | None = None,
                     on_failed: Callable[[OpFailure], None] | None = None) -> OpHandle[list[Record]]:
        """Save ``records`` in one transaction (record, outbox row and audit entry each)."""
        def work(store: Store) -> list[Record]:
            with store.db.transaction():
                return [store.save(r) for r in records]
        return self.run("Saving", work, OpChanges.for_records(records), on_done, on_failed)

    def delete_record(self, record_type: type[Record], record_id: str, reason: str,
                      participant_id: str = "",
                      on_done: Callable[[None], None] | None = None) -> OpHandle[None]:
        changes = OpChanges(frozenset({record_type.record_type}),
                            frozenset({participant_id} if participant_id else set()), outbox=True)
        return self.run("Deleting", lambda s: s.repo(record_type).delete(record_id, reason),
                        changes, on_done)

    def save_draft(self, key: str, form_id: str, participant_id: str,
                   answers: dict[str, Any]) -> OpHandle[None]:
        return self.run("Keeping your unsaved work",
                        lambda s: s.save_draft(key, form_id, participant_id, answers),
                        OpChanges(drafts=True))

    def discard_draft(self, key: str) -> OpHandle[None]:
        return self.run("Discarding a draft", lambda s: s.discard_draft(key), OpChanges(drafts=True))

    def close_store(self, on_done: Callable[[None], None] | None = None) -> OpHandle[None]:
        """Close the store after everything queued before this has run; then forget it."""
        def work(store: Store | None) -> None:
            self._worker_store = None
            if store is not None:
                store.close()
        self._store = None
        return self._submit("Locking", work, OpChanges(store=True), False, on_done, None)

    # --- the worker -------------------------------------------------------------------

    def _work_loop(self) -> None:
        while True:
            job = self._queue.get()
            if job is _STOP:
                return
            result: Any = None
            failure: OpFailure | None = None
            try:
                store = self._worker_store
                if job.needs_store and store is None:
                    raise StoreClosed()
                result = job.work(store)
            except Exception as exc:  # reported on screen as plain words, never re-raised here
                failure = OpFailure.from_exception(exc)
            self._relay.sig_job_finished.emit(job, result, failure)

    def _on_job_progress(self, handle: OpHandle[Any], stage: str, done: int, total: int) -> None:
        if not handle.finished:
            handle.sig_progress.emit(stage, done, total)

    def _on_job_finished(self, job: _Job, result: Any, failure: OpFailure | None) -> None:
        handle = job.handle
        self._pending.discard(handle)
        handle.finished = True
        if failure is None:
            handle.result = result
            changes = job.changes(result) if callable(job.changes) else job.changes
            handle.sig_done.emit(result)
            if not changes.empty:
                self.sig_changed.emit(changes)
        else:
            handle.failure = failure
            log.info("operation '%s' failed: %s", job.label, failure.error_type)
            handle.sig_failed.emit(failure)
            self.sig_failed.emit(failure)
        handle.sig_finished.emit()
        self.sig_finished.emit(handle)
        if not self._pending:
            self.sig_busy.emit(False, "")

    def shutdown(self, timeout: float = 10.0) -> None:
        """Finish queued work, then stop the worker (and close the store if still open)."""
        if self._thread.is_alive():
            if self._store is not None:
                self.close_store()
            self._queue.put(_STOP)
            self._thread.join(timeout)


def _require(store: Store | None) -> Store:
    if store is None:
        raise StoreClosed()
    return store
