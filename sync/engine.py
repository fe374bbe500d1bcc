"""The sync engine: an explicit state machine from the outbox to the controller and back.

One run goes through :class:`Stage` in order::

    PREPARING -> PUSHING -> PULLING_REFERRALS -> PULLING_INSTRUCTIONS -> DONE

and ends in one :class:`RunOutcome`. Every item pushed gets one :class:`Outcome`. A run never
raises for something a person can meet: the failure is in :attr:`SyncResult.error`, a
:mod:`sync.errors` exception with a plain message, and the outcome says which kind.

* PREPARING: ``GET /v1/health`` (also how "offline" is found out before anything else), and
  the batch limits clamped to the controller's.
* PUSHING: pending outbox rows in chunks (growing: small first, so sending starts soon,
  then larger, for fewer transactions); each chunk projected (:mod:`sync.projection`),
  recorded (:meth:`Ledger.prepare`), then sent in batches bounded by count and bytes, each
  body gzip-compressed; each batch's answers checked whole (:mod:`sync.wire`) and written
  down, many batches' in one transaction. A batch the controller finds too large is split
  in two. Two sender threads post the batches and a writer thread writes their answers
  down while this thread projects the next chunk (see :meth:`SyncEngine._push`). Then the
  one-off shares the keyworker asked for.
* PULLING_REFERRALS: pages of referrals for this keyworker become Participant and Referral
  records (one transaction per page, never twice for one controller referral), then acked.
* PULLING_INSTRUCTIONS: ``revoke`` locks and purges this laptop's data; ``lock`` locks it.

A 401 at any point stops the run and says why; ``device_revoked`` purges as ``revoke`` does.
"""

from __future__ import annotations

import contextlib
import enum
import gc
import json
import logging
import operator
import sys
import threading
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Mapping, Sequence
from collections import deque
from concurrent.futures import Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import date
from itertools import chain
from typing import Any

import orjson
from isal import igzip

from keyworker_app.records import Referral
from keyworker_app.sharing import SharingProfile
from keyworker_app.store.store import Store

from .errors import (
    AuthenticationFailed, ControllerBusy, ControllerCertificateError, ControllerError, DeviceLocked,
    DeviceRevoked, Offline, SyncError,
)
from .ledger import Ledger
from .projection import PlannedItem, Projector, SourcePlan
from .transport import ControllerClient, PayloadTooLarge
from .wire import (
    InstructionKind, ItemAnswer, ItemStatus, PulledReferral, parse_ack, parse_health_limits, parse_instructions,
    parse_push_body, parse_referral_page,
)


log = logging.getLogger("keyworker.sync")

#: Items are encoded as compact JSON, UTF-8 as is, by orjson (several times faster); what
#: orjson will not write (an integer beyond 64 bits, a lone surrogate) by the standard
#: encoder, with everything beyond ASCII escaped: a lone surrogate has no UTF-8, and goes
#: as an escape (which the controller's standard parser reads).
_ITEM_ENCODER = json.JSONEncoder(separators=(",", ":"))


def encode_item(item: PlannedItem) -> bytes:
    """One push item (``PushItem``) as compact UTF-8 JSON."""
    wire = item.wire()
    try:
        return orjson.dumps(wire)
    except orjson.JSONEncodeError:
        return _ITEM_ENCODER.encode(wire).encode("ascii")


#: Batches on the wire at once, each from its own sender thread. With one, the controller
#: sat idle from each answer until the next batch reached it (the answer read and checked,
#: the next body sent and read): a median of 15-18 ms a batch, a third of a push, measured
#: in the controller. With two, it has the next batch as soon as it finishes one. A batch
#: carrying a version of a record for a recipient that an earlier batch still on its way
#: also carries waits for it, so the controller still meets each record's versions in order.
PUSHES_AT_ONCE = 2

