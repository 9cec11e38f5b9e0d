"""The ReAct worker's pure parts: routes, the tools it offers, limits, what the model sees."""

from __future__ import annotations

from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage, RemoveMessage, ToolMessage

from graphs.deps import Limits
from graphs.react_state import ReactState, RepoState, apply_changes
from nodes.loop_guard import Verdict
from nodes.react_support import (
    FINISH,
    after_agent,
    after_tools,
    backtrack_messages,
    changed_files,
    finish_outcome,
    ledger_call_id,
    name_of,
    offered,
    opening,
    over_limits,
    visible,
)
from nodes.repo_steps import after_tests
from tools.builtin import default_registry

STOPPED: dict[str, Any] = {"status": "stopped", "reason": "x", "summary": ""}


@pytest.mark.parametrize(
    ("state", "after_model", "after_calls"),
    [
        ({}, "tools", "agent"),
        ({"outcome": STOPPED}, "__end__", "__end__"),
    ],
)
def test_the_loop_ends_exactly_when_an_outcome_is_set(
    state: dict[str, Any], after_model: str, after_calls: str
) -> None:
    assert after_agent(ReactState(**state)) == after_model  # type: ignore[typeddict-item]
    assert after_tools(ReactState(**state)) == after_calls  # type: ignore[typeddict-item]


@pytest.mark.parametrize(
    ("approve", "files", "route"),
    [
        ("ask", {"a.py": "2"}, "approval"),
        ("ask", {"a.py": "1"}, "deliver"),  # nothing changed: report, ask nobody
        ("auto", {"a.py": "2"}, "deliver"),
        ("deny", {"a.py": "2"}, "deliver"),
    ],
)
def test_a_human_is_asked_only_about_a_patch_under_the_ask_policy(
    approve: str, files: dict[str, str], route: str
) -> None:
    state = RepoState(goal="g", repo_files={"a.py": "1"}, files=files)  # type: ignore[typeddict-item]
    assert after_tests(state, approve) == route


def test_the_worker_offers_the_catalogue_the_policy_allows_then_finish() -> None:
    definitions = default_registry().tool_definitions()
    names = [name_of(d) for d in offered(definitions)]
    assert names[:4] == ["list_files", "read_file", "apply_patch", "write_file"]
    assert names[-1] == FINISH
    assert "deliver_files" not in names and "deliver_patch" not in names
    without_writes = [d for d in definitions if name_of(d) not in ("apply_patch", "write_file")]
    assert "apply_patch" not in [name_of(d) for d in offered(without_writes)]


def test_a_ledger_call_id_depends_on_the_turn_not_on_the_models_random_id() -> None:
    assert ledger_call_id("", 3, 0, "apply_patch") == "react-3-0-apply_patch"
    assert ledger_call_id("round-2", 3, 0, "apply_patch") != ledger_call_id("", 3, 0, "apply_patch")


def test_limits_stop_the_loop_with_a_reason() -> None:
    limits = Limits(max_steps=5, max_iterations=1, token_budget=100)
    assert over_limits(ReactState(steps=4), limits) is None  # type: ignore[typeddict-item]
    assert over_limits(ReactState(steps=5), limits) == (  # type: ignore[typeddict-item]
        "step limit reached: 5 model turns (max_steps 5)"
    )
    spent = {"model_calls": 1, "prompt_tokens": 90, "completion_tokens": 10}
    assert over_limits(ReactState(steps=1, usage=spent), limits) == (  # type: ignore[typeddict-item]
        "token budget spent: 100 of 100 tokens"
    )


def test_finish_without_a_summary_is_an_error_the_model_can_fix() -> None:
    assert finish_outcome({"summary": "done"}) == {
        "status": "finished",
        "reason": "the agent finished",
        "summary": "done",
    }
    problem = finish_outcome({})
    assert isinstance(problem, str) and "summary" in problem


def turn(n: int) -> list[Any]:
    call = {"name": "read_file", "args": {"path": f"f{n}.py"}, "id": f"c{n}"}
    return [
        AIMessage("", tool_calls=[call], id=f"a{n}"),
        ToolMessage("x" * 2000, tool_call_id=f"c{n}", id=f"t{n}"),
    ]


def test_the_model_sees_the_goal_and_the_newest_whole_turns() -> None:
    goal = opening("fix it", {"a.py": "x"})
    messages = [goal, *(m for n in range(10) for m in turn(n))]
    shown = visible(messages, budget=2000)
    assert shown[0] is goal and "a.py" in str(goal.content)
    assert isinstance(shown[1], AIMessage)  # never a tool result without its call
    assert shown[-1].id == "t9" and len(shown) < len(messages)


def test_a_backtrack_removes_the_turns_since_the_last_one_and_leaves_a_note() -> None:
    goal = opening("fix it", {})
    goal.id = "g"
    messages = [goal, *turn(1), *turn(2)]
    verdict = Verdict("backtrack", "repeat", "repeated the same call 4 times with the same result")
    update = backtrack_messages(messages, verdict)
    removed = [m.id for m in update if isinstance(m, RemoveMessage)]
    assert removed == ["a1", "t1", "a2", "t2"]
    assert isinstance(update[-1], HumanMessage)
    assert "You repeated the same call 4 times" in str(update[-1].content)
    again = backtrack_messages([*messages[:1], update[-1], *turn(3)], verdict)
    assert [m.id for m in again if isinstance(m, RemoveMessage)] == ["a3", "t3"]


def test_file_changes_keep_empty_files_and_delete_with_none() -> None:
    before = {"pkg/__init__.py": "", "a.py": "1", "gone.py": "x"}
    after = {"pkg/__init__.py": "", "a.py": "2", "new.py": ""}
    changes = changed_files(before, after)
    assert changes == {"a.py": "2", "new.py": "", "gone.py": None}
    assert apply_changes(before, changes) == after
