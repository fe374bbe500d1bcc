"""Projecting pending changes through the sharing profiles, at push time (DESIGN §5).

For each outbox row the :class:`Projector` loads the record as it is now (or its tombstone),
its participant and consents, and works out for **each** applicable profile what may go,
as :func:`keyworker_app.sharing.project` decides it (compiled once per profile, see below).
Nothing else ever leaves the laptop: an item's ``fields`` are exactly the
:class:`~keyworker_app.sharing.Share` the core would return.

* A row whose record has moved on (a newer version is in the outbox) or gone is
  *superseded*: it sends nothing, and the newer row carries the change.
* One-off profiles are skipped here: they go only through :func:`share_one_off`, with the
  fields the keyworker chose and their reason, audited.
* A held-back item keeps its :class:`~keyworker_app.sharing.HoldReason`.
* A deletion goes, as identifiers only, to the recipients that received the record.
* A consent saved as withdrawn sends a withdrawal notice (op ``withdraw``) to that
  profile's recipient if, and only if, the sent log shows it received data about the
  participant since any earlier notice.
* A consent given again, or a participant no longer restricted or objecting, asks for the
  records held back for that reason to be queued again (:attr:`SourcePlan.requeue`).
"""

from __future__ import annotations

import contextlib
import enum
import json
import re
import types
import typing
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from types import MappingProxyType
from typing import Any, NamedTuple

import msgspec
import orjson

from keyworker_app.errors import KeyworkerError
from keyworker_app.records import (
    RECORD_TYPE_BY_NAME, CaseNote, Confidentiality, Consent, ConsentStatus, Participant, Record,
)
from keyworker_app.sharing import (
    IDENTIFIER_FIELDS, HeldBack, HoldReason, Share, SharingProfile, applicable_profiles,
    latest_consent, load_sharing_profiles, project_one_off,
)
from keyworker_app.sharing import _consent_hold, _json_ready  # the core's own rules, reused
from keyworker_app.store.codec import codec_for, load_json
from keyworker_app.store.store import OutboxItem, Store

#: Fields a withdrawal notice carries besides the identifiers (the controller allows these).
WITHDRAWAL_FIELDS: tuple[str, ...] = ("sharing_profile", "status", "withdrawn_on", "notice_version")

CONSENT_HOLDS = frozenset({HoldReason.CONSENT_MISSING, HoldReason.CONSENT_REFUSED, HoldReason.CONSENT_WITHDRAWN})
PARTICIPANT_HOLDS = frozenset({HoldReason.RESTRICTED, HoldReason.OBJECTED})


def json_values(values: Sequence[Any]) -> str:
    """A list of ids, numbers or tuples of them as a JSON text parameter (``json_each(?)``):
    by orjson, an order of magnitude quicker than the standard encoder on the tens of
    thousands of keys a sync looks up at a time."""
    return orjson.dumps(values).decode("utf-8")


def idempotency_key(record_id: str, version: int, recipient: str) -> str:
    """``<record_id>:<version>:<recipient>``: what the controller applies exactly once."""
    return f"{record_id}:{version}:{recipient}"


class PlannedItem(msgspec.Struct, frozen=True):
    """One record version for one recipient, projected and ready to push.

    A frozen msgspec struct: immutable like a frozen dataclass, and made and read in C. A
    push makes one per item and reads its members a few dozen times on the way (ledger,
    batches, sent log): a named tuple's member is read through a descriptor, about three
    times slower, and it is made by a Python-level ``__new__``.
    """

    key: str
    record_type: str
    record_id: str
    version: int
    participant_id: str
    recipient: str
    programme: str
    strand: str
    op: str
    fields: Mapping[str, Any]
    field_names: tuple[str, ...]
    article_6: str
    article_9: str | None
    outbox_seq: int | None = None
    one_off_seq: int | None = None
    one_off_reason: str = ""

    def wire(self) -> dict[str, Any]:
        """The item as ``POST /v1/push`` takes it (``PushItem``)."""
        return {
            "idempotency_key": self.key,
            "record_type": self.record_type,
            "record_id": self.record_id,
            "version": self.version,
            "recipient": self.recipient,
            "participant_id": self.participant_id,
            "programme": self.programme,
            "strand": self.strand,
            "op": self.op,
            "fields": self.fields if type(self.fields) is dict else dict(self.fields),
        }


#: A SourcePlan from a tuple of all its fields, in order: what SourcePlan(...) does, without
#: the Python-level __new__ a named tuple's constructor runs (one per outbox row).
_new_plan = tuple.__new__


