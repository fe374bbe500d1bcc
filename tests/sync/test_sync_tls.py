"""TLS to a real controller: the organisation's CA bundle, and public-key pinning.

A throwaway CA and a server certificate for 127.0.0.1 are made per test; the controller
serves HTTPS with them. A wrong pin stops the connection inside the handshake, so the
enrolment request (and its one-time code) never reaches the controller.
"""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import ipaddress
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync_testkit import KEYWORKER, Laptop, caseload

AppCli = Callable[..., tuple[int, str, str]]


def _name(text: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, text)])


def make_pki(folder: Path) -> tuple[Path, Path, Path, str]:
    """(CA bundle, server cert, server key, the server key's pin)."""
    now = dt.datetime.now(dt.timezone.utc)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(_name("Test CA")).issuer_name(_name("Test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (x509.CertificateBuilder().subject_name(_name("127.0.0.1")).issuer_name(ca.subject)
            .public_key(key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=2))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(ca_key, hashes.SHA256()))
    ca_path, cert_path, key_path = folder / "ca.pem", folder / "server.pem", folder / "server.key"
    ca_path.write_bytes(ca.public_bytes(serialization.Encoding.PEM))
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER,
                                         serialization.PublicFormat.SubjectPublicKeyInfo)
    return ca_path, cert_path, key_path, "sha256/" + base64.b64encode(hashlib.sha256(spki).digest()).decode()


@pytest.fixture
def tls_controller(controller_factory: Callable[..., Any], tmp_path: Path,
                   monkeypatch: pytest.MonkeyPatch) -> tuple[Any, Path, str]:
    ca, cert, key, pin = make_pki(tmp_path)
    # The testkit's own health check uses httpx's defaults, which read SSL_CERT_FILE.
    monkeypatch.setenv("SSL_CERT_FILE", str(ca))
    controller = controller_factory("--certfile", str(cert), "--keyfile", str(key))
    assert controller.base_url.startswith("https://127.0.0.1:")
    return controller, ca, pin


def test_https_with_the_organisation_ca_and_the_right_pin(
    tls_controller: tuple[Any, Path, str], laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    controller, ca, pin = tls_controller
    code = controller.new_code(KEYWORKER)
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code,
                                  "--ca-bundle", str(ca), "--pin", pin)
    assert exit_code == 0, out + err
    laptop.add_cases(caseload(1, seed=61))
    exit_code, out, err = app_cli(laptop, "sync")
    assert exit_code == 0, out + err


def test_a_certificate_outside_the_trusted_bundle_is_refused(
    tls_controller: tuple[Any, Path, str], laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    controller, _, _ = tls_controller
    code = controller.new_code(KEYWORKER)
    exit_code, _, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code)
    assert exit_code == 24 and "could not be trusted" in err


def test_a_wrong_pin_stops_before_anything_is_sent(
    tls_controller: tuple[Any, Path, str], laptop: Laptop, app_cli: AppCli, no_sleep: list[float]
) -> None:
    controller, ca, pin = tls_controller
    code = controller.new_code(KEYWORKER)
    wrong = "sha256/" + base64.b64encode(hashlib.sha256(b"another key").digest()).decode()
    exit_code, _, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code,
                                "--ca-bundle", str(ca), "--pin", wrong)
    assert exit_code == 24 and "could not be trusted" in err
    # The one-time code was never spent: the request never reached the controller.
    exit_code, out, err = app_cli(laptop, "enrol", "--controller", controller.base_url, "--code", code,
                                  "--ca-bundle", str(ca), "--pin", pin)
    assert exit_code == 0, out + err
