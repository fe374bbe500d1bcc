"""The screens before any data is shown: create a profile, or unlock one.

Dumb widgets: what to show comes in through ``show_create``/``show_unlock``/``show_failure``,
and what the keyworker asked for goes out as ``sig_create`` and ``sig_unlock``. The window
runs the slow part (the memory-hard key derivation) through the operations layer, off the
GUI thread, and calls ``set_busy`` around it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from PySide6.QtCore import QEvent, QObject, Qt, QTimer, Signal
from PySide6.QtGui import QKeyEvent
from PySide6.QtWidgets import (
    QCheckBox,
    QComboBox,
    QFormLayout,
    QFrame,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QStackedWidget,
    QVBoxLayout,
    QWidget,
)

from keyworker_app.errors import (
    LockedOut,
    UnlockTooSoon,
    WeakPassphrase,
    WrongPassphrase,
)
from keyworker_app.security import check_passphrase, passphrase_strength

from .operations import OpFailure
from .resources import restyle

STRENGTH_WORDS = ("Too short", "Weak", "Fair", "Good", "Strong")


class Banner(QLabel):
    """A plain message: error, warning or information, always with words, never colour alone."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWordWrap(True)
        self.setContentsMargins(10, 4, 6, 4)  # the words never touch the coloured edge
        self.setAccessibleName("Message")
        self.hide()

    def show_message(self, role: str, text: str) -> None:
        prefix = {"error": "Problem: ", "warning": "Warning: ", "info": ""}.get(role, "")
        self.setProperty("role", role)
        self.setText(prefix + text)
        self.setAccessibleDescription(text)
        restyle(self)
        self.show()

    def show_failure(self, failure: OpFailure) -> None:
        self.show_message("error", failure.text)

    def clear_message(self) -> None:
        self.setText("")
        self.hide()


def _title(text: str, role: str = "title") -> QLabel:
    label = QLabel(text)
    label.setProperty("role", role)
    label.setWordWrap(True)
    return label


def _password_field(name: str) -> QLineEdit:
    field = QLineEdit()
    field.setEchoMode(QLineEdit.EchoMode.Password)
    field.setAccessibleName(name)
    field.setMinimumWidth(320)
    return field


class CapsLockWatcher(QObject):
    """Guesses Caps Lock from what a passphrase field is typed, and shows a warning.

    Qt reports no Caps Lock state (``QGuiApplication.queryKeyboardModifiers`` has no such
    modifier, and native modifiers differ by platform), so this reads the letters themselves:
    a capital typed without Shift, or a small letter typed with Shift, means Caps Lock is on.
    It says nothing until a letter has been typed, and letters without case (most scripts
    other than Latin, Greek and Cyrillic) leave it as it was.
    """

    def __init__(self, field: QLineEdit, warning: QLabel) -> None:
        super().__init__(field)
        self._warning = warning
        warning.hide()
        field.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 - Qt's name
        if event.type() == QEvent.Type.KeyPress and isinstance(event, QKeyEvent):
            text = event.text()
            if len(text) == 1 and text.lower() != text.upper():
                shift = bool(event.modifiers() & Qt.KeyboardModifier.ShiftModifier)
                self._warning.setVisible(text.isupper() != shift)
        return False


def _caps_warning() -> QLabel:
    label = QLabel("Caps Lock seems to be on: your passphrase is being typed in capitals.")
    label.setWordWrap(True)
    label.setProperty("role", "warning")
    label.setAccessibleName("Caps Lock warning")
    return label


def _finish_page(layout: QVBoxLayout, form: QFormLayout, banner: Banner, button: QPushButton) -> None:
    """The end of a start page: the questions, the message, the button on the right."""
    layout.addLayout(form)
    layout.addWidget(banner)
    buttons = QHBoxLayout()
    buttons.addStretch(1)
    buttons.addWidget(button)
    layout.addLayout(buttons)
    layout.addStretch(1)


