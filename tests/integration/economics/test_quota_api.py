"""The task API and the native LangGraph API refuse a tenant over its quota: 429 or 403.

A served `langgraph dev` with the scripted model; the tenant's hour is spent beforehand in the
server's Redis, as another instance of the deployment would have spent it.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from service.budget_redis import RedisLedger
from service.quotas import quota_for, tenant_pools
from service.rate_limits import redis_client
from service.settings import Settings
from tests.integration.api.conftest import REDIS_URL, ApiServer, run_api_server
from tests.integration.test_langgraph_server import approval_flow_rules

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

KEYS = {"busy": "busy-key-0001", "nobody": "nobody-key-0002", "fresh": "fresh-key-0003"}
LIMITS = {"busy": {"steps_per_hour": 3}, "nobody": {"tokens_per_day": 0}}
GOAL = {"goal": "Write add(a, b) returning the sum.\nExample: add(2, 3) == 5"}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ApiServer]:
    env = {
        "STRATEGOS_API_KEYS": ",".join(f"{t}:{k}" for t, k in KEYS.items()),
        "STRATEGOS_TENANT_LIMITS": json.dumps(LIMITS),
    }
    tmp = tmp_path_factory.mktemp("quota_api")
    with run_api_server(tmp, approval_flow_rules(), extra_env=env) as running:
        yield running


def headers(tenant: str) -> dict[str, str]:
    return {"x-api-key": KEYS[tenant]}


async def spend_the_hour(server: ApiServer, tenant: str) -> None:
    settings = Settings(redis_prefix=server.redis_prefix, tenant_limits=LIMITS)
    redis = redis_client(REDIS_URL)
    ledger = RedisLedger(redis, server.redis_prefix)
    pools = tenant_pools(quota_for(settings, tenant), tenant, time.time())
    room, blocker = await ledger.reserve(
        pools, rid="elsewhere", prompt=10, want=10, n=3, floor=1, ttl_s=600.0, role="coder"
    )
    assert (room, blocker) == (10, 0)
    await redis.aclose()


async def native_run(http: httpx.AsyncClient, tenant: str) -> httpx.Response:
    thread = await http.post("/threads", json={}, headers=headers(tenant))
    assert thread.status_code == 200, thread.text
    return await http.post(
        f"/threads/{thread.json()['thread_id']}/runs",
        json={"assistant_id": "coding_team", "input": GOAL},
        headers=headers(tenant),
    )


async def test_no_quota_is_403_on_both_apis(server: ApiServer, tmp_path: Path) -> None:
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
        response = await http.post("/v1/tasks", json=GOAL, headers=headers("nobody"))
        assert response.status_code == 403, response.text
        assert response.json()["error"]["code"] == "no_quota"
        assert "has no model quota" in response.json()["error"]["message"]
        native = await native_run(http, "nobody")
        assert native.status_code == 403, native.text
        assert "has no model quota" in native.text


async def test_a_spent_hour_is_429_with_retry_after_on_both_apis(server: ApiServer) -> None:
    await spend_the_hour(server, "busy")
    async with httpx.AsyncClient(base_url=server.url, timeout=60.0) as http:
        response = await http.post("/v1/tasks", json=GOAL, headers=headers("busy"))
        assert response.status_code == 429, response.text
        error = response.json()["error"]
        assert error["code"] == "quota_exceeded"
        assert error["message"].startswith("tenant busy's step quota for this hour (3 steps)")
        assert 1 <= int(response.headers["Retry-After"]) <= 3600
        native = await native_run(http, "busy")
        assert native.status_code == 429, native.text
        assert 1 <= int(native.headers["Retry-After"]) <= 3600
        # another tenant is not affected, and its task shows who spent what
        fresh = await http.post("/v1/tasks", json=GOAL, headers=headers("fresh"))
        assert fresh.status_code == 201, fresh.text
        task = await waiting(http, fresh.json()["task_id"], "fresh")
        by_role = task["usage"]["by_role"]
        assert {"coder", "tester"} <= set(by_role)
        usage = task["usage"]
        assert sum(by_role.values()) == usage["prompt_tokens"] + usage["completion_tokens"]


async def waiting(http: httpx.AsyncClient, task_id: str, tenant: str) -> dict[str, Any]:
    """The task once it waits for approval (the script's team gets there in seconds)."""
    for _ in range(240):
        task: dict[str, Any] = (
            await http.get(f"/v1/tasks/{task_id}", headers=headers(tenant))
        ).json()
        if task["status"] == "waiting_for_approval":
            return task
        assert task["status"] in {"queued", "running"}, task
        await asyncio.sleep(0.5)
    raise AssertionError(f"task {task_id} never waited for approval")
