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
from dataclasses import dataclass, replace
from datetime import date, timedelta
from typing import Any, Callable, Sequence

from PySide6.QtCore import (
    QAbstractTableModel, QModelIndex, QObject, QPersistentModelIndex, Qt, Signal,
)

from keyworker_app.records import ParticipantStatus
from keyworker_app.store.database import Database
from keyworker_app.store.store import fts_query

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
        if f.consent_missing:
            clauses.append("NOT EXISTS (SELECT 1 FROM consent c WHERE c.participant_id = p.id"
                           " AND c.status = 'given')")
        if f.signature_owed:
            clauses.append("EXISTS (SELECT 1 FROM esf_form e WHERE e.participant_id = p.id"
                           " AND e.signature_owed = 1)")
        # The outbox has no index by participant: IN (…) builds the set once per query,
        # where a correlated EXISTS would scan the outbox once per participant.
        if f.unsynced:
            clauses.append("p.id IN (SELECT participant_id FROM outbox WHERE state = 'pending')")
        if f.quarantined:
            clauses.append("p.id IN (SELECT participant_id FROM outbox WHERE state = 'quarantined')")
        return (" WHERE " + " AND ".join(clauses)) if clauses else "", params

    def order_by(self, f: CaseloadFilter) -> str:
        direction = "DESC" if f.descending else "ASC"
        return " ORDER BY " + _ORDER_BY[f.sort].format(d=direction) + f", p.rowid {direction}"

    def count(self, f: CaseloadFilter) -> int:
        where, params = self.where(f)
        return int(self.db.scalar("SELECT count(*) FROM participant p" + where, params))

    def page(self, f: CaseloadFilter, offset: int, limit: int = PAGE_SIZE) -> list[CaseloadRow]:
        where, params = self.where(f)
        rows = self.db.query(f"SELECT {_ROW_COLUMNS} FROM participant p{where}{self.order_by(f)}"
                             " LIMIT ? OFFSET ?", [*params, limit, offset])
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


class QtCaseloadModel(QAbstractTableModel):
    """The caseload for a ``QTableView``: filter in, rows out, fetched a window at a time.

    ``set_filter`` replaces the query (one model reset); ``refresh`` re-reads it after an
    operation changed participants, keeping as many rows loaded as before. ``total`` is
    the number of participants matching, ``sig_total_changed(int)`` says when it changes.
    Sorting through the header calls ``sort``, which is SQL too.
    """

    sig_total_changed = Signal(int)

    ParticipantIdRole = Qt.ItemDataRole.UserRole + 1

    def __init__(self, query: CaseloadQuery | None = None,
                 programme_names: dict[str, str] | None = None,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._query = query
        self._filter = CaseloadFilter()
        self._rows: list[CaseloadRow] = []
        self._total = 0
        self._programme_names = programme_names or {}
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

    def _reload(self, wanted: int) -> None:
        self.beginResetModel()
        if self._query is None:
            self._rows, total = [], 0
        else:
            total = self._query.count(self._filter)
            self._rows = self._query.page(self._filter, 0, min(wanted, total)) if total else []
        self.endResetModel()
        if total != self._total:
            self._total = total
        self.sig_total_changed.emit(total)

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
        return not parent.isValid() and len(self._rows) < self._total

    def fetchMore(self, parent: ModelIndex = QModelIndex()) -> None:  # noqa: B008
        if parent.isValid() or self._query is None:
            return
        more = self._query.page(self._filter, len(self._rows), PAGE_SIZE)
        if not more:
            return
        start = len(self._rows)
        self.beginInsertRows(QModelIndex(), start, start + len(more) - 1)
        self._rows.extend(more)
        self.endInsertRows()

    def sort(self, column: int, order: Qt.SortOrder = Qt.SortOrder.AscendingOrder) -> None:
        key = self.columns[column].sort if 0 <= column < len(self.columns) else None
        if key is None:
            return
        self.set_filter(self._filter.with_(sort=key, descending=order == Qt.SortOrder.DescendingOrder))

    def sort_column(self) -> int:
        return next((i for i, c in enumerate(self.columns) if c.sort == self._filter.sort), 0)
