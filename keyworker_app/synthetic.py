"""A deterministic synthetic caseload: realistic, varied, clearly fake people (demo, tests, benchmarks).

Every identifier is of a valid format but sits where no real person can be:

- NHS numbers in 999 000 0000 to 999 999 9999, the range NHS England keeps for test data,
  each with a correct modulus 11 check digit;
- phone numbers in Ofcom's drama ranges (07700 900000 to 900999, 0161 496 0000 to 0999);
- e-mail addresses at example.org and example.com (RFC 2606);
- NI numbers from issued prefixes (so the validator accepts them; TN, a temporary prefix,
  is refused) — they are marked as fake by the participant reference, which always starts
  ``SYN-``, and by everything else about the person;
- postcodes from real Greater Manchester and Lancaster outward codes with made-up inward codes.

Names come from many UK backgrounds, with apostrophes (O'Connor, D'Souza), accents (Zoë,
Siân, José, Chloé) and hyphens (Smith-Jones, Anne-Marie), because those are the names
software gets wrong. The same ``seed`` and ``today`` always give the same caseload, record
ids included. Assessment answers are keyed as in the form definitions (``resources/forms``).
"""

from __future__ import annotations

import hashlib
import random
import struct
import unicodedata
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, fields
from datetime import date, datetime, timedelta, timezone
from typing import Any, TypeVar

from keyworker_app.codelists import load_codelist
from keyworker_app.programmes import Programme, list_programmes, load_programme
from keyworker_app.records import (
    ActionPlan,
    Assessment,
    Attachment,
    Barrier,
    BarrierReview,
    BarrierStatus,
    CaseNote,
    Confidentiality,
    Consent,
    ConsentMethod,
    ConsentStatus,
    Enrolment,
    EsfForm,
    ExitReason,
    HouseholdMember,
    Outcome,
    OutcomeKind,
    Participant,
    ParticipantStatus,
    Record,
    Referral,
    ReferralSource,
)
from keyworker_app.retention import add_months
from keyworker_app.sharing import applicable_profiles
from keyworker_app.validators import nhs_check_digit

T = TypeVar("T")

#: Every synthetic participant reference starts with this, so fake people are plain to see.
SYNTHETIC_REF_PREFIX = "SYN-"

# --- Identifiers ------------------------------------------------------------------------------

# Prefixes HMRC has issued; all pass the validator (none barred, none temporary like TN).
_NI_PREFIXES = (
    "AB", "AE", "AH", "AK", "AL", "AM", "AP", "AR", "AS", "AT", "AW", "AX", "AY", "AZ",
    "BA", "BB", "BE", "BH", "BK", "BL", "BM", "BT", "CA", "CB", "CE", "CH", "CK", "CL",
    "CR", "EA", "EB", "EE", "EH", "EK", "EL", "EM", "EP", "ER", "ES", "ET", "EW", "EX",
    "GY", "HA", "HB", "HE", "HH", "HK", "HL", "HM", "HP", "HR", "HS", "HT", "HW", "HX",
    "JA", "JB", "JC", "JE", "JG", "JH", "JJ", "JK", "JL", "JM", "JN", "JP", "JR", "JS",
    "JT", "JW", "JX", "JY", "JZ", "KA", "KB", "KE", "KH", "KK", "KL", "KM", "KP", "KR",
    "LA", "LB", "LE", "LH", "LK", "LL", "LM", "LP", "LR", "LS", "LT", "LW", "LX", "LY",
    "MA", "MB", "ME", "MH", "MK", "ML", "MM", "MP", "MR", "MS", "MT", "MW", "MX", "MY",
    "NA", "NB", "NE", "NH", "NL", "NM", "NP", "NR", "NS", "NW", "NX", "NY", "NZ",
    "OA", "OB", "OE", "OH", "OK", "OL", "OM", "OP", "OR", "OS", "OX",
    "PA", "PB", "PC", "PE", "PG", "PH", "PJ", "PK", "PL", "PM", "PN", "PP", "PR", "PS",
    "PT", "PW", "PX", "PY", "RA", "RB", "RE", "RH", "RK", "RM", "RN", "RR", "RS", "RT",
    "RW", "RX", "RY", "RZ", "SA", "SB", "SC", "SE", "SG", "SH", "SJ", "SK", "SL", "SM",
    "SN", "SP", "SR", "SS", "ST", "SW", "SX", "SY", "SZ", "TA", "TB", "TE", "TH", "TK",
    "TL", "TM", "TP", "TR", "TS", "TT", "TW", "TX", "TY", "TZ", "WA", "WB", "WE", "WK",
    "WL", "WM", "WP", "YA", "YB", "YE", "YH", "YK", "YL", "YM", "YP", "YR", "YS", "YT",
    "YW", "YX", "YY", "YZ", "ZA", "ZB", "ZE", "ZH", "ZK", "ZL", "ZM", "ZP", "ZR", "ZS",
    "ZT", "ZW", "ZX", "ZY",
)
_INWARD_LETTERS = "ABDEFGHJLNPQRSTUWXYZ"  # Royal Mail never uses C, I, K, M, O or V inward

# Outward code -> town. M1–M40 as the brief says, without the codes never issued (M36, M37, M39).
_GM_OUTWARD: tuple[tuple[str, str], ...] = tuple(
    [(f"M{n}", "Manchester") for n in (1, 2, 3, 4, 8, 9, 11, 12, 13, 14, 15, 16, 18, 19, 20, 21, 22, 23, 40)]
    + [(f"M{n}", "Salford") for n in (5, 6, 7, 27, 28, 30, 38)]
    + [("M24", "Middleton"), ("M25", "Prestwich"), ("M26", "Radcliffe"), ("M29", "Tyldesley"),
       ("M31", "Partington"), ("M32", "Stretford"), ("M33", "Sale"), ("M34", "Denton"),
       ("M35", "Failsworth"), ("M17", "Trafford Park"), ("M10", "Manchester")]
    + [(f"SK{n}", "Stockport") for n in range(1, 8)]
    + [("SK8", "Cheadle"), ("SK14", "Hyde"), ("SK15", "Stalybridge"), ("SK16", "Dukinfield")]
    + [(f"OL{n}", "Oldham") for n in (1, 2, 3, 4, 8, 9)]
    + [("OL5", "Mossley"), ("OL6", "Ashton-under-Lyne"), ("OL7", "Ashton-under-Lyne"),
       ("OL10", "Heywood"), ("OL11", "Rochdale"), ("OL12", "Rochdale"), ("OL15", "Littleborough"),
       ("OL16", "Rochdale")]
    + [(f"BL{n}", "Bolton") for n in range(1, 7)]
    + [("BL0", "Ramsbottom"), ("BL8", "Bury"), ("BL9", "Bury")]
    + [(f"WN{n}", "Wigan") for n in (1, 2, 3, 5, 6)]
    + [("WN4", "Ashton-in-Makerfield"), ("WN7", "Leigh")]
)
_LANCASTER_OUTWARD: tuple[tuple[str, str], ...] = (("LA1", "Lancaster"),)

