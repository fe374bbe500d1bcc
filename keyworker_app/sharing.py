"""Sharing profiles and the minimum-necessary projection (DESIGN §5).

A sharing profile is data in ``resources/sharing/<id>.json``: for one recipient and purpose,
the record types and exact fields it may receive, the lawful basis (Article 6, and Article 9
where special category data goes), whether the participant's consent is needed (the consent
record's ``sharing_profile`` is the profile's id), whether an objection stops it, and which
programmes (and strands) it applies to. A profile may vary its basis and fields for one
programme (``programme_overrides``): the employer may see a description of disability on the
Work and Health Programme (seed 003) but never on SES (seed 001).

:func:`project` is what the sync engine calls at push time, once per record and profile: it
returns either the fields to send (:class:`Share`) or why nothing goes (:class:`HeldBack`).
The controller calls the same function on receipt, so both ends enforce the same rules.
"""

from __future__ import annotations

import base64
import dataclasses
import enum
import functools
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import date, datetime
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from types import MappingProxyType
from typing import Any

from keyworker_app.errors import DataFileError, KeyworkerError
from keyworker_app.records import (
    RECORD_TYPE_BY_NAME,
    CaseNote,
    Confidentiality,
    Consent,
    ConsentStatus,
    Participant,
    Record,
    record_fields,
)

_PACKAGE = "resources"
_FOLDER = "sharing"

#: Identifiers every share carries so the recipient can apply it (never personal data).
IDENTIFIER_FIELDS: tuple[str, ...] = ("id", "version", "record_type", "participant_id")

_ARTICLE_6 = re.compile(r"6\(1\)\([a-f]\)")
_ARTICLE_9 = re.compile(r"9\(2\)\([a-j]\)")
_ID = re.compile(r"[a-z][a-z0-9_]*")

_PROFILE_KEYS = frozenset(
    {
        "id", "recipient", "recipient_type", "purpose", "article_6", "article_9",
        "article_9_also", "consent_required", "consent_question", "stops_on_objection",
        "objection_purpose", "programmes", "strands", "one_off", "requires_reason",
        "assessment_forms", "records", "programme_overrides", "notes",
    }
)
_REQUIRED_KEYS = frozenset({"id", "recipient", "purpose", "article_6", "programmes", "records"})
_OVERRIDE_KEYS = frozenset({"article_6", "article_9", "article_9_also", "records", "notes"})


class SharingProfileError(DataFileError):
    """A sharing profile file that cannot be used; ``source`` names the file."""

    kind = "Sharing profile"


class OneOffShareError(KeyworkerError):
    """A one-off share the keyworker asked for that the profile does not allow."""

    exit_code = 2
    next_step = "Choose only the listed fields and say why the share is needed."


class HoldReason(enum.StrEnum):
    """Why a record was not sent to a recipient."""

    NOT_IN_PROFILE = "not_in_profile"
    PROGRAMME_NOT_COVERED = "programme_not_covered"
    STRAND_NOT_COVERED = "strand_not_covered"
    CONSENT_MISSING = "consent_missing"
    CONSENT_REFUSED = "consent_refused"
    CONSENT_WITHDRAWN = "consent_withdrawn"
    RESTRICTED = "restricted"
    OBJECTED = "objected"
    HEALTH_TEAM_CONFIDENTIAL = "health_team_confidential"
    ONE_OFF_ONLY = "one_off_only"


@dataclass(frozen=True)
class Share:
    """Send these fields: the profile's fields for the record type, plus identifiers.

    Values are JSON-ready: dates and moments as ISO text, enums as their values, tuples
    as lists, bytes as base64 text.
    """

    fields: Mapping[str, Any] = field(hash=False)


@dataclass(frozen=True)
class HeldBack:
    """Send nothing, for this reason."""

    reason: HoldReason


Projection = Share | HeldBack


