"""The records a keyworker keeps about a participant (DESIGN §4).

Every record is a small frozen dataclass with a UUID (`id`) and a `version`. A record
that has never been saved has version 0; each save in the store bumps it by one. The
store maps each record type onto its own table (see ``store/migrations``); fields that
hold several values are tuples or mappings and are stored as JSON.

Dates are ``datetime.date``; moments are timezone-aware UTC ``datetime``.
"""

from __future__ import annotations

import dataclasses
import enum
import uuid
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from typing import Any, ClassVar, Mapping, Self


def new_id() -> str:
    """A fresh random UUID, as text."""
    return str(uuid.uuid4())


def utcnow() -> datetime:
    return datetime.now(timezone.utc).replace(microsecond=0)


class ParticipantStatus(enum.StrEnum):
    REFERRED = "referred"
    ACTIVE = "active"
    ON_HOLD = "on_hold"
    EXITED = "exited"
    CLOSED = "closed"


class ReferralSource(enum.StrEnum):
    NHS_TRUST = "nhs_trust"
    LOCAL_AUTHORITY = "local_authority"
    JOBCENTRE_PLUS = "jobcentre_plus"
    EMPLOYER = "employer"
    SELF = "self"
    HEALTH_PROFESSIONAL = "health_professional"
    OTHER = "other"


class Confidentiality(enum.StrEnum):
    """Who may read a case note.

    ``HEALTH_TEAM`` notes belong to the Health Team's separate confidential record
    (seed 003): a keyworker profile never holds one and no sharing profile sends one.
    """

    STANDARD = "standard"
    SENSITIVE = "sensitive"
    HEALTH_TEAM = "health_team"


class ConsentStatus(enum.StrEnum):
    GIVEN = "given"
    REFUSED = "refused"
    WITHDRAWN = "withdrawn"


class ConsentMethod(enum.StrEnum):
    SIGNED = "signed"
    VERBAL = "verbal"  # the keyworker is recorded as witness
    ONLINE = "online"


class BarrierStatus(enum.StrEnum):
    OPEN = "open"
    IMPROVING = "improving"
    RESOLVED = "resolved"


class OutcomeKind(enum.StrEnum):
    JOB_START = "job_start"
    SUSTAINMENT = "sustainment"
    EXIT = "exit"


class ExitReason(enum.StrEnum):
    COMPLETED = "completed"
    LEFT_EARLY = "left_early"


@dataclass(frozen=True, repr=False)
class Record:
    """Fields every record has. Subclasses set ``record_type`` (also the table name)."""

    record_type: ClassVar[str] = ""
    #: Fields of this record type that hold special category data (UK GDPR Art. 9).
    special_category: ClassVar[frozenset[str]] = frozenset()

    id: str = field(default_factory=new_id)
    version: int = 0
    created_at: datetime = field(default_factory=utcnow)
    updated_at: datetime = field(default_factory=utcnow)

    def __repr__(self) -> str:
        # Never the field values: a repr ends up in tracebacks and logs, which must not
        # hold personal data.
        return f"<{type(self).__name__} {self.id} v{self.version}>"

    def replace(self, **changes: Any) -> Self:
        """A copy with ``changes`` applied (the store bumps the version on save)."""
        return dataclasses.replace(self, **changes)


