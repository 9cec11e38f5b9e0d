"""The repository-task baseline on the real local model: one request, files applied, scored.

How often the 1.5B model solves a task is measured by `python -m eval.repo_bench`
(bench/results/repo-tasks-plain.json); this test checks what the benchmark relies on, on the
easiest task: the model's answer is read as files of the repository, the hidden tests run on
them in the sandbox, and the row says what it cost.
"""

from __future__ import annotations

import pytest

from eval.repo_baseline import plain_agent
from eval.repo_bench import run_repo_bench
from eval.repo_tasks import hidden_files, load_repo_tasks, visible_tests
from service.llm.models import chat_model
from service.settings import get_settings
from tools.sandbox import LocalSandbox

pytestmark = [pytest.mark.model, pytest.mark.slow]


async def test_the_baseline_answers_with_repository_files_that_get_scored() -> None:
    settings = get_settings().model_copy(update={"otel_exporter": "none"})
    task = next(t for t in load_repo_tasks() if t.id == "fix_cart_discount")
    agents = {"plain": plain_agent(chat_model(settings))}
    results = await run_repo_bench(agents, LocalSandbox(), tasks=[task], model=settings.model)

    [row] = results["tasks"]
    assert row["model_calls"] == 1 and row["tokens"] > 0
    assert not row["error"], row["error"]
    assert row["changed_files"], row["stop_reason"]
    assert all(path.startswith("shop/") for path in row["changed_files"]), row["changed_files"]
    visible = sum(text.count("\ndef test_") for text in visible_tests(task).values())
    hidden = sum(text.count("\ndef test_") for text in hidden_files(task).values())
    assert row["visible_passed"] + row["visible_failed"] == visible
    assert row["hidden_passed"] + row["hidden_failed"] == hidden