#: Batches handed to the sender threads and not yet finished: up to PUSHES_AT_ONCE on the
#: wire, the rest waiting. Enough for a whole chunk of outbox rows, so that the next chunk
#: is projected and recorded while this one is sent; bounded in bytes too (their JSON is
#: kept until answered).
_MAX_IN_FLIGHT = 64
_MAX_IN_FLIGHT_BYTES = 32 * 1024 * 1024

#: Python's thread switch interval while pushing (its default is 5 ms).
_SWITCH_INTERVAL = 0.001

_tuning_lock = threading.Lock()
_pushes_running = 0
_settings_before: tuple[bool, float] = (True, 0.005)


@contextlib.contextmanager
def tuned_for_pushing() -> Iterator[None]:
    """The process set up for a push while one runs, and as it was once none does
    (pushes of two stores at once share the setting and put it back once).

    * **The cyclic garbage collector is off.** A push makes a few small objects per item
      (a plan, its fields, its answer), many of them alive until their batch is answered,
      and big lists and dicts of them. Every collection walked those live objects again:
      at Python's default threshold over a thousand collections in a push of 50,000
      records (about 1.3 s of its 7 s); with the threshold raised to 20,000, still 6% of
      the client's time (measured with ``gc.callbacks``: 150 ms of collecting in a push of
      20,000 records). None of it found anything: the items are freed by reference
      counting. The only cycles a push makes are httpx's, about 50 small objects per batch
      (3,500 after 20,000 records), which the collector frees once it is back on.
    * **Python's lock changes threads every millisecond, not every 5.** While the engine's
      thread projects, the sender thread waits for the lock each time an answer comes off
      the socket, and the controller waits for the next batch until the sender has it: up
      to one switch interval per hand-over, several per batch. The extra switching costs
      little.
    """
    global _pushes_running, _settings_before
    with _tuning_lock:
        if _pushes_running == 0:
            _settings_before = (gc.isenabled(), sys.getswitchinterval())
            gc.disable()
            sys.setswitchinterval(min(_settings_before[1], _SWITCH_INTERVAL))
        _pushes_running += 1
    try:
        yield
    finally:
        with _tuning_lock:
            _pushes_running -= 1
            if _pushes_running == 0:
                collector_was_on, interval = _settings_before
                if collector_was_on:
                    gc.enable()
                sys.setswitchinterval(interval)


#: While draining the batches in flight, answers are written in groups of this many items.
#: Each group is one transaction, and a transaction re-encrypts every page it touches.
#: When the sent log's index was touched all over by every group (before migration 0014
#: and items sent a participant at a time) that made large groups much cheaper: 8,000.
#: Now a group touches little besides its own participants' pages, and what matters is
#: the last group, written after the last answer while nothing else is left to do: with
#: 2,000, about 35 ms of a 51,028-record push where 8,000 left 50-200 ms (callgrind:
#: +0.2% instructions, within its noise).
_WRITE_EVERY = 2000

#: A batch's items and the controller's answers (None: one item too large to send).
_Answered = tuple[list[PlannedItem], "Sequence[ItemAnswer] | None"]

#: What one group of answers written down adds to the run's figures: outcomes, and batches.
_Written = tuple["Counter[Outcome]", int]


@dataclass(frozen=True)
class _InFlight:
    """A batch handed to the sender: its future, and what it is about."""

    future: Future[list[_Answered]]
    keys: frozenset[str]
    targets: frozenset[tuple[str, str] | str]   # (participant id, recipient) and participant id
                                                # of each of its items
    records: frozenset[tuple[str, str]]         # (record id, recipient) of each of its items
    size: int = 0


@dataclass(frozen=True)
class _Writing:
    """A group of answers handed to the writer: its future, and what it is about."""

    future: Future[_Written]
    keys: frozenset[str]
    targets: frozenset[tuple[str, str] | str]


class Stage(enum.StrEnum):
    PREPARING = "preparing"
    PUSHING = "pushing"
    PULLING_REFERRALS = "pulling_referrals"
    PULLING_INSTRUCTIONS = "pulling_instructions"
    DONE = "done"


