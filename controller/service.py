"""What the controller does, independent of HTTP: enrolment, tokens, push, referrals.

The HTTP layer (``controller.api``) and the admin command line (``controller.cli``) both
call these functions. None of them logs or raises with a personal value in its message:
errors name fields, ids and counts only.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import operator
import re
import secrets
import threading
import uuid
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Callable, Mapping, Sequence

import msgspec
import orjson

from keyworker_app import records

from . import profiles
from .db import BulkInsert, Database, Tx, later_text, now_text

#: Fields a consent withdrawal notice may carry, whatever the recipient's profile says:
#: the notice must reach every recipient that had data under the consent (DESIGN §5).
WITHDRAWAL_FIELDS = frozenset({"sharing_profile", "status", "withdrawn_on", "notice_version"})

DEFAULT_CODE_VALID_SECONDS = 24 * 3600

# Devices' last_seen_at is refreshed at most this often, to keep reads cheap.
_LAST_SEEN_EVERY_SECONDS = 60


class ServiceError(Exception):
    """An expected refusal, with a stable machine code and a plain message."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class EnrolmentRefused(ServiceError):
    """An enrolment code was unknown, used, expired or for another keyworker."""


class NotAuthenticated(ServiceError):
    """A missing, unknown or revoked bearer token."""


class NotFound(ServiceError):
    """An admin command named something that does not exist."""


class InvalidCursor(ServiceError):
    """A referral cursor that this controller did not issue."""


# -- hashing and secrets ------------------------------------------------------------------