class HeldItem(NamedTuple):
    """One record version not sent to one recipient, and why."""

    key: str
    record_type: str
    record_id: str
    version: int
    participant_id: str
    recipient: str
    reason: HoldReason
    outbox_seq: int | None = None


@dataclass(frozen=True)
class Requeue:
    """Queue again the records of ``participant_id`` held back for one of ``reasons``."""

    participant_id: str
    reasons: frozenset[HoldReason]
    recipient: str | None = None   # None: every recipient


class SourcePlan(NamedTuple):
    """What one outbox row (or one one-off share) turns into."""

    outbox_seq: int | None
    one_off_seq: int | None
    items: tuple[PlannedItem, ...] = ()
    held: tuple[HeldItem, ...] = ()
    requeue: tuple[Requeue, ...] = ()


class OneOffRefused(KeyworkerError):
    """A one-off share that cannot go (the record is held back for a reason)."""

    exit_code = 2

    def __init__(self, reason: HoldReason) -> None:
        self.reason = reason
        super().__init__(message=f"This record cannot be shared with that recipient ({reason.value}).")


def _special_basis(record: Record, names: Iterable[str], profile: SharingProfile) -> str | None:
    """The Article 9 basis, only when special category fields actually go."""
    return profile.article_9 if set(names) & type(record).special_category else None



# -- compiled projection --------------------------------------------------------------------
#
# Records other than participants and consents are projected from their stored row, not
# decoded into a Record first: for each record type and profile the fields to send are
# worked out once (which columns, and how each stored value becomes the JSON-ready value
# keyworker_app.sharing.project would give), and the checks that depend only on the
# participant and the profile (restriction, objection, consent) once per participant and
# profile. Participants and consents, which the gate itself reads, are decoded, and go
# through the same field plans and gate. The result is the same Share, field for field
# and in the same order, as the core's project(); tests/sync/test_sync_projection.py
# checks that on every record of a synthetic caseload.

_Converter = Callable[[Any], Any]


def _json_converter(hint: Any, decoder: Callable[[Any], Any]) -> _Converter:
    """stored value -> ``sharing._json_ready(decoder(value))``, quicker for common types.

    Each quick path gives the stored value itself (or its JSON as parsed) only where that
    is what decoding and making JSON-ready again gives for a value as the store writes it
    (codec.py); anything else goes the long way (``generic``).
    """
    def generic(raw: Any) -> Any:
        return _json_ready(decoder(raw))

    base = hint
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if len(args) != 1:
            return generic
        base = args[0]
    origin = typing.get_origin(base)
    if base is str:
        return lambda raw: raw if type(raw) is str else generic(raw)
    if base is int:
        return lambda raw: raw if type(raw) is int else generic(raw)
    if isinstance(base, type) and issubclass(base, enum.Enum) and all(
            type(m.value) is str for m in base):
        values = frozenset(m.value for m in base)
        return lambda raw: raw if type(raw) is str and raw in values else generic(raw)
    if base is datetime:
        # What datetime.isoformat() writes (no zero microseconds, offsets in minutes, UTC
        # as +00:00) reads back and writes out the same.
        return _canonical_or(generic, lambda raw: bool(
            _CANONICAL_MOMENT.fullmatch(raw) and not raw.endswith((".000000", "-00:00"))
            and ".000000+" not in raw and ".000000-" not in raw))
    if base is date:
        return _canonical_or(generic, lambda raw: bool(_CANONICAL_DAY.fullmatch(raw)))
    if origin in (tuple, list) or origin in (dict, Mapping) or origin is typing.get_origin(Mapping[str, Any]):
        # Stored as JSON text; parsed JSON is already JSON-ready (a tuple's items come
        # back as a list, as _json_ready makes them).
        wanted = list if origin in (tuple, list) else dict

        def parsed(raw: Any) -> Any:
            if type(raw) is str:
                try:
                    value = load_json(raw)
                except ValueError:
                    return generic(raw)
                if type(value) is wanted:
                    return value
            return generic(raw)
        return parsed
    return generic


#: How many stored texts one converter remembers as already in canonical form.
_CANONICAL_SEEN = 65536


