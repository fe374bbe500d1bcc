"""Retention: how long each kind of information is kept, and when a case leaves the laptop.

Each programme pack carries its retention schedule (``retention`` in
``resources/programmes/<id>.json``), taken from its privacy notice:

- Working Well SES (001): everything until 2034, for ESF audit and financial audit;
- Work and Health Programme (003): participant file to 31 December 2027; MAPPA file to the
  end of the programme (15 months from start, 21 if employed); payments 6 years after the
  end of the tax year; ESF evidence 22 years after the programme ends; fraud and legal
  claims kept under review;
- WorkWell (004): up to seven years after the project;
- Early Help (002) and Working Well (000) name no period; their packs hold a documented
  default that the organisation can change in the pack.

Two different clocks run. On the laptop, a case that is closed and fully synced leaves after
``laptop_purge_after_days`` (default 30): the laptop is never the record of last resort. At
the controller, :func:`controller_destroy_on` says when each kind of record is destroyed.
These are pure functions of dates; nothing here reads the clock.
"""

from __future__ import annotations

import calendar
import enum
from dataclasses import dataclass
from datetime import date, timedelta
from typing import TYPE_CHECKING

from keyworker_app.errors import KeyworkerError
from keyworker_app.records import ParticipantStatus

if TYPE_CHECKING:
    from keyworker_app.programmes import Programme

#: Days a closed, fully synced case stays on the laptop when a pack does not say.
DEFAULT_LAPTOP_PURGE_AFTER_DAYS = 30

#: A rule whose ``record_types`` holds this governs every record type no other rule names.
EVERY_OTHER_RECORD_TYPE = "*"

# The UK tax year ends on 5 April.
_TAX_YEAR_END = (4, 5)


class RetentionBasis(enum.StrEnum):
    """What a retention period is counted from."""

    FIXED_DATE = "fixed_date"                      # kept until ``until``
    AFTER_PROGRAMME_END = "after_programme_end"    # years/months after the programme (project) ends
    AFTER_PARTICIPANT_EXIT = "after_participant_exit"
    AFTER_PARTICIPANT_START = "after_participant_start"  # e.g. the MAPPA file (seed 003)
    AFTER_TAX_YEAR_END = "after_tax_year_end"      # e.g. payments (seed 003)


class RetentionDateMissing(KeyworkerError):
    """A destruction date cannot be worked out because a date it counts from is not known."""

    exit_code = 2
    next_step = "Record the missing date, then work out the retention date again."


@dataclass(frozen=True)
class RetentionRule:
    """How long one kind of record is kept at the controller.

    ``record_types`` are the ``records.py`` record types the rule governs (``"*"``: every
    type no other rule names; empty: information the app does not hold, such as a MAPPA
    file, listed so the controller's schedule is complete). ``review_before_destroying``
    means a person decides on the date, rather than destruction being automatic.
    """

    record_kind: str
    basis: RetentionBasis
    description: str
    record_types: tuple[str, ...] = ()
    until: date | None = None
    years: int = 0
    months: int = 0
    months_if_employed: int | None = None
    configurable: bool = False
    review_before_destroying: bool = False
    source: str = ""


@dataclass(frozen=True)
class RetentionSchedule:
    """A programme's retention rules and its laptop rule."""

    rules: tuple[RetentionRule, ...]
    laptop_purge_after_days: int = DEFAULT_LAPTOP_PURGE_AFTER_DAYS
    schedule_name: str = ""

    def rule(self, record_kind: str) -> RetentionRule:
        """The rule for ``record_kind``; ``KeyError`` when the schedule has none."""
        for rule in self.rules:
            if rule.record_kind == record_kind:
                return rule
        raise KeyError(record_kind)

    def rule_for_record_type(self, record_type: str) -> RetentionRule:
        """The rule governing records of ``record_type`` (the default rule if none names it)."""
        fallback: RetentionRule | None = None
        for rule in self.rules:
            if record_type in rule.record_types:
                return rule
            if EVERY_OTHER_RECORD_TYPE in rule.record_types:
                fallback = rule
        if fallback is None:
            raise KeyError(record_type)
        return fallback


def add_months(day: date, months: int) -> date:
    """``day`` moved on by ``months``, kept within the month (31 Jan + 1 month = 28/29 Feb)."""
    index = day.year * 12 + day.month - 1 + months
    year, month = divmod(index, 12)
    last = calendar.monthrange(year, month + 1)[1]
    return date(year, month + 1, min(day.day, last))


def tax_year_end(day: date) -> date:
    """The last day (5 April) of the UK tax year that ``day`` falls in."""
    end = date(day.year, *_TAX_YEAR_END)
    return end if day <= end else date(day.year + 1, *_TAX_YEAR_END)


def laptop_purge_due(
    participant_status: ParticipantStatus,
    closed_on: date | None,
    fully_synced: bool,
    today: date,
    programme: Programme,
) -> bool:
    """Whether a case should now leave the laptop.

    Only a case that is closed, and whose every change the controller has accepted, leaves:
    an unsynced change would otherwise be lost. It leaves once the pack's
    ``laptop_purge_after_days`` have passed since it closed (0: the next time it is checked).
    """
    if participant_status is not ParticipantStatus.CLOSED or closed_on is None or not fully_synced:
        return False
    return today >= closed_on + timedelta(days=programme.retention.laptop_purge_after_days)


def _need(value: date | None, what: str, rule: RetentionRule) -> date:
    if value is None:
        raise RetentionDateMissing(
            message=f"The retention date for '{rule.record_kind}' counts from {what}, which is not known."
        )
    return value


def controller_destroy_on(
    record_kind: str,
    programme: Programme,
    *,
    start_date: date | None = None,
    exit_date: date | None = None,
    programme_end: date | None = None,
    payment_date: date | None = None,
    employed: bool = False,
) -> date:
    """The day the controller destroys records of ``record_kind`` on ``programme``.

    Pass the dates the rule counts from: the participant's ``start_date`` and ``exit_date``,
    the ``programme_end`` (default: the pack's ``ends_on``) and, for payments, the
    ``payment_date``. ``employed`` picks the longer MAPPA period of seed 003. Raises
    ``KeyError`` for a record kind the pack has no rule for and
    :class:`RetentionDateMissing` when a needed date is not given. If the rule says
    ``review_before_destroying``, the date is when a person must decide.
    """
    rule = programme.retention.rule(record_kind)
    period_months = rule.years * 12 + rule.months
    if rule.basis is RetentionBasis.FIXED_DATE:
        return _need(rule.until, "a fixed date", rule)
    if rule.basis is RetentionBasis.AFTER_PROGRAMME_END:
        end = _need(programme_end or programme.ends_on, "the end of the programme", rule)
        return add_months(end, period_months)
    if rule.basis is RetentionBasis.AFTER_PARTICIPANT_EXIT:
        return add_months(_need(exit_date, "the day the participant left", rule), period_months)
    if rule.basis is RetentionBasis.AFTER_PARTICIPANT_START:
        start = _need(start_date, "the participant's start date", rule)
        if employed and rule.months_if_employed is not None:
            return add_months(start, rule.months_if_employed)
        return add_months(start, period_months)
    paid = _need(payment_date, "the date of the payment", rule)
    return add_months(tax_year_end(paid), period_months)
