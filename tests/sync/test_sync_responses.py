"""Malformed, truncated, oversized and wrong-typed answers: a typed error, never a crash,
never half-applied. The controller here is a scripted httpx.MockTransport, so each answer
can be broken in exactly one way; the engine and the store are real.
"""

from __future__ import annotations

import gzip
import json
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from keyworker_app.records import Referral
from keyworker_app.store.store import Store
from sync.engine import Outcome, RunOutcome, SyncConfig, SyncEngine
from sync.errors import MalformedResponse
from sync.retry import RetryPolicy
from sync.transport import ControllerClient, TransportSettings
from sync_testkit import KEYWORKER, caseload

from keyworker_app.demo import save_caseload

BASE = "http://127.0.0.1:9"
Mutator = Callable[[dict[str, Any]], Any]


class FakeController:
    """Answers the protocol correctly unless a test breaks one answer."""

    def __init__(self) -> None:
        self.push_answer: Mutator = lambda body: body
        self.raw_push: bytes | None = None
        self.referrals: Any = {"referrals": [], "next_cursor": None, "more": False}
        self.instructions: Any = {"instructions": []}
        self.max_items = 500
        self.paths: list[str] = []
        self.pushed_batches: list[int] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        path = request.url.path
        self.paths.append(path)
        if path == "/v1/health":
            return httpx.Response(200, json={"status": "ok", "api_version": "1",
                                             "limits": {"max_items": 500, "max_push_bytes": 8 << 20}})
        if path == "/v1/push":
            batch = json.loads(gzip.decompress(request.read()))
            if len(batch["items"]) > self.max_items:
                return httpx.Response(413, json={"error": "batch_too_large", "message": "too many"})
            self.pushed_batches.append(len(batch["items"]))
            if self.raw_push is not None:
                return httpx.Response(200, content=self.raw_push, headers={"content-type": "application/json"})
            body = {"batch_id": batch["batch_id"], "counts": {}, "results": [
                {"index": i, "idempotency_key": item["idempotency_key"], "status": "accepted",
                 "code": None, "reason": None}
                for i, item in enumerate(batch["items"])]}
            return httpx.Response(200, json=self.push_answer(body))
        if path == "/v1/referrals":
            return httpx.Response(200, json=self.referrals)
        if path in ("/v1/referrals/ack", "/v1/instructions/ack"):
            ids = json.loads(request.read())["ids"]
            return httpx.Response(200, json={"acknowledged": ids, "unknown": []})
        if path == "/v1/instructions":
            return httpx.Response(200, json=self.instructions)
        return httpx.Response(404, json={"error": "not_found", "message": "no"})


@pytest.fixture
def fake() -> FakeController:
    return FakeController()


@pytest.fixture
def loaded(store: Store) -> Iterator[Store]:
    save_caseload(store, caseload(2, seed=51, keyworker_id=store.actor))
    yield store


def run(store: Store, fake: FakeController, max_response_bytes: int = 4 << 20,
        config: SyncConfig | None = None) -> Any:
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake))
    client = ControllerClient(TransportSettings(BASE, max_response_bytes=max_response_bytes), "token",
                              RetryPolicy(sleep=lambda s: None), http=http)
    return SyncEngine(store, client, config).run()


def assert_nothing_applied(store: Store, pending_before: int) -> None:
    assert store.outbox_count("pending") == pending_before
    assert store.db.scalar("SELECT count(*) FROM sent_log") == 0
    assert store.db.scalar("SELECT count(*) FROM sync_item WHERE status NOT IN ('pending', 'held_back')") == 0
    assert store.db.scalar("SELECT count(*) FROM quarantine") == 0


def test_a_well_formed_exchange_applies(loaded: Store, fake: FakeController) -> None:
    result = run(loaded, fake)
    assert result.outcome is RunOutcome.OK and result.counts[Outcome.ACCEPTED] > 0
    assert loaded.outbox_count("pending") == 0


