"""The device secret in a real OS credential store: GNOME Keyring over the Secret Service.

Each test runs the real command line inside its own D-Bus session with its own unlocked
keyring, kept in a temporary home folder. A second session with a fresh keyring stands for
another login or another laptop. Needs Debian's gnome-keyring and dbus (the test command
installs them when run as root).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from support import PASSPHRASE

PROBE = "import keyring; print(type(keyring.get_keyring()).__module__)"


def have_tools() -> None:
    missing = [t for t in ("dbus-run-session", "gnome-keyring-daemon") if shutil.which(t) is None]
    if missing and not os.environ.get("KEYWORKER_SKIP_KEYRING"):
        pytest.fail(f"{', '.join(missing)} not found: install Debian's gnome-keyring and dbus "
                    "(scripts/test.sh does as root), or set KEYWORKER_SKIP_KEYRING=1 to skip")
    if missing:
        pytest.skip("KEYWORKER_SKIP_KEYRING is set")


def in_session(home: Path, *commands: list[str]) -> list[subprocess.CompletedProcess[str]]:
    """Run commands one after another inside one D-Bus session with an unlocked keyring."""
    home.mkdir(parents=True, exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEYWORKER_", "DBUS_"))}
    env.update(HOME=str(home), XDG_DATA_HOME=str(home / "data"), XDG_RUNTIME_DIR=str(home / "run"),
               KEYWORKER_PASSPHRASE=PASSPHRASE)
    (home / "run").mkdir(mode=0o700, exist_ok=True)
    script = [
        "import json, subprocess, sys",
        "subprocess.run(['gnome-keyring-daemon', '--unlock', '--components=secrets', '--daemonize'],"
        " input=b'login-password-for-tests', stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True)",
        f"cmds = json.loads({json.dumps(json.dumps(commands))})",
        "out = [subprocess.run(c, capture_output=True, text=True) for c in cmds]",
        "print(json.dumps([[r.returncode, r.stdout, r.stderr] for r in out]))",
    ]
    result = subprocess.run(["dbus-run-session", "--", sys.executable, "-c", "\n".join(script)],
                            env=env, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    last = result.stdout.strip().splitlines()[-1]
    return [subprocess.CompletedProcess(c, rc, out, err) for c, (rc, out, err) in zip(commands, json.loads(last))]


def kw(data: Path, *args: str) -> list[str]:
    return [sys.executable, "-m", "keyworker_app.cli", "--data-dir", str(data), *args]


@pytest.fixture
def data(tmp_path: Path) -> Path:
    have_tools()
    d = tmp_path / "profile"
    (d / "config").mkdir(parents=True)
    (d / "config" / "organisation.json").write_text(json.dumps(
        {"kdf_target_seconds": 0.01, "kdf_memory_kib": 8192, "keyring_policy": "required"}))
    return d


def test_required_policy_works_with_a_real_keyring_and_binds_to_the_login(data: Path, tmp_path: Path) -> None:
    probe, init, check, info = in_session(
        tmp_path / "home-a",
        [sys.executable, "-c", PROBE],
        kw(data, "init", "--keyworker-id", "KW-0100", "--programme", "working_well_ses"),
        kw(data, "check"),
        kw(data, "info"),
    )
    assert probe.stdout.strip() == "keyring.backends.SecretService"
    assert init.returncode == 0, init.stderr
    assert "Warning" not in init.stdout and "(secure)" in init.stdout
    assert check.returncode == 0, check.stderr
    assert "SecretService" in info.stdout and "NOT secure" not in info.stdout
    # The same files from another login: its keyring has no device secret for them.
    (other,) = in_session(tmp_path / "home-b", kw(data, "check"))
    assert other.returncode == 6
    assert "laptop and user account" in other.stderr and "Traceback" not in other.stderr
    # And back on the first login, still fine: nothing was changed by the failed attempt.
    (again,) = in_session(tmp_path / "home-a", kw(data, "check"))
    assert again.returncode == 0, again.stderr
