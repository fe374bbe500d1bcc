"""Forms as data: loading, checking and answering the questions in ``resources/forms/``.

A form file is named ``<id>.v<version>.json`` and holds ``id``, ``version``, ``title`` and
``sections``, each with ``fields`` (the questions). Old versions stay in the folder, because
every saved assessment names the form version it was answered on. Each file is checked
for shape when it loads, so a mistake in a form is found by the test suite and never
reaches a keyworker half-way through a home visit.

A question may be shown, or required, only when an earlier answer says so::

    {"field": "in_work", "equals": true}
    {"field": "employment_status", "in": ["01", "07"]}
    {"all": [cond, ...]}   {"any": [cond, ...]}

For a question that allows several answers, ``equals`` holds when that option was chosen
and ``in`` when any of the options listed was.
"""

from __future__ import annotations

import enum
import functools
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from importlib import resources
from importlib.resources.abc import Traversable
from types import MappingProxyType
from typing import Any, NoReturn

from keyworker_app import records, validators
from keyworker_app.codelists import Code, CodeListError, load_codelist
from keyworker_app.errors import DataFileError
from keyworker_app.errors import KeyworkerError

_PACKAGE = "resources"
_FOLDER = "forms"
_FILE_NAME = re.compile(r"([a-z][a-z0-9_]*)\.v([0-9]+)\.json")
_ID = re.compile(r"[a-z][a-z0-9_]*")

# Long enough for any real answer; short enough that a paste by mistake is caught.
DEFAULT_MAX_LENGTH = {"text": 500, "multiline": 5000}


class FieldType(enum.StrEnum):
    """The kinds of question a form can ask; each has its own check and its own widget."""

    TEXT = "text"
    MULTILINE = "multiline"
    DATE = "date"
    INTEGER = "integer"
    DECIMAL = "decimal"
    CHOICE = "choice"
    MULTICHOICE = "multichoice"
    BOOLEAN = "boolean"
    NI_NUMBER = "ni_number"
    NHS_NUMBER = "nhs_number"
    POSTCODE = "postcode"
    PHONE = "phone"
    EMAIL = "email"
    DATE_OF_BIRTH = "date_of_birth"
    SIGNATURE = "signature"  # the answer is the id of the signature image's attachment


_WITH_CODELIST = frozenset({FieldType.CHOICE, FieldType.MULTICHOICE})
# For a date of birth, min and max are the youngest and oldest ages allowed.
_WITH_RANGE = frozenset({FieldType.INTEGER, FieldType.DECIMAL, FieldType.DATE_OF_BIRTH})
_WHOLE_RANGE = frozenset({FieldType.INTEGER, FieldType.DATE_OF_BIRTH})
_WITH_MAX_LENGTH = frozenset({FieldType.TEXT, FieldType.MULTILINE})


class FormDefinitionError(DataFileError):
    """A form file that is not shaped as a form must be; ``source`` names the file."""

    kind = "Form"


class FormNotFound(KeyworkerError):
    """No form, or no such version of a form, with that id."""

    exit_code = 2

    def __init__(self, form_id: str, version: int | None = None) -> None:
        self.form_id = form_id
        self.version = version
        which = f"version {version} of the form" if version else "the form"
        super().__init__(
            message=f"The app has no {which} '{form_id}'.",
            next_step="Update Keyworker, or choose another form.",
        )


# --- Definitions --------------------------------------------------------------------------

Scalar = str | int | float | bool | None


@dataclass(frozen=True)
class Condition:
    """When a question is shown or required: ``kind`` is equals, in, all or any."""

    kind: str
    field: str = ""
    values: tuple[Scalar, ...] = ()
    parts: tuple[Condition, ...] = ()

    def holds(self, answers: Mapping[str, Any]) -> bool:
        """Whether the condition is true for these answers (a missing answer matches nothing)."""
        if self.kind == "all":
            return all(part.holds(answers) for part in self.parts)
        if self.kind == "any":
            return any(part.holds(answers) for part in self.parts)
        answer = answers.get(self.field)
        chosen = answer if isinstance(answer, (list, tuple)) else (answer,)
        return answer is not None and any(_same(a, v) for a in chosen for v in self.values)

    def fields(self) -> Iterator[str]:
        """The ids of every question this condition looks at."""
        if self.field:
            yield self.field
        for part in self.parts:
            yield from part.fields()


