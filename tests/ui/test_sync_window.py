"""The desktop's sync against a REAL controller process on loopback (SQLite backend).

Enrol through Settings, save, Sync now, referrals, items set aside, offline, revocation, and
every enrolment failure in plain words. The window runs the real ``sync.service`` (retries
declared with no sleeping); the controller is ``python -m controller serve`` started by the
controller tests' own testkit. Waits are on the operations layer's signals, never sleeps.
Synthetic people only.
"""

from __future__ import annotations

import json
import re
import socket
import sys
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot

from keyworker_app.paths import AppPaths
from keyworker_app.profile import Profile
from keyworker_app.records import Participant
from keyworker_app.store.store import Store
from shell_support import participant
from support import PASSPHRASE, fast_kdf
from sync.enrolment import META_DEVICE
from sync.retry import RetryPolicy
from sync.service import make_service
from ui.settings import SettingsDialog
from ui.window import MainWindow

_TESTS = Path(__file__).resolve().parents[1]
for _folder in ("controller", "sync"):
    if str(_TESTS / _folder) not in sys.path:
        sys.path.insert(0, str(_TESTS / _folder))

from controller_testkit import Controller, ProfileCase, start_controller  # noqa: E402
from test_shell_window import MakeWindow, make_window, unlock  # noqa: E402,F401 - a fixture
from test_sync_tls import make_pki  # noqa: E402

KEYWORKER = "kw-ui-1"

#: The controller checks receipts against the real sharing profiles (no test-only file);
#: ``start_controller`` reads only ``profiles_file`` from this.
REAL_PROFILES = ProfileCase(profile_id="", record_type="", allowed=(), outside_field="", programme="",
                            strand="", profiles_file=None, strand_profile=None,
                            strand_profile_record_type=None)

#: Retries as declared, but without waiting between them (the test would only sleep).
NO_WAITING = RetryPolicy(max_attempts=2, sleep=lambda _seconds: None)

StartController = Callable[..., Controller]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[StartController]:
    """Start controllers on one SQLite file; stopped after the test."""
    started: list[Controller] = []

    def run(*extra: str) -> Controller:
        controller = start_controller(f"sqlite:///{tmp_path / 'controller.sqlite3'}", tmp_path,
                                      REAL_PROFILES, *extra)
        started.append(controller)
        return controller

    yield run
    for controller in started:
        controller.stop()


@pytest.fixture
def window(qtbot: QtBot, ui_paths: AppPaths, make_window: MakeWindow) -> MainWindow:
    """An unlocked window on an empty profile for KEYWORKER, with the real sync service."""
    store, _ = Profile.at(ui_paths).create(KEYWORKER, "working_well_ses", PASSPHRASE, kdf=fast_kdf())
    store.close()
    made = make_window(ui_paths, sync_factory=lambda s: make_service(s, ui_paths, retry=NO_WAITING))
    unlock(qtbot, made)
    return made


def open_store(window: MainWindow) -> Store:
    store = window.ops.store
    assert store is not None
    return store


def enrol_through_settings(qtbot: QtBot, window: MainWindow, url: str, code: str) -> SettingsDialog:
    if window.settings_dialog is None or not window.settings_dialog.isVisible():
        window.open_settings()
    dialog = window.settings_dialog
    assert dialog is not None
    dialog.controller_url.setText(url)
    dialog.code.setText(code)
    with qtbot.waitSignal(window.ops.sig_finished, timeout=60_000,
                          check_params_cb=lambda handle: handle.label == "Enrolling"):
        qtbot.mouseClick(dialog.enrol_button, Qt.MouseButton.LeftButton)
    return dialog


def press_sync_now(qtbot: QtBot, window: MainWindow) -> None:
    with qtbot.waitSignal(window.ops.sig_finished, timeout=60_000,
                          check_params_cb=lambda handle: handle.label == "Syncing"):
        qtbot.mouseClick(window.sync_status.sync_button, Qt.MouseButton.LeftButton)


def show_record(qtbot: QtBot, window: MainWindow, participant_id: str) -> None:
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000):
        window.open_participant(participant_id)
    # The section on screen is filled at once, the others in the idle moments after.
    qtbot.waitUntil(lambda: window.record_view.rendered)  # type: ignore[union-attr]


def sharing_rows(window: MainWindow) -> list[list[str]]:
    table = window.record_view.sharing_table  # type: ignore[union-attr]
    return [[table.cell(r, c) for c in range(5)] for r in range(table.row_count())]


def referral_file(folder: Path) -> Path:
    path = folder / f"referral-{uuid.uuid4().hex[:6]}.json"
    path.write_text(json.dumps({
        "participant": {"given_name": "Testa", "family_name": "Synthetic", "programme": "working_well_ses",
                        "date_of_birth": "1990-02-03"},
        "referral": {"source_type": "nhs_trust", "reason": "Synthetic referral for a test",
                     "received_on": "2025-05-30"},
    }), "utf-8")
    return path


