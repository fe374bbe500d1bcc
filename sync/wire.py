"""The controller's answers, checked whole before anything is applied.

Each ``parse_…`` function takes decoded JSON and returns frozen dataclasses, or raises
:class:`sync.errors.MalformedResponse` naming what was wrong (a field name or a count,
never a value). Nothing here touches the store: the engine applies a page only after it
parsed cleanly, so a truncated, malformed or wrong-typed answer is never half-applied.

The shapes are those of ``controller/api.py`` (``PushResponse``, ``ReferralPage``,
``InstructionList``, ``EnrolResponse``, ``AckResponse``).
"""

from __future__ import annotations

import dataclasses
import enum
import json
import re
import types
import typing
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timezone
from typing import Any, NamedTuple

import msgspec
import orjson

from keyworker_app.records import Participant, Record, Referral

from .errors import MalformedResponse

_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]{0,99}")


class ItemStatus(enum.StrEnum):
    """The controller's answer for one pushed item."""

    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    CONFLICT = "conflict"


_STATUSES = {status.value: status for status in ItemStatus}


class ItemAnswer(NamedTuple):
    idempotency_key: str
    status: ItemStatus
    code: str
    reason: str


@dataclass(frozen=True)
class PulledReferral:
    """One referral from the controller, already turned into the records it creates."""

    controller_id: str
    participant: Participant
    referral: Referral


@dataclass(frozen=True)
class ReferralPage:
    referrals: tuple[PulledReferral, ...]
    next_cursor: str | None
    more: bool


class InstructionKind(enum.StrEnum):
    LOCK = "lock"
    REVOKE = "revoke"


@dataclass(frozen=True)
class Instruction:
    id: str
    kind: InstructionKind
    action: str


@dataclass(frozen=True)
class Enrolled:
    device_id: str
    keyworker_id: str
    token: str