def _same(answer: Any, value: Scalar) -> bool:
    # True == 1 in Python; a yes/no answer must not match the number 1, or the reverse.
    return isinstance(answer, bool) == isinstance(value, bool) and answer == value


@dataclass(frozen=True)
class FormField:
    """One question: what it asks, what kind of answer it takes, and when it applies."""

    id: str
    label: str
    type: FieldType
    required: bool = False
    help: str = ""
    codelist: str = ""
    codelist_group: str = ""
    minimum: Decimal | None = None
    maximum: Decimal | None = None
    max_length: int | None = None
    shown_when: Condition | None = None
    required_when: Condition | None = None
    maps_to: str = ""

    def options(self) -> tuple[Code, ...]:
        """The answers a choice question offers, in order (empty for other questions)."""
        if not self.codelist:
            return ()
        codes = load_codelist(self.codelist).codes
        if self.codelist_group:
            return tuple(c for c in codes if c.group == self.codelist_group)
        return codes


@dataclass(frozen=True)
class Section:
    """A titled group of questions, shown together on one page or panel."""

    id: str
    title: str
    fields: tuple[FormField, ...]
    help: str = ""


@dataclass(frozen=True)
class FormDefinition:
    """A versioned form: its sections of questions, in the order they are asked."""

    id: str
    version: int
    title: str
    sections: tuple[Section, ...]
    description: str = ""

    @property
    def fields(self) -> tuple[FormField, ...]:
        """Every question on the form, in order."""
        return tuple(f for section in self.sections for f in section.fields)

    def field(self, field_id: str) -> FormField:
        """The question with this id; ``KeyError`` if the form has none."""
        for candidate in self.fields:
            if candidate.id == field_id:
                return candidate
        raise KeyError(field_id)


# --- Reading and checking a form file ------------------------------------------------------

_FORM_KEYS = (frozenset({"id", "version", "title", "sections"}), frozenset({"description"}))
_SECTION_KEYS = (frozenset({"id", "title", "fields"}), frozenset({"help"}))
_FIELD_KEYS = (
    frozenset({"id", "label", "type"}),
    frozenset({
        "required", "help", "codelist", "codelist_group", "min", "max", "max_length",
        "shown_when", "required_when", "maps_to",
    }),
)


