"""Mixed workload: cost and pass rate with cost-aware routing against always-the-strongest.

Three scripted OpenAI-compatible endpoints on loopback HTTP (`fake_openai.py`) play a small, a
mid and a big model with prices and latencies. Each workload item is a model call of a role
with a hidden difficulty (`[needs N]` in the request): an endpoint of strength ≥ N answers
PASS, a weaker one FAIL. A failed item is asked again as a repair, with failing-check lines in
the request, up to two times — what the team does with a failing answer. The router sees only
the role, the prompt and those lines (`service.llm.routing`), never the hidden difficulty.

Every call goes through the service's own path: `chat_model(settings)` builds the router (or
the single model) and `ServiceDeps.ask_text` makes, prices and counts the call.

```
.venv/bin/python -m bench.mixed.bench_mixed --out bench/mixed/results.json [--real]
```

`--real` adds a short run on the bundled model (llama-server): a few greedy calls priced by
CPU-seconds, the server's CPU time measured from /proc to check that price, then the same
calls again with the response cache on. The cache scenario needs Redis at
`STRATEGOS_BENCH_REDIS` (default redis://127.0.0.1:6379/0).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import time
import uuid
from collections import Counter
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis
from prometheus_client import REGISTRY

from bench.mixed.fake_openai import FakeEndpoint, serving
from service.llm.models import chat_model
from service.settings import ModelEndpoint, ModelPrice, Settings
from service.team_deps import ServiceDeps

REDIS_URL = os.environ.get("STRATEGOS_BENCH_REDIS", "redis://127.0.0.1:6379/0")
SEED = 17
ITEMS = 60
REPAIRS = 2


@dataclass(frozen=True)
class Tier:
    """One scripted endpoint: strength rank, USD per million tokens in/out, latency."""

    name: str
    strength: int
    prompt_per_mtok: float
    completion_per_mtok: float
    latency_s: float


TIERS = (
    Tier("small", 0, 0.05, 0.10, 0.05),
    Tier("mid", 1, 0.50, 1.50, 0.15),
    Tier("big", 2, 3.00, 15.00, 0.40),
)


@dataclass(frozen=True)
class Item:
    """One call of the workload: its role, request size, hidden difficulty, failing checks."""

    id: int
    role: str
    prompt_tokens: int
    needs: int
    failing: int


def workload(n: int = ITEMS, seed: int = SEED) -> list[Item]:
    """A team-like mix: routing, tests and reviews, code, and code with failing checks."""
    rng = random.Random(seed)
    items = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.4:  # supervisor, tester, reviewer: short, mostly easy
            role = rng.choice(["supervisor", "tester", "reviewer"])
            items.append(Item(i, role, rng.randint(150, 900), int(rng.random() < 0.1), 0))
        elif kind < 0.75:  # first code: medium prompts, sometimes hard
            items.append(Item(i, "coder", rng.randint(300, 1400), 1 + (rng.random() < 0.2), 0))
        else:  # code against failing checks: long, mostly hard
            failing = rng.randint(1, 4)
            needs = 1 + (rng.random() < 0.7)
            items.append(Item(i, "coder", rng.randint(1200, 4000), needs, failing))
    return items


def _answer(tier: Tier) -> Any:
    def answer(body: dict[str, Any]) -> str:
        text = str(body["messages"][-1]["content"])
        match = re.search(r"\[needs (\d)\]", text)
        needs = int(match.group(1)) if match else 0
        verdict = "PASS" if tier.strength >= needs else "FAIL"
        return f"{verdict} from {tier.name}\n" + "x" * (300 if "coder" in text else 60)

    return answer


def _request(item: Item, attempt: int) -> tuple[str, str]:
    system = f"# role: {item.role}@1\nYou are the {item.role}."
    filler = "def helper():\n    return 0\n" * max(1, (item.prompt_tokens * 4) // 29)
    failing = "".join(
        f"check_{k}: add({k}, 1) failed: expected {k + 1}, got {k}\n"
        for k in range(item.failing + attempt)
    )
    return system, f"coder task {item.id} [needs {item.needs}]\n{failing}{filler}"


def _counter(name: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        if metric.name == name:
            total += sum(s.value for s in metric.samples if s.name.endswith("_total"))
    return total


async def run_policy(
    settings: Settings, items: Sequence[Item], fakes: Sequence[FakeEndpoint]
) -> dict[str, Any]:
    """Every item through the service's model path; cost, passes, calls by endpoint."""
    deps, model = ServiceDeps(settings), chat_model(settings)
    before = {f.name: len(f.requests) for f in fakes}
    fallbacks, hits = _counter("strategos_model_fallbacks"), _counter("strategos_model_cache_hits")
    cost, calls, first_try, passed = 0.0, 0, 0, 0
    started = time.perf_counter()
    for item in items:
        for attempt in range(REPAIRS + 1):
            system, user = _request(item, attempt)
            text, usage = await deps.ask_text(model, system, user, temperature=0.0, seed=0)
            cost += usage.get("cost_usd", 0.0)
            calls += 1
            if text.startswith("PASS"):
                passed += 1
                first_try += attempt == 0
                break
    return {
        "calls": calls,
        "cost_usd": round(cost, 6),
        "pass_rate": round(passed / len(items), 3),
        "first_try_pass_rate": round(first_try / len(items), 3),
        "cost_per_pass_usd": round(cost / passed, 7) if passed else None,
        "requests_by_endpoint": {f.name: len(f.requests) - before[f.name] for f in fakes},
        "fallbacks": int(_counter("strategos_model_fallbacks") - fallbacks),
        "cache_hits": int(_counter("strategos_model_cache_hits") - hits),
        "wall_s": round(time.perf_counter() - started, 2),
    }


