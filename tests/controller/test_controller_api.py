"""The controller's HTTP API against a real process, on SQLite and PostgreSQL."""

from __future__ import annotations

import gzip
import json
import threading
import uuid
from typing import Any, Callable

import httpx
from controller_testkit import Controller, ProfileCase, make_batch, make_item

# A value that must never come back in an answer or a log line.
PERSONAL = "Jane Q. Example, 07700 900123"


# --- health and enrolment ----------------------------------------------------------------

def test_health_needs_no_token(controller: Controller) -> None:
    body = controller.client().get("/v1/health").json()
    assert body["status"] == "ok"
    assert body["limits"]["max_items"] == 1000


def test_enrol_with_a_good_code_gives_a_device_token(controller: Controller) -> None:
    code = controller.new_code("kw-1")
    response = controller.client().post(
        "/v1/enrol", json={"code": code, "keyworker_id": "kw-1", "device_name": "laptop 7"}
    )
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["keyworker_id"] == "kw-1"
    assert len(body["token"]) >= 43  # 32 random bytes, urlsafe base64
    assert controller.client(body["token"]).get("/v1/instructions").status_code == 200
    devices = json.loads(controller.cli("devices", "--format", "json").stdout)
    assert [d["id"] for d in devices] == [body["device_id"]]
    assert "token_hash" not in devices[0] and body["token"] not in json.dumps(devices)


def test_enrolment_code_is_accepted_in_any_case_without_dashes(controller: Controller) -> None:
    code = controller.new_code("kw-1").replace("-", "").lower()
    response = controller.client().post(
        "/v1/enrol", json={"code": code, "keyworker_id": "kw-1", "device_name": "l"}
    )
    assert response.status_code == 200, response.text


def _enrol(controller: Controller, code: str, keyworker_id: str) -> httpx.Response:
    return controller.client().post(
        "/v1/enrol", json={"code": code, "keyworker_id": keyworker_id, "device_name": "laptop"}
    )


def test_a_used_code_is_refused(controller: Controller) -> None:
    code = controller.new_code("kw-1")
    assert _enrol(controller, code, "kw-1").status_code == 200
    again = _enrol(controller, code, "kw-1")
    assert again.status_code == 409
    assert again.json()["error"] == "enrolment_code_used"
    assert "already been used" in again.json()["message"]


def test_an_expired_code_is_refused(controller: Controller) -> None:
    code = controller.new_code("kw-1", "--valid-hours", "0")
    response = _enrol(controller, code, "kw-1")
    assert response.status_code == 410
    assert response.json()["error"] == "enrolment_code_expired"


def test_a_code_for_another_keyworker_is_refused_and_not_spent(controller: Controller) -> None:
    code = controller.new_code("kw-1")
    response = _enrol(controller, code, "kw-2")
    assert response.status_code == 403
    assert response.json()["error"] == "enrolment_keyworker_mismatch"
    assert _enrol(controller, code, "kw-1").status_code == 200


def test_an_unknown_code_is_refused(controller: Controller) -> None:
    response = _enrol(controller, "AAAA-BBBB-CCCC-DDDD", "kw-1")
    assert response.status_code == 400
    assert response.json()["error"] == "enrolment_code_unknown"


# --- authentication ----------------------------------------------------------------------

AUTHENTICATED: list[tuple[str, str, dict[str, Any] | None]] = [
    ("POST", "/v1/push", {"batch_id": "b1", "items": []}),
    ("GET", "/v1/referrals", None),
    ("POST", "/v1/referrals/ack", {"ids": []}),
    ("GET", "/v1/instructions", None),
    ("POST", "/v1/instructions/ack", {"ids": []}),
]


def _call(client: httpx.Client, method: str, path: str, body: dict[str, Any] | None) -> httpx.Response:
    return client.request(method, path, json=body) if body is not None else client.request(method, path)


