"""Orchestration overhead per step: the selection team against a raw LangGraph graph of its shape.

    .venv/bin/python -m bench.orchestration.bench_steps [--tasks 60] [--warmup 3] [--batch 5]
        [--stores sqlite,postgres] [--durability sync,async,exit] [--ledger same|memory]
        [--sandbox-runs 10] [--pg-url postgresql://postgres@127.0.0.1:5432/test]
        [--out bench/orchestration/results.json] [--quick]

Every task of the execution-first team pays LangGraph's own cost per superstep (scheduling,
reducers, checkpoints) and the team's on top (nodes, gateway, ledger, stream writes, a richer
state to serialize). To see the second part, the team runs end to end on the scripted model (no
model time) on a small goal, and `raw_graph.build_raw_graph` — the same nodes, supersteps and
`Send` fan-out with no-op nodes and a state of the same size — runs beside it on the same
checkpointer, for each durability mode (`durability=` of `astream`). The judge's sandboxed run
is replayed from a recording (`raw_graph.ReplaySandbox`) and its real duration reported apart.

Timing: one task is one `astream` call (stream modes `updates`, `custom`, `tasks`, as the CLI
plus task events), from the call to the end of the stream, so everything a durability mode
defers to the end is inside. A superstep starts when its first task starts (the `tasks`
stream); the first interval includes the input step, the last one the final checkpoint.
The cases are interleaved, `--batch` tasks each in a rotating order, so that other jobs' load
on a shared machine falls on every case alike.

Bytes per step: the checkpoint tables' payload (SQLite `checkpoints` and `writes`; PostgreSQL
`checkpoints`, `checkpoint_blobs`, `checkpoint_writes`) of the case's threads, over its
supersteps. PostgreSQL runs in a fresh schema dropped at the end; SQLite in a temporary folder.
With `--ledger same` the team's tool ledger lives next to the checkpoints, as in production;
`--ledger memory` puts it in an in-memory SQLite database (attribution only).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import importlib.metadata
import json
import math
import os
import platform
import sqlite3
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain_core.runnables import RunnableConfig
from langgraph.checkpoint.memory import InMemorySaver
from langgraph.pregel import Pregel
from langgraph.types import Durability, StreamMode

from bench.orchestration.raw_graph import Payload, ReplaySandbox, build_raw_graph, state_bytes
from bench.orchestration.stores import LedgerMeter, Store, postgres_store, sqlite_store
from graphs.context import TeamContext
from service.llm.scripted import ScriptedChatModel
from service.settings import Settings
from service.team_deps import compile_selection
from tools.builtin import default_registry
from tools.gateway import ToolGateway
from tools.ledger import SqliteLedger
from tools.sandbox import LocalSandbox

GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
ANSWER = "Here it is:\n```python\ndef add(a, b):\n    return a + b\n```\n"
STREAM_MODES: list[StreamMode] = ["updates", "custom", "tasks"]
DURABILITIES: tuple[Durability, ...] = ("sync", "async", "exit")
GRAPHS = ("team", "raw")
PG_URL = os.environ.get("STRATEGOS_TEST_PG", "postgresql://postgres@127.0.0.1:5432/test")
PACKAGES = (
    "langgraph",
    "langgraph-checkpoint",
    "langgraph-checkpoint-sqlite",
    "langgraph-checkpoint-postgres",
    "aiosqlite",
    "psycopg",
    "pydantic",
)


async def timed_run(
    graph: Pregel[Any, Any, Any, Any],
    config: RunnableConfig,
    durability: Durability,
    context: TeamContext | None = None,
) -> list[float]:
    """Superstep boundaries (perf_counter seconds), from the call to the end of the stream."""
    bounds = [time.perf_counter()]
    finished = False
    async for mode, chunk in graph.astream(
        {"goal": GOAL}, config, context=context, stream_mode=STREAM_MODES, durability=durability
    ):
        if mode != "tasks":
            continue
        if "input" in chunk:  # a task starts: the first of a superstep after a finished one
            if finished:
                bounds.append(time.perf_counter())
                finished = False
        else:
            finished = True
    bounds.append(time.perf_counter())
    return bounds


def pct(values: list[float], p: float) -> float:
    """Nearest-rank percentile."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