@dataclass(frozen=True)
class SharingProfile:
    """One recipient and purpose, with the lawful basis and the exact fields it may receive.

    ``records`` maps a record type (``records.py`` ``record_type``) to the field names of
    that record it may receive. ``article_9`` is ``None`` when no special category data goes
    (the loader refuses any special category field then). ``strands`` empty means every
    strand. ``assessment_forms`` ``None`` means assessments of any form may go (when the
    profile lists ``assessment`` at all).
    """

    id: str
    recipient: str
    recipient_type: str
    purpose: str
    article_6: str
    article_9: str | None
    programmes: tuple[str, ...]
    records: Mapping[str, tuple[str, ...]] = field(hash=False)
    article_9_also: tuple[str, ...] = ()
    consent_required: bool = False
    consent_question: str = ""
    stops_on_objection: bool = False
    objection_purpose: str = ""
    strands: tuple[str, ...] = ()
    one_off: bool = False
    requires_reason: bool = False
    assessment_forms: tuple[str, ...] | None = None
    programme_overrides: Mapping[str, ProfileOverride] = field(
        default_factory=lambda: MappingProxyType({}), hash=False
    )
    notes: str = ""

    def for_programme(self, programme: str) -> SharingProfile:
        """This profile as it applies on ``programme``: its override applied, if any.

        The result covers only ``programme``. A programme the profile does not cover gets
        the profile unchanged (and :func:`project` then holds everything back).
        """
        if programme not in self.programmes:
            return self
        if not self.programme_overrides and self.programmes == (programme,):
            return self   # already resolved for this programme (what the copy would equal)
        override = self.programme_overrides.get(programme)
        resolved = dataclasses.replace(
            self, programmes=(programme,), programme_overrides=MappingProxyType({})
        )
        if override is None:
            return resolved
        return dataclasses.replace(
            resolved,
            article_6=override.article_6 or self.article_6,
            article_9=self.article_9 if override.article_9 is _KEEP else override.article_9,
            article_9_also=(
                self.article_9_also if override.article_9_also is None else override.article_9_also
            ),
            records=self.records if override.records is None else override.records,
            notes=override.notes or self.notes,
        )

    def fields_for(self, record_type: str) -> tuple[str, ...]:
        """The fields of ``record_type`` this profile may receive (empty when none)."""
        return self.records.get(record_type, ())

    def covers(self, programme: str, strand: str = "") -> bool:
        """Whether the profile applies to a participant on ``programme`` and ``strand``."""
        return programme in self.programmes and (not self.strands or strand in self.strands)


class _Keep(enum.Enum):
    KEEP = "keep"


_KEEP = _Keep.KEEP


@dataclass(frozen=True)
class ProfileOverride:
    """How a profile differs on one programme (any part left as is keeps the profile's own)."""

    article_6: str = ""
    article_9: str | None | _Keep = _KEEP
    article_9_also: tuple[str, ...] | None = None
    records: Mapping[str, tuple[str, ...]] | None = field(default=None, hash=False)
    notes: str = ""


# --- Loading --------------------------------------------------------------------------------


def _text(data: Mapping[str, Any], key: str, source: str, *, required: bool = False) -> str:
    value = data.get(key, "")
    if value is None and not required:
        return ""
    if not isinstance(value, str) or (required and not value.strip()):
        raise SharingProfileError(source, f"'{key}' must be non-empty text")
    return value


def _flag(data: Mapping[str, Any], key: str, source: str) -> bool:
    value = data.get(key, False)
    if not isinstance(value, bool):
        raise SharingProfileError(source, f"'{key}' must be true or false")
    return value


def _ids(value: Any, key: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list) or not all(isinstance(v, str) and _ID.fullmatch(v) for v in value):
        raise SharingProfileError(source, f"'{key}' must be a list of ids (a-z, 0-9 and _)")
    if len(set(value)) != len(value):
        raise SharingProfileError(source, f"'{key}' names the same id twice")
    return tuple(value)


