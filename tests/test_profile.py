"""Profiles: creating, unlocking, every way unlocking fails, passphrase change, recovery."""

from __future__ import annotations

import hashlib
import json
from typing import Callable
from pathlib import Path

import pytest

from keyworker_app.errors import (
    DamagedProfile, DeviceSecretMissing, KeyringUnavailable, LockedOut, NewerDatabase,
    ProfileExists, ProfileNotFound, RecoveryKeyError, UnlockTooSoon, WeakPassphrase,
    WrongPassphrase,
)
from keyworker_app.paths import AppPaths
from keyworker_app.profile import KeyFile, Profile
from keyworker_app.records import Participant
from keyworker_app.security import (
    b64e, calibrate_kdf, check_passphrase, generate_recovery_keypair, keyring_status,
)
from keyworker_app.store.database import Database

from support import PASSPHRASE, MemoryKeyring, fast_kdf, write_org_config


def fingerprint(paths: AppPaths) -> dict[str, str]:
    """The database file's hash: to prove a failed unlock never replaced or changed it."""
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in [paths.database] if p.exists()}


class Clock:
    def __init__(self) -> None:
        self.now = 1_800_000_000.0

    def __call__(self) -> float:
        return self.now


def make(paths: AppPaths, clock: Clock | None = None) -> Profile:
    return Profile.at(paths, clock=clock or Clock())


def test_create_then_unlock_keeps_records(profile: Profile) -> None:
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    saved = store.save(Participant(given_name="Siân", family_name="Ap-Rhys"))
    store.close()
    reopened = profile.unlock(PASSPHRASE)
    assert reopened.participants.get(saved.id).given_name == "Siân"
    assert reopened.participants.get(saved.id).version == 1
    reopened.close()


def test_create_refuses_an_existing_profile_and_changes_nothing(profile: Profile, paths: AppPaths) -> None:
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    store.close()
    before = fingerprint(paths), paths.keyfile.read_bytes()
    with pytest.raises(ProfileExists):
        profile.create("KW-0002", "working_well", "another long passphrase 9", kdf=fast_kdf())
    assert (fingerprint(paths), paths.keyfile.read_bytes()) == before


@pytest.mark.parametrize("weak", ["short1", "password1234", "aaaaaaaaaaaaaa", "qwertyuiop12", "KW-0001 secret words"])
def test_weak_passphrases_are_refused(weak: str) -> None:
    with pytest.raises(WeakPassphrase) as info:
        check_passphrase(weak, keyworker_id="KW-0001")
    assert "too easy to guess" in info.value.message


def test_unlock_with_no_profile_says_so(paths: AppPaths) -> None:
    with pytest.raises(ProfileNotFound):
        make(paths).unlock(PASSPHRASE)
    assert not paths.database.exists()


def test_wrong_passphrase_counts_down_then_delays_then_locks_out(paths: AppPaths) -> None:
    write_org_config(paths, unlock_delay_after=3, unlock_lockout_after=10, unlock_base_delay_seconds=5)
    clock = Clock()
    profile = make(paths, clock)
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    before = fingerprint(paths)
    for attempt in range(1, 10):
        with pytest.raises(WrongPassphrase) as info:
            profile.unlock("not the right passphrase")
        assert info.value.attempts_left == 10 - attempt
        delay = profile.delay_before_next_try(attempt)
        assert info.value.delay_seconds == delay
        if attempt >= 3:
            assert delay > 0
            # Trying again straight away is refused without even checking the passphrase.
            with pytest.raises(UnlockTooSoon) as too_soon:
                profile.unlock(PASSPHRASE)
            assert too_soon.value.wait_seconds == pytest.approx(delay)
            clock.now += delay
    assert profile.delay_before_next_try(4) == 2 * profile.delay_before_next_try(3)
    with pytest.raises(LockedOut):
        profile.unlock("still not the right one")
    clock.now += 10_000
    with pytest.raises(LockedOut):
        profile.unlock(PASSPHRASE)  # even the right passphrase: the recovery key is needed
    assert fingerprint(paths) == before


def test_every_attempt_is_audited_after_the_next_unlock(profile: Profile) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    for _ in range(2):
        with pytest.raises(WrongPassphrase):
            profile.unlock("not the right passphrase")
    store = profile.unlock(PASSPHRASE)
    actions = [e.action for e in reversed(store.audit_entries())]
    store.close()
    assert actions[-3:] == ["unlock_failed_wrong_passphrase", "unlock_failed_wrong_passphrase", "unlocked"]
    assert KeyFile.read(profile.paths.keyfile).unlock["failures"] == 0


