"""Checks for the UK formats a keyworker types every day.

Each validator is a pure function: it takes what was typed, returns the value in the one
form the app stores, or raises :class:`ValidationError` with a plain-English message that
says what is wrong and what to type instead. Messages never repeat the value typed: they
are shown on screen and may reach a log, and the value is usually personal data.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Container
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from keyworker_app.errors import KeyworkerError


class ValidationError(KeyworkerError):
    """An answer that cannot be accepted, with the question it belongs to."""

    exit_code = 2

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        super().__init__(message=message)


def is_blank(value: Any) -> bool:
    """True when nothing was given: ``None``, empty or blank text, or an empty list."""
    if value is None:
        return True
    if isinstance(value, str):
        return not value.strip()
    if isinstance(value, (list, tuple, set, frozenset)):
        return not value
    return False


def required(value: Any, field: str) -> Any:
    """The value itself (text stripped), or an error when nothing was given."""
    if is_blank(value):
        raise ValidationError(field, "This question needs an answer.")
    return value.strip() if isinstance(value, str) else value


def text(value: Any, field: str, max_length: int | None = None) -> str:
    """Text with surrounding spaces removed, no longer than ``max_length`` characters."""
    if not isinstance(value, str):
        raise ValidationError(field, "Please type your answer as text.")
    cleaned = value.strip()
    if max_length is not None and len(cleaned) > max_length:
        raise ValidationError(
            field,
            f"That's too long. Please keep it to {max_length} characters or fewer "
            f"(it is {len(cleaned)} now).",
        )
    return cleaned


# --- National Insurance number ------------------------------------------------------------

_NI_SHAPE = re.compile(r"[A-Z]{2}[0-9]{6}[A-D]")
# HMRC National Insurance Manual NIM39110: letters never used in a prefix.
_NI_BARRED_FIRST = frozenset("DFIQUV")
_NI_BARRED_SECOND = frozenset("DFIOQUV")
_NI_BARRED_PREFIXES = frozenset({"BG", "GB", "KN", "NK", "NT", "ZZ"})
# TN is the prefix of temporary numbers that employers once made up; never a real NINO.
_NI_TEMPORARY_PREFIXES = frozenset({"TN"})
_NI_EXAMPLE = "like AB 12 34 56 C"


def ni_number(value: Any, field: str = "ni_number") -> str:
    """A National Insurance number in upper case without spaces, e.g. ``"AB123456C"``."""
    cleaned = re.sub(r"\s+", "", text(value, field)).upper()
    if not _NI_SHAPE.fullmatch(cleaned):
        raise ValidationError(
            field,
            "That NI number doesn't look right. It should be 2 letters, 6 numbers and a "
            f"letter A–D, {_NI_EXAMPLE}.",
        )
    prefix = cleaned[:2]
    if prefix in _NI_TEMPORARY_PREFIXES:
        raise ValidationError(
            field,
            "That is a temporary reference, not a real NI number. Please ask for the "
            "person's own NI number: it is on payslips, a P60 and letters from HMRC or DWP.",
        )
    if (
        prefix[0] in _NI_BARRED_FIRST
        or prefix[1] in _NI_BARRED_SECOND
        or prefix in _NI_BARRED_PREFIXES
    ):
        raise ValidationError(
            field,
            "That NI number starts with two letters that are never issued. Please check "
            f"the first two letters against a letter from HMRC or DWP ({_NI_EXAMPLE}).",
        )
    return cleaned


# --- NHS number ---------------------------------------------------------------------------

def nhs_check_digit(first_nine: str) -> int | None:
    """The modulus 11 check digit for nine digits, or ``None`` when no digit can be valid."""
    total = sum(int(d) * weight for d, weight in zip(first_nine, range(10, 1, -1)))
    check = 11 - total % 11
    if check == 11:
        return 0
    return None if check == 10 else check


def nhs_number(value: Any, field: str = "nhs_number") -> str:
    """An NHS number as ten digits, e.g. ``"9434765919"`` (spaces and dashes allowed)."""
    cleaned = re.sub(r"[\s-]+", "", text(value, field))
    if not re.fullmatch(r"[0-9]{10}", cleaned):
        raise ValidationError(
            field,
            "An NHS number is 10 numbers, like 943 476 5919. Please check it on an NHS "
            "letter or the NHS App.",
        )
    if nhs_check_digit(cleaned[:9]) != int(cleaned[9]):
        raise ValidationError(
            field,
            "That isn't a real NHS number: one of the numbers is probably mistyped. "
            "Please check it on an NHS letter or the NHS App.",
        )
    return cleaned


def format_nhs_number(digits: str) -> str:
    """Ten stored digits shown the way the NHS prints them: ``"943 476 5919"``."""
    return f"{digits[:3]} {digits[3:6]} {digits[6:]}"


# --- Postcode -----------------------------------------------------------------------------

# Royal Mail's rules: which letters may stand in each place of the outward code, and the
# inward code never uses C, I, K, M, O or V.
_POSTCODE = re.compile(
    r"""
    (?:
        [A-PR-UWYZ][0-9][0-9]?                   # A9, A99
      | [A-PR-UWYZ][A-HK-Y][0-9][0-9]?           # AA9, AA99
      | [A-PR-UWYZ][0-9][A-HJKPSTUW]             # A9A
      | [A-PR-UWYZ][A-HK-Y][0-9][ABEHMNPRVWXY]   # AA9A
    )
    [0-9][ABD-HJLNP-UW-Z]{2}
    """,
    re.VERBOSE,
)


def postcode(value: Any, field: str = "postcode") -> str:
    """A UK postcode in upper case with one space before the last three characters."""
    cleaned = re.sub(r"\s+", "", text(value, field)).upper()
    if cleaned.startswith("BFPO"):
        raise ValidationError(
            field,
            "BFPO addresses can't be used here. Please give the postcode of the address "
            "where the person lives or can be contacted in the UK.",
        )
    if cleaned != "GIR0AA" and not _POSTCODE.fullmatch(cleaned):
        raise ValidationError(
            field,
            "That postcode doesn't look right. Please type a full UK postcode, like M1 1AE "
            "or SW1A 2AA.",
        )
    return f"{cleaned[:-3]} {cleaned[-3:]}"


# --- Dates --------------------------------------------------------------------------------

_DAY_FIRST = re.compile(r"([0-9]{1,2})[/.-]([0-9]{1,2})[/.-]([0-9]+)")
_ISO = re.compile(r"([0-9]{4})-([0-9]{2})-([0-9]{2})")


def date_value(value: Any, field: str) -> date:
    """A date from a ``date``, ISO text (``2024-01-31``) or day/month/year (``31/01/2024``)."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    cleaned = text(value, field)
    if iso := _ISO.fullmatch(cleaned):
        year, month, day = (int(part) for part in iso.groups())
    elif day_first := _DAY_FIRST.fullmatch(cleaned):
        day, month, year = (int(part) for part in day_first.groups())
        if len(day_first.group(3)) != 4:
            raise ValidationError(
                field, "Please type the year in full, with 4 numbers, like 31/01/1990."
            )
    else:
        raise ValidationError(
            field, "Please type the date as day/month/year, like 31/01/1990."
        )
    try:
        return date(year, month, day)
    except ValueError:
        raise ValidationError(
            field, "That date doesn't exist. Please check the day and the month."
        ) from None