def _object(data: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(data, dict):
        raise MalformedResponse(f"{what} is not a JSON object")
    return data


def _list(data: Mapping[str, Any], key: str, what: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list):
        raise MalformedResponse(f"'{key}' in {what} is missing or not a list")
    return value


def _text(data: Mapping[str, Any], key: str, what: str, *, optional: bool = False, limit: int = 1000) -> str:
    value = data.get(key)
    if value is None and optional:
        return ""
    if not isinstance(value, str) or len(value) > limit:
        raise MalformedResponse(f"'{key}' in {what} is missing or not text")
    return value


def _ident(data: Mapping[str, Any], key: str, what: str) -> str:
    value = _text(data, key, what, limit=100)
    if not _ID.fullmatch(value):
        raise MalformedResponse(f"'{key}' in {what} is not an id")
    return value


# -- push ---------------------------------------------------------------------------------

def decode_json(body: bytes) -> Any:
    """An answer's JSON: orjson first (several times faster on a push answer); what it
    refuses is read by the standard parser, so the same answers are accepted as before."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise MalformedResponse("an answer that is not valid JSON") from None


#: The longest code and reason a push result may carry (characters).
_CODE_LIMIT = 100
_REASON_LIMIT = 1000


class _PushResult(msgspec.Struct, gc=False):
    """One push result in the shape a sound answer has (``PushResponse``'s results)."""

    index: int
    idempotency_key: str
    status: ItemStatus
    code: str | None = None
    reason: str | None = None


class _PushAnswer(msgspec.Struct, gc=False):
    batch_id: str
    results: list[_PushResult]


_PUSH_ANSWER = msgspec.json.Decoder(_PushAnswer)

#: An ItemAnswer from a tuple of its fields (tuple.__new__: without the named tuple's
#: Python-level __new__, one per item).
_new_answer = tuple.__new__


def parse_push_body(body: bytes, batch_id: str, keys: Sequence[str]) -> tuple[ItemAnswer, ...]:
    """:func:`parse_push_response` for an answer's bytes as they came.

    A sound answer is read straight into typed results (one pass, in msgspec) and each
    checked against the key it answers, which takes half the time of reading the JSON
    and checking it value by value. Anything that does not fit exactly goes the long way,
    through :func:`decode_json` and :func:`parse_push_response`, which accept and refuse
    the same answers as before and say what is wrong.
    """
    try:
        answer = _PUSH_ANSWER.decode(body)
    except msgspec.DecodeError:   # (ValidationError is one)
        return parse_push_response(decode_json(body), batch_id, keys)
    results = answer.results
    if answer.batch_id != batch_id or len(results) != len(keys):
        return parse_push_response(decode_json(body), batch_id, keys)
    answers: list[ItemAnswer] = []
    for index, (result, key) in enumerate(zip(results, keys)):
        code, reason = result.code, result.reason
        if (result.index != index or result.idempotency_key != key
                or (code is not None and len(code) > _CODE_LIMIT)
                or (reason is not None and len(reason) > _REASON_LIMIT)):
            return parse_push_response(decode_json(body), batch_id, keys)
        answers.append(_new_answer(ItemAnswer, (key, result.status, code or "", reason or "")))
    return tuple(answers)


def parse_push_response(data: Any, batch_id: str, keys: Sequence[str]) -> tuple[ItemAnswer, ...]:
    """One answer per sent item, in order, each naming the key it answers."""
    body = _object(data, "the push answer")
    if body.get("batch_id") != batch_id:
        raise MalformedResponse("the push answer is for another batch")
    results = _list(body, "results", "the push answer")
    if len(results) != len(keys):
        raise MalformedResponse(f"the push answer has {len(results)} results for {len(keys)} items")
    answers: list[ItemAnswer] = []
    for index, (raw, key) in enumerate(zip(results, keys)):
        if not isinstance(raw, dict):
            raise MalformedResponse(f"push result {index} is not a JSON object")
        if raw.get("index") != index or isinstance(raw.get("index"), bool):
            raise MalformedResponse(f"push result {index} is out of order")
        if raw.get("idempotency_key") != key:
            raise MalformedResponse(f"push result {index} answers a different item")
        given = raw.get("status")
        status = _STATUSES.get(given) if isinstance(given, str) else None
        if status is None:
            raise MalformedResponse(f"push result {index} has an unknown status")
        code, reason = raw.get("code"), raw.get("reason")
        if code is None and reason is None:   # most answers: accepted, nothing to say
            answers.append(ItemAnswer(key, status, "", ""))
            continue
        what = f"push result {index}"
        answers.append(ItemAnswer(
            key, status, _text(raw, "code", what, optional=True, limit=_CODE_LIMIT),
            _text(raw, "reason", what, optional=True, limit=_REASON_LIMIT),
        ))
    return tuple(answers)


# -- referrals ----------------------------------------------------------------------------

_ASSIGNED_LOCALLY = frozenset({"id", "version", "created_at", "updated_at"})


def _value(value: Any, hint: Any, where: str) -> Any:
    """A JSON value as a record field of type ``hint`` (MalformedResponse if it does not fit)."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        args = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None and len(args) < len(typing.get_args(hint)):
            return None
        return _value(value, args[0], where)
    try:
        if hint is str and isinstance(value, str):
            return value
        if hint is bool and isinstance(value, bool):
            return value
        if hint is int and isinstance(value, int) and not isinstance(value, bool):
            return value
        if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        if hint is date and isinstance(value, str):
            return date.fromisoformat(value)
        if hint is datetime and isinstance(value, str):
            moment = datetime.fromisoformat(value)
            return moment if moment.tzinfo else moment.replace(tzinfo=timezone.utc)
        if isinstance(hint, type) and issubclass(hint, enum.Enum) and isinstance(value, str):
            return hint(value)
        if origin is tuple and isinstance(value, list):
            inner = typing.get_args(hint)[0]
            return tuple(_value(v, inner, where) for v in value)
        if origin in (Mapping, dict) or origin is typing.get_origin(Mapping[str, Any]):
            if isinstance(value, dict):
                return value
    except ValueError:
        pass
    raise MalformedResponse(f"{where} has the wrong type")


def _record(kind: type[Record], data: Any, where: str, fixed: Mapping[str, Any]) -> Any:
    fields = _object(data, where)
    hints = typing.get_type_hints(kind)
    known = {f.name for f in dataclasses.fields(kind)}
    values: dict[str, Any] = {}
    for name, raw in fields.items():
        if name not in known:
            raise MalformedResponse(f"{where} has an unknown field '{name[:64]}'")
        if name in _ASSIGNED_LOCALLY or name in fixed:
            continue
        values[name] = _value(raw, hints[name], f"'{name}' in {where}")
    return kind(**values, **fixed)


def parse_referral_page(data: Any, keyworker_id: str, new_id: typing.Callable[[], str]) -> ReferralPage:
    """A page of referrals as new Participant and Referral records for this keyworker.

    The laptop assigns the records' ids (``new_id``); the referral keeps the controller's
    id in ``controller_referral_id`` so pulling it twice never makes a second one.
    """
    body = _object(data, "the referral page")
    pulled: list[PulledReferral] = []
    seen: set[str] = set()
    for index, raw in enumerate(_list(body, "referrals", "the referral page")):
        what = f"referral {index}"
        item = _object(raw, what)
        controller_id = _ident(item, "id", what)
        if controller_id in seen:
            raise MalformedResponse(f"{what} repeats an earlier referral")
        seen.add(controller_id)
        participant = _record(
            Participant, item.get("participant"), f"the participant of {what}",
            {"id": new_id(), "keyworker_id": keyworker_id},
        )
        if not participant.programme or not participant.given_name:
            raise MalformedResponse(f"the participant of {what} has no programme or name")
        referral = _record(
            Referral, item.get("referral"), f"the referral of {what}",
            {"id": new_id(), "participant_id": participant.id, "controller_referral_id": controller_id},
        )
        pulled.append(PulledReferral(controller_id, participant, referral))
    cursor = body.get("next_cursor")
    if cursor is not None and (not isinstance(cursor, str) or len(cursor) > 200):
        raise MalformedResponse("'next_cursor' in the referral page is not text")
    more = body.get("more")
    if not isinstance(more, bool):
        raise MalformedResponse("'more' in the referral page is not true or false")
    return ReferralPage(tuple(pulled), cursor, more)


def parse_ack(data: Any, sent: Sequence[str]) -> tuple[str, ...]:
    """The ids the controller acknowledged (a subset of ``sent``)."""
    body = _object(data, "the acknowledgement")
    acknowledged = _list(body, "acknowledged", "the acknowledgement")
    _list(body, "unknown", "the acknowledgement")
    wanted = set(sent)
    if not all(isinstance(i, str) and i in wanted for i in acknowledged):
        raise MalformedResponse("the acknowledgement names ids that were not sent")
    return tuple(acknowledged)


# -- instructions and enrolment -----------------------------------------------------------

def parse_instructions(data: Any) -> tuple[Instruction, ...]:
    body = _object(data, "the instruction list")
    out: list[Instruction] = []
    for index, raw in enumerate(_list(body, "instructions", "the instruction list")):
        what = f"instruction {index}"
        item = _object(raw, what)
        try:
            kind = InstructionKind(str(item.get("kind")))
        except ValueError:
            raise MalformedResponse(f"{what} is of an unknown kind") from None
        out.append(Instruction(_ident(item, "id", what), kind, _text(item, "action", what, limit=100)))
    return tuple(out)


def parse_enrolled(data: Any) -> Enrolled:
    body = _object(data, "the enrolment answer")
    token = _text(body, "token", "the enrolment answer", limit=1000)
    if not token:
        raise MalformedResponse("the enrolment answer has no token")
    return Enrolled(
        _ident(body, "device_id", "the enrolment answer"),
        _text(body, "keyworker_id", "the enrolment answer", limit=100),
        token,
    )


def parse_health_limits(data: Any) -> Mapping[str, int]:
    body = _object(data, "the health answer")
    if body.get("status") != "ok":
        raise MalformedResponse("the controller says it is not healthy")
    limits = body.get("limits", {})
    if not isinstance(limits, dict):
        raise MalformedResponse("'limits' in the health answer is not an object")
    return {str(k): v for k, v in limits.items() if isinstance(v, int) and not isinstance(v, bool) and v > 0}
