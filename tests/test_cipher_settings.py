"""Cipher settings: the page HMAC a new profile gets, and that a profile keeps its own."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

import pytest

from keyworker_app.errors import DamagedProfile
from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.store.database import CipherSettings, Database, choose_hmac_algorithm
from keyworker_app.store.store import Store
from support import PASSPHRASE, fast_kdf

KEY = bytes(range(32))


def clock_for(per_hash: dict[str, float], order: list[str]) -> Callable[[], float]:
    """A clock whose start/stop pairs measure, in turn, three runs of each name in
    ``order`` at ``per_hash`` seconds a run (the first run of each made slower, as a busy
    moment would)."""
    readings: list[float] = []
    now = 0.0
    for name in order:
        for run in range(3):
            took = per_hash[name] * (5 if run == 0 else 1)
            readings += [now, now + took]
            now += took + 1.0
    it = iter(readings)
    return lambda: next(it)


@pytest.mark.parametrize("sha512, sha256, chosen", [
    (0.010, 0.005, "HMAC_SHA256"),   # a CPU with SHA extensions
    (0.006, 0.009, "HMAC_SHA512"),   # one without: SQLCipher 4's default stays
])
def test_the_faster_page_hmac_is_chosen(sha512: float, sha256: float, chosen: str) -> None:
    clock = clock_for({"sha512": sha512, "sha256": sha256}, ["sha512", "sha256"])
    assert choose_hmac_algorithm(rounds=1, clock=clock) == chosen


def test_a_new_profile_records_the_hmac_it_was_made_with(profile: Profile, paths: AppPaths) -> None:
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    store.close()
    recorded = json.loads(paths.keyfile.read_text())["cipher"]["hmac_algorithm"]
    assert recorded in ("HMAC_SHA256", "HMAC_SHA512")
    reopened = profile.unlock(PASSPHRASE)
    assert reopened.db.scalar("PRAGMA cipher_hmac_algorithm") == recorded
    reopened.close()


@pytest.mark.parametrize("made_with, opened_with", [
    ("HMAC_SHA512", "HMAC_SHA256"), ("HMAC_SHA256", "HMAC_SHA512")])
def test_a_database_opens_only_with_the_hmac_it_was_made_with(
        tmp_path: Path, made_with: str, opened_with: str) -> None:
    """Profiles made before the choice (SHA-512) keep opening; a mismatch is refused as
    damage, never answered with a new, empty database."""
    path = tmp_path / "store.db"
    db = Database.connect_encrypted(path, KEY, CipherSettings(hmac_algorithm=made_with), create=True)
    db.migrate()
    Store(db, "KW-1").audit("opened")
    db.close()
    again = Database.connect_encrypted(path, KEY, CipherSettings(hmac_algorithm=made_with), create=False)
    assert again.scalar("SELECT count(*) FROM audit_log") == 1
    again.close()
    before = path.read_bytes()
    with pytest.raises(DamagedProfile):
        Database.connect_encrypted(path, KEY, CipherSettings(hmac_algorithm=opened_with), create=False)
    assert path.read_bytes() == before
