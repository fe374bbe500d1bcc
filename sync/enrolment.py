"""Enrolling this laptop with a controller, and keeping its device token safe.

The one-time code from ``keyworker-controller enrol`` is exchanged for a device token.
Where the token is kept follows the profile's credential-store decision (DESIGN §3):

* the profile was created with a secure OS credential store: the token goes there, through
  ``keyring`` (entry ``sync-token:<profile id>``);
* the profile is passphrase-only (no secure credential store, organisation policy
  ``preferred``): the token goes *inside the encrypted store*, in the ``meta`` table.

It is never written to a plain file. The controller address, device id, CA bundle path
and pins are not secret and live in ``meta`` too (``sync.*`` keys).
"""

from __future__ import annotations

import enum
import json
import socket
from dataclasses import dataclass
from pathlib import Path

import httpx

from keyworker_app.paths import AppPaths
from keyworker_app.profile import KeyFile
from keyworker_app.security import KEYRING_SERVICE
from keyworker_app.store.store import Store

from .errors import EnrolmentRefused, NotEnrolled, RequestRefused, SyncError
from .purge import token_entry
from .retry import RetryPolicy
from .transport import ControllerClient, EventHooks, TransportSettings, check_controller_url, parse_pin
from .wire import parse_enrolled

META_URL = "sync.controller_url"
META_DEVICE = "sync.device_id"
META_TOKEN = "sync.token"
META_TOKEN_LOCATION = "sync.token_location"
META_CA_BUNDLE = "sync.ca_bundle"
META_PINS = "sync.pins"


class TokenLocation(enum.StrEnum):
    KEYRING = "keyring"
    STORE = "store"


class TokenStoreError(SyncError):
    exit_code = 28
    message = "The device token could not be kept in this computer's credential store."
    next_step = "Ask your IT team to check the system keyring, then enrol again with a new code."


@dataclass(frozen=True)
class Enrolment:
    """This laptop's enrolment (no token: that stays where :class:`TokenLocation` says)."""

    controller_url: str
    device_id: str
    keyworker_id: str
    token_location: TokenLocation


def token_location(paths: AppPaths) -> TokenLocation:
    """Where this profile keeps its token: the keyring only if it was created with a secure one."""
    keyring_info = KeyFile.read(paths.keyfile).data.get("keyring", {})
    return TokenLocation.KEYRING if keyring_info.get("secure") else TokenLocation.STORE


def _profile_id(paths: AppPaths) -> str:
    return KeyFile.read(paths.keyfile).profile_id


def save_token(store: Store, paths: AppPaths, token: str) -> TokenLocation:
    where = token_location(paths)
    if where is TokenLocation.KEYRING:
        import keyring
        from keyring.errors import KeyringError

        try:
            keyring.set_password(KEYRING_SERVICE, token_entry(_profile_id(paths)), token)
        except KeyringError:
            raise TokenStoreError() from None
        store.set_meta(META_TOKEN, "")
    else:
        store.set_meta(META_TOKEN, token)
    store.set_meta(META_TOKEN_LOCATION, where.value)
    return where


def load_token(store: Store, paths: AppPaths) -> str | None:
    where = store.get_meta(META_TOKEN_LOCATION, "")
    if where == TokenLocation.STORE:
        return store.get_meta(META_TOKEN, "") or None
    if where == TokenLocation.KEYRING:
        import keyring
        from keyring.errors import KeyringError

        try:
            return keyring.get_password(KEYRING_SERVICE, token_entry(_profile_id(paths)))
        except KeyringError:
            return None
    return None


def transport_settings(store: Store) -> TransportSettings:
    """The controller's address and trust settings saved at enrolment."""
    url = store.get_meta(META_URL, "")
    if not url:
        raise NotEnrolled()
    ca_bundle = store.get_meta(META_CA_BUNDLE, "")
    pins = tuple(json.loads(store.get_meta(META_PINS, "[]")))
    return TransportSettings(url, Path(ca_bundle) if ca_bundle else None, pins)


def is_enrolled(store: Store) -> bool:
    return bool(store.get_meta(META_URL, "")) and bool(store.get_meta(META_DEVICE, ""))


def open_client(
    store: Store, paths: AppPaths, retry: RetryPolicy | None = None,
    event_hooks: EventHooks | None = None,
) -> ControllerClient:
    """A client for the enrolled controller with this laptop's token (:class:`NotEnrolled` if none)."""
    settings = transport_settings(store)
    token = load_token(store, paths)
    if not token:
        raise NotEnrolled(message="This laptop's access token is missing, so it cannot sync.")
    return ControllerClient(settings, token, retry, event_hooks=event_hooks)


_ENROLMENT_CODES = frozenset({
    "enrolment_code_unknown", "enrolment_keyworker_mismatch", "enrolment_code_used",
    "enrolment_code_expired", "invalid_request",
})


def enrol(
    store: Store,
    paths: AppPaths,
    controller_url: str,
    code: str,
    *,
    device_name: str | None = None,
    ca_bundle: Path | None = None,
    pins: tuple[str, ...] = (),
    retry: RetryPolicy | None = None,
    http: httpx.Client | None = None,
) -> Enrolment:
    """Exchange a one-time ``code`` for a device token and keep it safe.

    The code is bound to a keyworker id at the controller; one issued for someone else is
    refused with the controller's own message (:class:`EnrolmentRefused`).
    """
    for pin in pins:
        parse_pin(pin)   # a ValueError names the format; checked before anything is sent
    settings = TransportSettings(check_controller_url(controller_url), ca_bundle, pins)
    name = (device_name or socket.gethostname() or "Keyworker laptop")[:100]
    name = "".join(ch for ch in name if ch.isprintable()) or "Keyworker laptop"
    body = json.dumps({"code": code.strip(), "keyworker_id": store.actor, "device_name": name}).encode()
    with ControllerClient(settings, retry=retry, http=http) as client:
        try:
            answer = parse_enrolled(client.post_json("/v1/enrol", body, auth=False))
        except RequestRefused as exc:
            if exc.code in _ENROLMENT_CODES:
                raise EnrolmentRefused(exc.code, exc.detail) from None
            raise
    if answer.keyworker_id != store.actor:
        raise EnrolmentRefused("enrolment_keyworker_mismatch",
                               "The controller enrolled this laptop for a different keyworker id.")
    where = save_token(store, paths, answer.token)
    store.set_meta(META_URL, settings.base_url)
    store.set_meta(META_DEVICE, answer.device_id)
    store.set_meta(META_CA_BUNDLE, str(ca_bundle) if ca_bundle else "")
    store.set_meta(META_PINS, json.dumps(list(pins)))
    store.audit("sync_enrolled", detail={"device_id": answer.device_id, "token_location": where.value})
    return Enrolment(settings.base_url, answer.device_id, answer.keyworker_id, where)
