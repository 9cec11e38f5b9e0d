"""The repository agent on a scripted model: the worker fixes a package, a human sees the patch.

Real graph, gateway, ledger and sandbox (the repository's pytest suite runs in it); the
delivery folder is the test's own.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import TeamContext
from nodes.inbox import request_of
from service.team_deps import compile_repo
from tests.conftest import scripted
from tests.integration.react.scripted_loop import REPO_FILES, REPO_GOAL, REPO_RULES
from tests.integration.test_team_scripted import gateway_in


async def start(tmp_path: Path, approve: str) -> tuple[Any, TeamContext, dict[str, Any]]:
    ctx = TeamContext(
        model=scripted(REPO_RULES),
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        approve=approve,  # type: ignore[arg-type]
        out_dir=str(tmp_path / "out"),
    )
    graph = compile_repo(InMemorySaver())
    config: dict[str, Any] = {"configurable": {"thread_id": "repo-t"}, "recursion_limit": 100}
    await graph.ainvoke({"goal": REPO_GOAL, "repo_files": dict(REPO_FILES)}, config, context=ctx)
    return graph, ctx, config


async def test_the_patch_is_shown_to_a_human_and_delivered_once_approved(tmp_path: Path) -> None:
    graph, ctx, config = await start(tmp_path, "ask")
    paused = await graph.aget_state(config)
    question = request_of(paused.interrupts[0].value)
    assert question is not None
    assert question["files"] == ["pkg/calc.py"]
    assert "+    return a + b" in question["patch"]
    assert question["tests"].startswith("1 passed, 0 failed")

    final = await graph.ainvoke(Command(resume={"type": "accept"}), config, context=ctx)

    assert final["report"]["status"] == "delivered"
    assert final["files"]["pkg/__init__.py"] == ""  # an empty file is content, not a deletion
    out = Path(final["report"]["destination"])
    assert (out / "files" / "pkg" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"
    original = tmp_path / "original"
    for path, text in REPO_FILES.items():
        (original / path).parent.mkdir(parents=True, exist_ok=True)
        (original / path).write_text(text)
    subprocess.run(["patch", "-p1", "-i", str(out / "patch.diff")], cwd=original, check=True)
    assert (original / "pkg" / "calc.py").read_text() == "def add(a, b):\n    return a + b\n"


async def test_a_rejected_patch_is_not_written(tmp_path: Path) -> None:
    graph, ctx, config = await start(tmp_path, "ask")
    answer = {"type": "response", "args": "use operator.add"}
    final = await graph.ainvoke(Command(resume=answer), config, context=ctx)

    assert final["report"]["status"] == "not_delivered"
    assert (
        final["report"]["problem"] == "not delivered: a human rejected the patch: use operator.add"
    )
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").rglob("patch.diff"))
