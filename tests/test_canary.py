"""Canary: distinctive personal data never appears in any file outside the encrypted pages."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.records import CaseNote, Participant
from support import PASSPHRASE, fast_kdf

CANARIES = [
    ("Quillivant", "Zephyrine", "JT284913B", "zephyrine.quillivant@example.org", "canary note alpha"),
    ("Oyelaran-Brückner", "Thessaly", "PR773201D", "t.ob@example.com", "canary note bravo"),
]


def every_file(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if p.is_file()]


def leaks(root: Path, needles: list[str]) -> list[str]:
    found = []
    for path in every_file(root):
        data = path.read_bytes()
        if data.startswith(b"SQLite format 3"):
            found.append(f"{path.name} is an unencrypted SQLite file")
        for needle in needles:
            for encoding in ("utf-8", "utf-16-le"):
                if needle.encode(encoding) in data or needle.lower().encode(encoding) in data.lower():
                    found.append(f"{needle!r} in {path.relative_to(root)}")
    return found


def test_nothing_personal_outside_the_encrypted_store(paths: AppPaths, tmp_path: Path) -> None:
    profile = Profile.at(paths)
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    needles: list[str] = []
    for family, given, ni, email, note in CANARIES:
        p = store.save(Participant(given_name=given, family_name=family, ni_number=ni, email=email))
        store.save(CaseNote(participant_id=p.id, summary=f"{note} about debts"))
        store.participants.search(family[:5])
        needles += [family, given, ni, email, note]
    # Mid-session: the WAL and shared-memory files exist now and must be encrypted too.
    assert leaks(paths.data, needles) == []
    store.close()
    # Failed unlocks and a passphrase change write the key file; still nothing personal.
    try:
        profile.unlock("wrong passphrase entirely")
    except Exception:
        pass
    store = profile.unlock(PASSPHRASE)
    profile.change_passphrase(store, PASSPHRASE, "another long passphrase 8")
    store.check()
    store.close()
    assert leaks(paths.data, needles) == []
    assert every_file(paths.data), "the profile folder should not be empty"


def test_command_line_leaves_no_trace(tmp_path: Path) -> None:
    data = tmp_path / "cli-profile"
    (data / "config").mkdir(parents=True)
    (data / "config" / "organisation.json").write_text('{"kdf_target_seconds": 0.01, "kdf_memory_kib": 8192}')
    env = {**os.environ, "KEYWORKER_PASSPHRASE": PASSPHRASE, "TMPDIR": str(tmp_path / "tmp")}
    (tmp_path / "tmp").mkdir()
    run = [sys.executable, "-m", "keyworker_app.cli", "--data-dir", str(data)]
    subprocess.run(run + ["demo", "--participants", "30", "--seed", "7"], env=env, check=True,
                   capture_output=True, timeout=300)
    subprocess.run(run + ["check"], env=env, check=True, capture_output=True, timeout=300)
    # The names the generator just wrote, read back through the real store.
    store = Profile.at(AppPaths(data, data / "config", data / "logs")).unlock(PASSPHRASE)
    people = store.participants.search("", limit=30)
    store.close()
    needles = [p.family_name for p in people if len(p.family_name) > 4]
    needles += [p.ni_number for p in people if p.ni_number] + [p.email for p in people if p.email]
    assert len(needles) > 20
    assert leaks(data, needles) == []
    assert leaks(tmp_path / "tmp", needles) == []
