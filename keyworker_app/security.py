"""Keys: the data key, the key-encryption key and the ways it is wrapped (DESIGN §3).

* The database is opened with a random 256-bit **data key**.
* The data key is wrapped with AES-256-GCM by a **key-encryption key** (KEK) made from the
  keyworker's passphrase through Argon2id, mixed (HKDF) with a **device secret** kept in
  the OS credential store, so a copied profile cannot be opened elsewhere.
* An optional organisation **recovery public key** (X25519) also wraps the data key, so a
  forgotten passphrase or a lost device secret does not destroy unsynced work.

Changing the passphrase rewraps the data key; the database is never re-encrypted.
"""

from __future__ import annotations

import base64
import enum
import os
import time
from dataclasses import asdict, dataclass
from typing import Any, Callable, Mapping

from argon2.low_level import Type, hash_secret_raw
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric.x25519 import X25519PrivateKey, X25519PublicKey
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import KeyringUnavailable, RecoveryKeyError, WeakPassphrase
from .timing import fastest_run

DATA_KEY_BYTES = 32
KEYRING_SERVICE = "keyworker"

# A short deny list of passwords people really use; the rules below catch the rest of the
# obvious ones (one repeated character, a run of the keyboard, the keyworker's own id).
COMMON_PASSPHRASES = frozenset(
    {
        "password", "password1", "password123", "passw0rd", "qwerty", "qwertyuiop",
        "123456789012", "1234567890", "letmein", "welcome", "welcome1", "iloveyou",
        "admin", "administrator", "changeme", "trustno1", "monkey", "dragon", "football",
        "baseball", "sunshine", "princess", "starwars", "whatever", "superman",
        "keyworker", "workingwell", "manchester", "lancaster", "summer2024", "winter2024",
        "passwordpassword", "qwertyqwerty", "abcdefghijkl", "abc123abc123",
        "correcthorsebatterystaple", "iloveyou1234", "password1234", "welcome12345",
    }
)
KEYBOARD_RUNS = ("qwertyuiop", "asdfghjkl", "zxcvbnm", "1234567890", "abcdefghijklmnopqrstuvwxyz")
MIN_PASSPHRASE_LENGTH = 12


def check_passphrase(passphrase: str, keyworker_id: str = "") -> None:
    """Raise :class:`WeakPassphrase` unless ``passphrase`` meets the organisation's rules."""
    if len(passphrase) < MIN_PASSPHRASE_LENGTH:
        raise WeakPassphrase(f"it needs at least {MIN_PASSPHRASE_LENGTH} characters")
    folded = "".join(ch for ch in passphrase.lower() if not ch.isspace())
    if folded in COMMON_PASSPHRASES or passphrase.lower() in COMMON_PASSPHRASES:
        raise WeakPassphrase("it is on the list of commonly used passwords")
    if len(set(folded)) <= 3:
        raise WeakPassphrase("it repeats the same few characters")
    if any(folded in run or run in folded for run in KEYBOARD_RUNS if len(folded) >= 6):
        raise WeakPassphrase("it is a run of keys or letters in order")
    if keyworker_id and keyworker_id.lower() in folded:
        raise WeakPassphrase("it contains your keyworker id")


def passphrase_strength(passphrase: str) -> int:
    """A rough 0–4 score for feedback while typing (4 is strong). Not a security check."""
    try:
        check_passphrase(passphrase)
    except WeakPassphrase:
        return 0 if len(passphrase) < 8 else 1
    classes = sum(
        any(test(ch) for ch in passphrase)
        for test in (str.islower, str.isupper, str.isdigit, lambda c: not c.isalnum())
    )
    return min(4, 2 + (len(passphrase) >= 16) + (classes >= 3))