def age_on(born: date, today: date) -> int:
    """Age in whole years on ``today`` of someone born on ``born``."""
    had_birthday = (today.month, today.day) >= (born.month, born.day)
    return today.year - born.year - (0 if had_birthday else 1)


def date_of_birth(
    value: Any,
    field: str = "date_of_birth",
    today: date | None = None,
    min_age: int = 16,
    max_age: int = 100,
) -> date:
    """A date of birth that puts the person's age between ``min_age`` and ``max_age``."""
    born = date_value(value, field)
    today = today or date.today()
    if born > today:
        raise ValidationError(
            field, "That date of birth is in the future. Please check the year."
        )
    age = age_on(born, today)
    if age < min_age:
        raise ValidationError(
            field,
            f"That date of birth makes the person younger than {min_age}, the youngest "
            "age this form is for. Please check the year.",
        )
    if age > max_age:
        raise ValidationError(
            field,
            f"That date of birth makes the person older than {max_age}. Please check "
            "the year.",
        )
    return born


# --- Phone and e-mail ---------------------------------------------------------------------

# National forms we accept: geographic 01/02, UK-wide 03, mobile 07 and freephone 080.
# Premium-rate and other numbers a participant would not give as their own are refused.
_UK_PHONE = re.compile(r"0(?:1[0-9]{8,9}|[237][0-9]{9}|80[0-9]{7,8})")


