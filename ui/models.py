"""The caseload list: a plain SQL query object and its Qt adapter, ``QtCaseloadModel``.

Search (FTS5), filters, sorting and the count are all done in SQL so a caseload of 100,000
stays smooth: the model only ever holds the rows that have been scrolled to, fetched in
windows (``canFetchMore``/``fetchMore``): a new list's first ``FIRST_PAGE_SIZE`` rows, then
``PAGE_SIZE`` at a time as the view scrolls. There is no proxy model: a proxy
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

from keyworker_app.errors import KeyworkerError
from keyworker_app.records import ParticipantStatus
from keyworker_app.store.database import Database, DatabaseError
from keyworker_app.store.store import fts_query

from .operations import OpFailure

log = logging.getLogger("keyworker.ui")

PAGE_SIZE = 200
#: How many rows a new list (a keystroke, a filter) reads first: more than a tall window
#: shows (the view asks for the next window itself if it has room for more). Each row is
#: a page or two to decrypt from a cold cache (its own row, its flags' index entries), and
#: a search with many matches walks the name order until it has found this many: at
#: 100,000 participants the first keystrokes read about 40% fewer pages than with 200.
FIRST_PAGE_SIZE = 60

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
#: Sorting reads every match's row, walking reads the index until it has the rows asked
#: for (200 when this was measured; a new list now asks for ``FIRST_PAGE_SIZE``): at
#: 100,000 they cost about the same from a warm cache at 700-1,000 matches, and from a
#: cold one (every row a page to decrypt) walking reads far fewer pages ("ah", 1,920
#: matches: 370 pages against 2,170).
WALK_INDEX_ABOVE = 1_000


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
                   over_budget: Callable[[], bool] = lambda: False,
                   every: int | None = None) -> Iterator[None]:
    """Hold the database lock, and stop the SQL run inside as soon as ``stale()``
    (``StaleRead``) or ``over_budget()`` (``OverBudget``) says so.

    A progress handler rather than ``interrupt()``: the connection is shared with the
    operations thread, and an interrupt could land on its write instead. The handler is
    set and removed under the lock, so it only ever sees the queries run inside. It is
    asked every ``every`` SQLite steps (``CHECK_EVERY_STEPS`` unless given).
    """
    every = CHECK_EVERY_STEPS if every is None else every
    with db.lock:
        conn: Any = db.conn
        conn.set_progress_handler(lambda: 1 if stale() or over_budget() else 0, every)
        try:
            yield
        except DatabaseError as exc:
            if stale():
                raise StaleRead() from exc
            if over_budget():
                raise OverBudget() from exc
            raise
        finally:
            conn.set_progress_handler(None, every)


_ROW_COLUMNS = ("p.id, p.participant_ref, p.given_name, p.preferred_name, p.family_name,"
                " p.date_of_birth, p.postcode, p.programme, p.status, p.review_due")


# --- warming the page cache ---------------------------------------------------------------
#
# Every page SQLCipher reads from the file is decrypted and checked, so right after the
# unlock the first keystrokes read (and decrypt) a few thousand pages each and take twice
# as long as later ones. The reader reads those parts of the store once, in key order, a
# short step at a time whenever it has no question to answer (``CaseloadReader.warm``).

#: Rows (or index entries) one warming step reads: about three hundred pages to decrypt,
#: a few milliseconds. A question that comes meanwhile stops the step within about a
#: millisecond (``WARM_CHECK_EVERY_STEPS``).
WARM_ROWS_PER_STEP = 2_500
#: Search-index blocks one step reads (each is about a page).
WARM_BLOCKS_PER_STEP = 250
#: Between two steps the reader waits for a question, holding nothing (so the operations
#: thread gets the store's connection whenever it is waiting for it), at least this long
#: and ``WARM_PAUSE_PER_STEP`` times as long as the last step took: warming takes at most a
#: third of one processor, and leaves the rest to the GUI thread (building the record
#: screen in the same quiet moments) and whatever else the laptop is doing.
WARM_PAUSE_S = 0.001
WARM_PAUSE_PER_STEP = 2.0
#: Warming starts this long after the last question was answered: in a quiet moment (the
#: keyworker reading the list, a pause in typing), never between the answers to questions
#: that come one after another, where its steps would only compete with them.
WARM_AFTER_QUIET_S = 0.15
#: While warming is held (``hold_warming_while``), how often to ask again.
WARM_HELD_POLL_S = 0.02
#: How often (SQLite steps) a warming step checks whether a question has come: a few
#: times a step. Not more: each check needs the interpreter, which the GUI thread may hold.
WARM_CHECK_EVERY_STEPS = 5_000

_FIRST_ROWID = -(2 ** 63)

#: Put on the reader's queue to wake it: what to warm has changed.
_WAKE = object()


@dataclass(frozen=True)
class WarmWalk:
    """One part of the store, read into the page cache a step at a time in key order.

    ``sql`` takes the last key read (its columns as ``?1``, ``?2``...) and then how many
    rows to pass over; it answers the key that many rows on, or no row once it has read
    to the end. ``first`` is a key before every other.
    """

    part: str
    sql: str
    first: tuple[Any, ...]
    rows_per_step: int = WARM_ROWS_PER_STEP


#: What searching and the sorted list read, in the order it is warmed. The cache (64 MB)
#: holds a little less than all of it at 100,000 participants and forgets the pages read
#: longest ago first, so what every keystroke reads comes last.
WARM_WALKS: tuple[WarmWalk, ...] = (
    # The participants' rows: each list shows some, a search sorts its matches by them.
    WarmWalk("participants", "SELECT rowid FROM participant WHERE rowid > ?1"
             " ORDER BY rowid LIMIT 1 OFFSET ?2", (_FIRST_ROWID,)),
    # The flags' index entries, which every row shown probes (the probes' own WHERE).
    WarmWalk("consent given", "SELECT participant_id, rowid FROM consent WHERE status = 'given'"
             " AND participant_id >= ?1 AND (participant_id, rowid) > (?1, ?2)"
             " ORDER BY participant_id, rowid LIMIT 1 OFFSET ?3", ("", _FIRST_ROWID)),
    WarmWalk("signature owed", "SELECT participant_id, rowid FROM esf_form WHERE signature_owed = 1"
             " AND participant_id >= ?1 AND (participant_id, rowid) > (?1, ?2)"
             " ORDER BY participant_id, rowid LIMIT 1 OFFSET ?3", ("", _FIRST_ROWID)),
    # The search index, blocks and all (substr reads a block that runs over several pages).
    WarmWalk("search index", "SELECT id FROM participant_search_data WHERE id > ?1"
             " AND substr(block, 1, 1) IS NOT NULL ORDER BY id LIMIT 1 OFFSET ?2",
             (_FIRST_ROWID,), WARM_BLOCKS_PER_STEP),
    # The name order the list opens in, which searches with many matches walk.
    WarmWalk("name order", "SELECT family_name, given_name, rowid FROM participant"
             " WHERE family_name >= ?1 COLLATE NOCASE AND (family_name COLLATE NOCASE,"
             " given_name COLLATE NOCASE, rowid) > (?1, ?2, ?3) ORDER BY family_name COLLATE NOCASE,"
             " given_name COLLATE NOCASE, rowid LIMIT 1 OFFSET ?4", ("", "", _FIRST_ROWID)),
    # Whatever index SQLite counts everyone in (``participant_count``, read by every search
    # page): one step, as one count, answering no row.
    WarmWalk("participant count", "SELECT ?1 WHERE (SELECT count(*) FROM participant) < 0", ()),
)


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

    def first_page(self, f: CaseloadFilter, limit: int = FIRST_PAGE_SIZE,
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

    def warm_walks(self) -> tuple[WarmWalk, ...]:
        """What to read into the page cache once the store is open (see ``WARM_WALKS``)."""
        return WARM_WALKS

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

    ``warm(query)`` has the reader read what searching needs into the store's page cache
    (``CaseloadQuery.warm_walks``) in quiet moments (``WARM_AFTER_QUIET_S`` after the last
    answer): a short step at a time, a step overtaken by a question is abandoned and read
    again after the answer, and between steps the connection is left free. While ``hold()`` (``hold_warming_while``)
    is true, for instance while the operations thread has work, no step runs and one
    running is abandoned. ``sig_warmed(query)`` says it is done.
    """

    sig_answer = Signal(object)           # CaseloadAnswer
    sig_counted = Signal(object, int)     # CaseloadRead, total
    sig_failed = Signal(object, object)   # CaseloadRead, OpFailure
    sig_warmed = Signal(object)           # CaseloadQuery whose pages have all been read once

    def __init__(self, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self._queue: queue.Queue[CaseloadRead | object | None] = queue.Queue()
        self._newest = 0
        # Warming: what the GUI thread asked for, and how far the reader's thread has got.
        self._warm_for: CaseloadQuery | None = None
        self._warming: CaseloadQuery | None = None
        self._warmed: CaseloadQuery | None = None
        self._walk = 0
        self._key: tuple[Any, ...] | None = None
        self.warm_steps = 0    # steps read to the end (for tests and the benchmark)
        self._hold: Callable[[], bool] = lambda: False
        self._quiet_from = time.monotonic()   # when the reader last finished answering
        self._step_took = 0.0              # how long the last warming step took (seconds)
        self._thread = threading.Thread(target=self._work, name="keyworker-caseload", daemon=True)
        self._thread.start()

    def read(self, question: CaseloadRead) -> None:
        self._newest = max(self._newest, question.generation)
        self._queue.put(question)

    def warm(self, query: CaseloadQuery | None) -> None:
        """Read what searching ``query`` needs into the page cache whenever there is no
        question to answer; ``None`` stops (the store is closing)."""
        self._warm_for = query
        self._queue.put(_WAKE)   # also abandons a step for an older query

    def hold_warming_while(self, hold: Callable[[], bool]) -> None:
        """Warm only while ``hold()`` is false (it is asked from the reader's thread)."""
        self._hold = hold

    def shutdown(self, timeout: float = 5.0) -> None:
        """Stop the thread after the question it is on (if any)."""
        if self._thread.is_alive():
            self._queue.put(None)
            self._thread.join(timeout)

    def _stale(self, question: CaseloadRead) -> bool:
        return question.generation < self._newest

    def _next(self) -> CaseloadRead | object | None:
        """The next question; while none comes in a quiet moment, the cache is warmed a
        step at a time."""
        while True:
            query = self._warm_for
            if query is None or query is self._warmed:
                return self._queue.get()
            wait = self._quiet_from + WARM_AFTER_QUIET_S - time.monotonic()
            if wait <= 0 and self._hold():
                wait = WARM_HELD_POLL_S
            try:
                return self._queue.get(timeout=max(wait, WARM_PAUSE_PER_STEP * self._step_took,
                                                   WARM_PAUSE_S))
            except queue.Empty:
                if wait <= 0:
                    started = time.perf_counter()
                    self._warm_step(query)
                    self._step_took = time.perf_counter() - started

    def _warm_step(self, query: CaseloadQuery) -> None:
        if query is not self._warming:
            self._warming, self._walk, self._key = query, 0, None
        walks = query.warm_walks()
        if self._walk < len(walks):
            walk = walks[self._walk]
            key = self._key if self._key is not None else walk.first

            gave_way = False

            def stale() -> bool:   # once true, stays true: the step was stopped for it
                nonlocal gave_way
                gave_way = gave_way or (not self._queue.empty() or self._warm_for is not query
                                        or self._hold())
                return gave_way

            try:
                with abandoned_when(query.db, stale, every=WARM_CHECK_EVERY_STEPS):
                    rows = query.db.query(walk.sql, (*key, walk.rows_per_step - 1))
            except StaleRead:
                return   # a question came: it is answered first, and this step read again after
            except KeyworkerError as exc:   # the store closed for a lock: nothing left to warm
                log.info("caseload warming stopped at %s: %s", walk.part, type(exc).__name__)
                self._warmed = query
                return
            except DatabaseError as exc:
                # A part this store lacks, say: warming is only a head start, so on to the
                # next part (a search that reads it meets the fault itself).
                log.info("caseload warming skipped %s: %s", walk.part, type(exc).__name__)
                rows = []
            self.warm_steps += 1
            if rows:
                self._key = tuple(rows[0])
                return
            self._walk, self._key = self._walk + 1, None
            if self._walk < len(walks):
                return
        self._warmed = query
        self.sig_warmed.emit(query)

    def _work(self) -> None:
        while True:
            question = self._next()
            if question is None:
                return
            if not isinstance(question, CaseloadRead):
                continue  # woken to warm another store's cache, or to stop warming
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
            finally:
                self._quiet_from = time.monotonic()

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
    ``sort``, which is SQL too. Once a store is set (``set_query``), the reader warms its
    page cache for searching in the moments it has nothing to read (``sig_warmed``).
    """

    sig_total_changed = Signal(int)
    sig_loaded = Signal()          # a new list is in (after set_filter, refresh, set_query)
    sig_busy = Signal(bool)        # reading a new list, or done
    sig_failed = Signal(object)    # OpFailure: the list could not be read
    sig_warmed = Signal()          # the store's pages for searching have all been read once

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
        self._reader.sig_warmed.connect(self._on_warmed)
        self._warmed = False
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
            self._reader.warm(query)
            self._reload(FIRST_PAGE_SIZE)

    # --- data in --------------------------------------------------------------------

    def set_query(self, query: CaseloadQuery | None) -> None:
        """Point the model at a store's caseload (or at nothing, while locked); its first
        list is read first, then the cache is warmed (``sig_warmed``)."""
        self._query = query
        self._warmed = False
        self._reader.warm(query)
        self._reload(FIRST_PAGE_SIZE)

    def set_programme_names(self, names: dict[str, str]) -> None:
        self._programme_names = dict(names)

    @property
    def filter(self) -> CaseloadFilter:
        return self._filter

    def set_filter(self, f: CaseloadFilter) -> None:
        if f != self._filter:
            self._filter = f
            self._reload(FIRST_PAGE_SIZE)

    def refresh(self) -> None:
        """Re-read after a change, keeping the rows already scrolled to."""
        self._reload(max(FIRST_PAGE_SIZE, len(self._rows)))

    def shutdown(self) -> None:
        """Stop reading (the window calls this as it closes)."""
        self._generation += 1
        self._reader.shutdown()

    @property
    def loading(self) -> bool:
        """Whether a new list has been asked for and has not come yet."""
        return self._loading

    def hold_warming_while(self, hold: Callable[[], bool]) -> None:
        """No warming while ``hold()`` is true (say, while operations wait for the store)."""
        self._reader.hold_warming_while(hold)

    @property
    def warmed(self) -> bool:
        """Whether the reader has read this store's pages for searching into its cache."""
        return self._warmed

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

    def _on_warmed(self, query: CaseloadQuery) -> None:
        if query is self._query:
            self._warmed = True
            self.sig_warmed.emit()

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