def sha256_hex(text: str) -> str:
    """The SHA-256 of ``text`` (UTF-8), as hex: how codes and tokens are stored."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def normalise_code(code: str) -> str:
    """An enrolment code as typed (any case, spaces or dashes) in canonical form."""
    return "".join(ch for ch in code.upper() if ch.isalnum())


def new_enrolment_code() -> str:
    """A fresh one-time code: 80 random bits, base32, in groups of four for reading aloud."""
    raw = base64.b32encode(secrets.token_bytes(10)).decode("ascii")
    return "-".join(raw[i : i + 4] for i in range(0, len(raw), 4))


# -- enrolment and devices ----------------------------------------------------------------

@dataclass(frozen=True)
class Device:
    """An enrolled laptop, as the API sees it once its token is checked."""

    id: str
    keyworker_id: str
    device_name: str


def create_enrolment_code(
    db: Database, keyworker_id: str, valid_seconds: float = DEFAULT_CODE_VALID_SECONDS
) -> str:
    """Make a one-time code bound to ``keyworker_id``; only its hash is stored."""
    code = new_enrolment_code()
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO enrolment_codes (code_hash, keyworker_id, created_at, expires_at)"
            " VALUES (?, ?, ?, ?)",
            (sha256_hex(normalise_code(code)), keyworker_id, now_text(), later_text(valid_seconds)),
        )
    return code


def enrol(db: Database, code: str, keyworker_id: str, device_name: str) -> tuple[Device, str]:
    """Spend ``code`` to enrol a device; returns the device and its token (shown once)."""
    code_hash = sha256_hex(normalise_code(code))
    token = secrets.token_urlsafe(32)
    device = Device(id=str(uuid.uuid4()), keyworker_id=keyworker_id, device_name=device_name)
    now = now_text()
    with db.transaction() as tx:
        # One conditional UPDATE spends the code, so two laptops racing with the same code
        # cannot both win.
        spent = tx.execute(
            "UPDATE enrolment_codes SET used_at = ?, device_id = ?"
            " WHERE code_hash = ? AND used_at IS NULL AND keyworker_id = ? AND expires_at > ?",
            (now, device.id, code_hash, keyworker_id, now),
        )
        if spent == 1:
            tx.execute(
                "INSERT INTO devices (id, keyworker_id, device_name, token_hash, enrolled_at)"
                " VALUES (?, ?, ?, ?, ?)",
                (device.id, keyworker_id, device_name, sha256_hex(token), now),
            )
            return device, token
        row = tx.one(
            "SELECT keyworker_id, expires_at, used_at FROM enrolment_codes WHERE code_hash = ?",
            (code_hash,),
        )
    if row is None:
        raise EnrolmentRefused(
            "enrolment_code_unknown",
            "This enrolment code is not known. Check it was typed as given, or ask for a new one.",
        )
    if row["used_at"] is not None:
        raise EnrolmentRefused(
            "enrolment_code_used",
            "This enrolment code has already been used. Each code enrols one laptop once: "
            "ask for a new code.",
        )
    if row["keyworker_id"] != keyworker_id:
        raise EnrolmentRefused(
            "enrolment_keyworker_mismatch",
            "This enrolment code was issued for a different keyworker id. Check the keyworker "
            "id, or ask for a code issued to you.",
        )
    raise EnrolmentRefused(
        "enrolment_code_expired",
        "This enrolment code has expired. Ask for a new code.",
    )


def authenticate(db: Database, token: str | None) -> Device:
    """The device that ``token`` belongs to; raises :class:`NotAuthenticated` otherwise."""
    if not token:
        raise NotAuthenticated("missing_token", "This request needs 'Authorization: Bearer <token>'.")
    token_hash = sha256_hex(token)
    now = now_text()
    with db.transaction() as tx:
        row = tx.one(
            "SELECT id, keyworker_id, device_name, revoked_at, last_seen_at FROM devices"
            " WHERE token_hash = ?",
            (token_hash,),
        )
        if row is None:
            raise NotAuthenticated(
                "invalid_token",
                "The token is not valid. Enrol this laptop again with a new code.",
            )
        if row["revoked_at"] is not None:
            raise NotAuthenticated(
                "device_revoked",
                "This laptop's access has been revoked. Lock it and purge its data.",
            )
        if row["last_seen_at"] is None or row["last_seen_at"] < later_text(-_LAST_SEEN_EVERY_SECONDS):
            tx.execute("UPDATE devices SET last_seen_at = ? WHERE id = ?", (now, row["id"]))
    return Device(id=row["id"], keyworker_id=row["keyworker_id"], device_name=row["device_name"])


def revoke_device(db: Database, device_id: str) -> bool:
    """Revoke a device and queue its purge instruction; False if it was already revoked."""
    now = now_text()
    with db.transaction() as tx:
        row = tx.one("SELECT revoked_at FROM devices WHERE id = ?", (device_id,))
        if row is None:
            raise NotFound("device_unknown", f"There is no device with id {device_id}.")
        if row["revoked_at"] is not None:
            return False
        tx.execute("UPDATE devices SET revoked_at = ? WHERE id = ?", (now, device_id))
        _queue_instruction(tx, device_id, "revoke", "lock_and_purge")
    return True


def list_devices(db: Database) -> list[dict[str, Any]]:
    """Every device, oldest enrolment first (no token hashes)."""
    with db.transaction() as tx:
        return tx.query(
            "SELECT id, keyworker_id, device_name, enrolled_at, last_seen_at, revoked_at"
            " FROM devices ORDER BY enrolled_at, id"
        )


# -- instructions -------------------------------------------------------------------------

class InstructionKind(StrEnum):
    """What the controller can ask a laptop to do."""

    LOCK = "lock"        # lock the app now; keep the data (e.g. laptop left behind)
    REVOKE = "revoke"    # lock and purge everything (lost or stolen laptop)


def _queue_instruction(tx: Tx, device_id: str, kind: str, action: str) -> str:
    instruction_id = str(uuid.uuid4())
    tx.execute(
        "INSERT INTO instructions (id, device_id, kind, action, created_at) VALUES (?, ?, ?, ?, ?)",
        (instruction_id, device_id, kind, action, now_text()),
    )
    return instruction_id


def queue_lock(db: Database, device_id: str) -> str:
    """Ask a device to lock itself at its next connection."""
    with db.transaction() as tx:
        if tx.one("SELECT id FROM devices WHERE id = ?", (device_id,)) is None:
            raise NotFound("device_unknown", f"There is no device with id {device_id}.")
        return _queue_instruction(tx, device_id, InstructionKind.LOCK, "lock")


def pending_instructions(db: Database, device: Device) -> list[dict[str, Any]]:
    """Instructions not yet acknowledged by ``device``, oldest first."""
    with db.transaction() as tx:
        rows = tx.query(
            "SELECT id, kind, action, created_at FROM instructions"
            " WHERE device_id = ? AND acked_at IS NULL ORDER BY created_at, id",
            (device.id,),
        )
        tx.execute(
            "UPDATE instructions SET delivered_at = ?"
            " WHERE device_id = ? AND acked_at IS NULL AND delivered_at IS NULL",
            (now_text(), device.id),
        )
    return rows


def ack_instructions(db: Database, device: Device, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Mark instructions done; returns (acknowledged, unknown) ids."""
    return _ack(db, "instructions", "device_id", device.id, ids, extra_set="")


