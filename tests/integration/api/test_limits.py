"""Each limit answers with its documented status and code (see `service.api.app`'s table)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import httpx
import pytest
from redis.asyncio import Redis

from service.rate_limits import LimitStore
from service.settings import Settings
from tests.integration.api.conftest import MODEL_429_THRESHOLD, REDIS_URL, ApiServer
from tests.integration.api.test_facade import wait_for_status

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

GOAL = "Write add(a, b) returning the sum.\nExample: add(2, 3) == 5"


@pytest.fixture
async def gauges(api_server: ApiServer) -> AsyncIterator[LimitStore]:
    """The server's Redis gauges, reset afterwards so other tests are not throttled."""
    redis = Redis.from_url(REDIS_URL)
    store = LimitStore(Settings(redis_prefix=api_server.redis_prefix), redis)
    try:
        yield store
    finally:
        keys = [k async for k in redis.scan_iter(match=f"{api_server.redis_prefix}:model429:*")]
        keys.append(f"{api_server.redis_prefix}:inflight")
        await redis.delete(*keys)
        await store.close()


def assert_error(response: httpx.Response, status: int, code: str) -> None:
    assert response.status_code == status, response.text
    assert response.json()["error"]["code"] == code, response.text


async def test_missing_or_unknown_key_is_401(http: httpx.AsyncClient) -> None:
    assert_error(await http.get("/v1/tasks"), 401, "unauthorized")
    assert_error(
        await http.get("/v1/tasks", headers={"x-api-key": "wrong-key-123"}), 401, "unauthorized"
    )
    bearer = {"Authorization": "Bearer alice-key-0001"}
    assert (await http.get("/v1/tasks", headers=bearer)).status_code == 200
    # The native API refuses it too.
    assert (await http.post("/threads/search", json={})).status_code in (401, 403)


