"""Helpers for the GUI tests: synthetic participants (nothing here is a real person)."""

from __future__ import annotations

from datetime import date
from typing import Any, Callable

from keyworker_app.records import Participant, ParticipantStatus

PROGRAMME = "working_well_ses"

MakeParticipant = Callable[..., Participant]


def participant(n: int, **fields: Any) -> Participant:
    """Synthetic participant number ``n``, with ``fields`` overriding the defaults."""
    defaults: dict[str, Any] = dict(
        participant_ref=f"WW-{n:06d}", programme=PROGRAMME, keyworker_id="KW-0001",
        given_name=f"Given{n}", family_name=f"Family{n:04d}",
        date_of_birth=date(1980, 1, 1 + n % 28), postcode=f"M{n % 9 + 1} {n % 9}AB",
        ni_number=f"AB{n:06d}C", status=ParticipantStatus.ACTIVE,
    )
    defaults.update(fields)
    return Participant(**defaults)
