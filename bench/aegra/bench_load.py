"""Serving at load: N concurrent scripted tasks on two Aegra instances (issue #5).

Two `strategos serve` instances share one fresh PostgreSQL database and one Redis prefix. N tasks
(thread + background run, context `approve="auto"`, a small goal) are submitted as fast as
possible through `langgraph_sdk`, round robin over the instances. Each task is the scripted team
of the crash test: coder, tester and reviewer model calls of LATENCY_S each, the tester's real
sandboxed test run (bubblewrap), then `deliver_files` through the gateway and its ledger.

Completion is polled from Aegra's `runs` table (one query for all runs; `runs.join`/`wait` add
about 2 s each). Reported: submit → done p50/p95 per task (done = the run row's `updated_at` when
it reached a final status), wall time, throughput against two ideals (the concurrency Aegra
allows — workers x jobs per worker per instance — at LATENCY_S x 3 per task, and unlimited
concurrency), RSS of each instance (wrapper, uvicorn child and their descendants, e.g. sandbox
processes) sampled every second against the number of running runs → memory per active task,
PostgreSQL rows and bytes per task, the sandboxed test-run durations from the ledger, and what
went wrong (run statuses, log errors, PostgreSQL connections, Redis).

    .venv/bin/python -m bench.aegra.bench_load --tasks 1000
    .venv/bin/python -m bench.aegra.bench_load --tasks 2000 --jobs-per-worker 334 --limit-s 330

`--sa-pool 0` keeps Aegra's default pools, which exhaust PostgreSQL's 100 connections.
`--lease-shared-pool` renews the batched leases through Aegra's pool instead of their own
connection. `--otel-exporter none` turns the instances' OpenTelemetry spans off (the default,
`file`, is the product's). CPU seconds per task are read from `/proc` (`bench.aegra.cpu`);
`--profile DIR` records one instance with py-spy.

The results of every invocation are merged into `load_results.json` under `runs.<label>`.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import re
import statistics
import subprocess
import tempfile
import threading
import time
import uuid
from dataclasses import dataclass, field
from importlib.metadata import version
from pathlib import Path
from typing import Any

import psycopg
import redis
from langgraph_sdk import get_client

from bench.aegra import cpu
from service.settings import Settings
from tests.integration.aegra import harness

LATENCY_S = 1.0
FINAL = ("success", "error", "interrupted", "timeout")
SUBMIT_CONCURRENCY = 8
"""Default submissions in flight at once from the client. Each one also holds a PostgreSQL
connection of its own in the instance (the one-writer-per-thread guard), outside every pool."""
TABLE_GROUPS = {
    "checkpoints": (
        "checkpoints",
        "checkpoint_writes",
        "checkpoint_blobs",
        "checkpoint_migrations",
    ),
    "aegra": ("runs", "thread", "assistant", "assistant_versions", "run_events"),
    "ledger": ("strategos_events", "strategos_tool_ledger", "strategos_event_seq"),
}


@dataclass
class Task:
    index: int
    instance: str
    submit_at: float = 0.0
    """Wall clock (time.time) just before the thread was created."""
    thread_id: str = ""
    run_id: str = ""
    error: str = ""


@dataclass
class Sampler:
    """Every second: RSS per instance (process tree) and runs by status."""

    pids: dict[str, int]
    database_url: str
    samples: list[dict[str, Any]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        while not self.stop.is_set():
            row: dict[str, Any] = {"t": time.time(), "rss_mb": {}, "procs": {}}
            for name, pid in self.pids.items():
                tree = process_tree(pid)
                row["rss_mb"][name] = sum(rss_kb(p) for p in tree) / 1024
                row["procs"][name] = len(tree)
            try:
                with psycopg.connect(self.database_url, autocommit=True) as conn:
                    row["status"] = dict(
                        conn.execute("SELECT status, count(*) FROM runs GROUP BY status").fetchall()
                    )
                    row["pg_connections"] = conn.execute(
                        "SELECT count(*) FROM pg_stat_activity"
                    ).fetchone()[0]  # type: ignore[index]
            except psycopg.Error as exc:
                row["db_error"] = str(exc)[:200]
            row["load"] = os.getloadavg()
            self.samples.append(row)
            self.stop.wait(1.0)


def process_tree(pid: int) -> list[int]:
    out = [pid]
    i = 0
    while i < len(out):
        p = out[i]
        i += 1
        try:
            for task in Path(f"/proc/{p}/task").iterdir():
                out += [int(c) for c in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def pctl(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def submit_all(
    instances: list[harness.Instance],
    tasks: list[Task],
    in_flight: int,
    limit_s: float,
) -> None:
    """Submit every task, `in_flight` at a time; stop submitting after `limit_s`."""
    clients = {i.name: get_client(url=i.url, timeout=120.0) for i in instances}
    gate = asyncio.Semaphore(in_flight)

    async def one(task: Task) -> None:
        async with gate:
            client = clients[task.instance]
            task.submit_at = time.time()
            try:
                thread = await client.threads.create()
                task.thread_id = thread["thread_id"]
                run = await client.runs.create(
                    task.thread_id,
                    harness.GRAPH_ID,
                    input={"goal": harness.GOAL},
                    context={"approve": "auto"},  # the harness's policy allows it
                )
                task.run_id = run["run_id"]
            except Exception as exc:  # noqa: BLE001 - recorded per task
                task.error = f"{type(exc).__name__}: {exc}"[:300]

    try:
        await asyncio.wait_for(asyncio.gather(*(one(t) for t in tasks)), timeout=limit_s)
    except TimeoutError:
        for task in tasks:
            if not task.run_id and not task.error:
                task.error = "not submitted within the time limit"
    finally:
        for client in clients.values():
            await client.aclose()


def table_sizes(database_url: str) -> dict[str, dict[str, int]]:
    sizes: dict[str, dict[str, int]] = {}
    with psycopg.connect(database_url, autocommit=True) as conn:
        conn.execute("ANALYZE")
        names = [
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = 'public'"
            ).fetchall()
        ]
        for name in names:
            rows = conn.execute(f'SELECT count(*) FROM "{name}"').fetchone()[0]  # type: ignore[index]
            size = conn.execute("SELECT pg_total_relation_size(%s)", (f'"{name}"',)).fetchone()[0]  # type: ignore[index]
            sizes[name] = {"rows": int(rows), "bytes": int(size)}
    return sizes


def per_task_storage(
    before: dict[str, dict[str, int]], after: dict[str, dict[str, int]], n: int
) -> dict[str, Any]:
    tables: dict[str, dict[str, float]] = {}
    for name, now in sorted(after.items()):
        was = before.get(name, {"rows": 0, "bytes": 0})
        rows, size = now["rows"] - was["rows"], now["bytes"] - was["bytes"]
        if rows or size:
            tables[name] = {
                "rows": rows,
                "bytes": size,
                "rows_per_task": rows / n,
                "bytes_per_task": size / n,
            }
    groups: dict[str, dict[str, float]] = {}
    for group, names in TABLE_GROUPS.items():
        group_rows = sum(tables[t]["rows"] for t in names if t in tables)
        group_bytes = sum(tables[t]["bytes"] for t in names if t in tables)
        groups[group] = {"rows_per_task": group_rows / n, "bytes_per_task": group_bytes / n}
    total_rows = sum(t["rows"] for t in tables.values())
    total_bytes = sum(t["bytes"] for t in tables.values())
    return {
        "tables": tables,
        "groups": groups,
        "rows_per_task": total_rows / n,
        "bytes_per_task": total_bytes / n,
    }


def sandbox_runs(database_url: str, threads: list[str]) -> dict[str, Any]:
    """Durations of the tester's `run_tests` calls (ledger scheduled → finished)."""
    with psycopg.connect(database_url, autocommit=True) as conn:
        rows = conn.execute(
            "SELECT updated_at - created_at FROM strategos_tool_ledger "
            "WHERE tool = 'run_tests' AND state <> 'scheduled' AND thread_id = ANY(%s)",
            (threads,),
        ).fetchall()
    durations = [float(r[0]) for r in rows]
    return {
        "count": len(durations),
        "p50_s": pctl(durations, 0.5),
        "p95_s": pctl(durations, 0.95),
        "max_s": max(durations, default=float("nan")),
    }


