"""The bundled model on the bundled server: the machine's floor for every team figure.

    .venv/bin/python -m bench.model.bench_model [--quick] [--out bench/model/results.json]
        [--spec-types ngram-simple,ngram-mod] [--note TEXT]

A team call can never be faster than one request to `llama-server` on this machine, so each
later team figure (wall time per task, calls in parallel, prompt budgets) is read against the
numbers here. The server is the project's own (`service.llm.local_model.running_server`: same
binary, GGUF, threads and per-slot context), with `--parallel 4` as the team runs it. Parts:

- `single_sequence`: time to first token against prompt size and prompt tokens/s (prompt
  caching off, every prompt different), then generation tokens/s of one sequence;
- `concurrency`: 1, 2 and 4 sequences at once (different prompts): aggregate and per-sequence
  generation tokens/s, since the team samples its candidates on parallel slots;
- `prefix_reuse`: one long shared prefix with different tails, consecutive and concurrent,
  `cache_prompt: true`: prompt tokens the server evaluated against those sent, and wall time
  saved, since the team's prompts share their instructions and the goal;
- `speculative`: a repair-like request (a ~40-line function to return with one fix) with
  `--spec-type none` (the server of the parts above) and each draft-free `ngram-*` type (a
  server of its own each), greedy: which one the project should turn on for repair calls.

All requests are greedy (temperature 0) on the native `/completion` endpoint, streamed, with
the server's own `timings`. `--quick` shrinks every part to check that the script works (and
runs only `none` and `ngram-simple`); its figures are not for reading.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import shlex
import statistics
import sys
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from rich.console import Console

from bench.model.repair import CASES, repair_requests
from bench.model.report import markdown
from bench.model.server import (
    Completion,
    Run,
    bench_server,
    binary,
    client_for_bench,
    complete,
    machine,
    other_model_servers,
    rate,
    spec_types,
    timed_batch,
    warm_up,
)
from service.settings import Settings, get_settings

PARALLEL = 4
"""Slots of every server here: the team's default (`Settings.llama_parallel`)."""

DEFAULT_OUT = Path(__file__).with_name("results.json")
CONSOLE = Console(stderr=True)


@dataclass(frozen=True)
class Plan:
    """How much each part does; `QUICK` only checks that everything runs."""

    prompt_sizes: tuple[int, ...]
    repetitions: int
    generation_prompt: int
    generation_tokens: int
    concurrency: tuple[int, ...]
    concurrency_prompt: int
    concurrency_tokens: int
    prefix_tokens: int
    tail_tokens: int
    prefix_requests: int
    prefix_generation: int
    repair_cases: int
    repair_repetitions: int
    repair_tokens: int
    repair_lines: int = 0
    """Lines of each repair case's code in the prompt (0: the whole ~40-line function)."""


FULL = Plan(
    prompt_sizes=(128, 512, 1024, 2048),
    repetitions=3,
    generation_prompt=64,
    generation_tokens=128,
    concurrency=(1, 2, 4),
    concurrency_prompt=64,
    concurrency_tokens=96,
    prefix_tokens=1536,
    tail_tokens=32,
    prefix_requests=4,
    prefix_generation=16,
    repair_cases=len(CASES),
    repair_repetitions=2,
    repair_tokens=1024,
)
QUICK = Plan(
    prompt_sizes=(32, 64),
    repetitions=1,
    generation_prompt=16,
    generation_tokens=6,
    concurrency=(1, 2, 4),
    concurrency_prompt=8,
    concurrency_tokens=4,
    prefix_tokens=64,
    tail_tokens=8,
    prefix_requests=2,
    prefix_generation=2,
    repair_cases=1,
    repair_repetitions=1,
    repair_tokens=16,
    repair_lines=16,
)
QUICK_SPEC_TYPES = ("ngram-simple",)


async def single_sequence(run: Run, plan: Plan) -> dict[str, Any]:
    """Time to first token and prompt tokens/s per prompt size, then generation tokens/s."""
    sizes: list[dict[str, Any]] = []
    for size in plan.prompt_sizes:
        done: list[Completion] = []
        for rep in range(plan.repetitions):
            CONSOLE.log(f"single sequence: {size}-token prompt, {rep + 1}/{plan.repetitions}")
            prompt = await run.prompt(size)
            done.append(
                await complete(run.client, run.base, prompt, n_predict=1, cache_prompt=False)
            )
        sizes.append(
            {
                "prompt_tokens": size,
                "ttft_s_median": round(statistics.median(c.ttft_s for c in done), 3),
                "prompt_tokens_per_s": round(
                    rate(sum(c.prompt_n for c in done), sum(c.prompt_ms for c in done) / 1000), 2
                ),
                "requests": [c.row() for c in done],
            }
        )
    generations: list[Completion] = []
    for rep in range(plan.repetitions):
        CONSOLE.log(f"single sequence: {plan.generation_tokens} tokens generated, {rep + 1}")
        prompt = await run.prompt(plan.generation_prompt)
        generations.append(
            await complete(
                run.client, run.base, prompt, n_predict=plan.generation_tokens, cache_prompt=False
            )
        )
    return {
        "ttft_by_prompt_size": sizes,
        "prompt_tokens_per_s": sizes[-1]["prompt_tokens_per_s"],
        "generation_tokens_per_s": round(
            statistics.median(c.generation_tokens_per_s for c in generations), 2
        ),
        "generation_requests": [c.row() for c in generations],
    }


