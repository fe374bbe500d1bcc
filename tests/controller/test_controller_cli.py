"""The admin command line and the schema migrations, on SQLite and PostgreSQL."""

from __future__ import annotations

import json
import re
import subprocess
from pathlib import Path
from typing import Any, Callable

import pytest
from controller_testkit import Controller, ProfileCase, make_batch, make_item, run_cli

from controller.db import Database, DatabaseTooNew, load_migrations


def test_enrol_prints_the_code_alone_on_its_last_line(db_url: str) -> None:
    done = run_cli(db_url, "enrol", "--keyworker-id", "kw-9")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.strip().splitlines()
    assert len(lines) >= 2 and "kw-9" in lines[0]
    assert re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", lines[-1])
    second = run_cli(db_url, "enrol", "--keyworker-id", "kw-9").stdout.strip().splitlines()[-1]
    assert second != lines[-1]


def test_records_prints_what_was_received_as_json(
    controller: Controller, profile_case: ProfileCase
) -> None:
    assert json.loads(controller.cli("records", "--format", "json").stdout) == []
    device_id, token = controller.enrol_device()
    items = [make_item(profile_case), make_item(profile_case, recipient="no_such_profile")]
    controller.client(token).post("/v1/push", json=make_batch(*items))
    done = controller.cli("records", "--recipient", profile_case.profile_id, "--format", "json")
    assert done.returncode == 0, done.stderr
    stored = json.loads(done.stdout)
    assert len(stored) == 1
    row = stored[0]
    assert row["recipient"] == profile_case.profile_id
    assert row["payload"] == items[0]["fields"]
    assert row["device_id"] == device_id
    assert (row["record_id"], row["version"], row["op"]) == (items[0]["record_id"], 1, "upsert")
    assert json.loads(controller.cli("records", "--recipient", "nobody").stdout) == []


def test_devices_lists_active_and_revoked(controller: Controller) -> None:
    assert "No devices" in controller.cli("devices").stdout
    kept, _ = controller.enrol_device("kw-1")
    lost, _ = controller.enrol_device("kw-2")
    controller.cli("revoke", "--device", lost)
    text = controller.cli("devices").stdout
    assert re.search(rf"{kept}\s+kw-1\s+active", text)
    assert re.search(rf"{lost}\s+kw-2\s+revoked", text)


GOOD_REFERRAL: dict[str, Any] = {
    "participant": {"given_name": "Sam", "family_name": "Example", "programme": "working_well"},
    "referral": {"source_type": "jobcentre_plus", "reason": "asked for support"},
}


@pytest.mark.parametrize(
    ("document", "expected"),
    [
        ([], "must hold a JSON object"),
        ({"referral": GOOD_REFERRAL["referral"]}, "'participant' is missing"),
        ({**GOOD_REFERRAL, "notes": {}}, "unexpected top-level key 'notes'"),
        ({**GOOD_REFERRAL, "participant": {**GOOD_REFERRAL["participant"], "shoe_size": 9}},
         "'participant.shoe_size' is not a participant field"),
        ({**GOOD_REFERRAL, "participant": {**GOOD_REFERRAL["participant"], "date_of_birth": "31/01/1990"}},
         "'participant.date_of_birth' must be a date (YYYY-MM-DD) or null"),
        ({**GOOD_REFERRAL, "referral": {**GOOD_REFERRAL["referral"], "source_type": "carrier pigeon"}},
         "'referral.source_type' must be one of"),
        ({**GOOD_REFERRAL, "referral": {"source_type": "self"}}, "'referral.reason' is required"),
        ({**GOOD_REFERRAL, "referral": {**GOOD_REFERRAL["referral"], "id": "x"}},
         "'referral.id' is set by the system"),
        ({**GOOD_REFERRAL, "participant": {**GOOD_REFERRAL["participant"], "keyworker_id": "kw-2"}},
         "names a different keyworker"),
    ],
)
def test_refer_names_what_is_wrong_with_a_bad_file(
    tmp_path: Path, document: Any, expected: str
) -> None:
    path = tmp_path / "referral.json"
    path.write_text(json.dumps(document), "utf-8")
    done = run_cli(f"sqlite:///{tmp_path / 'c.sqlite3'}", "refer", "--keyworker-id", "kw-1", "--file", str(path))
    assert done.returncode == 5
    assert expected in done.stderr
    assert "Traceback" not in done.stderr
    assert "31/01/1990" not in done.stderr and "carrier pigeon" not in done.stderr


