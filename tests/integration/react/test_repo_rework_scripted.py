"""A rejected patch goes back to the repository agent's worker with the human's comment.

Real graph, gateway, ledger and sandbox (the repository's pytest suite runs in it), a scripted
model; the delivery folder is the test's own. The reworked worker applies a patch whose context
is the FIRST patch's line, so it applies only on the current working copy, not the original.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command

from graphs.context import TeamContext
from graphs.react_state import RepoInput
from nodes.inbox import request_of
from service.llm.scripted import ScriptedChatModel
from service.team_deps import compile_repo
from tests.conftest import scripted
from tests.integration.react.scripted_loop import REPO_FILES, REPO_GOAL, REPO_RULES, call
from tests.integration.test_team_scripted import gateway_in

REJECTION = "A reviewer rejected your patch: use operator.add. Address it."
REWORK_PATCH = """\
--- a/pkg/calc.py
+++ b/pkg/calc.py
@@ -1,2 +1,4 @@
+import operator
+
 def add(a, b):
-    return a + b
+    return operator.add(a, b)
"""
REWORKED = "import operator\n\ndef add(a, b):\n    return operator.add(a, b)\n"
REWORK_RULES: list[dict[str, Any]] = [
    {
        "role": "react",
        "when": [REJECTION, "Testing the rework."],
        "tool_calls": [call("finish", summary="add uses operator.add now")],
    },
    {
        "role": "react",
        "when": [REJECTION, "Switching to operator.add."],
        "reply": "Testing the rework.",
        "tool_calls": [call("run_repo_tests")],
    },
    {
        "role": "react",
        "when": [REJECTION],
        "reply": "Switching to operator.add.",
        "tool_calls": [call("apply_patch", patch=REWORK_PATCH)],
    },
    *REPO_RULES,
]
"""The first run fixes the package as `REPO_RULES` do; a rework patches the fix, tests, finishes."""


async def start(
    tmp_path: Path, rules: list[dict[str, Any]], **limits: int
) -> tuple[Any, TeamContext, RunnableConfig, ScriptedChatModel]:
    model = scripted(rules)
    model.record = True
    ctx = TeamContext(
        model=model,
        gateway=await gateway_in(tmp_path),
        use_memory=False,
        approve="ask",
        out_dir=str(tmp_path / "out"),
        **limits,  # type: ignore[arg-type]
    )
    graph = compile_repo(InMemorySaver())
    config: RunnableConfig = {"configurable": {"thread_id": "rework-t"}, "recursion_limit": 100}
    task = RepoInput(goal=REPO_GOAL, repo_files=dict(REPO_FILES))
    await graph.ainvoke(task, config, context=ctx)
    return graph, ctx, config, model


async def question(graph: Any, config: RunnableConfig) -> dict[str, Any]:
    paused = await graph.aget_state(config)
    assert paused.interrupts, "the graph should wait for a human"
    asked = request_of(paused.interrupts[0].value)
    assert asked is not None
    return dict(asked)


def seen_by_model(model: ScriptedChatModel, text: str) -> bool:
    return any(text in message for prompt in model.recorded for message in prompt)


async def test_a_comment_sends_the_patch_back_and_the_reworked_patch_is_delivered(
    tmp_path: Path,
) -> None:
    # four model turns is exactly the first run's (read, patch, test, finish): the rework is not
    # stopped by the step limit at once because the worker's own turn count starts afresh
    graph, ctx, config, model = await start(tmp_path, REWORK_RULES, max_steps=4)
    first = await question(graph, config)
    assert "+    return a + b" in first["patch"]
    assert not seen_by_model(model, REJECTION)

    reject = {"type": "response", "args": "use operator.add"}
    await graph.ainvoke(Command(resume=reject), config, context=ctx)

    assert seen_by_model(model, REJECTION)  # the worker ran again, told the comment
    second = await question(graph, config)
    assert second["patch"] != first["patch"]
    assert "+    return operator.add(a, b)" in second["patch"]
    assert "+import operator" in second["patch"]
    assert second["tests"].startswith("1 passed, 0 failed")
    assert second["summary"] == "add uses operator.add now"
    state = (await graph.aget_state(config)).values
    test_notes = [m for m in state["messages"] if m.name == "repo_tests"]
    assert len(test_notes) == 2  # the repository's tests ran again on the reworked files

    final = await graph.ainvoke(Command(resume={"type": "accept"}), config, context=ctx)

    assert final["report"]["status"] == "delivered"
    assert final["report"]["reworks"] == 1
    out = Path(final["report"]["destination"])
    assert (out / "files" / "pkg" / "calc.py").read_text() == REWORKED
    original = tmp_path / "original"
    for path, text in REPO_FILES.items():
        (original / path).parent.mkdir(parents=True, exist_ok=True)
        (original / path).write_text(text)
    subprocess.run(["patch", "-p1", "-i", str(out / "patch.diff")], cwd=original, check=True)
    assert (original / "pkg" / "calc.py").read_text() == REWORKED


async def test_a_rejection_without_a_comment_ends_the_task(tmp_path: Path) -> None:
    graph, ctx, config, model = await start(tmp_path, REWORK_RULES)
    calls = model.calls

    final = await graph.ainvoke(Command(resume={"type": "ignore"}), config, context=ctx)

    assert model.calls == calls  # the worker did not run again
    assert final["report"]["status"] == "not_delivered"
    assert final["report"]["problem"] == "not delivered: a human rejected the patch"
    assert final["report"]["reworks"] == 0
    assert not any((tmp_path / "out").rglob("patch.diff"))


async def test_the_rework_limit_ends_the_task_with_the_reason(tmp_path: Path) -> None:
    graph, ctx, config, model = await start(tmp_path, REWORK_RULES, max_iterations=1)
    reject = {"type": "response", "args": "use operator.add"}
    await graph.ainvoke(Command(resume=reject), config, context=ctx)
    second = await question(graph, config)
    assert "operator.add(a, b)" in second["patch"]
    calls = model.calls

    again = {"type": "response", "args": "still not what I meant"}
    final = await graph.ainvoke(Command(resume=again), config, context=ctx)

    assert model.calls == calls
    report = final["report"]
    assert report["status"] == "not_delivered"
    assert report["problem"] == "not delivered: a human rejected the patch: still not what I meant"
    assert report["rework"] == "the rework limit is reached: 1 of max_iterations 1"
    assert "The rework limit is reached: 1 of max_iterations 1." in final["messages"][-1].content
    assert not any((tmp_path / "out").rglob("patch.diff"))


async def test_an_unchanged_patch_after_a_rework_is_not_asked_about_again(
    tmp_path: Path,
) -> None:
    graph, ctx, config, model = await start(tmp_path, REPO_RULES)  # the rework just finishes

    reject = {"type": "response", "args": "use operator.add"}
    final = await graph.ainvoke(Command(resume=reject), config, context=ctx)

    assert seen_by_model(model, REJECTION)
    assert not (await graph.aget_state(config)).interrupts
    report = final["report"]
    assert report["status"] == "not_delivered"
    assert report["reworks"] == 1
    assert report["rework"].startswith("the rework left the patch as the human rejected it")
    assert not any((tmp_path / "out").rglob("patch.diff"))
