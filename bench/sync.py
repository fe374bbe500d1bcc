"""Sync throughput: the full client against a bare httpx loop, side by side in one run.

    python bench/sync.py [--records 50000] [--db sqlite|postgresql://...] [--rounds 3]

1. A laptop profile (real SQLCipher store) gets a synthetic caseload with about
   ``--records`` outbox rows (synthetic people only).
2. Three controller processes start on loopback, each on its own fresh database (same
   backend): A for the client, B and C for the baselines. Each needs its own because the
   baselines post the *same bytes*; posted to A they would all be answered "duplicate",
   a cheaper path than storing them.
3. The full client (projection through every sharing profile, ledger writes, batching,
   gzip, HTTP, answer checks, one transaction per batch) pushes everything to A. Every
   push body it sends is captured.
4. A bare loop posts exactly those bodies to B with one ``httpx.Client``, one at a time,
   and decodes the answers: the floor set by the controller and the network, and the
   baseline of the ≤ 1.5 target. Then a second bare loop posts them to C as many at once
   as the client has on the wire (``sync.engine.PUSHES_AT_ONCE``, two): a stricter
   floor, since the client's second push on the wire hides some of its own overhead.
5. A second sync with nothing to send is timed (health, empty push, referrals, instructions).
6. Steps 2-5 run ``--rounds`` times, each against fresh controllers, the laptop's
   outbox set back to pending and its sync tables emptied in between. A shared machine
   moves one round's figures by 10-20%, so the medians are reported, and each round's
   ratio beside them.

Prints records/s for each, the ratios (``client_over_bare`` is records/s against records/s;
``client_time_over_bare`` is elapsed time against elapsed time, the ≤ 1.5 target;
``client_time_over_bare_two_at_once`` the same against the second loop), the
empty-sync time, the CPU time per record of the client process and of each controller
(Linux; less disturbed than elapsed time by other work on the machine), and one JSON
object of the figures as the last line. Timing never decides a test.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from keyworker_app.demo import save_caseload  # noqa: E402
from keyworker_app.paths import app_paths  # noqa: E402
from keyworker_app.profile import Profile  # noqa: E402
from keyworker_app.security import KdfParams  # noqa: E402
from keyworker_app.synthetic import generate_caseload  # noqa: E402
from sync.engine import PUSHES_AT_ONCE, SyncEngine  # noqa: E402
from sync.enrolment import enrol, open_client  # noqa: E402
from sync.retry import RetryPolicy  # noqa: E402

PASSPHRASE = "bench orchard kettle 42 lamp"
KEYWORKER = "kw-bench"
ROWS_PER_PARTICIPANT = 29   # about what the synthetic generator makes per case file


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


class ControllerProcess:
    """``python -m controller serve --port 0`` on loopback, until stopped."""

    def __init__(self, db_url: str, log: Path) -> None:
        self.db_url = db_url
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "controller", "serve", "--db", db_url, "--port", "0"],
            cwd=ROOT, env=_env(), stdout=subprocess.PIPE, stderr=self._log, text=True, bufsize=1)
        lines: queue.Queue[str | None] = queue.Queue()

        def read() -> None:
            assert self.process.stdout is not None
            for line in self.process.stdout:
                lines.put(line)
            lines.put(None)

        threading.Thread(target=read, daemon=True).start()
        while True:
            line = lines.get(timeout=60)
            if line is None:
                raise SystemExit(f"controller did not start; see {log}")
            if line.startswith("listening on "):
                self.url = line.split("listening on ", 1)[1].strip()
                return

    def code(self) -> str:
        done = subprocess.run([sys.executable, "-m", "controller", "enrol", "--keyworker-id", KEYWORKER,
                               "--db", self.db_url], cwd=ROOT, env=_env(), capture_output=True, text=True,
                              check=True)
        return done.stdout.strip().splitlines()[-1]

    def cpu_seconds(self) -> float | None:
        """User + system CPU the controller process has used so far (Linux), else None."""
        try:
            fields = Path(f"/proc/{self.process.pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            return None
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=30)
        self._log.close()


def _db_urls(backend: str, folder: Path, round_: int) -> tuple[str, str, str]:
    """Three fresh databases on ``backend``: for the client's controller and the two bare loops'."""
    if backend == "sqlite":
        return (f"sqlite:///{folder / f'a{round_}.sqlite3'}", f"sqlite:///{folder / f'b{round_}.sqlite3'}",
                f"sqlite:///{folder / f'c{round_}.sqlite3'}")
    import uuid
    from urllib.parse import parse_qsl, urlencode, urlsplit

    import psycopg

    urls = []
    for _ in range(3):
        schema = f"kw_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(backend, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
        parts = urlsplit(backend)
        query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"] + [("options", f"-csearch_path={schema}")]
        urls.append(parts._replace(query=urlencode(query)).geturl())
    return urls[0], urls[1], urls[2]


def _reset_laptop(store: Any) -> None:
    """Every outbox row pending again and the sync's own tables empty: the laptop as it was
    before its first push (for the next round, against fresh controllers)."""
    with store.db.transaction() as conn:
        conn.execute("UPDATE outbox SET state = 'pending'")
        for table in ("sent_line", "sent_person", "sync_item", "quarantine"):
            conn.execute(f"DELETE FROM {table}")


def bare_loop(controller: ControllerProcess, bodies: list[bytes], at_once: int) -> tuple[float, float | None]:
    """Post ``bodies`` to ``controller`` with one httpx client, ``at_once`` on the wire at a
    time, decoding each answer: (elapsed seconds, the controller's CPU seconds)."""
    token = httpx.post(f"{controller.url}/v1/enrol", json={
        "code": controller.code(), "keyworker_id": KEYWORKER, "device_name": "bench-bare"}).json()["token"]
    with httpx.Client(base_url=controller.url, headers={"Authorization": f"Bearer {token}",
                                                         "Content-Type": "application/json",
                                                         "Content-Encoding": "gzip"}, timeout=120) as bare:
        def post(body: bytes) -> None:
            response = bare.post("/v1/push", content=body)
            response.raise_for_status()
            response.json()

        cpu = controller.cpu_seconds()
        started = time.perf_counter()
        if at_once == 1:
            for body in bodies:
                post(body)
        else:
            with ThreadPoolExecutor(max_workers=at_once) as senders:
                list(senders.map(post, bodies))
        seconds = time.perf_counter() - started
        return seconds, None if cpu is None else (controller.cpu_seconds() or 0.0) - cpu


def one_round(store: Any, paths: Any, folder: Path, backend: str, round_: int) -> dict[str, Any]:
    """The full client against controller A, then the bare loops with the same bodies
    against controllers B and C (all fresh); then a sync with nothing to send."""
    url_a, url_b, url_c = _db_urls(backend, folder, round_)
    a = ControllerProcess(url_a, folder / f"a{round_}.log")
    b = ControllerProcess(url_b, folder / f"b{round_}.log")
    c = ControllerProcess(url_c, folder / f"c{round_}.log")
    try:
        enrol(store, paths, a.url, a.code(), device_name="bench")
        rows = store.outbox_count("pending")
        bodies: list[bytes] = []

        def capture(request: httpx.Request) -> None:
            if request.url.path == "/v1/push":
                bodies.append(request.read())

        client = open_client(store, paths, RetryPolicy(), event_hooks={"request": [capture]})
        cpu_a = a.cpu_seconds()
        started, started_cpu = time.perf_counter(), time.process_time()
        result = SyncEngine(store, client).run()
        client_seconds = time.perf_counter() - started
        client_cpu = time.process_time() - started_cpu
        cpu_a = None if cpu_a is None else (a.cpu_seconds() or 0.0) - cpu_a
        client.close()
        summary = result.summary()
        items = summary["accepted"] + summary["duplicate"]
        if result.outcome.value != "ok" or items == 0:
            raise SystemExit(f"round {round_}: the client's sync did not finish ({result.outcome.value})")

        bare_seconds, cpu_b = bare_loop(b, bodies, 1)
        bare2_seconds, cpu_c = bare_loop(c, bodies, PUSHES_AT_ONCE)

        client = open_client(store, paths, RetryPolicy())
        started = time.perf_counter()
        SyncEngine(store, client).run()
        empty_seconds = time.perf_counter() - started
        client.close()
    finally:
        a.stop()
        b.stop()
        c.stop()
    print(f"round {round_ + 1}: full client {rows} records ({items} items, {len(bodies)} batches, "
          f"{sum(map(len, bodies)) / 1e6:.1f} MB gzip) in {client_seconds:.2f}s; the bare loop "
          f"{bare_seconds:.2f}s (ratio {client_seconds / bare_seconds:.3f}), {PUSHES_AT_ONCE} at once "
          f"{bare2_seconds:.2f}s (ratio {client_seconds / bare2_seconds:.3f})")
    return {
        "records": rows,
        "items": items,
        "batches": len(bodies),
        "client_records_per_s": round(rows / client_seconds, 1),
        "bare_records_per_s": round(rows / bare_seconds, 1),
        "client_over_bare": round(bare_seconds / client_seconds, 3),
        "client_seconds": round(client_seconds, 3),
        "bare_seconds": round(bare_seconds, 3),
        "empty_sync_seconds": round(empty_seconds, 4),
        # CPU time, which other work on the machine disturbs less than elapsed time.
        "client_cpu_us_per_record": round(client_cpu / rows * 1e6, 1),
        "controller_cpu_us_per_record": None if cpu_a is None else round(cpu_a / rows * 1e6, 1),
        "bare_controller_cpu_us_per_record": None if cpu_b is None else round(cpu_b / rows * 1e6, 1),
        "client_time_over_bare": round(client_seconds / bare_seconds, 3),
        "bare_two_at_once_records_per_s": round(rows / bare2_seconds, 1),
        "bare_two_at_once_seconds": round(bare2_seconds, 3),
        "bare_two_at_once_controller_cpu_us_per_record": None if cpu_c is None else round(cpu_c / rows * 1e6, 1),
        "client_time_over_bare_two_at_once": round(client_seconds / bare2_seconds, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--records", type=int, default=50_000, help="outbox rows to push (about)")
    parser.add_argument("--db", default="sqlite", help="'sqlite' or a PostgreSQL URL for the controllers")
    parser.add_argument("--rounds", type=int, default=3,
                        help="rounds of client-then-bare-loop, against fresh controllers; medians are reported")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="kw-bench-sync-") as tmp:
        folder = Path(tmp)
        paths = app_paths(folder / "laptop")
        paths.config.mkdir(parents=True, exist_ok=True)
        paths.org_config.write_text(json.dumps({"kdf_target_seconds": 0.01, "kdf_memory_kib": 8192}))
        kdf = KdfParams(salt=os.urandom(16), time_cost=1, memory_kib=8192, parallelism=1)
        store, _ = Profile.at(paths).create(KEYWORKER, "working_well_ses", PASSPHRASE, kdf=kdf)
        participants = max(1, args.records // ROWS_PER_PARTICIPANT)
        started = time.perf_counter()
        save_caseload(store, generate_caseload(participants, seed=1, keyworker_id=KEYWORKER))
        print(f"caseload: {participants} participants, {store.outbox_count('pending')} outbox rows "
              f"(saved in {time.perf_counter() - started:.1f}s)")
        rounds: list[dict[str, Any]] = []
        try:
            for round_ in range(max(1, args.rounds)):
                if round_:
                    _reset_laptop(store)
                rounds.append(one_round(store, paths, folder, args.db, round_))
        finally:
            store.close()

    # The median round by the ratio (the target), and each figure's median over the rounds.
    middle = sorted(rounds, key=lambda r: r["client_time_over_bare"])[len(rounds) // 2]
    figures: dict[str, Any] = {
        key: (round(statistics.median(r[key] for r in rounds), 4) if isinstance(middle[key], float) else middle[key])
        for key in middle if middle[key] is not None}
    figures["controller_db"] = "sqlite" if args.db == "sqlite" else "postgresql"
    figures["rounds"] = len(rounds)
    figures["client_time_over_bare_each_round"] = [r["client_time_over_bare"] for r in rounds]
    figures["client_time_over_bare_two_at_once_each_round"] = [
        r["client_time_over_bare_two_at_once"] for r in rounds]
    figures["client_records_per_s_each_round"] = [r["client_records_per_s"] for r in rounds]
    print(f"medians over {len(rounds)} rounds:")
    print(f"records/s: client {figures['client_records_per_s']}, bare {figures['bare_records_per_s']}, "
          f"bare {PUSHES_AT_ONCE} at once {figures['bare_two_at_once_records_per_s']}")
    print(f"client time / bare loop time: {figures['client_time_over_bare']} "
          f"(each round: {figures['client_time_over_bare_each_round']}); against {PUSHES_AT_ONCE} at once: "
          f"{figures['client_time_over_bare_two_at_once']} "
          f"(each round: {figures['client_time_over_bare_two_at_once_each_round']})")
    print(f"CPU per record: client process {figures.get('client_cpu_us_per_record')} us, its controller "
          f"{figures.get('controller_cpu_us_per_record')} us; the bare loop's controller "
          f"{figures.get('bare_controller_cpu_us_per_record')} us")
    print(f"sync with nothing to send: {figures['empty_sync_seconds'] * 1000:.1f} ms")
    print(json.dumps(figures, sort_keys=True))


if __name__ == "__main__":
    main()