async def concurrency(run: Run, plan: Plan) -> dict[str, Any]:
    """Aggregate and per-sequence generation tokens/s with 1, 2 and 4 sequences at once."""
    levels: list[dict[str, Any]] = []
    for level in plan.concurrency:
        rounds: list[dict[str, Any]] = []
        for rep in range(plan.repetitions):
            CONSOLE.log(f"concurrency: {level} sequences, {rep + 1}/{plan.repetitions}")
            prompts = [await run.prompt(plan.concurrency_prompt) for _ in range(level)]
            done, wall, window = await timed_batch(
                run, prompts, plan.concurrency_tokens, cache_prompt=False
            )
            # The first token of each sequence comes out of its prompt's batch, not a decode.
            decoded = sum(c.predicted_n - 1 for c in done)
            rounds.append(
                {
                    "wall_s": round(wall, 3),
                    "decode_window_s": round(window, 3),
                    "aggregate_tokens_per_s": round(rate(decoded, window), 2),
                    "per_sequence_tokens_per_s": round(
                        statistics.mean(c.generation_tokens_per_s for c in done), 2
                    ),
                    "requests": [c.row() for c in done],
                }
            )
        levels.append(
            {
                "sequences": level,
                "aggregate_tokens_per_s": statistics.median(
                    r["aggregate_tokens_per_s"] for r in rounds
                ),
                "per_sequence_tokens_per_s": statistics.median(
                    r["per_sequence_tokens_per_s"] for r in rounds
                ),
                "wall_s_median": statistics.median(r["wall_s"] for r in rounds),
                "rounds": rounds,
            }
        )
    return {
        "prompt_tokens": plan.concurrency_prompt,
        "tokens": plan.concurrency_tokens,
        "levels": levels,
    }


def reuse_summary(done: Sequence[Completion]) -> dict[str, Any]:
    """Tokens sent and evaluated and the wall time of a group of requests."""
    return {
        "sent_tokens": sum(c.sent_tokens for c in done),
        "evaluated_tokens": sum(c.prompt_n for c in done),
        "cached_tokens": sum(c.cache_n for c in done),
        "prompt_ms": round(sum(c.prompt_ms for c in done), 1),
    }


async def prefix_reuse(run: Run, plan: Plan) -> dict[str, Any]:
    """One shared prefix, different tails, `cache_prompt: true`: what the server re-evaluates.

    Consecutive: the first request is cold, the others find the prefix in a slot. Concurrent:
    a first round of requests at once with a fresh prefix (can slots share a prefix none of
    them holds yet?), then a second round with new tails (each slot now holds it).
    """
    n_predict = plan.prefix_generation
    prefix = await run.prompt(plan.prefix_tokens)
    consecutive: list[Completion] = []
    for index in range(plan.prefix_requests):
        CONSOLE.log(f"prefix reuse: consecutive request {index + 1}/{plan.prefix_requests}")
        tail = await run.prompt(plan.tail_tokens)
        consecutive.append(
            await complete(
                run.client, run.base, prefix + tail, n_predict=n_predict, cache_prompt=True
            )
        )
    cold, warm = consecutive[0], consecutive[1:]
    warm_wall = statistics.mean(c.wall_s for c in warm)
    prefix = await run.prompt(plan.prefix_tokens)
    rounds: list[dict[str, Any]] = []
    for name in ("cold", "warm"):
        CONSOLE.log(f"prefix reuse: {plan.prefix_requests} concurrent requests, {name}")
        tails = [await run.prompt(plan.tail_tokens) for _ in range(plan.prefix_requests)]
        done, wall, _ = await timed_batch(run, [prefix + t for t in tails], n_predict, True)
        rounds.append({"round": name, "wall_s": round(wall, 3), **reuse_summary(done)})
        rounds[-1]["requests"] = [c.row() for c in done]
    return {
        "prefix_tokens": plan.prefix_tokens,
        "tail_tokens": plan.tail_tokens,
        "consecutive": {
            "cold": {"wall_s": round(cold.wall_s, 3), **reuse_summary([cold])},
            "warm": {"wall_s_mean": round(warm_wall, 3), **reuse_summary(warm)},
            "wall_saved_s_per_request": round(cold.wall_s - warm_wall, 3),
            "requests": [c.row() for c in consecutive],
        },
        "concurrent": {
            "rounds": rounds,
            "wall_saved_s": round(rounds[0]["wall_s"] - rounds[1]["wall_s"], 3),
        },
    }


