"""Programme packs: each programme as data in ``resources/programmes/<id>.json`` (DESIGN §2).

A pack says who the controllers are, how long a participant may stay (per strand where
there are strands), whether the programme is ESF-funded, which forms it uses, which
recipients it shares with (sharing profile ids), its retention rules, and which privacy
notice (and version) a participant is shown. Adding a programme needs no code: a new JSON
file is picked up. Every pack is checked when it is loaded, against the sharing profiles,
the privacy notices and (when there are any) the form definitions, and a pack that does not
fit raises :class:`ProgrammePackError` naming the file and the problem.

Privacy notice texts are data too (``resources/notices/<id>.json``), in plain-English
sections; :func:`load_notice` reads one.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import date
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from keyworker_app.errors import DataFileError
from keyworker_app.records import RECORD_TYPE_BY_NAME
from keyworker_app.retention import (
    DEFAULT_LAPTOP_PURGE_AFTER_DAYS,
    EVERY_OTHER_RECORD_TYPE,
    RetentionBasis,
    RetentionRule,
    RetentionSchedule,
)
from keyworker_app.sharing import SharingProfile, load_sharing_profiles

_PACKAGE = "resources"
_ID = re.compile(r"[a-z][a-z0-9_]*")

_PACK_KEYS = frozenset(
    {
        "id", "name", "short_name", "description", "controllers", "delivery_partners",
        "worker_title", "max_duration_months", "strands", "esf_funded", "forms",
        "recipients", "action_plan_kinds", "retention", "privacy_notice",
        "records_household_members", "collects_gp_details", "ends_on", "notes",
    }
)
_REQUIRED_PACK_KEYS = frozenset(
    {
        "id", "name", "controllers", "description", "max_duration_months", "esf_funded",
        "forms", "recipients", "retention", "privacy_notice", "records_household_members",
        "collects_gp_details",
    }
)
_RULE_KEYS = frozenset(
    {
        "record_kind", "basis", "description", "record_types", "until", "years", "months",
        "months_if_employed", "configurable", "review_before_destroying", "source",
    }
)
_NOTICE_KEYS = frozenset({"id", "programme", "title", "version", "published", "source", "sections"})


class ProgrammePackError(DataFileError):
    """A programme pack (or the notice it points to) that cannot be used; ``source`` names the file."""

    kind = "Programme pack"


class ProgrammeNotFound(ProgrammePackError):
    """No programme pack has that id."""


@dataclass(frozen=True)
class Organisation:
    """An organisation named in a notice, and its part (``controller``, ``commissioner``...)."""

    name: str
    role: str


@dataclass(frozen=True)
class Strand:
    """A strand of a programme with its own maximum time on programme (e.g. IPS, 13 months)."""

    id: str
    name: str
    max_duration_months: int


@dataclass(frozen=True)
class NoticeRef:
    """Which privacy notice, and which version of it, a participant is shown."""

    id: str
    version: str


@dataclass(frozen=True)
class Programme:
    """A programme pack. ``max_duration_months`` is ``None`` when the notice sets no limit."""

    id: str
    name: str
    short_name: str
    description: str
    controllers: tuple[Organisation, ...]
    delivery_partners: tuple[Organisation, ...]
    worker_title: str
    max_duration_months: int | None
    strands: tuple[Strand, ...]
    esf_funded: bool
    forms: tuple[str, ...]
    recipients: tuple[str, ...]
    action_plan_kinds: tuple[str, ...]
    retention: RetentionSchedule
    privacy_notice: NoticeRef
    records_household_members: bool
    collects_gp_details: bool
    ends_on: date | None = None
    notes: str = ""

    def strand(self, strand_id: str) -> Strand:
        """The strand ``strand_id``; ``KeyError`` when the programme has no such strand."""
        for strand in self.strands:
            if strand.id == strand_id:
                return strand
        raise KeyError(strand_id)

    def max_months(self, strand_id: str = "") -> int | None:
        """The longest time on programme, in months, for ``strand_id`` (or the programme)."""
        return self.strand(strand_id).max_duration_months if strand_id else self.max_duration_months

    def uses_form(self, form_id: str) -> bool:
        """Whether the programme uses form ``form_id``."""
        return form_id in self.forms


@dataclass(frozen=True)
class NoticeSection:
    """One section of a privacy notice: a heading and its paragraphs, in plain English."""

    heading: str
    paragraphs: tuple[str, ...]


@dataclass(frozen=True)
class PrivacyNotice:
    """A programme's privacy notice as shown to a participant."""

    id: str
    programme: str
    title: str
    version: str
    sections: tuple[NoticeSection, ...]
    published: str = ""
    source: str = ""