# -- push ---------------------------------------------------------------------------------

class ItemStatus(StrEnum):
    """The answer for one pushed item."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CONFLICT = "conflict"


# PushItem and ItemResult are made once per pushed item, so they are msgspec structs:
# made in C, about a tenth of a frozen dataclass's cost (or of one with a hand-written
# __init__), and frozen, compared and shown field by field as a dataclass is. gc=False: a
# struct of strings, an int and a dict of JSON values can never be part of a reference
# cycle, so the garbage collector need not track the thousands made per push.

class PushItem(msgspec.Struct, frozen=True, gc=False):
    """One item of a push batch, already shape-checked by the API layer."""

    idempotency_key: str
    record_type: str
    record_id: str
    version: int
    recipient: str
    participant_id: str
    programme: str
    strand: str
    op: str
    fields: Mapping[str, Any]


class ItemResult(msgspec.Struct, frozen=True, gc=False):
    """The controller's answer for one item; ``reason`` never holds a personal value."""

    idempotency_key: str | None
    status: ItemStatus
    code: str | None = None
    reason: str | None = None


def idempotency_key(record_id: str, version: int, recipient: str) -> str:
    """The key that makes an item exactly-once: record id, version and recipient."""
    return f"{record_id}:{version}:{recipient}"


def _rejected(item: PushItem, code: str, reason: str) -> ItemResult:
    return ItemResult(item.idempotency_key, ItemStatus.REJECTED, code, reason)


def check_item(item: PushItem) -> ItemResult | None:
    """The receipt check against the sharing profile; None when the item may be stored.

    The same rules the laptop applied when it projected the record (DESIGN §5), checked
    again: the profile exists, covers the programme and strand, receives this record type,
    and every field sent is one of its fields for that programme (or an identifier).
    What depends only on (recipient, record type, programme, strand, op) is worked out
    once per profile set (:func:`_rule`); the rest is checked on each item, in the order
    below, so the first rule broken is the one answered.
    """
    if item.idempotency_key != idempotency_key(item.record_id, item.version, item.recipient):
        return _rejected(
            item,
            "idempotency_key_mismatch",
            "idempotency_key must be '<record_id>:<version>:<recipient>' for this item",
        )
    rule = _rule(item.recipient, item.record_type, item.programme, item.strand, item.op)
    if isinstance(rule, tuple):
        return _rejected(item, *rule)
    fields = item.fields
    if rule.withdraw and fields.get("status", "withdrawn") != "withdrawn":
        return _rejected(
            item, "withdraw_status", "a withdrawal's 'status' field must be 'withdrawn'"
        )
    if rule.record_missing is not None:
        return _rejected(item, "record_type_not_in_profile", rule.record_missing)
    if not rule.allowed.issuperset(fields):
        outside = sorted(name for name in fields if name not in rule.allowed)
        names = ", ".join(f"'{name[:64]}'" for name in outside[:10])
        noun = "field" if len(outside) == 1 else "fields"
        return _rejected(
            item,
            "field_not_in_profile",
            f"{noun} {names} not in sharing profile '{rule.profile_id}' for record type "
            f"'{item.record_type}'",
        )
    # Nearly always every identifier is sent and equal to the envelope's (a str or an
    # int): one comparison of two tuples. Otherwise one by one, as any may be left out.
    try:
        same = rule.sent_identifiers(fields) == rule.envelope_values(item)
    except KeyError:
        same = False
    if not same:
        for name, attribute in rule.envelope_identifiers:
            if name in fields and fields[name] != getattr(item, attribute):
                return _rejected(
                    item, "identifier_mismatch",
                    f"field '{name}' does not match the same identifier in the item's envelope",
                )
    # The Health Team's confidential record never leaves a laptop, whatever a profile
    # says (seed 003); refuse it here too.
    if item.record_type == "case_note" and fields.get("confidentiality") == "health_team":
        return _rejected(
            item, "health_team_confidential",
            "Health Team confidential case notes are never shared",
        )
    if (
        item.record_type == "assessment"
        and rule.assessment_forms is not None
        and "form_id" in fields
        and fields["form_id"] not in rule.assessment_forms
    ):
        return _rejected(
            item, "form_not_in_profile",
            f"sharing profile '{rule.profile_id}' does not receive assessments of this form",
        )
    return None


