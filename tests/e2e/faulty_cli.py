"""The strategos CLI with faults injected at precise points (nothing else changes).

Each fault is switched on by an environment variable, so a test reproduces an operator's
incident exactly, not by sleeping and hoping:

- `DIE_AFTER_WRITES_OF=node`: SIGKILL right after the checkpointer saved that node's writes,
  before the next checkpoint is written (the next checkpoint's `aput` is held until the kill).
- `DB_OUTAGE_AFTER=role`: once the scripted model answered that agent, the task's PostgreSQL
  database refuses connections and every connection to it is cut (the server is down).
- `DB_RESTART_AFTER=role`: the same, but the database keeps accepting new connections (the
  server restarted): every open connection is dead.
- `LEDGER_FAILS_ONCE=1`: the first tool call raises `psycopg.OperationalError` inside its node.
- `RECURSION_LIMIT=n`: runs get LangGraph recursion limit `n` whatever their step limit.
- `DIE_AFTER_TOOL=name`: SIGKILL right after the gateway recorded that tool's completed
  execution, before the node that called it returns (its writes are never saved).
- `DIE_INSIDE_SANDBOX=file`: SIGKILL while the local sandbox runs code (its child is running),
  after writing this process's sandbox owner tag to `file` (to find what it left behind).

Usage: python -m tests.e2e.faulty_cli run|resume|... (the CLI's own arguments)
"""

from __future__ import annotations

import asyncio
import os
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import psycopg
from langgraph.checkpoint.postgres.aio import AsyncPostgresSaver
from langgraph.checkpoint.sqlite.aio import AsyncSqliteSaver
from psycopg.conninfo import conninfo_to_dict

from service import tasks
from service.llm.scripted import ScriptedChatModel, role_of
from tests.conftest import PG_URL
from tools.gateway import ToolGateway


def _kill_after_writes(node: str) -> None:
    """SIGKILL once `node`'s writes and the checkpoint they belong to are saved, and hold the
    checkpoint that follows it (LangGraph may save writes before their checkpoint: wait)."""
    stored: set[str] = set()
    watched: list[str] = []  # the id of the checkpoint the node's writes belong to

    for saver in (AsyncSqliteSaver, AsyncPostgresSaver):
        put_writes, put = saver.aput_writes, saver.aput

        async def aput_writes(
            self: Any,
            config: Any,
            writes: Any,
            task_id: str,
            task_path: str = "",
            _original: Any = put_writes,
        ) -> None:
            mine = not watched and task_path.endswith(f", {node}")
            if mine:
                watched.append(config["configurable"]["checkpoint_id"])
            await _original(self, config, writes, task_id, task_path)
            if mine:
                # Saved by this process, or already there (a resumed run's first node).
                while watched[0] not in stored and await self.aget_tuple(config) is None:
                    await asyncio.sleep(0.01)
                os.kill(os.getpid(), signal.SIGKILL)

        async def aput(
            self: Any, config: Any, checkpoint: Any, *args: Any, _original: Any = put
        ) -> Any:
            if watched and config["configurable"].get("checkpoint_id") == watched[0]:
                await asyncio.Event().wait()  # the next checkpoint: never written
            saved = await _original(self, config, checkpoint, *args)
            stored.add(checkpoint["id"])
            return saved

        saver.aput_writes = aput_writes  # type: ignore[method-assign]
        saver.aput = aput  # type: ignore[method-assign]


def _cut_connections(refuse_new: bool) -> None:
    """Cut every connection to the task's database once they are idle (no write is torn)."""
    name = conninfo_to_dict(os.environ["STRATEGOS_DATABASE_URL"])["dbname"]
    with psycopg.connect(PG_URL, autocommit=True) as admin:
        deadline = time.monotonic() + 30
        busy = "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND state = 'active'"
        while admin.execute(busy, (name,)).fetchone() != (0,) and time.monotonic() < deadline:
            time.sleep(0.05)
        if refuse_new:
            admin.execute(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS false')
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = %s", (name,)
        )


def _fault_after_reply(role: str, refuse_new: bool) -> None:
    """Cut the database once the model answered `role`, whether it answered whole or streamed.

    The CLI streams the model's tokens to its live view, so a reply arrives through `_astream`;
    a call nobody streams (the n-choice sampling) through `_agenerate`. Both are hooked.
    """
    generate, stream = ScriptedChatModel._agenerate, ScriptedChatModel._astream
    fired: list[bool] = []

    async def fault(messages: Any) -> None:
        if not fired and role_of(messages) == role:
            fired.append(True)
            await asyncio.to_thread(_cut_connections, refuse_new)

    async def _agenerate(self: ScriptedChatModel, messages: Any, *args: Any, **kw: Any) -> Any:
        result = await generate(self, messages, *args, **kw)
        await fault(messages)
        return result

    async def _astream(
        self: ScriptedChatModel, messages: Any, *args: Any, **kw: Any
    ) -> AsyncIterator[Any]:
        async for chunk in stream(self, messages, *args, **kw):
            yield chunk
        await fault(messages)

    ScriptedChatModel._agenerate = _agenerate  # type: ignore[method-assign]
    ScriptedChatModel._astream = _astream  # type: ignore[method-assign]


def _ledger_fails_once() -> None:
    original = ToolGateway.call
    failed: list[bool] = []

    async def call(self: ToolGateway, *args: Any, **kwargs: Any) -> Any:
        if not failed:
            failed.append(True)
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        return await original(self, *args, **kwargs)

    ToolGateway.call = call  # type: ignore[method-assign]


def _die_inside_sandbox(tag_file: str) -> None:
    from tools.sandbox.local import LocalSandbox
    from tools.sandbox.markers import current_owner

    async def _supervise(self: LocalSandbox, *args: Any, **kwargs: Any) -> Any:
        Path(tag_file).write_text(current_owner().tag)
        os.kill(os.getpid(), signal.SIGKILL)

    LocalSandbox._supervise = _supervise  # type: ignore[method-assign]


def _die_after_tool(name: str) -> None:
    original = ToolGateway._execute

    async def _execute(self: ToolGateway, call: Any, attempt: int | None) -> Any:
        observation = await original(self, call, attempt)
        if call.spec.name == name:
            os.kill(os.getpid(), signal.SIGKILL)
        return observation

    ToolGateway._execute = _execute  # type: ignore[method-assign]


def _install() -> None:
    if node := os.environ.get("DIE_AFTER_WRITES_OF"):
        _kill_after_writes(node)
    if role := os.environ.get("DB_OUTAGE_AFTER"):
        _fault_after_reply(role, refuse_new=True)
    if role := os.environ.get("DB_RESTART_AFTER"):
        _fault_after_reply(role, refuse_new=False)
    if os.environ.get("LEDGER_FAILS_ONCE") == "1":
        _ledger_fails_once()
    if tool := os.environ.get("DIE_AFTER_TOOL"):
        _die_after_tool(tool)
    if tag_file := os.environ.get("DIE_INSIDE_SANDBOX"):
        _die_inside_sandbox(tag_file)
    if limit := os.environ.get("RECURSION_LIMIT"):
        tasks.recursion_limit = lambda max_steps: int(limit)  # type: ignore[assignment]


if __name__ == "__main__":
    _install()
    from service.cli import app

    app()