class Bench:
    """Both graphs on one store, task by task, with the timings they took."""

    def __init__(self, store: Store, sandbox: ReplaySandbox, payload: Payload, folder: Path):
        self.store = store
        self.settings = Settings(data_dir=folder / "data")
        self.folder = folder
        self.model = ScriptedChatModel.model_validate(
            {"script": {"rules": [{"role": "coder", "reply": ANSWER}]}}
        )
        self.gateway = ToolGateway(default_registry(), store.ledger, sandbox=sandbox)
        self.team = compile_selection(store.saver, self.settings)
        samples = self.settings.samples
        self.raw = build_raw_graph(samples, payload).compile(checkpointer=store.saver)
        self.timings: dict[tuple[str, Durability], list[list[float]]] = {}
        self.meter = LedgerMeter(store.ledger)
        self.ledger_use: dict[tuple[str, Durability], list[tuple[int, float]]] = {}

    def graph(self, name: str) -> Pregel[Any, Any, Any, Any]:
        """The compiled team or raw graph."""
        return self.team if name == "team" else self.raw

    async def task(self, graph: str, durability: Durability, thread_id: str) -> list[float]:
        """One task of `graph`; the context (a pydantic dataclass) is built before the clock."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}, "recursion_limit": 100}
        if graph == "raw":
            return await timed_run(self.raw, config, durability)
        context = TeamContext(
            model=self.model,
            out_dir=str(self.folder / "out" / thread_id),
            approve="auto",
            use_memory=False,
            gateway=self.gateway,
        )
        return await timed_run(self.team, config, durability, context)

    async def check(self, graph: str, thread_id: str) -> None:
        """A warm-up task went the intended way (the team delivered, the raw graph fanned out)."""
        config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
        values = (await self.graph(graph).aget_state(config)).values
        if graph == "team" and values.get("report", {}).get("status") != "delivered":
            raise RuntimeError(f"the team did not deliver: {values.get('report')}")
        if graph == "raw" and len(values.get("pool", [])) != self.settings.samples + 1:
            raise RuntimeError("the raw graph did not fan out")

    async def run(
        self, tasks: int, warmup: int, batch: int, durabilities: list[Durability]
    ) -> None:
        """Warm each case up, then run them interleaved until each has `tasks` timed tasks."""
        cases = [(g, d) for d in durabilities for g in GRAPHS]
        for graph, durability in cases:
            for n in range(warmup):
                thread_id = f"w{n}-{self.store.name}-{durability}-{graph}"
                await self.task(graph, durability, thread_id)
                await self.check(graph, thread_id)
            self.timings[(graph, durability)] = []
        rounds = 0
        while any(len(t) < tasks for t in self.timings.values()):
            shift = rounds % len(cases)
            for graph, durability in cases[shift:] + cases[:shift]:
                done = self.timings[(graph, durability)]
                gc.collect()
                for _ in range(min(batch, tasks - len(done))):
                    thread_id = f"{self.store.name}-{durability}-{graph}-{len(done):05d}"
                    statements, seconds = self.meter.reading()
                    done.append(await self.task(graph, durability, thread_id))
                    now = self.meter.reading()
                    used = self.ledger_use.setdefault((graph, durability), [])
                    used.append((now[0] - statements, now[1] - seconds))
            rounds += 1

    async def rows(self) -> list[dict[str, Any]]:
        """One row per case: per-step and per-task percentiles, bytes stored per step."""
        rows = []
        for (graph, durability), runs in self.timings.items():
            name = self.store.name
            row = {"store": name, "durability": durability, "graph": graph, **figures(runs)}
            stored, checkpoints = await self.store.stored(f"{name}-{durability}-{graph}-")
            row["checkpoints_per_task"] = round(checkpoints / len(runs), 2)
            row["checkpoint_bytes_per_step"] = round(stored / (len(runs) * row["supersteps"]))
            used = self.ledger_use.get((graph, durability), [(0, 0.0)])
            row["ledger_statements_per_task"] = round(sum(n for n, _ in used) / len(used), 2)
            row["ledger_ms_per_task_p50"] = round(pct([s * 1000 for _, s in used], 50), 3)
            rows.append(row)
        return rows


def figures(runs: list[list[float]]) -> dict[str, Any]:
    """Percentiles of tasks' superstep boundaries: per step, per task, per superstep."""
    steps = [(b[i + 1] - b[i]) * 1000 for b in runs for i in range(len(b) - 1)]
    totals = [(b[-1] - b[0]) * 1000 for b in runs]
    supersteps = sorted(len(b) - 1 for b in runs)[len(runs) // 2]
    by_step = [
        [(b[i + 1] - b[i]) * 1000 for b in runs if len(b) - 1 == supersteps]
        for i in range(supersteps)
    ]
    return {
        "tasks": len(runs),
        "supersteps": supersteps,
        "step_p50_ms": round(pct(steps, 50), 3),
        "step_p95_ms": round(pct(steps, 95), 3),
        "task_p50_ms": round(pct(totals, 50), 3),
        "task_p95_ms": round(pct(totals, 95), 3),
        "task_mean_ms": round(sum(totals) / len(totals), 3),
        "superstep_p50_ms": [round(pct(s, 50), 3) for s in by_step],
    }


async def calibrate(sandbox: ReplaySandbox, folder: Path) -> tuple[Payload, dict[str, list[int]]]:
    """The raw graph's padding, from the team's state size after each of its supersteps."""
    ledger = SqliteLedger(":memory:")
    await ledger.setup()
    try:
        store = Store("calibration", InMemorySaver(), ledger, _nothing_stored)
        team = Bench(store, sandbox, Payload(0, 0, 0, 0, 0), folder)
        team_sizes = await _state_sizes(team, "team")
        payload = Payload.matching(team_sizes, team.settings.samples)
        raw_sizes = await _state_sizes(Bench(store, sandbox, payload, folder), "raw")
    finally:
        await ledger.close()
    return payload, {"team": team_sizes, "raw": raw_sizes}


async def _state_sizes(bench: Bench, graph: str) -> list[int]:
    """Serialized state bytes of one task after its input and after each node's superstep."""
    thread_id = f"calibration-{graph}"
    await bench.task(graph, "sync", thread_id)
    await bench.check(graph, thread_id)
    config: RunnableConfig = {"configurable": {"thread_id": thread_id}}
    history = [s async for s in bench.graph(graph).aget_state_history(config)]
    return [state_bytes(s.values) for s in reversed(history) if s.metadata["step"] >= 0]


async def _nothing_stored(prefix: str) -> tuple[int, int]:
    return 0, 0


def machine_facts(note: str) -> dict[str, Any]:
    """What the numbers depend on, and how busy the machine was."""
    versions = {}
    for name in PACKAGES:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = "missing"
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "packages": versions,
        "note": note,
    }