_STREETS = (
    "Acacia Avenue", "Albert Road", "Ashworth Street", "Beech Grove", "Blackburn Road",
    "Brook Lane", "Canal Street", "Chapel Walk", "Church Lane", "Clegg Street", "Cotton Mill Way",
    "Dale Street", "Ducie Street", "Elm Close", "Gorton Lane", "Greenfield Terrace", "Hall Lane",
    "Heaton Road", "Hollins Avenue", "Kingsway", "Lark Hill", "Lime Court", "Market Street",
    "Moss Lane", "Oak Bank", "Oldham Road", "Park View", "Penny Lane", "Primrose Hill",
    "Queen's Drive", "Railway Terrace", "Rochdale Road", "St Mary's Gate", "Spinners Way",
    "Station Road", "Tib Street", "Victoria Avenue", "Weavers Court", "Wellington Road",
    "Willow Bank", "Yew Tree Lane",
)


# --- Names from many UK backgrounds -------------------------------------------------------------


@dataclass(frozen=True)
class _Background:
    """A naming background with the codes that plausibly go with it."""

    female: tuple[str, ...]
    male: tuple[str, ...]
    family: tuple[str, ...]
    ethnicities: tuple[str, ...]
    religions: tuple[str, ...]
    languages: tuple[str, ...]
    countries: tuple[str, ...]
    nationality: str
    weight: int


_BACKGROUNDS: tuple[_Background, ...] = (
    _Background(
        female=("Emma", "Chloé", "Zoë", "Siân", "Anne-Marie", "Rebecca", "Hannah", "Megan", "Lucy",
                "Sophie", "Mary-Kate", "Bethan", "Ffion", "Rhiannon", "Kirsty", "Ellie-Mae", "Jo",
                "Gemma", "Leanne", "Joanne", "Tracey", "Carol"),
        male=("Jack", "Thomas", "Daniel", "Rhys", "Gareth", "Dafydd", "Callum", "Liam", "Jamie",
              "Ryan", "Connor", "Kyle", "Lewis", "Owain", "Lee", "Darren", "Gary", "Stephen"),
        family=("Smith", "Jones", "Smith-Jones", "Taylor", "Brown", "Williams", "Wilson", "Evans",
                "Hughes", "Ashworth", "Whittaker", "Holt", "Greenwood", "Pilkington", "Hargreaves",
                "Butterworth", "Lees", "Fletcher-Hall", "Rhodes", "Entwistle", "Lloyd", "Davies",
                "Price-Owen", "MacDonald", "McKenzie", "Ramsbottom", "Ap Rhys"),
        ethnicities=("white_british",), religions=("none", "christian", "none", "prefer_not_to_say"),
        languages=("English", "English", "English", "Welsh"), countries=("United Kingdom",),
        nationality="British", weight=40,
    ),
    _Background(
        female=("Siobhán", "Niamh", "Aoife", "Róisín", "Caoimhe", "Orla", "Sinéad", "Máire"),
        male=("Seán", "Ciarán", "Pádraig", "Eoin", "Declan", "Cathal", "Darragh"),
        family=("O'Connor", "O'Brien", "O'Neill", "Murphy", "Kelly", "Ó Súilleabháin", "McCarthy",
                "Byrne", "Doyle", "O'Sullivan-Reid"),
        ethnicities=("white_irish",), religions=("christian", "none"), languages=("English",),
        countries=("Ireland", "United Kingdom"), nationality="Irish", weight=6,
    ),
    _Background(
        female=("Ayesha", "Fatima", "Zainab", "Sana", "Noor-Fatima", "Maryam", "Rabia", "Iqra"),
        male=("Muhammad", "Imran", "Bilal", "Usman", "Hamza", "Zeeshan", "Adeel", "Tariq"),
        family=("Khan", "Hussain", "Ahmed", "Iqbal", "Malik", "Akhtar", "Rehman", "Ali-Khan",
                "Butt", "Chaudhry", "Shah"),
        ethnicities=("asian_pakistani",), religions=("muslim",), languages=("English", "Urdu", "Punjabi"),
        countries=("United Kingdom", "Pakistan"), nationality="British", weight=10,
    ),
    _Background(
        female=("Priya", "Anjali", "Kavita", "Harpreet", "Simran", "Neha", "Jaspreet"),
        male=("Rajesh", "Arjun", "Vikram", "Gurpreet", "Sanjay", "Ravi", "Manpreet"),
        family=("Patel", "Sharma", "Singh", "Kaur", "Gill", "Mistry", "Desai", "D'Souza",
                "Fernandes", "D'Mello", "Sandhu"),
        ethnicities=("asian_indian",), religions=("hindu", "sikh", "christian", "none"),
        languages=("English", "Gujarati", "Punjabi", "Hindi"), countries=("United Kingdom", "India"),
        nationality="British", weight=6,
    ),
    _Background(
        female=("Nusrat", "Taslima", "Rumana", "Shirin", "Jannat"),
        male=("Shahid", "Rahim", "Jamal", "Abdul", "Rakib"),
        family=("Begum", "Uddin", "Miah", "Rahman", "Chowdhury", "Islam"),
        ethnicities=("asian_bangladeshi",), religions=("muslim",), languages=("English", "Bengali", "Sylheti"),
        countries=("United Kingdom", "Bangladesh"), nationality="British", weight=3,
    ),
    _Background(
        female=("Mei", "Xiaoling", "Jia", "Wing-Yan", "Lihua"),
        male=("Wei", "Jun", "Hao", "Ka-Ho", "Zhiwei"),
        family=("Chen", "Wang", "Li", "Zhang", "Wong", "Cheung", "Lam", "Ng"),
        ethnicities=("asian_chinese",), religions=("none", "buddhist", "christian"),
        languages=("English", "Cantonese", "Mandarin"), countries=("United Kingdom", "China", "Hong Kong"),
        nationality="British", weight=3,
    ),
    _Background(
        female=("Chidinma", "Adaeze", "Amina", "Fadumo", "Nkechi", "Abena", "Tendai", "Aïssatou"),
        male=("Chukwuemeka", "Oluwaseun", "Kwame", "Abdi", "Tinashe", "Mamadou", "Kofi"),
        family=("Okafor", "Adeyemi", "Mensah", "Osei", "Mohamed", "Abdullahi", "Mwangi",
                "N'Diaye", "Ndlovu", "Oyelaran-Smith"),
        ethnicities=("black_african",), religions=("christian", "muslim"),
        languages=("English", "Somali", "Yoruba", "Igbo", "French", "Shona"),
        countries=("United Kingdom", "Nigeria", "Somalia", "Ghana", "Zimbabwe", "Senegal"),
        nationality="British", weight=6,
    ),
    _Background(
        female=("Shanice", "Keisha", "Marcia", "Paulette", "Jade"),
        male=("Jerome", "Delroy", "Winston", "Tyrone", "Marlon"),
        family=("Campbell", "Thompson", "Clarke", "Francis", "Grant", "Beckford", "Reid-Campbell"),
        ethnicities=("black_caribbean", "mixed_white_black_caribbean"), religions=("christian", "none"),
        languages=("English",), countries=("United Kingdom", "Jamaica"), nationality="British", weight=4,
    ),
    _Background(
        female=("Agnieszka", "Małgorzata", "Zuzanna", "Ioana", "Andreea", "Inês", "María", "Renée",
                "Hélène", "Noémie", "Conceição"),
        male=("Łukasz", "Paweł", "Krzysztof", "Mihai", "Ștefan", "José", "João", "Jérôme", "François"),
        family=("Nowak", "Wójcik", "Mazur", "Krawczyk", "Popescu", "Ionescu", "Gonçalves", "Núñez",
                "Fernández", "Lefèvre", "Dubois", "García-López"),
        ethnicities=("white_other", "white_roma"), religions=("christian", "none"),
        languages=("Polish", "Romanian", "Portuguese", "Spanish", "French", "English"),
        countries=("Poland", "Romania", "Portugal", "Spain", "France"), nationality="EU national", weight=8,
    ),
    _Background(
        female=("Layla", "Mariam", "Yasmin", "Rania", "Hala"),
        male=("Omar", "Yusuf", "Khaled", "Samir", "Ahmad"),
        family=("Al-Hassan", "Haddad", "Mansour", "El-Amin", "Al-Rashid", "Saleh"),
        ethnicities=("other_arab",), religions=("muslim", "christian"), languages=("Arabic", "English"),
        countries=("Syria", "Iraq", "Yemen", "Sudan", "United Kingdom"), nationality="Refugee status", weight=4,
    ),
)

