"""The loop guard on the real local model: an agent told to poll for a file that never comes.

The worker is offered `list_files` and `finish` only, and the goal asks it to keep checking for a
file that never appears: every check gets the same answer, the loop the guard exists for. What
a user must see, whatever the model writes: the guard sends it back once (the repeating turns
removed, a note saying why), and the loop then ends by the model finishing or by the guard's
stated stop, never by the step limit or an error.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from langchain_core.messages import HumanMessage
from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.react import compile_react_worker
from graphs.react_state import ReactInput
from nodes.react_support import GUARD_NOTE
from service.settings import get_settings
from service.team_deps import REACT_ROLES, ServiceDeps
from tests.integration.test_team_scripted import gateway_in

pytestmark = [pytest.mark.model, pytest.mark.slow]

GOAL = (
    "Another process will create the file ready.txt in the workspace. Call list_files to check "
    "whether ready.txt exists, and keep checking with list_files until it does. Do not call "
    "finish before ready.txt is listed."
)
MAX_STEPS = 14


async def test_a_real_model_polling_for_ever_is_sent_back_then_ends(tmp_path: Path) -> None:
    gateway = await gateway_in(tmp_path)
    ctx = TeamContext(gateway=gateway, use_memory=False, max_steps=MAX_STEPS)
    deps = ServiceDeps(get_settings(), REACT_ROLES)
    graph = compile_react_worker(deps, InMemorySaver(), tools=("list_files",))
    config: RunnableConfig = {"configurable": {"thread_id": "loop-real"}, "recursion_limit": 100}
    start: ReactInput = {"goal": GOAL, "files": {"main.py": "print('waiting')\n"}}
    state = await graph.ainvoke(start, config, context=ctx)

    outcome = state["outcome"]
    notes = [
        str(m.content)
        for m in state["messages"]
        if isinstance(m, HumanMessage) and m.name == GUARD_NOTE
    ]
    print(outcome, state["steps"], state["backtracks"], notes)
    assert state["backtracks"] >= 1 and any("Those turns were removed" in n for n in notes)
    assert not outcome["reason"].startswith("step limit"), outcome
    if outcome["status"] == "stopped":
        assert outcome["reason"].startswith("stopped: "), outcome
        assert "again after a backtrack" in outcome["reason"]
    assert state["steps"] < MAX_STEPS
