"""The public API fuzzed from its own OpenAPI (schemathesis) against the real service process.

Every operation gets generated requests, valid and invalid, for a bounded number of examples:
no answer may be a server error, and every answer must be a documented status code whose body
conforms to the documented schema and content type.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, settings
from schemathesis.checks import (
    content_type_conformance,
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
)

from pipelines.traffic import running_service

TOKEN = "fuzzing-token-0123456789"
CHECKS = [not_a_server_error, status_code_conformance, content_type_conformance, response_schema_conformance]


@pytest.fixture(scope="module")
def service(trained_state: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    state = tmp_path_factory.mktemp("fuzzing") / "state"
    shutil.copytree(trained_state, state, ignore=shutil.ignore_patterns("predictions.db*"))
    env = {"MLOPS_ADMIN_TOKEN": TOKEN, "MLOPS_DEV_MODE": "false", "MLOPS_FEEDBACK_WAIT_MS": "0"}
    with running_service(use_case="bike_demand", state_dir=state, log_path=state / "serve.log", env=env) as url:
        yield url


def test_no_request_gets_a_server_error_or_an_undocumented_answer(service):
    """Each operation in turn, so that a failure names it; hypothesis shrinks it to a minimal request."""
    from hypothesis import given

    api = schemathesis.openapi.from_url(f"{service}/openapi.json")
    failures: dict[str, str] = {}
    calls: list[int] = []
    operations = [result.ok() for result in api.get_all_operations()]
    assert len(operations) >= 14  # the routes, the admin ones included: nothing left out of the schema

    for operation in operations:
        # Valid requests and invalid ones (wrong types, missing fields, out-of-range values), one stream.
        modes = [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE]
        strategy = operation.as_strategy(generation_mode=modes[0]) | operation.as_strategy(generation_mode=modes[1])

        @given(case=strategy)
        @settings(max_examples=40, deadline=None, suppress_health_check=list(HealthCheck), database=None)
        def fuzz(case: schemathesis.Case) -> None:
            answer = case.call_and_validate(base_url=service, headers={"X-Admin-Token": TOKEN}, checks=CHECKS)
            calls.append(answer.status_code)

        try:
            fuzz()
        except (Exception, BaseExceptionGroup) as err:  # noqa: BLE001 - gathered: every operation is tried
            failures[operation.label] = str(err)[:1500]
    # both kinds of answer were exercised: accepted requests and refused ones
    assert any(200 <= code < 300 for code in calls) and any(400 <= code < 500 for code in calls)
    assert not failures, "\n\n".join(f"{label}:\n{why}" for label, why in failures.items())
