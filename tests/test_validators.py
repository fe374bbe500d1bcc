"""The UK-format validators: what they accept, how they tidy it, and what they refuse."""

from __future__ import annotations

import string
from datetime import date, datetime
from decimal import Decimal

import pytest
from hypothesis import given
from hypothesis import strategies as st

from keyworker_app import validators as v
from keyworker_app.validators import ValidationError

TODAY = date(2024, 6, 15)


def refused(func: object, *args: object, **kwargs: object) -> str:
    """Call a validator that must refuse, and give back its message."""
    with pytest.raises(ValidationError) as caught:
        func(*args, **kwargs)  # type: ignore[operator]
    return caught.value.message


# --- NI number ------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("AB123456C", "AB123456C"),
        ("ab 12 34 56 c", "AB123456C"),
        ("  JG 103759 A ", "JG103759A"),
        ("ce123456d", "CE123456D"),
        ("NA123456B", "NA123456B"),  # N is fine first; only NK and NT are barred
    ],
)
def test_ni_number_accepts_and_normalises(typed: str, stored: str) -> None:
    assert v.ni_number(typed) == stored


@pytest.mark.parametrize(
    "typed",
    [
        "AB12345C",      # five digits
        "AB1234567C",    # seven digits
        "AB123456E",     # suffix beyond D
        "AB123456",      # no suffix
        "A1123456C",
        "",
    ],
)
def test_ni_number_refuses_wrong_shape(typed: str) -> None:
    assert "2 letters, 6 numbers and a letter A–D" in refused(v.ni_number, typed)


@pytest.mark.parametrize(
    "typed",
    [
        "DA123456A", "FA123456A", "IA123456A", "QA123456A", "UA123456A", "VA123456A",  # first
        "AD123456A", "AF123456A", "AI123456A", "AO123456A", "AQ123456A", "AU123456A",  # second
        "AV123456A",
        "BG123456A", "GB123456A", "KN123456A", "NK123456A", "NT123456A", "ZZ123456A",
    ],
)
def test_ni_number_refuses_prefixes_never_issued(typed: str) -> None:
    assert "never issued" in refused(v.ni_number, typed)


def test_ni_number_refuses_temporary_numbers_with_their_own_message() -> None:
    message = refused(v.ni_number, "TN 31 12 90 M")  # old style: wrong suffix too
    assert "2 letters" in message
    assert "temporary" in refused(v.ni_number, "TN311290A")


def test_messages_do_not_repeat_what_was_typed() -> None:
    for func, typed in [
        (v.ni_number, "ZZ999999Z"),
        (v.nhs_number, "9434765918"),
        (v.postcode, "ZZ99 9ZZQ"),
        (v.email, "someone.private@@example"),
        (v.phone_number, "09098 765432"),
    ]:
        message = refused(func, typed)
        assert typed not in message
        assert typed.replace(" ", "") not in message.replace(" ", "")


_FIRST = sorted(set(string.ascii_uppercase) - set("DFIQUV"))
_SECOND = sorted(set(string.ascii_uppercase) - set("DFIOQUV"))
_VALID_PREFIXES = [
    a + b for a in _FIRST for b in _SECOND
    if a + b not in {"BG", "GB", "KN", "NK", "NT", "TN", "ZZ"}
]


@given(
    prefix=st.sampled_from(_VALID_PREFIXES),
    digits=st.text(alphabet="0123456789", min_size=6, max_size=6),
    suffix=st.sampled_from("ABCD"),
    spaced=st.booleans(),
)
def test_any_number_with_an_issued_prefix_is_accepted(
    prefix: str, digits: str, suffix: str, spaced: bool
) -> None:
    typed = f"{prefix} {digits[:2]} {digits[2:4]} {digits[4:]} {suffix}" if spaced else prefix + digits + suffix
    assert v.ni_number(typed.lower()) == prefix + digits + suffix


# --- NHS number -----------------------------------------------------------------------------

def test_nhs_number_known_good_number() -> None:
    assert v.nhs_number("943 476 5919") == "9434765919"
    assert v.nhs_number("943-476-5919") == "9434765919"
    assert v.format_nhs_number("9434765919") == "943 476 5919"


def test_nhs_number_check_digit_rules() -> None:
    assert v.nhs_check_digit("943476591") == 9
    assert v.nhs_check_digit("000000001") == 9   # sum 2: 11 - 2
    assert v.nhs_check_digit("000000000") == 0   # 11 - 0 is 11, which becomes 0
    assert v.nhs_check_digit("000000006") is None  # sum 12: 11 - 1 is 10, never valid


