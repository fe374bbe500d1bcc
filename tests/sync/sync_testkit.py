"""Helpers for the sync tests (a unique module name, so no other folder's helpers shadow it)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import date
from pathlib import Path

from keyworker_app.demo import save_caseload
from keyworker_app.paths import AppPaths, app_paths
from keyworker_app.profile import Profile
from keyworker_app.store.store import Store
from keyworker_app.synthetic import CaseFile, generate_caseload
from support import PASSPHRASE, fast_kdf, write_org_config

KEYWORKER = "kw-sync-1"
TODAY = date(2025, 6, 2)


class Laptop:
    """A keyworker profile on disk, opened and closed as the app would."""

    def __init__(self, root: Path, keyworker_id: str = KEYWORKER) -> None:
        self.paths: AppPaths = app_paths(root)
        write_org_config(self.paths)
        self.keyworker_id = keyworker_id
        store, _ = Profile.at(self.paths).create(keyworker_id, "working_well_ses", PASSPHRASE, kdf=fast_kdf())
        store.close()

    def open(self) -> Store:
        return Profile.at(self.paths).unlock(PASSPHRASE)

    @contextmanager
    def opened(self) -> Iterator[Store]:
        """The unlocked store, closed afterwards (unless something already closed it)."""
        store = self.open()
        try:
            yield store
        finally:
            if store.db.is_open:
                store.close()

    def add_cases(self, cases: list[CaseFile]) -> None:
        with self.opened() as store:
            save_caseload(store, cases)


def caseload(n: int, seed: int = 7, programme: str = "working_well_ses", keyworker_id: str = KEYWORKER) -> list[CaseFile]:
    return list(generate_caseload(n, seed=seed, programme=programme, keyworker_id=keyworker_id, today=TODAY))


