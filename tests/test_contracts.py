"""The layers point downwards: ui -> sync -> keyworker_app; the core has no Qt or network."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def imported_modules(package: str) -> dict[str, set[str]]:
    found: dict[str, set[str]] = {}
    for path in (ROOT / package).rglob("*.py"):
        names: set[str] = set()
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Import):
                names.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names.add(node.module.split(".")[0])
        found[str(path.relative_to(ROOT))] = names
    return found


def offenders(package: str, forbidden: set[str]) -> list[str]:
    return [f"{file} imports {sorted(names & forbidden)}"
            for file, names in imported_modules(package).items() if names & forbidden]


def test_core_imports_neither_qt_nor_httpx() -> None:
    assert offenders("keyworker_app", {"PySide6", "httpx", "sync", "ui", "controller", "fastapi"}) == []


def test_sync_never_imports_qt_or_ui() -> None:
    assert offenders("sync", {"PySide6", "ui", "controller"}) == []


def test_controller_depends_only_on_the_core() -> None:
    assert offenders("controller", {"PySide6", "ui", "sync"}) == []


def test_import_linter_contracts_hold() -> None:
    result = subprocess.run([str(Path(sys.executable).parent / "lint-imports"), "--config",
                             str(ROOT / "pyproject.toml")], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_the_contract_check_would_catch_a_violation(tmp_path: Path) -> None:
    bad = ROOT / "keyworker_app" / "_contract_probe.py"
    bad.write_text("import httpx  # deliberately forbidden\n", encoding="utf-8")
    try:
        assert offenders("keyworker_app", {"httpx"}) == ["keyworker_app/_contract_probe.py imports ['httpx']"]
    finally:
        bad.unlink()
