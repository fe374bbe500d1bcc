"""A bad network between a real laptop and a real controller: nothing lost, nothing twice.

The client and the controller are the real ones (the controller on SQLite and PostgreSQL);
only the line between them misbehaves, through the fault proxy. After every fault the
laptop syncs again on a good line, and the same three questions are asked:

* lost: is every item the laptop projected held by the controller, and no outbox row left?
* duplicated: does the controller hold each record version for each recipient only once?
* intact: does the laptop's own check (encrypted pages, structure, audit chain) pass?
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
from collections import Counter
from typing import Any, Callable

import pytest

from proxy import Fault, FaultProxy, Step
from support import PASSPHRASE
from sync_testkit import KEYWORKER, Laptop, caseload

AppCli = Callable[..., tuple[int, str, str]]
RUN_SYNC = ("from keyworker_app.cli import main; from sync.cli import add_commands; "
            "raise SystemExit(main(extend=[add_commands]))")


def enrol_through(proxy: FaultProxy, controller: Any, laptop: Laptop, app_cli: AppCli) -> None:
    code = controller.new_code(KEYWORKER)
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", proxy.url, "--code", code)
    assert exit_code == 0, out + err


def controller_items(controller: Any) -> list[dict[str, Any]]:
    done = controller.cli("records", "--format", "json")
    assert done.returncode == 0, done.stderr
    return list(json.loads(done.stdout))


def assert_nothing_lost_or_twice(controller: Any, laptop: Laptop) -> None:
    received = controller_items(controller)
    per_version = Counter((r["record_id"], r["version"], r["recipient"]) for r in received)
    assert [k for k, n in per_version.items() if n > 1] == [], "a record version arrived twice"
    keys = {r["idempotency_key"] for r in received}
    assert len(keys) == len(received)
    with laptop.opened() as store:
        assert store.outbox_count("pending") == 0, "outbox rows were left behind"
        sent = {k for (k,) in store.db.query("SELECT idempotency_key FROM sent_log")}
        unanswered = store.db.scalar("SELECT count(*) FROM sync_item WHERE status = 'pending'")
        assert unanswered == 0, "items were left without a final answer"
        assert store.check() == []
    assert sent == keys, f"lost: {len(sent - keys)}, unexpected: {len(keys - sent)}"


def test_lost_acknowledgement_is_resent_and_answered_duplicate(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        laptop.add_cases(caseload(3, seed=31))
        proxy.script(Step(Fault.LOST_ACK, path_prefix="/v1/push"))
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert no_sleep, "the lost answer should have been retried after a back-off"
        assert "duplicate" in out  # the resend found the controller already had the batch
        assert_nothing_lost_or_twice(controller, laptop)


def test_503_with_retry_after_and_500s_are_waited_out(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        laptop.add_cases(caseload(2, seed=32))
        proxy.script(Step(Fault.STATUS, status=503, retry_after="7", path_prefix="/v1/push"),
                     Step(Fault.STATUS, status=500, path_prefix="/v1/push"),
                     Step(Fault.STATUS, status=500, path_prefix="/v1/referrals"))
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert no_sleep[0] == 7.0, "Retry-After: 7 must be honoured exactly"
        assert len(no_sleep) == 3
        assert_nothing_lost_or_twice(controller, laptop)


def test_slow_line_times_out_then_goes_through(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float], monkeypatch: pytest.MonkeyPatch
) -> None:
    import dataclasses

    from sync import enrolment

    original = enrolment.transport_settings
    # A short read timeout so the slow line is slower than the client will wait.
    monkeypatch.setattr(enrolment, "transport_settings",
                        lambda store: dataclasses.replace(original(store), read_timeout=0.5))
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        laptop.add_cases(caseload(2, seed=33))
        proxy.script(Step(Fault.SLOW, seconds=2.0, path_prefix="/v1/push"))
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert no_sleep
        assert_nothing_lost_or_twice(controller, laptop)


@pytest.mark.parametrize("fault", [Fault.MALFORMED, Fault.OVERSIZED, Fault.TRUNCATED])
def test_a_bad_answer_applies_nothing_and_the_next_sync_completes(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float], fault: Fault
) -> None:
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        laptop.add_cases(caseload(2, seed=34))
        with laptop.opened() as store:
            waiting = store.outbox_count("pending")
        # The same fault on every try of the first push: the run must stop, saying why.
        proxy.script(*[Step(fault, path_prefix="/v1/push") for _ in range(10)])
        code, out, err = app_cli(laptop, "sync")
        assert code != 0
        assert "Traceback" not in out + err and err.strip()
        with laptop.opened() as store:
            # Nothing from the spoiled answers was applied: every row still waits.
            assert store.outbox_count("pending") == waiting
            assert store.outbox_count("done") == 0
        with proxy.state.lock:
            proxy.state.script.clear()
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert_nothing_lost_or_twice(controller, laptop)


def test_a_poisoned_item_is_set_aside_and_the_rest_go_through(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        laptop.add_cases(caseload(3, seed=35))
        proxy.script(Step(Fault.POISON, path_prefix="/v1/push"))
        code, out, err = app_cli(laptop, "sync")
        assert code == 30, out + err  # finished, with something set aside
        with laptop.opened() as store:
            reasons = store.db.query("SELECT reason FROM quarantine WHERE resolved_at IS NULL")
            assert len(reasons) == 1 and "not_in_any_profile" in reasons[0][0]
            assert "poison" not in reasons[0][0]  # the controller names the field, never the value
            assert store.outbox_count("pending") == 0
            rejected = store.db.scalar("SELECT count(*) FROM sync_item WHERE status = 'rejected'")
            accepted = store.db.scalar("SELECT count(*) FROM sent_log WHERE controller_status = 'accepted'")
        assert rejected == 1 and accepted > 10
        held = {r["idempotency_key"] for r in controller_items(controller)}
        assert len(held) == accepted


def run_sync_process(laptop: Laptop) -> subprocess.Popen[bytes]:
    env = {**os.environ, "KEYWORKER_PASSPHRASE": PASSPHRASE}
    return subprocess.Popen([sys.executable, "-c", RUN_SYNC, "--data-dir", str(laptop.paths.data), "sync"],
                            env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def kill_when_held(proxy: FaultProxy, process: subprocess.Popen[bytes]) -> bool:
    """SIGKILL ``process`` while the proxy holds its scripted request. False (and the
    script cleared) when the run had fewer pushes than the script and finished first."""
    while not proxy.state.held.wait(timeout=0.2) and process.poll() is None:
        pass
    if not proxy.state.held.is_set():
        stderr = process.stderr.read().decode() if process.stderr else ""
        assert process.returncode == 0, stderr
        with proxy.state.lock:
            proxy.state.script.clear()
        return False
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=60)
    proxy.state.release.set()
    return True


def test_client_killed_at_random_points_many_times(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    """SIGKILL the sync process mid-request, before and after the controller commits."""
    rng = random.Random(20261121)
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        kills = 0
        for round_number in range(8):
            # Fresh work every round, so each run has several batches to send.
            laptop.add_cases(caseload(8, seed=360 + round_number))
            seen_before = len(proxy.state.seen)
            proxy.rearm()
            fault = rng.choice([Fault.HOLD, Fault.HOLD_AFTER])
            skip = rng.randint(0, 1)  # sometimes let a batch through first
            proxy.script(*[Step(path_prefix="/v1/push") for _ in range(skip)],
                         Step(fault, path_prefix="/v1/push"))
            if not kill_when_held(proxy, run_sync_process(laptop)):
                continue
            kills += 1
            assert len(proxy.state.seen) >= seen_before
        assert kills >= 6, "each round should have been killed mid-sync"
        with proxy.state.lock:
            proxy.state.script.clear()
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert_nothing_lost_or_twice(controller, laptop)


# The engine with small, growing chunks and small batches, so that one run has many chunks
# and many batches queued for the sender thread while the next chunk is being projected
# and recorded: a kill finds items recorded but not yet sent, sent but not answered, and
# answered but not yet written down, all at once.
RUN_PIPELINED = (
    "import os, sys; from keyworker_app.paths import app_paths; from keyworker_app.profile import Profile; "
    "from sync.engine import SyncConfig, SyncEngine; from sync.enrolment import open_client; "
    "from sync.retry import RetryPolicy; paths = app_paths(sys.argv[1]); "
    "store = Profile.at(paths).unlock(os.environ['KEYWORKER_PASSPHRASE']); "
    "client = open_client(store, paths, RetryPolicy(sleep=lambda s: None)); "
    "config = SyncConfig(outbox_chunk=8, outbox_chunk_max=64, max_batch_items=6); "
    "result = SyncEngine(store, client, config).run(); store.close(); "
    "raise SystemExit(0 if result.outcome.value == 'ok' else 1)"
)


def test_pipelined_push_killed_at_random_points_keeps_exactly_once(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    """SIGKILL a run with many chunks and batches in flight, holding the k-th push."""
    rng = random.Random(20261122)
    with FaultProxy(controller.base_url) as proxy:
        enrol_through(proxy, controller, laptop, app_cli)
        kills = 0
        for round_number in range(6):
            laptop.add_cases(caseload(3, seed=460 + round_number))
            proxy.rearm()
            skip = rng.randint(0, 6)   # let some batches through first
            proxy.script(*[Step(path_prefix="/v1/push") for _ in range(skip)],
                         Step(rng.choice([Fault.HOLD, Fault.HOLD_AFTER]), path_prefix="/v1/push"))
            env = {**os.environ, "KEYWORKER_PASSPHRASE": PASSPHRASE}
            process = subprocess.Popen([sys.executable, "-c", RUN_PIPELINED, str(laptop.paths.data)],
                                       env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            if not kill_when_held(proxy, process):
                continue
            kills += 1
            with laptop.opened() as store:
                assert store.check() == []
        assert kills >= 4, "most rounds should have been killed mid-sync"
        with proxy.state.lock:
            proxy.state.script.clear()
        code, out, err = app_cli(laptop, "sync")
        assert code == 0, out + err
        assert_nothing_lost_or_twice(controller, laptop)
