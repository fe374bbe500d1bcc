"""HTTP to the controller: one ``httpx.Client``, verified TLS, bounded answers, one retry loop.

* Certificate verification is always on. The trust anchors are the organisation's CA
  bundle when one is configured (and then only it), otherwise certifi's bundle.
* Optional **certificate pinning**: give the SHA-256 of the server certificate's
  SubjectPublicKeyInfo (``sha256/<base64>`` as in HPKP, or 64 hex digits). The check runs
  inside the TLS handshake (a :class:`ssl.SSLSocket` subclass installed on the context
  through ``SSLContext.sslsocket_class``), after normal chain and host name checks, so a
  connection to an unpinned key fails *before* any request, bearer token included, is
  written. Pin the key (SPKI), not the certificate, so a renewal with the same key keeps
  working; list a backup key's pin too.
* Plain ``http://`` only to loopback (127.0.0.0/8, ::1, ``localhost``), for development
  and tests; any other ``http://`` address is refused with :class:`InsecureControllerUrl`.
* Timeouts on connect and read. httpx sets TCP_NODELAY on its sockets by default.
* Retries live in :class:`sync.retry.RetryPolicy` only: the httpx transport is built with
  ``retries=0`` so that connection failures are retried by the same policy as 429/503.
* Each answer is read up to ``max_response_bytes`` (after decompression) and no further.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import ipaddress
import json
import ssl
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization

from .errors import (
    AuthenticationFailed, ControllerBusy, ControllerCertificateError, ControllerError,
    DeviceRevoked, InsecureControllerUrl, MalformedResponse, Offline, RequestRefused,
)
from .retry import RETRY_AFTER_STATUSES, RetryPolicy
from .wire import decode_json

DEFAULT_MAX_RESPONSE_BYTES = 4 * 1024 * 1024


# -- addresses ----------------------------------------------------------------------------

def is_loopback_host(host: str) -> bool:
    """Whether ``host`` is this computer: ``localhost``, 127.0.0.0/8 or ::1."""
    host = host.strip("[]").lower()
    if host == "localhost" or host.endswith(".localhost"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_controller_url(url: str) -> str:
    """``url`` as a base address without a trailing slash, or :class:`InsecureControllerUrl`."""
    parts = urlsplit(url.strip())
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise InsecureControllerUrl(message="The controller address must look like https://controller.example.org.")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise InsecureControllerUrl(message="The controller address must not hold a user name, password, query or fragment.")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise InsecureControllerUrl(
            message="Plain http:// is refused for a controller that is not on this computer: "
            "data would cross the network unencrypted."
        )
    return parts.geturl().rstrip("/")


# -- pinning ------------------------------------------------------------------------------

class PinMismatch(ssl.SSLError):
    """The server's public key is not one of the pinned keys."""


def spki_sha256(der_certificate: bytes) -> bytes:
    """SHA-256 of a DER certificate's SubjectPublicKeyInfo."""
    cert = x509.load_der_x509_certificate(der_certificate)
    spki = cert.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return hashlib.sha256(spki).digest()


def parse_pin(text: str) -> bytes:
    """A pin as ``sha256/<base64>`` or 64 hex digits, as 32 raw bytes (ValueError if not)."""
    value = text.strip()
    if value.lower().startswith("sha256/"):
        try:
            raw = base64.b64decode(value[7:], validate=True)
        except binascii.Error:
            raise ValueError("a pin after 'sha256/' must be base64") from None
    else:
        try:
            raw = bytes.fromhex(value)
        except ValueError:
            raise ValueError("a pin must be 'sha256/<base64>' or 64 hex digits") from None
    if len(raw) != 32:
        raise ValueError("a pin must be a SHA-256 digest (32 bytes)")
    return raw


def _check_pin(context: ssl.SSLContext, der: bytes | None) -> None:
    pins: frozenset[bytes] = getattr(context, "keyworker_pins", frozenset())
    if not pins:
        return
    if der is None or spki_sha256(der) not in pins:
        raise PinMismatch("the server's public key is not pinned")