def _endpoints(fakes: Sequence[FakeEndpoint], tiers: Sequence[Tier]) -> list[ModelEndpoint]:
    return [
        ModelEndpoint(
            name=t.name,
            base_url=f.url,
            model=f"{t.name}-model",
            strength=t.strength,
            price=ModelPrice(
                prompt_per_mtok=t.prompt_per_mtok, completion_per_mtok=t.completion_per_mtok
            ),
        )
        for f, t in zip(fakes, tiers, strict=True)
    ]


@contextmanager
def _redis_prefix() -> Iterator[str]:
    prefix = f"bench-mixed-{uuid.uuid4().hex[:8]}"
    try:
        yield prefix
    finally:
        client = redis.Redis.from_url(REDIS_URL)
        keys = list(client.scan_iter(match=f"{prefix}*"))
        if keys:
            client.delete(*keys)
        client.close()


async def scripted_runs(items: Sequence[Item]) -> dict[str, Any]:
    """Always-the-strongest, routing, routing under 429s, and routing with the cache twice."""
    fakes = [FakeEndpoint(t.name, _answer(t), latency_s=t.latency_s) for t in TIERS]
    results: dict[str, Any] = {}
    with serving(*fakes):
        every = _endpoints(fakes, TIERS)
        base: dict[str, Any] = {"temperature": 0.0, "model_seed": 0}
        results["always_strongest"] = await run_policy(
            Settings(model_endpoints=[every[-1]], **base), items, fakes
        )
        results["routing"] = await run_policy(Settings(model_endpoints=every, **base), items, fakes)
        fakes[0].fail_every, fakes[1].fail_every = 3, 5  # small: 1 in 3 is a 429, mid 1 in 5
        results["routing_with_429s"] = await run_policy(
            Settings(model_endpoints=every, **base), items, fakes
        )
        fakes[0].fail_every = fakes[1].fail_every = 0
        with _redis_prefix() as prefix:
            cached = Settings(
                model_endpoints=every,
                response_cache=True,
                redis_url=REDIS_URL,
                redis_prefix=prefix,
                **base,
            )
            results["routing_cached_first_pass"] = await run_policy(cached, items, fakes)
            results["routing_cached_repeat"] = await run_policy(cached, items, fakes)
    repeat = results["routing_cached_repeat"]
    repeat["cache_hit_rate"] = round(repeat["cache_hits"] / repeat["calls"], 3)
    return results


