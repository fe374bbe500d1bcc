"""Fixtures for the GUI tests: real encrypted profiles (cheap KDF), seeded participants.

Shared by the shell tests (``test_shell_*``) and the record tests (``test_record_*``).
"""

from __future__ import annotations

import gc
import os
from typing import Any, Iterator

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

import pytest  # noqa: E402

from keyworker_app.paths import AppPaths  # noqa: E402
from keyworker_app.profile import Profile  # noqa: E402
from keyworker_app.records import Participant  # noqa: E402
from keyworker_app.store.store import Store  # noqa: E402
from shell_support import PROGRAMME, MakeParticipant, participant  # noqa: E402
from support import PASSPHRASE, fast_kdf  # noqa: E402


@pytest.fixture(autouse=True)
def unfrozen_afterwards() -> Iterator[None]:
    """A window freezes what it has built out of garbage collections (ui.window); after
    each test everything is unfrozen again, so one test's windows can be freed and the
    next test starts as the app does."""
    yield
    gc.unfreeze()


@pytest.fixture
def ui_paths(paths: AppPaths) -> AppPaths:
    """A profile folder whose organisation settings make the KDF cheap (tests/conftest.py)."""
    return paths


@pytest.fixture
def ui_store(ui_paths: AppPaths) -> Iterator[Store]:
    """An unlocked, empty store on the real SQLCipher database."""
    store, _ = Profile.at(ui_paths).create("KW-0001", PROGRAMME, PASSPHRASE, kdf=fast_kdf())
    try:
        yield store
    finally:
        store.close()


@pytest.fixture
def locked_profile(ui_paths: AppPaths) -> AppPaths:
    """A created profile, closed again: the app starts at the unlock screen."""
    store, _ = Profile.at(ui_paths).create("KW-0001", PROGRAMME, PASSPHRASE, kdf=fast_kdf())
    store.close()
    return ui_paths


@pytest.fixture
def make_participant(ui_store: Store) -> MakeParticipant:
    """Save a synthetic participant straight into the store (test set-up, not the UI)."""
    counter = iter(range(1, 1_000_000))

    def make(**fields: Any) -> Participant:
        return ui_store.save(participant(next(counter), **fields))

    return make