# --- Plausible words for notes and answers ------------------------------------------------------

_JOB_TITLES = (
    "Warehouse operative", "Care assistant", "Retail assistant", "Kitchen porter", "Admin assistant",
    "Delivery driver", "Cleaner", "Customer service adviser", "Barista", "Receptionist",
    "Teaching assistant", "Security officer", "Forklift driver", "Gardener", "Call centre agent",
)
_EMPLOYERS = (
    "Example Logistics Ltd", "Northern Fictional Care Homes", "Test Retail plc", "Sample Catering Co",
    "Placeholder Cleaning Services", "Demo Distribution Ltd", "Imaginary Hotels Group",
    "Fictitious Garden Centre", "Specimen Call Centres Ltd", "Mock Manufacturing Ltd",
)
_JOB_GOALS = (
    "Part-time work in a shop", "A job in care", "Warehouse work, days only", "Office admin",
    "Driving work once licence is back", "Something outdoors", "Back to my old job with adjustments",
    "Cooking in a café", "Working with animals", "Part-time cleaning near home",
)
_NOTES_STANDARD = (
    "Met at the library. Updated CV together; agreed to apply for two roles by Friday.",
    "Phone catch-up. Interview practice went well; feeling more confident.",
    "Looked at bus routes to the industrial estate. Will try the journey this week.",
    "Went through online job search sites. Set up job alerts.",
    "Talked about what work would fit around school pick-up.",
    "Reviewed action plan. Two steps done, one carried over.",
    "Discussed volunteering to build recent experience.",
    "Helped fill in an application form. Reference details still needed.",
    "Home visit. Talked through the week and next steps.",
    "Video call. Practised answering questions about gaps in work history.",
)
_NOTES_SENSITIVE = (
    "Disclosed rent arrears and a letter about court. Referred to debt advice with agreement.",
    "Talked about low mood this month. Encouraged to speak to GP; checked support is in place.",
    "Mentioned a relationship breakdown and moving in with family. Agreed to slow the pace.",
    "Talked about a past conviction and how to disclose it to employers.",
    "Worried about benefit changes if they start work. Booked a better-off calculation.",
    "Raised concerns about drinking. Shared details of local support services.",
)
_HEALTH_SUMMARIES = (
    "Back pain makes standing for long periods hard.", "Anxiety, worse in busy places.",
    "Depression, managed with GP support.", "Type 2 diabetes; needs regular breaks.",
    "Recovering from a knee operation.", "Long COVID: tires easily.", "Hearing loss in one ear.",
    "Arthritis in hands.", "Low mood and poor sleep.", "Epilepsy, well controlled.",
)
_BARRIER_TEXT = {
    "health_physical": "Pain limits how long they can stand or walk.",
    "mental_health": "Anxiety about meeting new people.",
    "confidence_motivation": "Has been out of work a long time and doubts themselves.",
    "skills_qualifications": "No recent qualifications.",
    "work_history": "Gaps in work history to explain.",
    "caring_childcare": "Cares for a parent most afternoons.",
    "housing": "Temporary accommodation; may have to move.",
    "debt_finances": "Rent arrears and a payday loan.",
    "transport": "No car; bus journey takes over an hour.",
    "convictions": "A conviction to disclose.",
    "substance_misuse": "Working on cutting down alcohol.",
    "language_literacy": "Reading and writing in English are hard.",
    "digital_skills": "Not confident using a computer or phone apps.",
    "other": "Needs ID documents replacing.",
}
_BARRIER_ACTIONS = (
    "Keyworker to find a local course", "Participant to call GP", "Refer to debt advice",
    "Look at travel passes", "Practise online applications together", "Ask about flexible hours",
)
_ONWARD = ("Citizens Advice", "Adult learning service", "Talking therapies", "Housing options team",
           "Credit union", "Local volunteering centre")

_RELATIONSHIPS = ("partner", "son", "daughter", "stepson", "stepdaughter", "grandparent", "sibling")
_SOCIAL_CARE = ("none", "none", "none", "child_in_need_plan", "early_help_plan", "previously_known")