def cpu_pressure() -> float | None:
    """Linux PSI: the share of the last minute some runnable task waited for a CPU (%)."""
    try:
        fields = dict(f.split("=", 1) for f in Path("/proc/pressure/cpu").read_text().split()[1:5])
    except (OSError, ValueError):
        return None
    return float(fields["avg60"]) if "avg60" in fields else None


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    """Calibrate, run every store's cases, and return the results document."""
    load_before, pressure_before = os.getloadavg(), cpu_pressure()
    rows: list[dict[str, Any]] = []
    sandbox = ReplaySandbox(LocalSandbox())
    with tempfile.TemporaryDirectory(prefix="bench-orchestration-") as tmp:
        folder = Path(tmp)
        payload, sizes = await calibrate(sandbox, folder)
        for name in args.stores:
            opened = (
                sqlite_store(folder / name, args.ledger)
                if name == "sqlite"
                else postgres_store(args.pg_url, args.ledger)
            )
            (folder / name).mkdir(exist_ok=True)
            async with opened as store:
                bench = Bench(store, sandbox, payload, folder / name)
                await bench.run(args.tasks, args.warmup, args.batch, args.durability)
                rows += await bench.rows()
        real = [s * 1000 for s in await sandbox.measure(args.sandbox_runs)]
    ratios = []
    for team in (r for r in rows if r["graph"] == "team"):
        raw = next(r for r in rows if r["graph"] == "raw" and r["store"] == team["store"]
                   and r["durability"] == team["durability"])  # fmt: skip
        ratios.append(
            {
                "store": team["store"],
                "durability": team["durability"],
                **{
                    key: round(team[key] / raw[key], 2)
                    for key in ("task_p50_ms", "step_p50_ms", "step_p95_ms")
                },
            }
        )
    return {
        "benchmark": "orchestration overhead per superstep: selection team vs raw LangGraph graph",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "tasks": args.tasks,
        "warmup": args.warmup,
        "batch": args.batch,
        "ledger": args.ledger,
        "goal": GOAL,
        "stream_modes": STREAM_MODES,
        "raw_payload_chars": payload.as_dict(),
        "state_bytes_after_each_step": sizes,
        "sandbox": {
            "in_table": "excluded: the judge's run is replayed from a recording after one real run",
            "replays": sandbox.replays,
            "real_runs": len(real),
            "real_p50_ms": round(pct(real, 50), 3) if real else None,
            "real_p95_ms": round(pct(real, 95), 3) if real else None,
        },
        "machine": {
            **machine_facts(args.note),
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "cpu_pressure_some_avg60_before": pressure_before,
            "cpu_pressure_some_avg60_after": cpu_pressure(),
        },
        "results": rows,
        "ratios": ratios,
    }


