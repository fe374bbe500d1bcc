"""Canary through the desktop: a distinctive person searched for, opened, typed into a form,
left as a draft and locked away. Afterwards no file the app could have written — the profile
folder, the temp folder, the user's config, data and cache folders — holds any of it in
plain text, and no file is an unencrypted SQLite database."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.records import Participant
from support import PASSPHRASE, fast_kdf
from ui.form_view import FormView
from ui.window import MainWindow

FAMILY, GIVEN = "Vantablackwood", "Quenby"
NI, EMAIL = "JW482913C", "quenby.vbw@example.org"
TYPED = "Canarytyped worries about rent arrears"
NEEDLES = [FAMILY, GIVEN, NI, EMAIL, TYPED]


def files_written_since(roots: list[Path], since: float) -> list[Path]:
    found = []
    for root in roots:
        if not root.exists():
            continue
        for path in root.rglob("*"):
            try:
                if path.is_file() and path.stat().st_mtime >= since and path.stat().st_size < 512 * 1024 * 1024:
                    found.append(path)
            except OSError:
                continue  # a file another process removed while we looked
    return found


def test_nothing_typed_in_the_desktop_leaves_the_encrypted_store(
    qtbot: QtBot, ui_paths: AppPaths, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The app's temp folder, for Python and for Qt, is one this test owns: anything the app
    # puts in "temp" lands here, and nothing another process writes can confuse the scan.
    own_temp = tmp_path / "temp"
    own_temp.mkdir()
    monkeypatch.setenv("TMPDIR", str(own_temp))
    monkeypatch.setattr(tempfile, "tempdir", str(own_temp))
    started = time.time() - 1
    store, _ = Profile.at(ui_paths).create("KW-0001", "working_well_ses", PASSPHRASE, kdf=fast_kdf())
    store.save(Participant(given_name=GIVEN, family_name=FAMILY, ni_number=NI, email=EMAIL,
                           participant_ref="WWS-000777", programme="working_well_ses", strand="ips"))
    store.close()

    window = MainWindow(ui_paths)
    qtbot.addWidget(window)
    window.show()
    page = window.start.unlock_page
    page.passphrase.setText(PASSPHRASE)
    with qtbot.waitSignals([window.sig_unlocked, window.model.sig_loaded], timeout=20_000):
        qtbot.mouseClick(page.unlock_button, Qt.MouseButton.LeftButton)
    with qtbot.waitSignal(window.model.sig_loaded, timeout=20_000):
        window.caseload.search.setText(FAMILY[:6])
    assert window.model.rowCount() == 1
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(window.model.participant_id(0))
    assert window.record_view is not None
    # Start an initial assessment and type into its first free-text question, then lock:
    # the unsaved answers become an encrypted draft.
    form = window.record_view.open_form("initial_assessment")
    assert isinstance(form, FormView) and form.state is not None
    question = next(f for f in form.state.form.fields if f.type in ("multiline", "text") and not f.maps_to)
    form.set_answer(question.id, TYPED)
    with qtbot.waitSignal(window.sig_locked, timeout=20_000):
        qtbot.keyClick(window, Qt.Key.Key_L, Qt.KeyboardModifier.ControlModifier)
    window.close()

    home = Path.home()
    roots = [ui_paths.data, own_temp, home / ".config", home / ".local" / "share", home / ".cache"]
    leaks = []
    for path in files_written_since(roots, started):
        try:
            data = path.read_bytes()
        except OSError:
            continue  # gone since it was listed: a removed file holds nothing
        if data.startswith(b"SQLite format 3"):
            leaks.append(f"{path} is an unencrypted SQLite file")
        for needle in NEEDLES:
            for encoding in ("utf-8", "utf-16-le"):
                if needle.lower().encode(encoding) in data.lower():
                    leaks.append(f"{needle!r} in {path}")
    assert leaks == []
    # And the draft really was kept, inside the store.
    store = Profile.at(ui_paths).unlock(PASSPHRASE)
    drafts = [d for d in store.drafts() if TYPED in str(d.answers)]
    store.close()
    assert drafts, "the typed answer should be kept as an encrypted draft"
