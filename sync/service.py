"""The sync as the desktop sees it: a few plain verbs over one unlocked store (no Qt).

The window holds one :class:`SyncService` per unlocked store (:func:`make_service`) and calls
it from its operations worker, never from the GUI thread:

* :meth:`SyncService.run` builds the client for the enrolled controller and runs the
  :class:`~sync.engine.SyncEngine` once, reporting ``progress(stage, done, total)``;
* :meth:`SyncService.enrol` exchanges a one-time code for this profile's token;
* the readers (:meth:`is_enrolled`, :meth:`last_sync_at`, :meth:`is_online`, :meth:`waiting`,
  :meth:`quarantined`, :meth:`sharing_history`, :meth:`new_referrals_since`) give the strip,
  the problem list and the record what they show.

Everything here returns ids, participant references, counts, codes and the controller's
reasons (which name fields, never values): nothing that may be written to a log is personal.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone

from keyworker_app.errors import KeyworkerError
from keyworker_app.paths import AppPaths
from keyworker_app.sharing import SharingProfile, load_sharing_profiles
from keyworker_app.store.store import Store

from .engine import RunOutcome, Stage, SyncEngine, SyncResult
from .enrolment import Enrolment, enrol, is_enrolled, open_client
from .errors import (
    ControllerCertificateError, EnrolmentRefused, MalformedResponse, Offline, RequestRefused, SyncError,
)
from .ledger import Ledger, SentEntry
from .purge import purge_profile
from .retry import RetryPolicy

#: When the last run that reached the controller finished (``OK`` or ``PARTIAL``), UTC ISO.
META_LAST_SUCCESS = "sync.last_success_at"

#: The stage names a keyworker sees next to the progress bar.
STAGE_WORDS: dict[Stage, str] = {
    Stage.PREPARING: "Connecting",
    Stage.PUSHING: "Sending",
    Stage.PULLING_REFERRALS: "Fetching referrals",
    Stage.PULLING_INSTRUCTIONS: "Checking for instructions",
    Stage.DONE: "Finishing",
}

Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ProblemItem:
    """One item the controller set aside, with its reason and whose record it is."""

    participant_id: str
    participant_ref: str
    record_type: str
    record_id: str
    version: int
    recipient: str            # the recipient's name as the sharing profile gives it
    code: str                 # the controller's stable code, e.g. ``field_not_in_profile``
    reason: str               # the controller's words (names a field or profile, never a value)
    quarantined_at: str


@dataclass(frozen=True)
class NewReferral:
    """A participant created from a referral the controller sent."""

    participant_id: str
    participant_ref: str
    referral_id: str


@dataclass(frozen=True)
class SharedItem:
    """One line of a participant's sharing history (:class:`~sync.ledger.SentEntry`), with
    the recipient named as its sharing profile names it."""

    entry: SentEntry
    recipient: str

    @property
    def lawful_basis(self) -> str:
        """``Article 6(1)(e)``, plus ``; Article 9(2)(g)`` when special category data went."""
        basis = f"Article {self.entry.article_6}" if self.entry.article_6 else ""
        if self.entry.article_9:
            basis += f"; Article {self.entry.article_9}"
        return basis


_ENROLMENT_WORDS: dict[str, tuple[str, str]] = {
    "enrolment_code_unknown": (
        "The controller does not recognise that enrolment code.",
        "Check it is typed as your manager gave it (spaces, dashes and capitals do not matter), "
        "or ask for a new code."),
    "enrolment_keyworker_mismatch": (
        "That enrolment code was issued for another keyworker, so it cannot enrol this profile.",
        "Ask your manager for a code issued for your own keyworker id. The code was not used up."),
    "enrolment_code_used": (
        "That enrolment code has already been used to enrol a laptop. Each code works only once.",
        "Ask your manager for a new code."),
    "enrolment_code_expired": (
        "That enrolment code has expired.",
        "Ask your manager for a new code, and enrol with it the same day."),
    "invalid_request": (
        "The controller could not read the enrolment request.",
        "Check the code is complete. If it keeps happening, tell your IT team."),
}


def _refused(code: str, message: str, next_step: str) -> EnrolmentRefused:
    refused = EnrolmentRefused(code, message)
    refused.next_step = next_step
    return refused


def _enrolment_failure(exc: SyncError) -> SyncError:
    """The same failure, in words about enrolling (the engine's words are about syncing)."""
    if isinstance(exc, EnrolmentRefused):
        words = _ENROLMENT_WORDS.get(exc.code)
        return exc if words is None else _refused(exc.code, *words)
    if isinstance(exc, Offline):
        return Offline(message="The controller could not be reached at that address, so this laptop "
                       "is not enrolled yet.",
                       next_step="Check the address and that this laptop is connected, then try again.")
    if isinstance(exc, ControllerCertificateError):
        return ControllerCertificateError(
            message="The controller's certificate could not be trusted, so this laptop did not enrol "
            "and nothing was sent.")
    if isinstance(exc, (RequestRefused, MalformedResponse)):
        return _refused("not_a_controller", "That address answered, but not as a Keyworker controller.",
                        "Check the address with your manager or IT team.")
    return exc


def _parse_time(text: str | None) -> datetime | None:
    if not text:
        return None
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        return None
    return when if when.tzinfo else when.replace(tzinfo=timezone.utc)


class SyncService:
    """Sync for one unlocked store, as the desktop uses it. Not thread-safe: one caller."""

    def __init__(self, store: Store, paths: AppPaths, *, retry: RetryPolicy | None = None,
                 profiles: dict[str, SharingProfile] | None = None) -> None:
        self.store = store
        self.paths = paths
        self.retry = retry
        self._profiles = profiles
        self.ledger = Ledger(store)

    # -- doing ------------------------------------------------------------------------

    def run(self, progress: Progress | None = None) -> SyncResult:
        """One sync run. Failures a person can meet are in the result, never raised.

        Raises :class:`~sync.errors.NotEnrolled` when there is no controller or token.
        When the controller revokes this laptop the store is closed and the profile purged;
        when it asks for a lock the store is closed. The result says which.
        """
        report = progress or (lambda stage, done, total: None)

        def on_progress(stage: Stage, done: int, total: int) -> None:
            report(STAGE_WORDS.get(stage, stage.value), done, total)

        client = open_client(self.store, self.paths, self.retry)
        try:
            engine = SyncEngine(self.store, client, progress=on_progress,
                                purge=lambda: purge_profile(self.paths, self.store),
                                lock=self.store.close, profiles=self._profiles)
            result = engine.run()
        finally:
            client.close()
        if result.outcome in (RunOutcome.OK, RunOutcome.PARTIAL) and self.store.db.is_open:
            self.store.set_meta(META_LAST_SUCCESS, datetime.now(timezone.utc).isoformat(timespec="seconds"))
        return result

    def enrol(self, controller_url: str, code: str) -> Enrolment:
        """Enrol this profile with ``code``; the token is kept where the profile says.

        Every failure is a :class:`~sync.errors.SyncError` whose words are about enrolling.
        """
        try:
            return enrol(self.store, self.paths, controller_url, code, retry=self.retry)
        except SyncError as exc:
            raise _enrolment_failure(exc) from None

    # -- reading ----------------------------------------------------------------------

    def is_enrolled(self) -> bool:
        return is_enrolled(self.store)

    def controller_url(self) -> str:
        return self.store.get_meta("sync.controller_url", "")

    def last_outcome(self) -> RunOutcome | None:
        """How the last run ended, or None before the first."""
        last = self.ledger.last_run()
        if last.at is None or not last.outcome:
            return None
        try:
            return RunOutcome(last.outcome)
        except ValueError:
            return None

    def is_online(self) -> bool | None:
        """Whether the last run reached the controller (None before the first run)."""
        outcome = self.last_outcome()
        return None if outcome is None else outcome is not RunOutcome.OFFLINE

    def last_sync_at(self) -> datetime | None:
        """When a run last reached the controller and finished (None if never)."""
        return _parse_time(self.store.get_meta(META_LAST_SUCCESS, ""))

    def waiting(self) -> int:
        """Items waiting to be sent: outbox rows and one-off shares not yet sent."""
        return self.store.outbox_count("pending") + len(self.ledger.pending_one_offs())

    def quarantined(self) -> list[ProblemItem]:
        """Every item set aside by the controller and not yet resolved, oldest first."""
        items = self.ledger.quarantined()
        refs = self._refs({q.participant_id for q in items})
        return [ProblemItem(q.participant_id, refs.get(q.participant_id, ""), q.record_type, q.record_id,
                            q.version, self._recipient_name(q.recipient), q.code, q.reason,
                            q.quarantined_at) for q in items]

    def quarantined_count(self) -> int:
        return int(self.store.db.scalar("SELECT count(*) FROM quarantine WHERE resolved_at IS NULL"))

    def sharing_history(self, participant_id: str) -> list[SharedItem]:
        """What each recipient received about a participant, oldest first."""
        return [SharedItem(e, self._recipient_name(e.recipient))
                for e in self.ledger.sharing_history(participant_id)]

    def referral_mark(self) -> int:
        """A point in the audit log to ask :meth:`new_referrals_since` about later."""
        return int(self.store.db.scalar("SELECT coalesce(max(seq), 0) FROM audit_log"))

    def new_referrals_since(self, mark: int) -> list[NewReferral]:
        """Participants created from referrals pulled after ``mark`` (:meth:`referral_mark`)."""
        rows = self.store.db.query(
            "SELECT a.participant_id, a.record_id, coalesce(p.participant_ref, '') FROM audit_log a"
            " LEFT JOIN participant p ON p.id = a.participant_id"
            " WHERE a.seq > ? AND a.action = 'referral_pulled' ORDER BY a.seq", (mark,))
        return [NewReferral(str(r[0]), str(r[2]), str(r[1])) for r in rows]

    # -- helpers ----------------------------------------------------------------------

    def _refs(self, participant_ids: set[str]) -> dict[str, str]:
        refs: dict[str, str] = {}
        for pid in participant_ids:
            participant = self.store.participants.find(pid)
            if participant is not None:
                refs[pid] = participant.participant_ref
        return refs

    def _profiles_by_id(self) -> dict[str, SharingProfile]:
        if self._profiles is None:
            try:
                self._profiles = dict(load_sharing_profiles())
            except KeyworkerError:
                self._profiles = {}
        return self._profiles

    def _recipient_name(self, profile_id: str) -> str:
        profile = self._profiles_by_id().get(profile_id)
        return profile.recipient if profile is not None else profile_id

def make_service(store: Store, paths: AppPaths, *, retry: RetryPolicy | None = None) -> SyncService:
    """The sync service for an unlocked store and the profile folder it came from."""
    return SyncService(store, paths, retry=retry)
