"""Organisation settings: what IT and the data protection officer decide, not the keyworker.

Read from ``organisation.json`` in the config folder; every key is optional and has the
default below. A file that is not valid JSON or holds a wrong value is refused with a
message naming the key, never ignored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError
from .security import KeyringPolicy, b64d


@dataclass(frozen=True)
class OrganisationConfig:
    keyring_policy: KeyringPolicy = KeyringPolicy.PREFERRED
    #: Base64 of the organisation's X25519 recovery public key (32 bytes), or "".
    recovery_public_key: str = ""
    idle_lock_minutes: int = 10
    #: Wrong passphrases allowed before each further try must wait (growing delay).
    unlock_delay_after: int = 3
    #: Wrong passphrases in a row before the profile locks and needs the recovery key.
    unlock_lockout_after: int = 10
    #: First delay after ``unlock_delay_after`` failures; doubles each time, up to 5 minutes.
    unlock_base_delay_seconds: float = 5.0
    kdf_target_seconds: float = 0.5
    kdf_memory_kib: int = 64 * 1024
    controller_url: str = ""

    @property
    def recovery_key_bytes(self) -> bytes | None:
        return b64d(self.recovery_public_key) if self.recovery_public_key else None

    def to_json(self) -> dict[str, Any]:
        return {f.name: (str(getattr(self, f.name)) if f.name == "keyring_policy"
                         else getattr(self, f.name)) for f in fields(self)}


_LIMITS: dict[str, tuple[float, float]] = {
    "idle_lock_minutes": (1, 240),
    "unlock_delay_after": (1, 20),
    "unlock_lockout_after": (2, 50),
    "unlock_base_delay_seconds": (0, 300),
    "kdf_target_seconds": (0.01, 5),
    "kdf_memory_kib": (8 * 1024, 4 * 1024 * 1024),
}


def parse_config(data: Any, source: str = "organisation settings") -> OrganisationConfig:
    if not isinstance(data, dict):
        raise ConfigError(message=f"The {source} must be a JSON object.")
    known = {f.name: f for f in fields(OrganisationConfig)}
    values: dict[str, Any] = {}
    for key, value in data.items():
        if key not in known:
            raise ConfigError(message=f"The {source} has an unknown setting '{key}'.",
                              next_step="Remove it or check its spelling.")
        default = getattr(OrganisationConfig(), key)
        if key == "keyring_policy":
            try:
                value = KeyringPolicy(value)
            except ValueError:
                raise ConfigError(
                    message=f"keyring_policy in the {source} must be 'required' or 'preferred'."
                ) from None
        elif key == "recovery_public_key":
            try:
                if not isinstance(value, str) or (value and len(b64d(value)) != 32):
                    raise ValueError
            except ValueError:
                raise ConfigError(message=f"recovery_public_key in the {source} is not a "
                                          "base64 X25519 public key.") from None
        elif isinstance(default, (int, float)) and not isinstance(default, bool):
            if not isinstance(value, (int, float)) or isinstance(value, bool):
                raise ConfigError(message=f"{key} in the {source} must be a number.")
            low, high = _LIMITS[key]
            if not low <= value <= high:
                raise ConfigError(message=f"{key} in the {source} must be between {low:g} and {high:g}.")
            value = type(default)(value)
        elif not isinstance(value, type(default)):
            raise ConfigError(message=f"{key} in the {source} has the wrong type.")
        values[key] = value
    config = OrganisationConfig(**values)
    if config.unlock_lockout_after <= config.unlock_delay_after:
        raise ConfigError(message="unlock_lockout_after must be more than unlock_delay_after.")
    return config


def load_config(path: Path) -> OrganisationConfig:
    """The organisation settings at ``path``, or the defaults when there is no file."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return OrganisationConfig()
    except OSError as exc:
        raise ConfigError(message=f"The organisation settings file could not be read ({exc.strerror}).") from None
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(message=f"The organisation settings file is not valid JSON (line {exc.lineno}).",
                          next_step="Ask your IT team to correct it.") from None
    return parse_config(data, source=f"organisation settings ({path.name})")
