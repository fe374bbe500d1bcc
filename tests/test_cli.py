"""The command line as a person runs it: real processes, real files, exit codes, messages."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support import PASSPHRASE

NEW = "a different passphrase 12"


def org(data: Path, **settings: object) -> None:
    (data / "config").mkdir(parents=True, exist_ok=True)
    (data / "config" / "organisation.json").write_text(
        json.dumps({"kdf_target_seconds": 0.01, "kdf_memory_kib": 8192, **settings}))


def kw(data: Path, *args: str, passphrase: str | None = PASSPHRASE, new: str | None = None,
       stdin: str | None = None) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("KEYWORKER_")}
    if passphrase is not None:
        env["KEYWORKER_PASSPHRASE"] = passphrase
    if new is not None:
        env["KEYWORKER_NEW_PASSPHRASE"] = new
    return subprocess.run([sys.executable, "-m", "keyworker_app.cli", "--data-dir", str(data), *args],
                          env=env, capture_output=True, text=True, timeout=300, input=stdin)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr + result.stdout


@pytest.fixture
def data(tmp_path: Path) -> Path:
    d = tmp_path / "kw"
    org(d)
    r = kw(d, "init", "--keyworker-id", "KW-0042", "--programme", "working_well_ses")
    assert r.returncode == 0, r.stderr
    assert "Credential store: keyring.backends.fail.Keyring (not secure)" in r.stdout
    assert "Warning:" in r.stdout and "passphrase alone" in r.stdout
    return d


def test_init_twice_is_refused(data: Path) -> None:
    r = kw(data, "init", "--keyworker-id", "KW-0042", "--programme", "working_well_ses")
    assert r.returncode == 3 and "already exists" in r.stderr
    no_traceback(r)


def test_init_unknown_programme_says_so(tmp_path: Path) -> None:
    org(tmp_path / "x")
    r = kw(tmp_path / "x", "init", "--keyworker-id", "KW-1", "--programme", "no_such_programme")
    assert r.returncode != 0 and "no_such_programme" in r.stderr
    no_traceback(r)
    assert not (tmp_path / "x" / "keyworker.db").exists()


def test_weak_passphrase_exit_2(tmp_path: Path) -> None:
    org(tmp_path / "w")
    r = kw(tmp_path / "w", "init", "--keyworker-id", "KW-1", "--programme", "working_well", passphrase="short")
    assert r.returncode == 2 and "too easy to guess" in r.stderr


def test_passphrase_file_and_no_source(data: Path, tmp_path: Path) -> None:
    secret = tmp_path / "pass.txt"
    secret.write_text(PASSPHRASE + "\n")
    assert kw(data, "check", "--passphrase-file", str(secret), passphrase=None).returncode == 0
    r = kw(data, "check", passphrase=None, stdin="")
    assert r.returncode == 2 and "No passphrase was given" in r.stderr
    no_traceback(r)


def test_check_passes_then_a_flipped_byte_fails_naming_the_page(data: Path) -> None:
    r = kw(data, "check")
    assert r.returncode == 0 and "Profile check passed" in r.stdout
    # A page that opening the profile does not read (the schema is read at once, and
    # damage there stops the open: the next test): the participant table's first page.
    from keyworker_app.paths import app_paths
    from keyworker_app.profile import Profile

    store = Profile.at(app_paths(data)).unlock(PASSPHRASE)
    try:
        root = int(store.db.scalar("SELECT rootpage FROM sqlite_master WHERE name = 'participant'"))
    finally:
        store.close()
    db = data / "keyworker.db"
    raw = bytearray(db.read_bytes())
    page = 4096
    assert len(raw) >= root * page and root > 1
    raw[(root - 1) * page + 1000] ^= 0x01
    db.write_bytes(bytes(raw))
    r = kw(data, "check")
    assert r.returncode == 11, r.stderr
    assert "problem" in r.stderr and "page" in r.stderr.lower()
    no_traceback(r)


def test_a_flipped_byte_in_the_schema_is_refused_as_damage_at_open(data: Path) -> None:
    """The schema is read as the profile opens, so damage there stops the open itself:
    the same plain "damaged" message and exit code 7, and the file is left as it is."""
    db = data / "keyworker.db"
    raw = bytearray(db.read_bytes())
    raw[1000] ^= 0x01   # page 1: the start of the schema
    db.write_bytes(bytes(raw))
    r = kw(data, "check")
    assert r.returncode == 7 and "damaged" in r.stderr and "Do not delete anything" in r.stderr
    assert db.read_bytes() == bytes(raw)
    no_traceback(r)


def test_wrong_passphrase_exit_4_with_attempts_left(data: Path) -> None:
    r = kw(data, "check", passphrase="not my passphrase at all")
    assert r.returncode == 4 and "not right" in r.stderr and "9 more tries" in r.stderr
    no_traceback(r)


def test_passphrase_change_then_old_one_fails(data: Path) -> None:
    assert kw(data, "passphrase", new=NEW).returncode == 0
    assert kw(data, "check").returncode == 4
    assert kw(data, "check", passphrase=NEW).returncode == 0


def test_info_needs_no_passphrase(data: Path) -> None:
    r = kw(data, "info", passphrase=None)
    assert r.returncode == 0 and "KW-0042" in r.stdout and "NOT secure" in r.stdout and "policy preferred" in r.stdout


def test_recovery_key_round_trip(tmp_path: Path) -> None:
    d = tmp_path / "rec"
    key = tmp_path / "org-recovery.pem"
    r = kw(d, "recovery-keygen", "--private-key-out", str(key), passphrase=None)
    assert r.returncode == 0 and key.stat().st_mode & 0o077 == 0
    org(d, recovery_public_key=r.stdout.strip().splitlines()[-1], unlock_delay_after=1,
        unlock_lockout_after=2, unlock_base_delay_seconds=0)
    assert kw(d, "init", "--keyworker-id", "KW-7", "--programme", "workwell").returncode == 0
    kw(d, "check", passphrase="forgot it completely")
    r = kw(d, "check", passphrase="forgot it completely")
    assert r.returncode == 5 and "recovery key" in r.stderr
    r = kw(d, "recover", "--recovery-key-file", str(key), new=NEW, passphrase=None)
    assert r.returncode == 0, r.stderr
    assert kw(d, "check", passphrase=NEW).returncode == 0
    r = kw(d, "recovery-keygen", "--private-key-out", str(key), passphrase=None)
    assert r.returncode == 2 and "already exists" in r.stderr


def test_required_keyring_policy_refuses_here(tmp_path: Path) -> None:
    d = tmp_path / "req"
    org(d, keyring_policy="required")
    r = kw(d, "init", "--keyworker-id", "KW-1", "--programme", "working_well")
    assert r.returncode == 6 and "no secure credential store" in r.stderr
    assert not (d / "keyworker.db").exists()


def test_bad_organisation_settings_are_named(tmp_path: Path) -> None:
    d = tmp_path / "bad"
    org(d, idle_lock_minutes=0)
    r = kw(d, "init", "--keyworker-id", "KW-1", "--programme", "working_well")
    assert r.returncode == 2 and "idle_lock_minutes" in r.stderr
    (d / "config" / "organisation.json").write_text("{oops")
    r = kw(d, "info")
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    no_traceback(r)


def test_no_command_prints_help() -> None:
    r = subprocess.run([sys.executable, "-m", "keyworker_app.cli"], capture_output=True, text=True, timeout=60)
    assert "init" in r.stdout and "check" in r.stdout
