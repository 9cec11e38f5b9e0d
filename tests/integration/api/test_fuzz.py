"""Schemathesis against the façade's published OpenAPI: no 5xx in over 1,000 requests.

Requests go to the live server (the routes drive the LangGraph server they are mounted in):
schema-valid and schema-violating cases, with the fuzz tenant's key, no key or a wrong key, and
path ids that are random or a real task of the tenant, so the deep paths are exercised too.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

from tests.integration.api.conftest import ApiServer

pytestmark = [pytest.mark.slow, pytest.mark.timeout(900)]

MIN_REQUESTS = 1000


def _finished_task(server: ApiServer) -> str:
    """A task of the fuzz tenant that has ended (so it does not hold the tenant's one slot)."""
    headers = server.headers("fuzz")
    created = httpx.post(
        f"{server.url}/v1/tasks",
        json={"goal": "Write add(a, b).\nExample: add(2, 3) == 5", "options": {"approve": "deny"}},
        headers=headers,
        timeout=60,
    )
    assert created.status_code == 201, created.text
    task_id: str = created.json()["task_id"]
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        task = httpx.get(f"{server.url}/v1/tasks/{task_id}", headers=headers, timeout=30).json()
        if task["status"] in {"completed", "failed"}:
            return task_id
        time.sleep(0.3)
    pytest.fail(f"fuzz seed task did not finish:\n{server.tail()}")


def test_no_server_errors_in_generated_requests(api_server: ApiServer) -> None:
    spec = httpx.get(f"{api_server.url}/v1/openapi.json", timeout=30)
    assert spec.status_code == 200
    paths = spec.json()["paths"]
    assert {"/v1/tasks", "/v1/tasks/{task_id}", "/v1/tasks/{task_id}/approve"} <= set(paths)
    assert "/v1/tasks/{task_id}/events" in paths
    assert {"/v1/dead-letters", "/v1/dead-letters/{letter_id}/replay"} <= set(paths)
    assert all(path.startswith("/v1/") for path in paths), "the spec is the task API's alone"

    schema = schemathesis.openapi.from_url(f"{api_server.url}/v1/openapi.json")
    task_id = _finished_task(api_server)
    cases = st.one_of(
        schema.as_strategy(GenerationMode.POSITIVE), schema.as_strategy(GenerationMode.NEGATIVE)
    )
    keys = st.sampled_from(
        [api_server.headers("fuzz")] * 6 + [{}, {"x-api-key": "not-a-key"}]  # mostly valid
    )
    statuses: Counter[int] = Counter()
    failures: list[str] = []
    session = requests.Session()

    @settings(
        max_examples=1150,
        database=None,
        deadline=None,
        phases=[Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=cases, headers=keys, real=st.booleans())
    def run(case: Any, headers: dict[str, str], real: bool) -> None:
        if real and case.path_parameters and "task_id" in case.path_parameters:
            case.path_parameters["task_id"] = task_id
        try:
            response = case.call(
                base_url=api_server.url, session=session, headers=headers, timeout=60
            )
        except (requests.exceptions.InvalidHeader, ValueError, UnicodeError):
            return  # the client could not even encode this case: nothing reached the server
        statuses[response.status_code] += 1
        if response.status_code >= 500:
            failures.append(
                f"{response.status_code} {case.method} {case.formatted_path} "
                f"{case.body!r:.200} -> {response.text[:300]}"
            )

    run()
    total = sum(statuses.values())
    assert not failures, "\n".join(failures[:10]) + "\n" + api_server.tail()
    assert total >= MIN_REQUESTS, statuses
    print(f"{total} requests: {dict(sorted(statuses.items()))}")