@dataclass(frozen=True)
class _Rule:
    """What the receipt check allows for one (recipient, record type, programme, strand, op)."""

    profile_id: str
    allowed: frozenset[str]            # the profile's fields (or a withdrawal's) and identifiers
    #: (field, PushItem attribute) for each identifier the envelope also carries, in
    #: field-name order: a field sent must equal its envelope value.
    envelope_identifiers: tuple[tuple[str, str], ...]
    withdraw: bool
    record_missing: str | None         # the reason, when the profile lacks this record type
    assessment_forms: frozenset[str] | None
    sent_identifiers: Callable[[Mapping[str, Any]], Any]     # fields -> their identifiers
    envelope_values: Callable[[PushItem], Any]               # item -> the same, from the envelope


_rules_lock = threading.Lock()
_rules_for: tuple[object, dict[tuple[str, str, str, str, str], _Rule | tuple[str, str]]] = (None, {})


def _rule(recipient: str, record_type: str, programme: str, strand: str, op: str) -> _Rule | tuple[str, str]:
    """The compiled receipt rule, or (code, reason) when every such item is refused."""
    global _rules_for
    current = profiles.profiles()
    seen, cache = _rules_for
    if seen is not current:
        with _rules_lock:
            _rules_for = (current, {})
            seen, cache = _rules_for
    key = (recipient, record_type, programme, strand, op)
    rule = cache.get(key)
    if rule is None:
        rule = cache[key] = _compile_rule(*key)
    return rule


#: The identifier fields that repeat a value of the item's envelope, and where it is.
_ENVELOPE_ATTRIBUTE = {
    "id": "record_id", "version": "version", "record_type": "record_type",
    "participant_id": "participant_id",
}


def _none_of(_: object) -> tuple[()]:
    """No identifiers (itemgetter and attrgetter need at least one name)."""
    return ()