class _FormReader:
    """Builds a FormDefinition from parsed JSON, failing with the file name on any fault."""

    def __init__(self, source: str) -> None:
        self.source = source
        self.fields_so_far: dict[str, FormField] = {}

    def fail(self, problem: str) -> NoReturn:
        raise FormDefinitionError(self.source, problem)

    def keys(self, data: Any, where: str, keys: tuple[frozenset[str], frozenset[str]]) -> None:
        needed, optional = keys
        if not isinstance(data, dict):
            self.fail(f"{where} must be a JSON object")
        missing = sorted(needed - set(data))
        if missing:
            self.fail(f"{where} is missing {', '.join(repr(k) for k in missing)}")
        unknown = sorted(set(data) - needed - optional)
        if unknown:
            self.fail(f"{where} has unknown keys {', '.join(repr(k) for k in unknown)}")

    def text(self, data: dict[str, Any], key: str, where: str, default: str | None = None) -> str:
        value = data.get(key, default)
        if not isinstance(value, str) or (default is None and not value.strip()):
            self.fail(f"{where}: '{key}' must be text")
        return value

    def ident(self, data: dict[str, Any], where: str) -> str:
        value = self.text(data, "id", where)
        if not _ID.fullmatch(value):
            self.fail(f"{where}: id '{value}' must be lower case letters, digits and _")
        return value

    def form(self, data: Any) -> FormDefinition:
        self.keys(data, "the form", _FORM_KEYS)
        version = data["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 1:
            self.fail("'version' must be a whole number of 1 or more")
        sections = data["sections"]
        if not isinstance(sections, list) or not sections:
            self.fail("'sections' must be a non-empty list")
        built = tuple(self.section(s, n) for n, s in enumerate(sections, 1))
        section_ids = [s.id for s in built]
        if len(set(section_ids)) != len(section_ids):
            self.fail("two sections have the same id")
        return FormDefinition(
            id=self.ident(data, "the form"),
            version=version,
            title=self.text(data, "title", "the form"),
            sections=built,
            description=self.text(data, "description", "the form", default=""),
        )

    def section(self, data: Any, number: int) -> Section:
        where = f"section {number}"
        self.keys(data, where, _SECTION_KEYS)
        fields = data["fields"]
        if not isinstance(fields, list) or not fields:
            self.fail(f"{where}: 'fields' must be a non-empty list")
        return Section(
            id=self.ident(data, where),
            title=self.text(data, "title", where),
            fields=tuple(self.field(f, where) for f in fields),
            help=self.text(data, "help", where, default=""),
        )

    def field(self, data: Any, section: str) -> FormField:
        self.keys(data, f"a question in {section}", _FIELD_KEYS)
        field_id = self.ident(data, f"a question in {section}")
        where = f"question '{field_id}'"
        if field_id in self.fields_so_far:
            self.fail(f"{where} appears more than once (question ids must be unique)")
        try:
            field_type = FieldType(data["type"])
        except ValueError:
            self.fail(f"{where} has unknown type '{data['type']}'")
        required = data.get("required", False)
        if not isinstance(required, bool):
            self.fail(f"{where}: 'required' must be true or false")
        built = FormField(
            id=field_id,
            label=self.text(data, "label", where),
            type=field_type,
            required=required,
            help=self.text(data, "help", where, default=""),
            codelist_group=self.text(data, "codelist_group", where, default=""),
            codelist=self.codelist(data, field_type, where),
            minimum=self.bound(data, "min", field_type, where),
            maximum=self.bound(data, "max", field_type, where),
            max_length=self.max_length(data, field_type, where),
            shown_when=self.condition(data.get("shown_when"), where, "shown_when"),
            required_when=self.condition(data.get("required_when"), where, "required_when"),
            maps_to=self.maps_to(data.get("maps_to", ""), where),
        )
        self.check_field(built, where)
        self.fields_so_far[field_id] = built
        return built

    def check_field(self, built: FormField, where: str) -> None:
        if built.minimum is not None and built.maximum is not None and built.minimum > built.maximum:
            self.fail(f"{where}: 'min' is greater than 'max'")
        if built.required and built.required_when is not None:
            self.fail(f"{where} has both 'required' and 'required_when'; keep one")
        if built.codelist_group and not built.options():
            self.fail(
                f"{where}: code list '{built.codelist}' has no group '{built.codelist_group}'"
            )

    def codelist(self, data: dict[str, Any], field_type: FieldType, where: str) -> str:
        name = self.text(data, "codelist", where, default="")
        if (field_type in _WITH_CODELIST) != bool(name):
            self.fail(f"{where}: only choice and multichoice questions have a 'codelist', "
                      "and they must have one")
        if "codelist_group" in data and not name:
            self.fail(f"{where}: 'codelist_group' needs a 'codelist'")
        if name:
            try:
                load_codelist(name)
            except CodeListError as err:
                self.fail(f"{where} uses code list '{name}', which cannot be loaded: {err.problem}")
        return name

    def bound(self, data: dict[str, Any], key: str, field_type: FieldType, where: str) -> Decimal | None:
        if key not in data:
            return None
        value = data[key]
        if field_type not in _WITH_RANGE:
            self.fail(f"{where}: '{key}' only applies to integer, decimal and date of birth questions")
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"{where}: '{key}' must be a number")
        if field_type in _WHOLE_RANGE and not isinstance(value, int):
            self.fail(f"{where}: '{key}' must be a whole number")
        return Decimal(str(value))

    def max_length(self, data: dict[str, Any], field_type: FieldType, where: str) -> int | None:
        value = data.get("max_length", DEFAULT_MAX_LENGTH.get(field_type))
        if "max_length" in data and field_type not in _WITH_MAX_LENGTH:
            self.fail(f"{where}: 'max_length' only applies to text and multiline questions")
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
            self.fail(f"{where}: 'max_length' must be a whole number of 1 or more")
        return value

    def maps_to(self, value: Any, where: str) -> str:
        if value == "":
            return ""
        record_name, _, field_name = str(value).partition(".")
        record_type = records.RECORD_TYPE_BY_NAME.get(record_name)
        if record_type is None or field_name not in records.record_fields(record_type):
            self.fail(f"{where}: 'maps_to' names '{value}', which is not a record field")
        return str(value)

    def condition(self, data: Any, where: str, key: str) -> Condition | None:
        if data is None:
            return None
        where = f"{where} {key}"
        if not isinstance(data, dict):
            self.fail(f"{where} must be a JSON object")
        if set(data) in ({"all"}, {"any"}):
            kind = next(iter(data))
            parts = data[kind]
            if not isinstance(parts, list) or not parts:
                self.fail(f"{where}: '{kind}' must be a non-empty list of conditions")
            built = tuple(self.condition(p, where, kind) for p in parts)
            return Condition(kind=kind, parts=tuple(p for p in built if p is not None))
        if set(data) == {"field", "equals"}:
            return self.comparison(data["field"], "equals", (data["equals"],), where)
        if set(data) == {"field", "in"}:
            if not isinstance(data["in"], list) or not data["in"]:
                self.fail(f"{where}: 'in' must be a non-empty list")
            return self.comparison(data["field"], "in", tuple(data["in"]), where)
        self.fail(f"{where} must be {{field, equals}}, {{field, in}}, {{all}} or {{any}}")

    def comparison(self, field_id: Any, kind: str, values: tuple[Any, ...], where: str) -> Condition:
        # Only earlier questions: the form reads top to bottom, and this rules out loops.
        target = self.fields_so_far.get(field_id) if isinstance(field_id, str) else None
        if target is None:
            self.fail(f"{where} refers to '{field_id}', which is not an earlier question on this form")
        for value in values:
            if not isinstance(value, (str, int, float, bool)):
                self.fail(f"{where}: compare with text, numbers or true/false only")
            if target.type == FieldType.BOOLEAN and not isinstance(value, bool):
                self.fail(f"{where}: '{field_id}' is a yes/no question; compare with true or false")
            if target.codelist and value not in {c.code for c in target.options()}:
                self.fail(f"{where}: '{value}' is not an option of '{field_id}'")
        return Condition(kind=kind, field=field_id, values=values)


