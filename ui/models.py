"""The caseload list: a plain SQL query object and its Qt adapter, ``QtCaseloadModel``.

Search (FTS5), filters, sorting and the count are all done in SQL so a caseload of 100,000
stays smooth: the model only ever holds the rows that have been scrolled to, fetched in
windows of ``PAGE_SIZE`` (``canFetchMore``/``fetchMore``). There is no proxy model: a proxy
over a lazily fetched model would sort and filter only what happened to be loaded.

:class:`CaseloadQuery` knows nothing about Qt, so it can be tested and benchmarked alone;
:class:`QtCaseloadModel` turns it into rows and columns for a ``QTableView``.
"""

from __future__ import annotations

import contextlib
import enum
import functools
import logging
import queue
import threading
import time
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable, Iterator, Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from keyworker_app.records import ParticipantStatus
from keyworker_app.store.database import Database, DatabaseError
from keyworker_app.store.store import fts_query

from .operations import OpFailure

log = logging.getLogger("keyworker.ui")

PAGE_SIZE = 200

#: How far ahead "review due" looks: overdue reviews and those due in the next week.
REVIEW_DUE_DAYS = 7

ModelIndex = QModelIndex | QPersistentModelIndex


class SortKey(enum.StrEnum):
    """Columns the caseload can be sorted by (each maps to indexed SQL)."""

    NAME = "name"
    REF = "ref"
    DATE_OF_BIRTH = "date_of_birth"
    POSTCODE = "postcode"
    PROGRAMME = "programme"
    STATUS = "status"
    REVIEW_DUE = "review_due"


_ORDER_BY: dict[SortKey, str] = {
    SortKey.NAME: "p.family_name COLLATE NOCASE {d}, p.given_name COLLATE NOCASE {d}",
    SortKey.REF: "p.participant_ref {d}",
    SortKey.DATE_OF_BIRTH: "p.date_of_birth {d}",
    SortKey.POSTCODE: "p.postcode {d}",
    SortKey.PROGRAMME: "p.programme {d}",
    SortKey.STATUS: "p.status {d}",
    # Participants without a review date go last whichever way the list is sorted.
    SortKey.REVIEW_DUE: "p.review_due IS NULL, p.review_due {d}",
}


#: Indexes that give each sort order for free (rowid last, as the ORDER BY has it).
_SORT_INDEX: dict[SortKey, str] = {
    SortKey.NAME: "participant_by_family_name",
    SortKey.STATUS: "participant_by_status",
    SortKey.REF: "participant_by_ref",
    SortKey.DATE_OF_BIRTH: "participant_by_date_of_birth",
    SortKey.POSTCODE: "participant_by_postcode",
    SortKey.PROGRAMME: "participant_by_programme",
    SortKey.REVIEW_DUE: "participant_by_review_due",
}

#: A search matching more participants than this reads its windows by walking the sort
#: order's index and keeping the matches: "s" matches all 100,000, and sorting them all to
#: show the first 200 is what made short searches slow. Fewer matches are quicker sorted.
WALK_INDEX_ABOVE = 2_000


@dataclass(frozen=True)
class CaseloadFilter:
    """What the keyworker asked to see: search text, filters and sort order."""

    text: str = ""
    programme: str = ""                 # programme pack id, "" for all
    status: str = ""                    # ParticipantStatus value, "" for all
    review_due: bool = False            # review overdue or due within REVIEW_DUE_DAYS
    consent_missing: bool = False       # no consent given to any sharing profile
    signature_owed: bool = False        # an ESF form still waits for a signature
    unsynced: bool = False              # changes waiting in the outbox
    quarantined: bool = False           # an outbox item was set aside by the controller
    sort: SortKey = SortKey.NAME
    descending: bool = False

    def with_(self, **changes: Any) -> CaseloadFilter:
        return replace(self, **changes)


@dataclass(frozen=True)
class CaseloadRow:
    """One participant as the list shows them."""

    participant_id: str
    participant_ref: str
    name: str
    date_of_birth: str
    postcode: str
    programme: str
    status: str
    review_due: str
    consent_missing: bool = False
    signature_owed: bool = False

    @property
    def flags(self) -> list[str]:
        found = []
        if self.consent_missing:
            found.append("Consent missing")
        if self.signature_owed:
            found.append("Signature owed")
        return found