def _canonical_or(generic: _Converter, canonical: Callable[[str], bool]) -> _Converter:
    """stored text as it is when ``canonical`` says it is written as decoding and writing
    again would write it, else ``generic``. Dates and moments repeat from record to record
    (a day, a session's time): each distinct text is checked once and remembered (up to
    ``_CANONICAL_SEEN`` of them, then forgotten and learnt again)."""
    seen: set[str] = set()

    def convert(raw: Any) -> Any:
        if type(raw) is str:
            if raw in seen:
                return raw
            if canonical(raw):
                if len(seen) >= _CANONICAL_SEEN:
                    seen.clear()
                seen.add(raw)
                return raw
        return generic(raw)
    return convert


_CANONICAL_DAY = re.compile(r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])")
_CANONICAL_MOMENT = re.compile(
    r"\d{4}-(0[1-9]|1[0-2])-(0[1-9]|[12]\d|3[01])T([01]\d|2[0-3]):[0-5]\d:[0-5]\d"
    r"(\.\d{6})?([+-]([01]\d|2[0-3]):[0-5]\d)?")


@dataclass(frozen=True)
class _RowView:
    """Which columns of one record type's table the projection reads, and how."""

    kind: type[Record]
    columns: tuple[str, ...]
    index: Mapping[str, int]
    converters: Mapping[str, _Converter]
    # The places of the columns each row is checked by: id, version, participant, and a
    # case note's confidentiality or an assessment's form (None for other types).
    id_at: int
    version_at: int
    participant_at: int
    confidentiality_at: int | None
    form_at: int | None


@dataclass(frozen=True)
class _FieldPlan:
    """What one (resolved) profile receives of one record type, ready to read from a row."""

    getters: tuple[tuple[str, int, _Converter], ...]
    field_names: tuple[str, ...]
    article_9: str | None
    assessment_forms: frozenset[str] | None


def _row_view(kind: type[Record], profiles: Mapping[str, SharingProfile]) -> _RowView:
    codec = codec_for(kind)  # type: ignore[arg-type]  # (as in store.py)
    wanted = {"id", "version", "participant_id"}
    if kind is CaseNote:
        wanted.add("confidentiality")
    if "form_id" in codec.columns:
        wanted.add("form_id")
    for profile in profiles.values():
        for programme in profile.programmes:
            wanted.update(profile.for_programme(programme).fields_for(kind.record_type))
    columns = tuple(c for c in codec.columns if c in wanted)
    hints = typing.get_type_hints(kind)
    decoders = dict(zip(codec.columns, codec.decoders))
    index = {c: i for i, c in enumerate(columns)}
    return _RowView(kind, columns, index, {c: _json_converter(hints[c], decoders[c]) for c in columns},
                    id_at=index["id"], version_at=index["version"],
                    participant_at=index.get("participant_id", index["id"]),   # (a participant's: its id)
                    confidentiality_at=index["confidentiality"] if kind is CaseNote else None,
                    form_at=index.get("form_id"))


def _field_plan(view: _RowView, profile: SharingProfile) -> _FieldPlan | None:
    if view.kind.record_type not in profile.records:
        return None
    names = tuple(n for n in profile.fields_for(view.kind.record_type) if n not in IDENTIFIER_FIELDS)
    forms = profile.assessment_forms
    return _FieldPlan(
        getters=tuple((n, view.index[n], view.converters[n]) for n in names),
        field_names=names,
        article_9=profile.article_9 if set(names) & view.kind.special_category else None,
        assessment_forms=(frozenset(forms) if forms is not None and view.kind.record_type == "assessment"
                          else None),
    )


def _gate(profile: SharingProfile, participant: Participant, consents: Sequence[Consent],
          today: date) -> HoldReason | None:
    """project()'s checks after "is this record type in the profile", which depend only on
    the participant, their consents and the profile (in project()'s order)."""
    if participant.restricted:
        return HoldReason.RESTRICTED
    if profile.stops_on_objection and (
        profile.objection_purpose in participant.objections or profile.id in participant.objections
    ):
        return HoldReason.OBJECTED
    if profile.consent_required:
        return _consent_hold(latest_consent(consents, profile.id, participant.id, today))
    return None