class _PinnedSocket(ssl.SSLSocket):
    """Checks the pin as soon as the handshake completes, before any byte of a request."""

    def do_handshake(self, block: bool = False) -> None:
        super().do_handshake(block)
        _check_pin(self.context, self.getpeercert(binary_form=True))


class _PinnedObject(ssl.SSLObject):
    """The same check for TLS over a proxy tunnel (memory BIO)."""

    def do_handshake(self) -> None:
        super().do_handshake()
        _check_pin(self.context, self.getpeercert(binary_form=True))


class _PinningContext(ssl.SSLContext):
    sslsocket_class = _PinnedSocket
    sslobject_class = _PinnedObject
    keyworker_pins: frozenset[bytes] = frozenset()


def ssl_context(ca_bundle: Path | None = None, pins: tuple[str, ...] = ()) -> ssl.SSLContext:
    """A client TLS context: verification and host name checks on, TLS 1.2 or later."""
    context = _PinningContext(ssl.PROTOCOL_TLS_CLIENT)   # CERT_REQUIRED and check_hostname
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if ca_bundle is not None:
        context.load_verify_locations(cafile=str(ca_bundle))
    else:
        import certifi

        context.load_verify_locations(cafile=certifi.where())
    context.keyworker_pins = frozenset(parse_pin(p) for p in pins)
    return context


# -- the client ---------------------------------------------------------------------------

@dataclass(frozen=True)
class TransportSettings:
    """Where the controller is and how to reach it."""

    base_url: str
    ca_bundle: Path | None = None
    pins: tuple[str, ...] = ()
    connect_timeout: float = 10.0
    read_timeout: float = 60.0
    max_response_bytes: int = DEFAULT_MAX_RESPONSE_BYTES


EventHooks = Mapping[str, list[Callable[..., Any]]]


def build_http_client(settings: TransportSettings, event_hooks: EventHooks | None = None) -> httpx.Client:
    """The ``httpx.Client`` for ``settings`` (the URL is checked first)."""
    base = check_controller_url(settings.base_url)
    context = ssl_context(settings.ca_bundle, settings.pins)
    return httpx.Client(
        base_url=base,
        transport=httpx.HTTPTransport(verify=context, retries=0),
        timeout=httpx.Timeout(settings.read_timeout, connect=settings.connect_timeout),
        follow_redirects=False,
        trust_env=False,   # no proxy or CA from the environment: the organisation's settings only
        event_hooks={k: list(v) for k, v in (event_hooks or {}).items()},
    )


@dataclass(frozen=True)
class ErrorBody:
    """The controller's ``{error, message, instruction}``, or what we could make of it."""

    code: str
    message: str
    instruction: str = ""


def parse_error_body(body: bytes) -> ErrorBody:
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        return ErrorBody("unknown", "no readable explanation was given")
    if not isinstance(data, dict):
        return ErrorBody("unknown", "no readable explanation was given")
    code = data.get("error")
    message = data.get("message")
    instruction = data.get("instruction")
    return ErrorBody(
        code if isinstance(code, str) and len(code) <= 100 else "unknown",
        message[:500] if isinstance(message, str) else "no readable explanation was given",
        instruction if isinstance(instruction, str) else "",
    )


class PayloadTooLarge(ControllerError):
    """413: the controller's limits are smaller than this batch; the engine splits it."""


def _certificate_problem(exc: BaseException) -> bool:
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return False
        if isinstance(seen, (ssl.SSLCertVerificationError, PinMismatch)):
            return True
        seen = seen.__cause__ or seen.__context__
    return False


