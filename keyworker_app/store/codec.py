"""Turning records into table rows and back, driven by each dataclass's type hints."""

from __future__ import annotations

import dataclasses
import enum
import functools
import json
import types
import typing
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Callable, Mapping

import msgspec

from ..records import Record

Encoder = Callable[[Any], Any]
Decoder = Callable[[Any], Any]


def _plain(value: Any) -> Any:
    """JSON-ready form of a value inside a tuple or mapping field."""
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (date, datetime)):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)  # exact, as typed; forms turn it back into a Decimal
    if isinstance(value, Mapping):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _codec_for(hint: Any) -> tuple[Encoder, Decoder]:
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        inner = next(a for a in args if a is not type(None))
        enc, dec = _codec_for(inner)
        return (lambda v: None if v is None else enc(v)), (lambda v: None if v is None else dec(v))
    if hint is bool:
        return (lambda v: 1 if v else 0), bool
    if hint in (int, float, str, bytes):
        return (lambda v: v), hint
    if hint is date:
        return (lambda v: v.isoformat()), date.fromisoformat
    if hint is datetime:
        return (lambda v: v.isoformat()), datetime.fromisoformat
    if isinstance(hint, type) and issubclass(hint, enum.Enum):
        return (lambda v: v.value), _enum_decoder(hint)
    if origin in (tuple, Mapping, dict) or origin is typing.get_origin(Mapping[str, Any]):
        def encode(v: Any) -> str:
            return json.dumps(_plain(v), ensure_ascii=False, separators=(",", ":"), sort_keys=True)
        # The field itself comes back as its declared kind (tuple or mapping); what is inside
        # comes back as JSON gives it, which is what forms and the sync projection expect.
        if origin is tuple:
            return encode, (lambda v: tuple(load_json(v)))
        return encode, load_json
    raise TypeError(f"no column codec for {hint!r}")


def _enum_decoder(kind: type[enum.Enum]) -> Decoder:
    """A stored value as its member: a dict lookup for a member's own value (an enum
    call is about ten times slower), else the enum itself decides (and raises)."""
    members = {member.value: member for member in kind}

    def decode(v: Any) -> Any:
        member = members.get(v)
        return kind(v) if member is None else member
    return decode


_decode_json = msgspec.json.Decoder().decode


def load_json(text: Any) -> Any:
    """Stored JSON text as Python values, as ``json.loads`` gives them: by msgspec (two to
    three times quicker, and exact for integers of any size, which orjson reads as floats
    beyond 64 bits), or by the standard parser for what msgspec refuses and json.dumps
    writes (NaN, infinities, a lone surrogate)."""
    if type(text) is str:
        try:
            return _decode_json(text)
        except msgspec.MsgspecError:
            pass
    return json.loads(text)


@dataclasses.dataclass(frozen=True)
class RecordCodec:
    """Column names and per-column converters for one record type."""

    record_type: type[Record]
    columns: tuple[str, ...]
    encoders: tuple[Encoder, ...]
    decoders: tuple[Decoder, ...]
    plain_init: bool = False   # __init__ only sets each column's field (see from_row)

    def to_row(self, record: Record) -> tuple[Any, ...]:
        return tuple(enc(getattr(record, col)) for col, enc in zip(self.columns, self.encoders))

    def from_row(self, row: tuple[Any, ...]) -> Record:
        values = {col: dec(v) for col, dec, v in zip(self.columns, self.decoders, row)}
        if self.plain_init:
            # Every field is a column and __init__ would only set them, one
            # object.__setattr__ each (the dataclass is frozen): set them at once instead,
            # as unpickling does. Several times quicker for a participant's 46 fields.
            record = object.__new__(self.record_type)
            record.__dict__.update(values)
            return record
        return self.record_type(**values)

    def to_plain(self, record: Record) -> dict[str, Any]:
        """JSON-ready mapping of every field (exports and the sync projection use it)."""
        return {col: _plain(getattr(record, col)) for col in self.columns if col != "content"}


@functools.cache
def codec_for(record_type: type[Record]) -> RecordCodec:
    hints = typing.get_type_hints(record_type)
    fields = dataclasses.fields(record_type)
    pairs = [_codec_for(hints[f.name]) for f in fields]
    return RecordCodec(
        record_type=record_type,
        columns=tuple(f.name for f in fields),
        encoders=tuple(p[0] for p in pairs),
        decoders=tuple(p[1] for p in pairs),
        plain_init=(all(f.init for f in fields) and not hasattr(record_type, "__post_init__")
                    and not hasattr(record_type, "__slots__")),
    )


def plain(value: Any) -> Any:
    return _plain(value)