def _compile_rule(recipient: str, record_type: str, programme: str, strand: str, op: str) -> _Rule | tuple[str, str]:
    if record_type not in records.RECORD_TYPE_BY_NAME:
        return "unknown_record_type", f"unknown record type '{record_type}'"
    if op == "withdraw" and record_type != "consent":
        return "withdraw_needs_consent", "op 'withdraw' is only for record type 'consent'"
    profile = profiles.profile_scope(recipient)
    if profile is None:
        return "unknown_profile", f"unknown sharing profile '{recipient}'"
    if programme not in profile.programmes:
        return (
            "programme_not_in_profile",
            f"sharing profile '{profile.id}' does not cover programme '{programme}'",
        )
    if profile.strands and strand not in profile.strands:
        return (
            "strand_not_in_profile",
            f"sharing profile '{profile.id}' does not cover strand '{strand}'",
        )
    identifiers = profiles.identifier_fields()
    allowed = (
        WITHDRAWAL_FIELDS if op == "withdraw"
        else profiles.allowed_fields(recipient, record_type, programme)
    )
    missing = None
    if allowed is None:
        missing = f"sharing profile '{profile.id}' does not receive record type '{record_type}'"
    envelope_identifiers = tuple(
        (name, _ENVELOPE_ATTRIBUTE[name]) for name in sorted(identifiers)
        if name in _ENVELOPE_ATTRIBUTE
    )
    names = [name for name, _ in envelope_identifiers]
    attributes = [attribute for _, attribute in envelope_identifiers]
    return _Rule(
        profile_id=profile.id,
        allowed=frozenset(allowed or ()) | identifiers,
        envelope_identifiers=envelope_identifiers,
        sent_identifiers=operator.itemgetter(*names) if names else _none_of,
        envelope_values=operator.attrgetter(*attributes) if attributes else _none_of,
        withdraw=op == "withdraw",
        record_missing=missing,
        assessment_forms=profile.assessment_forms,
    )


#: How a payload is stored: compact JSON, keys sorted (one encoder, built once). orjson
#: writes the same JSON several times faster; what it cannot write (an integer beyond 64
#: bits, a lone surrogate) goes through the standard encoder as before.
_PAYLOAD_ENCODER = json.JSONEncoder(sort_keys=True, separators=(",", ":"))


def encode_payload(fields: Mapping[str, Any]) -> str:
    """An item's fields as stored: compact JSON text with sorted keys."""
    try:
        return orjson.dumps(fields, option=orjson.OPT_SORT_KEYS).decode("utf-8")
    except (TypeError, orjson.JSONEncodeError):
        return _PAYLOAD_ENCODER.encode(dict(fields))


def apply_item(db: Database, device: Device, batch_id: str, item: PushItem) -> ItemResult:
    """Check and store one item exactly once, in its own transaction."""
    return apply_items(db, device, batch_id, [item])[0]


class _Raced(Exception):
    """Another delivery wrote some of these items while this batch was being decided."""


def apply_items(
    db: Database, device: Device, batch_id: str, items: Sequence[PushItem | ItemResult]
) -> list[ItemResult]:
    """Check and store a batch's items, each exactly once, in one transaction.

    Returns one answer per item, in order. An entry that is already an :class:`ItemResult`
    (an item the API layer could not parse) is answered as it is. Every item is checked
    against its sharing profile first; a refused or conflicting item writes nothing and
    never blocks the rest.

    The batch is stored set-wise (:func:`_store_batch`): what is held already is read
    with two queries, each item is decided in order as if stored one by one, and the
    accepted ones are written with one statement per table. Exactly-once still rests on
    the unique idempotency key: every write is conditional, and if any of them changes
    fewer rows than decided (a concurrent delivery of the same items got there first, on
    a backend that lets two pushes write at once), the transaction is rolled back and
    the batch stored again item by item (:func:`_store_item`), which waits for the other
    delivery and answers each item from what it finds.
    """
    results: list[ItemResult | None] = []
    to_store: list[PushItem] = []
    places: list[int] = []       # where each of to_store is answered in results
    for item in items:
        if isinstance(item, ItemResult):
            results.append(item)
            continue
        refused = check_item(item)
        if refused is None:
            places.append(len(results))
            to_store.append(item)
        results.append(refused)
    if to_store:
        try:
            with db.transaction() as tx:
                stored = _store_batch(tx, device, batch_id, to_store)
        except _Raced:
            with db.transaction() as tx:
                stored = [_store_item(tx, device, batch_id, item) for item in to_store]
        for index, result in zip(places, stored, strict=True):
            results[index] = result
    return [r for r in results if r is not None]


