"""The fault proxy does what each fault says (so the fault tests test the client, not it)."""

from __future__ import annotations

import gzip
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator

import httpx
import pytest

from proxy import Fault, FaultProxy, Step


class Upstream(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    hits: list[bytes] = []

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        pass

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Upstream.hits.append(body)
        answer = json.dumps({"ok": True, "n": len(Upstream.hits)}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)


@pytest.fixture
def proxy() -> Iterator[FaultProxy]:
    Upstream.hits = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Upstream)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with FaultProxy(f"http://127.0.0.1:{server.server_address[1]}") as p:
        yield p
    server.shutdown()
    server.server_close()


def post(p: FaultProxy, body: bytes = b'{"x":1}', **kw: object) -> httpx.Response:
    return httpx.post(p.url + "/v1/push", content=body, timeout=10, **kw)  # type: ignore[arg-type]


def test_pass_through_and_bodies_kept_decompressed(proxy: FaultProxy) -> None:
    r = post(proxy, gzip.compress(b'{"x":2}'), headers={"Content-Encoding": "gzip"})
    assert r.json() == {"ok": True, "n": 1}
    assert list(proxy.bodies()) == [b'{"x":2}']


def test_lost_ack_commits_upstream_but_answers_nothing(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.LOST_ACK))
    with pytest.raises(httpx.TransportError):
        post(proxy)
    assert len(Upstream.hits) == 1


def test_status_with_retry_after_is_not_forwarded(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.STATUS, status=503, retry_after="7"))
    r = post(proxy)
    assert r.status_code == 503 and r.headers["Retry-After"] == "7" and Upstream.hits == []
    assert post(proxy).status_code == 200  # the script is used up: back to passing


def test_malformed_oversized_truncated(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.MALFORMED), Step(Fault.OVERSIZED), Step(Fault.TRUNCATED))
    with pytest.raises(json.JSONDecodeError):
        post(proxy).json()
    assert len(post(proxy).content) > 64 * 1024 * 1024
    with pytest.raises(httpx.TransportError):
        post(proxy)
    assert len(Upstream.hits) == 3


def test_slow_line_times_the_client_out(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.SLOW, seconds=2.0))
    with pytest.raises(httpx.ReadTimeout):
        httpx.post(proxy.url + "/v1/push", content=b"{}", timeout=0.2)


def test_hold_waits_for_release(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.HOLD))
    result: list[int] = []
    t = threading.Thread(target=lambda: result.append(post(proxy).status_code))
    t.start()
    assert proxy.state.held.wait(10)
    assert Upstream.hits == [] and result == []
    proxy.state.release.set()
    t.join(10)
    assert result == [200] and len(Upstream.hits) == 1


def test_path_prefix_steps_only_match_their_path(proxy: FaultProxy) -> None:
    proxy.script(Step(Fault.STATUS, status=500, path_prefix="/v1/referrals"))
    assert post(proxy).status_code == 200
    r = httpx.post(proxy.url + "/v1/referrals", content=b"{}", timeout=10)
    assert r.status_code == 500