def b64e(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64d(text: str) -> bytes:
    return base64.b64decode(text.encode("ascii"), validate=True)


# --- Argon2id ---------------------------------------------------------------------------

@dataclass(frozen=True)
class KdfParams:
    """Argon2id parameters, stored with the profile so unlocking reuses them exactly."""

    salt: bytes
    time_cost: int
    memory_kib: int
    parallelism: int = 2
    hash_len: int = 32
    algorithm: str = "argon2id"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["salt"] = b64e(self.salt)
        return data

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> KdfParams:
        if data.get("algorithm") != "argon2id":
            raise ValueError("unknown key derivation algorithm")
        params = cls(
            salt=b64d(str(data["salt"])),
            time_cost=int(data["time_cost"]),
            memory_kib=int(data["memory_kib"]),
            parallelism=int(data["parallelism"]),
            hash_len=int(data["hash_len"]),
        )
        if not (1 <= params.time_cost <= 100 and 8 <= params.memory_kib <= 4 * 1024 * 1024
                and 1 <= params.parallelism <= 16 and params.hash_len == 32
                and len(params.salt) >= 16):
            raise ValueError("key derivation parameters out of range")
        return params


def derive_passphrase_key(passphrase: str, params: KdfParams) -> bytes:
    return hash_secret_raw(
        passphrase.encode("utf-8"),
        params.salt,
        time_cost=params.time_cost,
        memory_cost=params.memory_kib,
        parallelism=params.parallelism,
        hash_len=params.hash_len,
        type=Type.ID,
    )


def calibrate_kdf(
    target_seconds: float = 0.5,
    memory_kib: int = 64 * 1024,
    parallelism: int = 2,
    clock: Callable[[], float] = time.perf_counter,
) -> KdfParams:
    """Pick Argon2id ``time_cost`` so that one derivation takes about ``target_seconds``.

    Memory is fixed (memory hardness is what defeats GPUs); passes are scaled to the
    machine. One pass is timed three times and the fastest kept, since a busy moment
    (another program, the first touch of fresh memory) only ever makes a pass look slower;
    the count is then scaled and clamped to 1..100.
    """
    probe = KdfParams(salt=os.urandom(16), time_cost=1, memory_kib=memory_kib,
                      parallelism=parallelism)
    one_pass = max(fastest_run(lambda: derive_passphrase_key("calibration", probe), 3, clock), 1e-4)
    passes = max(1, min(100, round(target_seconds / one_pass)))
    chosen = KdfParams(salt=os.urandom(16), time_cost=passes, memory_kib=memory_kib,
                       parallelism=parallelism)
    # Check the choice at full length: passes do not always scale linearly (caches,
    # memory bandwidth), and one correction brings the real unlock near the target. The
    # faster of two checks is kept, for the same reason as above: a busy moment during a
    # single check would otherwise cut the passes and leave every later unlock too quick.
    took = max(fastest_run(lambda: derive_passphrase_key("calibration", chosen), 2, clock), 1e-4)
    corrected = max(1, min(100, round(passes * target_seconds / took)))
    if corrected == passes:
        return chosen
    return KdfParams(salt=os.urandom(16), time_cost=corrected, memory_kib=memory_kib,
                     parallelism=parallelism)


def key_encryption_key(passphrase_key: bytes, device_secret: bytes | None) -> bytes:
    """Mix the passphrase key with the device secret (empty when passphrase-only)."""
    return HKDF(
        algorithm=hashes.SHA256(), length=32, salt=None, info=b"keyworker kek v1"
    ).derive(passphrase_key + (device_secret or b""))


# --- Wrapping ---------------------------------------------------------------------------

@dataclass(frozen=True)
class WrappedKey:
    nonce: bytes
    ciphertext: bytes

    def to_json(self) -> dict[str, str]:
        return {"alg": "AES-256-GCM", "nonce": b64e(self.nonce), "ciphertext": b64e(self.ciphertext)}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> WrappedKey:
        if data.get("alg") != "AES-256-GCM":
            raise ValueError("unknown key wrapping algorithm")
        return cls(nonce=b64d(str(data["nonce"])), ciphertext=b64d(str(data["ciphertext"])))


def wrap_key(kek: bytes, data_key: bytes, aad: bytes) -> WrappedKey:
    nonce = os.urandom(12)
    return WrappedKey(nonce, AESGCM(kek).encrypt(nonce, data_key, aad))


def unwrap_key(kek: bytes, wrapped: WrappedKey, aad: bytes) -> bytes | None:
    """The data key, or None when the KEK (passphrase or device secret) is wrong."""
    try:
        return AESGCM(kek).decrypt(wrapped.nonce, wrapped.ciphertext, aad)
    except InvalidTag:
        return None


# --- Organisation recovery key (X25519 sealed box) ----------------------------------------

RECOVERY_ALG = "X25519-HKDF-SHA256-AES-256-GCM"


def generate_recovery_keypair() -> tuple[bytes, bytes]:
    """A new organisation recovery key pair as (private PEM, public raw 32 bytes)."""
    private = X25519PrivateKey.generate()
    pem = private.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    public = private.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    return pem, public


def _recovery_kek(shared: bytes, ephemeral_public: bytes, recipient_public: bytes) -> bytes:
    return HKDF(algorithm=hashes.SHA256(), length=32, salt=ephemeral_public + recipient_public,
                info=b"keyworker recovery v1").derive(shared)


def seal_for_recovery(recipient_public: bytes, data_key: bytes, aad: bytes) -> dict[str, str]:
    ephemeral = X25519PrivateKey.generate()
    eph_pub = ephemeral.public_key().public_bytes(
        serialization.Encoding.Raw, serialization.PublicFormat.Raw
    )
    shared = ephemeral.exchange(X25519PublicKey.from_public_bytes(recipient_public))
    wrapped = wrap_key(_recovery_kek(shared, eph_pub, recipient_public), data_key, aad)
    return {"alg": RECOVERY_ALG, "public_key": b64e(recipient_public),
            "ephemeral_public": b64e(eph_pub), **{k: v for k, v in wrapped.to_json().items() if k != "alg"}}


def open_recovery(sealed: Mapping[str, Any], private_pem: bytes, aad: bytes) -> bytes:
    """The data key from a recovery wrap; :class:`RecoveryKeyError` if the key does not fit."""
    try:
        private = serialization.load_pem_private_key(private_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise RecoveryKeyError(message="That file is not a recovery key.") from exc
    if not isinstance(private, X25519PrivateKey) or sealed.get("alg") != RECOVERY_ALG:
        raise RecoveryKeyError(message="That file is not a Keyworker recovery key.")
    recipient_public = b64d(str(sealed["public_key"]))
    eph_pub = b64d(str(sealed["ephemeral_public"]))
    shared = private.exchange(X25519PublicKey.from_public_bytes(eph_pub))
    wrapped = WrappedKey(nonce=b64d(str(sealed["nonce"])), ciphertext=b64d(str(sealed["ciphertext"])))
    key = unwrap_key(_recovery_kek(shared, eph_pub, recipient_public), wrapped, aad)
    if key is None:
        raise RecoveryKeyError()
    return key


# --- The OS credential store -----------------------------------------------------------

class KeyringPolicy(enum.StrEnum):
    """What the organisation allows when the computer has no secure credential store."""

    REQUIRED = "required"    # refuse to create or open a profile without one
    PREFERRED = "preferred"  # warn plainly, then protect with the passphrase alone


# Backends that store nothing or store it in plain text: never used for the device secret.
INSECURE_BACKENDS = (
    "keyring.backends.fail.",
    "keyring.backends.null.",
    "keyrings.alt.file.PlaintextKeyring",
    "keyrings.alt.",
)


@dataclass(frozen=True)
class KeyringStatus:
    backend: str
    secure: bool

    @property
    def warning(self) -> str:
        if self.secure:
            return ""
        return (
            "This computer has no secure credential store, so your profile is protected by "
            "your passphrase alone. Anyone with a copy of the files and your passphrase "
            "could open it. Tell your IT team."
        )


def keyring_status() -> KeyringStatus:
    import keyring

    backend = keyring.get_keyring()
    name = f"{type(backend).__module__}.{type(backend).__qualname__}"
    secure = not any(name.startswith(prefix) for prefix in INSECURE_BACKENDS)
    try:
        secure = secure and float(getattr(backend, "priority", 1)) > 0
    except (TypeError, ValueError):
        secure = False
    return KeyringStatus(backend=name, secure=secure)


def require_keyring(policy: KeyringPolicy) -> KeyringStatus:
    status = keyring_status()
    if not status.secure and policy is KeyringPolicy.REQUIRED:
        raise KeyringUnavailable()
    return status


def store_device_secret(entry: str) -> bytes:
    import keyring

    secret = os.urandom(32)
    keyring.set_password(KEYRING_SERVICE, entry, b64e(secret))
    return secret


def load_device_secret(entry: str) -> bytes | None:
    import keyring
    from keyring.errors import KeyringError

    try:
        value = keyring.get_password(KEYRING_SERVICE, entry)
    except KeyringError:
        return None
    if value is None:
        return None
    try:
        return b64d(value)
    except ValueError:
        return None
