"""Fixtures for the sync tests: a laptop profile with a synthetic caseload, and a real
controller process on loopback on SQLite and on PostgreSQL.

The controller fixtures (``db_url``, ``profile_case``, ``controller_factory``,
``controller``) are the controller tests' own, loaded from ``tests/controller/conftest.py``
under a unique module name, so both suites start controllers the same way.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from support import PASSPHRASE

_CONTROLLER_TESTS = Path(__file__).resolve().parents[1] / "controller"
if str(_CONTROLLER_TESTS) not in sys.path:
    sys.path.insert(0, str(_CONTROLLER_TESTS))


def _load_controller_conftest() -> Any:
    name = "keyworker_controller_test_fixtures"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, _CONTROLLER_TESTS / "conftest.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_cc = _load_controller_conftest()
db_url = _cc.db_url
profile_case = _cc.profile_case
controller_factory = _cc.controller_factory
controller = _cc.controller
Controller = _cc.Controller
run_cli = _cc.run_cli

from sync_testkit import KEYWORKER, Laptop  # noqa: E402

@pytest.fixture
def laptop(tmp_path: Path) -> Laptop:
    return Laptop(tmp_path / "laptop")


@pytest.fixture
def no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The CLI's retry policy, with sleeps recorded instead of slept."""
    from sync import cli
    from sync.retry import RetryPolicy

    slept: list[float] = []
    monkeypatch.setattr(cli, "retry_policy", lambda: RetryPolicy(sleep=slept.append))
    return slept


@pytest.fixture
def app_cli(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``keyworker-app`` (core commands plus sync's) in-process: (exit code, out, err)."""
    from keyworker_app.cli import main
    from sync.cli import add_commands

    monkeypatch.setenv("KEYWORKER_PASSPHRASE", PASSPHRASE)

    def run(laptop: Laptop, *args: str) -> tuple[int, str, str]:
        capsys.readouterr()
        code = main(["--data-dir", str(laptop.paths.data), *args], extend=[add_commands])
        out, err = capsys.readouterr()
        return code, out, err

    return run


@pytest.fixture
def enrolled(controller: Any, laptop: Laptop, app_cli: Callable[..., tuple[int, str, str]],
             no_sleep: list[float]) -> Iterator[tuple[Any, Laptop]]:
    """A laptop enrolled with a fresh controller (through the real CLI)."""
    code = controller.new_code(KEYWORKER)
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code)
    assert exit_code == 0, out + err
    yield controller, laptop