@dataclass(frozen=True, repr=False)
class Participant(Record):
    """A person supported on a programme, with every field the seed notices list."""

    record_type: ClassVar[str] = "participant"
    special_category: ClassVar[frozenset[str]] = frozenset(
        {
            "gender", "ethnicity", "religion", "disability", "disability_description",
            "health_summary", "nhs_number", "gp_name", "gp_practice", "health_visitor",
            "sexual_orientation",
        }
    )

    participant_ref: str = ""          # the human-facing id, e.g. "WW-004127"
    programme: str = ""                # programme pack id
    strand: str = ""                   # e.g. "ips" or "supported_employment"
    keyworker_id: str = ""
    status: ParticipantStatus = ParticipantStatus.ACTIVE
    given_name: str = ""
    family_name: str = ""
    preferred_name: str = ""
    date_of_birth: date | None = None
    address_line1: str = ""
    address_line2: str = ""
    town: str = ""
    postcode: str = ""
    phone: str = ""
    email: str = ""
    ni_number: str = ""
    nhs_number: str = ""
    gender: str = ""
    ethnicity: str = ""
    language: str = ""
    interpreter_needed: bool = False
    nationality: str = ""
    country_of_birth: str = ""
    religion: str = ""
    sexual_orientation: str = ""
    marital_status: str = ""
    disability: str = ""               # "yes", "no", "prefer_not_to_say" or ""
    disability_description: str = ""
    health_summary: str = ""           # brief, non-clinical: health details related to barriers to work
    employment_status: str = ""        # MHSDS employment status code (resources/codelists)
    weekly_hours_worked: str = ""      # MHSDS weekly hours worked code
    benefit_status: str = ""
    employer_name: str = ""
    job_role: str = ""
    education: str = ""
    gp_name: str = ""
    gp_practice: str = ""
    health_visitor: str = ""
    social_care_status: str = ""
    review_due: date | None = None
    restricted: bool = False           # the participant has restricted processing
    objections: tuple[str, ...] = ()   # purposes objected to, e.g. ("evaluation",)

    @property
    def display_name(self) -> str:
        first = self.preferred_name or self.given_name
        return f"{first} {self.family_name}".strip()


@dataclass(frozen=True, repr=False)
class HouseholdMember(Record):
    """A family member recorded on an Early Help case (seed 002)."""

    record_type: ClassVar[str] = "household_member"
    special_category: ClassVar[frozenset[str]] = frozenset(
        {"gender", "ethnicity", "religion", "nhs_number", "gp_details", "health_visitor"}
    )

    participant_id: str = ""
    given_name: str = ""
    family_name: str = ""
    relationship: str = ""
    date_of_birth: date | None = None
    gender: str = ""
    ethnicity: str = ""
    language: str = ""
    nationality: str = ""
    religion: str = ""
    country_of_birth: str = ""
    nhs_number: str = ""
    gp_details: str = ""
    health_visitor: str = ""
    education: str = ""
    social_care_status: str = ""


@dataclass(frozen=True, repr=False)
class Referral(Record):
    """How and why a participant came to the programme."""

    record_type: ClassVar[str] = "referral"
    special_category: ClassVar[frozenset[str]] = frozenset({"condition_summary"})

    participant_id: str = ""
    source_type: ReferralSource = ReferralSource.SELF
    source_organisation: str = ""
    referrer_name: str = ""
    referrer_contact: str = ""
    received_on: date | None = None
    reason: str = ""
    condition_summary: str = ""        # very brief details of condition or illness
    adjustments_needed: str = ""
    lawful_basis: str = ""             # Article 6 basis of the referral, e.g. "6(1)(a)"
    special_category_basis: str = ""   # Article 9 basis, e.g. "9(2)(a)"
    controller_referral_id: str = ""   # set when pulled from the controller


@dataclass(frozen=True, repr=False)
class Enrolment(Record):
    """A participant's time on a programme, with start and planned end."""

    record_type: ClassVar[str] = "enrolment"

    participant_id: str = ""
    programme: str = ""
    strand: str = ""
    start_date: date | None = None
    planned_end_date: date | None = None
    end_date: date | None = None
    esf_funded: bool = False


@dataclass(frozen=True, repr=False)
class Assessment(Record):
    """A completed form: which form, which version, and the answers given."""

    record_type: ClassVar[str] = "assessment"
    # Answers can hold health and other special category details.
    special_category: ClassVar[frozenset[str]] = frozenset({"answers"})

    participant_id: str = ""
    form_id: str = ""
    form_version: int = 1
    answers: Mapping[str, Any] = field(default_factory=dict)
    completed_on: date | None = None
    assessor: str = ""


@dataclass(frozen=True, repr=False)
class Barrier(Record):
    """A barrier to work, with its severity (1 least to 5 most) and agreed actions."""

    record_type: ClassVar[str] = "barrier"
    special_category: ClassVar[frozenset[str]] = frozenset({"description"})

    participant_id: str = ""
    category: str = ""
    description: str = ""
    severity: int = 3
    actions: tuple[str, ...] = ()
    status: BarrierStatus = BarrierStatus.OPEN
    identified_on: date | None = None


