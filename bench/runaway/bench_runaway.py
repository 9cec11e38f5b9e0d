"""Runaway agents against the hard budget: does any way of overspending get past it?

    .venv/bin/python -m bench.runaway.bench_runaway [--runs 20] [--redis-url redis://…]
        [--out bench/runaway/results.json]

Scripted agents (LangGraph graphs whose nodes call the model through `ServiceDeps.ask_*`, the
seam every team call goes through) try to overspend in four ways:

- `huge_call`: one call whose prompt and completion limit together are larger than the task's
  budget (the scripted model answers at its full completion limit);
- `many_small`: 40 calls at once from `Send` branches of one task (they share its budget);
- `loop`: a node that calls the model again and again (structured output with repairs, whose
  every attempt is a call) until it is refused;
- `fork_bomb`: every task spawns two sub-tasks, each with its own full task budget, to depth 6
  (127 tasks), all at once; only the tenant's hourly quota bounds them together.

The limit is the task's budget (the tenant's quota for the fork bomb). *Billed* is what the
model reported for the calls it answered (the scripted model bills ~4 characters a token);
*overrun* is billed minus the limit when positive. The reservation rule admits a call only when
its prompt (len/3, which counts higher than the model bills) plus its completion limit fits what
is left, so the overrun must be 0 on every run. For comparison, `between_steps` runs the same
agents with the old check only (stop when the usage so far reaches the budget, before a step).
Each pattern runs `--runs` times on the in-process ledger and on Redis.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import operator
import os
import platform
import statistics
import time
import uuid
from pathlib import Path
from typing import Annotated, Any, TypedDict

from langgraph.graph import END, START, StateGraph
from langgraph.types import Send
from pydantic import BaseModel

from graphs.context import TeamContext
from graphs.deps import ModelOutputError
from graphs.state import Usage
from service.budget import Grant, Ledger, MemoryLedger, Pool
from service.budget_redis import RedisLedger
from service.llm.guarded import BudgetExceeded
from service.llm.scripted import Script, ScriptedChatModel, ScriptRule
from service.rate_limits import redis_client
from service.settings import Settings, get_settings
from service.team_deps import ServiceDeps

BUDGET = 3000
QUOTA = 20_000
WORDS = "spend " * 2000  # a reply far longer than any completion limit


class Answer(BaseModel):
    """What the looping agent asks for; the script never gives it (every attempt fails)."""

    done: bool


class State(TypedDict, total=False):
    """A runaway agent's state: what it was billed, how it ended, its children."""

    billed: Annotated[int, operator.add]
    calls: Annotated[int, operator.add]
    refused: Annotated[list[str], operator.add]
    depth: int


def model() -> ScriptedChatModel:
    return ScriptedChatModel(
        script=Script(rules=[ScriptRule(role="runaway", reply=WORDS)]), max_tokens=1024
    )


def used(usage: Usage) -> int:
    return int(usage["prompt_tokens"] + usage["completion_tokens"])


def spent(usage: Usage) -> dict[str, Any]:
    """The state update of a node's calls: tokens billed and calls made."""
    return {"billed": used(usage), "calls": usage["model_calls"]}