def _server_cpu_s() -> float:
    """CPU-seconds (user + system) of this process's children so far: the llama-server."""
    ticks = os.sysconf("SC_CLK_TCK")
    total = 0
    me = str(os.getpid())
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[1] == me:  # ppid
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total / ticks


async def real_run(calls: int) -> dict[str, Any]:
    """A few greedy calls on the bundled model: CPU-priced cost against measured CPU time."""
    goals = [
        "Write is_even(n) returning True for even integers.",
        "Write reverse_words(s) that reverses the order of words in s.",
        "Write clamp(x, lo, hi) that limits x to the range [lo, hi].",
    ][:calls]
    system = "# role: coder@1\nAnswer with one short Python function in a code block."
    with _redis_prefix() as prefix:
        settings = Settings(
            max_completion_tokens=96, response_cache=True, redis_url=REDIS_URL, redis_prefix=prefix
        )
        deps, model = ServiceDeps(settings), await asyncio.to_thread(chat_model, settings)
        cpu0, t0, tokens, cost = _server_cpu_s(), time.perf_counter(), [0, 0], 0.0
        for goal in goals:
            _, usage = await deps.ask_text(model, system, goal, temperature=0.0, seed=0)
            tokens[0] += usage["prompt_tokens"]
            tokens[1] += usage["completion_tokens"]
            cost += usage.get("cost_usd", 0.0)
        cpu, wall = _server_cpu_s() - cpu0, time.perf_counter() - t0
        t1, repeat_cost = time.perf_counter(), 0.0
        for goal in goals:
            _, usage = await deps.ask_text(model, system, goal, temperature=0.0, seed=0)
            repeat_cost += usage.get("cost_usd", 0.0)
        repeat_wall = time.perf_counter() - t1
    priced_cpu = cost / settings.local_cpu_second_usd
    return {
        "load_average_after": [round(x, 2) for x in os.getloadavg()],
        "calls": len(goals),
        "prompt_tokens": tokens[0],
        "completion_tokens": tokens[1],
        "cost_usd": round(cost, 8),
        "priced_cpu_s": round(priced_cpu, 2),
        "measured_server_cpu_s": round(cpu, 2),
        "wall_s": round(wall, 2),
        "repeat_cost_usd": round(repeat_cost, 8),
        "repeat_wall_s": round(repeat_wall, 3),
    }


def table(results: dict[str, Any]) -> str:
    """The Markdown table of docs/benchmarks.md."""
    rows = [
        "| policy | calls | pass rate | first try | cost (USD) | cost per pass | "
        "small / mid / big requests | fallbacks | cache hits | wall (s) |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, r in results["scripted"].items():
        by = r["requests_by_endpoint"]
        rows.append(
            f"| {name} | {r['calls']} | {r['pass_rate']:.0%} | {r['first_try_pass_rate']:.0%} | "
            f"{r['cost_usd']:.6f} | {r['cost_per_pass_usd'] or 0:.7f} | "
            f"{by['small']} / {by['mid']} / {by['big']} | {r['fallbacks']} | "
            f"{r['cache_hits']} | {r['wall_s']} |"
        )
    return "\n".join(rows)


async def main(out: Path | None, real: bool) -> dict[str, Any]:
    items = workload()
    results: dict[str, Any] = {
        "benchmark": "mixed workload: cost-aware routing vs always-the-strongest, cache",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "workload": {
            "items": len(items),
            "seed": SEED,
            "repairs": REPAIRS,
            "by_role": dict(Counter(i.role for i in items)),
            "by_needs": dict(Counter(i.needs for i in items)),
            "tiers": [t.__dict__ for t in TIERS],
        },
        "scripted": await scripted_runs(items),
    }
    if real:
        results["real_model"] = await real_run(3)
    print(table(results))
    if real:
        print(json.dumps(results["real_model"], indent=2))
    if out:
        out.write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--out", type=Path)
    parser.add_argument("--real", action="store_true", help="add the bundled-model run")
    args = parser.parse_args()
    asyncio.run(main(args.out, args.real))