# --- Small checked readers ----------------------------------------------------------------


class _Reader:
    """Reads typed values out of one file's JSON, raising with the file's name."""

    def __init__(self, source: str, error: type[ProgrammePackError] = ProgrammePackError) -> None:
        self.source = source
        self.error = error

    def fail(self, problem: str) -> ProgrammePackError:
        return self.error(self.source, problem)

    def text(self, data: Mapping[str, Any], key: str, *, required: bool = True, where: str = "") -> str:
        value = data.get(key, "")
        if not isinstance(value, str) or (required and not value.strip()):
            raise self.fail(f"{where}'{key}' must be non-empty text")
        return value

    def ident(self, data: Mapping[str, Any], key: str, where: str = "") -> str:
        value = self.text(data, key, where=where)
        if not _ID.fullmatch(value):
            raise self.fail(f"{where}'{key}' uses only a-z, 0-9 and _")
        return value

    def flag(self, data: Mapping[str, Any], key: str, default: bool | None = None, where: str = "") -> bool:
        value = data.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(f"{where}'{key}' must be true or false")
        return value

    def count(self, data: Mapping[str, Any], key: str, *, minimum: int, where: str = "") -> int:
        value = data.get(key, 0)
        if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
            raise self.fail(f"{where}'{key}' must be a whole number of {minimum} or more, not {value!r}")
        return value

    def day(self, data: Mapping[str, Any], key: str, where: str = "") -> date | None:
        value = data.get(key)
        if value is None:
            return None
        problem = f"{where}'{key}' must be a date like \"2034-01-01\", not {value!r}"
        if not isinstance(value, str):
            raise self.fail(problem)
        try:
            return date.fromisoformat(value)
        except ValueError:
            raise self.fail(problem) from None

    def ids(self, data: Mapping[str, Any], key: str, *, where: str = "") -> tuple[str, ...]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, str) and _ID.fullmatch(v) for v in value):
            raise self.fail(f"{where}'{key}' must be a list of ids (a-z, 0-9 and _)")
        if len(set(value)) != len(value):
            raise self.fail(f"{where}'{key}' names the same id twice")
        return tuple(value)

    def objects(self, data: Mapping[str, Any], key: str) -> list[dict[str, Any]]:
        value = data.get(key, [])
        if not isinstance(value, list) or not all(isinstance(v, dict) for v in value):
            raise self.fail(f"'{key}' must be a list of objects")
        return value


# --- Parsing a pack -------------------------------------------------------------------------


def _organisations(read: _Reader, data: Mapping[str, Any], key: str) -> tuple[Organisation, ...]:
    return tuple(
        Organisation(name=read.text(o, "name", where=f"{key}: "), role=read.text(o, "role", where=f"{key}: "))
        for o in read.objects(data, key)
    )


def _strands(read: _Reader, data: Mapping[str, Any]) -> tuple[Strand, ...]:
    strands = tuple(
        Strand(
            id=read.ident(s, "id", "strands: "),
            name=read.text(s, "name", where="strands: "),
            max_duration_months=read.count(s, "max_duration_months", minimum=1, where="strands: "),
        )
        for s in read.objects(data, "strands")
    )
    if len({s.id for s in strands}) != len(strands):
        raise read.fail("'strands' has two strands with the same id")
    return strands


def _max_duration(read: _Reader, data: Mapping[str, Any]) -> int | None:
    if data.get("max_duration_months") is None:
        return None
    return read.count(data, "max_duration_months", minimum=1)


