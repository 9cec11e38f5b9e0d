"""A long team task under a prompt budget: prompt tokens per model call, paged and not.

    .venv/bin/python -m bench.memory.long_task [--iterations 44] [--budget 600 --budget 5120]
        [--out bench/memory/long_task.json]

The real team graph, the real sandbox and a scripted chat model. The coder alternates between
two wrong versions for `--iterations` attempts: one fails the goal's example (the supervisor is
asked whether to go on), the other passes it but fails the team's tests (the reviewer adds an
executable claim, later repairs are told they repeated the failing code). So every role calls
the model, and the history grows by three messages an attempt.

For every call: the tokens of the prompt as assembled (pinned + summary + recent steps +
memories + required sections) and of the same prompt with the whole history inlined instead
(no paging), both with the scripted model's len/4 count. `tests/integration/test_long_task_memory`
runs the same scenario and asserts on it; only this script writes the JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_core.messages import AnyMessage, RemoveMessage
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.checkpoint.serde.jsonplus import JsonPlusSerializer

from graphs.context import TeamContext
from memory.episodic import EpisodicMemory
from nodes.prompt_budget import SCRIPTED_COUNTER
from nodes.prompting import prompt_tokens
from service.llm.scripted import ScriptedChatModel
from service.settings import get_settings
from service.team_deps import compile_pipeline
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import open_ledger
from tools.sandbox import LocalSandbox

PINNED_FACT = "The output file must be named solution.py and the function must be called `zorblax`."
GOAL = f"Write zorblax(n) that returns twice n.\n{PINNED_FACT}\nExample: zorblax(2) == 4"
FAILS_EXAMPLE = "def zorblax(n):\n    return n - 1\n"
FAILS_TESTS = "def zorblax(n):\n    return n + 2\n"
# Long, repeated summaries make the history grow the way a chatty model's does.
SUMMARY_A = (
    "I rewrote zorblax to subtract one from n, because I read the goal as an off-by-one "
    "correction; the function stays pure, with no prints and no imports, and it accepts any "
    "integer including zero and negative numbers, as the rules of the team require."
)
SUMMARY_B = (
    "I changed zorblax to add two to n, since the example zorblax(2) == 4 holds for n + 2; "
    "I kept the signature exactly as the goal names it and checked by hand that the example "
    "passes, that zero is handled and that the file contains only the function."
)
DEFAULT_BUDGETS = (600, 5120)
"""The test's budget, and the default `prompt_token_budget` (sized for the local model)."""


def rules() -> list[dict[str, Any]]:
    """The scripted team: two wrong versions in turn, a reviewer with one executable claim."""

    def code(content: str, summary: str) -> dict[str, Any]:
        return {"files": [{"path": "solution.py", "content": content}], "summary": summary}

    return [
        {
            "role": "coder",
            "when": ["zorblax(2) returned 1, expected 4"],
            "reply": code(FAILS_TESTS, SUMMARY_B),
        },
        {"role": "coder", "reply": code(FAILS_EXAMPLE, SUMMARY_A)},
        {
            "role": "tester",
            "reply": {
                "cases": [
                    {"call": "zorblax(3)", "expected": 6},
                    {"call": "zorblax(0)", "expected": 0},
                ]
            },
        },
        {
            "role": "reviewer",
            "reply": {
                "verdict": "changes_requested",
                "problems": [
                    {
                        "description": "zorblax must double its input; it adds two instead",
                        "call": "zorblax(5)",
                        "expected": 10,
                    }
                ],
                "wrong_tests": [],
            },
        },
        {"role": "supervisor", "reply": {"next": "coder", "reason": "keep trying"}},
    ]


@dataclass
class LongTaskRun:
    """What one run of the scenario measured."""

    budget: int
    prompts: list[list[str]]
    """Every model call's message texts, as the model received them."""
    stats: list[dict[str, Any]]
    """Per call, from the prompt assembler: tokens, tokens without paging, and more."""
    history: list[str] = field(default_factory=list)
    """Every message the team wrote, in order (the state keeps only a window of them)."""
    history_bytes: int = 0
    """What those messages would weigh in a checkpoint, kept whole."""
    final: dict[str, Any] = field(default_factory=dict)

    def measured(self) -> list[int]:
        """Each call's prompt tokens, counted here from what the model received."""
        return [prompt_tokens(p[0], "\n".join(p[1:]), SCRIPTED_COUNTER) for p in self.prompts]