def test_every_endpoint_refuses_missing_wrong_and_revoked_tokens(controller: Controller) -> None:
    device_id, token = controller.enrol_device("kw-1")
    live = controller.client(token)
    for method, path, body in AUTHENTICATED:
        assert _call(live, method, path, body).status_code == 200, path

    for method, path, body in AUTHENTICATED:
        missing = _call(controller.client(), method, path, body)
        assert missing.status_code == 401, path
        assert missing.json()["error"] == "missing_token"
        assert missing.headers["WWW-Authenticate"] == "Bearer"
        wrong = _call(controller.client("not-a-real-token"), method, path, body)
        assert wrong.status_code == 401, path
        assert wrong.json()["error"] == "invalid_token"

    done = controller.cli("revoke", "--device", device_id)
    assert done.returncode == 0, done.stderr
    for method, path, body in AUTHENTICATED:
        revoked = _call(live, method, path, body)
        assert revoked.status_code == 401, path
        assert revoked.json() == {
            "error": "device_revoked",
            "message": revoked.json()["message"],
            "instruction": "purge",
        }


def test_revoking_one_device_leaves_the_others_working(controller: Controller) -> None:
    lost_id, lost_token = controller.enrol_device("kw-1")
    _, other_token = controller.enrol_device("kw-1")
    assert controller.cli("revoke", "--device", lost_id).returncode == 0
    assert controller.client(lost_token).get("/v1/instructions").json()["error"] == "device_revoked"
    assert controller.client(other_token).get("/v1/instructions").status_code == 200
    again = controller.cli("revoke", "--device", lost_id)
    assert again.returncode == 0 and "already revoked" in again.stdout
    unknown = controller.cli("revoke", "--device", "no-such-device")
    assert unknown.returncode == 4 and "Traceback" not in unknown.stderr


# --- push --------------------------------------------------------------------------------