def test_device_secret_missing_on_another_account(paths: AppPaths, secure_keyring: MemoryKeyring) -> None:
    profile = make(paths)
    store, status = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    store.close()
    assert status.secure and KeyFile.read(paths.keyfile).uses_device_secret
    before = fingerprint(paths)
    secure_keyring.entries.clear()  # as if opened from another login or laptop
    with pytest.raises(DeviceSecretMissing) as info:
        profile.unlock(PASSPHRASE)
    assert "laptop and user account" in info.value.message
    assert fingerprint(paths) == before


def test_device_secret_is_part_of_the_key(paths: AppPaths, secure_keyring: MemoryKeyring) -> None:
    profile = make(paths)
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    entry = next(iter(secure_keyring.entries))
    secure_keyring.entries[entry] = b64e(b"\x00" * 32)  # a different laptop's secret
    with pytest.raises(WrongPassphrase):
        profile.unlock(PASSPHRASE)


def test_required_policy_refuses_without_a_secure_keyring(paths: AppPaths) -> None:
    assert not keyring_status().secure  # this machine has no OS credential store
    write_org_config(paths, keyring_policy="required")
    with pytest.raises(KeyringUnavailable):
        make(paths).create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    assert not paths.database.exists() and not paths.keyfile.exists()


def test_preferred_policy_warns_and_records_the_backend(profile: Profile) -> None:
    store, status = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    created = store.audit_entries()[-1]
    store.close()
    assert not status.secure and "passphrase alone" in status.warning
    info = profile.info()
    assert info.keyring_policy == "preferred"
    assert info.keyring_backend == "keyring.backends.fail.Keyring" and not info.keyring_secure
    assert created.action == "profile_created"
    assert created.detail["keyring_backend"] == "keyring.backends.fail.Keyring"


def test_damaged_key_file(profile: Profile, paths: AppPaths) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    paths.keyfile.write_text("{ not json", encoding="utf-8")
    with pytest.raises(DamagedProfile) as info:
        profile.unlock(PASSPHRASE)
    assert "profile.json" in info.value.message


def test_replaced_database_is_damaged_not_recreated(profile: Profile, paths: AppPaths) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    paths.database.write_bytes(b"\x13" * 8192)
    before = fingerprint(paths)
    with pytest.raises(DamagedProfile) as info:
        profile.unlock(PASSPHRASE)
    assert "does not decrypt" in info.value.message
    assert fingerprint(paths) == before


def test_missing_database_is_damaged_not_recreated(profile: Profile, paths: AppPaths) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    paths.database.unlink()
    with pytest.raises(DamagedProfile):
        profile.unlock(PASSPHRASE)
    assert not paths.database.exists()


def test_database_from_a_newer_app_is_refused(profile: Profile, paths: AppPaths) -> None:
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    store.db.conn.execute("PRAGMA user_version = 999")
    store.close()
    before = fingerprint(paths)
    with pytest.raises(NewerDatabase) as info:
        profile.unlock(PASSPHRASE)
    assert info.value.found == 999 and "newer version" in info.value.message
    assert fingerprint(paths) == before


def test_changed_cipher_settings_are_caught(profile: Profile, paths: AppPaths) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    data = json.loads(paths.keyfile.read_text())
    data["cipher"]["page_size"] = 8192
    paths.keyfile.write_text(json.dumps(data))
    with pytest.raises(DamagedProfile):
        profile.unlock(PASSPHRASE)


def test_tampered_kdf_parameters_do_not_unlock(profile: Profile, paths: AppPaths) -> None:
    """Weakening the stored KDF cost breaks the authenticated wrap instead of working."""
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    data = json.loads(paths.keyfile.read_text())
    data["kdf"]["time_cost"] = 2
    paths.keyfile.write_text(json.dumps(data))
    with pytest.raises(WrongPassphrase):
        profile.unlock(PASSPHRASE)


