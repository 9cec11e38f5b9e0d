"""The runaway benchmark's real-graph mode: the ReAct worker with a scripted model that loops.

The worker graph (`graphs/react.py`) runs as served (gateway, SQLite ledger, e5 embedder for the
semantic check); only the model is scripted (`service/llm/scripted.py`). For each exact
pattern the script loops for ever, and the row records how the loop ended, after how many model
turns and backtracks, against the bound `GuardConfig().bound(pattern)`.

A scripted rule matches on substrings of the whole prompt, so it cannot alternate by itself: for
the ping-pong the two files are padded and the prompt budget is cut so that the model sees only
its latest call and result (`nodes.react_support.visible` keeps the newest turns that fit).
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver

from graphs.context import TeamContext
from graphs.react_state import ReactInput
from nodes.loop_guard import GuardConfig, Pattern
from service.llm.scripted import ScriptedChatModel
from service.settings import Settings
from service.team_deps import compile_react
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox

PAD = "".join(
    f"# note {i}: this line pads the file so one read fills the prompt.\n" for i in range(9)
)
FILES = {
    "calc.py": "def add(a, b):\n    return a - b\n" + PAD,
    "test_calc.py": "from calc import add\n\n\ndef test_add():\n    assert add(2, 3) == 5\n" + PAD,
}
GOAL = "The test in test_calc.py fails. Fix the code so that it passes."
SMALL_PROMPT = 300
"""Tokens of prompt for the ping-pong: the goal and one call with its result fit, two do not."""


def _rule(when: list[str] | None = None, **reply: Any) -> dict[str, Any]:
    return {"role": "react", "when": when or [], **reply}


def _call(name: str, **args: Any) -> list[dict[str, Any]]:
    return [{"name": name, "args": args}]


SCRIPTS: dict[str, tuple[Pattern, list[dict[str, Any]], int | None]] = {
    "exact repeat": ("repeat", [_rule(tool_calls=_call("list_files"))], None),
    "error repeat": ("error_repeat", [_rule(tool_calls=_call("read_file", path="gone.py"))], None),
    "monologue": ("monologue", [_rule(reply="I think the bug is in add.")], None),
    "ping-pong": (
        "ping_pong",
        [
            _rule(["return a - b"], tool_calls=_call("read_file", path="test_calc.py")),
            _rule(tool_calls=_call("read_file", path="calc.py")),
        ],
        SMALL_PROMPT,
    ),
}


async def run_one(name: str, folder: Path) -> dict[str, Any]:
    """Drive the worker with one looping script until it ends; what a user would see."""
    pattern, rules, budget = SCRIPTS[name]
    config = GuardConfig()
    model = ScriptedChatModel.model_validate({"script": {"rules": rules}})
    ledger = await open_ledger(str(folder / f"{pattern}.sqlite"))
    try:
        gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())
        settings = Settings(prompt_token_budget=budget) if budget else Settings()
        graph = compile_react(InMemorySaver(), settings)
        ctx = TeamContext(model=model, gateway=gateway, use_memory=False, max_steps=60)
        run: RunnableConfig = {"configurable": {"thread_id": name}, "recursion_limit": 300}
        start: ReactInput = {"goal": GOAL, "files": dict(FILES)}
        started = time.perf_counter()
        state = await graph.ainvoke(start, run, context=ctx)
        wall = time.perf_counter() - started
    finally:
        await ledger.close()
    outcome = state.get("outcome", {})
    actions = [t["action"] or "(no tool)" for t in state.get("turns", [])]
    return {
        "agent": name,
        "pattern": pattern,
        "status": outcome.get("status"),
        "reason": outcome.get("reason"),
        "model_turns": state.get("steps"),
        "backtracks": state.get("backtracks"),
        "bound_loop_turns": config.bound(pattern),
        "within_bound": outcome.get("status") == "stopped"
        and state.get("steps", 0) <= config.bound(pattern)
        and "stopped:" in str(outcome.get("reason")),
        "distinct_actions": sorted(set(actions)),
        "wall_s": round(wall, 2),
    }


async def graph_rows() -> list[dict[str, Any]]:
    """One row per exact pattern, each in a fresh ledger."""
    with tempfile.TemporaryDirectory(prefix="runaway-") as tmp:
        return [await run_one(name, Path(tmp)) for name in SCRIPTS]