@dataclass(frozen=True)
class UnlockInfo:
    """What the unlock screen may say about a locked profile (no personal data)."""

    keyworker_id: str
    programme_name: str
    locked_out: bool = False
    notice: str = ""


class CreateProfilePage(QWidget):
    """Create a profile: programme, keyworker id, passphrase twice with a strength meter."""

    sig_create = Signal(str, str, str)  # keyworker id, programme id, passphrase

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.programme = QComboBox()
        self.programme.setAccessibleName("Programme")
        self.keyworker_id = QLineEdit()
        self.keyworker_id.setAccessibleName("Your keyworker ID")
        self.keyworker_id.setPlaceholderText("for example KW-0123")
        self.passphrase = _password_field("Passphrase")
        self.confirm = _password_field("Type the passphrase again")
        self.show_text = QCheckBox("Show passphrase")
        self.show_text.setAccessibleName("Show passphrase")
        self.strength = QProgressBar()
        self.strength.setRange(0, 4)
        self.strength.setTextVisible(False)
        self.strength.setAccessibleName("Passphrase strength")
        self.strength_word = QLabel(STRENGTH_WORDS[0])
        self.strength_word.setAccessibleName("Passphrase strength")
        self.advice = QLabel()
        self.advice.setWordWrap(True)
        self.advice.setProperty("role", "hint")
        self.advice.setAccessibleName("Passphrase advice")
        self.create_button = QPushButton("Create profile")
        self.create_button.setProperty("primary", True)
        self.create_button.setAccessibleName("Create profile")
        self.create_button.setEnabled(False)
        self.banner = Banner()

        meter = QHBoxLayout()
        meter.addWidget(self.strength, 1)
        meter.addWidget(self.strength_word)
        form = QFormLayout()
        form.addRow("&Programme", self.programme)
        form.addRow("Your &keyworker ID", self.keyworker_id)
        self.caps_warning = _caps_warning()
        self._caps = [CapsLockWatcher(f, self.caps_warning) for f in (self.passphrase, self.confirm)]
        form.addRow("Pass&phrase", self.passphrase)
        form.addRow("", self.caps_warning)
        form.addRow("Type it &again", self.confirm)
        form.addRow("", self.show_text)
        form.addRow("Strength", meter)
        form.addRow("", self.advice)

        layout = QVBoxLayout(self)
        layout.addWidget(_title("Set up Keyworker on this laptop"))
        layout.addWidget(_title(
            "Everything you record is kept encrypted on this laptop. Choose a passphrase you "
            "will remember: at least 12 characters; a few unrelated words work well. Nobody "
            "can reset it for you without your organisation's recovery key.", "subtitle"))
        _finish_page(layout, form, self.banner, self.create_button)

        for field in (self.keyworker_id, self.passphrase, self.confirm):
            field.textChanged.connect(self._update)
        self.show_text.toggled.connect(self._toggle_echo)
        self.create_button.clicked.connect(self._create)
        self.confirm.returnPressed.connect(self._create)
        self.setTabOrder(self.programme, self.keyworker_id)
        self.setTabOrder(self.keyworker_id, self.passphrase)
        self.setTabOrder(self.passphrase, self.confirm)
        self.setTabOrder(self.confirm, self.show_text)
        self.setTabOrder(self.show_text, self.create_button)
        self._update()

    def set_programmes(self, programmes: list[tuple[str, str]]) -> None:
        """``(programme id, name)`` pairs, in the order to offer them."""
        self.programme.clear()
        for programme_id, name in programmes:
            self.programme.addItem(name, programme_id)

    def _toggle_echo(self, shown: bool) -> None:
        mode = QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password
        self.passphrase.setEchoMode(mode)
        self.confirm.setEchoMode(mode)

    def problem(self) -> str:
        """Why the profile cannot be created yet, in plain words ("" when it can)."""
        text = self.passphrase.text()
        if not self.keyworker_id.text().strip():
            return "Enter your keyworker ID."
        if not text:
            return "Choose a passphrase."
        try:
            check_passphrase(text, self.keyworker_id.text().strip())
        except WeakPassphrase as weak:
            return f"{weak.message} {weak.next_step}"
        if self.confirm.text() != text:
            return "The two passphrases are not the same yet."
        return ""

    def _update(self) -> None:
        score = passphrase_strength(self.passphrase.text())
        self.strength.setValue(score)
        self.strength.setProperty("strength", str(score))
        restyle(self.strength)
        word = STRENGTH_WORDS[score]
        self.strength_word.setText(word)
        self.strength.setAccessibleDescription(word)
        problem = self.problem()
        self.advice.setText(problem or "Ready: press Create profile.")
        self.create_button.setEnabled(not problem)

    def _create(self) -> None:
        if self.problem():
            return
        self.sig_create.emit(self.keyworker_id.text().strip(),
                             str(self.programme.currentData() or ""), self.passphrase.text())

    def set_inputs_enabled(self, enabled: bool) -> None:
        for w in (self.programme, self.keyworker_id, self.passphrase, self.confirm, self.show_text):
            w.setEnabled(enabled)
        self.create_button.setEnabled(enabled and not self.problem())