def parse_form(text: str, source: str) -> FormDefinition:
    """A form from the JSON ``text`` of the file named ``source``, checked for shape."""
    return _FormReader(source).form(FormDefinitionError.read_json(text, source))


def _forms_folder() -> Traversable:
    """Where the form files are: ``resources/forms`` (tests point it elsewhere)."""
    return resources.files(_PACKAGE).joinpath(_FOLDER)


def _form_files() -> dict[str, dict[int, Traversable]]:
    """Every form file, by form id and version, from its file name."""
    found: dict[str, dict[int, Traversable]] = {}
    for entry in _forms_folder().iterdir():
        if not entry.name.endswith(".json"):
            continue
        named = _FILE_NAME.fullmatch(entry.name)
        if named is None:
            raise FormDefinitionError(entry.name, "form files must be named <id>.v<version>.json")
        found.setdefault(named.group(1), {})[int(named.group(2))] = entry
    return found


@functools.cache
def _read_form(form_id: str, version: int) -> FormDefinition:
    entry = _form_files()[form_id][version]
    form = parse_form(entry.read_text(encoding="utf-8"), entry.name)
    if (form.id, form.version) != (form_id, version):
        raise FormDefinitionError(entry.name, "its id and version do not match its file name")
    return form


def load_form(form_id: str, version: int | None = None) -> FormDefinition:
    """The form ``form_id`` at ``version``, or its latest version when none is given."""
    versions = _form_files().get(form_id, {})
    chosen = max(versions, default=None) if version is None else version
    if chosen not in versions:
        raise FormNotFound(form_id, version)
    assert chosen is not None  # narrowed for mypy: None is never a key of versions
    return _read_form(form_id, chosen)


def list_forms() -> tuple[FormDefinition, ...]:
    """The latest version of every form the app ships, sorted by id."""
    return tuple(load_form(form_id) for form_id in sorted(_form_files()))


# --- Answering a form -----------------------------------------------------------------------

