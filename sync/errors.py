"""Every way a sync or an enrolment can stop, as a typed error with a plain message.

Each is a :class:`keyworker_app.errors.KeyworkerError`, so the command line turns it into
a message, a next step and an exit code, and the UI shows the same words. None of them
ever carries a record's value: only ids, counts, codes and the controller's own message
(which, by the controller's contract, names fields and ids only).
"""

from __future__ import annotations

from keyworker_app.errors import KeyworkerError


class SyncError(KeyworkerError):
    """Base for sync failures (exit code 20 and up, so they never clash with the core's)."""

    exit_code = 20
    message = "The sync did not finish."


class NotEnrolled(SyncError):
    exit_code = 21
    message = "This laptop is not enrolled with a controller, so there is nowhere to sync to."
    next_step = "Enrol it with 'keyworker-app enrol --controller URL --code CODE' using the code from your manager."


class InsecureControllerUrl(SyncError):
    exit_code = 22
    message = "That controller address is not allowed."
    next_step = "Use an https:// address. Plain http:// is only allowed to this computer (localhost) for testing."


class Offline(SyncError):
    exit_code = 23
    message = "The controller could not be reached, so nothing was sent or received."
    next_step = "Your work is saved on this laptop. Sync again when you are back online."


class ControllerCertificateError(SyncError):
    exit_code = 24
    message = "The controller's certificate could not be trusted, so nothing was sent."
    next_step = (
        "Do not carry on over this network. Tell your IT team: the address may be wrong, or "
        "someone may be intercepting the connection."
    )


class AuthenticationFailed(SyncError):
    """The controller refused this laptop's token (expired, unknown or missing)."""

    exit_code = 25
    message = "The controller did not accept this laptop's access token."
    next_step = "Ask your manager for a new enrolment code and enrol this laptop again."

    def __init__(self, code: str, message: str | None = None) -> None:
        self.code = code
        super().__init__(message=message or self.message)


class DeviceRevoked(SyncError):
    """The controller says this laptop was revoked: it must lock and purge its data."""

    exit_code = 26
    message = "This laptop's access was revoked by your organisation."
    next_step = "The profile has been locked and its data removed from this laptop. Contact your manager."


class ControllerBusy(SyncError):
    exit_code = 27
    message = "The controller is busy and asked us to try again later."
    next_step = "Nothing was lost. Sync again in a few minutes."


class ControllerError(SyncError):
    """The controller failed, or answered something this app does not understand."""

    exit_code = 27
    message = "The controller had a problem, so the sync stopped part way. Nothing was lost."
    next_step = "Sync again later. If it keeps happening, tell your IT team."


class MalformedResponse(ControllerError):
    """A response that is not what the protocol says: nothing from it was applied."""

    def __init__(self, what: str) -> None:
        self.what = what
        super().__init__(
            message=f"The controller sent an answer this app cannot use ({what}). "
            "Nothing from it was applied."
        )


class RequestRefused(ControllerError):
    """A 4xx answer other than authentication, e.g. an invalid request."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status = status
        self.code = code
        self.detail = message
        super().__init__(message=f"The controller refused the request ({status} {code}): {message}")


class EnrolmentRefused(SyncError):
    """The controller refused the one-time code; its message says why."""

    exit_code = 28
    next_step = "Check the code and your keyworker id, or ask your manager for a new code."

    def __init__(self, code: str, message: str) -> None:
        self.code = code
        super().__init__(message=message)


class DeviceLocked(SyncError):
    """The controller asked this laptop to lock (its data is kept)."""

    exit_code = 29
    message = "Your organisation asked this laptop to lock."
    next_step = "Unlock it again with your passphrase when your manager says it is safe."