@dataclass(frozen=True, repr=False)
class BarrierReview(Record):
    """A barrier's severity at one progress review: the points of 'distance travelled'."""

    record_type: ClassVar[str] = "barrier_review"

    participant_id: str = ""
    barrier_id: str = ""
    reviewed_on: date | None = None
    severity: int = 3
    note: str = ""


@dataclass(frozen=True, repr=False)
class ActionPlan(Record):
    """A Return to Work or Thrive in Work plan, as a list of steps."""

    record_type: ClassVar[str] = "action_plan"

    participant_id: str = ""
    kind: str = "return_to_work"       # "return_to_work" or "thrive_in_work"
    goal: str = ""
    steps: tuple[Mapping[str, Any], ...] = ()   # {"action", "owner", "due", "done"}
    agreed_on: date | None = None
    review_on: date | None = None


@dataclass(frozen=True, repr=False)
class CaseNote(Record):
    """A contact with a participant and the note of it."""

    record_type: ClassVar[str] = "case_note"

    participant_id: str = ""
    contact_type: str = "face_to_face"  # face_to_face, phone, home_visit, video, email, other
    contact_on: datetime | None = None
    summary: str = ""
    confidentiality: Confidentiality = Confidentiality.STANDARD
    author: str = ""


@dataclass(frozen=True, repr=False)
class Consent(Record):
    """A participant's choice about one sharing profile (recipient and purpose)."""

    record_type: ClassVar[str] = "consent"

    participant_id: str = ""
    sharing_profile: str = ""          # sharing profile id in resources/sharing
    status: ConsentStatus = ConsentStatus.GIVEN
    method: ConsentMethod = ConsentMethod.VERBAL
    notice_version: str = ""
    given_on: datetime | None = None
    withdrawn_on: datetime | None = None
    witness: str = ""                  # keyworker id, for verbal consent
    signature_attachment_id: str = ""


@dataclass(frozen=True, repr=False)
class EsfForm(Record):
    """The ESF participant form, its evidence and the participant's signature."""

    record_type: ClassVar[str] = "esf_form"
    special_category: ClassVar[frozenset[str]] = frozenset({"answers"})

    participant_id: str = ""
    answers: Mapping[str, Any] = field(default_factory=dict)   # ESF participant data fields
    evidence: tuple[Mapping[str, Any], ...] = ()                # {"type", "reference", "seen_on"}
    leaflet_acknowledged: bool = False
    remote_delivery: bool = False
    signature_owed: bool = True
    signed_on: date | None = None
    signature_attachment_id: str = ""
    pdf_attachment_id: str = ""
    pdf_sha256: str = ""


@dataclass(frozen=True, repr=False)
class Outcome(Record):
    """A job start, sustainment point or exit from the programme."""

    record_type: ClassVar[str] = "outcome"

    participant_id: str = ""
    kind: OutcomeKind = OutcomeKind.JOB_START
    outcome_on: date | None = None
    employer: str = ""
    job_title: str = ""
    weekly_hours: float | None = None
    mhsds_employment_status: str = ""
    mhsds_weekly_hours: str = ""
    exit_reason: ExitReason | None = None
    onward_referrals: tuple[str, ...] = ()
    further_support_needed: str = ""
    recommendations: str = ""
    # Sustainment checks: whether they were still in work (None: not asked), and notes.
    in_work: bool | None = None
    notes: str = ""


@dataclass(frozen=True, repr=False)
class Attachment(Record):
    """A file kept inside the encrypted store (signature image, signed PDF, evidence)."""

    record_type: ClassVar[str] = "attachment"

    participant_id: str = ""
    name: str = ""
    media_type: str = "application/octet-stream"
    sha256: str = ""
    content: bytes = b""
    purpose: str = ""                  # e.g. "esf_signed_form", "consent_signature"


RECORD_TYPES: tuple[type[Record], ...] = (
    Participant,
    HouseholdMember,
    Referral,
    Enrolment,
    Assessment,
    Barrier,
    BarrierReview,
    ActionPlan,
    CaseNote,
    Consent,
    EsfForm,
    Outcome,
    Attachment,
)

RECORD_TYPE_BY_NAME: dict[str, type[Record]] = {t.record_type: t for t in RECORD_TYPES}


def record_fields(record_type: type[Record]) -> tuple[str, ...]:
    """The names of a record type's stored fields, in declaration order."""
    return tuple(f.name for f in dataclasses.fields(record_type))
