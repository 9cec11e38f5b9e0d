"""Reflexion on a scripted model: a failed attempt is criticised, and the critique is used.

Real graph, gateway, ledger and sandbox (the repository's pytest suite runs in it), episodic
memory on an in-process Qdrant with the hash embedder; the delivery folder is the test's own.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from memory.embeddings import HashEmbedder
from memory.episodic import EpisodicMemory
from memory.scoring import ScoringParams
from nodes.inbox import request_of
from nodes.reflect import RETRY_HEADER
from service.llm.scripted import ScriptedChatModel
from service.team_deps import compile_reflexion_agent
from tests.conftest import scripted
from tests.integration.react.scripted_loop import REPO_FILES, REPO_GOAL, REPO_PATCH, call
from tests.integration.test_team_scripted import gateway_in
from tools.gateway import ToolGateway

WRONG_PATCH = REPO_PATCH.replace("+    return a + b", "+    return a * b")
MARK = "Replace the multiplication in pkg/calc.py with an addition."
CRITIQUE = {"what_failed": "test_add failed: add(2, 3) returned 6, not 5.", "do_differently": MARK}
CRITIC = {"role": "reflect", "reply": CRITIQUE}
MULTIPLY: list[dict[str, Any]] = [
    {
        "role": "react",
        "when": ['"action": "modified"'],
        "tool_calls": [call("finish", summary="*")],
    },
    {"role": "react", "tool_calls": [call("apply_patch", patch=WRONG_PATCH)]},
]
"""A worker that multiplies, whatever it was told."""
LEARNS: list[dict[str, Any]] = [
    {
        "role": "react",
        "when": [MARK, '"action": "modified"'],
        "tool_calls": [call("finish", summary="add adds now")],
    },
    {"role": "react", "when": [MARK], "tool_calls": [call("apply_patch", patch=REPO_PATCH)]},
]
"""A worker that follows the critique once it is in its opening message."""


async def run(
    tmp_path: Path, rules: list[dict[str, Any]], thread: str, memory: EpisodicMemory | None = None
) -> tuple[Any, TeamContext, dict[str, Any], ScriptedChatModel]:
    model = scripted(rules)
    model.record = True
    ctx = TeamContext(
        model=model,
        gateway=await gateway_in(tmp_path),
        use_memory=memory is not None,
        memory=memory,
        approve="ask",
        out_dir=str(tmp_path / "out"),
    )
    graph = compile_reflexion_agent(InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": thread}, "recursion_limit": 100}
    await graph.ainvoke({"goal": REPO_GOAL, "repo_files": dict(REPO_FILES)}, config, context=ctx)
    return graph, ctx, config, model


def openings(model: ScriptedChatModel) -> list[str]:
    """The opening message of each attempt, as its worker's first model call saw it."""
    firsts = [texts for texts in model.recorded if texts[0].startswith("# role: react")]
    return list(dict.fromkeys(texts[1] for texts in firsts))


async def executed_repo_tests(gateway: ToolGateway, thread_id: str) -> int:
    """Test-suite runs that really ran (a replay from the ledger schedules nothing)."""
    scheduled = await gateway.ledger.events(thread_id, 0, 10_000, kinds=["ActivityScheduled"])
    return sum(1 for event in scheduled if event.data.get("tool") == "run_repo_tests")


async def test_a_critique_of_the_failed_attempt_leads_to_a_delivered_fix(tmp_path: Path) -> None:
    # the floor is calibrated for e5's high cosines; the hash embedder's are lower
    memory = EpisodicMemory(
        QdrantClient(":memory:"), HashEmbedder(dim=128), params=ScoringParams(similarity_floor=0.0)
    )
    graph, ctx, config, model = await run(tmp_path, [CRITIC, *LEARNS, *MULTIPLY], "rx-ok", memory)

    first, second = openings(model)
    assert MARK not in first and RETRY_HEADER not in first
    assert RETRY_HEADER in second and "Attempt 1 (0 passed, 1 failed" in second
    assert MARK in second
    critic_prompt = "\n".join(next(t for t in model.recorded if t[0].startswith("# role: reflect")))
    assert "assert 6 == 5" in critic_prompt  # the critic saw the failing test's output
    assert "+    return a * b" in critic_prompt  # and the patch that failed

    question = request_of((await graph.aget_state(config)).interrupts[0].value)
    assert question is not None
    assert "+    return a + b" in question["patch"] and "a * b" not in question["patch"]
    assert question["tests"].startswith("1 passed, 0 failed")

    final = await graph.ainvoke(Command(resume={"type": "accept"}), config, context=ctx)

    assert final["report"]["status"] == "delivered"
    assert final["attempt"] == 2 and [r["attempt"] for r in final["reflections"]] == [1]
    out = Path(final["report"]["destination"])
    assert (out / "files" / "pkg" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    lessons = [hit.record.text for hit in memory.lessons(REPO_GOAL, "local")]
    assert any(MARK in text for text in lessons)  # a later similar task recalls it
    assert await executed_repo_tests(ctx.gateway, "rx-ok") == 2  # the critic read the ledger


async def test_when_every_attempt_fails_nothing_is_delivered_and_the_report_says_why(
    tmp_path: Path,
) -> None:
    graph, _, config, model = await run(tmp_path, [CRITIC, *MULTIPLY], "rx-fail")

    state = await graph.aget_state(config)
    assert not state.interrupts and not state.next  # no question: there is nothing to approve
    report = state.values["report"]
    assert report["status"] == "not_delivered"
    assert report["problem"].startswith(
        "not delivered: no attempt passed the repository's tests (3 of 3)"
    )
    assert "0 passed, 1 failed" in report["problem"]
    assert "assert 6 == 5" in report["test_output"]
    assert report["attempts"] == 3 and len(openings(model)) == 3
    assert [r["attempt"] for r in state.values["reflections"]] == [1, 2]
    third = openings(model)[2]
    assert "Attempt 1 (" in third and "Attempt 2 (" in third
    assert not any((tmp_path / "out").rglob("patch.diff"))
    assert state.values["messages"][-1].content.startswith("Not delivered: no attempt passed")
