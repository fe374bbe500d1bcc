"""Settings: the controller this laptop syncs with, enrolment, idle lock time, and About.

Dumb: ``render(SettingsState)`` in; ``sig_enrol(controller_url, code)`` and
``sig_idle_minutes(minutes)`` out. The window calls the sync engine's ``enrol`` through a
worker and shows the outcome with ``show_enrol_result``.
"""

from __future__ import annotations

import platform
import sys
from dataclasses import dataclass, field

from PySide6 import __version__ as pyside_version
from PySide6.QtCore import Signal, qVersion
from PySide6.QtWidgets import (
    QDialog, QDialogButtonBox, QFormLayout, QLabel, QLineEdit, QProgressBar, QPushButton,
    QSpinBox, QTabWidget, QVBoxLayout, QWidget,
)

from keyworker_app import __version__ as app_version

from .start import Banner


@dataclass(frozen=True)
class SettingsState:
    controller_url: str = ""
    enrolled: bool = False
    can_enrol: bool = False              # a sync engine is installed
    idle_minutes: int = 10
    idle_max_minutes: int = 10           # the organisation's limit: a keyworker may only lower it
    versions: dict[str, str] = field(default_factory=dict)


def versions(cipher_version: str = "") -> dict[str, str]:
    """The versions shown in About (no personal data: safe to copy into a support call)."""
    return {
        "Keyworker": app_version,
        "Python": platform.python_version(),
        "Qt": qVersion(),
        "PySide6": pyside_version,
        "SQLCipher": cipher_version or "shown after unlocking",
        "System": f"{platform.system()} {platform.release()} ({sys.platform})",
    }


class SettingsDialog(QDialog):
    sig_enrol = Signal(str, str)
    sig_idle_minutes = Signal(int)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWindowTitle("Settings")
        self.setMinimumWidth(560)
        self.tabs = QTabWidget()
        self.tabs.setAccessibleName("Settings sections")

        # Sync
        self.controller_url = QLineEdit()
        self.controller_url.setAccessibleName("Controller address")
        self.controller_url.setPlaceholderText("https://controller.example.org")
        self.code = QLineEdit()
        self.code.setAccessibleName("Enrolment code")
        self.code.setPlaceholderText("the one-time code your manager gave you")
        self.enrol_button = QPushButton("Enrol this laptop")
        self.enrol_button.setAccessibleName("Enrol this laptop")
        self.enrol_button.setProperty("primary", True)
        self.enrol_status = QLabel()
        self.enrol_status.setWordWrap(True)
        self.enrol_busy = QProgressBar()
        self.enrol_busy.setRange(0, 0)
        self.enrol_busy.setAccessibleName("Enrolling")
        self.enrol_busy.hide()
        self.enrol_banner = Banner()
        sync_page = QWidget()
        sync_form = QFormLayout(sync_page)
        explain = QLabel("Enrolling connects this laptop to your organisation's controller, so "
                         "Sync can send what each recipient is allowed to receive and fetch new "
                         "referrals. You need the address and a one-time code from your manager.")
        explain.setWordWrap(True)
        explain.setProperty("role", "hint")
        sync_form.addRow(explain)
        sync_form.addRow("Status", self.enrol_status)
        sync_form.addRow("Controller &address", self.controller_url)
        sync_form.addRow("Enrolment &code", self.code)
        sync_form.addRow("", self.enrol_button)
        sync_form.addRow(self.enrol_busy)
        sync_form.addRow(self.enrol_banner)
        self.tabs.addTab(sync_page, "&Sync")

        # Security
        self.idle_minutes = QSpinBox()
        self.idle_minutes.setAccessibleName("Lock after this many minutes without use")
        self.idle_minutes.setSuffix(" minutes")
        self.idle_limit = QLabel()
        self.idle_limit.setWordWrap(True)
        self.idle_limit.setProperty("role", "hint")
        security_page = QWidget()
        security_form = QFormLayout(security_page)
        security_form.addRow("&Lock after", self.idle_minutes)
        security_form.addRow(self.idle_limit)
        self.tabs.addTab(security_page, "Se&curity")

        # About
        self.about = QLabel()
        self.about.setWordWrap(True)
        self.about.setAccessibleName("Versions")
        about_page = QWidget()
        about_layout = QVBoxLayout(about_page)
        about_layout.addWidget(self.about)
        about_layout.addStretch(1)
        self.tabs.addTab(about_page, "A&bout")

        buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Close)
        buttons.button(QDialogButtonBox.StandardButton.Close).setAccessibleName("Close settings")
        buttons.rejected.connect(self.reject)
        layout = QVBoxLayout(self)
        layout.addWidget(self.tabs)
        layout.addWidget(buttons)

        self.enrol_button.clicked.connect(self._enrol)
        self.idle_minutes.valueChanged.connect(self.sig_idle_minutes)
        self.setTabOrder(self.controller_url, self.code)
        self.setTabOrder(self.code, self.enrol_button)
        self.render(SettingsState(versions=versions()))

    def render(self, state: SettingsState) -> None:  # type: ignore[override]  # the render(state) convention
        self.controller_url.setText(state.controller_url)
        if not state.can_enrol:
            self.enrol_status.setText("Sync is not installed in this copy of Keyworker. "
                                      "Your work is kept safely on this laptop.")
        elif state.enrolled:
            self.enrol_status.setText(f"Enrolled with {state.controller_url}.")
        else:
            self.enrol_status.setText("Not enrolled with a controller yet.")
        for widget in (self.controller_url, self.code, self.enrol_button):
            widget.setEnabled(state.can_enrol)
        self.idle_minutes.blockSignals(True)
        self.idle_minutes.setRange(1, max(1, state.idle_max_minutes))
        self.idle_minutes.setValue(min(state.idle_minutes, state.idle_max_minutes))
        self.idle_minutes.blockSignals(False)
        self.idle_limit.setText(
            "Keyworker locks itself when left alone, and keeps any form you were filling in. "
            f"Your organisation allows at most {state.idle_max_minutes} minutes.")
        rows = "".join(f"<tr><td><b>{name}</b>&nbsp;&nbsp;</td><td>{value}</td></tr>"
                       for name, value in state.versions.items())
        self.about.setText("<p>Keyworker: encrypted, offline-first casework for employment "
                           f"support.</p><table>{rows}</table>")

    def _enrol(self) -> None:
        url, code = self.controller_url.text().strip(), self.code.text().strip()
        if not url or not code:
            self.enrol_banner.show_message("error", "Enter both the controller address and the code.")
            return
        self.enrol_banner.clear_message()
        self.enrol_busy.show()
        self.enrol_button.setEnabled(False)
        self.sig_enrol.emit(url, code)

    def show_enrol_result(self, ok: bool, text: str) -> None:
        self.enrol_busy.hide()
        self.enrol_button.setEnabled(True)
        if ok:
            self.code.clear()
            self.enrol_banner.show_message("info", text)
        else:
            self.enrol_banner.show_message("error", text)
        self.adjustSize()   # room for the message, without squeezing the explanation