def log_errors(instances: list[harness.Instance]) -> dict[str, Any]:
    """Counts of error/exception lines per instance log and a few distinct examples."""
    pattern = re.compile(r"error|exception|traceback|timeout|too many", re.IGNORECASE)
    out: dict[str, Any] = {}
    for inst in instances:
        text = inst.log.read_text(errors="replace") if inst.log.exists() else ""
        hits = [line for line in text.splitlines() if pattern.search(line)]
        examples: dict[str, int] = {}
        for line in hits:
            key = re.sub(r"[0-9a-f]{8}-[0-9a-f-]{27}|\d+", "#", line)[:200]
            examples[key] = examples.get(key, 0) + 1
        top = sorted(examples.items(), key=lambda kv: -kv[1])[:12]
        out[inst.name] = {"lines": len(hits), "top": [{"n": n, "line": k} for k, n in top]}
    return out


def redis_facts(prefix: str) -> dict[str, Any]:
    client = redis.Redis.from_url(harness.REDIS_URL)
    try:
        info = client.info()
        keys = sum(1 for _ in client.scan_iter(f"{prefix}*"))
        return {
            "version": info.get("redis_version"),
            "connected_clients": info.get("connected_clients"),
            "used_memory_mb": round(int(info.get("used_memory", 0)) / 2**20, 1),
            "prefix_keys": keys,
        }
    finally:
        client.close()


