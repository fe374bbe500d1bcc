"""End to end: a laptop profile syncing with a real controller process on loopback.

Every test runs twice, on SQLite and on PostgreSQL (the ``db_url`` fixture the controller
tests use). Synthetic people only.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import httpx
import pytest

from keyworker_app.records import Consent, ConsentStatus, Referral
from sync.engine import Outcome, RunOutcome, SyncEngine
from sync.enrolment import META_DEVICE, META_TOKEN, META_TOKEN_LOCATION, open_client
from sync.retry import RetryPolicy
from sync_testkit import KEYWORKER, Laptop, caseload

AppCli = Callable[..., tuple[int, str, str]]


def controller_json(controller: Any, *args: str) -> list[dict[str, Any]]:
    done = controller.cli(*args, "--format", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)  # type: ignore[no-any-return]


def push(store: Any, laptop: Laptop, config: Any = None, **engine: Any) -> Any:
    """One run of the engine against the enrolled controller, sleeps not slept."""
    client = open_client(store, laptop.paths, RetryPolicy(sleep=lambda s: None))
    try:
        return SyncEngine(store, client, config, **engine).run()
    finally:
        client.close()


def assert_each_answer_written_once(controller: Any, laptop: Laptop, result: Any) -> None:
    """What the controller holds is exactly the laptop's sent log, each accepted once."""
    received = controller_json(controller, "records")
    assert sorted(r["idempotency_key"] for r in received) == sorted(row[0] for row in sent_log(laptop))
    assert result.counts[Outcome.ACCEPTED] == len(received)


def sent_log(laptop: Laptop) -> list[tuple[Any, ...]]:
    with laptop.opened() as store:
        return store.db.query("SELECT idempotency_key, recipient, participant_id, op FROM sent_log")


def test_enrol_push_and_nothing_sent_twice(enrolled: tuple[Any, Laptop], app_cli: AppCli) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(6))
    code, out, err = app_cli(laptop, "sync")
    assert code == 0, out + err
    assert "Sync finished." in out
    received = controller_json(controller, "records")
    log = sent_log(laptop)
    assert received and len(received) == len(log)
    assert {r["idempotency_key"] for r in received} == {row[0] for row in log}
    assert f"Sent: {len(received)} accepted, 0 already held" in out

    with laptop.opened() as store:
        assert store.outbox_count("pending") == 0
    code, out, _ = app_cli(laptop, "sync")
    assert code == 0 and "Sent: 0 accepted, 0 already held (duplicate)" in out
    assert len(controller_json(controller, "records")) == len(received)


def test_a_crash_before_answers_were_applied_resends_and_the_controller_says_duplicate(
    enrolled: tuple[Any, Laptop], app_cli: AppCli
) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(3, seed=11))
    assert app_cli(laptop, "sync")[0] == 0
    before = controller_json(controller, "records")
    # As if the laptop lost power after the controller stored the items but before the
    # laptop wrote the answers down: the rows are pending again and no answer is written.
    with laptop.opened() as store:
        with store.db.transaction() as conn:
            conn.execute("UPDATE outbox SET state = 'pending'")
            conn.execute("DELETE FROM sent_line")
    code, out, err = app_cli(laptop, "sync")
    assert code == 0, out + err
    assert f"Sent: 0 accepted, {len(before)} already held (duplicate)" in out
    assert len(controller_json(controller, "records")) == len(before)
    assert len(sent_log(laptop)) == len(before)   # the sharing history is whole again


def test_a_code_issued_for_another_keyworker_is_refused(
    controller: Any, laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    code = controller.new_code("kw-someone-else")
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code)
    assert exit_code == 28
    assert "different keyworker id" in err
    with laptop.opened() as store:
        assert store.get_meta(META_DEVICE) == ""


def test_plain_http_to_another_computer_is_refused(laptop: Laptop, app_cli: AppCli) -> None:
    exit_code, _, err = app_cli(laptop, "enrol", "--controller", "http://controller.example.org", "--code", "X")
    assert exit_code == 22
    assert "Plain http:// is refused" in err