@dataclass(frozen=True)
class FirstPage:
    """The first rows of a new list; ``total`` is -1 until counted, ``matches`` is how many
    participants the search alone matches (-1 with no search), which picks later plans."""

    rows: tuple[CaseloadRow, ...]
    total: int
    matches: int = -1


def _narrowed(f: CaseloadFilter) -> bool:
    """Whether anything but the search text narrows the list."""
    return f != CaseloadFilter(text=f.text, sort=f.sort, descending=f.descending)


#: How long a filtered list's first rows may take before it is counted first instead.
FIRST_ROWS_BUDGET_S = 0.03

#: Every this many SQLite steps (a millisecond or so), a read checks whether it should stop
#: (``abandoned_when``). Not more often: each check needs the interpreter, which the GUI
#: thread may be holding.
CHECK_EVERY_STEPS = 50_000


class StaleRead(Exception):
    """A read given up because a newer one was asked for while it ran."""


class OverBudget(Exception):
    """A read given up because it took longer than it was allowed."""


@contextlib.contextmanager
def abandoned_when(db: Database, stale: Callable[[], bool],
                   over_budget: Callable[[], bool] = lambda: False) -> Iterator[None]:
    """Hold the database lock, and stop the SQL run inside as soon as ``stale()``
    (``StaleRead``) or ``over_budget()`` (``OverBudget``) says so.

    A progress handler rather than ``interrupt()``: the connection is shared with the
    operations thread, and an interrupt could land on its write instead. The handler is
    set and removed under the lock, so it only ever sees the queries run inside.
    """
    with db.lock:
        conn: Any = db.conn
        conn.set_progress_handler(lambda: 1 if stale() or over_budget() else 0, CHECK_EVERY_STEPS)
        try:
            yield
        except DatabaseError as exc:
            if stale():
                raise StaleRead() from exc
            if over_budget():
                raise OverBudget() from exc
            raise
        finally:
            conn.set_progress_handler(None, CHECK_EVERY_STEPS)


_ROW_COLUMNS = ("p.id, p.participant_ref, p.given_name, p.preferred_name, p.family_name,"
                " p.date_of_birth, p.postcode, p.programme, p.status, p.review_due")


