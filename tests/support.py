"""Test helpers: temporary profiles on the real encrypted store.

Profiles made here use cheap Argon2id parameters (1 pass, 8 MiB) so the suite stays fast;
the real calibrated cost is measured by ``test_kdf_calibration`` and ``bench/store.py``.
"""

from __future__ import annotations

import json
import os

import keyring
import keyring.backend

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from keyworker_app.paths import AppPaths  # noqa: E402
from keyworker_app.security import KdfParams  # noqa: E402

PASSPHRASE = "blue kettle orchard 42 lamp"
FAST_CONFIG = {"kdf_target_seconds": 0.01, "kdf_memory_kib": 8192}


def fast_kdf() -> KdfParams:
    return KdfParams(salt=os.urandom(16), time_cost=1, memory_kib=8192, parallelism=1)


# Let keyring choose the machine's real backend now: it picks the highest-priority subclass
# of KeyringBackend it knows, and the fake below would otherwise win that choice.
REAL_KEYRING = keyring.get_keyring()


class MemoryKeyring(keyring.backend.KeyringBackend):
    """A stand-in for the OS credential store.

    A FAKE, used because this machine (and CI) has no Secret Service or other OS keyring:
    the real `keyring` package reports its `fail` backend here. Only tests that need a
    secure store install it; everything else runs against the real backend.
    """

    priority = 1  # type: ignore[assignment]

    def __init__(self) -> None:
        super().__init__()
        self.entries: dict[tuple[str, str], str] = {}

    def get_password(self, service: str, username: str) -> str | None:
        return self.entries.get((service, username))

    def set_password(self, service: str, username: str, password: str) -> None:
        self.entries[(service, username)] = password

    def delete_password(self, service: str, username: str) -> None:
        self.entries.pop((service, username), None)


def write_org_config(paths: AppPaths, **settings: object) -> None:
    paths.config.mkdir(parents=True, exist_ok=True)
    paths.org_config.write_text(json.dumps({**FAST_CONFIG, **settings}), encoding="utf-8")
