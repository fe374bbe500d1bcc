"""Locking and purging a revoked laptop's profile.

The order is chosen so that the data is unreadable as early as possible: the store is
closed, then the device secret and sync token leave the OS credential store, then the key
file (holding the only wrapped copies of the data key) is deleted, then the encrypted
database and its WAL files. Once the key file is gone the database cannot be decrypted,
even if deleting it failed (crypto-shredding).

The audit log lives in the database being destroyed, so nothing is written about the
purge anywhere: no log line names anything but the outcome, and the report holds file
names only.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from keyworker_app.errors import KeyworkerError
from keyworker_app.paths import AppPaths
from keyworker_app.profile import KeyFile
from keyworker_app.security import KEYRING_SERVICE
from keyworker_app.store.store import Store

log = logging.getLogger("keyworker.sync")


@dataclass(frozen=True)
class PurgeReport:
    removed: tuple[str, ...]
    problems: tuple[str, ...]


def token_entry(profile_id: str) -> str:
    """The credential-store entry that holds a profile's sync token (when it is there)."""
    return f"sync-token:{profile_id}"


def _forget_secrets(entries: list[str]) -> list[str]:
    import keyring
    from keyring.errors import KeyringError

    problems: list[str] = []
    for entry in entries:
        try:
            if keyring.get_password(KEYRING_SERVICE, entry) is not None:
                keyring.delete_password(KEYRING_SERVICE, entry)
        except KeyringError as exc:
            problems.append(f"credential store entry could not be removed ({type(exc).__name__})")
    return problems


def purge_profile(paths: AppPaths, store: Store | None = None) -> PurgeReport:
    """Close ``store`` and delete the profile's secrets and files. Never raises for a file."""
    entries: list[str] = []
    try:
        kf = KeyFile.read(paths.keyfile)
        entries = [kf.keyring_entry, token_entry(kf.profile_id)]
    except KeyworkerError:
        pass   # no readable key file: nothing in the credential store can be found by it
    if store is not None and store.db.is_open:
        store.close()
    problems = _forget_secrets(entries)
    removed: list[str] = []
    database = paths.database
    leftovers = [paths.keyfile, database, Path(f"{database}-wal"), Path(f"{database}-shm"),
                 Path(f"{database}-journal"), *paths.data.glob(".profile-*.tmp")]
    for path in leftovers:
        try:
            if path.exists():
                path.unlink()
                removed.append(path.name)
        except OSError as exc:
            problems.append(f"{path.name} could not be deleted ({exc.strerror})")
    log.warning("profile purged on the controller's instruction: %d files removed, %d problems",
                len(removed), len(problems))
    return PurgeReport(tuple(removed), tuple(problems))
