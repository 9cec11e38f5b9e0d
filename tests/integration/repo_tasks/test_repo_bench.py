"""The repository-task benchmark on the real sandbox, the baseline on the scripted model.

What a user of the benchmark notices: a right answer is counted solved and a wrong one not, an
agent that crashes is a row with its error (the run goes on), the results file is written after
each task and an interrupted run is not repeated, and the table shows one row per agent.
"""

from __future__ import annotations

import json
from pathlib import Path

from eval.repo_baseline import plain_agent
from eval.repo_bench import AgentResult, markdown_table, run_repo_bench
from eval.repo_tasks import load_repo_tasks
from tests.conftest import scripted
from tools.sandbox import LocalSandbox

TASKS = {task.id: task for task in load_repo_tasks()}
CHOSEN = [TASKS["fix_cart_discount"], TASKS["fix_reorder_level"]]
PRICING_FIX = """`shop/pricing.py`
```python
def round_cents(amount):
    return round(amount + 1e-9, 2)


def apply_discount(amount, percent):
    if not 0 <= percent <= 100:
        raise ValueError("percent must be between 0 and 100")
    return round_cents(amount * (100 - percent) / 100)
```"""
WRONG_ORDERS = "`inventory/orders.py`\n```python\ndef reorder_list(stock):\n    return []\n```"


async def test_the_baseline_is_scored_by_hidden_tests_and_the_run_resumes(tmp_path: Path) -> None:
    model = scripted(
        [
            {"role": "repo_baseline", "when": ["shop/pricing.py"], "reply": PRICING_FIX},
            {"role": "repo_baseline", "when": ["inventory/orders.py"], "reply": WRONG_ORDERS},
        ]
    )
    calls: list[str] = []

    async def crashing(goal: str, files: dict[str, str]) -> AgentResult:
        calls.append(goal)
        raise RuntimeError("the model server went away")

    out = tmp_path / "repo-bench.json"
    agents = {"plain": plain_agent(model), "crashing": crashing}
    sandbox = LocalSandbox()
    results = await run_repo_bench(agents, sandbox, tasks=CHOSEN, model="scripted", out=out)

    rows = {(row["agent"], row["task_id"]): row for row in results["tasks"]}
    solved = rows[("plain", "fix_cart_discount")]
    assert solved["solved"] and solved["changed_files"] == ["shop/pricing.py"]
    assert solved["model_calls"] == 1 and solved["tokens"] > 0
    wrong = rows[("plain", "fix_reorder_level")]
    assert not wrong["solved"] and wrong["visible_failed"] >= 1 and wrong["failures"]
    crashed = rows[("crashing", "fix_cart_discount")]
    assert not crashed["solved"] and crashed["error"] == "RuntimeError: the model server went away"
    assert crashed["stop_reason"] == "error"

    saved = json.loads(out.read_text())
    assert saved["dataset"] == "repo_tasks" and len(saved["tasks"]) == 4
    assert {t["agent"]: t["solved"] for t in saved["totals"]} == {"plain": 1, "crashing": 0}
    table = markdown_table(saved)
    assert "| plain | 1/2 | 1/2 | - | - | 2 |" in table
    assert "| crashing | 0/2 |" in table

    again = await run_repo_bench(agents, sandbox, tasks=CHOSEN, model="scripted", out=out)
    assert len(calls) == 2 and model.calls == 2
    assert again["totals"] == saved["totals"]