class Outcome(enum.StrEnum):
    """What became of one item in this run."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CONFLICT = "conflict"
    HELD_BACK = "held_back"


class RunOutcome(enum.StrEnum):
    """How a run ended."""

    OK = "ok"                      # everything answered, nothing refused
    PARTIAL = "partial"            # finished, but some items were rejected or in conflict
    AUTH_FAILED = "auth_failed"    # the controller refused the token: re-enrol
    REVOKED = "revoked"            # this laptop was revoked: locked and purged
    LOCKED = "locked"              # the controller asked this laptop to lock
    OFFLINE = "offline"            # the controller could not be reached
    SERVER_ERROR = "server_error"  # the controller failed, was busy, or answered nonsense


ProgressCallback = Callable[[Stage, int, int], None]

#: Each answer's status as this run's outcome (a dict lookup: an enum call per item adds up).
_OUTCOME = {status: Outcome(status.value) for status in ItemStatus}
_status = operator.attrgetter("status")   # (counted with map: no Python-level call per answer)
_key = operator.attrgetter("key")
_participant = operator.attrgetter("participant_id")
_participant_and_recipient = operator.attrgetter("participant_id", "recipient")
_record_and_recipient = operator.attrgetter("record_id", "recipient")


@dataclass(frozen=True)
class SyncConfig:
    """Limits of one run. The batch limits are lowered to the controller's if smaller."""

    max_batch_items: int = 1000
    max_batch_bytes: int = 2 * 1024 * 1024     # JSON before compression
    outbox_chunk: int = 500                     # outbox rows projected per ledger write, at first
    outbox_chunk_max: int = 8000                # ... doubling each chunk up to this
    referral_page: int = 100
    # Standard gzip, written by ISA-L (levels 0-3): at 1, as small as zlib's level 1
    # (about 6.5% of the JSON) in a sixth of the time; zlib's level 6 was 30% smaller
    # and took twice as long as zlib's 1.
    gzip_level: int = 1


@dataclass(frozen=True)
class SyncResult:
    """The result of one run: counts and ids only, never a record's values."""

    outcome: RunOutcome
    counts: Mapping[Outcome, int]
    held_back: Mapping[str, int]          # HoldReason value -> items
    referrals_pulled: int = 0
    batches: int = 0
    stage_reached: Stage = Stage.PREPARING
    error: SyncError | None = field(default=None, compare=False)

    @property
    def failed(self) -> bool:
        """True when the run stopped early or something was refused."""
        return self.outcome is not RunOutcome.OK

    @property
    def message(self) -> str:
        return self.error.message if self.error is not None else ""

    def summary(self) -> dict[str, Any]:
        """Counts only: what ``sync_state.last_summary`` keeps and the CLI prints."""
        return {
            "outcome": self.outcome.value,
            **{o.value: int(self.counts.get(o, 0)) for o in Outcome},
            "held_back_by_reason": dict(sorted(self.held_back.items())),
            "referrals_pulled": self.referrals_pulled,
            "batches": self.batches,
        }


class _Stop(Exception):
    """Internal: the run stops with this outcome (the store may already be gone)."""

    def __init__(self, outcome: RunOutcome, error: SyncError, store_gone: bool = False) -> None:
        super().__init__(outcome.value)
        self.outcome = outcome
        self.error = error
        self.store_gone = store_gone


