"""Sandbox start-up benchmark: cold start and warm dispatch of `print(1)` for every backend.

    .venv/bin/python -m bench.sandbox.bench_sandbox [--runs 100] [--out bench/sandbox/results.json]

Each sample is one full `run_python({"main.py": "print(1)"}, "main.py")` as the tools call it,
timed from the call to the returned result (workspace, cgroup and container set-up and
teardown included), and checked to have printed `1`.

- cold: a new sandbox is built for the call (local without pool, gVisor, E2B via the executor
  without pool);
- warm: the call is dispatched to a pre-started sandbox of the local warm pool (directly, or
  behind the E2B executor); the pool is refilled before the next sample, as between two tool
  calls of an agent.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import statistics
import subprocess
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from tools.sandbox import LocalSandbox, SandboxResult
from tools.sandbox.e2b import E2BSandbox
from tools.sandbox.executor import ExecutorServer
from tools.sandbox.gvisor import GVisorSandbox

HERE = Path(__file__).resolve().parent
FILES = {"main.py": "print(1)\n"}
ANCHORS = {
    "E2B (public, cloud micro-VM)": "150–200 ms",
    "Firecracker (public, VM boot)": "≤ 125 ms",
    "gVisor (public)": "260–300 ms",
}


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    index = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[index]


async def measure(
    name: str,
    call: Callable[[], Awaitable[SandboxResult]],
    runs: int,
    between: Callable[[], Awaitable[None]] | None = None,
) -> dict[str, Any]:
    first = await call()  # probe / connection set-up, not counted
    assert first.stdout == "1\n", first
    samples: list[float] = []
    for _ in range(runs):
        if between is not None:
            await between()
        start = time.perf_counter()
        result = await call()
        samples.append((time.perf_counter() - start) * 1000)
        assert result.ok and result.stdout == "1\n", result
    row = {
        "backend": name,
        "runs": runs,
        "p50_ms": round(statistics.median(samples), 1),
        "p95_ms": round(percentile(samples, 95), 1),
        "min_ms": round(min(samples), 1),
        "max_ms": round(max(samples), 1),
        "mean_ms": round(statistics.fmean(samples), 1),
    }
    print(json.dumps(row), flush=True)
    return row


async def wait_full(sandbox: LocalSandbox) -> None:
    for _ in range(1000):
        if len(sandbox._idle) >= sandbox.pool_size:
            return
        await asyncio.sleep(0.005)


async def main_async(runs: int) -> dict[str, Any]:
    load_before = os.getloadavg()
    rows: list[dict[str, Any]] = []

    async def bare() -> SandboxResult:
        """The floor: the same interpreter as a plain subprocess, no isolation at all."""
        start = time.monotonic()
        proc = await asyncio.create_subprocess_exec(
            "/usr/bin/python3", "-c", FILES["main.py"], stdout=asyncio.subprocess.PIPE
        )
        out, _ = await proc.communicate()
        return SandboxResult(
            exit_code=proc.returncode or 0,
            stdout=out.decode(),
            stderr="",
            timed_out=False,
            duration_s=time.monotonic() - start,
            output_truncated=False,
        )

    rows.append(await measure("no sandbox: bare python3 subprocess (floor)", bare, runs))

    local = LocalSandbox()
    rows.append(
        await measure(
            "local (bubblewrap + cgroup), cold", lambda: local.run_python(FILES, "main.py"), runs
        )
    )

    pooled = LocalSandbox(pool_size=2)
    await pooled.start_pool()
    rows.append(
        await measure(
            "local, warm pool (2 pre-started)",
            lambda: pooled.run_python(FILES, "main.py"),
            runs,
            between=lambda: wait_full(pooled),
        )
    )
    await pooled.aclose()

    gvisor = GVisorSandbox()
    rows.append(
        await measure(
            "gVisor runsc (ptrace), cold", lambda: gvisor.run_python(FILES, "main.py"), runs
        )
    )
    gvisor.close()

    with ExecutorServer() as server:
        e2b = E2BSandbox(debug=True, sandbox_url=server.url)
        rows.append(
            await measure(
                "E2B SDK → local executor, cold", lambda: e2b.run_python(FILES, "main.py"), runs
            )
        )

    with ExecutorServer(pool_size=2) as server:
        e2b = E2BSandbox(debug=True, sandbox_url=server.url)

        async def settle() -> None:
            await asyncio.sleep(0.15)  # the executor's pool refills in its own thread

        rows.append(
            await measure(
                "E2B SDK → local executor, warm pool",
                lambda: e2b.run_python(FILES, "main.py"),
                runs,
                between=settle,
            )
        )

    runsc = subprocess.run(["runsc", "--version"], capture_output=True, text=True, check=False)
    return {
        "benchmark": "sandbox start-up, print(1), end to end per call",
        "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
        "machine": {
            "cpus": os.cpu_count(),
            "kernel": platform.release(),
            "python_in_sandbox": subprocess.run(
                ["/usr/bin/python3", "--version"], capture_output=True, text=True, check=False
            ).stdout.strip(),
            "runsc": runsc.stdout.splitlines()[0] if runsc.stdout else None,
            "load_average_before": [round(x, 2) for x in load_before],
            "load_average_after": [round(x, 2) for x in os.getloadavg()],
            "shared": "another job (a test suite with a llama-server) ran on the same 2 cores",
        },
        "results": rows,
        "anchors": ANCHORS,
    }


def table(data: dict[str, Any]) -> str:
    lines = [
        "| backend | runs | p50 ms | p95 ms | min ms | max ms |",
        "|---|---|---|---|---|---|",
    ]
    for row in data["results"]:
        lines.append(
            f"| {row['backend']} | {row['runs']} | {row['p50_ms']} | {row['p95_ms']} "
            f"| {row['min_ms']} | {row['max_ms']} |"
        )
    for name, value in data["anchors"].items():
        lines.append(f"| {name} | – | {value} | – | – | – |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description="Sandbox start-up benchmark")
    parser.add_argument("--runs", type=int, default=100)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    data = asyncio.run(main_async(args.runs))
    args.out.write_text(json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    print(table(data))


if __name__ == "__main__":
    main()