def _push(client: httpx.Client, batch: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/push", json=batch)
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def _statuses(answer: dict[str, Any]) -> list[str]:
    return [r["status"] for r in answer["results"]]


def test_push_is_accepted_and_the_same_batch_again_is_all_duplicate(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    client = controller.client(token)
    batch = make_batch(*(make_item(profile_case) for _ in range(3)))
    first = _push(client, batch)
    assert _statuses(first) == ["accepted"] * 3
    assert first["counts"] == {"accepted": 3, "duplicate": 0, "rejected": 0, "conflict": 0}
    assert [r["idempotency_key"] for r in first["results"]] == [
        i["idempotency_key"] for i in batch["items"]
    ]
    again = _push(client, batch)
    assert _statuses(again) == ["duplicate"] * 3


def test_a_lost_acknowledgement_is_answered_duplicate_and_stored_once(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    item = make_item(profile_case)
    # The first answer is "lost": the client never reads it and sends a new batch.
    controller.client(token).post("/v1/push", json=make_batch(item))
    retry = _push(controller.client(token), make_batch(item))
    assert _statuses(retry) == ["duplicate"]
    stored = json.loads(controller.cli("records", "--format", "json").stdout)
    assert [r["idempotency_key"] for r in stored] == [item["idempotency_key"]]
    assert stored[0]["recipient"] == profile_case.profile_id
    assert stored[0]["payload"] == item["fields"]


def test_a_lone_surrogate_echoed_in_an_answer_is_written_escaped_and_the_rest_stored(
    controller: Controller, profile_case: ProfileCase
) -> None:
    """JSON may escape half of a surrogate pair on its own ("\\ud800"); Python reads it
    into a string that cannot be written as UTF-8. An item whose key (echoed in its
    answer) or field name (named in its refusal) holds one is refused with the rest of
    the batch stored, and the answer is valid JSON that escapes it again, not a failed push."""
    _, token = controller.enrol_device()
    odd_key = make_item(profile_case)
    odd_key["idempotency_key"] = "half \ud800 a pair"
    odd_field = make_item(profile_case)
    odd_field["fields"]["note \udc00"] = "x"
    body = json.dumps(make_batch(make_item(profile_case), odd_key, odd_field, make_item(profile_case)))
    assert "\\ud800" in body   # written as an escape: the request itself is plain ASCII
    response = controller.client(token).post(
        "/v1/push", content=body.encode(), headers={"Content-Type": "application/json"})
    assert response.status_code == 200, response.text
    answer = json.loads(response.text)
    assert _statuses(answer) == ["accepted", "rejected", "rejected", "accepted"]
    assert answer["results"][1]["idempotency_key"] == "half \ud800 a pair"
    assert answer["results"][2]["code"] == "field_not_in_profile"
    assert "'note \udc00'" in answer["results"][2]["reason"]
    stored = json.loads(controller.cli("records", "--format", "json").stdout)
    assert len(stored) == 2


def test_a_field_outside_the_profile_is_rejected_by_name_and_the_rest_accepted(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    leaky = make_item(profile_case)
    leaky["fields"][profile_case.outside_field] = PERSONAL
    batch = make_batch(make_item(profile_case), leaky, make_item(profile_case))
    response = controller.client(token).post("/v1/push", json=batch)
    answer = response.json()
    assert _statuses(answer) == ["accepted", "rejected", "accepted"]
    rejected = answer["results"][1]
    assert rejected["code"] == "field_not_in_profile"
    assert f"'{profile_case.outside_field}'" in rejected["reason"]
    assert PERSONAL not in response.text
    stored = json.loads(controller.cli("records", "--format", "json").stdout)
    assert len(stored) == 2 and PERSONAL not in json.dumps(stored)
    assert PERSONAL not in controller.server_log()


def test_unknown_profile_and_uncovered_programme_or_strand_are_rejected(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    items = [
        make_item(profile_case, recipient="no_such_profile"),
        make_item(profile_case, programme="no_such_programme"),
    ]
    expected = ["unknown_profile", "programme_not_in_profile"]
    if profile_case.strand_profile and profile_case.strand_profile_record_type:
        items.append(
            make_item(
                profile_case, recipient=profile_case.strand_profile,
                record_type=profile_case.strand_profile_record_type, fields={},
                programme=profile_case.strand_profile_programme, strand="no_such_strand",
            )
        )
        expected.append("strand_not_in_profile")
    items.append(make_item(profile_case, record_type="participant_secret_notes"))
    expected.append("unknown_record_type")
    answer = _push(controller.client(token), make_batch(*items))
    assert _statuses(answer) == ["rejected"] * len(items)
    assert [r["code"] for r in answer["results"]] == expected


def test_identifier_fields_may_travel_but_must_match_the_envelope(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    good = make_item(profile_case, version=2)
    good["fields"].update(
        id=good["record_id"], version=2, record_type=good["record_type"],
        participant_id=good["participant_id"],
    )
    bad = make_item(profile_case)
    bad["fields"]["participant_id"] = "someone-else"
    answer = _push(controller.client(token), make_batch(good, bad))
    assert _statuses(answer) == ["accepted", "rejected"]
    assert answer["results"][1]["code"] == "identifier_mismatch"
    assert "'participant_id'" in answer["results"][1]["reason"]


def test_a_lower_version_than_held_is_a_conflict(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    client = controller.client(token)
    record_id = str(uuid.uuid4())
    assert _statuses(_push(client, make_batch(make_item(profile_case, record_id=record_id, version=3)))) == ["accepted"]
    older = _push(client, make_batch(make_item(profile_case, record_id=record_id, version=2)))
    assert _statuses(older) == ["conflict"]
    assert "version 2 is older than version 3" in older["results"][0]["reason"]
    newer = _push(client, make_batch(make_item(profile_case, record_id=record_id, version=4)))
    assert _statuses(newer) == ["accepted"]


def test_an_invalid_item_is_rejected_without_sinking_the_batch(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    bad = make_item(profile_case)
    bad["version"] = "seven"
    bad["notes"] = PERSONAL
    mismatched = make_item(profile_case)
    mismatched["idempotency_key"] = "something-else"
    response = controller.client(token).post(
        "/v1/push", json=make_batch(bad, mismatched, make_item(profile_case))
    )
    answer = response.json()
    assert _statuses(answer) == ["rejected", "rejected", "accepted"]
    assert answer["results"][0]["code"] == "invalid_item"
    assert "version" in answer["results"][0]["reason"] and "notes" in answer["results"][0]["reason"]
    assert answer["results"][1]["code"] == "idempotency_key_mismatch"
    assert PERSONAL not in response.text


def test_items_failing_each_check_are_rejected_and_the_good_ones_stored(
    controller: Controller, profile_case: ProfileCase
) -> None:
    """A batch of good items with bad ones between them (each failing one check of
    PushItem): each bad one answered invalid_item naming its field, the good ones stored."""
    _, token = controller.enrol_device()
    changes: list[tuple[dict[str, Any], str]] = [
        ({"record_id": "r-1\n"}, "record_id"), ({"strand": "ips\n"}, "strand"),
        ({"version": True}, "version"), ({"version": 0}, "version"),
        ({"version": 2**62 + 1}, "version"), ({"fields": []}, "fields"),
        ({"fields": None}, "fields"), ({"notes": PERSONAL}, "notes"),
        ({"idempotency_key": "k" * 301}, "idempotency_key"), ({"op": None}, "op"),
    ]
    bad = []
    for change, _ in changes:
        item = make_item(profile_case)
        item.update(change)
        bad.append(item)
    missing = make_item(profile_case)
    del missing["programme"]
    bad.append(missing)
    changes.append(({}, "programme"))
    good = [make_item(profile_case) for _ in range(3)]
    items = [good[0], *bad[:5], good[1], *bad[5:], good[2]]
    response = controller.client(token).post("/v1/push", json=make_batch(*items))
    assert response.status_code == 200, response.text
    results = response.json()["results"]
    assert [r["status"] for r in results] == [
        "rejected" if item in bad else "accepted" for item in items
    ]
    refused = [r for r in results if r["status"] == "rejected"]
    assert {r["code"] for r in refused} == {"invalid_item"}
    for answer, (_, name) in zip(refused, changes, strict=True):
        assert answer["reason"].startswith(f"The item is not valid: {name}: ")
    assert refused[8]["idempotency_key"] is None   # too long to repeat
    stored = json.loads(controller.cli("records", "--format", "json").stdout)
    assert sorted(r["idempotency_key"] for r in stored) == sorted(i["idempotency_key"] for i in good)
    assert PERSONAL not in response.text


def test_a_gzip_body_is_accepted(controller: Controller, profile_case: ProfileCase) -> None:
    _, token = controller.enrol_device()
    batch = make_batch(make_item(profile_case), make_item(profile_case))
    response = controller.client(token).post(
        "/v1/push",
        content=gzip.compress(json.dumps(batch).encode()),
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    assert _statuses(response.json()) == ["accepted", "accepted"]


def test_oversized_batches_and_bodies_get_413(
    controller_factory: Callable[..., Controller], profile_case: ProfileCase
) -> None:
    controller = controller_factory("--max-items", "3", "--max-push-bytes", "20000")
    _, token = controller.enrol_device()
    client = controller.client(token)
    too_many = client.post("/v1/push", json=make_batch(*(make_item(profile_case) for _ in range(4))))
    assert too_many.status_code == 413
    assert too_many.json()["error"] == "batch_too_large"
    assert "limit is 3" in too_many.json()["message"]

    big_item = make_item(profile_case)
    big_item["fields"][profile_case.allowed[0]] = "x" * 30000
    too_big = client.post("/v1/push", json=make_batch(big_item))
    assert too_big.status_code == 413 and too_big.json()["error"] == "body_too_large"

    bomb = gzip.compress(json.dumps(make_batch(big_item)).encode())
    assert len(bomb) < 20000
    inflated = client.post(
        "/v1/push", content=bomb,
        headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
    )
    assert inflated.status_code == 413 and inflated.json()["error"] == "body_too_large"
    assert json.loads(controller.cli("records").stdout) == []


def test_bad_bodies_get_clear_errors(controller: Controller) -> None:
    _, token = controller.enrol_device()
    client = controller.client(token)
    not_json = client.post("/v1/push", content=b"{" + PERSONAL.encode(), headers={"Content-Type": "application/json"})
    assert not_json.status_code == 400 and not_json.json()["error"] == "invalid_json"
    not_gzip = client.post("/v1/push", content=b"plain", headers={"Content-Encoding": "gzip"})
    assert not_gzip.status_code == 400 and not_gzip.json()["error"] == "invalid_gzip"
    whole = gzip.compress(json.dumps({"batch_id": "b-1", "items": []}).encode())
    cut_short = client.post("/v1/push", content=whole[: len(whole) // 2],
                            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"})
    assert cut_short.status_code == 400 and cut_short.json()["error"] == "invalid_gzip"
    assert "truncated" in cut_short.json()["message"]
    brotli = client.post("/v1/push", content=b"{}", headers={"Content-Encoding": "br"})
    assert brotli.status_code == 415
    no_items = client.post("/v1/push", json={"batch_id": PERSONAL})
    assert no_items.status_code == 422 and no_items.json()["error"] == "invalid_request"
    for response in (not_json, no_items):
        assert PERSONAL not in response.text
    enrol = client.post("/v1/enrol", json={"code": "x", "keyworker_id": PERSONAL, "device_name": "d"})
    assert enrol.status_code == 422 and PERSONAL not in enrol.text
    assert PERSONAL not in controller.server_log()


def test_concurrent_deliveries_of_one_batch_store_each_item_once(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    batch = make_batch(*(make_item(profile_case) for _ in range(10)))
    answers: list[dict[str, Any]] = []
    lock = threading.Lock()

    def deliver() -> None:
        with httpx.Client(base_url=controller.base_url, timeout=60,
                          headers={"Authorization": f"Bearer {token}"}) as client:
            answer = _push(client, batch)
        with lock:
            answers.append(answer)

    threads = [threading.Thread(target=deliver) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert len(answers) == 4
    for index in range(10):
        statuses = sorted(a["results"][index]["status"] for a in answers)
        assert statuses == ["accepted", "duplicate", "duplicate", "duplicate"]
    stored = json.loads(controller.cli("records").stdout)
    assert len(stored) == 10


# --- consent withdrawal ------------------------------------------------------------------

def test_a_consent_withdrawal_is_recorded_for_the_recipient(
    controller: Controller, profile_case: ProfileCase
) -> None:
    device_id, token = controller.enrol_device()
    participant_id = str(uuid.uuid4())
    consent_id = str(uuid.uuid4())
    withdrawal = make_item(
        profile_case, record_id=consent_id, version=2, record_type="consent", op="withdraw",
        participant_id=participant_id,
        fields={"sharing_profile": profile_case.profile_id, "status": "withdrawn",
                "withdrawn_on": "2025-03-01T10:00:00Z"},
    )
    wrong_type = make_item(profile_case, op="withdraw", fields={})
    answer = _push(controller.client(token), make_batch(withdrawal, wrong_type))
    assert _statuses(answer) == ["accepted", "rejected"]
    assert answer["results"][1]["code"] == "withdraw_needs_consent"
    notices = json.loads(controller.cli("withdrawals", "--recipient", profile_case.profile_id).stdout)
    assert len(notices) == 1
    assert notices[0]["participant_id"] == participant_id
    assert notices[0]["consent_id"] == consent_id
    assert notices[0]["recipient"] == profile_case.profile_id
    assert notices[0]["device_id"] == device_id
    assert notices[0]["withdrawn_on"] == "2025-03-01T10:00:00Z"
    again = _push(controller.client(token), make_batch(withdrawal))
    assert _statuses(again) == ["duplicate"]
    assert len(json.loads(controller.cli("withdrawals").stdout)) == 1


# --- referrals ---------------------------------------------------------------------------

def _referral_file(tmp_path: Any, name: str, **participant: Any) -> str:
    document = {
        "participant": {"given_name": "Sam", "family_name": "Example", "programme": "working_well",
                        "date_of_birth": "1990-04-01", **participant},
        "referral": {"source_type": "nhs_trust", "reason": "wants help back to work",
                     "received_on": "2025-01-31"},
    }
    path = tmp_path / name
    path.write_text(json.dumps(document), "utf-8")
    return str(path)


def test_referrals_are_queued_pulled_in_pages_and_acked(
    controller: Controller, tmp_path: Any
) -> None:
    _, token = controller.enrol_device("kw-1")
    _, other_token = controller.enrol_device("kw-2")
    ids = []
    for n in range(3):
        done = controller.cli("refer", "--keyworker-id", "kw-1",
                              "--file", _referral_file(tmp_path, f"r{n}.json", given_name=f"P{n}"))
        assert done.returncode == 0, done.stderr
        ids.append(done.stdout.split()[2])
    client = controller.client(token)

    first = client.get("/v1/referrals", params={"limit": 2}).json()
    assert first["more"] is True and len(first["referrals"]) == 2
    second = client.get("/v1/referrals", params={"limit": 2, "since": first["next_cursor"]}).json()
    assert second["more"] is False and len(second["referrals"]) == 1
    pulled = first["referrals"] + second["referrals"]
    assert [r["id"] for r in pulled] == ids
    assert [r["participant"]["given_name"] for r in pulled] == ["P0", "P1", "P2"]
    assert pulled[0]["participant"]["keyworker_id"] == "kw-1"
    assert pulled[0]["referral"]["controller_referral_id"] == ids[0]
    assert pulled[0]["referral"]["source_type"] == "nhs_trust"

    assert controller.client(other_token).get("/v1/referrals").json()["referrals"] == []

    acked = client.post("/v1/referrals/ack", json={"ids": ids[:2] + ["not-a-referral"]}).json()
    assert acked == {"acknowledged": ids[:2], "unknown": ["not-a-referral"]}
    rest = client.get("/v1/referrals").json()
    assert [r["id"] for r in rest["referrals"]] == ids[2:]
    assert client.post("/v1/referrals/ack", json={"ids": ids}).json()["acknowledged"] == ids
    assert client.get("/v1/referrals").json() == {"referrals": [], "next_cursor": None, "more": False}

    bad_cursor = client.get("/v1/referrals", params={"since": "nonsense"})
    assert bad_cursor.status_code == 400 and bad_cursor.json()["error"] == "invalid_cursor"


# --- instructions ------------------------------------------------------------------------

def test_a_lock_instruction_is_sent_until_acked(controller: Controller) -> None:
    device_id, token = controller.enrol_device()
    client = controller.client(token)
    assert client.get("/v1/instructions").json() == {"instructions": []}
    assert controller.cli("lock", "--device", device_id).returncode == 0
    sent = client.get("/v1/instructions").json()["instructions"]
    assert [(i["kind"], i["action"]) for i in sent] == [("lock", "lock")]
    assert client.get("/v1/instructions").json()["instructions"] == sent
    assert client.post("/v1/instructions/ack", json={"ids": [sent[0]["id"]]}).status_code == 200
    assert client.get("/v1/instructions").json() == {"instructions": []}


def test_the_log_holds_no_query_strings_or_personal_values(
    controller: Controller, profile_case: ProfileCase
) -> None:
    _, token = controller.enrol_device()
    client = controller.client(token)
    item = make_item(profile_case, fields={profile_case.allowed[0]: PERSONAL})
    _push(client, make_batch(item))
    client.get("/v1/referrals", params={"since": "secret-cursor-value"})
    client.get("/v1/nothing-here/" + PERSONAL.replace(" ", "-"))
    log = controller.server_log()
    assert "POST /v1/push 200" in log
    assert "secret-cursor-value" not in log
    assert PERSONAL not in log and PERSONAL.replace(" ", "-") not in log
    assert token not in log
