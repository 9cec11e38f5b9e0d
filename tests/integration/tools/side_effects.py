"""A side-effecting test tool whose effect is counted outside the ledger (lines in a file)."""

from __future__ import annotations

import os
import signal
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from tools.registry import ToolContext, ToolSpec

THREAD = "crash-thread"
CALL = "call-deploy-1"


class LineArgs(BaseModel):
    line: str


class LineResult(BaseModel):
    lines_now: int


def count(counter: str | Path) -> int:
    path = Path(counter)
    return len(path.read_text().splitlines()) if path.exists() else 0


def append_line_spec(counter: str | Path, *, die_after_append: bool = False) -> ToolSpec[Any, Any]:
    async def append_line(args: LineArgs, ctx: ToolContext) -> LineResult:
        with open(counter, "a") as handle:
            handle.write(args.line + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        if die_after_append:
            os.kill(os.getpid(), signal.SIGKILL)
        return LineResult(lines_now=count(counter))

    return ToolSpec(
        name="append_line",
        version="1.0.0",
        description="Append a line to a file outside the workspace (a counted side effect).",
        args_model=LineArgs,
        result_model=LineResult,
        handler=append_line,
        side_effect="side_effect",
    )