def table(document: dict[str, Any]) -> str:
    """The results as the Markdown table of the README."""
    lines = [
        "| store | durability | graph | step p50 ms | step p95 ms | task p50 ms | task p95 ms "
        "| bytes / step | ledger statements / task | ledger ms / task | team/raw (task p50) |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    ratio = {(r["store"], r["durability"]): r["task_p50_ms"] for r in document["ratios"]}
    for r in document["results"]:
        team = r["graph"] == "team"
        lines.append(
            f"| {r['store']} | {r['durability']} | {r['graph']} | {r['step_p50_ms']:.2f} "
            f"| {r['step_p95_ms']:.2f} | {r['task_p50_ms']:.2f} | {r['task_p95_ms']:.2f} "
            f"| {r['checkpoint_bytes_per_step']:,} | {r['ledger_statements_per_task']:g} "
            f"| {r['ledger_ms_per_task_p50']:.2f} "
            f"| {str(ratio[(r['store'], r['durability'])]) + '×' if team else ''} |"
        )
    return "\n".join(lines)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; `--quick` is the test's few tasks on SQLite only."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--tasks", type=int, default=60, help="timed tasks per case")
    parser.add_argument("--warmup", type=int, default=3, help="untimed tasks per case first")
    parser.add_argument("--batch", type=int, default=5, help="tasks per case per round")
    parser.add_argument("--stores", default="sqlite,postgres")
    parser.add_argument("--durability", default=",".join(DURABILITIES))
    parser.add_argument("--ledger", choices=("same", "memory"), default="same")
    parser.add_argument("--sandbox-runs", type=int, default=10)
    parser.add_argument("--pg-url", default=PG_URL)
    parser.add_argument("--out", type=Path, default=Path("bench/orchestration/results.json"))
    parser.add_argument("--note", default="")
    parser.add_argument("--quick", action="store_true", help="3 tasks, SQLite only")
    args = parser.parse_args(argv)
    if args.quick:
        args.tasks, args.warmup, args.batch, args.stores, args.sandbox_runs = 3, 1, 3, "sqlite", 1
    args.stores = [s for s in args.stores.split(",") if s]
    args.durability = [d for d in args.durability.split(",") if d]
    if not set(args.stores) <= {"sqlite", "postgres"} or not args.stores:
        parser.error("--stores takes sqlite and/or postgres")
    if not set(args.durability) <= set(DURABILITIES) or not args.durability:
        parser.error(f"--durability takes some of {', '.join(DURABILITIES)}")
    return args


def main(argv: list[str] | None = None) -> None:
    """Run, print the table, write `--out`."""
    args = parse_args(argv)
    document = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(document, indent=1) + "\n")
    print(table(document))
    print(f"sandbox (excluded above): {document['sandbox']}")


if __name__ == "__main__":
    main()