def _rule(read: _Reader, data: dict[str, Any]) -> RetentionRule:
    kind = read.ident(data, "record_kind", "retention rule: ")
    where = f"retention rule '{kind}': "
    unknown = sorted(set(data) - _RULE_KEYS)
    if unknown:
        raise read.fail(f"{where}unknown keys {unknown}")
    try:
        basis = RetentionBasis(str(data.get("basis")))
    except ValueError:
        choices = ", ".join(b.value for b in RetentionBasis)
        raise read.fail(f"{where}'basis' must be one of {choices}") from None
    record_types = data.get("record_types", [])
    if not isinstance(record_types, list) or not all(
        t == EVERY_OTHER_RECORD_TYPE or t in RECORD_TYPE_BY_NAME for t in record_types
    ):
        raise read.fail(f"{where}'record_types' must list record types from records.py (or \"*\")")
    months_if_employed = data.get("months_if_employed")
    rule = RetentionRule(
        record_kind=kind,
        basis=basis,
        description=read.text(data, "description", where=where),
        record_types=tuple(record_types),
        until=read.day(data, "until", where),
        years=read.count(data, "years", minimum=0, where=where),
        months=read.count(data, "months", minimum=0, where=where),
        months_if_employed=(
            None if months_if_employed is None else read.count(data, "months_if_employed", minimum=1, where=where)
        ),
        configurable=read.flag(data, "configurable", False, where),
        review_before_destroying=read.flag(data, "review_before_destroying", False, where),
        source=read.text(data, "source", required=False, where=where),
    )
    if (basis is RetentionBasis.FIXED_DATE) != (rule.until is not None):
        raise read.fail(f"{where}'until' is needed with basis fixed_date, and only then")
    if basis is not RetentionBasis.FIXED_DATE and rule.years == rule.months == 0:
        raise read.fail(f"{where}a period ('years' or 'months') is needed")
    return rule


def _retention(read: _Reader, data: Mapping[str, Any]) -> RetentionSchedule:
    block = data.get("retention")
    if not isinstance(block, dict):
        raise read.fail("'retention' must be an object")
    rules = tuple(_rule(read, r) for r in read.objects(block, "rules"))
    if not rules:
        raise read.fail("'retention' must have at least one rule")
    kinds = [r.record_kind for r in rules]
    if len(set(kinds)) != len(kinds):
        raise read.fail("'retention' has two rules for the same record kind")
    defaults = [r for r in rules if EVERY_OTHER_RECORD_TYPE in r.record_types]
    if len(defaults) != 1:
        raise read.fail("'retention' needs exactly one rule with record_types [\"*\"] (the default)")
    named = [t for r in rules for t in r.record_types if t != EVERY_OTHER_RECORD_TYPE]
    if len(set(named)) != len(named):
        raise read.fail("'retention' names one record type in two rules")
    days = block.get("laptop_purge_after_days", DEFAULT_LAPTOP_PURGE_AFTER_DAYS)
    return RetentionSchedule(
        rules=rules,
        laptop_purge_after_days=read.count(
            {"laptop_purge_after_days": days}, "laptop_purge_after_days", minimum=0, where="retention: "
        ),
        schedule_name=read.text(block, "schedule_name", required=False),
    )


def parse_programme(text: str, source: str) -> Programme:
    """A programme pack from the JSON ``text`` of the file named ``source``, checked for shape.

    Checks against other files (sharing profiles, notices, forms) are made by
    :func:`read_programmes`.
    """
    read = _Reader(source)
    data = read.error.read_object(text, source)
    missing = sorted(_REQUIRED_PACK_KEYS - set(data))
    if missing:
        raise read.fail(f"missing keys {missing}")
    unknown = sorted(set(data) - _PACK_KEYS)
    if unknown:
        raise read.fail(f"unknown keys {unknown}")
    notice = data["privacy_notice"]
    if not isinstance(notice, dict):
        raise read.fail("'privacy_notice' must be an object with 'id' and 'version'")
    controllers = _organisations(read, data, "controllers")
    if not controllers:
        raise read.fail("'controllers' must name at least one organisation")
    programme = Programme(
        id=read.ident(data, "id"),
        name=read.text(data, "name"),
        short_name=read.text(data, "short_name", required=False) or read.text(data, "name"),
        description=read.text(data, "description"),
        controllers=controllers,
        delivery_partners=_organisations(read, data, "delivery_partners"),
        worker_title=read.text(data, "worker_title", required=False) or "Keyworker",
        max_duration_months=_max_duration(read, data),
        strands=_strands(read, data),
        esf_funded=read.flag(data, "esf_funded"),
        forms=read.ids(data, "forms"),
        recipients=read.ids(data, "recipients"),
        action_plan_kinds=read.ids(data, "action_plan_kinds"),
        retention=_retention(read, data),
        privacy_notice=NoticeRef(
            id=read.ident(notice, "id", "privacy_notice: "),
            version=read.text(notice, "version", where="privacy_notice: "),
        ),
        records_household_members=read.flag(data, "records_household_members"),
        collects_gp_details=read.flag(data, "collects_gp_details"),
        ends_on=read.day(data, "ends_on"),
        notes=read.text(data, "notes", required=False),
    )
    longest = programme.max_duration_months
    for strand in programme.strands:
        if longest is not None and strand.max_duration_months > longest:
            raise read.fail(f"strand '{strand.id}' lasts longer than the programme's 'max_duration_months'")
    if not programme.forms:
        raise read.fail("'forms' must name at least one form")
    if "esf_participant" in programme.forms and not programme.esf_funded:
        raise read.fail("it uses the ESF participant form but is not ESF-funded")
    return programme


