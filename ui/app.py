"""Building and running the Qt application around :class:`ui.window.MainWindow`."""

from __future__ import annotations

import logging
import sys
from typing import Sequence

from PySide6.QtCore import Qt
from PySide6.QtGui import QGuiApplication
from PySide6.QtWidgets import QApplication

from keyworker_app.paths import AppPaths
from sync.service import make_service

from . import qt_check
from .resources import apply_style
from .window import MainWindow, SyncFactory

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


def sync_factory(paths: AppPaths) -> SyncFactory:
    """Makes the sync service for each store the window unlocks from the profile at ``paths``."""
    return lambda store: make_service(store, paths)


def run_app(paths: AppPaths, argv: Sequence[str] | None = None) -> int:
    """Open the window on the profile at ``paths`` and run until it closes."""
    app = make_application(argv)
    window = MainWindow(paths, sync_factory=sync_factory(paths))
    fault = qt_check.problem()
    if fault:
        log.warning("PySide6 build loses references; pin PySide6-Essentials != 6.12.0")
        print(fault, file=sys.stderr)
        window.show_platform_warning(fault)
    window.show()
    log.info("window opened")
    return int(app.exec())