BROKEN_PUSH_ANSWERS: dict[str, Mutator] = {
    "too few results": lambda b: {**b, "results": b["results"][:-1]},
    "another batch": lambda b: {**b, "batch_id": "someone-else"},
    "unknown status": lambda b: {**b, "results": [{**r, "status": "maybe"} for r in b["results"]]},
    "keys swapped": lambda b: {**b, "results": [{**r, "idempotency_key": "x:1:y"} for r in b["results"]]},
    "index as text": lambda b: {**b, "results": [{**r, "index": str(r["index"])} for r in b["results"]]},
    "results not a list": lambda b: {**b, "results": {"0": "accepted"}},
    "a list, not an object": lambda b: [b],
    "reason not text": lambda b: {**b, "results": [{**r, "reason": 42} for r in b["results"]]},
}


@pytest.mark.parametrize("name", sorted(BROKEN_PUSH_ANSWERS))
def test_a_malformed_push_answer_is_a_typed_error_and_nothing_is_applied(
    loaded: Store, fake: FakeController, name: str
) -> None:
    pending = loaded.outbox_count("pending")
    fake.push_answer = BROKEN_PUSH_ANSWERS[name]
    result = run(loaded, fake)
    assert result.outcome is RunOutcome.SERVER_ERROR
    assert isinstance(result.error, MalformedResponse)
    assert "Nothing from it was applied" in result.message
    assert_nothing_applied(loaded, pending)
    # The next run, against a sane controller, sends it all.
    fake.push_answer = lambda b: b
    assert run(loaded, fake).outcome is RunOutcome.OK
    assert loaded.outbox_count("pending") == 0


_KEYS = ["rec-1:1:employer", "rec-1:1:referrer_updates", "rec-2:3:employer"]


def _sound_answer() -> dict[str, Any]:
    return {"batch_id": "b-1", "counts": {}, "results": [
        {"index": i, "idempotency_key": key, "status": "accepted", "code": None, "reason": None}
        for i, key in enumerate(_KEYS)]}


def _results(change: Callable[[int, dict[str, Any]], dict[str, Any]]) -> Mutator:
    return lambda b: {**b, "results": [change(i, r) for i, r in enumerate(b["results"])]}


# Answers the quick reading of a push answer (typed, in one pass) must read exactly as the
# value-by-value one does: the same answers, or the same refusal. Each is a change to a
# sound answer, or bytes as they come.
PUSH_ANSWER_CHANGES: dict[str, Mutator] = {
    **{f"broken: {name}": mutate for name, mutate in BROKEN_PUSH_ANSWERS.items()},
    "sound": lambda b: b,
    "no code or reason at all": _results(lambda i, r: {k: v for k, v in r.items() if k not in ("code", "reason")}),
    "refused and duplicate, with reasons": _results(lambda i, r: {
        **r, "status": ["rejected", "duplicate", "conflict"][i], "code": f"code-{i}",
        "reason": f"field 'x{i}' is not in the profile"}),
    "index as a whole float": _results(lambda i, r: {**r, "index": float(i)}),
    "index as true": _results(lambda i, r: {**r, "index": i == 1}),
    "a code too long": _results(lambda i, r: {**r, "code": "c" * 101}),
    "a reason too long": _results(lambda i, r: {**r, "reason": "r" * 1001}),
    "reason longest allowed": _results(lambda i, r: {**r, "reason": "r" * 1000}),
    "an index out of order": _results(lambda i, r: {**r, "index": 2 - i}),
    "extra keys": lambda b: _results(lambda i, r: {**r, "extra": [1, 2]})({**b, "more": True}),
    "a lone surrogate in a reason": _results(lambda i, r: {**r, "reason": "\ud800"}),
    "batch id missing": lambda b: {k: v for k, v in b.items() if k != "batch_id"},
    "status null": _results(lambda i, r: {**r, "status": None}),
}
PUSH_ANSWER_BODIES: dict[str, Callable[[], bytes]] = {
    **{name: (lambda change=change: json.dumps(change(_sound_answer())).encode())
       for name, change in PUSH_ANSWER_CHANGES.items()},
    "not json": lambda: b"not json",
    "truncated": lambda: json.dumps(_sound_answer()).encode()[:-5],
}