def phone_number(value: Any, field: str = "phone") -> str:
    """A UK phone number in national form without spaces, e.g. ``"07700900123"``."""
    cleaned = re.sub(r"[\s().-]+", "", text(value, field))
    cleaned = re.sub(r"^(?:\+44|0044)0?", "0", cleaned)
    if not _UK_PHONE.fullmatch(cleaned):
        raise ValidationError(
            field,
            "That phone number doesn't look right. Please type a UK landline or mobile "
            "number, like 0161 496 0000 or 07700 900123.",
        )
    return cleaned


_EMAIL = re.compile(
    r"[^@\s]+@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+[A-Za-z]{2,}"
)


def email(value: Any, field: str = "email") -> str:
    """An e-mail address with its domain in lower case (the part before @ is kept as typed)."""
    cleaned = text(value, field, max_length=254)
    if not _EMAIL.fullmatch(cleaned):
        raise ValidationError(
            field,
            "That e-mail address doesn't look right. It should be like name@example.co.uk, "
            "with no spaces.",
        )
    local, domain = cleaned.rsplit("@", 1)
    return f"{local}@{domain.lower()}"


# --- Numbers ------------------------------------------------------------------------------

def _range_message(minimum: Any, maximum: Any) -> str:
    if minimum is not None and maximum is not None:
        return f"Please type a number from {minimum} to {maximum}."
    if minimum is not None:
        return f"Please type a number of {minimum} or more."
    return f"Please type a number of {maximum} or less."


def _check_range(number: Any, field: str, minimum: Any, maximum: Any) -> None:
    if (minimum is not None and number < minimum) or (maximum is not None and number > maximum):
        raise ValidationError(field, _range_message(minimum, maximum))


def integer_in_range(
    value: Any, field: str, minimum: int | None = None, maximum: int | None = None
) -> int:
    """A whole number, from ``int`` or text, within the bounds given (inclusive)."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and re.fullmatch(r"[+-]?[0-9]+", value.strip()):
        number = int(value.strip())
    else:
        raise ValidationError(field, "Please type a whole number, like 12.")
    _check_range(number, field, minimum, maximum)
    return number


def decimal_in_range(
    value: Any,
    field: str,
    minimum: Decimal | int | None = None,
    maximum: Decimal | int | None = None,
) -> Decimal:
    """A number that may have a decimal point, within the bounds given (inclusive)."""
    if isinstance(value, bool) or not isinstance(value, (int, float, Decimal, str)):
        raise ValidationError(field, "Please type a number, like 7.5.")
    try:
        # str() first so that a float such as 37.5 becomes exactly Decimal("37.5").
        number = Decimal(str(value).strip())
    except InvalidOperation:
        raise ValidationError(field, "Please type a number, like 7.5.") from None
    if not number.is_finite():
        raise ValidationError(field, "Please type a number, like 7.5.")
    _check_range(number, field, minimum, maximum)
    return number


# --- Choices from a code list ---------------------------------------------------------------

_NOT_IN_LIST = "That isn't one of the options. Please choose from the list."


def one_of(value: Any, field: str, options: Container[str]) -> str:
    """A single code that is one of ``options`` (for example a code list)."""
    if not isinstance(value, str) or value.strip() not in options:
        raise ValidationError(field, _NOT_IN_LIST)
    return value.strip()


def several_of(value: Any, field: str, options: Container[str]) -> tuple[str, ...]:
    """Codes that are each one of ``options``, in the order chosen, without repeats."""
    if isinstance(value, str) or not isinstance(value, Collection):
        raise ValidationError(field, "Please choose one or more options from the list.")
    chosen = [one_of(item, field, options) for item in value]
    return tuple(dict.fromkeys(chosen))


def yes_or_no(value: Any, field: str) -> bool:
    """A yes/no answer given as ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValidationError(field, "Please answer yes or no.")
    return value