# --- Checks across files ----------------------------------------------------------------------


def _check_recipients(
    programme: Programme, source: str, profiles: Mapping[str, SharingProfile]
) -> None:
    for profile_id in programme.recipients:
        profile = profiles.get(profile_id)
        if profile is None:
            raise ProgrammePackError(source, f"'recipients' names an unknown sharing profile '{profile_id}'")
        if programme.id not in profile.programmes:
            raise ProgrammePackError(
                source,
                f"'recipients' names '{profile_id}', but that sharing profile does not list "
                f"'{programme.id}' in its 'programmes'",
            )
        strand_ids = {s.id for s in programme.strands}
        for strand in profile.strands:
            if strand not in strand_ids:
                raise ProgrammePackError(
                    source, f"sharing profile '{profile_id}' is limited to strand '{strand}', which this programme does not have"
                )
    for profile in profiles.values():
        if programme.id in profile.programmes and profile.id not in programme.recipients:
            raise ProgrammePackError(
                source,
                f"sharing profile '{profile.id}' lists this programme, but 'recipients' does not name it",
            )


def _check_forms(programme: Programme, source: str, form_ids: frozenset[str] | None) -> None:
    if form_ids is None:
        return
    for form_id in programme.forms:
        if form_id not in form_ids:
            raise ProgrammePackError(source, f"'forms' names an unknown form '{form_id}'")


def _check_notice(programme: Programme, source: str, notices: Traversable | Path) -> None:
    ref = programme.privacy_notice
    entry = notices.joinpath(f"{ref.id}.json")
    if not entry.is_file():
        raise ProgrammePackError(source, f"its privacy notice '{ref.id}' has no file in resources/notices")
    notice = parse_notice(entry.read_text(encoding="utf-8"), entry.name)
    if notice.version != ref.version:
        raise ProgrammePackError(
            source, f"it shows notice version '{ref.version}', but notice '{ref.id}' is version '{notice.version}'"
        )
    if notice.programme != programme.id:
        raise ProgrammePackError(source, f"notice '{ref.id}' is for programme '{notice.programme}'")


def _json_files(folder: Traversable | Path) -> list[Traversable | Path]:
    if not folder.is_dir():
        return []
    return sorted((e for e in folder.iterdir() if e.name.endswith(".json")), key=lambda e: e.name)


def known_form_ids(source: Traversable | Path | None = None) -> frozenset[str] | None:
    """The ids of the form definitions in ``resources/forms``, or ``None`` when there are none.

    A form's id is its ``id`` key, or else its file name; a sub-folder (one file per
    version) counts by its name.
    """
    folder = resources.files(_PACKAGE).joinpath("forms") if source is None else source
    if not folder.is_dir():
        return None
    ids: set[str] = set()
    for entry in folder.iterdir():
        if entry.is_dir() and _ID.fullmatch(entry.name):
            ids.add(entry.name)
        elif entry.name.endswith(".json"):
            ids.add(entry.name.removesuffix(".json").split(".")[0])
            try:
                data = json.loads(entry.read_text(encoding="utf-8"))
            except json.JSONDecodeError:
                continue  # the forms loader reports a broken form; here only ids matter
            if isinstance(data, dict) and isinstance(data.get("id"), str):
                ids.add(data["id"])
    return frozenset(ids) or None