# Signature attachments: a small greyscale PNG of a scribbled signature, the same fake picture
# each time. Drawn here in pure Python (no Qt or Pillow) so it is a real, decodable PNG.
def _png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def _signature_png(width: int = 120, height: int = 40) -> bytes:
    """An 8-bit greyscale PNG: dark pen strokes (a looping scrawl and an underline) on white."""
    pixels = [bytearray(b"\xff" * width) for _ in range(height)]

    def dot(x: float, y: float) -> None:
        for dx in (0, 1):
            for dy in (0, 1):
                px, py = int(round(x)) + dx, int(round(y)) + dy
                if 0 <= px < width and 0 <= py < height:
                    pixels[py][px] = 0x20

    def line(x0: float, y0: float, x1: float, y1: float) -> None:
        steps = int(max(abs(x1 - x0), abs(y1 - y0))) + 1
        for i in range(steps + 1):
            t = i / steps
            dot(x0 + (x1 - x0) * t, y0 + (y1 - y0) * t)

    # The scrawl: a wandering line through a few loops and peaks.
    scrawl = [(6, 28), (12, 8), (16, 30), (22, 14), (28, 26), (26, 18), (34, 20), (40, 10),
              (44, 28), (52, 16), (58, 24), (56, 18), (66, 22), (72, 8), (76, 27), (84, 15),
              (90, 25), (98, 12), (104, 24), (112, 18)]
    for (x0, y0), (x1, y1) in zip(scrawl, scrawl[1:]):
        line(x0, y0, x1, y1)
    line(10, 34, 108, 33)   # underline
    line(40, 5, 44, 3)      # a dot over an i

    raw = b"".join(b"\x00" + bytes(row) for row in pixels)  # filter type 0 (None) per row
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)  # 8-bit greyscale
    return (b"\x89PNG\r\n\x1a\n" + _png_chunk(b"IHDR", header)
            + _png_chunk(b"IDAT", zlib.compress(raw, 9)) + _png_chunk(b"IEND", b""))


_SIGNATURE_PNG = _signature_png()
_SIGNATURE_SHA256 = hashlib.sha256(_SIGNATURE_PNG).hexdigest()


# --- The case file ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class CaseFile:
    """One synthetic participant and every record about them (each with ``participant_id`` set)."""

    participant: Participant
    referral: Referral
    enrolment: Enrolment
    household_members: tuple[HouseholdMember, ...]
    assessments: tuple[Assessment, ...]
    barriers: tuple[Barrier, ...]
    barrier_reviews: tuple[BarrierReview, ...]
    action_plans: tuple[ActionPlan, ...]
    case_notes: tuple[CaseNote, ...]
    consents: tuple[Consent, ...]
    esf_forms: tuple[EsfForm, ...]
    outcomes: tuple[Outcome, ...]
    attachments: tuple[Attachment, ...]

    def records(self) -> Iterator[Record]:
        """Every record in the case, the participant first."""
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, tuple):
                yield from value
            else:
                yield value


# --- Small helpers ------------------------------------------------------------------------------------


def _years_before(day: date, years: int) -> date:
    """The same day ``years`` earlier (29 February becomes the 28th)."""
    return date(day.year - years, day.month, min(day.day, 28 if day.month == 2 else day.day))


def _ascii(name: str) -> str:
    """A name as letters a-z only, for an e-mail address (Zoë O'Connor -> zoeoconnor)."""
    flat = unicodedata.normalize("NFKD", name.replace("Ł", "L").replace("ł", "l"))
    return "".join(c for c in flat.lower() if "a" <= c <= "z")


_MOMENTS: dict[tuple[date, int], datetime] = {}


def _at(day: date, hour: int = 10) -> datetime:
    """``hour`` o'clock UTC on ``day``; cached, since a caseload reuses a few hundred days."""
    moment = _MOMENTS.get((day, hour))
    if moment is None:
        moment = _MOMENTS[(day, hour)] = datetime(day.year, day.month, day.day, hour, tzinfo=timezone.utc)
    return moment


def _codes(codelist: str, *, skip: Sequence[str] = ()) -> tuple[str, ...]:
    return tuple(c for c in load_codelist(codelist).values if c not in skip)


_REVIEW_NOTES = {1: "Better than last time.", 0: "About the same.", -1: "A setback."}


@dataclass(frozen=True)
class _Barriers:
    barriers: tuple[Barrier, ...]
    first_scores: tuple[int, ...]
    reviews: tuple[BarrierReview, ...]
    review_dates: tuple[date, ...]


