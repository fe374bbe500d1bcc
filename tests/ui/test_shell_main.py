"""``keyworker-app``: core commands still work; no command opens the window on --data-dir."""

from __future__ import annotations

from pathlib import Path

import pytest

from keyworker_app.paths import AppPaths
from ui import app as ui_app
from ui import main as ui_main
from ui import qt_check


def test_no_command_opens_the_window_on_the_data_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    opened: list[AppPaths] = []
    monkeypatch.setattr(ui_app, "run_app", lambda paths, argv=None: opened.append(paths) or 0)
    assert ui_main.main(["--data-dir", str(tmp_path / "p")]) == 0
    assert opened and opened[0].data == (tmp_path / "p").resolve()


def test_core_commands_still_run(locked_profile: AppPaths, capsys: pytest.CaptureFixture[str]) -> None:
    assert ui_main.main(["--data-dir", str(locked_profile.data), "info"]) == 0
    assert "KW-0001" in capsys.readouterr().out


def test_the_pyside_check_speaks_plainly() -> None:
    text = qt_check.problem()
    assert text == "" or ("PySide6" in text and "IT team" in text)


def test_the_installed_pyside6_keeps_its_references() -> None:
    """Guards the dependency pin: a PySide6 that leaks None's references would abort the app."""
    from ui import qt_check

    assert qt_check.problem() == ""