def _article_9(value: Any, key: str, source: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not _ARTICLE_9.fullmatch(value):
        raise SharingProfileError(source, f"'{key}' must be null or like \"9(2)(g)\", not {value!r}")
    return value


def _article_9_list(value: Any, key: str, source: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise SharingProfileError(source, f"'{key}' must be a list like [\"9(2)(b)\"]")
    return tuple(str(_article_9(v, key, source)) for v in value)


def _article_6(value: Any, key: str, source: str) -> str:
    if not isinstance(value, str) or not _ARTICLE_6.fullmatch(value):
        raise SharingProfileError(source, f"'{key}' must be like \"6(1)(e)\", not {value!r}")
    return value


def _records(value: Any, source: str) -> Mapping[str, tuple[str, ...]]:
    if not isinstance(value, dict) or not value:
        raise SharingProfileError(source, "'records' must map record types to lists of fields")
    out: dict[str, tuple[str, ...]] = {}
    for record_type, names in value.items():
        record_class = RECORD_TYPE_BY_NAME.get(record_type)
        if record_class is None:
            raise SharingProfileError(source, f"'records' names an unknown record type '{record_type}'")
        if not isinstance(names, list) or not names or not all(isinstance(n, str) for n in names):
            raise SharingProfileError(source, f"'records.{record_type}' must be a non-empty list of field names")
        known = set(record_fields(record_class))
        for name in names:
            if name not in known:
                raise SharingProfileError(
                    source, f"'records.{record_type}' names '{name}', which is not a field of {record_class.__name__}"
                )
        if len(set(names)) != len(names):
            raise SharingProfileError(source, f"'records.{record_type}' names a field twice")
        out[record_type] = tuple(names)
    return MappingProxyType(out)


def _check_special_category(profile: SharingProfile, source: str) -> None:
    """Special category fields may only go where the profile names an Article 9 basis."""
    if profile.article_9 is not None:
        return
    for record_type, names in profile.records.items():
        special = RECORD_TYPE_BY_NAME[record_type].special_category
        for name in names:
            if name in special:
                where = "" if len(profile.programmes) != 1 else f" on {profile.programmes[0]}"
                raise SharingProfileError(
                    source,
                    f"'records.{record_type}' names '{name}', which is special category data, "
                    f"but the profile has no Article 9 basis{where}",
                )


def _override(programme: str, value: Any, source: str) -> ProfileOverride:
    where = f"'programme_overrides.{programme}'"
    if not isinstance(value, dict):
        raise SharingProfileError(source, f"{where} must be an object")
    unknown = sorted(set(value) - _OVERRIDE_KEYS)
    if unknown:
        raise SharingProfileError(source, f"{where} has unknown keys {unknown}")
    return ProfileOverride(
        article_6=_article_6(value["article_6"], "article_6", source) if "article_6" in value else "",
        article_9=_article_9(value["article_9"], "article_9", source) if "article_9" in value else _KEEP,
        article_9_also=(
            _article_9_list(value["article_9_also"], "article_9_also", source)
            if "article_9_also" in value
            else None
        ),
        records=_records(value["records"], source) if "records" in value else None,
        notes=_text(value, "notes", source),
    )


def parse_sharing_profile(text: str, source: str) -> SharingProfile:
    """A sharing profile from the JSON ``text`` of the file named ``source``, fully checked."""
    data = SharingProfileError.read_object(text, source)
    missing = sorted(_REQUIRED_KEYS - set(data))
    if missing:
        raise SharingProfileError(source, f"missing keys {missing}")
    unknown = sorted(set(data) - _PROFILE_KEYS)
    if unknown:
        raise SharingProfileError(source, f"unknown keys {unknown}")
    profile_id = _text(data, "id", source, required=True)
    if not _ID.fullmatch(profile_id):
        raise SharingProfileError(source, "'id' uses only a-z, 0-9 and _")
    programmes = _ids(data["programmes"], "programmes", source)
    if not programmes:
        raise SharingProfileError(source, "'programmes' must name at least one programme")
    overrides_data = data.get("programme_overrides") or {}
    if not isinstance(overrides_data, dict):
        raise SharingProfileError(source, "'programme_overrides' must map programme ids to overrides")
    overrides = {p: _override(p, v, source) for p, v in overrides_data.items()}
    for programme in overrides:
        if programme not in programmes:
            raise SharingProfileError(
                source, f"'programme_overrides' names '{programme}', which is not in 'programmes'"
            )
    consent_required = _flag(data, "consent_required", source)
    stops_on_objection = _flag(data, "stops_on_objection", source)
    objection_purpose = _text(data, "objection_purpose", source)
    if stops_on_objection and not objection_purpose:
        raise SharingProfileError(source, "'stops_on_objection' needs an 'objection_purpose'")
    one_off = _flag(data, "one_off", source)
    requires_reason = _flag(data, "requires_reason", source)
    if requires_reason and not one_off:
        raise SharingProfileError(source, "'requires_reason' only applies to a one-off profile")
    if one_off and consent_required:
        # A one-off share is for when consent cannot be the basis (vital interests, or a
        # public-task referral the keyworker decides); mixing them would be ambiguous.
        raise SharingProfileError(source, "a one-off profile cannot also require consent")
    forms = data.get("assessment_forms")
    profile = SharingProfile(
        id=profile_id,
        recipient=_text(data, "recipient", source, required=True),
        recipient_type=_text(data, "recipient_type", source),
        purpose=_text(data, "purpose", source, required=True),
        article_6=_article_6(data["article_6"], "article_6", source),
        article_9=_article_9(data.get("article_9"), "article_9", source),
        article_9_also=_article_9_list(data.get("article_9_also"), "article_9_also", source),
        consent_required=consent_required,
        consent_question=_text(data, "consent_question", source),
        stops_on_objection=stops_on_objection,
        objection_purpose=objection_purpose,
        programmes=programmes,
        strands=_ids(data.get("strands"), "strands", source),
        one_off=one_off,
        requires_reason=requires_reason,
        assessment_forms=None if forms is None else _ids(forms, "assessment_forms", source),
        records=_records(data["records"], source),
        programme_overrides=MappingProxyType(overrides),
        notes=_text(data, "notes", source),
    )
    if consent_required and not profile.consent_question.strip():
        raise SharingProfileError(source, "a profile that needs consent must say what is asked ('consent_question')")
    # Check what each programme actually gets, overrides applied.
    for programme in programmes:
        _check_special_category(profile.for_programme(programme), source)
    return profile


def _profile_files(source: Traversable | Path | None) -> list[Traversable | Path]:
    folder = resources.files(_PACKAGE).joinpath(_FOLDER) if source is None else source
    return sorted(
        (entry for entry in folder.iterdir() if entry.name.endswith(".json")),
        key=lambda entry: entry.name,
    )


def read_sharing_profiles(source: Traversable | Path | None = None) -> Mapping[str, SharingProfile]:
    """Every profile in ``source`` (default: the app's ``resources/sharing``), checked.

    Each file is named after its profile's id. Raises :class:`SharingProfileError`.
    """
    profiles: dict[str, SharingProfile] = {}
    for entry in _profile_files(source):
        profile = parse_sharing_profile(entry.read_text(encoding="utf-8"), entry.name)
        if f"{profile.id}.json" != entry.name:
            raise SharingProfileError(entry.name, f"its id '{profile.id}' does not match the file name")
        profiles[profile.id] = profile
    return MappingProxyType(profiles)


@functools.cache
def load_sharing_profiles() -> Mapping[str, SharingProfile]:
    """The app's sharing profiles by id (read once, then cached)."""
    return read_sharing_profiles()


def applicable_profiles(
    programme: str,
    strand: str = "",
    profiles: Mapping[str, SharingProfile] | None = None,
) -> list[SharingProfile]:
    """The profiles that apply to a participant on ``programme`` and ``strand``, resolved.

    Each is already :meth:`SharingProfile.for_programme`'d, sorted by id.
    """
    available = load_sharing_profiles() if profiles is None else profiles
    return [
        profile.for_programme(programme)
        for _, profile in sorted(available.items())
        if profile.covers(programme, strand)
    ]


# --- Projection -----------------------------------------------------------------------------


#: Values that JSON carries as they are.
_JSON_PLAIN = frozenset({str, int, float, bool, type(None)})


def _json_ready(value: Any) -> Any:
    """A stored value as JSON can carry it (dates as ISO text, enums as values...)."""
    if type(value) in _JSON_PLAIN:   # exact types: a str or int enum goes on to the check below
        return value
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, (datetime, date)):
        return value.isoformat()
    if isinstance(value, bytes):
        return base64.b64encode(value).decode("ascii")
    if isinstance(value, Mapping):
        return {str(k): _json_ready(v) for k, v in value.items()}
    if isinstance(value, (tuple, list, set, frozenset)):
        return [_json_ready(v) for v in value]
    return value


def _participant_id(record: Record) -> str:
    if isinstance(record, Participant):
        return record.id
    value = getattr(record, "participant_id", "")
    return value if isinstance(value, str) else ""


def _consent_moment(consent: Consent) -> tuple[datetime, int]:
    # The latest decision is the one made last; the version breaks ties between saves.
    moments = [m for m in (consent.given_on, consent.withdrawn_on) if m is not None]
    return (max(moments) if moments else consent.updated_at, consent.version)


def latest_consent(
    consents: Iterable[Consent], profile_id: str, participant_id: str, today: date | None = None
) -> Consent | None:
    """The participant's latest consent decision for ``profile_id``, if any.

    A decision dated after ``today`` (a clock set wrong) does not count yet.
    """
    relevant = [
        c
        for c in consents
        if c.sharing_profile == profile_id
        and c.participant_id == participant_id
        and (today is None or c.given_on is None or c.given_on.date() <= today)
    ]
    return max(relevant, key=_consent_moment, default=None)


def _consent_hold(consent: Consent | None) -> HoldReason | None:
    if consent is None:
        return HoldReason.CONSENT_MISSING
    if consent.status is ConsentStatus.WITHDRAWN or consent.withdrawn_on is not None:
        return HoldReason.CONSENT_WITHDRAWN
    if consent.status is ConsentStatus.REFUSED:
        return HoldReason.CONSENT_REFUSED
    return None


def _gatekeeping(record: Record, profile: SharingProfile, participant: Participant) -> HeldBack | None:
    """The checks every share passes, routine or one-off."""
    if _participant_id(record) != participant.id:
        raise ValueError("the record does not belong to this participant")
    # First and unconditionally: the Health Team's confidential record never leaves,
    # whatever a profile file says (seed 003).
    if isinstance(record, CaseNote) and record.confidentiality is Confidentiality.HEALTH_TEAM:
        return HeldBack(HoldReason.HEALTH_TEAM_CONFIDENTIAL)
    if participant.programme not in profile.programmes:
        return HeldBack(HoldReason.PROGRAMME_NOT_COVERED)
    if profile.strands and participant.strand not in profile.strands:
        return HeldBack(HoldReason.STRAND_NOT_COVERED)
    return None


def _in_profile(record: Record, profile: SharingProfile) -> bool:
    if record.record_type not in profile.records:
        return False
    form_id = getattr(record, "form_id", None)
    if record.record_type == "assessment" and profile.assessment_forms is not None:
        return form_id in profile.assessment_forms
    return True


def _share(record: Record, names: Iterable[str], participant: Participant) -> Share:
    fields: dict[str, Any] = {
        "id": record.id,
        "version": record.version,
        "record_type": record.record_type,
        "participant_id": participant.id,
    }
    for name in names:
        if name not in IDENTIFIER_FIELDS:
            fields[name] = _json_ready(getattr(record, name))
    return Share(MappingProxyType(fields))


def project(
    record: Record,
    profile: SharingProfile,
    participant: Participant,
    consents: Iterable[Consent],
    today: date,
) -> Projection:
    """What of ``record`` may go to ``profile``'s recipient today, or why nothing may.

    ``participant`` is the record's participant (for a participant record, itself);
    ``consents`` are that participant's consent records, of which the latest for this
    profile decides. Only the profile's fields for the record type are ever returned, plus
    the identifiers in :data:`IDENTIFIER_FIELDS`. One-off profiles always hold back here:
    they go only through :func:`project_one_off`.
    """
    profile = profile.for_programme(participant.programme)
    held = _gatekeeping(record, profile, participant)
    if held is not None:
        return held
    if profile.one_off:
        return HeldBack(HoldReason.ONE_OFF_ONLY)
    if not _in_profile(record, profile):
        return HeldBack(HoldReason.NOT_IN_PROFILE)
    if participant.restricted:
        return HeldBack(HoldReason.RESTRICTED)
    if profile.stops_on_objection and (
        profile.objection_purpose in participant.objections or profile.id in participant.objections
    ):
        return HeldBack(HoldReason.OBJECTED)
    if profile.consent_required:
        consent_hold = _consent_hold(latest_consent(consents, profile.id, participant.id, today))
        if consent_hold is not None:
            return HeldBack(consent_hold)
    return _share(record, profile.fields_for(record.record_type), participant)


def project_one_off(
    record: Record,
    profile: SharingProfile,
    participant: Participant,
    chosen_fields: Iterable[str],
    reason: str,
) -> Projection:
    """A one-off share of the fields the keyworker chose, for the reason they gave.

    Raises :class:`OneOffShareError` when the profile is not one-off, a reason is needed
    and missing, or a chosen field is not one the profile allows for this record type.
    Restriction does not stop it: a vital-interests share protects someone (UK GDPR
    Art. 18(2)). Health Team notes are still never shared.
    """
    profile = profile.for_programme(participant.programme)
    if not profile.one_off:
        raise OneOffShareError(message=f"'{profile.id}' is not a one-off sharing profile.")
    if profile.requires_reason and not reason.strip():
        raise OneOffShareError(message="A one-off share needs a reason, and none was given.")
    held = _gatekeeping(record, profile, participant)
    if held is not None:
        return held
    if not _in_profile(record, profile):
        return HeldBack(HoldReason.NOT_IN_PROFILE)
    chosen = tuple(dict.fromkeys(chosen_fields))
    allowed = set(profile.fields_for(record.record_type))
    refused = sorted(set(chosen) - allowed - set(IDENTIFIER_FIELDS))
    if refused:
        raise OneOffShareError(
            message=f"These fields may not be shared with '{profile.id}': {', '.join(refused)}."
        )
    return _share(record, chosen, participant)