class SyncEngine:
    """Runs syncs of one unlocked store against one controller.

    ``purge`` is called when the controller revokes this laptop: it must close the store and
    delete the profile's files (see :func:`sync.purge.purge_profile`). ``lock`` is called
    when the controller asks the laptop to lock. Both default to closing the store.
    """

    def __init__(
        self,
        store: Store,
        client: ControllerClient,
        config: SyncConfig | None = None,
        *,
        progress: ProgressCallback | None = None,
        purge: Callable[[], object] | None = None,
        lock: Callable[[], object] | None = None,
        profiles: Mapping[str, SharingProfile] | None = None,
        today: date | None = None,
        new_id: Callable[[], str] = lambda: str(uuid.uuid4()),
    ) -> None:
        self.store = store
        self.client = client
        self.config = config or SyncConfig()
        self._progress = progress or (lambda stage, done, total: None)
        self._purge = purge or store.close
        self._lock = lock or store.close
        self._profiles = profiles
        self._today = today
        self._new_id = new_id
        self.ledger = Ledger(store)

    # -- the run ----------------------------------------------------------------------

    def run(self) -> SyncResult:
        """One sync. Never raises a :class:`SyncError`: it is in the result."""
        self._counts: Counter[Outcome] = Counter()
        self._held: Counter[str] = Counter()
        self._batches = 0
        self._pulled = 0
        self._stage = Stage.PREPARING
        self._max_items = self.config.max_batch_items
        self._max_bytes = self.config.max_batch_bytes
        outcome = RunOutcome.OK
        error: SyncError | None = None
        store_gone = False
        try:
            try:
                self._prepare()
                self._push()
                self._pull_referrals()
                self._pull_instructions()
            except DeviceRevoked as exc:
                self._purge()
                raise _Stop(RunOutcome.REVOKED, exc, store_gone=True) from None
            except DeviceLocked as exc:
                self._lock()
                raise _Stop(RunOutcome.LOCKED, exc, store_gone=True) from None
            except AuthenticationFailed as exc:
                raise _Stop(RunOutcome.AUTH_FAILED, exc) from None
            except Offline as exc:
                raise _Stop(RunOutcome.OFFLINE, exc) from None
            except (ControllerBusy, ControllerError, ControllerCertificateError) as exc:
                raise _Stop(RunOutcome.SERVER_ERROR, exc) from None
            self._enter(Stage.DONE, 1, 1)
            if self._counts[Outcome.REJECTED] or self._counts[Outcome.CONFLICT]:
                outcome = RunOutcome.PARTIAL
        except _Stop as stop:
            outcome, error, store_gone = stop.outcome, stop.error, stop.store_gone
        result = SyncResult(outcome, dict(self._counts), dict(self._held), self._pulled,
                            self._batches, self._stage, error)
        if not store_gone:
            self.ledger.record_run(outcome.value, result.summary())
        return result

    def _enter(self, stage: Stage, done: int = 0, total: int = 0) -> None:
        self._stage = stage
        self._progress(stage, done, total)

    # -- PREPARING --------------------------------------------------------------------

    def _prepare(self) -> None:
        self._enter(Stage.PREPARING)
        limits = parse_health_limits(self.client.get_json("/v1/health", auth=False))
        if "max_items" in limits:
            self._max_items = max(1, min(self._max_items, limits["max_items"]))
        if "max_push_bytes" in limits:
            # Leave room for the envelope; the limit applies to the inflated body too.
            self._max_bytes = max(1024, min(self._max_bytes, limits["max_push_bytes"] - 1024))

    # -- PUSHING ----------------------------------------------------------------------

    def _push(self) -> None:
        # Sending and writing overlap with projecting. Two sender threads post the batches
        # (two on the wire at once, see PUSHES_AT_ONCE; a batch waits for an earlier one
        # still on its way that carries one of its records for the same recipient) and
        # only talk HTTP; their answers are kept in the order the batches were made. One
        # writer thread writes the answers down, in that order, a group of batches per
        # transaction (fewer, larger transactions: the store encrypts every page a
        # transaction touches); this thread projects and records the next chunk
        # meanwhile. The writer is handed the answers back so far once this thread has
        # read the next chunk's records, so that its writing (mostly in SQLite, which lets
        # go of Python's lock) runs while this thread projects them. Chunks
        # grow from SyncConfig.outbox_chunk to outbox_chunk_max, and up to _MAX_IN_FLIGHT
        # batches (a whole chunk) are handed over at a time, so the controller always has
        # the last chunk to store while this thread prepares the next. What a chunk holds
        # back is committed before its batches are handed over; what they carry is written
        # only when answered (see sync.ledger). Each decision still sees what it would if
        # sending, writing and projecting took turns: recording a chunk treats the items in
        # flight or not yet written as answered (Ledger.prepare), and before a
        # participant's sent log is read (a deletion or a withdrawal notice) every batch in
        # flight about them (for that recipient, for a notice) is finished and every
        # answer back so far written.
        with tuned_for_pushing():
            self._push_pipelined()

    def _push_pipelined(self) -> None:
        projector = Projector(self.store, self._profiles, self._today, before_history=self._settle_for,
                              after_reading=self._hand_over, reading=self._store_needed)
        self.ledger.begin_run()
        self._sender = ThreadPoolExecutor(max_workers=PUSHES_AT_ONCE, thread_name_prefix="keyworker-sync-push")
        self._writer = ThreadPoolExecutor(max_workers=1, thread_name_prefix="keyworker-sync-write")
        self._in_flight: deque[_InFlight] = deque()
        self._writing: deque[_Writing] = deque()
        self._answered: list[_Answered] = []
        self._answered_keys: set[str] = set()
        self._answered_targets: set[tuple[str, str] | str] = set()
        self._stopping = False
        self._write_failed = False
        self._store_free = threading.Event()   # clear while this thread waits for the store
        self._store_free.set()
        try:
            self._push_all(projector)
        except BaseException:
            self._stopping = True   # a batch not yet started is not sent
            self._sender.shutdown(wait=True, cancel_futures=True)
            self._keep_answers()
            raise
        finally:
            self._stopping = True
            self._sender.shutdown(wait=True, cancel_futures=True)
            self._writer.shutdown(wait=True)

    def _push_all(self, projector: Projector) -> None:
        one_offs = self.ledger.pending_one_offs()
        total = self.store.outbox_count("pending") + len(one_offs)
        done = 0
        self._enter(Stage.PUSHING, 0, total)
        after = 0
        # Small chunks first, so that the controller has work soon; then larger ones, since
        # a transaction's cost is mostly the pages it touches (each encrypted once at
        # commit) and the ledger's indexes are touched all over: fewer, larger
        # transactions touch each page fewer times in all.
        chunk = max(1, self.config.outbox_chunk)
        while True:
            with self._store_needed():
                rows = self.store.outbox_pending(limit=chunk, after_seq=after)
            if not rows:
                break
            chunk = min(max(chunk, self.config.outbox_chunk_max), chunk * 2)
            after = rows[-1].seq
            plans = projector.plan_many(rows)
            self._send_plans(plans, projected_before=rows[0].seq)
            done += len(rows)
            total = max(total, done)
            self._progress(Stage.PUSHING, done, total)
        if one_offs:
            self._settle_all()
            plans = [projector.plan_one_off(*one_off) for one_off in one_offs]
            self._send_plans(plans)
            done += len(one_offs)
            self._progress(Stage.PUSHING, done, max(total, done))
        self._settle_all()

    def _reap(self) -> None:
        """Wait for the oldest batch in flight and keep its answers (written later)."""
        flight = self._in_flight.popleft()
        self._answered.extend(flight.future.result())   # the sender's failure stops the run
        self._answered_keys |= flight.keys
        self._answered_targets |= flight.targets

    def _hand_over(self) -> None:
        """Give the writer every answer kept so far, to write down in one transaction."""
        if not self._answered:
            return
        answered, self._answered = self._answered, []
        self._writing.append(_Writing(self._writer.submit(self._write_answers, answered),
                                      frozenset(self._answered_keys), frozenset(self._answered_targets)))
        self._answered_keys, self._answered_targets = set(), set()

    def _write_answers(self, answered: list[_Answered]) -> _Written:
        """In the writer thread: write these answers down, in one transaction unless the
        engine's thread asks for the store meanwhile (see :meth:`_store_needed`); what they
        add to the run's figures (counted by the caller, in its own thread)."""
        counts: Counter[Outcome] = Counter()
        batches = 0
        if self._write_failed:
            # Nothing after a failed write: the ledger counts down what each outbox row
            # waits for as it writes, and a rolled-back group's count-down is not undone,
            # so a later group could close a row whose answers were never written. The
            # run stops; the next one starts its counts afresh.
            return counts, batches
        waiting = deque(answered)
        try:
            while waiting:
                self._store_free.wait()
                with self.store.db.transaction():
                    while waiting:
                        items, answers = waiting.popleft()
                        if answers is None:
                            self.ledger.set_aside(items, "item_too_large",
                                                  "This item is larger than the controller accepts.")
                            counts[Outcome.REJECTED] += 1
                        else:
                            self.ledger.apply_answers(items, answers)
                            batches += 1
                            counts.update(map(_OUTCOME.__getitem__, map(_status, answers)))
                        if not self._store_free.is_set():
                            break   # the engine's thread is waiting for the store: let it in
        except BaseException:
            self._write_failed = True
            raise
        return counts, batches

    @contextlib.contextmanager
    def _store_needed(self) -> Iterator[None]:
        """This thread about to use the store: the writer commits what it has written so
        far (after the batch it is on) and lets it in, and writes the rest after.

        The writer's transactions are long (all the answers back since the last hand-over,
        often a chunk's worth), and recording a chunk waited for them: about a second of a
        push of 51,028 records. A transaction more when they meet costs far less.
        """
        self._store_free.clear()
        try:
            yield
        finally:
            self._store_free.set()

    def _written(self, wait: bool) -> None:
        """Count what the writer has finished, oldest first: all of it (``wait``), or what
        is done already. A write that failed stops the run with its error."""
        while self._writing and (wait or self._writing[0].future.done()):
            counts, batches = self._writing[0].future.result()
            self._writing.popleft()
            self._counts.update(counts)
            self._batches += batches

    def _write_all(self) -> None:
        """Every answer back so far written down before this returns."""
        self._hand_over()
        self._written(wait=True)

    def _keep_answers(self) -> None:
        """When the run stops early: write down the answers already received, if possible."""
        try:
            self._write_all()
        except Exception as exc:  # noqa: BLE001 - the run's own failure is what gets reported
            # Not written means still pending: they are sent again next run and answered
            # "duplicate". Nothing is lost and nothing is stored twice.
            log.warning("answers received before the run stopped were not written (%s)",
                        type(exc).__name__)

    def _settle_all(self) -> None:
        """Wait for every batch in flight and write down all their answers.

        While later batches are still on their way, the answers already back are written
        in groups of about ``_WRITE_EVERY`` items, so that writing them overlaps with the
        controller storing the rest instead of all waiting for the last one.
        """
        while self._in_flight:
            self._reap()
            if self._in_flight and sum(len(items) for items, _ in self._answered) >= _WRITE_EVERY:
                self._hand_over()
        self._write_all()

    def _settle_for(self, participant_id: str, recipient: str | None = None) -> None:
        """Finish the batches in flight that carry items about ``participant_id`` (for
        ``recipient``, or any), oldest first up to the last of them, and write down every
        answer back so far: what the sent log would show had each batch been finished and
        written before the next was projected."""
        target: tuple[str, str] | str = participant_id if recipient is None else (participant_id, recipient)
        if (target not in self._answered_targets and not self._flying(target)
                and not any(target in writing.targets for writing in self._writing)):
            return
        while self._flying(target):
            self._reap()
        self._write_all()

    def _flying(self, target: tuple[str, str] | str) -> bool:
        """Whether a batch in flight carries items about ``target`` (a participant, or a
        participant and recipient). Asked only before a notice or a deletion, so the batches
        are looked through (at most _MAX_IN_FLIGHT) rather than counted at every batch."""
        return any(target in flight.targets for flight in self._in_flight)

    def _send_plans(self, plans: Sequence[SourcePlan], projected_before: int = 0) -> None:
        for plan in plans:
            for held in plan.held:
                self._held[held.reason.value] += 1
                self._counts[Outcome.HELD_BACK] += 1
        while self._in_flight and self._in_flight[0].future.done():
            self._reap()
        self._written(wait=False)
        # Answered but not written down yet counts as answered, as in flight does.
        in_flight = list(chain.from_iterable(flight.keys for flight in self._in_flight))
        in_flight.extend(self._answered_keys)
        in_flight.extend(chain.from_iterable(writing.keys for writing in self._writing))
        with self._store_needed():
            items = self.ledger.prepare(plans, in_flight=in_flight, projected_before=projected_before)
        # A participant's items together, in the order they were planned (a stable sort:
        # each record's versions, and a notice after the data it follows, keep their
        # order; nothing orders one participant's items against another's). Outbox rows
        # come in the order records were saved, often a record type at a time, so one
        # person's items were spread over a chunk's batches, and each answer's sent-log
        # line went into their part of the sent log's index (migration 0014): each
        # transaction of answers rewrote pages all over it. Together, a transaction
        # touches each person's part once. In a push of 51,028 records, the index's pages
        # written to the WAL went from 4,408 to 2,994, and all pages from 9,862 to 8,532.
        items.sort(key=_participant)
        batch: list[PlannedItem] = []
        encoded: list[bytes] = []
        size = 0
        for item in items:
            body = encode_item(item)
            if len(body) > self._max_bytes:
                self.ledger.set_aside([item], "item_too_large",
                                      "This item is larger than the controller accepts in one batch.")
                self._counts[Outcome.REJECTED] += 1
                continue
            if batch and (len(batch) >= self._max_items or size + len(body) + 1 > self._max_bytes):
                self._submit(batch, encoded)
                batch, encoded, size = [], [], 0
            batch.append(item)
            encoded.append(body)
            size += len(body) + 1
        if batch:
            self._submit(batch, encoded)

    def _submit(self, items: list[PlannedItem], encoded: list[bytes]) -> None:
        size = sum(map(len, encoded))
        while self._in_flight and (len(self._in_flight) >= _MAX_IN_FLIGHT or
                                   sum(f.size for f in self._in_flight) + size > _MAX_IN_FLIGHT_BYTES):
            self._reap()
        # (map with attrgetter: no Python-level step per item)
        targets: set[tuple[str, str] | str] = set(map(_participant_and_recipient, items))
        targets.update(map(_participant, items))
        records = frozenset(map(_record_and_recipient, items))
        after = [f.future for f in self._in_flight if not f.future.done() and not f.records.isdisjoint(records)]
        self._in_flight.append(_InFlight(
            self._sender.submit(self._deliver, items, encoded, after),
            frozenset(map(_key, items)), frozenset(targets), records, size))

    def _deliver(self, items: list[PlannedItem], encoded: list[bytes],
                 after: Sequence[Future[list[_Answered]]]) -> list[_Answered]:
        """In a sender thread: post one batch, once the batches in ``after`` (earlier ones
        carrying a version of one of its records for the same recipient) are finished; its
        answers (checked) or, for an item the controller finds too large on its own, None.
        Touches nothing in the store."""
        wait(after)
        if self._stopping:   # an earlier batch failed: the run is stopping, send nothing more
            return []
        try:
            return self._post(items, encoded)
        except BaseException:
            self._stopping = True
            raise

    def batch_body(self, batch_id: str, encoded: Sequence[bytes]) -> bytes:
        """The gzip-compressed JSON body of one push (``PushBatch``)."""
        # The envelope joined onto the first and last items, so that the items' bytes (about
        # a megabyte a push) are copied once, by the join, not again for each piece added.
        parts = list(encoded) or [b""]
        parts[0] = b'{"batch_id":"' + batch_id.encode("ascii") + b'","items":[' + parts[0]
        parts[-1] += b"]}"
        raw = b",".join(parts)
        return igzip.compress(raw, compresslevel=self.config.gzip_level, mtime=0)

    def _post(self, items: list[PlannedItem], encoded: list[bytes]) -> list[_Answered]:
        """Post one batch, split in two while the controller finds it too large."""
        batch_id = self._new_id()
        try:
            answer = self.client.post_json("/v1/push", self.batch_body(batch_id, encoded), gzip_body=True, raw=True)
        except PayloadTooLarge:
            if len(items) == 1:
                return [(items, None)]
            half = len(items) // 2
            self._max_items = max(1, half)
            return self._post(items[:half], encoded[:half]) + self._post(items[half:], encoded[half:])
        return [(items, parse_push_body(answer, batch_id, [i.key for i in items]))]

    # -- PULLING_REFERRALS ------------------------------------------------------------

    def _pull_referrals(self) -> None:
        # Each run starts from the beginning: the controller only returns referrals not yet
        # acknowledged, so one stored on the laptop but not acked (a crash) comes again and
        # is recognised by its controller id. The cursor pages within the run.
        self._enter(Stage.PULLING_REFERRALS)
        cursor: str | None = None
        while True:
            params = {"limit": str(self.config.referral_page)}
            if cursor:
                params["since"] = cursor
            page = parse_referral_page(self.client.get_json("/v1/referrals", params),
                                       self.store.actor, self._new_id)
            ids = self._store_referrals(page.referrals)
            if ids:
                body = json.dumps({"ids": ids}).encode("utf-8")
                parse_ack(self.client.post_json("/v1/referrals/ack", body), ids)
            self.ledger.set_referral_cursor(page.next_cursor if page.more else None)
            self._progress(Stage.PULLING_REFERRALS, self._pulled, self._pulled)
            if not page.more or not page.next_cursor or page.next_cursor == cursor:
                break
            cursor = page.next_cursor

    def _store_referrals(self, pulled: Sequence[PulledReferral]) -> list[str]:
        """Save a page's new referrals in one transaction; returns every id to acknowledge."""
        ids: list[str] = []
        with self.store.db.transaction():
            for item in pulled:
                ids.append(item.controller_id)
                known = self.store.db.scalar(
                    "SELECT 1 FROM referral WHERE controller_referral_id = ?", (item.controller_id,))
                if known:
                    continue
                participant = self.store.participants.save(item.participant)
                referral = self.store.repo(Referral).save(item.referral)
                self.store.audit("referral_pulled", "referral", referral.id, participant.id,
                                 {"controller_referral_id": item.controller_id})
                self._pulled += 1
        return ids

    # -- PULLING_INSTRUCTIONS ---------------------------------------------------------

    def _pull_instructions(self) -> None:
        self._enter(Stage.PULLING_INSTRUCTIONS)
        instructions = parse_instructions(self.client.get_json("/v1/instructions"))
        if not instructions:
            return
        ids = [i.id for i in instructions]
        kinds = {i.kind for i in instructions}
        if InstructionKind.REVOKE in kinds:
            try:
                self._ack_instructions(ids)
            except SyncError:
                # The purge goes ahead whether or not the acknowledgement got through: the
                # controller repeats an unacknowledged instruction, and the data must go now.
                pass
            raise DeviceRevoked()
        self._ack_instructions(ids)
        if InstructionKind.LOCK in kinds:
            raise DeviceLocked()

    def _ack_instructions(self, ids: list[str]) -> None:
        body = json.dumps({"ids": ids}).encode("utf-8")
        parse_ack(self.client.post_json("/v1/instructions/ack", body), ids)