_RECEIVED = BulkInsert(
    "received_items",
    ("idempotency_key", "recipient", "record_type", "record_id", "version", "op",
     "participant_id", "programme", "strand", "payload", "batch_id", "device_id", "received_at"),
    "ON CONFLICT (idempotency_key) DO NOTHING",
    {"version": "bigint"},
)
_HEADS = BulkInsert(
    "record_heads",
    ("record_id", "recipient", "version"),
    "ON CONFLICT (record_id, recipient) DO UPDATE SET version = excluded.version"
    " WHERE record_heads.version < excluded.version",
    {"version": "bigint"},
)
_WITHDRAWALS = BulkInsert(
    "withdrawals",
    ("idempotency_key", "recipient", "participant_id", "consent_id", "withdrawn_on",
     "device_id", "received_at"),
)
_RECEIVED_SQL = _RECEIVED.values_sql()
_HEAD_SQL = _HEADS.values_sql()
_WITHDRAWAL_SQL = _WITHDRAWALS.values_sql()


def _received_row(item: PushItem, batch_id: str, device_id: str, now: str) -> tuple[Any, ...]:
    """``item`` as a row of ``received_items`` (``_RECEIVED``'s columns)."""
    return (
        item.idempotency_key, item.recipient, item.record_type, item.record_id, item.version,
        item.op, item.participant_id, item.programme, item.strand, encode_payload(item.fields),
        batch_id, device_id, now,
    )


def _withdrawal_row(item: PushItem, device_id: str, now: str) -> tuple[Any, ...]:
    """A withdraw ``item`` as a row of ``withdrawals`` (``_WITHDRAWALS``'s columns)."""
    withdrawn_on = item.fields.get("withdrawn_on")
    return (
        item.idempotency_key, item.recipient, item.participant_id, item.record_id,
        str(withdrawn_on) if withdrawn_on is not None else None, device_id, now,
    )


def _duplicate(key: str) -> ItemResult:
    return ItemResult(key, ItemStatus.DUPLICATE, "duplicate", "already received")


def _conflict(key: str, version: int, held: Any) -> ItemResult:
    return ItemResult(
        key, ItemStatus.CONFLICT, "older_version",
        f"version {version} is older than version {held} already held for this record and recipient",
    )


_first = operator.itemgetter(0)
_record_and_recipient = operator.itemgetter(0, 1)


def _store_batch(tx: Tx, device: Device, batch_id: str, items: Sequence[PushItem]) -> list[ItemResult]:
    """Store checked items in order, as :func:`_store_item` would one by one; raises
    :class:`_Raced` when a write finds the database other than it was read."""
    # Heads first, then keys. On PostgreSQL each read sees what was committed when it
    # began, and another delivery commits its keys and heads together: read in this order,
    # a key already stored is always seen as held (duplicate), never as "not held, but its
    # head is there" (which would answer a repeat delivery "conflict").
    in_ids, ids = tx.any_of(sorted({item.record_id for item in items}))
    heads: dict[tuple[str, str], int] = {
        (row["record_id"], row["recipient"]): int(row["version"]) for row in tx.query(
            "SELECT record_id, recipient, version FROM record_heads WHERE record_id" + in_ids, (ids,))
    }
    in_keys, keys = tx.any_of(sorted({item.idempotency_key for item in items}))
    held_keys = {
        row["idempotency_key"] for row in tx.query(
            "SELECT idempotency_key FROM received_items WHERE idempotency_key" + in_keys, (keys,))
    }
    now = now_text()
    device_id = device.id
    accepted = ItemStatus.ACCEPTED
    results: list[ItemResult] = []
    received: list[tuple[Any, ...]] = []
    moved: list[tuple[str, str, int]] = []
    withdrawals: list[tuple[Any, ...]] = []
    for item in items:
        key = item.idempotency_key
        if key in held_keys:
            results.append(_duplicate(key))
            continue
        version = item.version
        target = (item.record_id, item.recipient)
        head = heads.get(target)
        if head is not None and head >= version:
            results.append(_conflict(key, version, head))
            continue
        held_keys.add(key)
        heads[target] = version
        received.append(_received_row(item, batch_id, device_id, now))
        moved.append(target + (version,))
        if item.op == "withdraw":
            withdrawals.append(_withdrawal_row(item, device_id, now))
        results.append(ItemResult(key, accepted))
    # Written in key order (the order two deliveries of overlapping items take their
    # locks in, so they queue instead of deadlocking); heads keep the order decided for
    # two versions of one record (a stable sort).
    received.sort(key=_first)         # keys are unique
    moved.sort(key=_record_and_recipient)
    if tx.insert_many(_RECEIVED, received) != len(received):
        raise _Raced()
    # One statement cannot move one head twice (PostgreSQL refuses an ON CONFLICT DO
    # UPDATE that meets a row again), so a record with two versions in the batch has its
    # head moved a row at a time, each move counted as before.
    if len(set(map(_record_and_recipient, moved))) == len(moved):
        changed = tx.insert_many(_HEADS, moved)
    else:
        changed = tx.executemany(_HEAD_SQL, moved)
    if changed != len(moved):
        raise _Raced()
    tx.insert_many(_WITHDRAWALS, withdrawals)
    return results


