"""N samples of one prompt: N requests at once against one request with N choices.

    .venv/bin/python -m bench.model.bench_choices [--n 4] [--rounds 3] [--out FILE]

The execution-first team draws several samples of the same prompt per round. Sent as N
requests at once, every slot of llama-server evaluates the whole prompt (a slot does not share
a prefix another slot is still reading); asked for N choices (`"n": N` on
`/v1/chat/completions`), the server evaluates the prompt once and copies it to N-1 child slots.
Each round uses a new prompt of the team's shape (so no cache helps either way) and runs both
ways, alternating which goes first; the server's own `timings` give the prompt tokens it
evaluated. Writes `bench/model/choices.json` by default.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.model.server import bench_server, client_for_bench, machine
from nodes.team_prompt import messages
from service.settings import Settings

GOALS = [
    "Write rotate(xs: list[int], k: int) -> list[int] that rotates xs right by k places.",
    "Write vowels(s: str) -> int that counts the vowels of s, upper and lower case.",
    "Write merge(a: list[int], b: list[int]) -> list[int] merging two sorted lists.",
    "Write is_prime(n: int) -> bool for n >= 0.",
    "Write dedupe(xs: list[str]) -> list[str] keeping the first of each repeated item.",
]
MAX_TOKENS = 160


def _body(goal: str, seed: int, n: int) -> dict[str, Any]:
    system, user = messages("coder", f"{goal}\nExample: see the goal.", (), None, 2)
    return {
        "messages": [{"role": "system", "content": system}, {"role": "user", "content": user}],
        "max_tokens": MAX_TOKENS,
        "temperature": 0.8,
        "seed": seed,
        "n": n,
    }


async def _post(client: httpx.AsyncClient, base: str, body: dict[str, Any]) -> dict[str, Any]:
    response = await client.post(f"{base}/v1/chat/completions", json=body, timeout=1800)
    response.raise_for_status()
    data: dict[str, Any] = response.json()
    return data


async def _separate(client: httpx.AsyncClient, base: str, goal: str, n: int) -> dict[str, Any]:
    started = time.monotonic()
    replies = await asyncio.gather(
        *(_post(client, base, _body(goal, 101 + i, 1)) for i in range(n))
    )
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "prompt_evaluated": sum(r["timings"]["prompt_n"] for r in replies),
        "choices": sum(len(r["choices"]) for r in replies),
    }


async def _together(client: httpx.AsyncClient, base: str, goal: str, n: int) -> dict[str, Any]:
    started = time.monotonic()
    reply = await _post(client, base, _body(goal, 101, n))
    return {
        "wall_s": round(time.monotonic() - started, 2),
        "prompt_evaluated": reply["timings"]["prompt_n"],
        "choices": len(reply["choices"]),
    }


async def run(n: int, rounds: int) -> dict[str, Any]:
    """Both ways on `rounds` fresh prompts, on the project's own server."""
    settings = Settings()
    rows: list[dict[str, Any]] = []
    with bench_server(settings) as server:
        async with client_for_bench() as client:
            for index in range(rounds):
                goal = GOALS[index % len(GOALS)] + f" (round {index})"
                order = [_separate, _together] if index % 2 == 0 else [_together, _separate]
                for way in order:
                    result = await way(client, server.base, f"{goal} [{way.__name__}]", n)
                    rows.append({"round": index, "way": way.__name__.strip("_"), **result})
        flags = server.flags
    summary = {
        way: {
            "wall_s_median": statistics.median(r["wall_s"] for r in rows if r["way"] == way),
            "prompt_evaluated_median": statistics.median(
                r["prompt_evaluated"] for r in rows if r["way"] == way
            ),
        }
        for way in ("separate", "together")
    }
    return {
        "n": n,
        "max_tokens": MAX_TOKENS,
        "server": flags,
        "machine": machine(settings),
        "rows": rows,
        "summary": summary,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=4)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("bench/model/choices.json"))
    args = parser.parse_args()
    result = asyncio.run(run(args.n, args.rounds))
    args.out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
