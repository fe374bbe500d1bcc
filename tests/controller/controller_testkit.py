"""Helpers shared by the controller tests (a unique module name, so that no other
test folder's helpers can shadow it)."""

from __future__ import annotations

import os
import queue
import ssl
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

REPO = Path(__file__).resolve().parents[2]
START_TIMEOUT = 60.0

#: Fields every share carries besides the profile's (keyworker_app.sharing.IDENTIFIER_FIELDS).
IDENTIFIER_FIELDS = frozenset({"id", "version", "record_type", "participant_id"})

@dataclass(frozen=True)
class ProfileCase:
    """A sharing profile to push against, whichever source the profiles come from."""

    profile_id: str
    record_type: str
    allowed: tuple[str, ...]
    outside_field: str          # a real field of record_type that the profile leaves out
    programme: str
    strand: str
    profiles_file: Path | None  # passed as --sharing-profiles when using the test fixture
    strand_profile: str | None  # a profile limited to some strands, if any
    strand_profile_record_type: str | None
    strand_profile_strands: tuple[str, ...] = ()
    strand_profile_programme: str = ""


# --- the controller process --------------------------------------------------------------

def controller_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    return env


def run_cli(db_url: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run ``python -m controller ARGS --db URL`` and capture its output."""
    return subprocess.run(
        [sys.executable, "-m", "controller", *args, "--db", db_url],
        cwd=REPO, env=controller_env(), capture_output=True, text=True, timeout=timeout,
    )


@dataclass
class Controller:
    """A running controller process and helpers to talk to it."""

    db_url: str
    base_url: str
    process: subprocess.Popen[str]
    stderr_path: Path
    verify: str | bool = True  # a CA file for a test certificate
    clients: list[httpx.Client] = field(default_factory=list)

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        verify: Any = self.verify
        if isinstance(verify, str):
            verify = ssl.create_default_context(cafile=verify)
        client = httpx.Client(base_url=self.base_url, headers=headers, timeout=30, verify=verify)
        self.clients.append(client)
        return client

    def cli(self, *args: str) -> subprocess.CompletedProcess[str]:
        return run_cli(self.db_url, *args)

    def new_code(self, keyworker_id: str, *extra: str) -> str:
        done = self.cli("enrol", "--keyworker-id", keyworker_id, *extra)
        assert done.returncode == 0, done.stderr
        return done.stdout.strip().splitlines()[-1]

    def enrol_device(self, keyworker_id: str = "kw-1") -> tuple[str, str]:
        """Enrol a new device for ``keyworker_id``; returns (device_id, token)."""
        response = self.client().post(
            "/v1/enrol",
            json={"code": self.new_code(keyworker_id), "keyworker_id": keyworker_id,
                  "device_name": "test laptop"},
        )
        assert response.status_code == 200, response.text
        body = response.json()
        return body["device_id"], body["token"]

    def server_log(self) -> str:
        return self.stderr_path.read_text("utf-8", errors="replace")

    def stop(self) -> None:
        for client in self.clients:
            client.close()
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=20)


def start_controller(
    db_url: str, log_dir: Path, profile_case: ProfileCase, *extra: str, verify: str | bool = True
) -> Controller:
    """Start ``python -m controller serve --port 0`` and wait for its 'listening on' line."""
    args = [sys.executable, "-m", "controller", "serve", "--db", db_url, "--port", "0", *extra]
    if profile_case.profiles_file is not None:
        args += ["--sharing-profiles", str(profile_case.profiles_file)]
    stderr_path = log_dir / f"controller-{uuid.uuid4().hex[:8]}.log"
    with stderr_path.open("w") as stderr:
        process = subprocess.Popen(
            args, cwd=REPO, env=controller_env(), stdout=subprocess.PIPE, stderr=stderr,
            text=True, bufsize=1,
        )
    lines: queue.Queue[str | None] = queue.Queue()

    def read_stdout() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            lines.put(line)
        lines.put(None)

    threading.Thread(target=read_stdout, daemon=True).start()
    deadline = time.monotonic() + START_TIMEOUT
    base_url = ""
    while not base_url:
        try:
            line = lines.get(timeout=max(0.1, deadline - time.monotonic()))
        except queue.Empty:
            line = None
        if line is None:
            process.kill()
            process.wait(timeout=20)
            pytest.fail(
                "controller did not start:\n" + stderr_path.read_text("utf-8", errors="replace"),
                pytrace=False,
            )
        if line.startswith("listening on "):
            base_url = line.split("listening on ", 1)[1].strip()
    controller = Controller(db_url, base_url, process, stderr_path, verify)
    assert controller.client().get("/v1/health").status_code == 200
    return controller


# --- building push items -----------------------------------------------------------------

def make_item(
    case: ProfileCase,
    *,
    record_id: str | None = None,
    version: int = 1,
    fields: dict[str, Any] | None = None,
    op: str = "upsert",
    recipient: str | None = None,
    record_type: str | None = None,
    programme: str | None = None,
    strand: str | None = None,
    participant_id: str | None = None,
) -> dict[str, Any]:
    """A push item for ``case``'s profile, with allowed fields unless told otherwise."""
    record_id = record_id or str(uuid.uuid4())
    recipient = recipient or case.profile_id
    return {
        "idempotency_key": f"{record_id}:{version}:{recipient}",
        "record_type": record_type or case.record_type,
        "record_id": record_id,
        "version": version,
        "recipient": recipient,
        "participant_id": participant_id or str(uuid.uuid4()),
        "programme": programme if programme is not None else case.programme,
        "strand": strand if strand is not None else case.strand,
        "op": op,
        "fields": fields if fields is not None else {name: f"v-{name}" for name in case.allowed},
    }


def make_batch(*items: dict[str, Any]) -> dict[str, Any]:
    return {"batch_id": str(uuid.uuid4()), "items": list(items)}
