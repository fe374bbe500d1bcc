"""The column codec's quick paths give exactly what the plain ones gave.

``RecordCodec.from_row`` sets a record's fields at once instead of calling the frozen
dataclass's ``__init__``, enum columns are looked up in a dict, and JSON columns are read by
orjson; each must give the same record, the same types and the same errors.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import date
from typing import Any

import pytest

from keyworker_app.demo import save_caseload
from keyworker_app.records import RECORD_TYPE_BY_NAME, Participant, ParticipantStatus
from keyworker_app.store.codec import _codec_for, codec_for, load_json
from keyworker_app.store.store import Store
from keyworker_app.synthetic import generate_caseload


def test_every_stored_record_reads_back_as_its_constructor_would_build_it(store: Store) -> None:
    save_caseload(store, generate_caseload(12, seed=5, keyworker_id=store.actor, today=date(2026, 3, 2)))
    checked = 0
    for kind in RECORD_TYPE_BY_NAME.values():
        codec = codec_for(kind)
        assert codec.plain_init, kind   # the quick path is the one under test
        for row in store.db.query(f"SELECT {', '.join(codec.columns)} FROM {kind.record_type}"):
            record = codec.from_row(tuple(row))
            built = kind(**{f.name: getattr(record, f.name) for f in dataclasses.fields(kind)})
            assert type(record) is kind
            assert record == built
            assert vars(record) == vars(built)
            with pytest.raises(dataclasses.FrozenInstanceError):
                record.version = 99   # type: ignore[misc]
            checked += 1
    assert checked > 200


def test_a_record_with_its_own_init_work_is_built_by_its_constructor() -> None:
    @dataclasses.dataclass(frozen=True)
    class Checked(Participant):
        def __post_init__(self) -> None:
            if not self.id:
                raise ValueError("an id is needed")

    codec = codec_for(Checked)
    assert not codec.plain_init
    row = codec.to_row(Checked(id="p-1"))
    assert codec.from_row(row).id == "p-1"
    with pytest.raises(ValueError):
        codec.from_row(codec.to_row(Participant(id="")))


def test_an_enum_column_gives_its_member_and_refuses_what_is_not_one() -> None:
    _, decode = _codec_for(ParticipantStatus)
    assert decode("exited") is ParticipantStatus.EXITED
    with pytest.raises(ValueError):
        decode("gone")
    _, optional = _codec_for(ParticipantStatus | None)
    assert optional(None) is None and optional("active") is ParticipantStatus.ACTIVE


@pytest.mark.parametrize("text", [
    '{"a": [1, "x"], "b": {"c": null}, "d": 2.5}',
    "[123456789012345678901234567890, -98765432109876543210]",   # beyond 64 bits: exact
    '{"n": 1e400, "m": NaN}',                                     # json.dumps writes these
    '["\\ud800"]',                                                # a lone surrogate
    "[18446744073709551615, -9223372036854775808, 0.1]",
])
def test_json_columns_read_as_the_standard_parser_reads_them(text: str) -> None:
    got, expected = load_json(text), json.loads(text)
    assert json.dumps(got) == json.dumps(expected)
    assert _types(got) == _types(expected)


def test_json_that_is_not_json_is_refused_as_before() -> None:
    with pytest.raises(ValueError):
        load_json("{not json")
    with pytest.raises(TypeError):
        load_json(5)


def _types(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _types(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_types(v) for v in value]
    return type(value).__name__
