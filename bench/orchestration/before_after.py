"""A change's effect on the team's cost per step: two source trees timed in one interleaved run.

    .venv/bin/python -m bench.orchestration.before_after --before ../before [--after .]
        [--tasks 60] [--warmup 3] [--batch 5] [--stores sqlite,postgres]
        [--durability sync,async,exit] [--out bench/orchestration/before_after.json]

`--before` is a copy of the project's source tree from before the change (with this folder in
it). A change worth a few milliseconds a task is smaller than what other jobs on a shared
machine do to two runs made one after the other, so the two trees are timed together instead:
one worker process per tree (started in that tree, so it imports that tree's code) runs the
same tasks as `bench_steps`, `--batch` at a time, the trees and cases taking turns until each
has `--tasks`. The raw graph's code is the same in both trees; its rows are the control that
the two workers saw the same machine.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import IO, Any

from bench.orchestration.bench_steps import (
    DURABILITIES,
    GRAPHS,
    PG_URL,
    Bench,
    calibrate,
    figures,
)
from bench.orchestration.raw_graph import ReplaySandbox
from bench.orchestration.stores import postgres_store, sqlite_store
from tools.sandbox import LocalSandbox

TREES = ("before", "after")
CASE = ("store", "durability", "graph")


async def serve(store_name: str, pg_url: str) -> None:
    """Worker: run `graph durability count` requests from stdin, answer with their bounds."""
    sandbox = ReplaySandbox(LocalSandbox())
    with tempfile.TemporaryDirectory(prefix="bench-before-after-") as tmp:
        folder = Path(tmp)
        payload, _ = await calibrate(sandbox, folder)
        (folder / store_name).mkdir()
        opened = (
            sqlite_store(folder / store_name, "same")
            if store_name == "sqlite"
            else postgres_store(pg_url, "same")
        )
        async with opened as store:
            bench = Bench(store, sandbox, payload, folder / store_name)
            print(json.dumps({"ready": True}), flush=True)
            done = 0
            while line := await asyncio.to_thread(sys.stdin.readline):
                graph, durability, count = str(line).split()
                mode = next(d for d in DURABILITIES if d == durability)
                runs = []
                gc.collect()
                for _ in range(int(count)):
                    thread_id = f"{store_name}-{durability}-{graph}-{done:05d}"
                    runs.append(await bench.task(graph, mode, thread_id))
                    done += 1
                print(json.dumps({"runs": runs}), flush=True)


class Worker:
    """A `serve` process started in one source tree."""

    def __init__(self, tree: Path, store: str, pg_url: str) -> None:
        command = [sys.executable, "-m", "bench.orchestration.before_after", "--serve", store]
        self.process = subprocess.Popen(
            [*command, "--pg-url", pg_url],
            cwd=tree,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        self._read()

    def _read(self) -> dict[str, Any]:
        out: IO[str] | None = self.process.stdout
        line = out.readline() if out is not None else ""
        if not line:
            raise RuntimeError(f"worker exited with {self.process.wait()}")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def run(self, graph: str, durability: str, count: int) -> list[list[float]]:
        """`count` tasks of one case, as superstep boundaries."""
        assert self.process.stdin is not None
        self.process.stdin.write(f"{graph} {durability} {count}\n")
        self.process.stdin.flush()
        runs: list[list[float]] = self._read()["runs"]
        return runs

    def close(self) -> None:
        """End the worker (it drops its PostgreSQL schema on the way out)."""
        if self.process.stdin is not None:
            self.process.stdin.close()
        self.process.wait(timeout=120)


def compare(args: argparse.Namespace) -> dict[str, Any]:
    """Time both trees interleaved on each store; rows per tree and case, and the changes."""
    rows: list[dict[str, Any]] = []
    cases = [(g, d) for d in args.durability for g in GRAPHS]
    for store in args.stores:
        workers = {tree: Worker(path, store, args.pg_url) for tree, path in args.trees.items()}
        try:
            for (graph, durability), worker in ((c, w) for c in cases for w in workers.values()):
                worker.run(graph, durability, args.warmup)
            timings: dict[tuple[str, str, str], list[list[float]]] = {}
            turn = 0
            while turn * args.batch < args.tasks:
                count = min(args.batch, args.tasks - turn * args.batch)
                for graph, durability in cases[turn % len(cases) :] + cases[: turn % len(cases)]:
                    for tree in TREES[turn % 2 :] + TREES[: turn % 2]:
                        runs = workers[tree].run(graph, durability, count)
                        timings.setdefault((tree, graph, durability), []).extend(runs)
                turn += 1
        finally:
            for worker in workers.values():
                worker.close()
        for (tree, graph, durability), runs in timings.items():
            rows.append(
                {"tree": tree, "store": store, "durability": durability, "graph": graph}
                | figures(runs)
            )
    changes = [
        {k: after[k] for k in CASE}
        | {
            f"{key}_change": round(after[key] / before[key] - 1, 3)
            for key in ("task_p50_ms", "task_mean_ms", "step_p50_ms")
        }
        for before, after in pairs(rows)
    ]
    return {
        "benchmark": "orchestration cost per step, two source trees interleaved",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        # Which tree is which, not where they were on the machine that ran it.
        "trees": {tree: path.name for tree, path in args.trees.items()},
        "tasks": args.tasks,
        "warmup": args.warmup,
        "batch": args.batch,
        "note": args.note,
        "results": sorted(rows, key=lambda r: (r["store"], r["durability"], r["graph"], r["tree"])),
        "changes": changes,
    }


def pairs(rows: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    """Each case's before row with its after row."""
    before = {tuple(r[k] for k in CASE): r for r in rows if r["tree"] == "before"}
    return [(before[tuple(r[k] for k in CASE)], r) for r in rows if r["tree"] == "after"]


def table(document: dict[str, Any]) -> str:
    """Before and after side by side, task p50 and mean, step p50."""
    lines = [
        "| store | durability | graph | task p50 ms before → after | task mean ms before → after "
        "| step p50 ms before → after |",
        "|---|---|---|---|---|---|",
    ]
    for before, after in pairs(document["results"]):
        cells = [
            f"{before[k]:.2f} → {after[k]:.2f} ({after[k] / before[k] - 1:+.0%})"
            for k in ("task_p50_ms", "task_mean_ms", "step_p50_ms")
        ]
        lines.append("| " + " | ".join([*(str(after[k]) for k in CASE), *cells]) + " |")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    """Compare (or, with `--serve`, be one tree's worker)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--before", type=Path)
    parser.add_argument("--after", type=Path, default=Path("."))
    parser.add_argument("--tasks", type=int, default=60)
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--batch", type=int, default=5)
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--durability", default=",".join(DURABILITIES))
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--out", type=Path, default=Path("bench/orchestration/before_after.json"))
    parser.add_argument("--note", default="")
    parser.add_argument("--serve", choices=("sqlite", "postgres"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve(args.serve, args.pg_url))
        return
    if args.before is None:
        parser.error("--before is required")
    args.trees = {"before": args.before.resolve(), "after": args.after.resolve()}
    args.stores = [s for s in args.stores.split(",") if s]
    args.durability = [d for d in args.durability.split(",") if d]
    document = compare(args)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(table(document))


if __name__ == "__main__":
    main()
