"""Fault tests reuse the sync tests' fixtures: a real controller (SQLite and PostgreSQL) and
a laptop profile, loaded from tests/sync/conftest.py under a unique module name."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from typing import Any

_SYNC_TESTS = Path(__file__).resolve().parents[1] / "sync"
if str(_SYNC_TESTS) not in sys.path:
    sys.path.insert(0, str(_SYNC_TESTS))


def _load(name: str, path: Path) -> Any:
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


_sc = _load("keyworker_sync_test_fixtures", _SYNC_TESTS / "conftest.py")
db_url = _sc.db_url
profile_case = _sc.profile_case
controller_factory = _sc.controller_factory
controller = _sc.controller
laptop = _sc.laptop
no_sleep = _sc.no_sleep
app_cli = _sc.app_cli