class _Generator:
    """Draws one case after another from a seeded random source.

    All random choices go through ``self.rng`` so the same seed gives the same caseload.
    Pools are worked out once in ``__init__``; the per-case code only picks from them,
    which keeps 50,000 cases to a few seconds.
    """

    def __init__(self, seed: int, keyworker_id: str, today: date, programme: str | None) -> None:
        self.rng = random.Random(seed)
        self.keyworker_id = keyworker_id
        self.today = today
        self.today_at = _at(today, 9)
        self.seed_tag = f"{seed & 0xFFFF:04X}"
        # Record ids: a prefix fixed by the arguments, then a counter. They are valid
        # version-4 UUIDs, repeat for the same arguments, and cost a tenth of uuid4().
        digest = hashlib.sha256(f"{seed}|{keyworker_id}|{programme}".encode()).hexdigest()
        self.id_prefix = f"{digest[:8]}-{digest[8:12]}-4{digest[13:16]}-{'89ab'[int(digest[16], 16) & 3]}{digest[17:20]}-"
        self.ids = 0
        chosen = [load_programme(programme)] if programme else list_programmes()
        self.programmes: tuple[Programme, ...] = tuple(chosen)
        self.consent_profiles = {
            p.id: {
                strand: tuple(x.id for x in applicable_profiles(p.id, strand) if x.consent_required)
                for strand in ([s.id for s in p.strands] or [""])
            }
            for p in self.programmes
        }
        self.background_weights = [b.weight for b in _BACKGROUNDS]
        self.ascii: dict[str, str] = {}
        self.barrier_categories = _codes("barrier_category")
        self.contact_types = _codes("contact_type")
        self.benefits = _codes("benefit_status")
        self.qualifications = _codes("qualification_level")
        self.marital = _codes("marital_status")
        self.orientations = _codes("sexual_orientation")
        self.mhsds_hours = _codes("mhsds_weekly_hours_worked")[:4]
        self.esf_household = _codes("esf_household_situation")
        self.esf_isced = _codes("esf_isced_level")
        evidence = load_codelist("esf_evidence_type").codes
        self.evidence = {g: tuple(c.code for c in evidence if c.group == g) for g in {c.group for c in evidence}}
        self.counter = 0
        self.category_orders = tuple(
            tuple(self.rng.sample(self.barrier_categories, len(self.barrier_categories))) for _ in range(64)
        )
        self.action_pairs = tuple((a, b) for a in _BARRIER_ACTIONS for b in _BARRIER_ACTIONS if a != b)
        # About one note in six is sensitive (a disclosure the keyworker marks as such).
        self.note_kinds = tuple(
            [(c, n, Confidentiality.STANDARD) for c in self.contact_types for n in _NOTES_STANDARD]
            + [(c, n, Confidentiality.SENSITIVE) for c in ("face_to_face", "home_visit") for n in _NOTES_SENSITIVE]
        )

    # -- primitives --

    def uuid(self) -> str:
        """The next record id (uuid.uuid4 would not repeat for the same seed)."""
        self.ids += 1
        return f"{self.id_prefix}{self.ids:012x}"

    def pick(self, options: Sequence[T]) -> T:
        return options[int(self.rng.random() * len(options))]

    def chance(self, p: float) -> bool:
        return self.rng.random() < p

    def between(self, low: int, high: int) -> int:
        return low + int(self.rng.random() * (high - low + 1))

    def ni_number(self) -> str:
        return f"{self.pick(_NI_PREFIXES)}{self.between(0, 999999):06d}{'ABCD'[self.between(0, 3)]}"

    def nhs_number(self) -> str:
        while True:
            first_nine = f"999{self.between(0, 999999):06d}"
            check = nhs_check_digit(first_nine)
            if check is not None:
                return f"{first_nine}{check}"

    def postcode(self, programme: Programme) -> tuple[str, str]:
        outward, town = self.pick(_LANCASTER_OUTWARD if programme.id == "workwell" else _GM_OUTWARD)
        inward = f"{self.between(0, 9)}{self.pick(_INWARD_LETTERS)}{self.pick(_INWARD_LETTERS)}"
        return f"{outward} {inward}", town

    def mobile(self) -> str:
        return f"07700900{self.between(0, 999):03d}"

    def landline(self) -> str:
        return f"01614960{self.between(0, 999):03d}"

    def email(self, given: str, family: str) -> str:
        a = self.ascii.get(given) or self.ascii.setdefault(given, _ascii(given))
        b = self.ascii.get(family) or self.ascii.setdefault(family, _ascii(family))
        domain = "example.org" if self.chance(0.5) else "example.com"
        return f"{a}.{b}{self.between(1, 999)}@{domain}"

    def day_between(self, first: date, last: date) -> date:
        span = (last - first).days
        return first + timedelta(days=self.between(0, span)) if span > 0 else first

    # -- one case --

    def case(self) -> CaseFile:
        self.counter += 1
        programme = self.pick(self.programmes)
        strand = self.pick(programme.strands).id if programme.strands else ""
        months = programme.max_months(strand) or 24
        pid = self.uuid()
        start = self.today - timedelta(days=self.between(0, months * 30))
        status = self.status(start)
        planned_end = add_months(start, months)
        end = None
        if status in (ParticipantStatus.EXITED, ParticipantStatus.CLOSED):
            end = min(self.day_between(add_months(start, 2), planned_end), self.today)
        last_day = end or self.today
        background = self.rng.choices(_BACKGROUNDS, self.background_weights)[0]
        participant = self.participant(pid, programme, strand, status, start, background)
        referral = self.referral(pid, programme, start)
        enrolment = Enrolment(
            id=self.uuid(), participant_id=pid, programme=programme.id, strand=strand,
            start_date=start, planned_end_date=planned_end, end_date=end,
            esf_funded=programme.esf_funded, created_at=_at(start), updated_at=_at(last_day),
        )
        found = self.barriers(pid, start, last_day)
        assessments = self.assessments(pid, participant, start, found, end)
        attachments: list[Attachment] = []
        consents = self.consents(pid, programme, strand, start, last_day, attachments)
        esf_forms = self.esf_forms(pid, programme, participant, start, attachments)
        outcomes = self.outcomes(pid, strand, start, end, status)
        return CaseFile(
            participant=participant,
            referral=referral,
            enrolment=enrolment,
            household_members=self.household(pid, participant) if programme.records_household_members else (),
            assessments=assessments,
            barriers=found.barriers,
            barrier_reviews=found.reviews,
            action_plans=(self.action_plan(pid, programme, start),),
            case_notes=self.case_notes(pid, start, last_day),
            consents=consents,
            esf_forms=esf_forms,
            outcomes=outcomes,
            attachments=tuple(attachments),
        )

    def status(self, start: date) -> ParticipantStatus:
        if (self.today - start).days < 60:
            return ParticipantStatus.REFERRED if self.chance(0.3) else ParticipantStatus.ACTIVE
        roll = self.rng.random()
        if roll < 0.50:
            return ParticipantStatus.ACTIVE
        if roll < 0.58:
            return ParticipantStatus.ON_HOLD
        if roll < 0.78:
            return ParticipantStatus.EXITED
        return ParticipantStatus.CLOSED

    def participant(
        self, pid: str, programme: Programme, strand: str, status: ParticipantStatus, start: date,
        background: _Background,
    ) -> Participant:
        roll = self.rng.random()
        gender = "female" if roll < 0.49 else "male" if roll < 0.97 else self.pick(
            ("non_binary", "prefer_not_to_say", "other"))
        given = self.pick(background.female if gender == "female" or (gender != "male" and self.chance(0.5))
                          else background.male)
        family = self.pick(background.family)
        # Aged 16-70 today, and at least 16 when they started.
        oldest = _years_before(self.today, 70) + timedelta(days=2)
        youngest = _years_before(start, 16) - timedelta(days=1)
        born = self.day_between(oldest, youngest)
        postcode, town = self.postcode(programme)
        employed = self.chance(0.2 if programme.id != "workwell" else 0.5)
        disabled = self.chance(0.45)
        language = self.pick(background.languages)
        country = self.pick(background.countries)
        job = self.pick(_JOB_TITLES) if employed else ""
        gp = programme.collects_gp_details
        return Participant(
            id=pid,
            created_at=_at(start), updated_at=self.today_at,
            participant_ref=f"{SYNTHETIC_REF_PREFIX}{programme.id.upper()[:4]}-{self.seed_tag}-{self.counter:06d}",
            programme=programme.id,
            strand=strand,
            keyworker_id=self.keyworker_id,
            status=status,
            given_name=given,
            family_name=family,
            preferred_name=given.split("-")[0] if "-" in given and self.chance(0.3) else "",
            date_of_birth=born,
            address_line1=f"{self.between(1, 240)} {self.pick(_STREETS)}",
            address_line2=f"Flat {self.between(1, 40)}" if self.chance(0.2) else "",
            town=town,
            postcode=postcode,
            phone=self.mobile() if self.chance(0.85) else self.landline(),
            email=self.email(given, family) if self.chance(0.8) else "",
            ni_number=self.ni_number() if self.chance(0.9) else "",
            nhs_number=self.nhs_number() if self.chance(0.7) else "",
            gender=gender,
            ethnicity=self.pick(background.ethnicities) if self.chance(0.93) else "prefer_not_to_say",
            language=language,
            interpreter_needed=language != "English" and self.chance(0.25),
            nationality=background.nationality if country != "United Kingdom" else "British",
            country_of_birth=country,
            religion=self.pick(background.religions),
            sexual_orientation=self.pick(self.orientations) if self.chance(0.4) else "",
            marital_status=self.pick(self.marital),
            disability="yes" if disabled else self.pick(("no", "no", "prefer_not_to_say")),
            disability_description=self.pick(_HEALTH_SUMMARIES) if disabled and self.chance(0.7) else "",
            health_summary=self.pick(_HEALTH_SUMMARIES) if self.chance(0.6) else "",
            employment_status="01" if employed else self.pick(("02", "02", "04", "05", "06", "07")),
            weekly_hours_worked=self.pick(self.mhsds_hours) if employed else "",
            benefit_status=self.pick(self.benefits),
            employer_name=self.pick(_EMPLOYERS) if employed else "",
            job_role=job,
            education=self.pick(self.qualifications),
            gp_name=f"Dr {self.pick(_BACKGROUNDS[self.between(0, len(_BACKGROUNDS) - 1)].family)}" if gp else "",
            gp_practice=f"{town} Example Medical Practice" if gp else "",
            health_visitor=f"{self.pick(_BACKGROUNDS[0].female)} (health visitor)" if programme.id == "early_help" and self.chance(0.4) else "",
            social_care_status=self.pick(_SOCIAL_CARE) if programme.id == "early_help" else "",
            review_due=self.today + timedelta(days=self.between(1, 42)) if status is ParticipantStatus.ACTIVE else None,
            restricted=self.chance(0.01),
            objections=("evaluation",) if self.chance(0.03) else (),
        )

    def referral(self, pid: str, programme: Programme, start: date) -> Referral:
        sources = {
            "working_well_ses": (ReferralSource.NHS_TRUST, ReferralSource.LOCAL_AUTHORITY),
            "working_well_whp": (ReferralSource.JOBCENTRE_PLUS,),
            "working_well": (ReferralSource.JOBCENTRE_PLUS, ReferralSource.LOCAL_AUTHORITY),
            "workwell": (ReferralSource.SELF, ReferralSource.HEALTH_PROFESSIONAL, ReferralSource.EMPLOYER),
        }.get(programme.id, (ReferralSource.LOCAL_AUTHORITY, ReferralSource.OTHER, ReferralSource.SELF))
        source = self.pick(sources)
        # The lawful basis of the referral itself (seed 001 table; the others are public task).
        basis = ("6(1)(a)", "9(2)(a)") if source is ReferralSource.NHS_TRUST else ("6(1)(e)", "9(2)(g)")
        received = start - timedelta(days=self.between(3, 30))
        organisation = {
            ReferralSource.NHS_TRUST: "Example NHS Foundation Trust",
            ReferralSource.LOCAL_AUTHORITY: "Example Metropolitan Borough Council",
            ReferralSource.JOBCENTRE_PLUS: "Jobcentre Plus (example office)",
            ReferralSource.HEALTH_PROFESSIONAL: "Example GP Surgery",
            ReferralSource.EMPLOYER: self.pick(_EMPLOYERS),
        }.get(source, "")
        return Referral(
            id=self.uuid(), participant_id=pid, created_at=_at(received), updated_at=_at(received),
            source_type=source, source_organisation=organisation,
            referrer_name=f"{self.pick(_BACKGROUNDS[0].female)} {self.pick(_BACKGROUNDS[0].family)}" if organisation else "",
            referrer_contact=self.landline() if organisation else "",
            received_on=received,
            reason=self.pick(("Wants help getting back to work.", "Off sick and worried about losing job.",
                              "Long-term unemployed; health getting in the way.", "Family needs support.")),
            condition_summary=self.pick(_HEALTH_SUMMARIES) if self.chance(0.6) else "",
            adjustments_needed=self.pick(("Ground-floor room.", "Appointments after 10am.",
                                          "Written summaries after meetings.", "")),
            lawful_basis=basis[0], special_category_basis=basis[1],
        )

    def barriers(self, pid: str, start: date, last_day: date) -> _Barriers:
        """1-4 barriers, each scored at 2-4 reviews: the points of distance travelled.

        A barrier's ``severity`` is its latest score; ``first_scores`` are those agreed
        when it was identified (the barriers-to-work form).
        """
        identified = min(start + timedelta(days=self.between(0, 7)), last_day)
        span = max((last_day - identified).days, 4)
        count = self.between(2, 4)
        review_dates = tuple(identified + timedelta(days=span * (i + 1) // (count + 1)) for i in range(count))
        moments = [(when, _at(when)) for when in review_dates]
        random = self.rng.random
        barriers: list[Barrier] = []
        reviews: list[BarrierReview] = []
        first_scores: list[int] = []
        # random.sample is slow; a pre-shuffled order of the categories serves as well.
        categories = self.pick(self.category_orders)[: self.between(1, 4)]
        for category in categories:
            first = severity = self.between(2, 5)
            bid = self.uuid()
            for when, moment in moments:
                # Mostly down a point or the same, sometimes a setback.
                roll = random()
                change = 1 if roll < 0.45 else 0 if roll < 0.85 else -1
                severity = max(1, min(5, severity - change))
                reviews.append(BarrierReview(
                    id=self.uuid(), participant_id=pid, barrier_id=bid, reviewed_on=when, severity=severity,
                    note=_REVIEW_NOTES[change], created_at=moment, updated_at=moment,
                ))
            status = BarrierStatus.RESOLVED if severity == 1 else (
                BarrierStatus.IMPROVING if severity < first else BarrierStatus.OPEN)
            first_scores.append(first)
            barriers.append(Barrier(
                id=bid, participant_id=pid, category=category, description=_BARRIER_TEXT[category],
                severity=severity, actions=self.pick(self.action_pairs), status=status,
                identified_on=identified, created_at=_at(identified), updated_at=moments[-1][1],
            ))
        return _Barriers(tuple(barriers), tuple(first_scores), tuple(reviews), review_dates)

    def assessments(
        self, pid: str, participant: Participant, start: date, found: _Barriers, end: date | None,
    ) -> tuple[Assessment, ...]:
        identified = found.barriers[0].identified_on or start
        made = [
            self.assessment(pid, "initial_assessment", start, self.initial_answers(participant, start, found.barriers)),
            self.assessment(pid, "barriers_to_work", identified, self.barrier_answers(found, identified)),
        ]
        employment = participant.employment_status
        for when in found.review_dates:
            answers: dict[str, Any] = {
                "reviewed_on": when.isoformat(), "contact_type": self.pick(self.contact_types),
                "progress_summary": self.pick(_NOTES_STANDARD), "barriers_changed": self.chance(0.6),
                "wellbeing_score": self.between(1, 10), "employment_status": employment,
                "next_steps": "Keep going with the action plan.",
            }
            if answers["barriers_changed"]:
                answers["barrier_changes"] = "Scores updated on the barriers page."
            if employment == "01":
                answers["weekly_hours_worked"] = self.pick(self.mhsds_hours)
            made.append(self.assessment(pid, "progress_review", when, answers))
        if end is not None:
            made.append(self.assessment(pid, "exit", end, self.exit_answers(end)))
        return tuple(made)

    def assessment(self, pid: str, form_id: str, when: date, answers: dict[str, Any]) -> Assessment:
        return Assessment(
            id=self.uuid(), participant_id=pid, form_id=form_id, form_version=1, answers=answers,
            completed_on=when, assessor=self.keyworker_id, created_at=_at(when), updated_at=_at(when),
        )

    def initial_answers(self, participant: Participant, start: date, barriers: tuple[Barrier, ...]) -> dict[str, Any]:
        answers: dict[str, Any] = {
            "assessed_on": start.isoformat(), "contact_type": self.pick(self.contact_types),
            "employment_status": participant.employment_status,
            "work_history": self.pick(("Retail for six years.", "Factory work, then caring for family.",
                                       "Never had a paid job.", "Care work until an injury.")),
            "job_goal": self.pick(_JOB_GOALS), "hours_wanted": self.between(8, 37),
            "skills_summary": "Reliable, good with people.", "qualification_level": participant.education,
            "confident_online": self.chance(0.6), "training_needs": "Food hygiene; CSCS card.",
            "health_affects_work": bool(participant.health_summary),
            "caring_responsibilities": self.chance(0.3),
            "personal_issues": self.pick(("None raised.", "Money worries.", "Housing is insecure.")),
            "barrier_categories": [b.category for b in barriers], "confidence_score": self.between(1, 10),
        }
        if participant.employment_status == "01":
            answers["weekly_hours_worked"] = participant.weekly_hours_worked
        if participant.health_summary:
            answers["health_and_care_needs"] = participant.health_summary
            answers["offer_health_team"] = self.chance(0.4)
        if answers["caring_responsibilities"]:
            answers["caring_details"] = "Looks after a parent three afternoons a week."
        if "other" in answers["barrier_categories"]:
            answers["other_barrier"] = _BARRIER_TEXT["other"]
        return answers

    @staticmethod
    def barrier_answers(found: _Barriers, identified: date) -> dict[str, Any]:
        answers: dict[str, Any] = {
            "identified_on": identified.isoformat(),
            "categories": [b.category for b in found.barriers],
        }
        for b, first in zip(found.barriers, found.first_scores):
            answers[f"{b.category}_description"] = b.description
            answers[f"{b.category}_severity"] = first
            answers[f"{b.category}_actions"] = "; ".join(b.actions)
        return answers

    def exit_answers(self, end: date) -> dict[str, Any]:
        got_job = self.chance(0.4)
        reason = ExitReason.COMPLETED.value if got_job or self.chance(0.5) else ExitReason.LEFT_EARLY.value
        answers: dict[str, Any] = {
            "exit_on": end.isoformat(), "exit_reason": reason, "got_job": got_job,
            "mhsds_employment_status": "01" if got_job else "02", "further_support": self.chance(0.3),
            "onward_referrals": self.pick(_ONWARD), "recommendations": "Keep in touch with the job club.",
        }
        if reason == ExitReason.LEFT_EARLY.value:
            answers["left_early_reason"] = self.pick(("Moved away.", "Health got worse.", "Stopped attending."))
        if got_job:
            answers.update(job_start_on=end.isoformat(), employer=self.pick(_EMPLOYERS),
                           job_title=self.pick(_JOB_TITLES), weekly_hours=float(self.between(8, 40)),
                           mhsds_weekly_hours=self.pick(self.mhsds_hours))
        if answers["further_support"]:
            answers["further_support_needed"] = "Help settling into the new routine."
        return answers

    def action_plan(self, pid: str, programme: Programme, start: date) -> ActionPlan:
        agreed = start + timedelta(days=self.between(7, 21))
        steps = tuple(
            {"action": self.pick(_BARRIER_ACTIONS), "owner": self.pick(("participant", "keyworker")),
             "due": (agreed + timedelta(days=14 * (i + 1))).isoformat(), "done": self.chance(0.5)}
            for i in range(self.between(2, 4))
        )
        return ActionPlan(
            id=self.uuid(), participant_id=pid, kind=self.pick(programme.action_plan_kinds or ("return_to_work",)),
            goal=self.pick(_JOB_GOALS), steps=steps, agreed_on=agreed, review_on=agreed + timedelta(days=56),
            created_at=_at(agreed), updated_at=_at(agreed),
        )

    def case_notes(self, pid: str, start: date, last_day: date) -> tuple[CaseNote, ...]:
        # The hottest loop in the generator: one draw picks what kind of note it is.
        random, kinds, author = self.rng.random, self.note_kinds, self.keyworker_id
        span = (last_day - start).days + 1
        notes = []
        for _ in range(self.between(3, 8)):
            contact_type, summary, confidentiality = kinds[int(random() * len(kinds))]
            when = start + timedelta(days=int(random() * span))
            noted = _at(when, 9 + int(random() * 8))
            notes.append(CaseNote(
                id=self.uuid(), participant_id=pid, contact_type=contact_type, contact_on=noted,
                summary=summary, confidentiality=confidentiality, author=author,
                created_at=noted, updated_at=noted,
            ))
        return tuple(notes)

    def signature(self, pid: str, when: date, name: str, attachments: list[Attachment]) -> str:
        attachment = Attachment(
            id=self.uuid(), participant_id=pid, name=name, media_type="image/png",
            sha256=_SIGNATURE_SHA256, content=_SIGNATURE_PNG, created_at=_at(when), updated_at=_at(when),
        )
        attachments.append(attachment)
        return attachment.id

    def consents(
        self, pid: str, programme: Programme, strand: str, start: date, last_day: date,
        attachments: list[Attachment],
    ) -> tuple[Consent, ...]:
        made = []
        for profile_id in self.consent_profiles[programme.id][strand]:
            given = _at(start, self.between(9, 16))
            roll = self.rng.random()
            method = ConsentMethod.SIGNED if roll < 0.45 else ConsentMethod.VERBAL if roll < 0.9 else ConsentMethod.ONLINE
            outcome = self.rng.random()
            status = ConsentStatus.GIVEN if outcome < 0.7 else ConsentStatus.REFUSED if outcome < 0.85 else ConsentStatus.WITHDRAWN
            withdrawn = _at(self.day_between(start + timedelta(days=1), max(last_day, start + timedelta(days=1))), 14) \
                if status is ConsentStatus.WITHDRAWN else None
            made.append(Consent(
                id=self.uuid(), participant_id=pid, sharing_profile=profile_id, status=status, method=method,
                notice_version=programme.privacy_notice.version, given_on=given, withdrawn_on=withdrawn,
                witness=self.keyworker_id if method is ConsentMethod.VERBAL else "",
                signature_attachment_id=(
                    self.signature(pid, start, f"consent-{profile_id}.png", attachments)
                    if method is ConsentMethod.SIGNED else ""
                ),
                created_at=given, updated_at=withdrawn or given,
            ))
        return tuple(made)

    def esf_forms(
        self, pid: str, programme: Programme, participant: Participant, start: date, attachments: list[Attachment]
    ) -> tuple[EsfForm, ...]:
        if not programme.uses_form("esf_participant"):
            return ()
        born = participant.date_of_birth or start
        age = start.year - born.year - ((start.month, start.day) < (born.month, born.day))
        on_entry = "employed" if participant.employment_status == "01" else self.pick(("unemployed", "inactive"))
        remote = self.chance(0.15)
        signed = not remote or self.chance(0.5)
        seen = start.isoformat()
        answers: dict[str, Any] = {
            "gender": participant.gender, "date_of_birth": born.isoformat(), "joined_on": seen,
            "age_at_start": age, "employment_status_on_entry": on_entry,
            "household_situation": [self.pick(self.esf_household)],
            "disability": participant.disability or "prefer_not_to_say",
            "ethnic_minority": "no" if participant.ethnicity == "white_british" else "yes",
            "migrant_or_foreign_background": "no" if participant.country_of_birth == "United Kingdom" else "yes",
            "other_disadvantaged": self.pick(("yes", "no")), "homeless_or_housing_exclusion": self.pick(("no", "no", "yes")),
            "education_level": self.pick(self.esf_isced),
            "right_to_work_evidence": self.pick(self.evidence["right_to_work"]), "right_to_work_evidence_seen_on": seen,
            "right_to_work_reference": f"SYN{self.between(100000, 999999)}",
            "age_evidence": self.pick(self.evidence["age"]), "age_evidence_seen_on": seen,
            "residency_evidence": self.pick(self.evidence["residency"]), "residency_evidence_seen_on": seen,
            "leaflet_acknowledged": True, "remote_delivery": remote,
        }
        if on_entry == "unemployed":
            answers["long_term_unemployed"] = self.chance(0.5)
        if on_entry == "inactive":
            answers["inactive_in_education_or_training"] = False
        if on_entry != "employed":
            answers["employment_status_evidence"] = self.pick(self.evidence["employment_status"])
            answers["employment_status_evidence_seen_on"] = seen
        signature_id = self.signature(pid, start, "esf-signature.png", attachments) if signed else ""
        if remote:
            answers["signature_arrangements"] = "Signed copy to be collected at the first face-to-face meeting."
        else:
            answers["signature"] = signature_id
            answers["signed_on"] = seen
        evidence = tuple(
            {"type": answers[f"{kind}_evidence"], "reference": f"SYN-EV-{self.between(1000, 9999)}", "seen_on": seen}
            for kind in ("right_to_work", "age", "residency")
        )
        return (EsfForm(
            id=self.uuid(), participant_id=pid, answers=answers, evidence=evidence, leaflet_acknowledged=True,
            remote_delivery=remote, signature_owed=not signed, signed_on=start if signed else None,
            signature_attachment_id=signature_id, created_at=_at(start), updated_at=_at(start),
        ),)

    def outcomes(
        self, pid: str, strand: str, start: date, end: date | None, status: ParticipantStatus
    ) -> tuple[Outcome, ...]:
        made = []
        ips = strand == "ips"
        job_on = None
        if status is not ParticipantStatus.REFERRED and self.chance(0.35):
            job_on = self.day_between(start + timedelta(days=30), end or self.today)
            hours = float(self.between(8, 40))
            made.append(Outcome(
                id=self.uuid(), participant_id=pid, kind=OutcomeKind.JOB_START, outcome_on=job_on,
                employer=self.pick(_EMPLOYERS), job_title=self.pick(_JOB_TITLES), weekly_hours=hours,
                mhsds_employment_status="01" if ips else "",
                mhsds_weekly_hours=("01" if hours >= 30 else "02" if hours >= 16 else "03") if ips else "",
                created_at=_at(job_on), updated_at=_at(job_on),
            ))
            sustained = job_on + timedelta(days=182)
            if sustained <= self.today and self.chance(0.6):
                made.append(Outcome(
                    id=self.uuid(), participant_id=pid, kind=OutcomeKind.SUSTAINMENT, outcome_on=sustained,
                    employer=made[0].employer, job_title=made[0].job_title, weekly_hours=hours,
                    in_work=True, created_at=_at(sustained), updated_at=_at(sustained),
                ))
        if end is not None:
            reason = ExitReason.COMPLETED if job_on or self.chance(0.5) else ExitReason.LEFT_EARLY
            made.append(Outcome(
                id=self.uuid(), participant_id=pid, kind=OutcomeKind.EXIT, outcome_on=end,
                exit_reason=reason, job_title=made[0].job_title if job_on else "",
                onward_referrals=tuple(self.rng.sample(_ONWARD, self.between(0, 2))),
                further_support_needed="Help settling into work." if self.chance(0.3) else "",
                recommendations="Keep in touch with the job club." if self.chance(0.5) else "",
                mhsds_employment_status=("01" if job_on else "02") if ips else "",
                created_at=_at(end), updated_at=_at(end),
            ))
        return tuple(made)

    def household(self, pid: str, participant: Participant) -> tuple[HouseholdMember, ...]:
        members = []
        for _ in range(self.between(1, 5)):
            relationship = self.pick(_RELATIONSHIPS)
            child = relationship in ("son", "daughter", "stepson", "stepdaughter")
            gender = "male" if relationship in ("son", "stepson") else "female" if relationship in (
                "daughter", "stepdaughter") else self.pick(("female", "male"))
            background = _BACKGROUNDS[0] if self.chance(0.3) else next(
                (b for b in _BACKGROUNDS if participant.family_name in b.family), _BACKGROUNDS[0])
            given = self.pick(background.female if gender == "female" else background.male)
            age_days = self.between(1, 17 * 365) if child else self.between(18 * 365, 80 * 365)
            members.append(HouseholdMember(
                id=self.uuid(), participant_id=pid, given_name=given,
                family_name=participant.family_name if child or self.chance(0.5) else self.pick(background.family),
                relationship=relationship, date_of_birth=self.today - timedelta(days=age_days), gender=gender,
                ethnicity=participant.ethnicity, language=participant.language,
                nationality=participant.nationality, religion=participant.religion,
                country_of_birth="United Kingdom" if child else participant.country_of_birth,
                nhs_number=self.nhs_number() if self.chance(0.6) else "",
                gp_details=participant.gp_practice,
                health_visitor=participant.health_visitor if child else "",
                education=self.pick(("Nursery", "Primary school", "Secondary school", "College")) if child else "",
                social_care_status=self.pick(_SOCIAL_CARE) if child else "",
                created_at=participant.created_at, updated_at=participant.updated_at,
            ))
        return tuple(members)


def generate_caseload(
    n: int,
    seed: int = 0,
    programme: str | None = None,
    keyworker_id: str = "KW-0001",
    today: date | None = None,
) -> Iterator[CaseFile]:
    """``n`` synthetic case files, one at a time, the same for the same arguments.

    ``programme`` limits the caseload to one programme pack (default: a mix of them all).
    ``today`` fixes the dates (default: today; pass it for a caseload that repeats exactly
    across days).
    """
    generator = _Generator(seed, keyworker_id, today or date.today(), programme)
    for _ in range(n):
        yield generator.case()