class Agent:
    """The four patterns as graph nodes on one `ServiceDeps`; `hard` False: the old guard."""

    def __init__(self, deps: ServiceDeps, hard: bool) -> None:
        self.deps, self.hard = deps, hard

    def stopped(self, state: State) -> dict[str, Any] | None:
        """The old guard: refuse the step when the usage so far reached the budget."""
        if not self.hard and state.get("billed", 0) >= BUDGET:
            return {"refused": ["between-steps guard"]}
        return None

    async def ask(self, user: str, state: State) -> dict[str, Any]:
        """One plain call."""
        if stop := self.stopped(state):
            return stop
        try:
            _, usage = await self.deps.ask_text(
                model_of(), "# role: runaway\nbe brief", user, temperature=0.0, seed=0
            )
        except BudgetExceeded as exc:
            return {"refused": [str(exc)]}
        return spent(usage)

    async def huge(self, state: State) -> dict[str, Any]:
        # ~2,800 tokens counted, 2,100 billed: with a 1,024-token completion limit the call
        # is larger than the whole budget of 3,000
        return await self.ask("x" * 8400, state)

    async def small(self, state: State) -> dict[str, Any]:
        return await self.ask("a small question", state)

    async def loop(self, state: State) -> dict[str, Any]:
        """A structured answer the model never gives: every repair attempt is another call."""
        if stop := self.stopped(state):
            return stop
        try:
            _, usage = await self.deps.ask_json(
                model_of(), "# role: runaway", "answer " * 50, Answer, retries=3
            )
        except BudgetExceeded as exc:
            return {**spent(exc.usage), "refused": [str(exc)]}
        except ModelOutputError as exc:  # no valid answer: the agent tries again
            return spent(exc.usage)
        return spent(usage)


_MODEL: list[ScriptedChatModel] = []


def model_of() -> ScriptedChatModel:
    return _MODEL[0]


def build(agent: Agent, pattern: str) -> Any:
    """The pattern's graph: its node, and the edges that make it run away."""
    graph = StateGraph(State, context_schema=TeamContext)
    if pattern == "huge_call":
        graph.add_node("runaway", agent.huge)
        graph.add_edge(START, "runaway")
        graph.add_edge("runaway", END)
    elif pattern == "many_small":
        graph.add_node("runaway", agent.small)
        graph.add_conditional_edges(START, lambda s: [Send("runaway", s) for _ in range(40)])
        graph.add_edge("runaway", END)
    else:  # loop: again until refused (the old guard: until it sees the usage)
        graph.add_node("runaway", agent.loop)
        graph.add_edge(START, "runaway")
        graph.add_conditional_edges(
            "runaway", lambda s: END if s.get("refused") else "runaway", ["runaway", END]
        )
    return graph.compile()


async def run_task(graph: Any, tenant: str, hard: bool) -> State:
    """One task; under the old guard the call layer's budget is out of reach (10⁹ tokens)."""
    ctx = TeamContext(tenant=tenant, token_budget=BUDGET if hard else 10**9)
    config: Any = {"configurable": {"thread_id": uuid.uuid4().hex}, "recursion_limit": 500}
    result: State = await graph.ainvoke({"depth": 0}, config, context=ctx)
    return result


async def fork_bomb(agent: Agent, tenant: str, depth: int = 0) -> int:
    """A task that spends its budget in a loop, then forks two sub-tasks; billed in all."""
    state = await run_task(build(agent, "loop"), tenant, agent.hard)
    billed = state.get("billed", 0)
    if depth < 6:
        kids = await asyncio.gather(*(fork_bomb(agent, tenant, depth + 1) for _ in range(2)))
        billed += sum(kids)
    return billed


async def one_run(settings: Settings, pattern: str, hard: bool) -> dict[str, Any]:
    _MODEL[:] = [model()]
    quota = {"quota_tokens_per_hour": QUOTA if hard else None}
    agent = Agent(ServiceDeps(settings.model_copy(update=quota)), hard)
    tenant = f"bench-{uuid.uuid4().hex[:8]}"
    started = time.perf_counter()
    if pattern == "fork_bomb":
        billed, limit = await fork_bomb(agent, tenant), QUOTA
    else:
        state = await run_task(build(agent, pattern), tenant, hard)
        billed, limit = state.get("billed", 0), BUDGET
    return {
        "billed": billed,
        "limit": limit,
        "overrun": max(0, billed - limit),
        "calls": _MODEL[0].calls,
        "wall_s": round(time.perf_counter() - started, 3),
    }