def test_refer_reports_unreadable_files(tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'c.sqlite3'}"
    missing = run_cli(db, "refer", "--keyworker-id", "kw-1", "--file", str(tmp_path / "nope.json"))
    assert missing.returncode == 5 and "there is no file" in missing.stderr
    broken = tmp_path / "broken.json"
    broken.write_text('{"participant": ', "utf-8")
    bad = run_cli(db, "refer", "--keyworker-id", "kw-1", "--file", str(broken))
    assert bad.returncode == 5 and "is not valid JSON" in bad.stderr and "line 1" in bad.stderr
    good = tmp_path / "good.json"
    good.write_text(json.dumps(GOOD_REFERRAL), "utf-8")
    ok = run_cli(db, "refer", "--keyworker-id", "kw-1", "--file", str(good))
    assert ok.returncode == 0 and ok.stdout.startswith("Queued referral ")


def test_database_problems_are_plain_messages(tmp_path: Path) -> None:
    bad_url = run_cli("mysql://somewhere/db", "devices")
    assert bad_url.returncode == 3 and "sqlite:///" in bad_url.stderr
    unreachable = run_cli("postgresql://nobody:secret-pw@127.0.0.1:1/none?connect_timeout=2", "devices")
    assert unreachable.returncode == 3 and "cannot connect to PostgreSQL" in unreachable.stderr
    assert "secret-pw" not in unreachable.stderr
    for done in (bad_url, unreachable):
        assert "Traceback" not in done.stderr


def test_serve_refuses_plain_http_on_a_public_address(
    tmp_path: Path, profile_case: ProfileCase
) -> None:
    args = ["serve", "--host", "0.0.0.0", "--port", "0"]
    if profile_case.profiles_file:
        args += ["--sharing-profiles", str(profile_case.profiles_file)]
    done = run_cli(f"sqlite:///{tmp_path / 'c.sqlite3'}", *args)
    assert done.returncode == 7
    assert "refusing plain HTTP" in done.stderr and "Traceback" not in done.stderr


def test_serve_speaks_tls_with_a_certificate(
    controller_factory: Callable[..., Controller], tmp_path: Path
) -> None:
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    made = subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        capture_output=True, text=True, timeout=60,
    )
    assert made.returncode == 0, made.stderr
    controller = controller_factory(
        "--certfile", str(cert), "--keyfile", str(key), verify=str(cert)
    )
    assert controller.base_url.startswith("https://127.0.0.1:")
    _, token = controller.enrol_device()
    assert controller.client(token).get("/v1/instructions").status_code == 200


def test_migrations_apply_once_and_a_newer_database_is_refused(db_url: str) -> None:
    db = Database(db_url)
    try:
        latest = len(load_migrations())
        assert db.migrate() == latest
        assert db.migrate() == latest  # a second run changes nothing
        with db.transaction() as tx:
            versions = [r["version"] for r in tx.query("SELECT version FROM schema_migrations ORDER BY version")]
            assert versions == list(range(1, latest + 1))
            for table in ("enrolment_codes", "devices", "received_items", "record_heads",
                          "withdrawals", "referrals", "instructions"):
                assert tx.query(f"SELECT COUNT(*) AS n FROM {table}") == [{"n": 0}]
            tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                (latest + 1, "9999_from_the_future.sql", "2099-01-01T00:00:00.000000Z"),
            )
        with pytest.raises(DatabaseTooNew):
            db.migrate()
    finally:
        db.close()
    done = run_cli(db_url, "devices")
    assert done.returncode == 3 and "newer controller" in done.stderr


def test_serve_lets_the_garbage_collector_wait_for_more_objects(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A push's parsed items are freed by reference counting; the cyclic collector must
    not scan them several times per push (the default threshold, 700, made it do so)."""
    import gc

    import uvicorn

    from controller import cli

    seen: list[tuple[int, int, int]] = []

    def run_instead(self: Any, sockets: list[Any] | None = None) -> None:
        seen.append(gc.get_threshold())
        for sock in sockets or ():
            sock.close()

    monkeypatch.setattr(uvicorn.Server, "run", run_instead)
    before = gc.get_threshold()
    try:
        done = cli.main(["serve", "--db", f"sqlite:///{tmp_path / 'c.sqlite3'}", "--port", "0"])
    finally:
        gc.set_threshold(*before)
    assert done == 0
    assert seen == [(cli.GC_YOUNG_THRESHOLD, before[1], before[2])]
    assert cli.GC_YOUNG_THRESHOLD >= 10 * before[0]