def read_programmes(
    source: Traversable | Path | None = None,
    *,
    profiles: Mapping[str, SharingProfile] | None = None,
    notices: Traversable | Path | None = None,
    form_ids: frozenset[str] | None = None,
    forms: Traversable | Path | None = None,
) -> Mapping[str, Programme]:
    """Every pack in ``source`` (default ``resources/programmes``), checked across files.

    ``profiles`` defaults to the app's sharing profiles, ``notices`` to
    ``resources/notices``, and the form ids to those in ``forms`` (default
    ``resources/forms``; no check while it holds no forms). Raises
    :class:`ProgrammePackError`.
    """
    root = resources.files(_PACKAGE)
    folder = root.joinpath("programmes") if source is None else source
    notice_folder = root.joinpath("notices") if notices is None else notices
    available = load_sharing_profiles() if profiles is None else profiles
    known_forms = form_ids if form_ids is not None else known_form_ids(forms)
    programmes: dict[str, Programme] = {}
    for entry in _json_files(folder):
        programme = parse_programme(entry.read_text(encoding="utf-8"), entry.name)
        if f"{programme.id}.json" != entry.name:
            raise ProgrammePackError(entry.name, f"its id '{programme.id}' does not match the file name")
        _check_recipients(programme, entry.name, available)
        _check_forms(programme, entry.name, known_forms)
        _check_notice(programme, entry.name, notice_folder)
        programmes[programme.id] = programme
    for profile in available.values():
        for programme_id in profile.programmes:
            if programme_id not in programmes:
                raise ProgrammePackError(
                    f"{profile.id}.json", f"the sharing profile names a programme '{programme_id}' that has no pack"
                )
    return MappingProxyType(programmes)


@functools.cache
def _programmes() -> Mapping[str, Programme]:
    return read_programmes()


def list_programmes() -> list[Programme]:
    """Every programme the app ships, sorted by name (read once, then cached)."""
    return sorted(_programmes().values(), key=lambda p: p.name)


def load_programme(programme_id: str) -> Programme:
    """The programme pack ``programme_id``; :class:`ProgrammeNotFound` when there is none."""
    programme = _programmes().get(programme_id)
    if programme is None:
        raise ProgrammeNotFound(f"{programme_id}.json", "there is no programme with this id")
    return programme


# --- Privacy notices ------------------------------------------------------------------------


def parse_notice(text: str, source: str) -> PrivacyNotice:
    """A privacy notice from the JSON ``text`` of the file named ``source``, checked for shape."""
    read = _Reader(source)
    data = read.error.read_object(text, source)
    unknown = sorted(set(data) - _NOTICE_KEYS)
    if unknown:
        raise read.fail(f"unknown keys {unknown}")
    sections = []
    for section in read.objects(data, "sections"):
        paragraphs = section.get("paragraphs")
        if not isinstance(paragraphs, list) or not paragraphs or not all(
            isinstance(p, str) and p.strip() for p in paragraphs
        ):
            raise read.fail("each section needs 'paragraphs': a list of non-empty text")
        sections.append(NoticeSection(heading=read.text(section, "heading", where="section: "), paragraphs=tuple(paragraphs)))
    if not sections:
        raise read.fail("a notice needs at least one section")
    return PrivacyNotice(
        id=read.ident(data, "id"),
        programme=read.ident(data, "programme"),
        title=read.text(data, "title"),
        version=read.text(data, "version"),
        sections=tuple(sections),
        published=read.text(data, "published", required=False),
        source=read.text(data, "source", required=False),
    )


@functools.cache
def load_notice(notice_id: str) -> PrivacyNotice:
    """The privacy notice ``notice_id`` from ``resources/notices`` (read once, then cached)."""
    if not _ID.fullmatch(notice_id):
        # Only plain ids: a name is never allowed to reach outside the notices folder.
        raise ProgrammeNotFound(f"{notice_id}.json", "notice ids use only a-z, 0-9 and _")
    entry = resources.files(_PACKAGE).joinpath("notices", f"{notice_id}.json")
    if not entry.is_file():
        raise ProgrammeNotFound(f"{notice_id}.json", "there is no privacy notice with this id")
    return parse_notice(entry.read_text(encoding="utf-8"), entry.name)

