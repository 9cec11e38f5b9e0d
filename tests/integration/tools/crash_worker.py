"""A worker process for the crash tests: runs one gateway call, then dies by SIGKILL.

Usage: python -m tests.integration.tools.crash_worker LEDGER_URL COUNTER_FILE WHEN
where WHEN is `after_call` or `in_handler`.
"""

from __future__ import annotations

import asyncio
import os
import signal
import sys

from tests.integration.tools.side_effects import CALL, THREAD, append_line_spec
from tools.gateway import CallContext, ToolGateway
from tools.ledger import open_ledger
from tools.policy import Policy, PolicyConfig
from tools.registry import ToolRegistry
from tools.workspaces import MemoryWorkspace


async def main(url: str, counter: str, when: str) -> None:
    ledger = await open_ledger(url)
    spec = append_line_spec(counter, die_after_append=when == "in_handler")
    gateway = ToolGateway(
        ToolRegistry([spec]), ledger, Policy(PolicyConfig(approval={"side_effect": False}))
    )
    ctx = CallContext(thread_id=THREAD, tool_call_id=CALL, workspace=MemoryWorkspace())
    await gateway.call("append_line", {"line": "deployed"}, ctx)
    # The result is recorded but the caller never sees it: the process dies here.
    os.kill(os.getpid(), signal.SIGKILL)


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
