"""The caseload list: a plain SQL query object and its Qt adapter, ``QtCaseloadModel``.

Search (FTS5), filters, sorting and the count are all done in SQL so a caseload of 100,000
stays smooth: the model only ever holds the rows that have been scrolled to, fetched in
windows of ``PAGE_SIZE`` (``canFetchMore``/``fetchMore``). There is no proxy model: a proxy
over a lazily fetched model would sort and filter only what happened to be loaded.

:class:`CaseloadQuery` knows nothing about Qt, so it can be tested and benchmarked alone;
:class:`QtCaseloadModel` turns it into rows and columns for a ``QTableView``.
"""

from __future__ import annotations

import enum
import logging
import queue
import threading
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable, Sequence

from PySide6.QtCore import (
    QAbstractTableModel,
    QModelIndex,
    QObject,
    QPersistentModelIndex,
    Qt,
    Signal,
)

from keyworker_app.records import ParticipantStatus
from keyworker_app.store.database import Database
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
        if match and f == CaseloadFilter(text=f.text, sort=f.sort, descending=f.descending):
            # Search alone: the index holds one row per participant (kept by triggers), so
            # count there rather than looking up every matching participant.
            return int(self.db.scalar("SELECT count(*) FROM participant_search"
                                      " WHERE participant_search MATCH ?", (match,)))
        where, params = self.where(f)
        return int(self.db.scalar("SELECT count(*) FROM participant p" + where, params))

    def page(self, f: CaseloadFilter, offset: int, limit: int = PAGE_SIZE,
             total: int = -1) -> list[CaseloadRow]:
        """Rows ``offset`` to ``offset + limit``; ``total`` (the count, when known) picks the plan."""
        where, params = self.where(f)
        rows = self.db.query(f"SELECT {_ROW_COLUMNS} FROM participant p{self._walk(f, total)}"
                             f"{where}{self.order_by(f)} LIMIT ? OFFSET ?", [*params, limit, offset])
        if not rows:
            return []
        ids = [r[0] for r in rows]
        marks = ",".join("?" for _ in ids)
        consented = {r[0] for r in self.db.query(
            f"SELECT DISTINCT participant_id FROM consent WHERE status = 'given'"
            f" AND participant_id IN ({marks})", ids)}
        owed = {r[0] for r in self.db.query(
            f"SELECT DISTINCT participant_id FROM esf_form WHERE signature_owed = 1"
            f" AND participant_id IN ({marks})", ids)}
        return [CaseloadRow(
            participant_id=r[0], participant_ref=r[1],
            name=f"{r[4]}, {r[3] or r[2]}".strip(", "),
            date_of_birth=_uk_date(r[5]), postcode=r[6], programme=r[7], status=r[8],
            review_due=_uk_date(r[9]), consent_missing=r[0] not in consented,
            signature_owed=r[0] in owed) for r in rows]

    def _walk(self, f: CaseloadFilter, total: int) -> str:
        """``INDEXED BY`` the sort order's index for a search with many matches, else nothing."""
        index = _SORT_INDEX.get(f.sort)
        if index is None or not f.text or total <= WALK_INDEX_ABOVE:
            return ""
        if self._indexes is None:
            self._indexes = frozenset(r[0] for r in self.db.query(
                "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'participant'"))
        return f" INDEXED BY {index}" if index in self._indexes else ""

    def programmes(self) -> list[str]:
        """Programme ids that appear in the caseload (for the programme filter)."""
        return [r[0] for r in self.db.query("SELECT DISTINCT programme FROM participant ORDER BY 1")]


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
    """One question for the reader: rows ``offset`` to ``offset + limit``, and the count."""

    generation: int
    query: CaseloadQuery
    filter: CaseloadFilter
    offset: int
    limit: int
    count: bool  # a new list (count it too) rather than the next window of the same one
    total: int = -1  # for the next window: the count already known


@dataclass(frozen=True)
class CaseloadAnswer:
    """What the reader found for a :class:`CaseloadRead` (``total`` is -1 when not counted)."""

    read: CaseloadRead
    total: int
    rows: tuple[CaseloadRow, ...]