def test_sync_status_follows_a_real_controller(qtbot: QtBot, window: MainWindow, start: StartController,
                                               tmp_path: Path) -> None:
    controller = start()
    strip = window.sync_status
    assert "Not enrolled" in strip.connection.text()

    # Enrol through Settings with a code from `keyworker-controller enrol`.
    dialog = enrol_through_settings(qtbot, window, controller.base_url, controller.new_code(KEYWORKER))
    assert "now enrolled" in dialog.enrol_banner.text()
    assert f"Enrolled with {controller.base_url}" in dialog.enrol_status.text()
    assert window.sync_state.enrolled and strip.connection.text() == "Not synced yet"
    assert strip.last_sync.text() == "Last sync: Never"
    dialog.reject()

    # Saving a participant puts an item in the outbox: the strip counts it.
    with qtbot.waitSignal(window.ops.sig_changed, timeout=20_000):
        window.ops.save_records([participant(1, keyworker_id=KEYWORKER, participant_ref="WS-000001")])
    assert window.sync_state.waiting == 1 and strip.waiting.text() == "Waiting to send: 1 item"
    qtbot.waitUntil(lambda: window.model.rowCount() == 1)
    pid = window.model.participant_id(0)

    # Sync now: progress reported, nothing left waiting, online, just synced.
    stages: list[str] = []
    window.sig_sync_state.connect(lambda s: stages.append(s.stage) if s.running else None)
    press_sync_now(qtbot, window)
    assert {"Connecting", "Sending", "Fetching referrals"} <= set(stages)
    assert not window.sync_state.running and not strip.progress.isVisible()
    assert window.sync_state.waiting == 0 and strip.waiting.text() == "Waiting to send: 0 items"
    assert strip.connection.text() == "● Online"
    assert strip.last_sync.text() == "Last sync: Just now"
    assert not strip.quarantined.isVisible()

    # The record's sharing history shows what went: to whom, what, basis, field names.
    show_record(qtbot, window, pid)
    rows = sharing_rows(window)
    received = {r["recipient"] for r in json.loads(controller.cli("records", "--format", "json").stdout)}
    assert len(rows) == len(received) >= 2
    assert all(row[2] == "Their details" for row in rows)
    assert all(row[3].startswith("Article 6(1)") for row in rows)
    assert any("Greater Manchester Combined Authority" in row[1] for row in rows)
    assert all("Date of birth" in row[4] for row in rows)   # field names, never values
    assert not any("Given1" in cell or "Family0001" in cell for row in rows for cell in row)

    # A referral queued at the controller arrives at the next sync, announced by reference.
    queued = controller.cli("refer", "--keyworker-id", KEYWORKER, "--file", str(referral_file(tmp_path)))
    assert queued.returncode == 0, queued.stderr
    press_sync_now(qtbot, window)
    announced = window.notice.text()
    assert re.fullmatch(r"1 new referral: WWS-\d{6}\. It is in your caseload\.", announced), announced
    assert "Testa" not in announced and "Synthetic" not in announced
    handle = window.sync_handle
    assert handle is not None
    new_pid = handle.result.new_referrals[0].participant_id
    qtbot.waitUntil(lambda: window.model.rowCount() == 2)
    assert new_pid in {window.model.participant_id(r) for r in range(2)}
    assert open_store(window).participants.get(new_pid).participant_ref in announced

    # The controller refuses an item: a strand it cannot hold is refused on receipt (a real
    # refusal from the real controller). It is set aside; nothing else is held up.
    store = open_store(window)
    current = store.participants.get(pid)
    with qtbot.waitSignal(window.ops.sig_changed, timeout=20_000):
        window.ops.save_records([current.replace(strand="not a strand!")])
    press_sync_now(qtbot, window)
    refused = window.sync_state.quarantined
    assert refused == len(rows)                      # one per recipient of the participant record
    assert strip.quarantined.isVisible() and strip.quarantined.text() == f"⚠ {refused} items set aside — see why"
    assert "set some items aside" in window.problem.text()
    qtbot.mouseClick(strip.quarantined, Qt.MouseButton.LeftButton)
    problems = window.problems_dialog
    assert problems is not None and problems.isVisible()
    assert problems.table.rowCount() == refused
    cells = [problems.table.item(0, c).text() for c in range(problems.table.columnCount())]
    assert cells[0] == "WS-000001" and cells[1] == f"Participant (version {current.version + 1})"
    assert cells[2] in {row[1] for row in rows}
    assert cells[4] and "not a strand!" not in cells[4]      # the controller's reason names no value
    with qtbot.waitSignal(window.sig_record_shown, timeout=20_000,
                          check_params_cb=lambda shown: shown == pid):
        qtbot.mouseClick(problems.open_button, Qt.MouseButton.LeftButton)
    assert window.problems_dialog is None

    # Saving a corrected record makes a new version; once accepted, the items are put right.
    with qtbot.waitSignal(window.ops.sig_changed, timeout=20_000):
        window.ops.save_records([store.participants.get(pid).replace(strand="")])
    press_sync_now(qtbot, window)
    assert window.sync_state.quarantined == 0 and not strip.quarantined.isVisible()
    assert window.problem.text() == ""

    # The controller goes away: Sync now says offline in plain words; nothing is lost.
    controller.stop()
    with qtbot.waitSignal(window.ops.sig_changed, timeout=20_000):
        window.ops.save_records([store.participants.get(pid).replace(postcode="OL2 2BB")])
    press_sync_now(qtbot, window)
    assert strip.connection.text().startswith("○ Offline — the controller could not be reached")
    assert "could not be reached" in window.problem.text()
    assert "Traceback" not in window.problem.text()
    assert window.sync_state.waiting >= 1
    assert strip.last_sync.text() == "Last sync: Just now"   # the last sync that got through


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def test_every_enrolment_failure_is_said_plainly(qtbot: QtBot, window: MainWindow, start: StartController,
                                                 tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    controller = start()
    used = controller.new_code(KEYWORKER)
    assert controller.client().post("/v1/enrol", json={"code": used, "keyworker_id": KEYWORKER,
                                                        "device_name": "another laptop"}).status_code == 200
    ca, cert, key, _pin = make_pki(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))   # for the testkit's own health check only
    tls = start("--certfile", str(cert), "--keyfile", str(key))
    cases = [
        (controller.base_url, "ABCD-EFGH-IJKL-MNOP", "does not recognise that enrolment code"),
        (controller.base_url, controller.new_code("kw-someone-else"), "issued for another keyworker"),
        (controller.base_url, used, "already been used"),
        (controller.base_url, controller.new_code(KEYWORKER, "--valid-hours", "0"), "has expired"),
        (f"http://127.0.0.1:{free_port()}", "ABCD-EFGH-IJKL-MNOP", "could not be reached at that address"),
        (tls.base_url, tls.new_code(KEYWORKER), "certificate could not be trusted"),
        ("http://controller.example.org", "ABCD-EFGH-IJKL-MNOP", "Plain http:// is refused"),
    ]
    for url, code, words in cases:
        dialog = enrol_through_settings(qtbot, window, url, code)
        said = dialog.enrol_banner.text()
        assert words in said, (words, said)
        assert "Traceback" not in said and code not in said
        assert dialog.enrol_button.isEnabled() and not dialog.enrol_busy.isVisible()
        assert not window.sync_state.enrolled
    # A good code after all that: enrolled.
    dialog = enrol_through_settings(qtbot, window, controller.base_url, controller.new_code(KEYWORKER))
    assert "now enrolled" in dialog.enrol_banner.text() and window.sync_state.enrolled