async def run_all(runs: int, redis_url: str | None) -> list[dict[str, Any]]:
    rows = []
    prefix = f"bench-runaway-{uuid.uuid4().hex[:8]}"
    for ledger in ("in-process", "redis") if redis_url else ("in-process",):
        os.environ.pop("STRATEGOS_REDIS_URL", None)
        if ledger == "redis":
            os.environ["STRATEGOS_REDIS_URL"] = str(redis_url)
            os.environ["STRATEGOS_REDIS_PREFIX"] = prefix
        get_settings.cache_clear()
        settings = get_settings()
        for pattern in ("huge_call", "many_small", "loop", "fork_bomb"):
            for hard in (True, False):
                if ledger == "redis" and not hard:
                    continue  # the old guard keeps no ledger
                results = [await one_run(settings, pattern, hard) for _ in range(runs)]
                rows.append(summary(ledger, pattern, hard, results))
                print(json.dumps(rows[-1]), flush=True)
    if redis_url:
        await forget(redis_url, prefix)
    return rows


async def seam_latency(redis_url: str | None, calls: int = 500) -> dict[str, dict[str, float]]:
    """What the seam adds to a call: one reserve and one settle over three pools, in ms."""
    prefix = f"bench-runaway-{uuid.uuid4().hex[:8]}"
    redis = redis_client(redis_url) if redis_url else None
    ledgers: dict[str, Ledger] = {"in-process": MemoryLedger()}
    if redis is not None:
        ledgers["redis"] = RedisLedger(redis, prefix)
    pools = (
        Pool("task:latency", 10**12, local=True),
        Pool("tenant:t:tokens:hour:0", 10**12),
        Pool("tenant:t:steps:hour:0", 10**12, "steps"),
    )
    out = {}
    for name, ledger in ledgers.items():
        times = []
        for i in range(calls):
            started = time.perf_counter()
            room, _ = await ledger.reserve(
                pools, rid=str(i), prompt=100, want=500, n=1, floor=64, ttl_s=60, role="coder"
            )
            await ledger.settle(Grant(str(i), pools, 100, room, 1, "coder"), tokens=300, steps=1)
            times.append((time.perf_counter() - started) * 1000)
        times.sort()
        out[name] = {
            "median_ms": round(statistics.median(times), 3),
            "p95_ms": round(times[int(0.95 * calls)], 3),
        }
    if redis is not None:
        await redis.aclose()
        await forget(str(redis_url), prefix)
    return out


async def forget(redis_url: str, prefix: str) -> None:
    """Delete the run's ledger keys from Redis."""
    redis = redis_client(redis_url)
    keys = [key async for key in redis.scan_iter(f"{prefix}:*")]
    if keys:
        await redis.delete(*keys)
    await redis.aclose()


def summary(ledger: str, pattern: str, hard: bool, results: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "ledger": ledger,
        "pattern": pattern,
        "guard": "reservation" if hard else "between_steps",
        "runs": len(results),
        "limit": results[0]["limit"],
        "billed_max": max(r["billed"] for r in results),
        "overrun_max": max(r["overrun"] for r in results),
        "runs_over": sum(1 for r in results if r["overrun"] > 0),
        "model_calls_mean": round(sum(r["calls"] for r in results) / len(results), 1),
        "wall_s_mean": round(sum(r["wall_s"] for r in results) / len(results), 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--redis-url", default="redis://127.0.0.1:6379/0")
    parser.add_argument("--out", type=Path, default=Path("bench/runaway/results.json"))
    args = parser.parse_args()
    rows = asyncio.run(run_all(args.runs, args.redis_url or None))
    latency = asyncio.run(seam_latency(args.redis_url or None))
    print(json.dumps(latency))
    facts = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpus": os.cpu_count(),
    }
    payload = {
        "budget": BUDGET,
        "tenant_quota": QUOTA,
        "machine": facts,
        "rows": rows,
        "reserve_and_settle": latency,
    }
    args.out.write_text(json.dumps(payload, indent=2) + "\n")


if __name__ == "__main__":
    main()