class CaseloadReader(QObject):
    """Runs caseload queries on a thread of its own, so typing never waits for SQL.

    ``read()`` queues a question; the answer arrives on the GUI thread as
    ``sig_answer(CaseloadAnswer)`` or ``sig_failed(CaseloadRead, OpFailure)``. A question
    older than the newest one asked is skipped without running: when the keyworker types
    five letters quickly, only the last search runs. The store's one connection is shared
    with the operations thread; ``Database.query`` takes its lock, so they take turns.
    """

    sig_answer = Signal(object)           # CaseloadAnswer
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

    def _work(self) -> None:
        while True:
            question = self._queue.get()
            if question is None:
                return
            if question.generation < self._newest:
                continue  # a newer keystroke or filter has been asked for since
            try:
                q, f = question.query, question.filter
                total = q.count(f) if question.count else -1
                limit = min(question.limit, total) if question.count else question.limit
                known = total if question.count else question.total
                rows = tuple(q.page(f, question.offset, limit, known)) if limit > 0 else ()
            except Exception as exc:  # shown on the GUI thread (or dropped there if stale)
                self.sig_failed.emit(question, OpFailure.from_exception(exc))
                continue
            self.sig_answer.emit(CaseloadAnswer(question, total, rows))


class QtCaseloadModel(QAbstractTableModel):
    """The caseload for a ``QTableView``: filter in, rows out, fetched a window at a time.

    ``set_filter`` asks for a new list; ``refresh`` re-reads it after an operation changed
    participants, keeping as many rows loaded as before. The SQL runs on a
    :class:`CaseloadReader` thread: the rows shown stay until the answer comes, then the
    model resets once (``sig_loaded``). Each request carries a generation number, and an
    answer for anything but the newest request is dropped, so a slow search for "a" never
    overwrites the quicker one for "ahmed" typed after it. ``sig_busy(bool)`` says when a
    list is being read. ``total`` is the number of participants matching, and
    ``sig_total_changed(int)`` is emitted with each new list. Sorting through the header
    calls ``sort``, which is SQL too.
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
        self._generation = 0
        self._fetching = False
        self._loading = False
        self._programme_names = programme_names or {}
        self._reader = reader or CaseloadReader(self)
        self._reader.sig_answer.connect(self._on_answer)
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
            self._set_loading(False)
            self._show(answer.total, answer.rows)
            return
        self._fetching = False
        if not answer.rows or read.offset != len(self._rows):
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(answer.rows) - 1)
        self._rows.extend(answer.rows)
        self.endInsertRows()

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
        if not index.isValid() or index.row() >= len(self._rows):
            return None
        row = self._rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.AccessibleTextRole):
            return self.columns[index.column()].value(row)
        if role == Qt.ItemDataRole.ToolTipRole and self.columns[index.column()].sort is None:
            return "\n".join(row.flags) or None
        if role == self.ParticipantIdRole:
            return row.participant_id
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> Any:
        if role == Qt.ItemDataRole.DisplayRole and orientation == Qt.Orientation.Horizontal:
            return self.columns[section].title
        return None

    def canFetchMore(self, parent: ModelIndex = QModelIndex()) -> bool:  # noqa: B008
        return (not parent.isValid() and not self._fetching and not self._loading
                and len(self._rows) < self._total)

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        """Ask for the next window; the rows are inserted when the reader answers."""
        if parent.isValid() or self._query is None or not self.canFetchMore(parent):
            return
        self._fetching = True
        self._reader.read(CaseloadRead(self._generation, self._query, self._filter,
                                       len(self._rows), PAGE_SIZE, False, self._total))

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        key = self.columns[column].sort if 0 <= column < len(self.columns) else None
        if key is None:
            return
        self.set_filter(self._filter.with_(sort=key, descending=order == Qt.SortOrder.DescendingOrder))

    def sort_column(self) -> int:
        return next((i for i, c in enumerate(self.columns) if c.sort == self._filter.sort), 0)
