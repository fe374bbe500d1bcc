"""Screenshots of every main screen of the real app, for docs/screenshots/.

Runs the real window on a demo profile of synthetic participants (nobody real) under a
virtual X display::

    xvfb-run -s "-screen 0 1440x900x24" .venv/bin/python scripts/screenshots.py

Without a display it re-runs itself under ``xvfb-run`` (install it with
``apt-get install -y xvfb``). It also takes the caseload at 125% and 150% scaling
(``QT_SCALE_FACTOR``) in child processes, to check text stays readable.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

OUT = ROOT / "docs" / "screenshots"
PASSPHRASE = "demo orchard kettle 1947 lamp"  # a demo profile of synthetic people only
SIZE = (1440, 900)

#: The record's sections worth a picture each (the others are tables like these).
RECORD_SECTIONS = ("assessments", "barriers", "notes", "consent", "esf")

#: A synthetic referral the demo controller queues for the demo keyworker.
DEMO_REFERRAL = {
    "participant": {"given_name": "Testa", "family_name": "Synthetic", "programme": "working_well_ses",
                    "date_of_birth": "1990-02-03"},
    "referral": {"source_type": "nhs_trust", "reason": "Synthetic referral for the screenshots",
                 "received_on": "2025-05-30"},
}


def ensure_display() -> None:
    if os.environ.get("DISPLAY") or os.environ.get("QT_QPA_PLATFORM") == "offscreen":
        return
    xvfb = shutil.which("xvfb-run")
    if xvfb is None:
        sys.exit("No display. Install Xvfb (apt-get install -y xvfb) or run under xvfb-run.")
    os.execv(xvfb, [xvfb, "-a", "-s", f"-screen 0 {SIZE[0]}x{SIZE[1]}x24", sys.executable, *sys.argv])


def demo_profile(folder: Path, participants: int) -> None:
    """A profile with a synthetic caseload (cheap KDF: it only ever holds made-up people)."""
    from keyworker_app.demo import save_caseload
    from keyworker_app.paths import app_paths
    from keyworker_app.profile import Profile
    from keyworker_app.security import KdfParams
    from keyworker_app.synthetic import generate_caseload

    paths = app_paths(folder)
    if paths.keyfile.exists():
        return
    paths.config.mkdir(parents=True, exist_ok=True)
    paths.org_config.write_text(json.dumps({"kdf_target_seconds": 0.05, "kdf_memory_kib": 8192}))
    store, _ = Profile.at(paths).create("KW-0042", "working_well_ses", PASSPHRASE,
                                        kdf=KdfParams(os.urandom(16), 1, 8192, 1))
    try:
        save_caseload(store, generate_caseload(participants, seed=7, programme="working_well_ses",
                                               keyworker_id="KW-0042"))
    finally:
        store.close()


def wait_for(condition: Callable[[], bool], timeout: float = 30.0) -> None:
    from PySide6.QtWidgets import QApplication

    deadline = time.monotonic() + timeout
    while not condition():
        QApplication.processEvents()
        if time.monotonic() > deadline:
            raise TimeoutError("the app did not get there in time")
        time.sleep(0.01)


def settle(seconds: float = 0.3) -> None:
    from PySide6.QtWidgets import QApplication

    end = time.monotonic() + seconds
    while time.monotonic() < end:
        QApplication.processEvents()
        time.sleep(0.01)


def shoot(widget: object, name: str) -> Path:
    settle()
    path = OUT / f"{name}.png"
    screen = widget.screen().availableGeometry()  # type: ignore[attr-defined]
    frame = widget.frameGeometry()  # type: ignore[attr-defined]
    if frame.width() > screen.width() or frame.height() > screen.height():
        print(f"WARNING: {name} is {frame.width()}x{frame.height()}, wider or taller than the "
              f"{screen.width()}x{screen.height()} screen")
    from PySide6.QtCore import Qt
    from PySide6.QtGui import QImage

    # 256 colours and the tightest compression keep each picture well under 300 KB.
    image = widget.grab().toImage().convertToFormat(  # type: ignore[attr-defined]
        QImage.Format.Format_Indexed8,
        Qt.ImageConversionFlag.ThresholdDither | Qt.ImageConversionFlag.PreferDither)
    image.save(str(path), "PNG", 0)
    print(f"saved {path.relative_to(ROOT)}")
    return path


def unlock(window: object, passphrase: str = PASSPHRASE) -> None:
    page = window.start.unlock_page  # type: ignore[attr-defined]
    page.passphrase.setText(passphrase)
    page.unlock_button.click()
    wait_for(lambda: not window.locked and not window.model.loading)  # type: ignore[attr-defined]
    settle(0.5)


def start_controller(work: Path) -> tuple[subprocess.Popen[str], str, str]:
    """A reference controller on loopback (plain HTTP, SQLite): (process, address, database)."""
    db = f"sqlite:///{work / 'controller.sqlite3'}"
    process = subprocess.Popen([sys.executable, "-m", "controller", "serve", "--db", db, "--port", "0"],
                               cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout is not None
    for line in process.stdout:
        if line.startswith("listening on "):
            return process, line.split("listening on ", 1)[1].strip(), db
    raise RuntimeError("the demo controller did not start")


def controller_cli(db: str, *args: str) -> str:
    done = subprocess.run([sys.executable, "-m", "controller", *args, "--db", db], cwd=ROOT,
                          capture_output=True, text=True, check=True)
    return done.stdout.strip().splitlines()[-1]


def sync_and_wait(window: object) -> None:
    handle = window.sync_now()  # type: ignore[attr-defined]
    assert handle is not None
    wait_for(lambda: handle.finished, timeout=120)


def sync_screens(window: object, work: Path) -> None:
    """Enrol with a real controller, sync, a referral, an item set aside, offline."""
    process, url, db = start_controller(work)
    try:
        window.open_settings()  # type: ignore[attr-defined]
        settings = window.settings_dialog  # type: ignore[attr-defined]
        settings.controller_url.setText(url)
        settings.code.setText(controller_cli(db, "enrol", "--keyworker-id", "KW-0042"))
        settings.enrol_button.click()
        wait_for(lambda: "enrolled" in settings.enrol_banner.text())
        shoot(settings, "10-settings-sync")
        settings.reject()
        sync_and_wait(window)
        referral = work / "referral.json"
        referral.write_text(json.dumps(DEMO_REFERRAL), "utf-8")
        controller_cli(db, "refer", "--keyworker-id", "KW-0042", "--file", str(referral))
        store = window.ops.store  # type: ignore[attr-defined]
        pid = window.open_participant_id  # type: ignore[attr-defined]
        # A strand the controller cannot hold is refused on receipt: the item is set aside.
        window.ops.save_records([store.participants.get(pid).replace(strand="not a strand!")])  # type: ignore[attr-defined]
        sync_and_wait(window)
        shoot(window, "13-sync-new-referral-and-set-aside")
        window.show_sync_problems()  # type: ignore[attr-defined]
        shoot(window.problems_dialog, "14-sync-items-set-aside")  # type: ignore[attr-defined]
        window.problems_dialog.reject()  # type: ignore[attr-defined]
        window.record_view.show_section("sharing")  # type: ignore[attr-defined]
        shoot(window, "08-record-6-sharing")
    finally:
        process.terminate()
        process.wait(timeout=20)
    sync_and_wait(window)
    shoot(window, "15-sync-offline")


def all_screens(work: Path) -> None:
    from PySide6.QtWidgets import QApplication

    from keyworker_app.paths import app_paths
    from ui.app import make_application, sync_factory
    from ui.window import MainWindow

    make_application([sys.argv[0]])

    # 1. A first start: create a profile.
    fresh = app_paths(work / "fresh")
    fresh.config.mkdir(parents=True, exist_ok=True)
    fresh.org_config.write_text(json.dumps({"kdf_target_seconds": 0.05, "kdf_memory_kib": 8192}))
    window = MainWindow(fresh)
    window.resize(*SIZE)
    window.show()
    page = window.start.create_page
    page.programme.setCurrentIndex(page.programme.findData("working_well_ses"))
    page.keyworker_id.setText("KW-0042")
    page.passphrase.setText("kettle orchard")
    shoot(window, "01-create-profile")
    window.close()

    # 2. Unlock, and a wrong passphrase.
    paths = app_paths(work / "demo")
    window = MainWindow(paths, sync_factory=sync_factory(paths))
    window.resize(*SIZE)
    window.show()
    shoot(window, "02-unlock")
    window.start.unlock_page.passphrase.setText("not my passphrase")
    window.start.unlock_page.unlock_button.click()
    wait_for(lambda: bool(window.start.unlock_page.banner.text()))
    shoot(window, "03-unlock-wrong-passphrase")
    # Reset the failure counter the wrong try left, so the demo never drifts to a lock-out.
    unlock(window)

    # 3. The caseload, searching and filtering.
    shoot(window, "04-caseload")
    view = window.caseload
    view.search.setText("ab")
    view.search_now()
    wait_for(lambda: not window.model.loading)
    view.review_due.setChecked(True)
    wait_for(lambda: not window.model.loading)
    shoot(window, "05-caseload-search-and-filter")
    view.clear_filters()
    wait_for(lambda: not window.model.loading)

    # 4. A participant's record, and each of its sections.
    shown: list[str] = []
    window.sig_record_shown.connect(shown.append)
    window.open_participant(window.model.participant_id(3))
    wait_for(lambda: bool(shown))
    shoot(window, "07-participant-record")
    record = window.record_view
    for number, section in enumerate(RECORD_SECTIONS, start=1):
        record.show_section(section)
        shoot(window, f"08-record-{number}-{section}")

    # 5. New participant, settings, sync.
    window.new_participant()
    dialog = window.new_participant_dialog
    assert dialog is not None
    dialog.given_name.setText("Amira")
    dialog.ni_number.setText("AB12")
    dialog.accept()  # shows how a wrong NI number is explained
    shoot(dialog, "09-new-participant")
    dialog.reject()
    sync_screens(window, work)

    # 6. Locked (as after the idle time), with the notice the keyworker comes back to.
    window.lock(reason="idle")
    wait_for(lambda: window.ops.store is None and not window.ops.busy)
    shoot(window, "11-locked")
    window.close()
    QApplication.processEvents()


def scaled_caseload(work: Path, scale: str) -> None:
    from keyworker_app.paths import app_paths
    from ui.app import make_application
    from ui.window import MainWindow

    make_application([sys.argv[0]])
    window = MainWindow(app_paths(work / "demo"))
    window.resize(int(SIZE[0] / float(scale)), int(SIZE[1] / float(scale)))  # the same screen
    window.show()
    unlock(window)
    shown: list[str] = []
    window.sig_record_shown.connect(shown.append)
    window.open_participant(window.model.participant_id(0))
    wait_for(lambda: bool(shown))
    shoot(window, f"12-record-at-{scale.replace('.', '')}x")
    window.close()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--work", type=Path, default=Path(tempfile.gettempdir()) / "keyworker-screens")
    parser.add_argument("--participants", type=int, default=250)
    parser.add_argument("--scaled", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    ensure_display()
    OUT.mkdir(parents=True, exist_ok=True)
    if args.scaled:
        scaled_caseload(args.work, args.scaled)
        return 0
    if args.work.exists():
        shutil.rmtree(args.work)
    for old in OUT.glob("*.png"):  # the set is made whole each time: no stale pictures left
        old.unlink()
    demo_profile(args.work / "demo", args.participants)
    all_screens(args.work)
    for scale in ("1.25", "1.5"):
        env = {**os.environ, "QT_SCALE_FACTOR": scale}
        subprocess.run([sys.executable, __file__, "--work", str(args.work), "--scaled", scale],
                       env=env, check=True)
    shutil.rmtree(args.work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
