"""A fault-injecting HTTP proxy on loopback, between the sync client and a real controller.

The controller and the client are real; only the network between them misbehaves, as a
community-centre wifi does. Each request that arrives takes the next fault from a script
(or passes through when the script is empty):

* ``PASS``               forward and relay the answer
* ``LOST_ACK``           forward (the controller commits), then drop the connection unanswered
* ``STATUS``             answer with a status (500, 503 …) and optional Retry-After, not forwarded
* ``SLOW``               wait ``seconds`` before forwarding (a slow line; the client may time out)
* ``MALFORMED``          forward, then answer 200 with a body that is not the protocol's JSON
* ``OVERSIZED``          forward, then answer 200 with a body far larger than any real answer
* ``TRUNCATED``          forward, then send half the real answer and close
* ``HOLD``               forward only when the test releases it (to kill the client mid-request)
* ``HOLD_AFTER``         forward (the controller commits), then answer only when released
* ``POISON``             add a field outside its sharing profile to the first item of a push,
                         so the controller must reject that one item and accept the rest

Every request body that passes is kept (decompressed) so a wire test can read exactly what
left the laptop. Sockets use TCP_NODELAY so small answers are not held back by Nagle.
"""

from __future__ import annotations

import enum
import gzip
import json
import http.client
import socket
import threading
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Iterator
from urllib.parse import urlsplit


class Fault(enum.Enum):
    PASS = "pass"
    LOST_ACK = "lost_ack"
    STATUS = "status"
    SLOW = "slow"
    MALFORMED = "malformed"
    OVERSIZED = "oversized"
    TRUNCATED = "truncated"
    HOLD = "hold"
    HOLD_AFTER = "hold_after"
    POISON = "poison"


@dataclass
class Step:
    fault: Fault = Fault.PASS
    status: int = 503
    retry_after: str | None = None
    seconds: float = 0.0
    path_prefix: str = ""   # only requests whose path starts with this take the step


@dataclass
class Seen:
    method: str
    path: str
    body: bytes
    fault: Fault
    upstream_status: int | None


@dataclass
class ProxyState:
    script: list[Step] = field(default_factory=list)
    seen: list[Seen] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)
    held: threading.Event = field(default_factory=threading.Event)     # set when a HOLD request arrives
    release: threading.Event = field(default_factory=threading.Event)  # set by the test to let it go

    def next_step(self, path: str) -> Step:
        with self.lock:
            for i, step in enumerate(self.script):
                if path.startswith(step.path_prefix):
                    return self.script.pop(i)
        return Step()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _ProxyServer

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - http.server's name
        pass  # request lines hold paths only, but tests keep their output clean

    def _relay(self) -> None:
        state = self.server.state
        length = int(self.headers.get("Content-Length", "0") or 0)
        body = self.rfile.read(length) if length else b""
        step = state.next_step(self.path)
        plain = gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" and body else body

        if step.fault is Fault.STATUS:
            self._record(plain, step.fault, None)
            payload = b'{"error":"unavailable","message":"Injected failure."}'
            self.send_response(step.status)
            if step.retry_after is not None:
                self.send_header("Retry-After", step.retry_after)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)
            return
        if step.fault is Fault.SLOW:
            threading.Event().wait(step.seconds)  # the line is slow; nothing here waits on it
        if step.fault is Fault.HOLD:
            state.held.set()
            state.release.wait(timeout=60)

        if step.fault is Fault.POISON:
            batch = json.loads(plain)
            batch["items"][0]["fields"]["not_in_any_profile"] = "poison"
            plain = json.dumps(batch).encode()
            body = plain
            self.headers.replace_header("Content-Length", str(len(body)))
            if "Content-Encoding" in self.headers:
                del self.headers["Content-Encoding"]
        status, headers, answer = self._forward(body)
        self._record(plain, step.fault, status)
        if step.fault is Fault.HOLD_AFTER:
            state.held.set()
            state.release.wait(timeout=60)
        if step.fault is Fault.LOST_ACK:
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if step.fault is Fault.MALFORMED:
            answer, headers = b'{"results": "not what you expected", ', {"Content-Type": "application/json"}
        elif step.fault is Fault.OVERSIZED:
            answer, headers = b'{"pad":"' + b"x" * (64 * 1024 * 1024) + b'"}', {"Content-Type": "application/json"}
        self.send_response(status)
        for name, value in headers.items():
            if name.lower() not in ("content-length", "transfer-encoding", "connection", "content-encoding"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        if step.fault is Fault.TRUNCATED:
            self.wfile.write(answer[: max(1, len(answer) // 2)])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        self.wfile.write(answer)

    def _forward(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        up = urlsplit(self.server.upstream)
        conn = http.client.HTTPConnection(up.hostname or "127.0.0.1", up.port or 80, timeout=60)
        try:
            headers = {k: v for k, v in self.headers.items() if k.lower() not in ("host", "connection")}
            conn.request(self.command, self.path, body=body or None, headers=headers)
            response = conn.getresponse()
            data = response.read()
            return response.status, dict(response.getheaders()), data
        finally:
            conn.close()

    def _record(self, body: bytes, fault: Fault, status: int | None) -> None:
        with self.server.state.lock:
            self.server.state.seen.append(Seen(self.command, self.path, body, fault, status))

    do_GET = _relay
    do_POST = _relay


class _ProxyServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self, upstream: str, state: ProxyState) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        self.upstream = upstream
        self.state = state

    def handle_error(self, request: object, client_address: object) -> None:
        # A client that hangs up on a slow, huge or spoiled answer is the point of the
        # exercise, not an error worth a traceback in the test's output.
        pass

    def get_request(self) -> tuple[socket.socket, object]:
        sock, addr = super().get_request()
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return sock, addr


class FaultProxy:
    """``with FaultProxy(controller_url) as proxy:`` then point the client at ``proxy.url``."""

    def __init__(self, upstream: str) -> None:
        self.state = ProxyState()
        self._server = _ProxyServer(upstream.rstrip("/"), self.state)
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    def rearm(self) -> None:
        """Ready the hold events for the next HOLD or HOLD_AFTER step."""
        self.state.held.clear()
        self.state.release.clear()

    def script(self, *steps: Step) -> None:
        with self.state.lock:
            self.state.script.extend(steps)

    def bodies(self, path_prefix: str = "/v1/push") -> Iterator[bytes]:
        with self.state.lock:
            seen = list(self.state.seen)
        return (s.body for s in seen if s.path.startswith(path_prefix))

    def __enter__(self) -> FaultProxy:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.state.release.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=10)
