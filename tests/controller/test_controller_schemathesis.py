"""Property-based run of every operation in the live /openapi.json: no 5xx, ever.

Schemathesis generates requests from the published schema (with and without a valid
token) against a real controller process. The number of examples is bounded so the run
stays well under a minute per backend.
"""

from __future__ import annotations

from typing import Any

import pytest
from controller_testkit import Controller
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import schemathesis  # noqa: E402 - a test dependency (pyproject [test]); never skipped quietly

EXAMPLES_PER_OPERATION = 40


def _fuzz(operation: Any, controller: Controller, token: str, failures: list[str]) -> None:
    """Send bounded generated requests to one operation; note every 5xx."""
    name = f"{operation.method.upper()} {operation.path}"

    @settings(
        max_examples=EXAMPLES_PER_OPERATION,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(), authorised=st.booleans())
    def run(case: Any, authorised: bool) -> None:
        headers = {"Authorization": f"Bearer {token}"} if authorised else None
        response = case.call(base_url=controller.base_url, headers=headers, timeout=30)
        if response.status_code >= 500:
            failures.append(f"{name} -> {response.status_code}")
            return
        # Schemathesis keeps each header as a list of values.
        content_type = response.headers.get("content-type") or [""]
        assert content_type[0].startswith("application/json"), name

    run()


@pytest.mark.slow
def test_no_operation_answers_5xx(controller: Controller) -> None:
    _, token = controller.enrol_device("kw-fuzz")
    schema = schemathesis.openapi.from_url(f"{controller.base_url}/openapi.json", timeout=30)
    operations = [result.ok() for result in schema.get_all_operations()]
    assert {op.path for op in operations} >= {
        "/v1/health", "/v1/enrol", "/v1/push", "/v1/referrals", "/v1/referrals/ack",
        "/v1/instructions", "/v1/instructions/ack",
    }
    failures: list[str] = []
    for operation in operations:
        _fuzz(operation, controller, token, failures)
    assert failures == []
    log = controller.server_log()
    assert "Traceback" not in log and "unexpected" not in log