class UnlockPage(QWidget):
    """Unlock an existing profile; every failure gets its own message and next step."""

    sig_unlock = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.heading = _title("Unlock Keyworker")
        self.who = _title("", "subtitle")
        self.notice = Banner()
        self.passphrase = _password_field("Passphrase")
        self.show_text = QCheckBox("Show passphrase")
        self.show_text.setAccessibleName("Show passphrase")
        self.unlock_button = QPushButton("Unlock")
        self.unlock_button.setProperty("primary", True)
        self.unlock_button.setAccessibleName("Unlock")
        self.banner = Banner()
        self._wait_left = 0
        self._locked_out = False
        self._countdown = QTimer(self)
        self._countdown.setInterval(1000)
        self._countdown.timeout.connect(self._tick)

        self.caps_warning = _caps_warning()
        self._caps = CapsLockWatcher(self.passphrase, self.caps_warning)
        form = QFormLayout()
        form.addRow("&Passphrase", self.passphrase)
        form.addRow("", self.caps_warning)
        form.addRow("", self.show_text)
        layout = QVBoxLayout(self)
        layout.addWidget(self.heading)
        layout.addWidget(self.who)
        layout.addWidget(self.notice)
        _finish_page(layout, form, self.banner, self.unlock_button)

        self.show_text.toggled.connect(lambda shown: self.passphrase.setEchoMode(
            QLineEdit.EchoMode.Normal if shown else QLineEdit.EchoMode.Password))
        self.passphrase.returnPressed.connect(self._unlock)
        self.unlock_button.clicked.connect(self._unlock)
        self.passphrase.textChanged.connect(lambda _t: self._refresh_button())
        self.setTabOrder(self.passphrase, self.show_text)
        self.setTabOrder(self.show_text, self.unlock_button)
        self._refresh_button()

    def render(self, info: UnlockInfo) -> None:  # type: ignore[override]  # the render(state) convention
        self.who.setText(f"Profile for {info.keyworker_id} on {info.programme_name}."
                         " Enter your passphrase to open your caseload.")
        self.banner.clear_message()
        self.passphrase.clear()
        if info.notice:
            self.notice.show_message("info", info.notice)
        else:
            self.notice.clear_message()
        self._locked_out = info.locked_out
        if info.locked_out:
            self.banner.show_message("error", f"{LockedOut.message}\n{LockedOut.next_step}")
        self._refresh_button()

    def show_failure(self, failure: OpFailure) -> None:
        self.banner.show_failure(failure)
        error = failure.error
        self.passphrase.clear()
        if isinstance(error, LockedOut):
            self._locked_out = True
        wait = 0.0
        if isinstance(error, UnlockTooSoon):
            wait = error.wait_seconds
        elif isinstance(error, WrongPassphrase):
            wait = error.delay_seconds
        if wait > 0:
            self._wait_left = math.ceil(wait)
            self._countdown.start()
        self._refresh_button()
        self.passphrase.setFocus()

    @property
    def seconds_to_wait(self) -> int:
        return self._wait_left

    def _tick(self) -> None:
        self._wait_left = max(0, self._wait_left - 1)
        if not self._wait_left:
            self._countdown.stop()
        self._refresh_button()

    def _refresh_button(self) -> None:
        waiting = self._wait_left > 0
        self.unlock_button.setText(f"Unlock (wait {self._wait_left} s)" if waiting else "Unlock")
        self.unlock_button.setEnabled(not waiting and not self._locked_out
                                      and bool(self.passphrase.text()))
        self.passphrase.setEnabled(not self._locked_out)

    def _unlock(self) -> None:
        if self.unlock_button.isEnabled():
            self.sig_unlock.emit(self.passphrase.text())

    def set_inputs_enabled(self, enabled: bool) -> None:
        self.passphrase.setEnabled(enabled and not self._locked_out)
        self.show_text.setEnabled(enabled)
        if enabled:
            self._refresh_button()
        else:
            self.unlock_button.setEnabled(False)