def _store_item(tx: Tx, device: Device, batch_id: str, item: PushItem) -> ItemResult:
    """Store one checked item inside the batch's transaction, or say why not.

    The received row goes first: the unique key makes a second delivery (even one racing
    this transaction, which waits for it) insert nothing and be answered ``duplicate``,
    with nothing else written. Then the head moves forward only if this version is newer
    than what is held (its row lock serialises concurrent deliveries of one record); if it
    does not, the row just inserted by this transaction is taken out again and the item is
    a ``conflict``. So a refused item leaves nothing behind, without a savepoint.
    """
    key = item.idempotency_key
    now = now_text()
    if tx.execute(_RECEIVED_SQL, _received_row(item, batch_id, device.id, now)) == 0:
        return _duplicate(key)
    if tx.execute(_HEAD_SQL, (item.record_id, item.recipient, item.version)) == 0:
        tx.execute("DELETE FROM received_items WHERE idempotency_key = ?", (key,))
        head = tx.one(
            "SELECT version FROM record_heads WHERE record_id = ? AND recipient = ?",
            (item.record_id, item.recipient),
        )
        return _conflict(key, item.version, head["version"] if head else "?")
    if item.op == "withdraw":
        tx.execute(_WITHDRAWAL_SQL, _withdrawal_row(item, device.id, now))
    return ItemResult(key, ItemStatus.ACCEPTED)


def _rows_for_recipient(db: Database, select: str, recipient: str | None) -> list[dict[str, Any]]:
    """``select`` (no WHERE), limited to ``recipient`` when given, oldest first."""
    params: tuple[Any, ...] = ()
    if recipient is not None:
        select += " WHERE recipient = ?"
        params = (recipient,)
    with db.transaction() as tx:
        return tx.query(select + " ORDER BY received_at, idempotency_key", params)


def list_received(db: Database, recipient: str | None = None) -> list[dict[str, Any]]:
    """What was received, oldest first, each with its recipient and decoded payload."""
    rows = _rows_for_recipient(
        db,
        "SELECT idempotency_key, recipient, record_type, record_id, version, op, participant_id,"
        " programme, strand, payload, batch_id, device_id, received_at FROM received_items",
        recipient,
    )
    for row in rows:
        row["payload"] = json.loads(row["payload"])
    return rows


def list_withdrawals(db: Database, recipient: str | None = None) -> list[dict[str, Any]]:
    """Consent withdrawal notices received, oldest first."""
    return _rows_for_recipient(
        db,
        "SELECT recipient, participant_id, consent_id, withdrawn_on, device_id, received_at,"
        " idempotency_key FROM withdrawals",
        recipient,
    )


# -- referrals ----------------------------------------------------------------------------