class CaseloadQuery:
    """The caseload as SQL over the store's database: where-clause, count and pages."""

    def __init__(self, db: Database, today: Callable[[], date] = date.today) -> None:
        self.db = db
        self.today = today
        self._indexes: frozenset[str] | None = None

    def where(self, f: CaseloadFilter) -> tuple[str, list[Any]]:
        clauses: list[str] = []
        params: list[Any] = []
        match = fts_query(f.text)
        if match:
            clauses.append("p.rowid IN (SELECT rowid FROM participant_search"
                           " WHERE participant_search MATCH ?)")
            params.append(match)
        if f.programme:
            clauses.append("p.programme = ?")
            params.append(f.programme)
        if f.status:
            clauses.append("p.status = ?")
            params.append(f.status)
        if f.review_due:
            clauses.append("p.review_due IS NOT NULL AND p.review_due <= ?")
            params.append((self.today() + timedelta(days=REVIEW_DUE_DAYS)).isoformat())
        # Each flag is one index probe per participant (migration 0005 and the sync
        # migration's quarantine_open): never a scan of the outbox, consents or forms.
        if f.consent_missing:
            clauses.append("NOT EXISTS (SELECT 1 FROM consent c WHERE c.status = 'given'"
                           " AND c.participant_id = p.id)")
        if f.signature_owed:
            clauses.append("EXISTS (SELECT 1 FROM esf_form e WHERE e.signature_owed = 1"
                           " AND e.participant_id = p.id)")
        if f.unsynced:  # participant_pending is kept by triggers on the outbox
            clauses.append("EXISTS (SELECT 1 FROM participant_pending pp WHERE pp.participant_id = p.id)")
        if f.quarantined:  # items the controller set aside and nobody has resolved yet
            clauses.append("EXISTS (SELECT 1 FROM quarantine q WHERE q.resolved_at IS NULL"
                           " AND q.participant_id = p.id)")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self, f: CaseloadFilter) -> str:
        direction = "DESC" if f.descending else "ASC"
        return " ORDER BY " + _ORDER_BY[f.sort].format(d=direction) + f", p.rowid {direction}"

    def count(self, f: CaseloadFilter) -> int:
        match = fts_query(f.text)
        if match and not _narrowed(f):
            # Search alone: the index holds one row per participant (kept by triggers), so
            # count there rather than looking up every matching participant.
            return int(self.db.scalar("SELECT count(*) FROM participant_search"
                                      " WHERE participant_search MATCH ?", (match,)))
        where, params = self.where(f)
        return int(self.db.scalar("SELECT count(*) FROM participant p" + where, params))

    def first_page(self, f: CaseloadFilter, limit: int = PAGE_SIZE,
                   stale: Callable[[], bool] = lambda: False) -> FirstPage:
        """The first ``limit`` rows of a new list, and its count when that comes cheaply.

        A search alone is counted first in the search index (a few milliseconds at most):
        the count picks the plan, and is the answer. A filtered list gets its rows first,
        unless they take longer than ``FIRST_ROWS_BUDGET_S`` (the few who match are
        scattered through 100,000): then it is counted first, which is quick exactly when
        few match, and read with the count known; otherwise ``total`` is -1 and the caller
        counts it afterwards with :meth:`count`. A list shorter than ``limit`` is its own
        count. ``stale()`` true abandons the read (``StaleRead``).
        """
        with abandoned_when(self.db, stale):  # a search alone: its count and rows in one snapshot
            matches = self.count(CaseloadFilter(text=f.text)) if fts_query(f.text) else -1
            if not _narrowed(f):
                total = matches if matches >= 0 else self.participant_count()
                rows = self.page(f, 0, min(limit, total), matches) if total else []
                return FirstPage(tuple(rows), total, matches)
        try:
            deadline = time.perf_counter() + FIRST_ROWS_BUDGET_S
            with abandoned_when(self.db, stale, lambda: time.perf_counter() > deadline):
                rows = self.page(f, 0, limit, matches) if matches != 0 else []
            return FirstPage(tuple(rows), len(rows) if len(rows) < limit else -1, matches)
        except OverBudget:
            pass
        with abandoned_when(self.db, stale):
            total = self.count(f)
            rows = self.page(f, 0, min(limit, total), matches) if total else []
        return FirstPage(tuple(rows), total, matches)

    def participant_count(self) -> int:
        """Everyone on the caseload (an index count: well under a millisecond at 100,000)."""
        return int(self.db.scalar("SELECT count(*) FROM participant"))

    def page(self, f: CaseloadFilter, offset: int, limit: int = PAGE_SIZE,
             matches: int = -1) -> list[CaseloadRow]:
        """Rows ``offset`` to ``offset + limit``; ``matches`` (how many participants the
        search matches, when known) picks the plan."""
        with self.db.lock:
            if matches > 0 and matches >= self.participant_count():
                # The search matches everyone ("s" when every reference starts SYN-): it
                # filters nothing, and testing 100,000 participants against it is most of
                # the cost of the keystroke.
                f = f.with_(text="")
            where, params = self.where(f)
            # The flags are one index probe per row shown (migration 0005), in the same query.
            rows = self.db.query(
                f"SELECT {_ROW_COLUMNS},"
                " EXISTS (SELECT 1 FROM consent c WHERE c.status = 'given' AND c.participant_id = p.id),"
                " EXISTS (SELECT 1 FROM esf_form e WHERE e.signature_owed = 1 AND e.participant_id = p.id)"
                f" FROM participant p{self._walk(f, matches)}{where}{self.order_by(f)} LIMIT ? OFFSET ?",
                [*params, limit, offset])
        return [CaseloadRow(
            participant_id=r[0], participant_ref=r[1],
            name=f"{r[4]}, {r[3] or r[2]}".strip(", "),
            date_of_birth=_uk_date(r[5]), postcode=r[6], programme=r[7], status=r[8],
            review_due=_uk_date(r[9]), consent_missing=not r[10],
            signature_owed=bool(r[11])) for r in rows]

    def _walk(self, f: CaseloadFilter, matches: int) -> str:
        """``INDEXED BY`` the sort order's index for a search with many matches, else nothing."""
        index = _SORT_INDEX.get(f.sort)
        if index is None or not f.text or matches <= WALK_INDEX_ABOVE:
            return ""
        if self._indexes is None:
            self._indexes = frozenset(r[0] for r in self.db.query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'participant'"))
        return f" INDEXED BY {index}" if index in self._indexes else ""

    def programmes(self) -> list[str]:
        """Programme ids that appear in the caseload (for the programme filter)."""
        return [r[0] for r in self.db.query("SELECT DISTINCT programme FROM participant ORDER BY 1")]


@functools.lru_cache(maxsize=8192)  # every row shown formats two dates; most repeat
def _uk_date(iso: str | None) -> str:
    if not iso:
        return ""
    try:
        return date.fromisoformat(iso).strftime("%d/%m/%Y")
    except ValueError:
        return iso


STATUS_LABELS: dict[str, str] = {
    ParticipantStatus.REFERRED: "Referred",
    ParticipantStatus.ACTIVE: "Active",
    ParticipantStatus.ON_HOLD: "On hold",
    ParticipantStatus.EXITED: "Exited",
    ParticipantStatus.CLOSED: "Closed",
}


@dataclass(frozen=True)
class Column:
    title: str
    sort: SortKey | None
    value: Callable[[CaseloadRow], str]


@dataclass(frozen=True)
class CaseloadRead:
    """One question for the reader: rows ``offset`` to ``offset + limit`` of a list.

    ``count`` marks a new list (its first rows, then its count if that was not cheap)
    rather than the next window of the same one; ``matches`` is what the first answer
    said the search matches, so the next windows use the same plan.
    """

    generation: int
    query: CaseloadQuery
    filter: CaseloadFilter
    offset: int
    limit: int
    count: bool
    matches: int = -1


@dataclass(frozen=True)
class CaseloadAnswer:
    """What the reader found for a :class:`CaseloadRead`.

    ``total`` is -1 when the list is not counted yet (its count follows as
    ``sig_counted``). ``matches``: see :class:`FirstPage`.
    """

    read: CaseloadRead
    total: int
    rows: tuple[CaseloadRow, ...]
    matches: int = -1


class CaseloadReader(QObject):
    """Runs caseload queries on a thread of its own, so typing never waits for SQL.

    ``read()`` queues a question; the answer arrives on the GUI thread as
    ``sig_answer(CaseloadAnswer)`` (the rows, at once), then for a long filtered list
    ``sig_counted(CaseloadRead, int)``, or ``sig_failed(CaseloadRead, OpFailure)``.
    A question older than the newest one asked is skipped without running, and one
    overtaken while its SQL runs is abandoned (``abandoned_when``): when the
    keyworker types five letters quickly, only the last search runs to the end. The
    store's one connection is shared with the operations thread; ``Database.query``
    takes its lock, so they take turns.
    """

    sig_answer = Signal(object)           # CaseloadAnswer
    sig_counted = Signal(object, int)     # CaseloadRead, total
    sig_failed = Signal(object, object)   # CaseloadRead, OpFailure

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[CaseloadRead | None] = queue.Queue()
        self._newest = 0
        self._thread = threading.Thread(target=self._work, name="keyworker-caseload", daemon=True)
        self._thread.start()

    def read(self, question: CaseloadRead) -> None:
        self._newest = max(self._newest, question.generation)
        self._queue.put(question)

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread after the question it is on (if any)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _stale(self, question: CaseloadRead) -> bool:
        return question.generation < self._newest

    def _work(self) -> None:
        while True:
            question = self._queue.get()
            if question is None:
                return
            if self._stale(question):
                continue  # a newer keystroke or filter has been asked for since
            try:
                self._answer(question)
            except StaleRead:
                continue
            except Exception as exc:  # shown on the GUI thread (or dropped there if stale)
                if self._stale(question):
                    continue  # interrupted: a newer question is queued
                self.sig_failed.emit(question, OpFailure.from_exception(exc))

    def _answer(self, question: CaseloadRead) -> None:
        q, f = question.query, question.filter

        def stale() -> bool:
            return self._stale(question)

        if not question.count:  # the next window of a list already shown
            with abandoned_when(q.db, stale):
                rows = tuple(q.page(f, question.offset, question.limit, question.matches))
            self.sig_answer.emit(CaseloadAnswer(question, -1, rows, question.matches))
            return
        first = q.first_page(f, question.limit, stale)
        self.sig_answer.emit(CaseloadAnswer(question, first.total, first.rows, first.matches))
        if first.total >= 0 or stale():
            return
        with abandoned_when(q.db, stale):
            total = q.count(f)
        self.sig_counted.emit(question, total)


_DISPLAY = Qt.ItemDataRole.DisplayRole.value
_ACCESSIBLE_TEXT = Qt.ItemDataRole.AccessibleTextRole.value
_TOOL_TIP = Qt.ItemDataRole.ToolTipRole.value


class QtCaseloadModel(QAbstractTableModel):
    """The caseload for a ``QTableView``: filter in, rows out, fetched a window at a time.

    ``set_filter`` asks for a new list; ``refresh`` re-reads it after an operation changed
    participants, keeping as many rows loaded as before. The SQL runs on a
    :class:`CaseloadReader` thread: the rows shown stay until the answer comes, then the
    model resets once (``sig_loaded``). Each request carries a generation number, and an
    answer for anything but the newest request is dropped, so a slow search for "a" never
    overwrites the quicker one for "ahmed" typed after it. ``sig_busy(bool)`` says when a
    list is being read. ``total`` is the number of participants matching, and
    ``sig_total_changed(int)`` is emitted with each new list; a long filtered list shows its
    first rows before it is counted (``total`` is -1, ``counting`` is true), and
    ``sig_total_changed`` comes again with the count. Sorting through the header calls
    ``sort``, which is SQL too.
    """

    sig_total_changed = Signal(int)
    sig_loaded = Signal()          # a new list is in (after set_filter, refresh, set_query)
    sig_busy = Signal(bool)        # reading a new list, or done
    sig_failed = Signal(object)    # OpFailure: the list could not be read

    ParticipantIdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, query: CaseloadQuery | None = None,
                 programme_names: dict[str, str] | None = None,
                 parent: QObject | None = None, reader: CaseloadReader | None = None) -> None:
        super().__init__(parent)
        self._query = query
        self._filter = CaseloadFilter()
        self._rows: list[CaseloadRow] = []
        self._total = 0
        self._matches = -1     # how many the search alone matches: keeps the plan for later windows
        self._more = False     # the last window was full (what says "there may be more" uncounted)
        self._generation = 0
        self._fetching = False
        self._loading = False
        self._programme_names = programme_names or {}
        self._reader = reader or CaseloadReader(self)
        self._reader.sig_answer.connect(self._on_answer)
        self._reader.sig_counted.connect(self._on_counted)
        self._reader.sig_failed.connect(self._on_failed)
        self.columns: Sequence[Column] = (
            Column("Name", SortKey.NAME, lambda r: r.name),
            Column("Participant ref", SortKey.REF, lambda r: r.participant_ref),
            Column("Status", SortKey.STATUS, lambda r: STATUS_LABELS.get(r.status, r.status)),
            Column("Review due", SortKey.REVIEW_DUE, lambda r: r.review_due),
            Column("Needs attention", None, lambda r: ", ".join(r.flags)),
            Column("Date of birth", SortKey.DATE_OF_BIRTH, lambda r: r.date_of_birth),
            Column("Postcode", SortKey.POSTCODE, lambda r: r.postcode),
            Column("Programme", SortKey.PROGRAMME,
                   lambda r: self._programme_names.get(r.programme, r.programme)),
        )
        if query is not None:
            self._reload(PAGE_SIZE)

    # --- data in --------------------------------------------------------------------

    def set_query(self, query: CaseloadQuery | None) -> None:
        """Point the model at a store's caseload (or at nothing, while locked)."""
        self._query = query
        self._reload(PAGE_SIZE)

    def set_programme_names(self, names: dict[str, str]) -> None:
        self._programme_names = dict(names)

    @property
    def filter(self) -> CaseloadFilter:
        return self._filter

    def set_filter(self, f: CaseloadFilter) -> None:
        if f != self._filter:
            self._filter = f
            self._reload(PAGE_SIZE)

    def refresh(self) -> None:
        """Re-read after a change, keeping the rows already scrolled to."""
        self._reload(max(PAGE_SIZE, len(self._rows)))

    def shutdown(self) -> None:
        """Stop reading (the window calls this as it closes)."""
        self._generation += 1
        self._reader.shutdown()

    @property
    def loading(self) -> bool:
        """Whether a new list has been asked for and has not come yet."""
        return self._loading

    @property
    def counting(self) -> bool:
        """Whether the list shown is still being counted (its rows are in)."""
        return self._total < 0

    def _reload(self, wanted: int) -> None:
        self._generation += 1
        self._fetching = False
        if self._query is None:
            # Nothing to read (locked): empty at once, so no data outlives the lock.
            self._set_loading(False)
            self._show(0, [])
            return
        self._set_loading(True)
        self._reader.read(CaseloadRead(self._generation, self._query, self._filter, 0, wanted, True))

    def _set_loading(self, loading: bool) -> None:
        if loading != self._loading:
            self._loading = loading
            self.sig_busy.emit(loading)

    def _show(self, total: int, rows: Sequence[CaseloadRow]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self._total = total
        self.endResetModel()
        self.sig_total_changed.emit(total)
        self.sig_loaded.emit()

    def _on_answer(self, answer: CaseloadAnswer) -> None:
        read = answer.read
        if read.generation != self._generation:
            return  # the answer to an older keystroke or filter: something newer is coming
        if read.count:
            self._matches = answer.matches
            self._more = len(answer.rows) >= read.limit
            self._set_loading(False)
            self._show(answer.total, answer.rows)
            return
        self._fetching = False
        if read.offset != len(self._rows):
            return
        self._more = len(answer.rows) >= read.limit
        if not answer.rows:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(answer.rows) - 1)
        self._rows.extend(answer.rows)
        self.endInsertRows()

    def _on_counted(self, read: CaseloadRead, total: int) -> None:
        if read.generation != self._generation:
            return
        self._total = total
        self.sig_total_changed.emit(total)

    def _on_failed(self, read: CaseloadRead, failure: OpFailure) -> None:
        if read.generation != self._generation:
            return  # e.g. a search still running as the store closed for a lock
        self._fetching = False
        self._set_loading(False)
        log.info("caseload read failed: %s", failure.error_type)
        self.sig_failed.emit(failure)

    # --- data out -------------------------------------------------------------------

    @property
    def total(self) -> int:
        """How many participants the list holds, or -1 while it is being counted."""
        return self._total

    def row(self, index: int) -> CaseloadRow:
        return self._rows[index]

    def participant_id(self, index: int) -> str:
        return self._rows[index].participant_id

    def row_of(self, participant_id: str) -> int:
        """The loaded row showing ``participant_id``, or -1."""
        return next((i for i, r in enumerate(self._rows) if r.participant_id == participant_id), -1)

    # --- QAbstractTableModel --------------------------------------------------------

    def rowCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008 - Qt's signature
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: ModelIndex = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.columns)

    def data(self, index: ModelIndex, role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        # The view asks each cell for a dozen roles as it paints: answer the ones the list
        # does not use before anything else.
        if role not in _ROLES_SERVED or not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role == _DISPLAY or role == _ACCESSIBLE_TEXT:
            return self.columns[index.column()].value(row)
        if role == _TOOL_TIP:
            return ("\n".join(row.flags) or None) if self.columns[index.column()].sort is None else None
        return row.participant_id

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section].title
        return None

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        if parent.isValid() or self._fetching or self._loading:
            return False
        return len(self._rows) < self._total if self._total >= 0 else self._more

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        """Ask for the next window; the rows are inserted when the reader answers."""
        if parent.isValid() or self._query is None or not self.canFetchMore(parent):
            return
        self._fetching = True
        self._reader.read(CaseloadRead(self._generation, self._query, self._filter,
                                       len(self._rows), PAGE_SIZE, False, self._matches))

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        key = self.columns[column].sort if 0 <= column < len(self.columns) else None
        if key is None:
            return
        self.set_filter(self._filter.with_(sort=key, descending=order == Qt.SortOrder.DescendingOrder))

    def sort_column(self) -> int:
        return next((i for i, c in enumerate(self.columns) if c.sort == self._filter.sort), 0)


_ROLES_SERVED = frozenset({_DISPLAY, _ACCESSIBLE_TEXT, _TOOL_TIP, int(QtCaseloadModel.ParticipantIdRole)})