async def test_validation_and_unknown_routes_are_clear_json(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    response = await http.post("/v1/tasks", json={"goal": ""}, headers=api_server.headers("alice"))
    assert_error(response, 422, "validation_error")
    assert response.json()["error"]["details"][0]["loc"][-1] == "goal"
    assert_error(
        await http.get("/v1/nothing", headers=api_server.headers("alice")), 404, "not_found"
    )
    response = await http.get("/v1/tasks/not-a-uuid", headers=api_server.headers("alice"))
    assert_error(response, 422, "validation_error")


async def test_rate_limit_is_429_with_retry_after(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    dave = api_server.headers("dave")  # burst 3, 0.2 requests/s
    codes = [(await http.get("/v1/tasks", headers=dave)).status_code for _ in range(3)]
    assert codes == [200, 200, 200]
    response = await http.get("/v1/tasks", headers=dave)
    assert_error(response, 429, "rate_limited")
    assert int(response.headers["Retry-After"]) >= 1
    # Other tenants are not affected.
    assert (await http.get("/v1/tasks", headers=api_server.headers("bob"))).status_code == 200


async def test_active_task_cap_is_429_until_a_task_ends(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    carol = api_server.headers("carol")  # at most 1 running or waiting task
    first = await http.post("/v1/tasks", json={"goal": GOAL}, headers=carol)
    assert first.status_code == 201, first.text
    task_id = first.json()["task_id"]
    await wait_for_status(http, api_server, task_id, "carol", {"waiting_for_approval"})

    second = await http.post("/v1/tasks", json={"goal": GOAL}, headers=carol)
    assert_error(second, 429, "active_task_limit")
    assert "Retry-After" in second.headers

    approved = await http.post(
        f"/v1/tasks/{task_id}/approve", json={"approved": True}, headers=carol
    )
    assert approved.status_code == 200, approved.text
    await wait_for_status(http, api_server, task_id, "carol", {"completed"})
    third = await http.post(
        "/v1/tasks", json={"goal": GOAL, "options": {"approve": "deny"}}, headers=carol
    )
    assert third.status_code == 201, third.text
    await wait_for_status(http, api_server, third.json()["task_id"], "carol", {"completed"})


async def test_racing_submissions_take_the_last_slot_once(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    """Four submissions at once for carol's one slot, spread over both instances under Aegra."""
    carol = api_server.headers("carol")
    urls = [api_server.url, api_server.peer_url or api_server.url] * 4
    async with httpx.AsyncClient(timeout=90.0) as client:
        for url in set(urls):  # warm: the race is between the requests, not cold starts
            assert (await client.get(f"{url}/v1/tasks", headers=carol)).status_code == 200
        answers = await asyncio.gather(
            *(client.post(f"{url}/v1/tasks", json={"goal": GOAL}, headers=carol) for url in urls)
        )
    created = [a for a in answers if a.status_code == 201]
    assert len(created) == 1, [a.text for a in answers]
    for refused in (a for a in answers if a.status_code != 201):
        assert_error(refused, 429, "active_task_limit")

    task_id = created[0].json()["task_id"]
    await wait_for_status(http, api_server, task_id, "carol", {"waiting_for_approval"})
    answer = await http.post(f"/v1/tasks/{task_id}/approve", json={"approved": True}, headers=carol)
    assert answer.status_code == 200, answer.text
    await wait_for_status(http, api_server, task_id, "carol", {"completed"})


async def test_depth_over_three_is_refused_with_403(
    http: httpx.AsyncClient, api_server: ApiServer
) -> None:
    bob = api_server.headers("bob")
    deep = await http.post(
        "/v1/tasks", json={"goal": GOAL}, headers={**bob, "X-Strategos-Depth": "4"}
    )
    assert_error(deep, 403, "task_depth_exceeded")

    body = {"goal": GOAL, "options": {"approve": "deny"}}
    parent = await http.post("/v1/tasks", json=body, headers={**bob, "X-Strategos-Depth": "3"})
    assert parent.status_code == 201, parent.text
    assert parent.json()["depth"] == 3
    parent_id = parent.json()["task_id"]
    # A child of a depth-3 task is depth 4, whatever header the agent sends.
    child = {"goal": GOAL, "options": {"parent_task_id": parent_id}}
    assert_error(await http.post("/v1/tasks", json=child, headers=bob), 403, "task_depth_exceeded")
    # Another tenant's task cannot be named as a parent.
    alice = api_server.headers("alice")
    assert_error(await http.post("/v1/tasks", json=child, headers=alice), 404, "not_found")
    await wait_for_status(http, api_server, parent_id, "bob", {"completed"})


async def test_backpressure_is_429_with_retry_after(
    http: httpx.AsyncClient, api_server: ApiServer, gauges: LimitStore
) -> None:
    bob = api_server.headers("bob")
    # The model endpoint throttles us: new tasks are refused, reads still work.
    await gauges.record_model_429(MODEL_429_THRESHOLD)
    response = await http.post("/v1/tasks", json={"goal": GOAL}, headers=bob)
    assert_error(response, 429, "overloaded")
    assert response.headers["Retry-After"] == "10"
    assert (await http.get("/v1/tasks", headers=bob)).status_code == 200
    for key in [k async for k in gauges.redis.scan_iter(match=f"{gauges.prefix}:model429:*")]:  # type: ignore[union-attr]
        await gauges.redis.delete(key)  # type: ignore[union-attr]

    # The run backlog is over its threshold (50): same answer.
    for i in range(50):
        await gauges.run_started(f"fake-run-{i}")
    assert await gauges.queue_depth() == 50
    assert_error(await http.post("/v1/tasks", json={"goal": GOAL}, headers=bob), 429, "overloaded")
    for i in range(50):
        await gauges.run_finished(f"fake-run-{i}")
    ok = await http.post(
        "/v1/tasks", json={"goal": GOAL, "options": {"approve": "deny"}}, headers=bob
    )
    assert ok.status_code == 201, ok.text
    await wait_for_status(http, api_server, ok.json()["task_id"], "bob", {"completed"})