def queue_referral(db: Database, keyworker_id: str, document: Mapping[str, Any]) -> str:
    """Queue a checked referral document (see ``controller.referral_file``) for a keyworker."""
    referral_id = str(uuid.uuid4())
    referral = dict(document["referral"], controller_referral_id=referral_id)
    participant = dict(document["participant"], keyworker_id=keyworker_id)
    payload = {"participant": participant, "referral": referral}
    with db.transaction() as tx:
        tx.execute(
            "INSERT INTO referrals (id, keyworker_id, payload, queued_at) VALUES (?, ?, ?, ?)",
            (referral_id, keyworker_id, json.dumps(payload, sort_keys=True), now_text()),
        )
    return referral_id


_CURSOR_TIME = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z")
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


def _encode_cursor(queued_at: str, referral_id: str) -> str:
    return base64.urlsafe_b64encode(f"{queued_at}|{referral_id}".encode()).decode().rstrip("=")


def _decode_cursor(cursor: str) -> tuple[str, str]:
    try:
        raw = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError) as exc:
        raise InvalidCursor("invalid_cursor", "The cursor was not issued by this controller.") from exc
    queued_at, sep, referral_id = raw.partition("|")
    if not sep or not _CURSOR_TIME.fullmatch(queued_at) or not _UUID.fullmatch(referral_id):
        raise InvalidCursor("invalid_cursor", "The cursor was not issued by this controller.")
    return queued_at, referral_id


@dataclass(frozen=True)
class ReferralPage:
    """One page of referrals for a device, and where to carry on."""

    referrals: list[dict[str, Any]]
    next_cursor: str | None
    more: bool


def pull_referrals(db: Database, device: Device, since: str | None, limit: int) -> ReferralPage:
    """Referrals for the device's keyworker, not yet acknowledged, after ``since``."""
    after_at, after_id = _decode_cursor(since) if since else ("", "")
    with db.transaction() as tx:
        rows = tx.query(
            "SELECT id, payload, queued_at FROM referrals"
            " WHERE keyworker_id = ? AND acked_at IS NULL"
            " AND (queued_at > ? OR (queued_at = ? AND id > ?))"
            " ORDER BY queued_at, id LIMIT ?",
            (device.keyworker_id, after_at, after_at, after_id, limit + 1),
        )
        page = rows[:limit]
        now = now_text()
        for row in page:
            tx.execute(
                "UPDATE referrals SET delivered_at = ? WHERE id = ? AND delivered_at IS NULL",
                (now, row["id"]),
            )
    out = []
    for row in page:
        payload = json.loads(row["payload"])
        out.append(
            {
                "id": row["id"],
                "queued_at": row["queued_at"],
                "participant": payload["participant"],
                "referral": payload["referral"],
            }
        )
    next_cursor = _encode_cursor(page[-1]["queued_at"], page[-1]["id"]) if page else since
    return ReferralPage(out, next_cursor, more=len(rows) > limit)


def ack_referrals(db: Database, device: Device, ids: Sequence[str]) -> tuple[list[str], list[str]]:
    """Mark referrals as stored on the laptop; returns (acknowledged, unknown) ids."""
    return _ack(
        db, "referrals", "keyworker_id", device.keyworker_id, ids,
        extra_set=", acked_by_device = ?", extra_params=(device.id,),
    )


def _ack(
    db: Database,
    table: str,
    owner_column: str,
    owner: str,
    ids: Sequence[str],
    extra_set: str,
    extra_params: tuple[Any, ...] = (),
) -> tuple[list[str], list[str]]:
    """Acknowledge ``ids`` owned by ``owner``; acking twice is harmless (idempotent)."""
    acknowledged: list[str] = []
    unknown: list[str] = []
    now = now_text()
    with db.transaction() as tx:
        for item_id in dict.fromkeys(ids):  # de-duplicated, order kept
            # table, owner_column and extra_set are fixed strings from this module.
            tx.execute(
                f"UPDATE {table} SET acked_at = ?{extra_set}"
                f" WHERE id = ? AND {owner_column} = ? AND acked_at IS NULL",
                (now, *extra_params, item_id, owner),
            )
            held = tx.one(f"SELECT id FROM {table} WHERE id = ? AND {owner_column} = ?", (item_id, owner))
            (acknowledged if held else unknown).append(item_id)
    return acknowledged, unknown