@pytest.mark.parametrize("typed", ["943476591", "94347659190", "94347659l9", "abc"])
def test_nhs_number_refuses_wrong_length(typed: str) -> None:
    assert "10 numbers" in refused(v.nhs_number, typed)


def test_nhs_number_refuses_bad_check_digit() -> None:
    assert "mistyped" in refused(v.nhs_number, "9434765918")


def test_nhs_number_whose_check_would_be_ten_is_refused_whatever_the_last_digit() -> None:
    for last in "0123456789":
        assert "mistyped" in refused(v.nhs_number, "000000006" + last)


nine_digits = st.text(alphabet="0123456789", min_size=9, max_size=9)


@given(nine_digits)
def test_computed_check_digit_validates(first_nine: str) -> None:
    check = v.nhs_check_digit(first_nine)
    if check is None:
        return
    number = first_nine + str(check)
    assert v.nhs_number(v.format_nhs_number(number)) == number


@given(nine_digits, st.integers(min_value=0, max_value=9), st.integers(min_value=1, max_value=9))
def test_changing_one_digit_is_caught(first_nine: str, position: int, shift: int) -> None:
    check = v.nhs_check_digit(first_nine)
    if check is None:
        return
    digits = list(first_nine + str(check))
    digits[position] = str((int(digits[position]) + shift) % 10)
    with pytest.raises(ValidationError):
        v.nhs_number("".join(digits))


# --- Postcode -------------------------------------------------------------------------------

@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("m1 1ae", "M1 1AE"),        # A9
        ("B338TH", "B33 8TH"),       # A99
        ("CR2 6XH", "CR2 6XH"),      # AA9
        ("dn55 1pt", "DN55 1PT"),    # AA99
        ("W1A 0AX", "W1A 0AX"),      # A9A
        ("ec1a1bb", "EC1A 1BB"),     # AA9A
        ("SW1A  2AA", "SW1A 2AA"),
        ("gir 0aa", "GIR 0AA"),
        ("LA1 1PJ", "LA1 1PJ"),
    ],
)
def test_postcode_accepts_every_format(typed: str, stored: str) -> None:
    assert v.postcode(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["M1", "M11AEE", "1M 1AE", "QA1 1AA", "M1 1AC", "M1 1CA", "XX1 1AA", "AI1 1AA", ""],
)
def test_postcode_refuses_impossible_codes(typed: str) -> None:
    assert "full UK postcode" in refused(v.postcode, typed)


def test_postcode_refuses_bfpo_plainly() -> None:
    assert "BFPO" in refused(v.postcode, "BFPO 123")


# --- Dates ----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "typed",
    ["1990-01-31", "31/01/1990", "31/1/1990", "31-01-1990", "31.01.1990",
     date(1990, 1, 31), datetime(1990, 1, 31, 9, 30)],
)
def test_date_value_reads_iso_and_day_first(typed: object) -> None:
    assert v.date_value(typed, "d") == date(1990, 1, 31)


def test_date_value_messages() -> None:
    assert "day/month/year" in refused(v.date_value, "January 31st", "d")
    assert "year in full" in refused(v.date_value, "31/01/90", "d")
    assert "doesn't exist" in refused(v.date_value, "31/02/1990", "d")
    assert "doesn't exist" in refused(v.date_value, "2023-02-29", "d")
    assert v.date_value("29/02/2024", "d") == date(2024, 2, 29)


def test_date_of_birth_limits_at_today() -> None:
    assert v.date_of_birth("15/06/2008", today=TODAY) == date(2008, 6, 15)  # 16 today
    assert "younger than 16" in refused(v.date_of_birth, "16/06/2008", today=TODAY)
    assert v.date_of_birth("16/06/1923", today=TODAY) == date(1923, 6, 16)  # 100 tomorrow is 101
    assert "older than 100" in refused(v.date_of_birth, "15/06/1923", today=TODAY)
    assert "in the future" in refused(v.date_of_birth, "2024-06-16", today=TODAY)


def test_date_of_birth_limits_can_be_changed() -> None:
    # Early Help records children in the family too.
    assert v.date_of_birth("2020-01-01", today=TODAY, min_age=0) == date(2020, 1, 1)


def test_date_of_birth_uses_the_real_date_by_default() -> None:
    assert "in the future" in refused(v.date_of_birth, date(date.today().year + 1, 1, 1))


def test_age_on_counts_birthdays() -> None:
    assert v.age_on(date(2000, 2, 29), date(2021, 2, 28)) == 20
    assert v.age_on(date(2000, 2, 29), date(2021, 3, 1)) == 21