def test_a_revoked_laptop_locks_and_says_why(qtbot: QtBot, window: MainWindow, start: StartController,
                                             ui_paths: AppPaths) -> None:
    controller = start()
    enrol_through_settings(qtbot, window, controller.base_url, controller.new_code(KEYWORKER)).reject()
    device = open_store(window).get_meta(META_DEVICE)
    done = controller.cli("revoke", "--device", device)
    assert done.returncode == 0, done.stderr
    with qtbot.waitSignal(window.sig_locked, timeout=60_000):
        press_sync_now(qtbot, window)
    assert window.locked and window.pages.currentWidget() is window.start
    assert "revoked" in window.start.create_page.banner.text() + window.start.unlock_page.banner.text()
    assert not Profile.at(ui_paths).exists()


def test_referrals_are_announced_together_each_with_a_reference(
        qtbot: QtBot, window: MainWindow, start: StartController, tmp_path: Path) -> None:
    controller = start()
    enrol_through_settings(qtbot, window, controller.base_url, controller.new_code(KEYWORKER)).reject()
    for _ in range(2):
        assert controller.cli("refer", "--keyworker-id", KEYWORKER,
                              "--file", str(referral_file(tmp_path))).returncode == 0
    press_sync_now(qtbot, window)
    assert re.fullmatch(r"2 new referrals: WWS-\d{6}, WWS-\d{6}\. They are in your caseload\.",
                        window.notice.text()), window.notice.text()
    refs = {p.participant_ref for p in open_store(window).repo(Participant).all()}
    assert len(refs) == 2 and "" not in refs
