"""The execution-first team end to end on the scripted model, the real sandbox and ledger.

Candidates differ by their sampling seed (the greedy answer has seed 0; batch b's samples have
seeds b*100+1 …), so each test scripts which candidate says what and checks what the team
delivers and how many model calls it spent.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from nodes.inbox import request_of
from service.settings import Settings
from service.team_deps import compile_selection
from tests.conftest import scripted
from tests.integration.test_team_scripted import gateway_in

GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
RIGHT = "def add(a, b):\n    return a + b\n"
WRONG = "def add(a, b):\n    return a - b\n"
ODD = "def add(a, b):\n    return abs(a) + abs(b)\n"


def fenced(code: str) -> str:
    return f"Here it is:\n```python\n{code}```\n"


def coder(code: str, seed: int | None = None, **extra: Any) -> dict[str, Any]:
    rule: dict[str, Any] = {"role": "coder", "reply": fenced(code), **extra}
    if seed is not None:
        rule["seed"] = seed
    return rule


async def run(
    tmp_path: Path, rules: list[dict[str, Any]], **options: Any
) -> tuple[dict[str, Any], Any]:
    model = scripted(rules)
    graph = compile_selection(InMemorySaver(), options.pop("settings", None))
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        approve=options.pop("approve", "auto"),
        use_memory=False,
        gateway=await gateway_in(tmp_path),
        **options,
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "sel"}, "recursion_limit": 100}
    await graph.ainvoke({"goal": GOAL}, config, context=ctx)
    return (await graph.aget_state(config)).values, ctx


async def test_candidates_that_all_agree_are_delivered_with_one_call_each(tmp_path: Path) -> None:
    state, _ = await run(tmp_path, [coder(RIGHT)])
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 5  # the greedy answer and 4 samples, nothing else
    assert state["report"]["tests"]["spec_passed"] == 1


async def test_the_goals_examples_drop_a_wrong_greedy_answer(tmp_path: Path) -> None:
    state, _ = await run(tmp_path, [coder(WRONG, seed=0), coder(RIGHT)])
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["verdict"]["spec_passed"] == 1
    assert state["usage"]["model_calls"] == 5


async def test_disagreeing_survivors_are_told_apart_by_the_testers_inputs(tmp_path: Path) -> None:
    rules = [
        coder(ODD, seed=102),
        coder(RIGHT),
        {"role": "tester", "reply": {"calls": ["add(-1, -2)", "add(0, 0)"]}},
    ]
    state, _ = await run(tmp_path, rules, settings=Settings(sample_inputs=8))
    assert state["inputs"] == ["add(-1, -2)", "add(0, 0)"]
    assert state["verdict"]["cluster_sizes"] == [4, 1]
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 6  # 5 candidates and one call for inputs


async def test_without_the_tester_inputs_mutated_from_the_examples_tell_candidates_apart(
    tmp_path: Path,
) -> None:
    # The greedy answer is wrong for negative numbers, which the goal's one example never shows.
    rules = [coder(ODD, seed=0), coder(RIGHT)]
    settings = Settings(sample_inputs=0)
    state, _ = await run(tmp_path, rules, settings=settings)
    assert state["verdict"]["cluster_sizes"] == [4, 1]
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 5  # no tester call
    # Without any inputs the five agree on the example, and the greedy answer is delivered.
    blind = Settings(sample_inputs=0, mutated_inputs=0)
    (tmp_path / "blind").mkdir()
    state, _ = await run(tmp_path / "blind", rules, settings=blind)
    assert state["verdict"]["cluster_sizes"] == [5]
    assert (tmp_path / "blind" / "out" / "solution.py").read_text().strip() == ODD.strip()


async def test_a_close_call_is_settled_by_one_question_to_the_reviewer(tmp_path: Path) -> None:
    rules = [
        coder(ODD, seed=102),
        coder(ODD, seed=103),
        coder("no code at all", seed=104),
        coder(RIGHT),
        {"role": "tester", "reply": {"calls": ["add(-1, -2)"]}},
        {"role": "reviewer", "when": ["Output A: -3"], "reply": {"answer": "A"}},
    ]
    state, _ = await run(tmp_path, rules, settings=Settings(sample_inputs=8, widen_rounds=0))
    assert state["verdict"]["cluster_sizes"] == [2, 2]
    assert len(state["asked"]) == 1
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 7  # 5 candidates, the inputs, one question


async def test_a_tie_draws_more_samples_into_the_batch_instead_of_asking(tmp_path: Path) -> None:
    rules = [
        coder(ODD, seed=102),
        coder(ODD, seed=103),
        coder("no code at all", seed=104),
        coder(RIGHT),
    ]
    state, _ = await run(tmp_path, rules)  # the defaults: no tester call, one widening
    assert state["widened"] == [1]
    assert state["batches"] == ["sample"]  # the same attempt, judged twice
    assert state["verdict"]["cluster_sizes"] == [6, 2]  # 2 + 4 new votes against 2
    assert state["asked"] == []
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 9  # 5 candidates, 4 more, no question


async def test_the_cascade_delivers_a_greedy_answer_that_passes_with_one_call(
    tmp_path: Path,
) -> None:
    state, _ = await run(tmp_path, [coder(RIGHT)], settings=Settings(sample_when="unsure"))
    assert state["report"]["status"] == "delivered"
    assert state["usage"]["model_calls"] == 1
    assert state.get("widened", []) == []


async def test_the_cascade_samples_when_the_greedy_answer_fails_an_example(tmp_path: Path) -> None:
    rules = [coder(WRONG, seed=0), coder(RIGHT)]
    state, _ = await run(tmp_path, rules, settings=Settings(sample_when="unsure"))
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["widened"] == [1]
    assert state["batches"] == ["sample"]  # one attempt: the samples joined the greedy answer
    assert state["usage"]["model_calls"] == 5  # the greedy answer, then 4 samples


async def test_the_cascade_samples_when_the_greedy_answer_acts_oddly_beyond_the_examples(
    tmp_path: Path,
) -> None:
    # Right on the example, but a float for negative numbers: the examples return ints.
    odd = "def add(a, b):\n    return a + b if a >= 0 else float(a + b)\n"
    rules = [coder(odd, seed=0), coder(RIGHT)]
    state, _ = await run(tmp_path, rules, settings=Settings(sample_when="unsure"))
    assert state["widened"] == [1]
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["usage"]["model_calls"] == 5


async def test_a_failing_batch_is_repaired_from_its_failure_verbatim(tmp_path: Path) -> None:
    rules = [
        {
            "role": "coder_repair",
            "when": ["Failing call: add(2, 3)", "Expected: 5", "Actual: -1"],
            "reply": fenced(RIGHT),
        },
        coder(WRONG),
    ]
    state, _ = await run(tmp_path, rules)
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    assert state["batches"] == ["sample", "repair"]
    assert state["usage"]["model_calls"] == 6  # 5 identical wrong candidates, one repair


async def test_a_model_that_never_writes_code_stops_at_the_attempt_limit(tmp_path: Path) -> None:
    rules = [{"role": "coder", "reply": "I would rather not."}]
    state, _ = await run(tmp_path, rules, max_iterations=2)
    report = state["report"]
    assert report["status"] == "not_delivered"
    assert report["stop_reason"] == "no valid model output after 2 attempts"
    assert report["model_calls"] == 10


async def test_a_human_rejection_starts_a_fresh_round_with_the_comment(tmp_path: Path) -> None:
    from langgraph.types import Command

    rules = [
        coder(RIGHT, when=["Use the name total"], seed=None),
        coder(RIGHT.replace("a + b", "b + a")),
        {"role": "tester", "reply": {"calls": ["add(1, 2)"]}},
    ]
    model = scripted(rules)
    graph = compile_selection(InMemorySaver())
    ctx = TeamContext(
        model=model,
        out_dir=str(tmp_path / "out"),
        approve="ask",
        use_memory=False,
        gateway=await gateway_in(tmp_path),
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "h"}, "recursion_limit": 100}
    first = await graph.ainvoke({"goal": GOAL}, config, context=ctx)
    assert "__interrupt__" in first
    assert not (tmp_path / "out").exists()
    await graph.ainvoke(
        Command(resume={"approved": False, "comment": "Use the name total"}), config, context=ctx
    )
    again = await graph.ainvoke(Command(resume={"approved": True}), config, context=ctx)
    state = (await graph.aget_state(config)).values
    assert "__interrupt__" not in again
    assert state["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text().strip() == RIGHT.strip()
    events = await ctx.gateway.ledger.events("h", 0, 1000)
    kinds = [e.kind for e in events]
    assert kinds.count("ApprovalRequested") == 2 and kinds.count("ApprovalRejected") == 1
    assert kinds.count("ApprovalGiven") == 1


async def test_model_calls_are_counted_by_node_and_tenant_for_prometheus(tmp_path: Path) -> None:
    from prometheus_client import REGISTRY

    def calls(node: str) -> float:
        labels = {"node": node, "tenant": "acme"}
        return REGISTRY.get_sample_value("strategos_model_calls_total", labels) or 0.0

    before = calls("sample")
    await run(tmp_path, [coder(RIGHT)], tenant="acme")
    assert calls("sample") - before == 5  # the greedy answer and 4 sampled choices


EVIL = 'import os\n\n\ndef add(a, b):\n    os.system("rm -rf /")\n    return a + b\n'


async def test_code_that_trips_the_honeypot_goes_out_only_after_a_person_saw_the_flag(
    tmp_path: Path,
) -> None:
    state, _ = await run(tmp_path / "auto", [coder(EVIL)])  # approval 'auto'
    assert state["report"]["status"] == "not_delivered"
    assert "tripped the honeypot" in state["report"]["delivery_error"]
    assert any(flag.startswith("honeypot:") for flag in state["report"]["flags"])
    assert not (tmp_path / "auto" / "out").exists()

    graph = compile_selection(InMemorySaver())
    ctx = TeamContext(
        model=scripted([coder(EVIL)]),
        out_dir=str(tmp_path / "ask" / "out"),
        approve="ask",
        use_memory=False,
        gateway=await gateway_in(tmp_path / "ask"),
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "hp"}, "recursion_limit": 100}
    paused = await graph.ainvoke({"goal": GOAL}, config, context=ctx)
    request = request_of(paused["__interrupt__"][0].value)
    assert request is not None
    assert any(flag.startswith("honeypot:") for flag in request["flags"])
    assert 'os.system("rm -rf /")' in request["contents"]["solution.py"]