@dataclass(frozen=True)
class FieldError:
    """Why one answer was not accepted, to show beside its question and in a summary."""

    field: str
    label: str
    message: str


@dataclass(frozen=True)
class ValidationResult:
    """The answers to keep (checked and tidied) and what is wrong with the rest."""

    answers: Mapping[str, Any]
    errors: tuple[FieldError, ...]

    @property
    def ok(self) -> bool:
        """True when every answer was accepted and nothing required is missing."""
        return not self.errors

    def error_for(self, field_id: str) -> str | None:
        """The message for one question, or None when its answer is fine."""
        return next((e.message for e in self.errors if e.field == field_id), None)


def is_shown(field: FormField, answers: Mapping[str, Any]) -> bool:
    """Whether ``field`` is asked, given the answers to the questions before it."""
    return field.shown_when is None or field.shown_when.holds(answers)


def _whole(bound: Decimal | None) -> int | None:
    return None if bound is None else int(bound)


_Check = Callable[[FormField, Any, date], Any]
_CHECKS: dict[FieldType, _Check] = {
    FieldType.TEXT: lambda f, v, _: validators.text(v, f.id, f.max_length),
    FieldType.MULTILINE: lambda f, v, _: validators.text(v, f.id, f.max_length),
    FieldType.SIGNATURE: lambda f, v, _: validators.text(v, f.id),
    FieldType.DATE: lambda f, v, _: validators.date_value(v, f.id),
    FieldType.INTEGER: lambda f, v, _: validators.integer_in_range(
        v, f.id, _whole(f.minimum), _whole(f.maximum)
    ),
    FieldType.DECIMAL: lambda f, v, _: validators.decimal_in_range(v, f.id, f.minimum, f.maximum),
    FieldType.CHOICE: lambda f, v, _: validators.one_of(v, f.id, {c.code for c in f.options()}),
    FieldType.MULTICHOICE: lambda f, v, _: validators.several_of(
        v, f.id, {c.code for c in f.options()}
    ),
    FieldType.BOOLEAN: lambda f, v, _: validators.yes_or_no(v, f.id),
    FieldType.NI_NUMBER: lambda f, v, _: validators.ni_number(v, f.id),
    FieldType.NHS_NUMBER: lambda f, v, _: validators.nhs_number(v, f.id),
    FieldType.POSTCODE: lambda f, v, _: validators.postcode(v, f.id),
    FieldType.PHONE: lambda f, v, _: validators.phone_number(v, f.id),
    FieldType.EMAIL: lambda f, v, _: validators.email(v, f.id),
    FieldType.DATE_OF_BIRTH: lambda f, v, today: validators.date_of_birth(
        v,
        f.id,
        today,
        min_age=16 if f.minimum is None else int(f.minimum),
        max_age=100 if f.maximum is None else int(f.maximum),
    ),
}


def validate_answers(
    form: FormDefinition, answers: Mapping[str, Any], today: date | None = None
) -> ValidationResult:
    """Check every answer against its question, top to bottom.

    Answers to questions that are not shown, and to questions not on the form, are
    dropped, so nothing is stored that the person was never asked. Blank answers are
    dropped too, with an error when the question is required (or required_when holds).
    Kept answers are tidied: NI numbers upper case, dates as ``date``, numbers as
    ``int`` or ``Decimal``, several choices as a tuple.
    """
    today = today or date.today()
    kept: dict[str, Any] = {}
    # What later conditions see: the tidied answer where it passed, else what was typed.
    seen: dict[str, Any] = {}
    errors: list[FieldError] = []
    for question in form.fields:
        if not is_shown(question, seen):
            continue
        value = answers.get(question.id)
        if validators.is_blank(value):
            needed = question.required_when is not None and question.required_when.holds(seen)
            if question.required or needed:
                errors.append(FieldError(question.id, question.label, "This question needs an answer."))
            continue
        try:
            kept[question.id] = seen[question.id] = _CHECKS[question.type](question, value, today)
        except validators.ValidationError as err:
            seen[question.id] = value
            errors.append(FieldError(question.id, question.label, err.message))
    return ValidationResult(answers=MappingProxyType(kept), errors=tuple(errors))