def test_the_token_goes_to_the_credential_store_when_the_profile_has_a_secure_one(
    controller: Any, tmp_path: Path, app_cli: AppCli, secure_keyring: Any, no_sleep: list[float]
) -> None:
    laptop = Laptop(tmp_path / "secure")
    code = controller.new_code(KEYWORKER)
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code)
    assert exit_code == 0, out + err
    assert "credential store" in out
    with laptop.opened() as store:
        assert store.get_meta(META_TOKEN_LOCATION) == "keyring"
        assert store.get_meta(META_TOKEN) == ""
    assert any(user.startswith("sync-token:") for _, user in secure_keyring.entries)
    laptop.add_cases(caseload(1))
    assert app_cli(laptop, "sync")[0] == 0


def test_the_token_stays_inside_the_encrypted_store_under_passphrase_only(
    enrolled: tuple[Any, Laptop]
) -> None:
    _, laptop = enrolled
    with laptop.opened() as store:
        assert store.get_meta(META_TOKEN_LOCATION) == "store"
        token = store.get_meta(META_TOKEN)
    assert token
    for path in laptop.paths.data.rglob("*"):
        if path.is_file():
            assert token.encode() not in path.read_bytes(), path.name


def _referral_file(tmp_path: Path) -> Path:
    path = tmp_path / "referral.json"
    path.write_text(json.dumps({
        "participant": {"given_name": "Testa", "family_name": "Synthetic", "programme": "working_well_ses",
                        "strand": "ips", "date_of_birth": "1990-02-03"},
        "referral": {"source_type": "nhs_trust", "reason": "Synthetic referral for a test",
                     "received_on": "2025-05-30"},
    }), "utf-8")
    return path


def _referrals(laptop: Laptop) -> list[Referral]:
    with laptop.opened() as store:
        return [r for r in store.repo(Referral).all() if r.controller_referral_id]


def test_a_referral_is_pulled_once(enrolled: tuple[Any, Laptop], app_cli: AppCli, tmp_path: Path) -> None:
    controller, laptop = enrolled
    done = controller.cli("refer", "--keyworker-id", KEYWORKER, "--file", str(_referral_file(tmp_path)))
    assert done.returncode == 0, done.stderr
    code, out, err = app_cli(laptop, "sync")
    assert code == 0, out + err
    assert "Referrals pulled: 1." in out
    pulled = _referrals(laptop)
    assert len(pulled) == 1
    with laptop.opened() as store:
        participant = store.participants.get(pulled[0].participant_id)
        assert (participant.given_name, participant.keyworker_id, participant.strand) == ("Testa", KEYWORKER, "ips")
    code, out, _ = app_cli(laptop, "sync")
    assert code == 0 and "Referrals pulled: 0." in out
    assert len(_referrals(laptop)) == 1


class _DropReferralAcks(httpx.BaseTransport):
    """Loopback transport that loses every referral acknowledgement (as a crash would)."""

    def __init__(self) -> None:
        self.inner = httpx.HTTPTransport(retries=0)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == "/v1/referrals/ack":
            raise httpx.ConnectError("dropped", request=request)
        return self.inner.handle_request(request)


def test_a_referral_stored_but_not_acknowledged_is_not_stored_twice(
    enrolled: tuple[Any, Laptop], app_cli: AppCli, tmp_path: Path
) -> None:
    controller, laptop = enrolled
    assert controller.cli("refer", "--keyworker-id", KEYWORKER, "--file", str(_referral_file(tmp_path))).returncode == 0
    with laptop.opened() as store:
        client = open_client(store, laptop.paths, RetryPolicy(max_attempts=1))
        client.http = httpx.Client(base_url=client.settings.base_url, transport=_DropReferralAcks())
        result = SyncEngine(store, client).run()
        client.close()
    assert result.outcome is RunOutcome.OFFLINE and result.referrals_pulled == 1
    assert len(_referrals(laptop)) == 1
    code, out, _ = app_cli(laptop, "sync")
    assert code == 0 and "Referrals pulled: 0." in out
    assert len(_referrals(laptop)) == 1


