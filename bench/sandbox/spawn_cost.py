"""What starting one host process costs a large server, by event loop and by spawn path.

    .venv/bin/python -m bench.sandbox.spawn_cost [--rss-mb 900] [--runs 200]
        [--out bench/sandbox/spawn_cost.json]

The served instance is a ~900 MB process on uvloop; each sandboxed run starts bwrap. This
process first grows to `--rss-mb` of touched memory (a stand-in for the server's heap), then
starts `/bin/cat` `--runs` times per variant, writes a line to it, reads it back and reaps it,
and reports wall and this process's CPU time (user + system) per start:

- `asyncio.create_subprocess_exec` (what the sandbox used before), on the standard loop and on
  uvloop (libuv forks, copying the page tables of the whole heap);
- `tools.sandbox.spawn.spawn` (Popen, which vforks, with the pipes attached to the loop).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import uvloop

from tools.sandbox.spawn import spawn

HERE = Path(__file__).resolve().parent
PAGE = 4096


async def _via_asyncio() -> None:
    proc = await asyncio.create_subprocess_exec(
        "/bin/cat",
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        start_new_session=True,
        env={},
    )
    out, _ = await proc.communicate(b"ping\n")
    if out != b"ping\n":
        raise RuntimeError(f"cat echoed {out!r}")


async def _via_spawn() -> None:
    proc = await spawn(["/bin/cat"], stdin=True, env={})
    assert proc.stdin is not None and proc.stdout is not None and proc.stderr is not None
    proc.stdin.write(b"ping\n")
    await proc.stdin.drain()
    proc.stdin.close()
    out = await proc.stdout.read()
    await proc.stderr.read()
    if await proc.wait() != 0 or out != b"ping\n":
        raise RuntimeError(f"cat echoed {out!r}")


async def _measure(start: Callable[[], Awaitable[None]], runs: int) -> dict[str, float]:
    await start()  # warm-up: imports and the first pipe set-up are not the steady state
    wall0, cpu0 = time.perf_counter(), time.process_time()
    for _ in range(runs):
        await start()
    wall, cpu = time.perf_counter() - wall0, time.process_time() - cpu0
    return {"wall_ms_per_start": 1e3 * wall / runs, "cpu_ms_per_start": 1e3 * cpu / runs}


def _grow(rss_mb: int) -> bytearray:
    heap = bytearray(rss_mb * 1024 * 1024)
    for offset in range(0, len(heap), PAGE):
        heap[offset] = 1  # touched, so the pages are mapped and fork must copy their tables
    return heap


def run(rss_mb: int, runs: int) -> dict[str, Any]:
    """Measure every variant in this process, heap grown first."""
    heap = _grow(rss_mb)
    rows = []
    for loop_name, runner in (("asyncio", asyncio.run), ("uvloop", uvloop.run)):
        for path, start in (("create_subprocess_exec", _via_asyncio), ("spawn", _via_spawn)):
            result = runner(_measure(start, runs))
            rows.append({"loop": loop_name, "path": path, "runs": runs, **result})
    return {
        "rss_mb": rss_mb,
        "heap_bytes": len(heap),
        "machine": {"cpus": os.cpu_count(), "kernel": platform.release()},
        "rows": rows,
    }


def table(results: dict[str, Any]) -> str:
    """The markdown table of a run."""
    lines = [
        "| loop | spawn path | starts | wall ms / start | CPU ms / start |",
        "|---|---|---|---|---|",
    ]
    for row in results["rows"]:
        lines.append(
            f"| {row['loop']} | `{row['path']}` | {row['runs']} | "
            f"{row['wall_ms_per_start']:.2f} | {row['cpu_ms_per_start']:.2f} |"
        )
    return "\n".join(lines)


def main() -> None:
    """Run, print the table, write the JSON."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rss-mb", type=int, default=900)
    parser.add_argument("--runs", type=int, default=200)
    parser.add_argument("--out", type=Path, default=HERE / "spawn_cost.json")
    args = parser.parse_args()
    results = run(args.rss_mb, args.runs)
    args.out.write_text(json.dumps(results, indent=2) + "\n")
    print(table(results))


if __name__ == "__main__":
    main()
