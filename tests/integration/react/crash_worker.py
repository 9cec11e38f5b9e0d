"""Run the scripted ReAct worker on PostgreSQL and the real sandbox; optionally die mid-loop.

Usage: python -m tests.integration.react.crash_worker DATABASE_URL COUNTER_FILE DIE_AFTER GRAPH OUT
where DIE_AFTER is the tool after whose execution the process SIGKILLs itself ('' = never),
GRAPH is `react` (the worker alone) or `repo` (the repository agent, the worker as its
subgraph, delivering into OUT on the `auto` policy).

Every executed tool call (not a replay) appends `tool call-id` to COUNTER_FILE, outside the
ledger, so the test counts what really ran instead of trusting the ledger's own record. The
kill lands right after the tool ran and the ledger recorded it, before the step's checkpoint:
the worst moment for exactly-once.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from typing import Any

from graphs.context import TeamContext
from service.persistence import checkpointer
from service.settings import Settings
from service.team_deps import compile_react, compile_repo
from tests.conftest import scripted
from tests.integration.react.scripted_loop import (
    GOAL,
    PACKAGE,
    REPO_FILES,
    REPO_GOAL,
    REPO_RULES,
    fixing_rules,
)
from tools.builtin import default_registry
from tools.gateway import ToolGateway, ToolObservation
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox
from tools.tool_call import PreparedCall

THREAD = "react-crash"


class CountingGateway(ToolGateway):
    """The real gateway, counting each executed call in a file (and dying when told to)."""

    counter = ""
    die_after = ""

    async def _execute(self, call: PreparedCall, attempt: int | None) -> ToolObservation:
        observation = await super()._execute(call, attempt)
        with open(self.counter, "a") as handle:
            handle.write(f"{call.spec.name} {call.ctx.tool_call_id} {call.key}\n")
            handle.flush()
            os.fsync(handle.fileno())
        if call.spec.name == self.die_after:
            os.kill(os.getpid(), signal.SIGKILL)
        return observation


async def run(
    database_url: str, counter: str, die_after: str, graph_name: str = "react", out: str = ""
) -> dict[str, Any]:
    """Start the task, or resume it when its thread has checkpoints; return the final state."""
    ledger = await open_ledger(database_url)
    gateway = CountingGateway(default_registry(), ledger, sandbox=LocalSandbox())
    gateway.counter, gateway.die_after = counter, die_after
    repo = graph_name == "repo"
    rules = REPO_RULES if repo else fixing_rules()
    ctx = TeamContext(
        model=scripted(rules),
        gateway=gateway,
        use_memory=False,
        approve="auto",
        out_dir=out or None,
    )
    config: dict[str, Any] = {"configurable": {"thread_id": THREAD}, "recursion_limit": 100}
    task: dict[str, Any] = (
        {"goal": REPO_GOAL, "repo_files": dict(REPO_FILES)}
        if repo
        else {"goal": GOAL, "files": dict(PACKAGE)}
    )
    try:
        async with checkpointer(Settings(database_url=database_url)) as saver:
            graph: Any = compile_repo(saver) if repo else compile_react(saver)
            started = (await graph.aget_state(config)).values
            state = await graph.ainvoke(None if started else task, config, context=ctx)
    finally:
        await ledger.close()
    return dict(state)


if __name__ == "__main__":
    asyncio.run(run(*sys.argv[1:6]))
