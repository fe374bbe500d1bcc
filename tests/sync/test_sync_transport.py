"""Addresses and pins: https always, plain http to loopback only, pins in two spellings."""

from __future__ import annotations

import base64
import hashlib

import pytest

from sync.errors import InsecureControllerUrl
from sync.transport import check_controller_url, is_loopback_host, parse_pin, ssl_context


@pytest.mark.parametrize("url", ["http://127.0.0.1:8443", "http://127.9.9.9/", "http://[::1]:80",
                                 "http://localhost:1234", "https://controller.example.org",
                                 "https://10.0.0.5:8443/"])
def test_allowed_addresses(url: str) -> None:
    assert check_controller_url(url) == url.rstrip("/")


@pytest.mark.parametrize("url", ["http://controller.example.org", "http://10.0.0.5", "http://[::2]:80",
                                 "http://127.0.0.1.nip.io", "ftp://127.0.0.1", "controller.example.org",
                                 "https://user:pw@controller.example.org", "https://c.example.org/?a=1", ""])
def test_refused_addresses(url: str) -> None:
    with pytest.raises(InsecureControllerUrl):
        check_controller_url(url)


def test_loopback_hosts() -> None:
    assert is_loopback_host("127.0.0.1") and is_loopback_host("::1") and is_loopback_host("LOCALHOST")
    assert not is_loopback_host("128.0.0.1") and not is_loopback_host("example.org")


def test_pins_in_base64_and_hex() -> None:
    digest = hashlib.sha256(b"spki").digest()
    assert parse_pin("sha256/" + base64.b64encode(digest).decode()) == digest
    assert parse_pin(digest.hex()) == digest
    for bad in ("sha256/!!!", "abcd", "sha256/" + base64.b64encode(b"short").decode()):
        with pytest.raises(ValueError):
            parse_pin(bad)


def test_the_tls_context_always_verifies() -> None:
    import ssl

    context = ssl_context()
    assert context.verify_mode is ssl.CERT_REQUIRED and context.check_hostname
    assert context.minimum_version >= ssl.TLSVersion.TLSv1_2
