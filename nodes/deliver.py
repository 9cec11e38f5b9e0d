"""Deliver: writes the approved files and the task report (the sensitive side effect)."""

from __future__ import annotations

import asyncio
import json
import os
import tempfile
from pathlib import Path
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.config import get_config
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.state import TeamState
from memory.reflexion import lesson_record, lessons_from_task
from service import deps


def _write_atomically(path: Path, content: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    with os.fdopen(handle, "w") as out:
        out.write(content)
    os.replace(tmp, path)


REJECTED_PREFIX = "human rejected delivery: "


async def _store_lessons(state: TeamState, ctx: TeamContext, thread_id: str) -> int:
    """Keep what this task learned for later similar tasks (idempotent on replay)."""
    memory = await deps.get_memory(ctx)
    if memory is None:
        return 0
    rejections = [
        str(m.content).removeprefix(REJECTED_PREFIX)
        for m in state.get("messages", [])
        if m.name == "approval" and str(m.content).startswith(REJECTED_PREFIX)
    ]
    found = lessons_from_task(
        [dict(r) for r in state.get("test_runs", [])],
        [dict(r) for r in state.get("reviews", [])],
        rejections,
    )
    records = [
        lesson_record(
            state["goal"],
            text,
            kind=kind,
            tenant=ctx.tenant,
            task_id=thread_id,
            importance=importance,
        )
        for kind, text, importance in found
    ]
    await asyncio.to_thread(memory.remember_many, records)
    return len(records)


def _write_all(destination: Path, files: dict[str, str]) -> None:
    for path, content in sorted(files.items()):
        _write_atomically(destination / path, content)


def build_report(
    state: TeamState, delivered: list[str], destination: Path | None
) -> dict[str, Any]:
    """The task's final report: what was delivered, how it tested, what it cost."""
    best = state.get("best")
    runs = state.get("test_runs", [])
    final = runs[-1] if runs else None
    if best is not None:
        final = next((r for r in reversed(runs) if r["iteration"] == best["iteration"]), final)
    usage = state.get("usage") or {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    approval = state.get("approval") or {"approved": False, "comment": ""}
    return {
        "status": "delivered" if delivered else "not_delivered",
        "stop_reason": state.get("stop_reason", ""),
        "files": delivered,
        "destination": str(destination) if destination else None,
        "approval": approval,
        "tests": {
            "spec_passed": final["spec_passed"] if final else 0,
            "spec_total": final["spec_total"] if final else 0,
            "team_passed": final["model_passed"] if final else 0,
            "team_total": final["model_total"] if final else 0,
            "error": final["error"] if final else "",
        },
        "iterations": state.get("iteration", 0),
        "steps": state.get("steps", 0),
        "model_calls": usage["model_calls"],
        "prompt_tokens": usage["prompt_tokens"],
        "completion_tokens": usage["completion_tokens"],
        "reviews": len(state.get("reviews", [])),
    }


async def deliver(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Write the best candidate's files when approved; always produce the report."""
    ctx = deps.context_of(runtime.context)
    thread_id = str(get_config().get("configurable", {}).get("thread_id", "local"))
    best = state.get("best")
    files = best["files"] if best else state.get("files", {})
    approval = state.get("approval") or {"approved": False, "comment": ""}
    destination: Path | None = None
    delivered: list[str] = []
    if approval["approved"] and files:
        destination = deps.out_dir(ctx, thread_id)
        delivered = sorted(files)
    report = build_report(state, delivered, destination)
    if destination is not None:
        outputs = {**files, "REPORT.json": json.dumps(report, indent=2)}
        await asyncio.to_thread(_write_all, destination, outputs)
    stored = await _store_lessons(state, ctx, thread_id)
    if stored:
        runtime.stream_writer({"role": "deliver", "event": "stored lessons", "count": stored})
    runtime.stream_writer({"role": "deliver", "event": report["status"], "files": delivered})
    text = (
        f"deliver: wrote {', '.join(delivered)} to {destination}"
        if delivered
        else f"deliver: nothing written ({approval['comment'] or state.get('stop_reason', '')})"
    )
    return {
        "delivered": delivered,
        "report": report,
        "steps": 1,
        "messages": [AIMessage(text, name="deliver")],
    }