class StartScreen(QWidget):
    """Create or unlock, with a busy indicator while the key is derived."""

    sig_create = Signal(str, str, str)
    sig_unlock = Signal(str)

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("startScreen")
        # Made from the outside in, each widget straight into its place: moving a finished
        # page into its parent would apply the stylesheet to all of it again (the first
        # window comes quicker).
        card = QFrame(self)
        self.pages = QStackedWidget(card)
        self.create_page = CreateProfilePage(self.pages)
        self.unlock_page = UnlockPage(self.pages)
        self.pages.addWidget(self.create_page)
        self.pages.addWidget(self.unlock_page)
        self.busy = QProgressBar(card)
        self.busy.setRange(0, 0)  # indeterminate: the key derivation gives no progress
        self.busy.setAccessibleName("Working")
        self.busy_label = QLabel(card)
        self.busy_label.setProperty("role", "hint")
        self.busy.hide()
        self.busy_label.hide()

        card.setObjectName("card")
        card.setMaximumWidth(720)
        inner = QVBoxLayout(card)
        inner.setContentsMargins(28, 24, 28, 24)
        inner.addWidget(self.pages)
        inner.addWidget(self.busy_label)
        inner.addWidget(self.busy)
        outer = QVBoxLayout(self)
        outer.addStretch(1)
        row = QHBoxLayout()
        row.addStretch(1)
        row.addWidget(card, 4)
        row.addStretch(1)
        outer.addLayout(row)
        outer.addStretch(2)

        self.create_page.sig_create.connect(self.sig_create)
        self.unlock_page.sig_unlock.connect(self.sig_unlock)

    def show_create(self, programmes: list[tuple[str, str]]) -> None:
        self.create_page.set_programmes(programmes)
        self.pages.setCurrentWidget(self.create_page)
        self.create_page.programme.setFocus()

    def show_unlock(self, info: UnlockInfo) -> None:
        self.unlock_page.render(info)
        self.pages.setCurrentWidget(self.unlock_page)
        self.unlock_page.passphrase.setFocus()

    def show_failure(self, failure: OpFailure) -> None:
        page = self.pages.currentWidget()
        if page is self.unlock_page:
            self.unlock_page.show_failure(failure)
        else:
            self.create_page.banner.show_failure(failure)

    def set_busy(self, busy: bool, text: str = "") -> None:
        self.busy.setVisible(busy)
        self.busy_label.setVisible(busy)
        self.busy_label.setText(text)
        self.create_page.set_inputs_enabled(not busy)
        self.unlock_page.set_inputs_enabled(not busy)