class Projector:
    """Turns outbox rows into planned and held-back items, caching per participant."""

    def __init__(
        self,
        store: Store,
        profiles: Mapping[str, SharingProfile] | None = None,
        today: date | None = None,
        before_history: Callable[[str, str | None], object] | None = None,
        after_reading: Callable[[], object] | None = None,
        reading: Callable[[], contextlib.AbstractContextManager[object]] | None = None,
    ) -> None:
        self.store = store
        self.profiles = load_sharing_profiles() if profiles is None else profiles
        self.today = today or date.today()
        # Called with a participant id (and the recipient, when only one matters) before
        # their sent log is read (a deletion or a withdrawal notice depends on it): the
        # engine writes down the answers to batches about them still on their way first.
        self._before_history = before_history or (lambda participant_id, recipient: None)
        # Called by plan_many once it has read a chunk's records, before projecting them:
        # the engine lets its writer have the store then.
        self._after_reading = after_reading or (lambda: None)
        # Held while plan_many reads a chunk's records: the engine's writer waits meanwhile.
        self._reading = reading or contextlib.nullcontext
        self._participants: dict[str, Participant | None] = {}
        self._consents: dict[str, list[Consent]] = {}
        self._profiles_for: dict[tuple[str, str], list[SharingProfile]] = {}
        # While plan_many works through a chunk: its records, loaded up front, and the
        # participants whose participant record and consents were (re)loaded for it.
        self._records: dict[tuple[str, str], Record] = {}
        self._rows: dict[tuple[str, str], tuple[Any, ...]] = {}
        self._fresh: set[str] = set()
        # ... and, for each (participant, recipient) a withdrawn consent in the chunk would
        # send a notice to, whether they were sent data since the last notice.
        self._histories: dict[tuple[str, str], bool] = {}
        self._bulk = False
        # The compiled projection (see _RowView): per record type, per (programme, strand,
        # record type), and per participant (valid while their cached participant record
        # and consent list are the very objects it was worked out from).
        self._views: dict[type[Record], _RowView] = {}
        self._field_plans: dict[tuple[str, str, str], list[tuple[SharingProfile, _FieldPlan | None]]] = {}
        self._gates: dict[str, tuple[Participant, list[Consent], dict[str, HoldReason | None]]] = {}

    def forget(self, participant_id: str) -> None:
        """Drop the cached participant and consents (after they change)."""
        self._participants.pop(participant_id, None)
        self._consents.pop(participant_id, None)

    def _applicable(self, programme: str, strand: str) -> list[SharingProfile]:
        key = (programme, strand)
        if key not in self._profiles_for:
            self._profiles_for[key] = [
                p for p in applicable_profiles(programme, strand, self.profiles) if not p.one_off]
        return self._profiles_for[key]

    def _participant(self, participant_id: str) -> Participant | None:
        if participant_id not in self._participants:
            self._participants[participant_id] = self.store.participants.find(participant_id)
        return self._participants[participant_id]

    def _consents_of(self, participant_id: str) -> list[Consent]:
        if participant_id not in self._consents:
            self._consents[participant_id] = self.store.repo(Consent).for_participant(participant_id)
        return self._consents[participant_id]

    # -- outbox rows ------------------------------------------------------------------

    def plan_many(self, rows: Sequence[OutboxItem]) -> list[SourcePlan]:
        """:meth:`plan` for each row, in order, with what they need read in bulk first.

        The rows' records are read with one query per record type, and the participants
        and consents with one query each, all at once (a snapshot as of the start of the
        chunk), instead of one query per row. A participant with a participant or consent
        row in the chunk has both read afresh, which is what :meth:`plan` otherwise does
        when it meets such a row.
        """
        try:
            with self._reading():
                self._preload(rows)
            self._read_histories(rows)
            self._after_reading()
            return [self.plan(row) for row in rows]
        finally:
            self._bulk = False
            self._records.clear()
            self._rows.clear()
            self._histories.clear()
            self._fresh = set()

    def _preload(self, rows: Sequence[OutboxItem]) -> None:
        by_type: dict[str, set[str]] = {}
        changed: set[str] = set()
        for row in rows:
            if row.op != "upsert" or row.record_type not in RECORD_TYPE_BY_NAME:
                continue
            by_type.setdefault(row.record_type, set()).add(row.record_id)
            if row.record_type in (Participant.record_type, Consent.record_type):
                changed.add(row.participant_id)
        wanted = {r.participant_id for r in rows if r.op == "upsert"}
        # Each participant and consent is read (and decoded) once: a participant row's
        # record is also its participant, and a consent row's record is among the consents
        # read for its participant (who has changed, so has them all read afresh).
        chunk_people = by_type.pop(Participant.record_type, set())
        chunk_consents = by_type.pop(Consent.record_type, set())
        participants = sorted(chunk_people.union(p for p in wanted if p in changed or p not in self._participants))
        consents = sorted(p for p in wanted if p in changed or p not in self._consents)
        with self.store.db.lock:   # one snapshot: no save lands between these reads
            for record_type, ids in sorted(by_type.items()):
                view = self._view(RECORD_TYPE_BY_NAME[record_type])
                for stored in self._load_rows(view, sorted(ids)):
                    self._rows[(record_type, stored[0])] = stored
            found: dict[str, Participant | None] = dict.fromkeys(participants)
            for participant in self._load(Participant, "id", participants):
                if isinstance(participant, Participant):
                    found[participant.id] = participant
                    if participant.id in chunk_people:
                        self._records[(Participant.record_type, participant.id)] = participant
            grouped: dict[str, list[Consent]] = {p: [] for p in consents}
            for consent in self._load(Consent, "participant_id", consents, " ORDER BY rowid"):
                if isinstance(consent, Consent):
                    grouped[consent.participant_id].append(consent)
                    if consent.id in chunk_consents:
                        self._records[(Consent.record_type, consent.id)] = consent
            # A consent filed under another participant than its outbox row says (not
            # something the store writes): read on its own, as before.
            strays = sorted(i for i in chunk_consents if (Consent.record_type, i) not in self._records)
            for consent in self._load(Consent, "id", strays):
                self._records[(Consent.record_type, consent.id)] = consent
        self._participants.update(found)
        self._consents.update(grouped)
        self._fresh = changed
        self._bulk = True

    def _read_histories(self, rows: Sequence[OutboxItem]) -> None:
        """What :meth:`_had_data_since_last_notice` will ask for the chunk's withdrawn
        consents, read with one query (:meth:`_read_history`) before projecting, and
        before the engine's writer is handed the store, so that the query does not wait
        for its transaction.

        Nothing is sent while a chunk is projected, so the sent log these pairs depend on
        cannot change between here and their notices once each pair has been settled.
        """
        pairs: set[tuple[str, str]] = set()
        for row in rows:
            if row.op != "upsert" or row.record_type != Consent.record_type:
                continue
            consent = self._records.get((row.record_type, row.record_id))
            participant = self._participants.get(row.participant_id)
            if not isinstance(consent, Consent) or consent.version != row.version or participant is None:
                continue
            target = self._notice_recipient(consent, participant)
            if target is not None:
                pairs.add((participant.id, target.id))
        self._histories.update(self._read_history(pairs))

    def _read_history(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], bool]:
        """For each (participant, recipient): whether data went to them since the last
        withdrawal notice (their batches still on the way settled first, one query)."""
        pairs = sorted(pairs)
        if not pairs:
            return {}
        for participant_id, recipient in pairs:
            self._before_history(participant_id, recipient)
        rows = self.store.db.query(
            "SELECT j.value ->> 0, j.value ->> 1, EXISTS (SELECT 1 FROM sent_log AS s"
            " WHERE s.participant_id = j.value ->> 0 AND s.recipient = j.value ->> 1"
            " AND s.op = 'upsert' AND s.seq > coalesce((SELECT max(w.seq) FROM sent_log AS w"
            " WHERE w.participant_id = j.value ->> 0 AND w.recipient = j.value ->> 1"
            " AND w.op = 'withdraw'), 0)) FROM json_each(?) AS j",
            (json_values(pairs),),
        )
        return {(participant_id, recipient): bool(had_data) for participant_id, recipient, had_data in rows}

    def _load(self, kind: type[Record], column: str, values: Sequence[str], order: str = "") -> list[Record]:
        """Records of ``kind`` whose ``column`` is one of ``values`` (one query)."""
        if not values:
            return []
        codec = codec_for(kind)  # type: ignore[arg-type]  # (as in store.py)
        rows = self.store.db.query(
            f"SELECT {', '.join(codec.columns)} FROM {kind.record_type}"
            f" WHERE {column} IN (SELECT value FROM json_each(?)){order}", (json_values(list(values)),))
        return [codec.from_row(tuple(r)) for r in rows]

    def _view(self, kind: type[Record]) -> _RowView:
        view = self._views.get(kind)
        if view is None:
            view = self._views[kind] = _row_view(kind, self.profiles)
        return view

    def _load_rows(self, view: _RowView, ids: Sequence[str]) -> list[tuple[Any, ...]]:
        """The projected columns of the records of ``view.kind`` with these ids (id first)."""
        if not ids:
            return []
        return [tuple(r) for r in self.store.db.query(
            f"SELECT {', '.join(view.columns)} FROM {view.kind.record_type}"
            " WHERE id IN (SELECT value FROM json_each(?))", (json_values(list(ids)),))]

    def _plans_for(self, participant: Participant, kind: type[Record]) -> list[tuple[SharingProfile, _FieldPlan | None]]:
        key = (participant.programme, participant.strand, kind.record_type)
        plans = self._field_plans.get(key)
        if plans is None:
            view = self._view(kind)
            plans = self._field_plans[key] = [
                (profile, _field_plan(view, profile))
                for profile in self._applicable(participant.programme, participant.strand)]
        return plans

    def _gates_of(self, participant: Participant) -> dict[str, HoldReason | None]:
        """The gate's answers for ``participant`` so far, by profile id (see _gate): kept
        while their cached participant record and consent list are the very objects they
        were worked out from."""
        consents = self._consents_of(participant.id)
        cached = self._gates.get(participant.id)
        if cached is None or cached[0] is not participant or cached[1] is not consents:
            cached = self._gates[participant.id] = (participant, consents, {})
        return cached[2]

    def _plan_row(self, row: OutboxItem, kind: type[Record]) -> SourcePlan:
        """:meth:`plan` for a record that is neither a participant nor a consent, from its
        stored row (the compiled projection, see :class:`_RowView`)."""
        view = self._view(kind)
        if self._bulk:
            stored = self._rows.get((row.record_type, row.record_id))
        else:
            found = self._load_rows(view, [row.record_id])
            stored = found[0] if found else None
        if stored is None or stored[view.version_at] != row.version:
            return SourcePlan(row.seq, None)   # superseded: a newer row carries the change
        participant = self._participant(row.participant_id)
        if participant is None:
            return SourcePlan(row.seq, None)
        plans = self._plans_for(participant, kind)
        if not plans:
            return SourcePlan(row.seq, None)
        if stored[view.participant_at] != participant.id:
            raise ValueError("the record does not belong to this participant")
        confidential = (view.confidentiality_at is not None
                        and stored[view.confidentiality_at] == Confidentiality.HEALTH_TEAM.value)
        form_id = stored[view.form_at] if view.form_at is not None else None
        items, held = self._decide(row, kind, participant, stored[view.id_at], stored[view.version_at], plans,
                                   stored=stored, confidential=confidential, form_id=form_id)
        return _new_plan(SourcePlan, (row.seq, None, tuple(items), tuple(held), ()))

    def _decide(
        self, row: OutboxItem, kind: type[Record], participant: Participant, record_id: str, version: int,
        plans: list[tuple[SharingProfile, _FieldPlan | None]], *, stored: tuple[Any, ...] | None = None,
        record: Record | None = None, confidential: bool = False, form_id: Any = None,
    ) -> tuple[list[PlannedItem], list[HeldItem]]:
        """One record version through each of its profiles' field plans: an item for each
        profile it may go to (the plan's field values, in its order, from the ``stored``
        row, or else from the decoded ``record``), a hold for each it may not."""
        record_type = kind.record_type
        participant_id = participant.id
        gates = self._gates_of(participant)
        items: list[PlannedItem] = []
        held: list[HeldItem] = []
        for profile, plan in plans:
            key = f"{record_id}:{version}:{profile.id}"
            if confidential:
                held.append(HeldItem(key, record_type, record_id, version, participant_id,
                                     profile.id, HoldReason.HEALTH_TEAM_CONFIDENTIAL, row.seq))
                continue
            if plan is None or (plan.assessment_forms is not None and form_id not in plan.assessment_forms):
                continue   # not in this profile: nothing to send or to hold
            try:
                reason = gates[profile.id]
            except KeyError:
                reason = gates[profile.id] = _gate(profile, participant, self._consents_of(participant_id),
                                                   self.today)
            if reason is not None:
                held.append(HeldItem(key, record_type, record_id, version, participant_id,
                                     profile.id, reason, row.seq))
                continue
            fields: dict[str, Any] = {"id": record_id, "version": version, "record_type": record_type,
                                      "participant_id": participant_id}
            if stored is not None:
                for name, column, convert in plan.getters:
                    fields[name] = convert(stored[column])
            else:
                for name in plan.field_names:
                    fields[name] = _json_ready(getattr(record, name))
            items.append(PlannedItem(   # fields: a dict made here and never changed
                key, record_type, record_id, version, participant_id, profile.id,
                participant.programme, participant.strand, "upsert", fields,
                plan.field_names, profile.article_6, plan.article_9, row.seq, None, "",
            ))
        return items, held

    def plan(self, row: OutboxItem) -> SourcePlan:
        """The items for one outbox row (empty when superseded or nothing applies)."""
        if row.op == "delete":
            return self._plan_delete(row)
        if row.op != "upsert":
            return SourcePlan(row.seq, None)
        kind = RECORD_TYPE_BY_NAME.get(row.record_type)
        if kind is None:
            return SourcePlan(row.seq, None)
        if kind is not Participant and kind is not Consent:
            return self._plan_row(row, kind)
        if row.participant_id not in self._fresh:
            if kind is Participant:
                self.forget(row.record_id)
            elif kind is Consent:
                self._consents.pop(row.participant_id, None)
        if self._bulk:
            record = self._records.get((row.record_type, row.record_id))
        else:
            record = self.store.repo(kind).find(row.record_id)
        if record is None or record.version != row.version:
            return SourcePlan(row.seq, None)   # superseded: a newer row carries the change
        participant = record if isinstance(record, Participant) else self._participant(row.participant_id)
        if participant is None:
            return SourcePlan(row.seq, None)
        if isinstance(record, Consent) and record.participant_id != participant.id:
            raise ValueError("the record does not belong to this participant")

        # The compiled projection again (see _RowView), from the decoded record.
        planned, held = self._decide(row, kind, participant, record.id, record.version,
                                     self._plans_for(participant, kind), record=record)
        items = {item.key: item for item in planned}
        requeue: list[Requeue] = []
        if isinstance(record, Consent):
            notice = self._withdrawal(record, participant, row.seq)
            if notice is not None:
                items[notice.key] = notice   # a notice wins over a routine copy of the consent
            elif record.status is ConsentStatus.GIVEN and record.withdrawn_on is None:
                requeue.append(Requeue(participant.id, CONSENT_HOLDS, record.sharing_profile))
        if isinstance(record, Participant):
            requeue.append(Requeue(participant.id, self._lifted_holds(participant)))
        return SourcePlan(row.seq, None, tuple(items.values()), tuple(held),
                          tuple(r for r in requeue if r.reasons))

    @staticmethod
    def _lifted_holds(participant: Participant) -> frozenset[HoldReason]:
        lifted = set()
        if not participant.restricted:
            lifted.add(HoldReason.RESTRICTED)
        if not participant.objections:
            lifted.add(HoldReason.OBJECTED)
        return frozenset(lifted)

    def _planned(
        self, record: Record, participant: Participant, profile: SharingProfile, share: Share,
        op: str, outbox_seq: int | None, one_off_seq: int | None = None, reason: str = "",
    ) -> PlannedItem:
        names = tuple(n for n in share.fields if n not in IDENTIFIER_FIELDS)
        return PlannedItem(
            key=idempotency_key(record.id, record.version, profile.id),
            record_type=record.record_type, record_id=record.id, version=record.version,
            participant_id=participant.id, recipient=profile.id,
            programme=participant.programme, strand=participant.strand, op=op,
            fields=share.fields, field_names=names, article_6=profile.article_6,
            article_9=_special_basis(record, names, profile),
            outbox_seq=outbox_seq, one_off_seq=one_off_seq, one_off_reason=reason,
        )

    def _withdrawal(self, consent: Consent, participant: Participant, seq: int) -> PlannedItem | None:
        base = self._notice_recipient(consent, participant)
        if base is None or not self._had_data_since_last_notice(participant.id, base.id):
            return None
        profile = base.for_programme(participant.programme)
        fields: dict[str, Any] = {
            "id": consent.id, "version": consent.version, "record_type": consent.record_type,
            "participant_id": participant.id, "sharing_profile": consent.sharing_profile,
            "status": ConsentStatus.WITHDRAWN.value,
            "withdrawn_on": consent.withdrawn_on.isoformat() if consent.withdrawn_on else None,
            "notice_version": consent.notice_version,
        }
        return PlannedItem(
            key=idempotency_key(consent.id, consent.version, profile.id),
            record_type=consent.record_type, record_id=consent.id, version=consent.version,
            participant_id=participant.id, recipient=profile.id, programme=participant.programme,
            strand=participant.strand, op="withdraw", fields=MappingProxyType(fields),
            field_names=WITHDRAWAL_FIELDS, article_6=profile.article_6, article_9=None,
            outbox_seq=seq,
        )

    def _notice_recipient(self, consent: Consent, participant: Participant) -> SharingProfile | None:
        """The profile a withdrawal notice for ``consent`` would go to, if the consent is
        withdrawn and its profile covers the participant; else None."""
        withdrawn = consent.status is ConsentStatus.WITHDRAWN or consent.withdrawn_on is not None
        base = self.profiles.get(consent.sharing_profile)
        if not withdrawn or base is None or not base.covers(participant.programme, participant.strand):
            return None
        return base

    def _had_data_since_last_notice(self, participant_id: str, recipient: str) -> bool:
        pair = (participant_id, recipient)
        if pair not in self._histories:   # a row planned on its own, not by plan_many
            return self._read_history([pair])[pair]
        return self._histories[pair]

    def _plan_delete(self, row: OutboxItem) -> SourcePlan:
        # Only recipients that hold the record hear of its deletion; they get identifiers only.
        self._before_history(row.participant_id, None)
        rows = self.store.db.query(   # a record's lines, within its participant's (migration 0009)
            "SELECT recipient, programme, strand, article_6 FROM sent_log"
            " WHERE participant_id = ? AND record_id = ? AND op = 'upsert'"
            " GROUP BY recipient ORDER BY recipient",
            (row.participant_id, row.record_id),
        )
        items = []
        for recipient, programme, strand, article_6 in rows:
            fields = {"id": row.record_id, "version": row.version, "record_type": row.record_type,
                      "participant_id": row.participant_id}
            items.append(PlannedItem(
                key=idempotency_key(row.record_id, row.version, recipient),
                record_type=row.record_type, record_id=row.record_id, version=row.version,
                participant_id=row.participant_id, recipient=recipient, programme=programme,
                strand=strand, op="delete", fields=MappingProxyType(fields), field_names=(),
                article_6=article_6, article_9=None, outbox_seq=row.seq,
            ))
        return SourcePlan(row.seq, None, tuple(items))

    # -- one-off shares ---------------------------------------------------------------

    def plan_one_off(
        self, seq: int, record_type: str, record_id: str, recipient: str,
        chosen: tuple[str, ...], reason: str,
    ) -> SourcePlan:
        """A one-off share, projected now with the fields the keyworker chose."""
        kind = RECORD_TYPE_BY_NAME.get(record_type)
        profile = self.profiles.get(recipient)
        record = self.store.repo(kind).find(record_id) if kind is not None else None
        if record is None or profile is None:
            return SourcePlan(None, seq)
        participant = record if isinstance(record, Participant) else self._participant(
            str(getattr(record, "participant_id", "")))
        if participant is None:
            return SourcePlan(None, seq)
        outcome = project_one_off(record, profile, participant, chosen, reason)
        key = idempotency_key(record.id, record.version, profile.id)
        if isinstance(outcome, HeldBack):
            return SourcePlan(None, seq, held=(HeldItem(
                key, record.record_type, record.id, record.version, participant.id, profile.id,
                outcome.reason),))
        return SourcePlan(None, seq, (self._planned(
            record, participant, profile.for_programme(participant.programme), outcome,
            "upsert", None, seq, reason),))


