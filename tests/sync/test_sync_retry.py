"""The retry policy and the HTTP loop around it, with injected random and sleep (no waiting)."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from email.utils import format_datetime

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from sync.errors import (
    AuthenticationFailed, ControllerBusy, ControllerError, DeviceRevoked, Offline,
)
from sync.retry import RetryPolicy, parse_retry_after
from sync.transport import ControllerClient, TransportSettings

NOW = datetime(2025, 6, 2, 12, 0, 0, tzinfo=timezone.utc)


@given(retry=st.integers(min_value=1, max_value=40), r=st.floats(min_value=0, max_value=1, exclude_max=True))
def test_backoff_is_full_jitter_within_the_exponential_ceiling(retry: int, r: float) -> None:
    policy = RetryPolicy(base_seconds=0.5, cap_seconds=30, random=lambda: r)
    ceiling = min(30.0, 0.5 * 2 ** (retry - 1))
    assert policy.backoff_ceiling(retry) == ceiling
    assert 0 <= policy.backoff(retry) <= ceiling
    assert policy.backoff(retry) == pytest.approx(r * ceiling)


def test_backoff_ceiling_doubles_then_caps() -> None:
    policy = RetryPolicy(base_seconds=1, cap_seconds=10)
    assert [policy.backoff_ceiling(n) for n in range(1, 7)] == [1, 2, 4, 8, 10, 10]


def test_jitter_spans_the_whole_range() -> None:
    assert RetryPolicy(random=lambda: 0.0).backoff(3) == 0.0
    assert RetryPolicy(random=lambda: 0.999999).backoff(3) == pytest.approx(2.0, rel=1e-5)


@pytest.mark.parametrize(("value", "expected"), [
    ("0", 0.0), ("7", 7.0), (" 120 ", 120.0),
    (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
    (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),   # in the past: now
    ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0),
    ("", None), ("soon", None), ("-5", None), ("1.5", None),
])
def test_retry_after_seconds_and_http_dates(value: str, expected: float | None) -> None:
    assert parse_retry_after(value, NOW) == expected


def test_a_retry_after_longer_than_the_policy_allows_is_not_waited_for() -> None:
    policy = RetryPolicy(max_retry_after_seconds=60, now=lambda: NOW)
    assert policy.delay_before(1, "30") == 30
    assert policy.delay_before(1, "600") is None
    assert policy.delay_before(1, "garbage") is not None   # falls back to backoff


def test_a_policy_needs_at_least_one_attempt() -> None:
    with pytest.raises(ValueError):
        RetryPolicy(max_attempts=0)


# -- the loop, against a scripted server ---------------------------------------------------

def _client(responses: list[httpx.Response | Exception], slept: list[float], **policy: object) -> tuple[ControllerClient, list[httpx.Request]]:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        answer = responses.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    retry = RetryPolicy(sleep=slept.append, random=lambda: 0.5, now=lambda: NOW, **policy)  # type: ignore[arg-type]
    http = httpx.Client(base_url="http://127.0.0.1:9", transport=httpx.MockTransport(handler))
    return ControllerClient(TransportSettings("http://127.0.0.1:9"), "token", retry, http=http), seen


def test_503_with_retry_after_is_honoured_then_succeeds() -> None:
    slept: list[float] = []
    client, seen = _client([httpx.Response(503, headers={"Retry-After": "3"}, json={"error": "unavailable"}),
                            httpx.Response(200, json={"ok": True})], slept)
    assert client.get_json("/v1/instructions") == {"ok": True}
    assert slept == [3.0] and len(seen) == 2


def test_429_with_an_http_date_is_honoured() -> None:
    slept: list[float] = []
    when = format_datetime(NOW + timedelta(seconds=12), usegmt=True)
    client, _ = _client([httpx.Response(429, headers={"Retry-After": when}), httpx.Response(200, json=[])], slept)
    client.get_json("/v1/instructions")
    assert slept == [12.0]


def test_500s_back_off_and_give_up_after_max_attempts() -> None:
    slept: list[float] = []
    client, seen = _client([httpx.Response(500)] * 3, slept, max_attempts=3, base_seconds=1)
    with pytest.raises(ControllerError):
        client.get_json("/v1/instructions")
    assert len(seen) == 3 and slept == [0.5, 1.0]


def test_busy_on_every_try_says_busy() -> None:
    client, _ = _client([httpx.Response(503)] * 2, [], max_attempts=2)
    with pytest.raises(ControllerBusy):
        client.get_json("/v1/instructions")


def test_connection_errors_are_retried_by_the_same_policy_then_offline() -> None:
    slept: list[float] = []
    request = httpx.Request("GET", "http://127.0.0.1:9/")
    client, seen = _client([httpx.ConnectError("refused", request=request)] * 4, slept, max_attempts=4)
    with pytest.raises(Offline):
        client.get_json("/v1/health", auth=False)
    assert len(seen) == 4 and len(slept) == 3


def test_a_connection_error_then_success() -> None:
    request = httpx.Request("GET", "http://127.0.0.1:9/")
    client, _ = _client([httpx.ReadTimeout("slow", request=request), httpx.Response(200, json={"a": 1})], [])
    assert client.get_json("/v1/health", auth=False) == {"a": 1}


@pytest.mark.parametrize(("body", "error"), [
    ({"error": "device_revoked", "message": "revoked", "instruction": "purge"}, DeviceRevoked),
    ({"error": "invalid_token", "message": "bad"}, AuthenticationFailed),
    ({"error": "missing_token", "message": "none"}, AuthenticationFailed),
])
def test_401_stops_at_once_and_says_why(body: dict[str, str], error: type[Exception]) -> None:
    slept: list[float] = []
    client, seen = _client([httpx.Response(401, json=body)], slept)
    with pytest.raises(error):
        client.get_json("/v1/instructions")
    assert len(seen) == 1 and slept == []


def test_every_request_carries_the_bearer_token_and_asks_for_json() -> None:
    client, seen = _client([httpx.Response(200, json={})], [])
    client.get_json("/v1/instructions")
    assert seen[0].headers["authorization"] == "Bearer token"
    assert seen[0].headers["accept"] == "application/json"
