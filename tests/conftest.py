"""Shared fixtures: temporary profiles on the real encrypted store."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import keyring  # noqa: E402
import pytest  # noqa: E402

from keyworker_app.paths import AppPaths, app_paths  # noqa: E402
from keyworker_app.profile import Profile  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from support import PASSPHRASE, MemoryKeyring, fast_kdf, write_org_config  # noqa: E402


@pytest.fixture
def secure_keyring() -> Iterator[MemoryKeyring]:
    previous = keyring.get_keyring()
    ring = MemoryKeyring()
    keyring.set_keyring(ring)
    try:
        yield ring
    finally:
        keyring.set_keyring(previous)


@pytest.fixture
def paths(tmp_path: Path) -> AppPaths:
    p = app_paths(tmp_path / "profile")
    write_org_config(p)
    return p


@pytest.fixture
def profile(paths: AppPaths) -> Profile:
    return Profile.at(paths)


@pytest.fixture
def store(profile: Profile) -> Iterator[Store]:
    s, _ = profile.create("KW-0001", "working_well_ses", PASSPHRASE, kdf=fast_kdf())
    try:
        yield s
    finally:
        s.close()