def pool_env(args: argparse.Namespace) -> dict[str, str]:
    """Aegra's PostgreSQL pools per instance (its defaults: SQLAlchemy 10 + 20 overflow, LangGraph
    checkpointer up to 20; the ledger adds up to 10). `--sa-pool 0`: Aegra's defaults."""
    if not args.sa_pool:
        return {}
    return {
        "SQLALCHEMY_POOL_SIZE": str(args.sa_pool),
        "SQLALCHEMY_MAX_OVERFLOW": str(args.sa_overflow),
        "LANGGRAPH_MIN_POOL_SIZE": str(min(5, args.lg_pool)),
        "LANGGRAPH_MAX_POOL_SIZE": str(args.lg_pool),
    }


def measure(args: argparse.Namespace) -> dict[str, Any]:
    tmp = Path(tempfile.mkdtemp(prefix="strategos-bench-load-"))
    script = harness.crash_script(tmp / "script.json", latency_s=LATENCY_S)
    prefix = f"strategos-bench-load:{uuid.uuid4().hex[:8]}:"
    load_before = os.getloadavg()
    result: dict[str, Any] = {"tasks": args.tasks, "limit_s": args.limit_s}
    with harness.fresh_database() as database_url:
        env = harness.server_env(tmp, database_url, script, prefix)
        env["STRATEGOS_AEGRA_WORKERS"] = str(args.workers)
        env["STRATEGOS_AEGRA_JOBS_PER_WORKER"] = str(args.jobs_per_worker)
        env["STRATEGOS_AEGRA_BATCHED_HEARTBEAT"] = str(not args.per_run_heartbeats).lower()
        env["STRATEGOS_AEGRA_LEASE_OWN_CONNECTION"] = str(not args.lease_shared_pool).lower()
        env["STRATEGOS_OTEL_EXPORTER"] = args.otel_exporter
        env.update(pool_env(args))
        instances: list[harness.Instance] = []
        sampler: Sampler | None = None
        profiler: cpu.Profiler | None = None
        try:
            for k in range(2):  # one after the other: two migrations at once collide
                instances.append(harness.start(f"i{k}", tmp, env))
                harness.wait_ready(instances[-1])
            time.sleep(3.0)  # let both finish their startup work before the baseline
            idle_rss = {
                i.name: sum(rss_kb(p) for p in process_tree(i.proc.pid)) / 1024 for i in instances
            }
            before = table_sizes(database_url)
            sampler = Sampler({i.name: i.proc.pid for i in instances}, database_url)
            thread = threading.Thread(target=sampler.run, daemon=True)
            thread.start()

            tasks = [Task(k, instances[k % 2].name) for k in range(args.tasks)]
            cpu_before = {i.name: cpu.times(process_tree(i.proc.pid)) for i in instances}
            if args.profile:
                target = cpu.uvicorn_pid(instances[0].proc.pid, process_tree)
                profiler = cpu.Profiler(args.profile, target)
            started = time.time()
            asyncio.run(submit_all(instances, tasks, args.submit_concurrency, args.limit_s))
            submitted = time.time()
            print(f"submitted {args.tasks} in {submitted - started:.1f}s", flush=True)
            run_ids = [t.run_id for t in tasks if t.run_id]
            status: dict[str, tuple[str, float]] = {}
            deadline = started + args.limit_s
            last_print = 0.0
            while time.time() < deadline:
                with psycopg.connect(database_url, autocommit=True) as conn:
                    rows = conn.execute(
                        "SELECT run_id::text, status, extract(epoch FROM updated_at) "
                        "FROM runs WHERE run_id::text = ANY(%s)",
                        (run_ids,),
                    ).fetchall()
                status = {str(r[0]): (str(r[1]), float(r[2])) for r in rows}
                done = sum(1 for s, _ in status.values() if s in FINAL)
                if time.time() - last_print > 10:
                    last_print = time.time()
                    print(
                        f"t+{time.time() - started:.0f}s: {done}/{len(run_ids)} final, "
                        f"load {os.getloadavg()[0]:.1f}",
                        flush=True,
                    )
                if done == len(run_ids):
                    break
                time.sleep(0.25)
            finished = time.time()
            cpu_after = {i.name: cpu.times(process_tree(i.proc.pid)) for i in instances}
            sampler.stop.set()
            thread.join(timeout=5)
            after = table_sizes(database_url)
            threads = [t.thread_id for t in tasks if t.thread_id]
            reports = asyncio.run(harness._reports(instances[0].url, threads))
            result |= summarize(
                args, tasks, status, started, submitted, finished, sampler.samples, idle_rss
            )
            used = {n: cpu.cpu_used(cpu_before[n], cpu_after[n]) for n in cpu_before}
            success = result["by_status"].get("success", 0)
            result["cpu"] = cpu.per_task(used, success, finished - started)
            if profiler is not None:
                result["profile"] = profiler.stop()
            result["storage"] = per_task_storage(before, after, args.tasks)
            result["sandbox_test_runs"] = sandbox_runs(database_url, threads)
            statuses: dict[str, int] = {}
            model_calls: dict[str, int] = {}
            for rep in reports.values():
                key = str(rep.get("status"))
                statuses[key] = statuses.get(key, 0) + 1
                calls = str(rep.get("model_calls"))
                model_calls[calls] = model_calls.get(calls, 0) + 1
            result["reports"] = {"status": statuses, "model_calls": model_calls}
            result["redis"] = redis_facts(prefix)
        finally:
            if sampler is not None:
                sampler.stop.set()
            if profiler is not None:
                profiler.stop()
            for inst in instances:
                inst.stop()
            result["log_errors"] = log_errors(instances)
            harness.clean_redis(prefix)
    result["load_before"] = load_before
    result["load_after"] = os.getloadavg()
    print(f"instance logs: {tmp}")  # not in the results: a path of this machine
    return result


