"""Retention: the laptop rule and the controller's destruction dates, from each pack."""

from __future__ import annotations

import dataclasses
from datetime import date

import pytest

from keyworker_app.programmes import load_programme
from keyworker_app.records import ParticipantStatus
from keyworker_app.retention import (
    RetentionDateMissing,
    add_months,
    controller_destroy_on,
    laptop_purge_due,
    tax_year_end,
)

CLOSED = date(2025, 3, 1)


@pytest.mark.parametrize(
    ("status", "synced", "days_later", "due"),
    [
        (ParticipantStatus.CLOSED, True, 30, True),
        (ParticipantStatus.CLOSED, True, 29, False),
        (ParticipantStatus.CLOSED, False, 400, False),   # unsynced work is never purged
        (ParticipantStatus.EXITED, True, 400, False),    # exited is not yet closed
        (ParticipantStatus.ACTIVE, True, 400, False),
    ],
)
def test_a_case_leaves_the_laptop_only_when_closed_synced_and_old_enough(
    status: ParticipantStatus, synced: bool, days_later: int, due: bool
) -> None:
    programme = load_programme("working_well_ses")
    today = date.fromordinal(CLOSED.toordinal() + days_later)
    assert laptop_purge_due(status, CLOSED, synced, today, programme) is due


def test_the_laptop_rule_is_set_per_pack() -> None:
    programme = load_programme("workwell")
    assert programme.retention.laptop_purge_after_days == 30
    quick = dataclasses.replace(programme, retention=dataclasses.replace(programme.retention, laptop_purge_after_days=0))
    assert laptop_purge_due(ParticipantStatus.CLOSED, CLOSED, True, CLOSED, quick)
    assert not laptop_purge_due(ParticipantStatus.CLOSED, None, True, CLOSED, quick)


def test_ses_keeps_everything_until_2034() -> None:
    ses = load_programme("working_well_ses")
    assert controller_destroy_on("participant_file", ses) == date(2034, 1, 1)
    assert ses.retention.rule_for_record_type("esf_form").record_kind == "participant_file"


def test_whp_follows_its_retention_table() -> None:
    whp = load_programme("working_well_whp")
    assert controller_destroy_on("participant_file", whp) == date(2027, 12, 31)
    assert controller_destroy_on("esf_evidence", whp, programme_end=date(2025, 3, 31)) == date(2047, 3, 31)
    assert controller_destroy_on("mappa_file", whp, start_date=date(2024, 1, 15)) == date(2025, 4, 15)
    assert controller_destroy_on("mappa_file", whp, start_date=date(2024, 1, 15), employed=True) == date(2025, 10, 15)
    # Paid on 1 May 2024: tax year ends 5 April 2025, kept 6 years after.
    assert controller_destroy_on("financial", whp, payment_date=date(2024, 5, 1)) == date(2031, 4, 5)
    assert whp.retention.rule("legal_claims").review_before_destroying
    assert whp.retention.rule_for_record_type("esf_form").record_kind == "esf_evidence"
    assert whp.retention.rule_for_record_type("case_note").record_kind == "participant_file"


def test_workwell_keeps_seven_years_after_the_project() -> None:
    workwell = load_programme("workwell")
    assert controller_destroy_on("participant_file", workwell, programme_end=date(2026, 3, 31)) == date(2033, 3, 31)
    with pytest.raises(RetentionDateMissing):
        controller_destroy_on("participant_file", workwell)


def test_early_help_has_a_configurable_default() -> None:
    early_help = load_programme("early_help")
    rule = early_help.retention.rule("family_file")
    assert rule.configurable
    assert controller_destroy_on("family_file", early_help, exit_date=date(2025, 2, 1)) == date(2031, 2, 1)


def test_an_unknown_record_kind_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        controller_destroy_on("horoscopes", load_programme("workwell"))


@pytest.mark.parametrize(
    ("day", "months", "expected"),
    [(date(2024, 1, 31), 1, date(2024, 2, 29)), (date(2024, 2, 29), 12, date(2025, 2, 28)),
     (date(2025, 11, 30), 3, date(2026, 2, 28)), (date(2025, 5, 5), 0, date(2025, 5, 5))],
)
def test_add_months_stays_within_the_month(day: date, months: int, expected: date) -> None:
    assert add_months(day, months) == expected


def test_tax_year_ends_on_5_april() -> None:
    assert tax_year_end(date(2025, 4, 5)) == date(2025, 4, 5)
    assert tax_year_end(date(2025, 4, 6)) == date(2026, 4, 5)
    assert tax_year_end(date(2025, 1, 1)) == date(2025, 4, 5)
