"""Building and running the Qt application around :class:`ui.window.MainWindow`."""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from keyworker_app.paths import AppPaths

from . import qt_check
from .resources import apply_style
from .window import Enrol, MainWindow, SyncFactory

log = logging.getLogger("keyworker.ui")


def make_application(argv: Sequence[str] | None = None) -> QApplication:
    """The one QApplication, styled; reused when one exists (tests, benchmarks)."""
    existing = QApplication.instance()
    if isinstance(existing, QApplication):
        apply_style(existing)
        return existing
    # Follow the system's scaling exactly (125% stays 125%, not rounded to 100 or 200).
    QGuiApplication.setHighDpiScaleFactorRoundingPolicy(
        Qt.HighDpiScaleFactorRoundingPolicy.PassThrough)
    app = QApplication(list(argv) if argv is not None else sys.argv[:1])
    app.setApplicationName("Keyworker")
    app.setOrganizationName("Keyworker")
    app.setApplicationDisplayName("Keyworker")
    apply_style(app)
    return app


def discover_sync() -> tuple[SyncFactory | None, Enrol | None]:
    """The sync engine's hooks, when the ``sync`` package provides them (import guarded).

    Expected (and asked of the sync engineer): ``sync.service.make_service(store)`` returning
    an object with ``run(progress_callback)``, and ``sync.service.enrol(url, code)``.
    """
    try:
        from sync import service  # type: ignore[attr-defined]
    except ImportError:
        return None, None
    factory = getattr(service, "make_service", None)
    enrol = getattr(service, "enrol", None)
    return (factory if callable(factory) else None, enrol if callable(enrol) else None)


def run_app(paths: AppPaths, argv: Sequence[str] | None = None) -> int:
    """Open the window on the profile at ``paths`` and run until it closes."""
    app = make_application(argv)
    factory, enrol = discover_sync()
    window = MainWindow(paths, sync_factory=factory, enrol=enrol)
    fault = qt_check.problem()
    if fault:
        log.warning("PySide6 build loses references; pin PySide6-Essentials != 6.12.0")
        print(fault, file=sys.stderr)
        window.show_platform_warning(fault)
    window.show()
    log.info("window opened")
    return int(app.exec())