# --- Phone and e-mail -----------------------------------------------------------------------

@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("07700 900123", "07700900123"),
        ("+44 7700 900123", "07700900123"),
        ("+44 (0)7700 900123", "07700900123"),
        ("0044 7700 900123", "07700900123"),
        ("0161 496 0000", "01614960000"),
        ("(0161) 496-0000", "01614960000"),
        ("020 7946 0000", "02079460000"),
        ("01697 73456", "0169773456"),   # ten-digit number with a five-digit area code
        ("0300 123 4567", "03001234567"),
        ("0800 123 456", "0800123456"),
    ],
)
def test_phone_number_accepts_and_normalises(typed: str, stored: str) -> None:
    assert v.phone_number(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["0770090012", "077009001234", "09098 765432", "0845 123 4567", "+1 202 555 0100", "phone me", ""],
)
def test_phone_number_refuses(typed: str) -> None:
    assert "UK landline or mobile" in refused(v.phone_number, typed)


@pytest.mark.parametrize(
    ("typed", "stored"),
    [
        ("Someone@Example.CO.UK", "Someone@example.co.uk"),
        (" a.b+tag@mail-host.org ", "a.b+tag@mail-host.org"),
    ],
)
def test_email_accepts(typed: str, stored: str) -> None:
    assert v.email(typed) == stored


@pytest.mark.parametrize(
    "typed",
    ["name", "name@", "@example.com", "name@example", "na me@example.com", "a@b@example.com",
     "name@-example.com", "name@example.c", "x" * 250 + "@example.com"],
)
def test_email_refuses(typed: str) -> None:
    with pytest.raises(ValidationError):
        v.email(typed)


# --- Generic --------------------------------------------------------------------------------

@pytest.mark.parametrize("blank", [None, "", "   ", [], ()])
def test_required_refuses_blank(blank: object) -> None:
    assert refused(v.required, blank, "q") == "This question needs an answer."


def test_required_keeps_answers_including_false_and_zero() -> None:
    assert v.required(" yes ", "q") == "yes"
    assert v.required(False, "q") is False
    assert v.required(0, "q") == 0


def test_text_max_length() -> None:
    assert v.text(" abc ", "q", max_length=3) == "abc"
    assert "3 characters or fewer" in refused(v.text, "abcd", "q", max_length=3)
    assert "as text" in refused(v.text, 12, "q")


def test_integer_in_range() -> None:
    assert v.integer_in_range(" 5 ", "q", 1, 5) == 5
    assert v.integer_in_range(-3, "q") == -3
    assert "from 1 to 5" in refused(v.integer_in_range, 6, "q", 1, 5)
    assert "from 1 to 5" in refused(v.integer_in_range, "0", "q", 1, 5)
    assert "1 or more" in refused(v.integer_in_range, 0, "q", 1, None)
    assert "5 or less" in refused(v.integer_in_range, 6, "q", None, 5)
    for bad in ["2.5", "two", True, 2.0, None]:
        assert "whole number" in refused(v.integer_in_range, bad, "q")


def test_decimal_in_range() -> None:
    assert v.decimal_in_range("37.5", "q", 0, 80) == Decimal("37.5")
    assert v.decimal_in_range(37.5, "q") == Decimal("37.5")
    assert v.decimal_in_range(16, "q") == Decimal(16)
    assert "from 0 to 80" in refused(v.decimal_in_range, "80.01", "q", 0, 80)
    for bad in ["NaN", "inf", "7,5", "", True, None]:
        assert "like 7.5" in refused(v.decimal_in_range, bad, "q")


def test_choices() -> None:
    options = {"01", "02"}
    assert v.one_of(" 01 ", "q", options) == "01"
    assert "one of the options" in refused(v.one_of, "03", "q", options)
    assert "one of the options" in refused(v.one_of, 1, "q", options)
    assert v.several_of(["02", "01", "02"], "q", options) == ("02", "01")
    assert "one of the options" in refused(v.several_of, ["01", "09"], "q", options)
    assert "one or more" in refused(v.several_of, "01", "q", options)


def test_yes_or_no() -> None:
    assert v.yes_or_no(False, "q") is False
    assert "yes or no" in refused(v.yes_or_no, "yes", "q")


def test_validation_error_names_its_question() -> None:
    with pytest.raises(ValidationError) as caught:
        v.postcode("nope", "home_postcode")
    assert caught.value.field == "home_postcode"
    assert str(caught.value).startswith("That postcode doesn't look right.")