class _Collect(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.stats: list[dict[str, Any]] = []

    def emit(self, record: logging.LogRecord) -> None:
        stats = getattr(record, "prompt_stats", None)
        if isinstance(stats, dict):
            self.stats.append(stats)


@contextmanager
def prompt_budget(budget: int) -> Iterator[None]:
    """Run with `STRATEGOS_PROMPT_TOKEN_BUDGET=budget`, restoring the settings afterwards."""
    name = "STRATEGOS_PROMPT_TOKEN_BUDGET"
    before = os.environ.get(name)
    os.environ[name] = str(budget)
    get_settings.cache_clear()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(name, None)
        else:
            os.environ[name] = before
        get_settings.cache_clear()


async def run_long_task(
    folder: Path,
    *,
    iterations: int = 44,
    budget: int = 1000,
    memory: EpisodicMemory | None = None,
) -> LongTaskRun:
    """Run the scenario to its iteration limit and return what every model call saw."""
    folder.mkdir(parents=True, exist_ok=True)
    model = ScriptedChatModel.model_validate({"script": {"rules": rules()}, "record": True})
    ledger = await open_ledger(str(folder / "ledger.sqlite"))
    gateway = ToolGateway(default_registry(), ledger, sandbox=LocalSandbox())
    ctx = TeamContext(
        model=model,
        approve="auto",
        out_dir=str(folder / "out"),
        max_iterations=iterations,
        max_steps=20 * iterations,
        token_budget=10**8,
        use_memory=memory is not None,
        memory=memory,
        gateway=gateway,
    )
    config: dict[str, Any] = {"configurable": {"thread_id": "long"}, "recursion_limit": 10_000}
    collect = _Collect()
    log = logging.getLogger("strategos.prompting")
    level = log.level
    log.addHandler(collect)
    log.setLevel(logging.DEBUG)
    history: list[AnyMessage] = []
    try:
        with prompt_budget(budget):
            # Compiled here: the team's deps take the prompt budget from the settings.
            graph = compile_pipeline(InMemorySaver())
            async for update in graph.astream(
                {"goal": GOAL}, config, context=ctx, stream_mode="updates"
            ):
                for node_update in update.values():
                    if isinstance(node_update, dict):
                        new = node_update.get("messages") or []
                        history += [m for m in new if not isinstance(m, RemoveMessage)]
    finally:
        log.removeHandler(collect)
        log.setLevel(level)
        await ledger.close()
    final = (await graph.aget_state(config)).values
    return LongTaskRun(
        budget=budget,
        prompts=model.recorded,
        stats=collect.stats,
        history=[str(m.content) for m in history],
        history_bytes=checkpoint_bytes(history),
        final=dict(final),
    )


def checkpoint_bytes(values: Any) -> int:
    """Size of a value as the checkpointer serialises it."""
    return len(JsonPlusSerializer().dumps_typed(values)[1])


def report(run: LongTaskRun) -> dict[str, Any]:
    """The JSON-able numbers of one run."""
    measured = run.measured()
    calls = [
        {
            "call": n,
            "role": s["role"],
            "iteration": s["iteration"],
            "prompt_tokens": m,
            "prompt_tokens_without_paging": s["unpaged_tokens"],
            "summary": s["summary"],
            "recent_turns": s["recent_turns"],
            "history_messages": s["history_messages"],
        }
        for n, (s, m) in enumerate(zip(run.stats, measured, strict=True), start=1)
    ]
    unpaged = [c["prompt_tokens_without_paging"] for c in calls]
    final = run.final
    return {
        "budget": run.budget,
        "model_calls": len(calls),
        "coder_iterations": final["iteration"],
        "stop_reason": final.get("stop_reason", ""),
        "max_prompt_tokens": max(measured),
        "max_prompt_tokens_without_paging": max(unpaged),
        "calls_over_budget": sum(m > run.budget for m in measured),
        "calls_over_budget_without_paging": sum(u > run.budget for u in unpaged),
        "last_call": calls[-1],
        "messages_written": len(run.history),
        "messages_in_final_state": len(final["messages"]),
        "messages_paged_out": (final.get("working") or {}).get("paged_out", 0),
        "checkpoint_bytes_messages_and_summary": checkpoint_bytes(
            {"messages": final["messages"], "working": final.get("working")}
        ),
        "checkpoint_bytes_whole_history": run.history_bytes,
        "calls": calls,
    }


async def _main(iterations: int, budgets: list[int], out: Path) -> None:
    results = []
    for budget in budgets:
        with tempfile.TemporaryDirectory() as tmp:
            run = await run_long_task(Path(tmp), iterations=iterations, budget=budget)
        result = report(run)
        results.append(result)
        print(
            f"budget {budget}: {result['model_calls']} calls, {result['coder_iterations']} coder "
            f"iterations; max prompt {result['max_prompt_tokens']} tokens paged vs "
            f"{result['max_prompt_tokens_without_paging']} without paging; last call "
            f"{result['last_call']['prompt_tokens']} vs "
            f"{result['last_call']['prompt_tokens_without_paging']}; over budget: "
            f"{result['calls_over_budget']} paged, {result['calls_over_budget_without_paging']} "
            "without paging"
        )
    meta = {"scenario": "long_task", "iterations": iterations, "counter": "len/4"}
    out.write_text(json.dumps({**meta, "runs": results}, indent=1) + "\n")
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--iterations", type=int, default=44)
    parser.add_argument("--budget", type=int, action="append", dest="budgets")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("long_task.json"))
    args = parser.parse_args()
    asyncio.run(_main(args.iterations, args.budgets or list(DEFAULT_BUDGETS), args.out))


if __name__ == "__main__":
    main()