def share_one_off(
    store: Store,
    record: Record,
    profile_id: str,
    fields: Iterable[str],
    reason: str,
    profiles: Mapping[str, SharingProfile] | None = None,
) -> int:
    """Ask for a one-off share of ``record``'s chosen ``fields`` with a one-off profile.

    Checked now (a field the profile does not allow, a missing reason, or a record that is
    held back raises a typed error) and sent at the next push, projected again then. The
    request is audited with the recipient and the field names; the reason is kept in the
    encrypted store, never in the audit detail. Returns the request's number.
    """
    available = load_sharing_profiles() if profiles is None else profiles
    profile = available.get(profile_id)
    if profile is None:
        raise OneOffRefused(HoldReason.NOT_IN_PROFILE)
    participant = record if isinstance(record, Participant) else store.participants.get(
        str(getattr(record, "participant_id", "")))
    chosen = tuple(dict.fromkeys(fields))
    outcome = project_one_off(record, profile, participant, chosen, reason)
    if isinstance(outcome, HeldBack):
        raise OneOffRefused(outcome.reason)
    with store.db.transaction() as conn:
        cursor = conn.execute(
            "INSERT INTO one_off_share (record_type, record_id, participant_id, recipient, fields,"
            " reason, requested_at) VALUES (?,?,?,?,?,?,datetime('now'))",
            (record.record_type, record.id, participant.id, profile.id, json.dumps(list(chosen)), reason),
        )
        seq = int(cursor.lastrowid)
        store.audit("share_one_off_requested", record.record_type, record.id, participant.id,
                    {"recipient": profile.id, "fields": list(chosen), "reason_given": bool(reason.strip())})
    return seq
