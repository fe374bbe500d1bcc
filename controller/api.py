"""The controller's HTTP API (FastAPI), versioned under ``/v1``; see docs/protocol.md.

Every error is JSON ``{"error": <code>, "message": <plain text>}``, and no error, log line
or validation message ever repeats a value the client sent: only field names, ids, counts.
Request bodies are bounded before they are parsed (:class:`_Guard`), gzip bodies are
inflated with the same bound, and the access log is replaced by one line per request with
the route, status and time (no query string).
"""

from __future__ import annotations

import json
import logging
import operator
import re
import time
import traceback
from dataclasses import dataclass
from typing import Annotated, Any, Awaitable, Callable, Literal, MutableMapping

from fastapi import Depends, FastAPI, Query, Request, Security
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from isal import isal_zlib
import msgspec
import orjson
from pydantic import BaseModel, ConfigDict, Field, StrictInt, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException as StarletteHTTPException

from . import service
from .db import Database, DatabaseUnavailable

log = logging.getLogger("keyworker.controller")

API_VERSION = "1"

# Ids are UUIDs in practice; the patterns keep anything odd (and any personal text) out.
ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$"
OPTIONAL_ID_PATTERN = r"^([A-Za-z0-9][A-Za-z0-9._-]{0,99})?$"
BATCH_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$"
KEYWORKER_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,99}$"
# Text stored as given must not hold NUL or other control characters (PostgreSQL refuses NUL).


@dataclass(frozen=True)
class Limits:
    """Bounds on what one request may carry (all configurable from ``serve``)."""

    max_items: int = 1000
    max_push_bytes: int = 8 * 1024 * 1024      # the batch, inflated, and the body as sent
    max_other_bytes: int = 64 * 1024           # every other request body
    referral_page: int = 100
    max_ack_ids: int = 500
    retry_after_seconds: int = 5


# -- wire models --------------------------------------------------------------------------

class ErrorBody(BaseModel):
    """Every error response."""

    error: str = Field(description="Stable machine-readable code, e.g. 'invalid_token'.")
    message: str = Field(description="Plain English: what happened and what to do.")
    instruction: str | None = Field(
        default=None, description="Present with 'device_revoked': 'purge' (lock and purge)."
    )


class EnrolRequest(BaseModel):
    """Spend a one-time enrolment code to get a device token."""

    model_config = ConfigDict(extra="forbid")
    code: str = Field(min_length=1, max_length=64)
    keyworker_id: str = Field(pattern=KEYWORKER_ID_PATTERN)
    device_name: str = Field(pattern=r"^[^\x00-\x1f\x7f]{1,100}$", description="No control characters.")


class EnrolResponse(BaseModel):
    """The new device's id and bearer token; the token is shown only this once."""

    device_id: str
    keyworker_id: str
    token: str


class PushItem(BaseModel):
    """One record version for one recipient, already projected through its profile."""

    model_config = ConfigDict(extra="forbid")
    idempotency_key: str = Field(max_length=300, description="'<record_id>:<version>:<recipient>'")
    record_type: str = Field(pattern=r"^[a-z_]{1,40}$")
    record_id: str = Field(pattern=ID_PATTERN)
    version: StrictInt = Field(ge=1, le=2**62)
    recipient: str = Field(pattern=ID_PATTERN, description="Sharing profile id.")
    participant_id: str = Field(pattern=ID_PATTERN)
    programme: str = Field(pattern=ID_PATTERN)
    strand: str = Field(default="", pattern=OPTIONAL_ID_PATTERN)
    op: Literal["upsert", "delete", "withdraw"]
    fields: dict[str, Any] = Field(default_factory=dict)


class PushBatch(BaseModel):
    """A push: up to ``max_items`` items (see /v1/health for the limits in force)."""

    batch_id: str = Field(pattern=BATCH_ID_PATTERN)
    items: list[PushItem]


class _PushEnvelope(BaseModel):
    """The batch with its items unparsed, so one bad item never sinks the rest."""

    batch_id: str = Field(pattern=BATCH_ID_PATTERN)
    items: list[Any]


class ItemAnswer(BaseModel):
    """The answer for one item, in the order the items were sent."""

    index: int
    idempotency_key: str | None
    status: service.ItemStatus
    code: str | None = None
    reason: str | None = None


class PushResponse(BaseModel):
    batch_id: str
    results: list[ItemAnswer]
    counts: dict[str, int]


