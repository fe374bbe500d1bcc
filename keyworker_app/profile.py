"""A keyworker profile: its key file, unlocking, passphrase change and recovery (DESIGN §3).

The key file (``profile.json``) sits beside the database and holds no personal data: the
wrapped data key, the Argon2id parameters, the keyring policy and backend the profile was
created with, the cipher settings, and the unlock-failure counter. Failed unlocks are kept
there until the next successful unlock moves them into the encrypted audit log, so every
attempt is audited.

Nothing here ever creates a database where one exists: every failure to open is a typed
error and the files are left exactly as they were.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import OrganisationConfig, load_config
from .errors import (
    DamagedProfile, DeviceSecretMissing, IntegrityProblem, LockedOut, ProfileExists, ProfileNotFound,
    RecoveryKeyError, UnlockTooSoon, WrongPassphrase,
)
from .paths import AppPaths
from .security import (
    KdfParams, KeyringPolicy, KeyringStatus, WrappedKey, b64d, calibrate_kdf, check_passphrase,
    derive_passphrase_key, key_encryption_key, load_device_secret, open_recovery,
    require_keyring, seal_for_recovery, store_device_secret, unwrap_key, wrap_key,
)
from .store.database import CipherSettings, Database, DatabaseError
from .store.store import Store

KEYFILE_FORMAT = 1
MAX_DELAY_SECONDS = 300.0

Clock = Callable[[], float]


def _atomic_write_json(path: Path, data: dict[str, Any]) -> None:
    """Write beside the target and rename over it, so a crash never leaves half a key file."""
    fd, tmp = tempfile.mkstemp(prefix=".profile-", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump(data, handle, indent=2, sort_keys=True)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o600)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


@dataclass
class KeyFile:
    """The parsed ``profile.json``."""

    data: dict[str, Any]

    @property
    def profile_id(self) -> str:
        return str(self.data["profile_id"])

    @property
    def keyworker_id(self) -> str:
        return str(self.data["keyworker_id"])

    @property
    def programme(self) -> str:
        return str(self.data["programme"])

    @property
    def kdf(self) -> KdfParams:
        return KdfParams.from_json(self.data["kdf"])

    @property
    def wrapped(self) -> WrappedKey:
        return WrappedKey.from_json(self.data["wrapped_key"])

    @property
    def cipher(self) -> CipherSettings:
        return CipherSettings(**self.data["cipher"])

    @property
    def uses_device_secret(self) -> bool:
        return bool(self.data["keyring"]["device_secret"])

    @property
    def keyring_entry(self) -> str:
        return f"profile:{self.profile_id}"

    @property
    def unlock(self) -> dict[str, Any]:
        return self.data["unlock"]  # type: ignore[no-any-return]

    def aad(self) -> bytes:
        """What the key wrap authenticates: the profile's identity and KDF parameters.

        Changing any of them in the file makes the wrap fail instead of quietly weakening it.
        """
        bound = {"profile_id": self.profile_id, "kdf": self.data["kdf"],
                 "device_secret": self.uses_device_secret}
        return json.dumps(bound, sort_keys=True, separators=(",", ":")).encode()

    @classmethod
    def read(cls, path: Path) -> KeyFile:
        try:
            text = path.read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ProfileNotFound() from None
        try:
            data = json.loads(text)
            keyfile = cls(data)
            if data.get("format") != KEYFILE_FORMAT:
                raise ValueError("unknown key file format")
            keyfile.kdf, keyfile.wrapped, keyfile.cipher  # noqa: B018 - parse every part now
            uuid.UUID(keyfile.profile_id)
            int(keyfile.unlock["failures"])
        except (ValueError, KeyError, TypeError, AttributeError):
            raise DamagedProfile("the key file profile.json is not readable") from None
        return keyfile

    def write(self, path: Path) -> None:
        _atomic_write_json(path, self.data)


@dataclass(frozen=True)
class ProfileInfo:
    """What a person may see about a locked profile (no personal data)."""

    profile_id: str
    keyworker_id: str
    programme: str
    keyring_policy: str
    keyring_backend: str
    keyring_secure: bool
    has_recovery_key: bool
    failures: int
    locked_out: bool


class Profile:
    """A profile on disk. Use :meth:`create` or :meth:`open`, then :meth:`unlock`."""

    def __init__(self, paths: AppPaths, config: OrganisationConfig, clock: Clock = time.time) -> None:
        self.paths = paths
        self.config = config
        self.clock = clock

    @classmethod
    def at(cls, paths: AppPaths, clock: Clock = time.time) -> Profile:
        return cls(paths, load_config(paths.org_config), clock)

    def exists(self) -> bool:
        return self.paths.keyfile.exists() or self.paths.database.exists()

    def info(self) -> ProfileInfo:
        kf = KeyFile.read(self.paths.keyfile)
        ring = kf.data["keyring"]
        return ProfileInfo(kf.profile_id, kf.keyworker_id, kf.programme, ring["policy"],
                           ring["backend"], bool(ring["secure"]), kf.data.get("recovery") is not None,
                           int(kf.unlock["failures"]), bool(kf.unlock["locked_out"]))

    # --- creating -------------------------------------------------------------------

    def create(self, keyworker_id: str, programme: str, passphrase: str,
               kdf: KdfParams | None = None) -> tuple[Store, KeyringStatus]:
        """A new profile with an empty, migrated store. Refuses to touch an existing one."""
        check_passphrase(passphrase, keyworker_id)
        if self.exists():
            raise ProfileExists()
        status = require_keyring(self.config.keyring_policy)
        self.paths.ensure()
        profile_id = str(uuid.uuid4())
        kdf = kdf or calibrate_kdf(self.config.kdf_target_seconds, self.config.kdf_memory_kib)
        data_key = os.urandom(32)
        cipher = CipherSettings.for_this_machine()
        keyfile = KeyFile({
            "format": KEYFILE_FORMAT,
            "profile_id": profile_id,
            "keyworker_id": keyworker_id,
            "programme": programme,
            "created_at": datetime.now(timezone.utc).isoformat(),
            "created_by_app": __version__,
            "kdf": kdf.to_json(),
            "keyring": {"policy": str(self.config.keyring_policy), "backend": status.backend,
                        "secure": status.secure, "device_secret": status.secure},
            "cipher": cipher.to_json(),
            "unlock": {"failures": 0, "last_failure_at": None, "locked_out": False},
            "pending_audit": [],
            "recovery": None,
        })
        device_secret = store_device_secret(keyfile.keyring_entry) if status.secure else None
        kek = key_encryption_key(derive_passphrase_key(passphrase, kdf), device_secret)
        keyfile.data["wrapped_key"] = wrap_key(kek, data_key, keyfile.aad()).to_json()
        recovery_public = self.config.recovery_key_bytes
        if recovery_public:
            keyfile.data["recovery"] = seal_for_recovery(recovery_public, data_key, keyfile.aad())
        try:
            db = Database.connect_encrypted(self.paths.database, data_key, cipher, create=True)
        except FileExistsError:
            raise ProfileExists() from None
        try:
            db.migrate()
            store = Store(db, keyworker_id)
            store.set_meta("profile_id", profile_id)
            store.audit("profile_created", detail={
                "keyring_backend": status.backend, "keyring_secure": status.secure,
                "keyring_policy": str(self.config.keyring_policy),
                "recovery_key": recovery_public is not None,
                "kdf_time_cost": kdf.time_cost, "kdf_memory_kib": kdf.memory_kib})
            keyfile.write(self.paths.keyfile)
        except BaseException:
            # Only files this call created are removed: nothing existed before it.
            db.close()
            for leftover in (self.paths.database, self.paths.keyfile,
                             Path(f"{self.paths.database}-wal"), Path(f"{self.paths.database}-shm")):
                leftover.unlink(missing_ok=True)
            raise
        return store, status

    # --- unlocking ------------------------------------------------------------------

    def delay_before_next_try(self, failures: int) -> float:
        """Seconds that must pass after the last failure before another try is allowed."""
        extra = failures - self.config.unlock_delay_after
        if extra < 0:
            return 0.0
        return float(min(MAX_DELAY_SECONDS, self.config.unlock_base_delay_seconds * (2 ** extra)))

    def unlock(self, passphrase: str, *, check: bool = False) -> Store:
        """The open store, or a typed error saying exactly why not.

        With ``check`` the encrypted pages and structure are verified before anything is
        written, and :class:`IntegrityProblem` lists every damaged page.
        """
        kf = KeyFile.read(self.paths.keyfile)
        if not self.paths.database.exists():
            raise DamagedProfile("the database file is missing")
        state = kf.unlock
        if state["locked_out"]:
            self._note_failure(kf, "unlock_refused_locked_out", count=False)
            raise LockedOut()
        failures = int(state["failures"])
        wait = self.delay_before_next_try(failures)
        if wait and state["last_failure_at"] is not None:
            remaining = float(state["last_failure_at"]) + wait - self.clock()
            if remaining > 0:
                self._note_failure(kf, "unlock_refused_too_soon", count=False)
                raise UnlockTooSoon(remaining)
        device_secret: bytes | None = None
        if kf.uses_device_secret:
            device_secret = load_device_secret(kf.keyring_entry)
            if device_secret is None:
                self._note_failure(kf, "unlock_failed_device_secret_missing", count=False)
                raise DeviceSecretMissing()
        kek = key_encryption_key(derive_passphrase_key(passphrase, kf.kdf), device_secret)
        data_key = unwrap_key(kek, kf.wrapped, kf.aad())
        if data_key is None:
            failures = self._note_failure(kf, "unlock_failed_wrong_passphrase")
            if kf.unlock["locked_out"]:
                raise LockedOut()
            left = self.config.unlock_lockout_after - failures
            raise WrongPassphrase(attempts_left=left, delay_seconds=self.delay_before_next_try(failures))
        return self._open(kf, data_key, "unlocked", check=check)

    def _open(self, kf: KeyFile, data_key: bytes, event: str, check: bool = False) -> Store:
        db = Database.connect_encrypted(self.paths.database, data_key, kf.cipher, create=False)
        try:
            if check:
                problems = db.integrity_problems()
                if problems:
                    raise IntegrityProblem(problems)
            db.migrate()
            store = Store(db, kf.keyworker_id)
            if store.get_meta("profile_id") != kf.profile_id:
                raise DamagedProfile("the database belongs to another profile")
            for pending in kf.data.get("pending_audit", []):
                store.audit(str(pending["event"]), at=str(pending["at"]))
            store.audit(event, detail={"failures_before": int(kf.unlock["failures"])})
        except DatabaseError as exc:
            db.close()
            # The key is right (the wrap authenticated it), so a page that will not
            # decrypt or parse is damage, not a wrong passphrase.
            raise DamagedProfile("a page of the database failed its check; run 'keyworker-app check'") from exc
        except BaseException:
            db.close()
            raise
        clean = {"failures": 0, "last_failure_at": None, "locked_out": False}
        if kf.data.get("pending_audit") or kf.data["unlock"] != clean:
            # Failed attempts are now in the audit log: clear them. An ordinary unlock with
            # nothing to clear leaves the key file alone (no rewrite and fsync at start-up).
            kf.data["pending_audit"] = []
            kf.data["unlock"] = clean
            kf.write(self.paths.keyfile)
        return store

    def _note_failure(self, kf: KeyFile, event: str, count: bool = True) -> int:
        state = kf.unlock
        if count:
            state["failures"] = int(state["failures"]) + 1
            state["last_failure_at"] = self.clock()
            if state["failures"] >= self.config.unlock_lockout_after:
                state["locked_out"] = True
        kf.data.setdefault("pending_audit", []).append(
            {"event": event, "at": datetime.fromtimestamp(self.clock(), timezone.utc).isoformat()})
        kf.write(self.paths.keyfile)
        return int(state["failures"])

    # --- changing the passphrase and recovering -------------------------------------

    def change_passphrase(self, store: Store, old: str, new: str) -> None:
        """Rewrap the data key under ``new``; the database itself is not touched."""
        kf = KeyFile.read(self.paths.keyfile)
        check_passphrase(new, kf.keyworker_id)
        device_secret = load_device_secret(kf.keyring_entry) if kf.uses_device_secret else None
        if kf.uses_device_secret and device_secret is None:
            raise DeviceSecretMissing()
        old_kek = key_encryption_key(derive_passphrase_key(old, kf.kdf), device_secret)
        data_key = unwrap_key(old_kek, kf.wrapped, kf.aad())
        if data_key is None:
            raise WrongPassphrase(attempts_left=self.config.unlock_lockout_after - int(kf.unlock["failures"]))
        self._rewrap(kf, data_key, new, device_secret)
        store.audit("passphrase_changed")

    def recover(self, recovery_private_pem: bytes, new_passphrase: str) -> Store:
        """Open with the organisation recovery key, clear a lock-out and set a new passphrase.

        The device secret is renewed too, so recovery also works when the credential store
        was reset or the profile moved to a replacement laptop.
        """
        kf = KeyFile.read(self.paths.keyfile)
        check_passphrase(new_passphrase, kf.keyworker_id)
        sealed = kf.data.get("recovery")
        if not sealed:
            raise RecoveryKeyError(message="This profile was created without an organisation recovery key.")
        data_key = open_recovery(sealed, recovery_private_pem, kf.aad())
        status = require_keyring(KeyringPolicy(kf.data["keyring"]["policy"]))
        device_secret = store_device_secret(kf.keyring_entry) if status.secure else None
        kf.data["keyring"].update({"backend": status.backend, "secure": status.secure,
                                   "device_secret": status.secure})
        # The AAD covers the device-secret flag, so the recovery wrap is renewed as well.
        self._rewrap(kf, data_key, new_passphrase, device_secret)
        return self._open(kf, data_key, "recovered_with_organisation_key")

    def _rewrap(self, kf: KeyFile, data_key: bytes, passphrase: str, device_secret: bytes | None) -> None:
        # Same Argon2id cost the profile was calibrated with, fresh salt.
        old = kf.kdf
        kdf = KdfParams(os.urandom(16), old.time_cost, old.memory_kib, old.parallelism)
        kf.data["kdf"] = kdf.to_json()
        kek = key_encryption_key(derive_passphrase_key(passphrase, kdf), device_secret)
        kf.data["wrapped_key"] = wrap_key(kek, data_key, kf.aad()).to_json()
        if kf.data.get("recovery"):
            public = b64d(kf.data["recovery"]["public_key"])
            kf.data["recovery"] = seal_for_recovery(public, data_key, kf.aad())
        kf.write(self.paths.keyfile)