@pytest.mark.parametrize("name", sorted(PUSH_ANSWER_BODIES))
def test_a_push_answer_read_quickly_reads_as_it_does_value_by_value(name: str) -> None:
    from sync.wire import decode_json, parse_push_body, parse_push_response

    body = PUSH_ANSWER_BODIES[name]()

    def outcome(read: Callable[[], Any]) -> Any:
        try:
            return read()
        except MalformedResponse as exc:
            return ("refused", str(exc))

    quick = outcome(lambda: parse_push_body(body, "b-1", _KEYS))
    assert quick == outcome(lambda: parse_push_response(decode_json(body), "b-1", _KEYS))
    if name in ("sound", "no code or reason at all", "refused and duplicate, with reasons",
                "index as a whole float", "reason longest allowed", "extra keys", "a lone surrogate in a reason"):
        assert [a.idempotency_key for a in quick] == _KEYS
    else:
        assert quick[0] == "refused"


@pytest.mark.parametrize("raw", [b'{"batch_id": "x", "resul', b"", b"not json", b"\xff\xfe{}"])
def test_a_truncated_or_non_json_answer_is_a_typed_error(loaded: Store, fake: FakeController, raw: bytes) -> None:
    pending = loaded.outbox_count("pending")
    fake.raw_push = raw
    result = run(loaded, fake)
    assert result.outcome is RunOutcome.SERVER_ERROR and isinstance(result.error, MalformedResponse)
    assert_nothing_applied(loaded, pending)


def test_an_oversized_answer_is_not_read_past_the_limit(loaded: Store, fake: FakeController) -> None:
    pending = loaded.outbox_count("pending")
    fake.push_answer = lambda b: {**b, "padding": "x" * 100_000}
    result = run(loaded, fake, max_response_bytes=50_000)
    assert isinstance(result.error, MalformedResponse) and "larger than the limit" in result.message
    assert_nothing_applied(loaded, pending)


def test_a_damaged_compressed_answer_is_a_typed_error(store: Store) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, stream=httpx.ByteStream(b"\x1f\x8b\x08garbage"),
                              headers={"content-encoding": "gzip"})

    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(handler))
    client = ControllerClient(TransportSettings(BASE), "token", RetryPolicy(sleep=lambda s: None), http=http)
    result = SyncEngine(store, client).run()
    assert result.outcome is RunOutcome.SERVER_ERROR and isinstance(result.error, MalformedResponse)


def _referral(i: int, **participant: Any) -> dict[str, Any]:
    return {
        "id": f"ref-{i}", "queued_at": "2025-06-01T10:00:00.000000Z",
        "participant": {"given_name": "Synth", "family_name": f"Person{i}", "programme": "working_well_ses",
                        "keyworker_id": KEYWORKER, **participant},
        "referral": {"source_type": "self", "reason": "synthetic", "controller_referral_id": f"ref-{i}"},
    }


@pytest.mark.parametrize("bad", [
    {"date_of_birth": 19900203},
    {"date_of_birth": "3rd Feb"},
    {"status": "vanished"},
    {"interpreter_needed": "yes"},
    {"objections": "evaluation"},
    {"no_such_field": "x"},
])
def test_a_wrong_typed_referral_spoils_the_whole_page_and_nothing_is_stored(
    store: Store, fake: FakeController, bad: dict[str, Any]
) -> None:
    fake.referrals = {"referrals": [_referral(1), _referral(2, **bad)], "next_cursor": "c", "more": False}
    result = run(store, fake)
    assert result.outcome is RunOutcome.SERVER_ERROR and isinstance(result.error, MalformedResponse)
    assert store.repo(Referral).count() == 0 and store.participants.count() == 0
    assert "/v1/referrals/ack" not in fake.paths
    # The message names where, never the value.
    assert str(next(iter(bad.values()))) not in result.message