def spec_row(spec_type: str, done: Sequence[tuple[str, Completion]]) -> dict[str, Any]:
    """One speculative type's figures over the repair requests."""
    drafted = sum(c.draft_n or 0 for _, c in done)
    accepted = sum(c.draft_n_accepted or 0 for _, c in done)
    generated = sum(c.predicted_n for _, c in done)
    return {
        "spec_type": spec_type,
        "wall_s": round(sum(c.wall_s for _, c in done), 3),
        "generated_tokens": generated,
        "generation_tokens_per_s": round(
            rate(generated, sum(c.predicted_ms for _, c in done) / 1000), 2
        ),
        "draft_tokens": drafted,
        "accepted_tokens": accepted,
        "acceptance": round(accepted / drafted, 3) if drafted else None,
        "requests": [{"case": name, **c.row()} for name, c in done],
    }


async def speculative(
    settings: Settings, plan: Plan, types: Sequence[str], none: Run, none_flags: dict[str, Any]
) -> dict[str, Any]:
    """Repair requests on one server per speculative type; which is fastest here.

    `none` is the server of the other parts (started with `--spec-type none`, its slots idle
    and the repair requests do not use the prompt cache): one server start less.
    """
    limits = (plan.repair_cases, plan.repair_repetitions, plan.repair_tokens, plan.repair_lines)
    CONSOLE.log("speculative decoding: --spec-type none")
    measured = [("none", none_flags, await repair_requests(none, *limits))]
    for spec_type in types:
        CONSOLE.log(f"speculative decoding: --spec-type {spec_type}")
        with bench_server(settings, spec_type) as server:
            async with client_for_bench() as client:
                run = Run(client, server.base, itertools.count(10_000))
                await warm_up(run)
                measured.append((spec_type, server.flags, await repair_requests(run, *limits)))
    baseline = [c.content for _, c in measured[0][2]]
    none_wall = sum(c.wall_s for _, c in measured[0][2])
    rows = []
    for spec_type, _, done in measured:
        row = spec_row(spec_type, done)
        # Greedy decoding verified token by token should not change the answer.
        row["same_output_as_none"] = [c.content for _, c in done] == baseline
        row["speedup_vs_none"] = round(none_wall / row["wall_s"], 2) if row["wall_s"] else None
        rows.append(row)
    fastest = min(rows, key=lambda row: float(row["wall_s"]))
    return {
        "cases": [case.name for case in CASES[: plan.repair_cases]],
        "repetitions": plan.repair_repetitions,
        "max_tokens": plan.repair_tokens,
        "code_lines": plan.repair_lines or "all",
        "types": rows,
        "fastest": fastest["spec_type"],
        "servers": {spec_type: flags for spec_type, flags, _ in measured},
    }


async def bench(plan: Plan, types: Sequence[str], note: str) -> dict[str, Any]:
    """Every part, the machine and the server flags, as one JSON document."""
    settings = get_settings().model_copy(update={"llama_parallel": PARALLEL})
    facts = machine(settings)
    started = time.perf_counter()
    with bench_server(settings) as server:
        async with client_for_bench() as client:
            run = Run(client, server.base, itertools.count(1))
            await warm_up(run)
            single = await single_sequence(run, plan)
            concurrent = await concurrency(run, plan)
            prefix = await prefix_reuse(run, plan)
            spec = await speculative(settings, plan, types, run, server.flags)
    facts["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    facts["other_llama_servers_after"] = other_model_servers()
    facts["note"] = note
    return {
        "benchmark": "bundled model on the bundled llama-server: the machine's floor",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "quick": plan == QUICK,
        "duration_s": round(time.perf_counter() - started, 1),
        "plan": asdict(plan),
        "machine": facts,
        "server": server.flags,
        "single_sequence": single,
        "concurrency": concurrent,
        "prefix_reuse": prefix,
        "speculative": spec,
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Parse the options, run the parts, write the JSON and print the tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--quick", action="store_true", help="tiny version of every part")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument(
        "--spec-types",
        default=None,
        help="comma-separated ngram-* types (default: every one the build lists; "
        "--quick: ngram-simple)",
    )
    parser.add_argument("--note", default="", help="free text stored with the machine facts")
    args = parser.parse_args(argv)
    plan = QUICK if args.quick else FULL
    available = spec_types(binary(get_settings()))
    wanted = args.spec_types.split(",") if args.spec_types else None
    if wanted is None:
        wanted = [t for t in QUICK_SPEC_TYPES if t in available] if args.quick else available
    unknown = sorted(set(wanted) - set(available))
    if unknown:
        parser.error(f"this llama-server does not list {unknown}; it has {available}")
    data = asyncio.run(bench(plan, wanted, args.note))
    options = list(argv) if argv is not None else sys.argv[1:]
    data["command"] = shlex.join([".venv/bin/python", "-m", "bench.model.bench_model", *options])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    print(markdown(data))
    CONSOLE.log(f"wrote {args.out} in {data['duration_s']} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
