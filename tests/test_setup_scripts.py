"""scripts/venv.sh: install once, then start with no package index (a kitchen with no signal).

The venv here has a stand-in ``bin/python`` that only records how it was called: that is
the one way to see, without a network, whether the script would have gone to a package
index. The real install is what CI's clean-clone run of ``.ci/run`` exercises.
"""

from __future__ import annotations

import hashlib
import os
import stat
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def fake_venv(tmp_path: Path) -> tuple[Path, Path]:
    venv = tmp_path / "venv"
    (venv / "bin").mkdir(parents=True)
    calls = tmp_path / "calls.log"
    python = venv / "bin" / "python"
    python.write_text(f'#!/bin/sh\necho "$@" >> "{calls}"\n')
    python.chmod(python.stat().st_mode | stat.S_IXUSR)
    return venv, calls


def source_venv(venv: Path, extras: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, KEYWORKER_VENV=str(venv), PYTHON=sys.executable)
    return subprocess.run(["bash", "-c", f'source "{ROOT}/scripts/venv.sh" "{extras}"'],
                          env=env, capture_output=True, text=True, timeout=60)


def pyproject_hash() -> str:
    return hashlib.sha256((ROOT / "pyproject.toml").read_bytes()).hexdigest()


def test_the_first_start_installs_and_records_it(tmp_path: Path) -> None:
    venv, calls = fake_venv(tmp_path)
    assert source_venv(venv, "").returncode == 0
    assert f"-m pip install --quiet -e {ROOT}" in calls.read_text()
    assert (venv / ".keyworker-installed").read_text().strip() == pyproject_hash()


def test_a_later_start_goes_nowhere_near_a_package_index(tmp_path: Path) -> None:
    venv, calls = fake_venv(tmp_path)
    (venv / ".keyworker-installed").write_text(pyproject_hash() + "\n")
    assert source_venv(venv, "").returncode == 0
    assert not calls.exists()


def test_the_test_install_also_serves_the_app(tmp_path: Path) -> None:
    venv, calls = fake_venv(tmp_path)
    (venv / ".keyworker-installed[test]").write_text(pyproject_hash() + "\n")
    assert source_venv(venv, "").returncode == 0 and not calls.exists()
    assert source_venv(venv, "[test]").returncode == 0 and not calls.exists()


def test_a_changed_pyproject_or_missing_extras_install_again(tmp_path: Path) -> None:
    venv, calls = fake_venv(tmp_path)
    (venv / ".keyworker-installed").write_text("an older pyproject.toml\n")
    assert source_venv(venv, "").returncode == 0
    assert f"-e {ROOT}" in calls.read_text()
    calls.unlink()
    (venv / ".keyworker-installed").write_text(pyproject_hash() + "\n")
    assert source_venv(venv, "[test]").returncode == 0   # the base install has no test tools
    assert f"-e {ROOT}[test]" in calls.read_text()
    assert (venv / ".keyworker-installed[test]").read_text().strip() == pyproject_hash()