def summarize(
    args: argparse.Namespace,
    tasks: list[Task],
    status: dict[str, tuple[str, float]],
    started: float,
    submitted: float,
    finished: float,
    samples: list[dict[str, Any]],
    idle_rss: dict[str, float],
) -> dict[str, Any]:
    latencies: list[float] = []
    by_status: dict[str, int] = {}
    last_done = started
    for task in tasks:
        if not task.run_id:
            by_status["submit_error"] = by_status.get("submit_error", 0) + 1
            continue
        run_status, updated = status.get(task.run_id, ("missing", 0.0))
        by_status[run_status] = by_status.get(run_status, 0) + 1
        if run_status == "success":
            latencies.append(updated - task.submit_at)
            last_done = max(last_done, updated)
    success = by_status.get("success", 0)
    wall = last_done - started if success == args.tasks else finished - started
    concurrency = 2 * args.workers * args.jobs_per_worker
    per_task_model_s = harness.SCRIPTED_CALLS * LATENCY_S
    # At the allowed concurrency: ceil(N / concurrency) waves of 3 s each.
    waves = -(-args.tasks // concurrency)
    ideal_limited_wall = waves * per_task_model_s
    ideal_limited = args.tasks / ideal_limited_wall
    ideal_unlimited = args.tasks / per_task_model_s  # all at once: done after 3 s
    peak_running = max(
        (sum(s.get("status", {}).get(k, 0) for k in ("running",)) for s in samples), default=0
    )
    peak_rss = {
        name: max((s["rss_mb"].get(name, 0.0) for s in samples), default=0.0) for name in idle_rss
    }
    # Per active task: the sample with the most running runs, its RSS above idle.
    busiest = max(samples, key=lambda s: s.get("status", {}).get("running", 0), default=None)
    per_active = None
    if busiest and busiest.get("status", {}).get("running", 0):
        extra = sum(busiest["rss_mb"][n] - idle_rss[n] for n in idle_rss)
        per_active = extra / busiest["status"]["running"]
    peak_extra = sum(peak_rss[n] - idle_rss[n] for n in idle_rss)
    errors = [t.error for t in tasks if t.error]
    return {
        "submit_s": submitted - started,
        "wall_s": wall,
        "by_status": by_status,
        "throughput_tps": success / wall if wall > 0 else 0.0,
        "ideal": {
            "concurrency": concurrency,
            "limited_tps": ideal_limited,
            "limited_wall_s": ideal_limited_wall,
            "unlimited_tps": ideal_unlimited,
            "unlimited_wall_s": per_task_model_s,
        },
        "efficiency_vs_limited": (success / wall) / ideal_limited if wall > 0 else 0.0,
        "submit_to_done_s": {
            "p50": pctl(latencies, 0.5),
            "p95": pctl(latencies, 0.95),
            "max": max(latencies, default=float("nan")),
            "min": min(latencies, default=float("nan")),
            "mean": statistics.fmean(latencies) if latencies else float("nan"),
        },
        "memory": {
            "idle_rss_mb": idle_rss,
            "peak_rss_mb": peak_rss,
            "peak_running": peak_running,
            "per_active_task_mb": per_active,
            "peak_extra_per_peak_running_mb": peak_extra / peak_running if peak_running else None,
        },
        "pg_connections_peak": max((s.get("pg_connections", 0) for s in samples), default=0),
        "max_procs": {n: max((s["procs"].get(n, 0) for s in samples), default=0) for n in idle_rss},
        "load_peak_1m": max((s["load"][0] for s in samples), default=0.0),
        "sampler_db_errors": sorted({s["db_error"] for s in samples if "db_error" in s})[:5],
        "submit_errors": sorted(set(errors))[:10],
        "samples": [
            {
                "t": round(s["t"] - started, 1),
                "rss_mb": {k: round(v, 1) for k, v in s["rss_mb"].items()},
                "procs": s["procs"],
                "status": s.get("status", {}),
                "pg_connections": s.get("pg_connections"),
                "load_1m": s["load"][0],
            }
            for s in samples
        ],
    }


def table_row(label: str, result: dict[str, Any]) -> str:
    """One Markdown row: throughput and CPU seconds per successful task."""
    c = result.get("cpu", {})
    head = "| label | tasks | ok | tasks/s | CPU-s/task instance | + children | busy cores |"
    row = (
        f"| {label} | {result['tasks']} | {result.get('by_status', {}).get('success', 0)} "
        f"| {result.get('throughput_tps', 0.0):.2f} | {c.get('instance_s_per_task')} "
        f"| {c.get('children_s_per_task')} | {c.get('busy_cores')} |"
    )
    return f"{head}\n|---|---|---|---|---|---|---|\n{row}"


def machine() -> dict[str, Any]:
    pg = subprocess.run(
        ["psql", harness.PG_URL.rsplit("/", 1)[0] + "/postgres", "-Atc", "SHOW server_version"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.strip()
    bwrap = subprocess.run(["bwrap", "--version"], capture_output=True, text=True, check=False)
    with psycopg.connect(harness.PG_URL.rsplit("/", 1)[0] + "/postgres") as conn:
        max_conn = conn.execute("SHOW max_connections").fetchone()[0]  # type: ignore[index]
    mem_kb = next(
        int(line.split()[1])
        for line in Path("/proc/meminfo").read_text().splitlines()
        if line.startswith("MemTotal:")
    )
    return {
        "cpus": os.cpu_count(),
        "mem_total_gb": round(mem_kb / 2**20, 1),
        "python": platform.python_version(),
        "kernel": platform.release(),
        "postgresql": pg,
        "pg_max_connections": int(max_conn),
        "bubblewrap": bwrap.stdout.strip(),
        "versions": {
            p: version(p)
            for p in ("aegra-api", "langgraph", "langgraph-sdk", "langgraph-checkpoint-postgres")
        },
    }


def main() -> None:
    defaults = Settings()
    parser = argparse.ArgumentParser()
    parser.add_argument("--tasks", type=int, default=1000)
    parser.add_argument("--workers", type=int, default=defaults.aegra_workers)
    parser.add_argument("--jobs-per-worker", type=int, default=defaults.aegra_jobs_per_worker)
    parser.add_argument("--submit-concurrency", type=int, default=SUBMIT_CONCURRENCY)
    parser.add_argument("--sa-pool", type=int, default=10, help="SQLALCHEMY_POOL_SIZE")
    parser.add_argument("--sa-overflow", type=int, default=5, help="SQLALCHEMY_MAX_OVERFLOW")
    parser.add_argument("--lg-pool", type=int, default=10, help="LANGGRAPH_MAX_POOL_SIZE")
    parser.add_argument("--limit-s", type=float, default=900.0, help="Give up waiting after this.")
    parser.add_argument(
        "--per-run-heartbeats",
        action="store_true",
        help="Aegra's own lease heartbeat per run instead of the batched one.",
    )
    parser.add_argument(
        "--lease-shared-pool",
        action="store_true",
        help="The batched heartbeat renews through Aegra's shared pool, not its own connection.",
    )
    parser.add_argument(
        "--otel-exporter",
        choices=("file", "console", "otlp", "none"),
        default="file",
        help="The instances' STRATEGOS_OTEL_EXPORTER (file is the product's default).",
    )
    parser.add_argument(
        "--profile",
        type=Path,
        default=None,
        help="py-spy the first instance's uvicorn process into this directory.",
    )
    parser.add_argument("--label", default=None)
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("load_results.json"))
    args = parser.parse_args()
    label = args.label or f"n{args.tasks}_c{2 * args.workers * args.jobs_per_worker}"

    result = measure(args)
    result["date"] = time.strftime("%Y-%m-%d %H:%M")
    result["settings"] = {
        "instances": 2,
        "workers": args.workers,
        "jobs_per_worker": args.jobs_per_worker,
        "model_latency_s": LATENCY_S,
        "model_calls_per_task": harness.SCRIPTED_CALLS,
        "submit_concurrency": args.submit_concurrency,
        "pool_env": pool_env(args) or "aegra defaults",
        "lease_heartbeat": "per run" if args.per_run_heartbeats else "batched",
        "lease_connection": "shared pool" if args.lease_shared_pool else "own",
        "otel_exporter": args.otel_exporter,
    }
    data: dict[str, Any] = json.loads(args.out.read_text()) if args.out.exists() else {}
    data["benchmark"] = "aegra serving at load (issue #5)"
    data["machine"] = machine()
    data.setdefault("runs", {})[label] = result
    harness.dump(args.out, data)
    brief = {k: v for k, v in result.items() if k not in ("samples", "storage", "log_errors")}
    print(json.dumps(brief, indent=1, default=str))
    print(table_row(label, result))
    print(f"→ {args.out} [{label}]")


if __name__ == "__main__":
    main()
