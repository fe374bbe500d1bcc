"""Checking a referral file before it is queued for a keyworker.

A referral file is a JSON object with two objects in it, named after the records the
laptop will create from it::

    {
      "participant": {"given_name": "...", "family_name": "...", "programme": "working_well", ...},
      "referral":    {"source_type": "nhs_trust", "reason": "...", "received_on": "2025-01-31", ...}
    }

Field names are those of ``keyworker_app.records.Participant`` and ``Referral``. Ids,
versions and timestamps are left out: the laptop assigns them, and the controller sets
``controller_referral_id``. Every problem is reported by field name, never by value.
"""

from __future__ import annotations

import dataclasses
import enum
import json
import types
import typing
from datetime import date, datetime
from pathlib import Path
from typing import Any, Mapping

from keyworker_app import records


class InvalidReferral(Exception):
    """A referral file that cannot be queued; the message names what is wrong."""


_SET_ELSEWHERE = {"id", "version", "created_at", "updated_at"}
_NOT_FROM_FILE: dict[str, set[str]] = {
    "participant": _SET_ELSEWHERE,
    "referral": _SET_ELSEWHERE | {"participant_id", "controller_referral_id"},
}
_REQUIRED: dict[str, tuple[str, ...]] = {
    "participant": ("given_name", "family_name", "programme"),
    "referral": ("source_type", "reason"),
}
_RECORD: dict[str, type[records.Record]] = {
    "participant": records.Participant,
    "referral": records.Referral,
}


def _describe(hint: Any) -> str:
    """A short description of a type for messages: 'text', 'a date (YYYY-MM-DD)'..."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        parts = [_describe(a) for a in typing.get_args(hint) if a is not type(None)]
        return " or ".join(parts) + " or null"
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return "one of " + ", ".join(repr(m.value) for m in hint)
    if hint is bool:
        return "true or false"
    if hint is str:
        return "text"
    if hint is int:
        return "a whole number"
    if hint is float:
        return "a number"
    if hint is date:
        return "a date (YYYY-MM-DD)"
    if hint is datetime:
        return "a date and time (ISO 8601)"
    if origin is tuple:
        return "a list of " + _describe(typing.get_args(hint)[0])
    if origin in (Mapping, dict, typing.get_origin(Mapping[str, Any])):
        return "an object"
    return "a value"


def _fits(value: Any, hint: Any) -> bool:
    """Whether a JSON value fits a record field's type hint."""
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        return any(_fits(value, a) for a in typing.get_args(hint))
    if hint is type(None):
        return value is None
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return isinstance(value, str) and value in {m.value for m in hint}
    if hint is bool:
        return isinstance(value, bool)
    if hint is str:
        return isinstance(value, str)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if hint is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if hint in (date, datetime):
        if not isinstance(value, str):
            return False
        try:
            hint.fromisoformat(value)
        except ValueError:
            return False
        return True
    if origin is tuple:
        inner = typing.get_args(hint)[0]
        return isinstance(value, list) and all(_fits(v, inner) for v in value)
    if origin is not None and issubclass(origin, Mapping):
        return isinstance(value, dict)
    return True


def check_referral(document: Any, keyworker_id: str) -> dict[str, dict[str, Any]]:
    """The referral document, checked; raises :class:`InvalidReferral` naming the problem."""
    if not isinstance(document, dict):
        raise InvalidReferral("the referral file must hold a JSON object")
    extra = sorted(set(document) - set(_RECORD))
    if extra:
        raise InvalidReferral(
            f"unexpected top-level key '{extra[0]}': only 'participant' and 'referral' are allowed"
        )
    checked: dict[str, dict[str, Any]] = {}
    for part, record_type in _RECORD.items():
        section = document.get(part)
        if not isinstance(section, dict):
            raise InvalidReferral(f"'{part}' is missing or is not a JSON object")
        hints = typing.get_type_hints(record_type)
        allowed = {f.name for f in dataclasses.fields(record_type)} - _NOT_FROM_FILE[part]
        for name in sorted(section):
            if name in _NOT_FROM_FILE[part]:
                raise InvalidReferral(f"'{part}.{name}' is set by the system: leave it out")
            if name not in allowed:
                raise InvalidReferral(f"'{part}.{name}' is not a {part} field")
            if not _fits(section[name], hints[name]):
                raise InvalidReferral(f"'{part}.{name}' must be {_describe(hints[name])}")
        for name in _REQUIRED[part]:
            value = section.get(name)
            if value is None or (isinstance(value, str) and not value.strip()):
                raise InvalidReferral(f"'{part}.{name}' is required")
        checked[part] = dict(section)
    given = checked["participant"].get("keyworker_id")
    if given not in (None, "", keyworker_id):
        raise InvalidReferral(
            "'participant.keyworker_id' names a different keyworker from --keyworker-id"
        )
    return checked


def load_referral_file(path: Path, keyworker_id: str) -> dict[str, dict[str, Any]]:
    """Read and check a referral file."""
    try:
        text = path.read_text("utf-8")
    except FileNotFoundError as exc:
        raise InvalidReferral(f"there is no file {path}") from exc
    except UnicodeDecodeError as exc:
        raise InvalidReferral(f"{path} is not UTF-8 text") from exc
    except OSError as exc:
        raise InvalidReferral(f"cannot read {path}: {exc.strerror}") from exc
    try:
        document = json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidReferral(
            f"{path} is not valid JSON: {exc.msg} at line {exc.lineno}, column {exc.colno}"
        ) from exc
    return check_referral(document, keyworker_id)