def test_referrals_become_records_and_are_acknowledged(store: Store, fake: FakeController) -> None:
    fake.referrals = {"referrals": [_referral(1, strand="ips"), _referral(2)], "next_cursor": "c", "more": False}
    result = run(store, fake)
    assert result.outcome is RunOutcome.OK and result.referrals_pulled == 2
    refs = store.repo(Referral).all()
    assert sorted(r.controller_referral_id for r in refs) == ["ref-1", "ref-2"]
    assert all(store.participants.get(r.participant_id).keyworker_id == store.actor for r in refs)
    assert "/v1/referrals/ack" in fake.paths
    assert run(store, fake).referrals_pulled == 0   # pulled again: not stored twice
    assert store.repo(Referral).count() == 2


@pytest.mark.parametrize("page", [
    {"referrals": "none"}, {"referrals": [], "more": "no"}, {"referrals": [{"id": "bad id!"}], "more": False},
    [], {"referrals": [_referral(1), _referral(1)], "more": False},
])
def test_a_malformed_referral_page_is_a_typed_error(store: Store, fake: FakeController, page: Any) -> None:
    fake.referrals = page
    result = run(store, fake)
    assert isinstance(result.error, MalformedResponse)
    assert store.participants.count() == 0


@pytest.mark.parametrize("answer", [{"instructions": [{"id": "i1", "kind": "explode", "action": "x"}]},
                                    {"instructions": None}, "purge"])
def test_a_malformed_instruction_list_is_a_typed_error(store: Store, fake: FakeController, answer: Any) -> None:
    fake.instructions = answer
    result = run(store, fake)
    assert isinstance(result.error, MalformedResponse)
    assert store.db.is_open


def test_a_batch_the_controller_finds_too_large_is_split(loaded: Store, fake: FakeController) -> None:
    fake.max_items = 7
    result = run(loaded, fake, config=SyncConfig(max_batch_items=40))
    assert result.outcome is RunOutcome.OK
    assert max(fake.pushed_batches) <= 7
    assert loaded.outbox_count("pending") == 0


def test_batches_are_bounded_in_count_and_bytes(loaded: Store, fake: FakeController) -> None:
    result = run(loaded, fake, config=SyncConfig(max_batch_items=10, max_batch_bytes=6000))
    assert result.outcome is RunOutcome.OK
    assert max(fake.pushed_batches) <= 10 and len(fake.pushed_batches) > 3


def test_a_revoke_instruction_acknowledges_then_purges(store: Store, fake: FakeController) -> None:
    fake.instructions = {"instructions": [{"id": "i-1", "kind": "revoke", "action": "lock_and_purge",
                                           "created_at": "2025-06-01T10:00:00Z"}]}
    purged: list[bool] = []
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake))
    client = ControllerClient(TransportSettings(BASE), "token", RetryPolicy(sleep=lambda s: None), http=http)
    result = SyncEngine(store, client, purge=lambda: purged.append(True)).run()
    assert result.outcome is RunOutcome.REVOKED and purged == [True]
    assert fake.paths[-1] == "/v1/instructions/ack"


@pytest.mark.parametrize("on_before", [True, False])
def test_a_push_pauses_the_garbage_collector_and_puts_it_back(
        loaded: Store, fake: FakeController, on_before: bool) -> None:
    """Every collection during a push walked its live items again and found nothing; the
    engine switches the collector off while pushing, and back as it was afterwards."""
    import gc

    from sync.engine import Stage

    during: list[bool] = []
    http = httpx.Client(base_url=BASE, transport=httpx.MockTransport(fake))
    client = ControllerClient(TransportSettings(BASE), "token", RetryPolicy(sleep=lambda s: None), http=http)
    engine = SyncEngine(loaded, client, progress=lambda stage, done, total: (
        during.append(gc.isenabled()) if stage is Stage.PUSHING else None))
    was = gc.isenabled()
    (gc.enable if on_before else gc.disable)()
    try:
        assert engine.run().outcome is RunOutcome.OK
        assert gc.isenabled() is on_before
    finally:
        (gc.enable if was else gc.disable)()
    assert during and not any(during)
