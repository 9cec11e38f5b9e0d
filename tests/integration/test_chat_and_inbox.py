"""Chat input and Agent Inbox answers on the real graphs (in process, scripted model).

What Agent Chat UI and Agent Inbox send: a `messages` input instead of a goal, and the
answer to the approval as a list of one `HumanResponse`. Each test checks what the user sees:
the goal the team worked on, the final chat reply, and what was (not) delivered.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from langchain_core.messages import AIMessage, HumanMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import TeamContext
from graphs.state import InvalidTaskInputError
from nodes.inbox import EDIT_REFUSED, request_of
from service.team_deps import compile_pipeline, compile_selection
from tests.conftest import cases_reply, coder_reply, review_reply, scripted
from tests.integration.test_team_scripted import ADD_GOAL, RIGHT_ADD, gateway_in

RULES = [
    {"role": "coder", "when": ["add a docstring"], "reply": coder_reply(RIGHT_ADD, "again")},
    {"role": "coder", "reply": coder_reply(RIGHT_ADD)},
    {"role": "tester", "reply": cases_reply(("add(1, 1)", 2))},
    {"role": "reviewer", "reply": review_reply()},
]


async def _graph(tmp_path: Path, approve: str = "ask", selection: bool = False) -> Any:
    graph = (compile_selection if selection else compile_pipeline)(InMemorySaver())
    rules = [{"role": "coder", "reply": f"```python\n{RIGHT_ADD}```"}] if selection else RULES
    ctx = TeamContext(
        model=scripted(rules),
        out_dir=str(tmp_path / "out"),
        approve=approve,  # type: ignore[arg-type]
        use_memory=False,
        gateway=await gateway_in(tmp_path),
    )
    return graph, ctx, {"configurable": {"thread_id": "chat"}, "recursion_limit": 200}


def _chat(*content: Any) -> dict[str, Any]:
    return {"messages": [HumanMessage(content=list(content) if len(content) > 1 else content[0])]}


@pytest.mark.parametrize("selection", [False, True])
async def test_a_chat_message_is_the_goal_and_the_last_reply_shows_the_code(
    tmp_path: Path, selection: bool
) -> None:
    graph, ctx, config = await _graph(tmp_path, approve="auto", selection=selection)
    await graph.ainvoke(_chat(ADD_GOAL), config, context=ctx)
    values = (await graph.aget_state(config)).values
    assert values["goal"] == ADD_GOAL
    assert values["report"]["status"] == "delivered"
    last = values["messages"][-1]
    assert isinstance(last, AIMessage)
    assert last.text.startswith("deliver: wrote solution.py")
    assert "goal examples 1/1" in last.text and RIGHT_ADD.strip() in last.text
    assert (tmp_path / "out" / "solution.py").read_text() == RIGHT_ADD


async def test_content_blocks_are_joined_and_a_given_goal_wins_over_the_chat(
    tmp_path: Path,
) -> None:
    graph, ctx, config = await _graph(tmp_path, approve="auto")
    blocks = [{"type": "text", "text": "Write add(a, b) returning the sum.\n"}]
    blocks.append({"type": "text", "text": "Example: add(2, 3) == 5"})
    await graph.ainvoke({"messages": [HumanMessage(content=blocks)]}, config, context=ctx)  # type: ignore[arg-type]
    goal = (await graph.aget_state(config)).values["goal"]
    assert goal == "Write add(a, b) returning the sum.\nExample: add(2, 3) == 5"

    graph, ctx, config = await _graph(tmp_path / "given", approve="auto")
    await graph.ainvoke({"goal": ADD_GOAL, **_chat("say hello")}, config, context=ctx)
    assert (await graph.aget_state(config)).values["goal"] == ADD_GOAL


@pytest.mark.parametrize(
    ("task", "why"),
    [
        ({}, "no goal and no chat message"),
        (_chat("   "), "the last human message has no text"),
        ({"messages": [AIMessage("hi")]}, "no goal and no chat message"),
        ({"goal": "  "}, "goal: must not be blank"),
    ],
)
@pytest.mark.parametrize("selection", [False, True])
async def test_input_that_is_not_a_task_fails_clearly_before_any_model_call(
    tmp_path: Path, task: dict[str, Any], why: str, selection: bool
) -> None:
    graph, ctx, config = await _graph(tmp_path, selection=selection)
    with pytest.raises(InvalidTaskInputError, match=why):
        await graph.ainvoke(task, config, context=ctx)
    assert ctx.model.calls == 0
    assert not (tmp_path / "out").exists()


async def test_a_new_chat_message_on_a_finished_task_asks_for_a_new_thread(
    tmp_path: Path,
) -> None:
    graph, ctx, config = await _graph(tmp_path, approve="auto")
    await graph.ainvoke(_chat(ADD_GOAL), config, context=ctx)
    report = (await graph.aget_state(config)).values["report"]
    with pytest.raises(InvalidTaskInputError, match="start a new thread"):
        await graph.ainvoke(_chat("now make it multiply"), config, context=ctx)
    values = (await graph.aget_state(config)).values
    assert values["report"] == report and values["goal"] == ADD_GOAL  # nothing lost


async def _paused(tmp_path: Path) -> tuple[Any, Any, dict[str, Any], list[dict[str, Any]]]:
    graph, ctx, config = await _graph(tmp_path)
    result = await graph.ainvoke(_chat(ADD_GOAL), config, context=ctx)
    [pending] = result["__interrupt__"]
    return graph, ctx, config, pending.value


async def test_the_question_is_one_human_interrupt_that_shows_the_code(tmp_path: Path) -> None:
    _, _, _, value = await _paused(tmp_path)
    [question] = value
    assert question["action_request"]["action"] == "deliver"
    assert question["config"]["allow_accept"] and question["config"]["allow_respond"]
    assert question["config"]["allow_edit"] is False
    assert f"```python\n{RIGHT_ADD}```" in question["description"]
    request = request_of(value)
    assert request is not None and request["contents"] == {"solution.py": RIGHT_ADD}
    assert request["failing"] == [] and request["flags"] == []
    assert request["destination"] == str(tmp_path / "out")


async def test_accept_delivers(tmp_path: Path) -> None:
    graph, ctx, config, _ = await _paused(tmp_path)
    await graph.ainvoke(Command(resume=[{"type": "accept", "args": None}]), config, context=ctx)
    values = (await graph.aget_state(config)).values
    assert values["report"]["status"] == "delivered"
    assert (tmp_path / "out" / "solution.py").read_text() == RIGHT_ADD


@pytest.mark.parametrize(
    ("answer", "comment"),
    [
        ({"type": "response", "args": "add a docstring"}, "add a docstring"),
        ({"type": "edit", "args": {"action": "deliver", "args": {}}}, EDIT_REFUSED),
        ({"type": "ignore", "args": None}, ""),
    ],
)
async def test_respond_edit_and_ignore_reject_and_nothing_is_delivered(
    tmp_path: Path, answer: dict[str, Any], comment: str
) -> None:
    graph, ctx, config, _ = await _paused(tmp_path)
    await graph.ainvoke(Command(resume=[answer]), config, context=ctx)
    values = (await graph.aget_state(config)).values
    said = [m.text for m in values["messages"] if m.name == "approval"]
    # The same files come back from the team: the ledgered answer for them stands (no re-ask).
    assert set(said) == {"human rejected delivery" + (f": {comment}" if comment else "")}
    assert not (tmp_path / "out").exists()
    events = await ctx.gateway.ledger.events("chat", 0, 100, kinds=["ApprovalRejected"])
    assert len(events) == 1