class Referral(BaseModel):
    """A referral for this keyworker: a participant and the referral's details."""

    id: str
    queued_at: str
    participant: dict[str, Any] = Field(description="records.Participant fields")
    referral: dict[str, Any] = Field(description="records.Referral fields")


class ReferralPage(BaseModel):
    referrals: list[Referral]
    next_cursor: str | None
    more: bool


class AckRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    ids: list[Annotated[str, Field(pattern=ID_PATTERN)]] = Field(max_length=500)


class AckResponse(BaseModel):
    acknowledged: list[str]
    unknown: list[str]


class Instruction(BaseModel):
    id: str
    kind: service.InstructionKind
    action: str
    created_at: str


class InstructionList(BaseModel):
    instructions: list[Instruction]


class Health(BaseModel):
    status: Literal["ok"]
    api_version: str
    limits: dict[str, int]


# -- errors -------------------------------------------------------------------------------

class ApiError(Exception):
    """An error answered as JSON ``{error, message}`` with an HTTP status."""

    def __init__(
        self, status: int, error: str, message: str, headers: dict[str, str] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.status, self.error, self.message = status, error, message
        self.headers = headers or {}
        self.extra = extra or {}


def _error_response(
    status: int, error: str, message: str, headers: dict[str, str] | None = None,
    **extra: Any,
) -> JSONResponse:
    return JSONResponse({"error": error, "message": message, **extra}, status, headers)


_ENROL_STATUS = {
    "enrolment_code_unknown": 400,
    "enrolment_keyworker_mismatch": 403,
    "enrolment_code_used": 409,
    "enrolment_code_expired": 410,
}


def _service_error(exc: service.ServiceError) -> ApiError:
    if isinstance(exc, service.NotAuthenticated):
        extra = {"instruction": "purge"} if exc.code == "device_revoked" else {}
        return ApiError(401, exc.code, exc.message, {"WWW-Authenticate": "Bearer"}, extra)
    if isinstance(exc, service.EnrolmentRefused):
        return ApiError(_ENROL_STATUS.get(exc.code, 400), exc.code, exc.message)
    if isinstance(exc, service.NotFound):
        return ApiError(404, exc.code, exc.message)
    return ApiError(400, exc.code, exc.message)


def _validation_details(errors: list[Any]) -> list[dict[str, Any]]:
    """Where and what, never the offending input (it may be personal)."""
    return [
        {"loc": [str(part) for part in err.get("loc", ())], "msg": str(err.get("msg", ""))}
        for err in errors
    ]


def _summary(details: list[dict[str, Any]]) -> str:
    shown = "; ".join(f"{'.'.join(d['loc'])}: {d['msg']}" for d in details[:5])
    more = f" (and {len(details) - 5} more)" if len(details) > 5 else ""
    return shown + more


# -- request guard and log ----------------------------------------------------------------

ASGIApp = Callable[[MutableMapping[str, Any], Any, Any], Awaitable[None]]


class _Guard:
    """ASGI middleware: bound each request body before anything parses it, and log.

    The body is read here (up to the route's limit) and replayed to the app, so a client
    cannot make the controller buffer more than the limit whatever Content-Length says.
    """

    def __init__(self, app: ASGIApp, limits: Limits) -> None:
        self.app = app
        self.limits = limits

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        status_seen: list[int] = []

        async def send_logged(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status_seen.append(int(message["status"]))
            await send(message)

        try:
            await self._guarded(scope, receive, send_logged)
        finally:
            route = scope.get("route")
            # Route templates only: a path that matched nothing may hold anything.
            path = getattr(route, "path", "(no route)")
            log.info(
                "%s %s %s %.1fms", scope.get("method", "?"), path,
                status_seen[0] if status_seen else "-", (time.perf_counter() - started) * 1000,
            )

    async def _guarded(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        limit = (
            self.limits.max_push_bytes if scope.get("path") == "/v1/push"
            else self.limits.max_other_bytes
        )
        too_big = _error_response(
            413, "body_too_large",
            f"The request body is larger than the limit of {limit} bytes. "
            "Send fewer or smaller items per batch.",
        )
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > limit:
            await too_big(scope, receive, send)
            return
        chunks: list[bytes] = []
        total = 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            total += len(chunk)
            if total > limit:
                await too_big(scope, receive, send)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> MutableMapping[str, Any]:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # type: ignore[no-any-return]

        await self.app(scope, replay, send)


def _inflate(body: bytes, encoding: str, limit: int) -> bytes:
    """The request body as JSON bytes: gzip inflated with the same size bound."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return body
    if encoding != "gzip":
        raise ApiError(415, "unsupported_encoding", "Content-Encoding must be gzip or identity.")
    # ISA-L's inflate (the zlib interface, about 2.5 times quicker than zlib's own).
    inflater = isal_zlib.decompressobj(16 + isal_zlib.MAX_WBITS)
    try:
        out = inflater.decompress(body, limit + 1)
    except isal_zlib.error as exc:
        raise ApiError(400, "invalid_gzip", "The body is not valid gzip data.") from exc
    if len(out) > limit:
        raise ApiError(
            413, "body_too_large",
            f"The batch is larger than {limit} bytes when uncompressed. Send fewer items per batch.",
        )
    if not inflater.eof:
        raise ApiError(400, "invalid_gzip", "The gzip body is truncated.")
    return out


# -- the app ------------------------------------------------------------------------------

def create_app(db: Database, limits: Limits | None = None) -> FastAPI:
    """The controller's ASGI application over ``db`` (already migrated)."""
    limits = limits or Limits()
    app = FastAPI(
        title="Keyworker central controller",
        version=API_VERSION,
        description="Reference controller for Keyworker laptops. See docs/protocol.md.",
        docs_url=None,
        redoc_url=None,
    )
    bearer = HTTPBearer(auto_error=False, description="The device token from /v1/enrol.")
    auth_errors: dict[int | str, dict[str, Any]] = {
        401: {"model": ErrorBody, "description": "Missing, invalid or revoked token"},
        503: {"model": ErrorBody, "description": "Database busy; retry after Retry-After"},
    }

    def authenticate(credentials: HTTPAuthorizationCredentials | None) -> service.Device:
        token = credentials.credentials if credentials else None
        try:
            return service.authenticate(db, token)
        except service.NotAuthenticated as exc:
            raise _service_error(exc) from exc

    def authenticated(
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> service.Device:
        return authenticate(credentials)

    # -- error handlers -----------------------------------------------------------------

    @app.exception_handler(ApiError)
    async def _api_error(_: Request, exc: ApiError) -> JSONResponse:
        return _error_response(exc.status, exc.error, exc.message, exc.headers, **exc.extra)

    @app.exception_handler(service.ServiceError)
    async def _service_error_handler(_: Request, exc: service.ServiceError) -> JSONResponse:
        err = _service_error(exc)
        return _error_response(err.status, err.error, err.message, err.headers, **err.extra)

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        details = _validation_details(list(exc.errors()))
        return _error_response(
            422, "invalid_request", "The request is not valid: " + _summary(details),
            details=details,
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        codes = {404: "not_found", 405: "method_not_allowed"}
        return _error_response(
            exc.status_code, codes.get(exc.status_code, "http_error"), str(exc.detail),
            dict(exc.headers or {}),
        )

    @app.exception_handler(DatabaseUnavailable)
    async def _unavailable(_: Request, exc: DatabaseUnavailable) -> JSONResponse:
        log.warning("database unavailable: %s", type(exc.__cause__).__name__)
        return _error_response(
            503, "unavailable", "The controller's database is busy or unavailable. Retry later.",
            {"Retry-After": str(limits.retry_after_seconds)},
        )

    @app.exception_handler(Exception)
    async def _unexpected(_: Request, exc: Exception) -> JSONResponse:
        # Frames only: an exception's message could hold a value from the request.
        frames = "".join(traceback.format_tb(exc.__traceback__))
        log.error("unexpected %s\n%s", type(exc).__name__, frames)
        return _error_response(500, "internal_error", "The controller failed unexpectedly.")

    # -- routes -------------------------------------------------------------------------

    @app.get("/v1/health", response_model=Health, tags=["service"])
    def health() -> Health:
        """Liveness: no authentication. Also publishes the limits in force."""
        return Health(
            status="ok",
            api_version=API_VERSION,
            limits={
                "max_items": limits.max_items,
                "max_push_bytes": limits.max_push_bytes,
                "max_other_bytes": limits.max_other_bytes,
                "referral_page": limits.referral_page,
                "max_ack_ids": limits.max_ack_ids,
            },
        )

    @app.post(
        "/v1/enrol",
        response_model=EnrolResponse,
        tags=["devices"],
        responses={
            400: {"model": ErrorBody, "description": "enrolment_code_unknown"},
            403: {"model": ErrorBody, "description": "enrolment_keyworker_mismatch"},
            409: {"model": ErrorBody, "description": "enrolment_code_used"},
            410: {"model": ErrorBody, "description": "enrolment_code_expired"},
        },
    )
    def enrol(body: EnrolRequest) -> EnrolResponse:
        """Enrol a laptop with a one-time code issued by ``keyworker-controller enrol``."""
        device, token = service.enrol(db, body.code, body.keyworker_id, body.device_name)
        log.info("enrolled device=%s", device.id)
        return EnrolResponse(device_id=device.id, keyworker_id=device.keyworker_id, token=token)

    @app.post(
        "/v1/push",
        response_model=PushResponse,
        tags=["sync"],
        responses={
            **auth_errors,
            400: {"model": ErrorBody, "description": "invalid_json or invalid_gzip"},
            413: {"model": ErrorBody, "description": "body_too_large or batch_too_large"},
            415: {"model": ErrorBody, "description": "unsupported_encoding"},
            422: {"model": ErrorBody, "description": "invalid_request (the envelope)"},
        },
    )
    async def push(
        request: Request,
        credentials: HTTPAuthorizationCredentials | None = Security(bearer),
    ) -> Response:
        """Push a batch (JSON, optionally gzip); one answer per item, in order."""
        # Everything after reading the body runs in one worker thread, in the order the
        # other routes take (the token first): one hand-over per push, not two.
        answer = await run_in_threadpool(
            push_batch, credentials, await request.body(),
            request.headers.get("content-encoding", ""),
        )
        return Response(answer, media_type="application/json")

    def push_batch(
        credentials: HTTPAuthorizationCredentials | None, body: bytes, encoding: str
    ) -> bytes:
        device = authenticate(credentials)
        batch_id, items = _read_batch(
            _inflate(body, encoding, limits.max_push_bytes), limits.max_items
        )
        answer, counts = _push_answer(db, device, batch_id, items)
        log.info(
            "push device=%s batch=%s items=%d %s", device.id, batch_id, len(items),
            " ".join(f"{k}={v}" for k, v in counts.items()),
        )
        return answer

    @app.get(
        "/v1/referrals",
        response_model=ReferralPage,
        tags=["sync"],
        responses={**auth_errors, 400: {"model": ErrorBody, "description": "invalid_cursor"}},
    )
    def referrals(
        since: str | None = Query(default=None, max_length=200, description="next_cursor from the previous page"),
        limit: int = Query(default=limits.referral_page, ge=1, le=limits.referral_page),
        device: service.Device = Depends(authenticated),
    ) -> ReferralPage:
        """Referrals queued for this device's keyworker and not yet acknowledged."""
        page = service.pull_referrals(db, device, since, limit)
        log.info("referrals device=%s sent=%d more=%s", device.id, len(page.referrals), page.more)
        return ReferralPage(
            referrals=[Referral(**r) for r in page.referrals],
            next_cursor=page.next_cursor,
            more=page.more,
        )

    @app.post("/v1/referrals/ack", response_model=AckResponse, tags=["sync"], responses=auth_errors)
    def ack_referrals(body: AckRequest, device: service.Device = Depends(authenticated)) -> AckResponse:
        """Mark referrals as safely stored on the laptop; they are not sent again."""
        done, unknown = service.ack_referrals(db, device, body.ids)
        log.info("referrals acked device=%s acked=%d unknown=%d", device.id, len(done), len(unknown))
        return AckResponse(acknowledged=done, unknown=unknown)

    @app.get("/v1/instructions", response_model=InstructionList, tags=["devices"], responses=auth_errors)
    def instructions(device: service.Device = Depends(authenticated)) -> InstructionList:
        """Instructions for this device, sent at every call until acknowledged."""
        rows = service.pending_instructions(db, device)
        return InstructionList(instructions=[Instruction(**row) for row in rows])

    @app.post(
        "/v1/instructions/ack", response_model=AckResponse, tags=["devices"], responses=auth_errors
    )
    def ack_instructions(body: AckRequest, device: service.Device = Depends(authenticated)) -> AckResponse:
        """Mark instructions as carried out."""
        done, unknown = service.ack_instructions(db, device, body.ids)
        return AckResponse(acknowledged=done, unknown=unknown)

    def openapi() -> dict[str, Any]:
        # /v1/push reads its own body (gzip, per-item validation), so FastAPI cannot see
        # its schema: publish PushBatch by hand.
        if app.openapi_schema:
            return app.openapi_schema
        schema = get_openapi(
            title=app.title, version=app.version, description=app.description, routes=app.routes
        )
        batch = PushBatch.model_json_schema(ref_template="#/components/schemas/{model}")
        components = schema.setdefault("components", {}).setdefault("schemas", {})
        components.update(batch.pop("$defs", {}))
        components["PushBatch"] = batch
        schema["paths"]["/v1/push"]["post"]["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/PushBatch"}}},
        }
        app.openapi_schema = jsonable_encoder(schema)
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.add_middleware(_Guard, limits=limits)
    return app


def _loads(raw: bytes) -> Any:
    """The body as JSON: orjson first (several times faster); anything it refuses is read
    by the standard parser, which accepts the same documents as before or says where the
    body is broken."""
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError:
        pass
    try:
        return json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        where = f" (line {exc.lineno}, column {exc.colno})" if isinstance(exc, json.JSONDecodeError) else ""
        raise ApiError(400, "invalid_json", f"The body is not valid JSON{where}.") from exc


_BATCH_ID = re.compile(BATCH_ID_PATTERN[1:-1])   # fullmatch: see _ITEM_ID


def _envelope(data: Any) -> _PushEnvelope:
    """The batch envelope; pydantic only when the plain checks do not pass (for its words)."""
    if (
        type(data) is dict
        and type(data.get("batch_id")) is str
        and _BATCH_ID.fullmatch(data["batch_id"])
        and type(data.get("items")) is list
    ):
        return _PushEnvelope.model_construct(batch_id=data["batch_id"], items=data["items"])
    try:
        return _PushEnvelope.model_validate(data)
    except ValidationError as exc:
        details = _validation_details(list(exc.errors()))
        raise ApiError(
            422, "invalid_request", "The batch is not valid: " + _summary(details)
        ) from exc


def _parse_items(envelope: _PushEnvelope) -> list[service.PushItem | service.ItemResult]:
    """Each item checked by PushItem on its own: a bad one is answered ``invalid_item``,
    never fatal."""
    items: list[service.PushItem | service.ItemResult] = []
    for raw in envelope.items:
        key = raw.get("idempotency_key") if isinstance(raw, dict) else None
        key = key if isinstance(key, str) and len(key) <= 300 else None
        try:
            parsed = PushItem.model_validate(raw)
        except ValidationError as exc:
            details = _validation_details(list(exc.errors()))
            items.append(service.ItemResult(
                key, service.ItemStatus.REJECTED, "invalid_item",
                "The item is not valid: " + _summary(details),
            ))
            continue
        items.append(service.PushItem(
            idempotency_key=parsed.idempotency_key, record_type=parsed.record_type,
            record_id=parsed.record_id, version=parsed.version, recipient=parsed.recipient,
            participant_id=parsed.participant_id, programme=parsed.programme,
            strand=parsed.strand, op=parsed.op, fields=parsed.fields,
        ))
    return items


# -- reading a batch: msgspec for a batch that passes every check ---------------------------
#
# Nearly every batch is well formed from end to end. Such a batch is decoded by msgspec
# straight into typed structs (_WireBatch), which checks PushItem's keys, types and bounds
# in C as it goes; PushItem's patterns are then matched once per distinct value in the
# batch. A batch that does not pass all of that (a bad item, a key PushItem does not know,
# JSON that only the standard parser reads) goes down the exact path instead: orjson (or
# the standard parser), the envelope, then pydantic item by item, so that each item is
# answered in pydantic's words and one bad item never sinks the rest.

class _WireItem(msgspec.Struct, forbid_unknown_fields=True):
    """A push item as msgspec decodes it: PushItem's keys, types and bounds, not its
    patterns (msgspec matches a pattern with re.search from C, about 1 µs a field).

    ``fields`` is kept as its JSON text and read by orjson, as the whole body was before,
    so its values are exactly what they were: orjson reads an integer beyond 64 bits as a
    float, msgspec as an int.
    """

    idempotency_key: Annotated[str, msgspec.Meta(max_length=300)]
    record_type: str
    record_id: str
    version: Annotated[int, msgspec.Meta(ge=1, le=2**62)]
    recipient: str
    participant_id: str
    programme: str
    op: Literal["upsert", "delete", "withdraw"]
    strand: str = ""
    fields: msgspec.Raw = msgspec.Raw(b"{}")


class _WireBatch(msgspec.Struct, forbid_unknown_fields=True):
    """A push batch as msgspec decodes it. A key the envelope does not know sends the
    batch down the exact path (which ignores it): msgspec would skip it unread, without
    checking that its text is valid UTF-8 as orjson does."""

    batch_id: str
    items: list[_WireItem]


_WIRE_BATCH = msgspec.json.Decoder(_WireBatch)
# msgspec's own errors, text that is not valid UTF-8 (UnicodeDecodeError, a ValueError),
# and nesting deeper than it reads.
_NOT_WIRE = (msgspec.MsgspecError, ValueError, RecursionError)

# PushItem's patterns, anchors dropped and used with fullmatch ("$" would allow a final
# newline, which pydantic's regex engine does not).
_RECORD_TYPE = re.compile(r"[a-z_]{1,40}")
_ITEM_ID = re.compile(ID_PATTERN[1:-1])
_record_types = operator.attrgetter("record_type")
_record_ids = operator.attrgetter("record_id")
_recipients = operator.attrgetter("recipient")
_participant_ids = operator.attrgetter("participant_id")
_programmes = operator.attrgetter("programme")
_strands = operator.attrgetter("strand")


def _read_wire(raw: bytes) -> _WireBatch | None:
    """The batch if it passes every check of PushBatch as it is; else None."""
    try:
        wire = _WIRE_BATCH.decode(raw)
    except _NOT_WIRE:
        return None
    items = wire.items
    # OPTIONAL_ID_PATTERN is ID_PATTERN or empty: a strand is "" or an id.
    strands = set(map(_strands, items))
    strands.discard("")
    ids = {
        *map(_record_ids, items), *map(_recipients, items), *map(_participant_ids, items),
        *map(_programmes, items), *strands,
    }
    if (
        _BATCH_ID.fullmatch(wire.batch_id)
        and all(map(_ITEM_ID.fullmatch, ids))
        and all(map(_RECORD_TYPE.fullmatch, set(map(_record_types, items))))
    ):
        return wire
    return None


def _wire_items(wire: _WireBatch) -> list[service.PushItem | service.ItemResult] | None:
    """The service's items for a checked batch; None if any ``fields`` is not a JSON
    object that orjson reads."""
    items: list[service.PushItem | service.ItemResult] = []
    loads, push_item = orjson.loads, service.PushItem
    try:
        for item in wire.items:
            fields = loads(bytes(item.fields))
            if type(fields) is not dict:
                return None
            items.append(push_item(
                item.idempotency_key, item.record_type, item.record_id, item.version,
                item.recipient, item.participant_id, item.programme, item.strand, item.op,
                fields,
            ))
    except orjson.JSONDecodeError:
        return None
    return items


def _check_count(count: int, max_items: int) -> None:
    if count > max_items:
        raise ApiError(
            413, "batch_too_large",
            f"The batch has {count} items; the limit is {max_items}. "
            "Split it into smaller batches.",
        )


def _read_batch(raw: bytes, max_items: int) -> tuple[str, list[service.PushItem | service.ItemResult]]:
    """The batch id and its items, in order: each a service item, or the answer
    ``invalid_item`` for one that is not valid."""
    wire = _read_wire(raw)
    if wire is not None:
        _check_count(len(wire.items), max_items)
        items = _wire_items(wire)
        if items is not None:
            return wire.batch_id, items
    envelope = _envelope(_loads(raw))
    _check_count(len(envelope.items), max_items)
    return envelope.batch_id, _parse_items(envelope)


def _push_answer(
    db: Database, device: service.Device, batch_id: str,
    items: list[service.PushItem | service.ItemResult],
) -> tuple[bytes, dict[str, int]]:
    """The ``PushResponse`` body for a batch, written straight to JSON bytes (the shape is
    PushResponse's, field for field), and its counts."""
    results = service.apply_items(db, device, batch_id, items)
    # ItemStatus is a StrEnum: orjson writes it as its text.
    statuses = [result.status for result in results]
    counts = {status.value: statuses.count(status) for status in service.ItemStatus}
    answers = [
        {
            "index": index, "idempotency_key": result.idempotency_key, "status": result.status,
            "code": result.code, "reason": result.reason,
        }
        for index, result in enumerate(results)
    ]
    document = {"batch_id": batch_id, "results": answers, "counts": counts}
    try:
        body = orjson.dumps(document)
    except orjson.JSONEncodeError:
        # An answer echoes text the laptop sent (its key, a field name in a refusal) that
        # holds half a surrogate pair, which UTF-8 cannot carry: the standard encoder
        # writes it as the \u escape it arrived as.
        body = json.dumps(document, separators=(",", ":")).encode("ascii")
    return body, counts