def test_withdrawing_consent_notifies_exactly_the_recipients_that_had_data(
    enrolled: tuple[Any, Laptop], app_cli: AppCli
) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(12, seed=5))
    assert app_cli(laptop, "sync")[0] == 0
    received = controller_json(controller, "records")
    had_data = {(r["recipient"], r["participant_id"]) for r in received if r["op"] == "upsert"}

    with laptop.opened() as store:
        consents = store.repo(Consent).all()
        latest: dict[tuple[str, str], Consent] = {}
        for c in consents:
            latest[(c.participant_id, c.sharing_profile)] = c   # rowid order: last saved wins
        with_data = [c for (pid, prof), c in latest.items()
                     if c.status is ConsentStatus.GIVEN and (prof, pid) in had_data]
        without_data = [c for (pid, prof), c in latest.items()
                        if c.status is ConsentStatus.REFUSED and (prof, pid) not in had_data]
        assert with_data and without_data, "the caseload needs both kinds"
        now = datetime.now(timezone.utc).replace(microsecond=0)
        for c in (with_data[0], without_data[0]):
            store.save(c.replace(status=ConsentStatus.WITHDRAWN, withdrawn_on=now))
    code, out, err = app_cli(laptop, "sync")
    assert code == 0, out + err
    notices = controller_json(controller, "withdrawals")
    assert [(n["recipient"], n["participant_id"]) for n in notices] == [
        (with_data[0].sharing_profile, with_data[0].participant_id)]
    # The notice carries the withdrawal and nothing else.
    notice = next(r for r in controller_json(controller, "records") if r["op"] == "withdraw")
    assert set(notice["payload"]) <= {"id", "version", "record_type", "participant_id", "sharing_profile",
                                      "status", "withdrawn_on", "notice_version"}
    # A second sync sends no second notice.
    assert app_cli(laptop, "sync")[0] == 0
    assert len(controller_json(controller, "withdrawals")) == 1


def _device_id(laptop: Laptop) -> str:
    with laptop.opened() as store:
        return store.get_meta(META_DEVICE)


def test_a_revoked_laptop_is_locked_and_purged_at_next_sync(
    enrolled: tuple[Any, Laptop], app_cli: AppCli
) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(2, seed=3))
    assert app_cli(laptop, "sync")[0] == 0
    done = controller.cli("revoke", "--device", _device_id(laptop))
    assert done.returncode == 0, done.stderr
    code, out, err = app_cli(laptop, "sync")
    assert code == 26
    assert "revoked" in err and "removed from this laptop" in err
    assert not laptop.paths.database.exists()
    assert not laptop.paths.keyfile.exists()
    assert not list(laptop.paths.data.glob("keyworker.db*"))
    # Nothing personal was written anywhere on the way out.
    for path in laptop.paths.data.rglob("*"):
        if path.is_file():
            assert b"Synthetic" not in path.read_bytes()


def test_a_lock_instruction_locks_and_keeps_the_data(enrolled: tuple[Any, Laptop], app_cli: AppCli) -> None:
    controller, laptop = enrolled
    assert controller.cli("lock", "--device", _device_id(laptop)).returncode == 0
    code, _, err = app_cli(laptop, "sync")
    assert code == 29 and "lock" in err
    assert laptop.paths.database.exists()
    code, out, _ = app_cli(laptop, "sync")   # acknowledged: the next sync is normal
    assert code == 0, out


def test_offline_is_a_clear_message_and_loses_nothing(
    enrolled: tuple[Any, Laptop], app_cli: AppCli, no_sleep: list[float]
) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(1, seed=9))
    controller.stop()
    code, out, err = app_cli(laptop, "sync")
    assert code == 23
    assert "could not be reached" in err
    assert len(no_sleep) == RetryPolicy().max_attempts - 1
    with laptop.opened() as store:
        assert store.outbox_count("pending") > 0


def test_an_unknown_token_stops_the_run_and_says_why(enrolled: tuple[Any, Laptop], app_cli: AppCli) -> None:
    _, laptop = enrolled
    with laptop.opened() as store:
        store.set_meta(META_TOKEN, "not-a-real-token")
    code, _, err = app_cli(laptop, "sync")
    assert code == 25
    assert "does not know this laptop's access token" in err


