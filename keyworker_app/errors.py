"""Every failure a person can meet, as a typed exception with a plain message.

Each error carries ``message`` (what happened, in plain English) and ``next_step`` (what
to do about it), and an ``exit_code`` the command line uses. None of them ever carries
personal data: they are shown on screen and may be written to logs.
"""

from __future__ import annotations

import json
from typing import Any


class KeyworkerError(Exception):
    """Base for expected failures. ``str(err)`` is the message and the next step."""

    exit_code: int = 1
    message: str = "Something went wrong."
    next_step: str = ""

    def __init__(self, message: str | None = None, next_step: str | None = None) -> None:
        if message is not None:
            self.message = message
        if next_step is not None:
            self.next_step = next_step
        super().__init__(self.message)

    def __str__(self) -> str:
        return f"{self.message} {self.next_step}".strip()


# --- Profiles and unlocking -------------------------------------------------------------

class ProfileError(KeyworkerError):
    exit_code = 3


class ProfileNotFound(ProfileError):
    message = "There is no keyworker profile in this folder."
    next_step = "Create one with 'keyworker-app init', or choose the folder that holds your profile."


class ProfileExists(ProfileError):
    message = "A keyworker profile already exists in this folder."
    next_step = (
        "Nothing was changed. Unlock the existing profile, or choose an empty folder "
        "for a new one."
    )


class WrongPassphrase(ProfileError):
    exit_code = 4
    message = "That passphrase is not right."
    next_step = "Check Caps Lock and try again."

    def __init__(self, attempts_left: int, delay_seconds: float = 0.0) -> None:
        self.attempts_left = attempts_left
        self.delay_seconds = delay_seconds
        hint = f" You have {attempts_left} more tries before the profile locks."
        if delay_seconds:
            hint += f" Wait {delay_seconds:.0f} seconds before the next try."
        super().__init__(next_step="Check Caps Lock and try again." + hint)


class UnlockTooSoon(ProfileError):
    exit_code = 4
    message = "Too many wrong passphrases in a row."

    def __init__(self, wait_seconds: float) -> None:
        self.wait_seconds = wait_seconds
        super().__init__(next_step=f"Wait {wait_seconds:.0f} seconds, then try again.")


class LockedOut(ProfileError):
    exit_code = 5
    message = "This profile is locked after too many wrong passphrases."
    next_step = (
        "Your data is safe. Ask your IT team or data protection officer to unlock it "
        "with the organisation recovery key ('keyworker-app recover')."
    )


class DeviceSecretMissing(ProfileError):
    exit_code = 6
    message = (
        "This profile can only be opened on the laptop and user account that created it: "
        "its device key is not in this account's credential store."
    )
    next_step = (
        "Open it from your own login on your own laptop. If the credential store was reset, "
        "your IT team can open it with the organisation recovery key."
    )


class KeyringUnavailable(ProfileError):
    exit_code = 6
    message = "This computer has no secure credential store, and your organisation requires one."
    next_step = (
        "Ask your IT team to enable the system keyring (for example GNOME Keyring or KWallet "
        "on Linux). Nothing was created or changed."
    )


class DamagedProfile(ProfileError):
    exit_code = 7
    message = "The profile's files are damaged or have been changed outside Keyworker."
    next_step = (
        "Do not delete anything. Contact your IT team: they can restore it from a backup "
        "or open it with the recovery key."
    )

    def __init__(self, detail: str = "") -> None:
        self.detail = detail
        msg = self.message + (f" ({detail})" if detail else "")
        super().__init__(message=msg)


class NewerDatabase(ProfileError):
    exit_code = 8
    message = "This profile was last used by a newer version of Keyworker."
    next_step = "Install the latest Keyworker, then open it again. Nothing was changed."

    def __init__(self, found: int, supported: int) -> None:
        self.found = found
        self.supported = supported
        super().__init__(
            message=f"{self.message} (schema {found}; this version understands up to {supported})."
        )


class WeakPassphrase(KeyworkerError):
    exit_code = 2
    message = "That passphrase is too easy to guess."

    def __init__(self, reason: str) -> None:
        super().__init__(message=f"That passphrase is too easy to guess: {reason}.",
                         next_step="Use at least 12 characters; a few unrelated words work well.")


class RecoveryKeyError(ProfileError):
    exit_code = 9
    message = "The recovery key does not open this profile."
    next_step = "Check that you have the organisation recovery key for this programme."


class ConfigError(KeyworkerError):
    exit_code = 2
    message = "The organisation settings file is not valid."


class DataFileError(KeyworkerError):
    """A data file from ``resources/`` that cannot be used; ``source`` names the file.

    Subclasses set ``kind`` (what the file is, as the message names it).
    """

    kind = "Data file"
    exit_code = 2
    next_step = "This is a fault in the app's data files: please report it to your IT team."

    def __init__(self, source: str, problem: str) -> None:
        self.source = source
        self.problem = problem
        super().__init__(message=f"{self.kind} {source}: {problem}.")

    @classmethod
    def read_json(cls, text: str, source: str) -> Any:
        """The JSON in a data file's ``text``, or this error naming the line that is wrong."""
        try:
            return json.loads(text)
        except json.JSONDecodeError as err:
            raise cls(source, f"not valid JSON (line {err.lineno})") from None

    @classmethod
    def read_object(cls, text: str, source: str) -> dict[str, Any]:
        """Like :meth:`read_json`, for a file that must hold one JSON object."""
        data = cls.read_json(text, source)
        if not isinstance(data, dict):
            raise cls(source, "the file must hold one JSON object")
        return data


# --- The store ---------------------------------------------------------------------------

class StoreError(KeyworkerError):
    exit_code = 10


class RecordNotFound(StoreError):
    message = "That record is not in this profile (it may have been deleted)."
    next_step = "Refresh the list and try again."


class VersionConflict(StoreError):
    message = "This record was changed somewhere else since you opened it."
    next_step = "Your changes were not saved over it. Reopen the record and make them again."


class StoreClosed(StoreError):
    message = "The profile is locked."
    next_step = "Unlock it to carry on."


class IntegrityProblem(StoreError):
    exit_code = 11
    message = "The profile check found a problem."

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(message="The profile check found a problem: " + "; ".join(problems))
