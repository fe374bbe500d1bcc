"""Fixtures for the controller tests: a real controller process on loopback, per backend.

Every test that uses ``controller`` runs twice: on SQLite (a file in tmp_path) and on
PostgreSQL (a fresh schema in the database named by KEYWORKER_TEST_PG_URL). Without that
variable the PostgreSQL runs FAIL, saying how to set it, unless KEYWORKER_SKIP_PG=1.

The server is started as ``python -m controller serve --port 0``; the fixture reads the
"listening on URL" line it prints once it accepts connections (no sleeps).
"""

from __future__ import annotations

import dataclasses
import json
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Callable
from urllib.parse import parse_qsl, urlencode, urlsplit

import pytest
from controller_testkit import (
    IDENTIFIER_FIELDS,
    Controller,
    ProfileCase,
    run_cli,
    start_controller,
)

from keyworker_app import records

# tests/sync/conftest.py loads this file and reuses these names along with the fixtures.
__all__ = ["Controller", "ProfileCase", "run_cli", "start_controller"]

PG_ENV = "KEYWORKER_TEST_PG_URL"
SKIP_PG_ENV = "KEYWORKER_SKIP_PG"

# --- TEST FIXTURE PROFILES -------------------------------------------------------------
# Used ONLY while keyworker_app.sharing does not exist yet. They stand in for
# resources/sharing/*.json so the receipt check can be tested; they are not real profiles
# and say nothing about what any real recipient may receive.
TEST_ONLY_PROFILES: list[dict[str, Any]] = [
    {
        "id": "test_referrer",
        "records": {
            "participant": ["participant_ref", "given_name", "family_name", "status"],
            "outcome": ["kind", "outcome_on", "employer", "job_title"],
            "consent": ["sharing_profile", "status", "given_on", "withdrawn_on"],
        },
        "programmes": ["test_programme"],
        "strands": [],
        "consent_required": True,
        "one_off": False,
    },
    {
        "id": "test_ips_only",
        "records": {"outcome": ["kind", "mhsds_employment_status", "mhsds_weekly_hours"]},
        "programmes": ["test_programme"],
        "strands": ["ips"],
        "consent_required": False,
        "one_off": False,
    },
]


def _case_from(profiles: list[dict[str, Any]], profiles_file: Path | None) -> ProfileCase:
    chosen: ProfileCase | None = None
    for p in profiles:
        if not p["programmes"]:
            continue
        for record_type, allowed in p["records"].items():
            cls = records.RECORD_TYPE_BY_NAME.get(record_type)
            if cls is None or len(set(allowed) - IDENTIFIER_FIELDS) < 2:
                continue
            outside = [
                f for f in records.record_fields(cls)
                if f not in allowed and f not in IDENTIFIER_FIELDS
            ]
            if not outside:
                continue
            chosen = ProfileCase(
                profile_id=p["id"], record_type=record_type, allowed=tuple(allowed),
                outside_field=outside[0],
                programme=p["programmes"][0],
                strand=(list(p["strands"]) or [""])[0],
                profiles_file=profiles_file,
                strand_profile=None, strand_profile_record_type=None,
            )
            break
        if chosen:
            break
    if chosen is None:
        pytest.fail("no sharing profile has a record type with two fields and one left out")
    for p in profiles:
        if p["strands"] and p["records"] and p["programmes"]:
            return dataclasses.replace(
                chosen, strand_profile=p["id"],
                strand_profile_record_type=next(iter(p["records"])),
                strand_profile_strands=tuple(p["strands"]),
                strand_profile_programme=p["programmes"][0],
            )
    return chosen


@pytest.fixture(scope="session")
def profile_case(tmp_path_factory: pytest.TempPathFactory) -> ProfileCase:
    """The profile the push tests use: the real ones if keyworker_app.sharing exists."""
    try:
        from keyworker_app import sharing
    except ImportError:
        path = tmp_path_factory.mktemp("profiles") / "test-only-sharing-profiles.json"
        path.write_text(json.dumps(TEST_ONLY_PROFILES), "utf-8")
        return _case_from(TEST_ONLY_PROFILES, path)
    real = []
    for p in sharing.load_sharing_profiles().values():
        # The fields as they apply on the profile's first programme (overrides applied).
        resolved = p.for_programme(p.programmes[0]) if p.programmes else p
        real.append(
            {
                "id": p.id,
                "records": {t: list(f) for t, f in resolved.records.items()},
                "programmes": list(p.programmes or ()),
                "strands": list(p.strands or ()),
            }
        )
    return _case_from(real, None)


# --- databases ---------------------------------------------------------------------------

def _with_search_path(url: str, schema: str) -> str:
    parts = urlsplit(url)
    query = [(k, v) for k, v in parse_qsl(parts.query) if k != "options"]
    query.append(("options", f"-csearch_path={schema}"))
    return parts._replace(query=urlencode(query)).geturl()


def postgres_base_url() -> str:
    """The test PostgreSQL URL, or fail (or skip, when asked to) saying how to get one."""
    url = os.environ.get(PG_ENV, "").strip()
    if url:
        return url
    if os.environ.get(SKIP_PG_ENV) == "1":
        pytest.skip(f"{SKIP_PG_ENV}=1: PostgreSQL tests skipped on purpose")
    pytest.fail(
        f"{PG_ENV} is not set, so the PostgreSQL half of the controller tests cannot run. "
        f'Start one with:  eval "$(bash .ci/start-postgres)"  (it prints the export line), '
        f"or set {SKIP_PG_ENV}=1 to skip these tests deliberately.",
        pytrace=False,
    )


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database URL: a new SQLite file or a new PostgreSQL schema."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'controller.sqlite3'}"
        return
    import psycopg

    base = postgres_base_url()
    schema = f"kw_test_{uuid.uuid4().hex[:16]}"
    try:
        with psycopg.connect(base, autocommit=True, connect_timeout=10) as conn:
            conn.execute(f"CREATE SCHEMA {schema}")
    except psycopg.OperationalError as exc:
        pytest.fail(f"cannot reach PostgreSQL at {PG_ENV}: {exc}", pytrace=False)
    try:
        yield _with_search_path(base, schema)
    finally:
        with psycopg.connect(base, autocommit=True) as conn:
            conn.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def controller_factory(
    db_url: str, tmp_path: Path, profile_case: ProfileCase
) -> Iterator[Callable[..., Controller]]:
    """Start controllers on this test's database (extra serve arguments allowed)."""
    started: list[Controller] = []

    def start(*extra: str, verify: str | bool = True) -> Controller:
        controller = start_controller(db_url, tmp_path, profile_case, *extra, verify=verify)
        started.append(controller)
        return controller

    yield start
    for controller in started:
        controller.stop()


@pytest.fixture
def controller(controller_factory: Callable[..., Controller]) -> Controller:
    """A controller on a fresh database, with default limits."""
    return controller_factory()