def test_a_rejected_item_is_set_aside_and_blocks_nothing(
    enrolled: tuple[Any, Laptop], app_cli: AppCli
) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(2, seed=21))
    with laptop.opened() as store:
        # A participant whose programme id the controller's profiles cannot hold is refused
        # on receipt ('programme' must be an id); everything else still goes.
        bad = store.participants.all()[0]
        store.save(bad.replace(programme="working_well_ses", strand="not a strand!"))
        pending = store.outbox_count("pending")
    code, out, err = app_cli(laptop, "sync")
    assert code == 30, out + err
    assert "rejected" in out and "set aside" in err
    with laptop.opened() as store:
        assert store.outbox_count("quarantined") >= 1
        assert store.outbox_count("pending") == 0
        assert store.outbox_count("done") + store.outbox_count("quarantined") == pending
        reasons = store.db.query("SELECT code, reason FROM quarantine WHERE resolved_at IS NULL")
        assert reasons and all(code for code, _ in reasons)
        quarantined_before = store.outbox_count("quarantined")
        # Fix and resend: a corrected version goes through and resolves the quarantine.
        fixed = store.participants.get(bad.id)
        store.save(fixed.replace(strand=""))
    code, out, err = app_cli(laptop, "sync")
    assert code == 0, out + err
    with laptop.opened() as store:
        # The participant record's refusals are resolved by its corrected version; the
        # participant's other records went with the bad strand too and stay set aside
        # until they are saved again.
        open_for = store.db.query(
            "SELECT count(*) FROM quarantine WHERE resolved_at IS NULL AND record_id = ?", (bad.id,))
        assert open_for[0][0] == 0
        assert store.outbox_count("quarantined") == quarantined_before - 1


def test_outcome_counts_match_the_item_table(enrolled: tuple[Any, Laptop]) -> None:
    controller, laptop = enrolled
    laptop.add_cases(caseload(2, seed=4))
    with laptop.opened() as store:
        client = open_client(store, laptop.paths, RetryPolicy(sleep=lambda s: None))
        stages: list[str] = []
        result = SyncEngine(store, client, progress=lambda stage, d, t: stages.append(stage.value)).run()
        client.close()
        accepted = store.db.scalar("SELECT count(*) FROM sent_log WHERE controller_status = 'accepted'")
    assert result.outcome is RunOutcome.OK
    assert result.counts[Outcome.ACCEPTED] == accepted
    assert stages[0] == "preparing" and stages[-1] == "done"
    assert [s for i, s in enumerate(stages) if i == 0 or stages[i - 1] != s] == [
        "preparing", "pushing", "pulling_referrals", "pulling_instructions", "done"]


@pytest.mark.parametrize("chunk, chunk_max", [(8, 32), (1000, 1000)], ids=["growing_chunks", "one_chunk"])
def test_consents_withdrawn_during_a_pipelined_run_notify_exactly_where_data_went(
    enrolled: tuple[Any, Laptop], chunk: int, chunk_max: int
) -> None:
    """Small batches, so that many batches are queued for the sender while later chunks
    are projected; the keyworker withdraws consents while the run is sending (from the
    progress callback, between two chunks). Their notices are projected in the same run
    and must go exactly to the recipients that received data about the participant,
    every outbox row must be finished, and nothing left pending.

    With growing chunks, most of that data was answered and written down chunks before.
    With one chunk, none of it was: the notices' chunk is read while every batch of the
    first is still in flight or answered but not yet written, so each notice depends on
    the engine settling those first."""
    from sync.engine import SyncConfig, Stage

    controller, laptop = enrolled
    laptop.add_cases(caseload(6, seed=9))
    withdrawn: list[Consent] = []
    with laptop.opened() as store:
        def on_progress(stage: Stage, done: int, total: int) -> None:
            if stage is Stage.PUSHING and done and done >= total and not withdrawn:
                latest: dict[tuple[str, str], Consent] = {}
                for c in store.repo(Consent).all():
                    latest[(c.participant_id, c.sharing_profile)] = c
                now = datetime.now(timezone.utc).replace(microsecond=0)
                for c in latest.values():
                    if c.status is ConsentStatus.GIVEN:
                        store.save(c.replace(status=ConsentStatus.WITHDRAWN, withdrawn_on=now))
                        withdrawn.append(c)

        result = push(store, laptop, SyncConfig(outbox_chunk=chunk, outbox_chunk_max=chunk_max, max_batch_items=4), progress=on_progress)
        assert store.outbox_count("pending") == 0
        assert store.db.scalar("SELECT count(*) FROM sync_item WHERE status = 'pending'") == 0
    assert result.outcome is RunOutcome.OK and withdrawn
    received = controller_json(controller, "records")
    had_data = {(r["recipient"], r["participant_id"]) for r in received if r["op"] == "upsert"}
    expected = sorted((c.sharing_profile, c.participant_id) for c in withdrawn
                      if (c.sharing_profile, c.participant_id) in had_data)
    assert expected, "some withdrawn consents' recipients must have had data in this run"
    notices = controller_json(controller, "withdrawals")
    assert sorted((n["recipient"], n["participant_id"]) for n in notices) == expected


