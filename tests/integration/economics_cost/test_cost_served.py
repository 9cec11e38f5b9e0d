"""A served task's cost: the task API's view and the tenant's cost counter on /metrics.

One `strategos serve` instance (Aegra over the machine's PostgreSQL and Redis) with the scripted
model priced through `STRATEGOS_MODEL_PRICES`, metrics on.
"""

from __future__ import annotations

import json
import time
import uuid
from pathlib import Path

import httpx
import pytest

from tests.conftest import cases_reply, coder_reply, review_reply, write_script
from tests.integration.aegra import harness

pytestmark = pytest.mark.slow

KEY = "cost-tenant-key-0001"
GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
PRICES = {"scripted": {"prompt_per_mtok": 1000.0, "completion_per_mtok": 4000.0}}


def _finished(http: httpx.Client, task_id: str) -> dict[str, object]:
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        view = http.get(f"/v1/tasks/{task_id}").json()
        if view["status"] in {"completed", "failed", "cancelled"}:
            return dict(view)
        time.sleep(0.5)
    raise AssertionError(f"task {task_id} did not finish: {view}")


def _cost_metric(text: str, tenant: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith("strategos_model_cost_usd_total{") and f'tenant="{tenant}"' in line
    )


def test_the_task_view_and_metrics_show_the_tasks_cost(tmp_path: Path) -> None:
    script = write_script(
        tmp_path / "script.json",
        [
            {"role": "coder", "reply": coder_reply("def add(a, b):\n    return a + b\n")},
            {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
            {"role": "reviewer", "reply": review_reply()},
        ],
    )
    prefix = f"strategos-test:{uuid.uuid4().hex[:8]}:"
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp_path, database_url, script, prefix)
        env.update(
            STRATEGOS_API_KEYS=f"payer:{KEY}",
            STRATEGOS_MODEL_PRICES=json.dumps(PRICES),
            STRATEGOS_METRICS="true",
        )
        try:
            with harness.serving("a", tmp_path, env) as instance:
                with httpx.Client(
                    base_url=instance.url, headers={"x-api-key": KEY}, timeout=30
                ) as http:
                    created = http.post(
                        "/v1/tasks", json={"goal": GOAL, "options": {"approve": "auto"}}
                    )
                    assert created.status_code == 201, created.text
                    done = _finished(http, created.json()["task_id"])
                    metrics = httpx.get(f"{instance.url}/metrics", timeout=30).text
        finally:
            harness.clean_redis(prefix)
    usage = done["usage"]
    assert isinstance(usage, dict)
    expected = (usage["prompt_tokens"] * 1000 + usage["completion_tokens"] * 4000) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected)
    result = done["result"]
    assert isinstance(result, dict) and result["cost_usd"] == pytest.approx(expected, abs=1e-6)
    assert _cost_metric(metrics, "payer") == pytest.approx(expected)