class ControllerClient:
    """Requests to the controller with the one retry policy, and typed failures.

    ``request_json`` returns the decoded JSON of a 2xx answer; everything else becomes a
    :mod:`sync.errors` exception. Safe to retry blindly because every write carries
    idempotency keys (push) or is idempotent by design (acks, enrolment codes are one-time
    and their refusal is final).
    """

    def __init__(
        self,
        settings: TransportSettings,
        token: str | None = None,
        retry: RetryPolicy | None = None,
        http: httpx.Client | None = None,
        event_hooks: EventHooks | None = None,
    ) -> None:
        self.settings = settings
        self.token = token
        self.retry = retry or RetryPolicy()
        self.http = http or build_http_client(settings, event_hooks)
        self.requests_made = 0

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> ControllerClient:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def get_json(self, path: str, params: Mapping[str, str] | None = None, *, auth: bool = True) -> Any:
        return self.request_json("GET", path, params=params, auth=auth)

    def post_json(self, path: str, payload: bytes, *, gzip_body: bool = False, auth: bool = True,
                  raw: bool = False) -> Any:
        """POST ``payload`` (JSON bytes, already gzip-compressed when ``gzip_body``); the
        answer's JSON, or with ``raw`` its bytes as they came (for the caller to read)."""
        headers = {"Content-Type": "application/json"}
        if gzip_body:
            headers["Content-Encoding"] = "gzip"
        return self.request_json("POST", path, content=payload, headers=headers, auth=auth, raw=raw)

    def _exchange(
        self, method: str, path: str, content: bytes | None, headers: dict[str, str],
        params: Mapping[str, str] | None,
    ) -> tuple[int, httpx.Headers, bytes]:
        cap = self.settings.max_response_bytes
        self.requests_made += 1
        with self.http.stream(method, path, content=content, headers=headers, params=params) as response:
            declared = response.headers.get("content-length", "")
            if declared.isdigit() and int(declared) > cap:
                raise MalformedResponse(f"an answer larger than the limit of {cap} bytes")
            body = bytearray()
            try:
                for chunk in response.iter_bytes():
                    body += chunk
                    if len(body) > cap:
                        raise MalformedResponse(f"an answer larger than the limit of {cap} bytes")
            except httpx.DecodingError:
                raise MalformedResponse("an answer whose compression is damaged") from None
            return response.status_code, response.headers, bytes(body)

    def request_json(
        self, method: str, path: str, *, content: bytes | None = None,
        headers: Mapping[str, str] | None = None, params: Mapping[str, str] | None = None,
        auth: bool = True, raw: bool = False,
    ) -> Any:
        sent_headers = dict(headers or {})
        sent_headers["Accept"] = "application/json"
        if auth:
            if not self.token:
                raise AuthenticationFailed("missing_token", "This laptop has no access token for the controller.")
            sent_headers["Authorization"] = f"Bearer {self.token}"
        attempt = 0
        while True:
            attempt += 1
            try:
                status, response_headers, body = self._exchange(method, path, content, sent_headers, params)
            except httpx.TransportError as exc:
                if _certificate_problem(exc):
                    raise ControllerCertificateError() from None
                if not self.retry.should_retry(attempt):
                    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout)):
                        raise Offline() from None
                    raise ControllerError(
                        message="The connection to the controller kept failing part way "
                        f"({type(exc).__name__}). Nothing was lost."
                    ) from None
                delay = self.retry.delay_before(attempt)
                self.retry.sleep(0.0 if delay is None else delay)
                continue
            if 200 <= status < 300:
                return body if raw else decode_json(body)
            if status in self.retry.statuses:
                retry_after = response_headers.get("retry-after") if status in RETRY_AFTER_STATUSES else None
                delay = self.retry.delay_before(attempt, retry_after) if self.retry.should_retry(attempt) else None
                if delay is None:
                    if status in RETRY_AFTER_STATUSES:
                        raise ControllerBusy()
                    raise ControllerError(message=f"The controller failed (HTTP {status}) on every try. Nothing was lost.")
                self.retry.sleep(delay)
                continue
            error = parse_error_body(body)
            if status == 401:
                if error.code == "device_revoked":
                    raise DeviceRevoked()
                raise AuthenticationFailed(error.code, _auth_message(error))
            if status == 413:
                raise PayloadTooLarge(message=error.message)
            raise RequestRefused(status, error.code, error.message)


def _auth_message(error: ErrorBody) -> str:
    reasons = {
        "invalid_token": "The controller does not know this laptop's access token (it may have expired or been replaced).",
        "missing_token": "The controller was not sent an access token.",
        "token_expired": "This laptop's access token has expired.",
    }
    return reasons.get(error.code, f"The controller did not accept this laptop's access token ({error.code}).")