def test_a_push_runs_without_the_collector_and_with_quick_thread_switches(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """While batches go out, the cyclic garbage collector is off and Python switches
    threads every millisecond (see sync.engine.tuned_for_pushing); once the run is over,
    both are as they were, and a push of another store at the same time shares the
    setting instead of putting it back early."""
    import gc
    import sys

    from sync import engine as engine_module
    from sync.engine import SyncConfig, tuned_for_pushing

    controller, laptop = enrolled
    laptop.add_cases(caseload(2, seed=23))
    seen: list[tuple[bool, float]] = []
    deliver = engine_module.SyncEngine._deliver

    def recording(self: Any, items: Any, encoded: Any, after: Any = ()) -> Any:
        seen.append((gc.isenabled(), sys.getswitchinterval()))
        return deliver(self, items, encoded, after)

    monkeypatch.setattr(engine_module.SyncEngine, "_deliver", recording)
    before = sys.getswitchinterval()
    assert gc.isenabled() and before > 0.001
    with laptop.opened() as store:
        with tuned_for_pushing():   # another store's push, already running
            result = push(store, laptop, SyncConfig(max_batch_items=4))
            assert not gc.isenabled() and sys.getswitchinterval() == 0.001
    assert result.outcome is RunOutcome.OK and len(seen) == result.batches > 1
    assert set(seen) == {(False, 0.001)}
    assert gc.isenabled() and sys.getswitchinterval() == before


def test_two_batches_on_the_wire_never_carry_one_record_for_one_recipient(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """Two batches go at once, but a batch carrying a record's new version for a recipient
    waits for an earlier batch still on its way with the old one, so the controller meets
    the versions in order (the other way round, the old would be refused as a conflict).

    The participant record is edited after the first chunk is handed over, so its new
    version goes in a later batch; the first batch with the old version is held back from
    the wire until the later one's sender has started (a stand-in for a slow network,
    which a test cannot make on cue). Every post checks that no (record, recipient) pair
    is on the wire twice."""
    import threading

    from sync import engine as engine_module
    from sync.engine import SyncConfig, Stage

    controller, laptop = enrolled
    laptop.add_cases(caseload(3, seed=24))
    lock = threading.Lock()
    on_wire: set[tuple[str, str]] = set()
    overlaps: list[tuple[str, str]] = []
    newer_started = threading.Event()
    waited: list[bool] = []
    deliver, post = engine_module.SyncEngine._deliver, engine_module.SyncEngine._post
    with laptop.opened() as store:
        person = store.participants.all()[0]
        edited: list[int] = []

        def on_progress(stage: Stage, done: int, total: int) -> None:
            if stage is Stage.PUSHING and done and not edited:
                current = store.participants.find(person.id)
                assert current is not None
                edited.append(store.save(current.replace(preferred_name="Jo")).version)

        def delivering(self: Any, items: Any, encoded: Any, after: Any = ()) -> Any:
            if any(i.record_id == person.id and i.version > person.version for i in items):
                newer_started.set()
            return deliver(self, items, encoded, after)

        def posting(self: Any, items: Any, encoded: Any) -> Any:
            if any(i.record_id == person.id and i.version == person.version for i in items):
                waited.append(newer_started.wait(timeout=30))
            pairs = {(i.record_id, i.recipient) for i in items}
            with lock:
                overlaps.extend(pairs & on_wire)
                on_wire.update(pairs)
            try:
                return post(self, items, encoded)
            finally:
                with lock:
                    on_wire.difference_update(pairs)

        monkeypatch.setattr(engine_module.SyncEngine, "_deliver", delivering)
        monkeypatch.setattr(engine_module.SyncEngine, "_post", posting)
        result = push(store, laptop, SyncConfig(outbox_chunk=8, outbox_chunk_max=8, max_batch_items=4), progress=on_progress)
    assert edited and waited == [True] and overlaps == []
    assert result.outcome is RunOutcome.OK and not result.counts.get(Outcome.CONFLICT)
    versions = sorted({r["version"] for r in controller_json(controller, "records") if r["record_id"] == person.id})
    assert versions == [person.version, edited[0]]


def test_the_writer_lets_the_engine_in_when_it_needs_the_store(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """The writer writes a group of answers in one transaction, but when the engine's
    thread needs the store (to read the next chunk or record it) the writer commits after
    the batch it is on, lets it in, and writes the rest in another transaction. Every
    answer is still written exactly once.

    Inside its first group of two or more batches, the writer starts a stand-in for the
    engine's thread that asks for the store as the engine does (and reads from it), and
    waits until it has asked: the moment a real engine meets only by chance. The engine's
    own requests are switched off so that they cannot answer for it."""
    import contextlib
    import threading

    from keyworker_app.store.database import Database
    from sync import engine as engine_module
    from sync.engine import SyncConfig
    from sync.ledger import Ledger

    controller, laptop = enrolled
    laptop.add_cases(caseload(4, seed=25))
    state: dict[str, Any] = {"engine": None, "group": 0, "asker": None}
    groups: list[int] = []
    writer_transactions: list[int] = []
    write_answers, apply_answers = engine_module.SyncEngine._write_answers, Ledger.apply_answers
    store_needed, transaction = engine_module.SyncEngine._store_needed, Database.transaction

    def writing(self: Any, answered: Any) -> Any:
        state["engine"], state["group"] = self, len(answered)
        groups.append(len(answered))
        return write_answers(self, answered)

    def applying(self: Ledger, items: Any, answers: Any) -> None:
        if state["asker"] is None and state["group"] >= 2:
            engine, asked = state["engine"], threading.Event()

            def ask() -> None:
                with store_needed(engine):
                    asked.set()
                    engine.store.db.scalar("SELECT count(*) FROM sent_line")

            state["asker"] = threading.Thread(target=ask)
            state["asker"].start()
            assert asked.wait(timeout=60)
        apply_answers(self, items, answers)

    depth = threading.local()   # this thread's own nesting (the store's is shared by threads)

    @contextlib.contextmanager
    def counting(self: Database) -> Any:
        outer = getattr(depth, "n", 0)
        if threading.current_thread().name.startswith("keyworker-sync-write") and not outer:
            writer_transactions.append(len(groups))
        depth.n = outer + 1
        try:
            with transaction(self) as conn:
                yield conn
        finally:
            depth.n = outer

    monkeypatch.setattr(engine_module.SyncEngine, "_write_answers", writing)
    monkeypatch.setattr(engine_module.SyncEngine, "_store_needed", lambda self: contextlib.nullcontext())
    monkeypatch.setattr(Ledger, "apply_answers", applying)
    monkeypatch.setattr(Database, "transaction", counting)
    with laptop.opened() as store:
        result = push(store, laptop, SyncConfig(outbox_chunk=8, outbox_chunk_max=16, max_batch_items=2))
        assert store.outbox_count("pending") == 0
    state["asker"].join(timeout=60)
    assert result.outcome is RunOutcome.OK
    # The group the stand-in met was written in two transactions; every other in one.
    assert len(writer_transactions) == len(groups) + 1
    assert_each_answer_written_once(controller, laptop, result)


def test_while_draining_the_answers_are_written_in_groups_as_they_come(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """Once every chunk is sent, the answers still coming back are written in groups of
    about _WRITE_EVERY items as they arrive, so that writing overlaps with the controller
    storing the rest, and only the last group is left for after the last answer."""
    from sync import engine as engine_module
    from sync.engine import SyncConfig

    controller, laptop = enrolled
    laptop.add_cases(caseload(3, seed=27))
    monkeypatch.setattr(engine_module, "_WRITE_EVERY", 6)
    groups: list[int] = []
    write_answers = engine_module.SyncEngine._write_answers

    def writing(self: Any, answered: Any) -> Any:
        groups.append(sum(len(items) for items, _ in answered))
        return write_answers(self, answered)

    monkeypatch.setattr(engine_module.SyncEngine, "_write_answers", writing)
    with laptop.opened() as store:   # one chunk: every group is written while draining
        result = push(store, laptop, SyncConfig(outbox_chunk=1000, outbox_chunk_max=1000, max_batch_items=2))
    assert result.outcome is RunOutcome.OK
    assert len(groups) > 3 and all(size >= 6 for size in groups[:-1]), groups
    assert sum(groups) == result.summary()["accepted"] + result.summary()["duplicate"]
    assert_each_answer_written_once(controller, laptop, result)


def test_answers_are_written_down_by_the_writer_thread(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """The engine's own thread projects and records; the answers that come back are
    written down by one writer thread (so that the store's encryption and commits run
    beside the projecting), and every one of them is, exactly once."""
    import threading

    from sync.engine import SyncConfig
    from sync.ledger import Ledger

    controller, laptop = enrolled
    laptop.add_cases(caseload(5, seed=21))
    writers: list[str] = []
    apply_answers = Ledger.apply_answers

    def recording(self: Ledger, items: Any, answers: Any) -> None:
        writers.append(threading.current_thread().name)
        apply_answers(self, items, answers)

    monkeypatch.setattr(Ledger, "apply_answers", recording)
    with laptop.opened() as store:
        result = push(store, laptop, SyncConfig(outbox_chunk=8, outbox_chunk_max=32, max_batch_items=4))
        assert store.outbox_count("pending") == 0
    assert result.outcome is RunOutcome.OK
    assert len(writers) == result.batches > 10
    assert {name.split("_")[0] for name in writers} == {"keyworker-sync-write"}
    assert_each_answer_written_once(controller, laptop, result)


def test_a_write_that_fails_stops_the_run_and_the_next_run_loses_nothing(
    enrolled: tuple[Any, Laptop], monkeypatch: Any
) -> None:
    """The writer thread's failure (here a full disk, which a test cannot make for real, so
    the third write raises what SQLite raises then) stops the run with that error. What
    was written stays written, the rest stays pending, and the next run sends it again:
    the controller answers "duplicate" for what it already held, and holds each item once."""
    import sqlcipher3  # type: ignore[import-untyped]

    from sync.engine import SyncConfig
    from sync.ledger import Ledger

    controller, laptop = enrolled
    laptop.add_cases(caseload(5, seed=22))
    calls: list[int] = []
    apply_answers = Ledger.apply_answers

    def failing(self: Ledger, items: Any, answers: Any) -> None:
        calls.append(len(items))
        if len(calls) == 3:
            raise sqlcipher3.OperationalError("database or disk is full")
        apply_answers(self, items, answers)

    config = SyncConfig(outbox_chunk=8, outbox_chunk_max=32, max_batch_items=4)
    with laptop.opened() as store:
        client = open_client(store, laptop.paths, RetryPolicy(sleep=lambda s: None))
        with monkeypatch.context() as patch:
            patch.setattr(Ledger, "apply_answers", failing)
            try:
                SyncEngine(store, client, config).run()
            except sqlcipher3.OperationalError as exc:
                assert "disk is full" in str(exc)
            else:
                raise AssertionError("the writer's failure must stop the run")
        assert store.outbox_count("pending") > 0
        assert store.check() == []
        assert len(calls) == 3, "nothing may be written after a failed write"
        result = SyncEngine(store, client, config).run()
        client.close()
        assert store.outbox_count("pending") == 0
        assert store.db.scalar("SELECT count(*) FROM sync_item WHERE status = 'pending'") == 0
    assert result.outcome is RunOutcome.OK and result.counts[Outcome.DUPLICATE] > 0
    received = controller_json(controller, "records")
    assert len({r["idempotency_key"] for r in received}) == len(received)
    assert sorted(r["idempotency_key"] for r in received) == sorted(row[0] for row in sent_log(laptop))