def test_passphrase_change_keeps_data_and_does_not_reencrypt(profile: Profile, paths: AppPaths) -> None:
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    saved = store.save(Participant(given_name="Chloé", family_name="D'Souza"))
    store.close()
    header = paths.database.read_bytes()[:16]  # SQLCipher's salt: re-encrypting would change it
    store = profile.unlock(PASSPHRASE)
    profile.change_passphrase(store, PASSPHRASE, "green river stone 77 bell")
    store.close()
    with pytest.raises(WrongPassphrase):
        profile.unlock(PASSPHRASE)
    store = profile.unlock("green river stone 77 bell")
    assert store.participants.get(saved.id).family_name == "D'Souza"
    assert "passphrase_changed" in [e.action for e in store.audit_entries()]
    store.close()
    assert paths.database.read_bytes()[:16] == header


def test_recovery_key_opens_a_locked_out_profile(paths: AppPaths, tmp_path: Path) -> None:
    private_pem, public = generate_recovery_keypair()
    write_org_config(paths, recovery_public_key=b64e(public), unlock_delay_after=1,
                     unlock_lockout_after=2, unlock_base_delay_seconds=0)
    profile = make(paths)
    store, _ = profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())
    saved = store.save(Participant(given_name="Zoë", family_name="Nowak"))
    store.close()
    for _ in range(2):
        with pytest.raises((WrongPassphrase, LockedOut)):
            profile.unlock("forgotten passphrase oops")
    with pytest.raises(LockedOut):
        profile.unlock(PASSPHRASE)
    other_pem, _ = generate_recovery_keypair()
    with pytest.raises(RecoveryKeyError):
        profile.recover(other_pem, "fresh start passphrase 31")
    store = profile.recover(private_pem, "fresh start passphrase 31")
    assert store.participants.get(saved.id).given_name == "Zoë"
    assert "recovered_with_organisation_key" in [e.action for e in store.audit_entries()]
    store.close()
    profile.unlock("fresh start passphrase 31").close()


def test_recovery_renews_a_lost_device_secret(paths: AppPaths, secure_keyring: MemoryKeyring) -> None:
    private_pem, public = generate_recovery_keypair()
    write_org_config(paths, recovery_public_key=b64e(public))
    profile = make(paths)
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    secure_keyring.entries.clear()
    with pytest.raises(DeviceSecretMissing):
        profile.unlock(PASSPHRASE)
    profile.recover(private_pem, "new laptop passphrase 55").close()
    profile.unlock("new laptop passphrase 55").close()


def test_recovery_without_an_organisation_key(profile: Profile) -> None:
    profile.create("KW-0001", "working_well", PASSPHRASE, kdf=fast_kdf())[0].close()
    pem, _ = generate_recovery_keypair()
    with pytest.raises(RecoveryKeyError) as info:
        profile.recover(pem, "fresh start passphrase 31")
    assert "without an organisation recovery key" in info.value.message


def test_kdf_calibration_aims_at_the_target() -> None:
    params = calibrate_kdf(target_seconds=0.2, memory_kib=16 * 1024)
    assert params.memory_kib == 16 * 1024 and params.time_cost >= 1 and len(params.salt) == 16


def scripted_clock(durations: list[float]) -> Callable[[], float]:
    """A clock whose successive start/stop pairs measure ``durations`` in turn."""
    readings: list[float] = []
    now = 0.0
    for took in durations:
        readings += [now, now + took]
        now += took + 1.0
    it = iter(readings)
    return lambda: next(it)


@pytest.mark.parametrize("probes, checks, passes", [
    # One pass 0.05 s (the busy first probe ignored): 10 passes; the full-length checks
    # agree once the machine is quiet, so a busy first check does not halve the count.
    ([0.2, 0.05, 0.05], [1.0, 0.5], 10),
    ([0.05, 0.05, 0.05], [0.5, 1.0], 10),
    # Passes that do not scale linearly: both checks say 10 passes take 0.25 s, so 20.
    ([0.05, 0.05, 0.05], [0.25, 0.25], 20),
])
def test_kdf_calibration_keeps_the_fastest_timings(probes: list[float], checks: list[float],
                                                   passes: int) -> None:
    params = calibrate_kdf(target_seconds=0.5, memory_kib=8 * 1024, clock=scripted_clock(probes + checks))
    assert params.time_cost == passes and params.memory_kib == 8 * 1024


def test_database_file_is_encrypted(store: object, paths: AppPaths) -> None:
    assert not paths.database.read_bytes().startswith(b"SQLite format 3")
    with pytest.raises(Exception):
        Database.connect_plain(paths.database).query("SELECT * FROM participant")
