"""CPU seconds an instance spends on a push, and an optional py-spy profile of one instance.

The docs estimated ~0.3 s of CPU per task in the Aegra process; this measures it. Each
instance's long-lived processes (the `strategos serve` wrapper, its uvicorn child and anything
alive at both ends of the push) are read from `/proc/<pid>/stat` before and after: their own
user+system time is the instance's CPU; the time of the children they reaped meanwhile
(`cutime`+`cstime`: the sandboxed test runs, which are short-lived) plus the processes born
during the push and still alive is reported apart, as `children_s`.

`Profiler` runs `py-spy record` (a bench extra, never a runtime dependency) on one instance's
uvicorn process for the push and writes the folded stacks, a speedscope file of them and a short
text summary: the top functions by own samples and the share of samples by package group.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

TICK = os.sysconf("SC_CLK_TCK")
ROOT = Path(__file__).resolve().parents[2]

Times = dict[int, tuple[float, float, str]]
"""pid → (own user+system s, reaped children's user+system s, command name)."""

GROUPS = {
    "langgraph": "langgraph",
    "langchain": "langgraph",
    "psycopg": "psycopg",
    "psycopg_pool": "psycopg",
    "sqlalchemy": "sqlalchemy",
    "asyncpg": "asyncpg",
    "redis": "redis",
    "json": "json/orjson",
    "orjson": "json/orjson",
    "ormsgpack": "json/orjson",
    "aegra_api": "aegra_api",
    "asyncio": "asyncio",
    "uvicorn": "uvicorn/starlette",
    "starlette": "uvicorn/starlette",
    "fastapi": "uvicorn/starlette",
    "click": "uvicorn/starlette",
    "opentelemetry": "opentelemetry",
    "pydantic": "pydantic",
    "pydantic_core": "pydantic",
}
GROUPS.update({p: "strategos" for p in ("graphs", "nodes", "tools", "memory", "eval", "service")})


def times(pids: list[int]) -> Times:
    """Read the CPU times of a process tree (its root first) from `/proc`.

    A process gone meanwhile is left out. Processes are named by role: the root `wrapper`,
    the one running `-m uvicorn` `uvicorn`, the others by their command name.
    """
    out: Times = {}
    for pid in pids:
        try:
            stat = Path(f"/proc/{pid}/stat").read_text()
            cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        if b"uvicorn" in cmdline:
            comm = "uvicorn"
        elif pid == pids[0]:
            comm = "wrapper"
        fields = stat[stat.rindex(")") + 2 :].split()  # from field 3, `state`
        utime, stime, cutime, cstime = (int(f) / TICK for f in fields[11:15])
        out[pid] = (utime + stime, cutime + cstime, comm)
    return out


def cpu_used(before: Times, after: Times) -> dict[str, Any]:
    """CPU seconds between two readings of one instance's process tree."""
    lasting = before.keys() & after.keys()
    by_process: dict[str, float] = {}
    for pid in lasting:
        name = after[pid][2]
        by_process[name] = by_process.get(name, 0.0) + after[pid][0] - before[pid][0]
    instance = sum(by_process.values())
    reaped = sum(after[p][1] - before[p][1] for p in lasting)
    born = sum(after[p][0] + after[p][1] for p in after.keys() - lasting)
    return {
        "instance_s": round(instance, 2),
        "children_s": round(reaped + born, 2),
        "total_s": round(instance + reaped + born, 2),
        "by_process_s": {
            k: round(v, 2) for k, v in sorted(by_process.items(), key=lambda kv: -kv[1])
        },
    }


def per_task(cpu: dict[str, dict[str, Any]], tasks: int, wall_s: float) -> dict[str, Any]:
    """Totals over the instances, per finished task and as a share of the machine's cores."""
    total = {k: sum(c[k] for c in cpu.values()) for k in ("instance_s", "children_s", "total_s")}
    cores = os.cpu_count() or 1
    return {
        "per_instance": cpu,
        **{k: round(v, 2) for k, v in total.items()},
        "instance_s_per_task": round(total["instance_s"] / tasks, 3) if tasks else None,
        "children_s_per_task": round(total["children_s"] / tasks, 3) if tasks else None,
        "total_s_per_task": round(total["total_s"] / tasks, 3) if tasks else None,
        "busy_cores": round(total["total_s"] / wall_s, 2) if wall_s > 0 else None,
        "cores": cores,
    }


def uvicorn_pid(wrapper_pid: int, tree: Callable[[int], list[int]]) -> int:
    """The instance's uvicorn process: the descendant running `-m uvicorn`, else the wrapper."""
    for pid in tree(wrapper_pid)[1:]:
        with contextlib.suppress(OSError):
            if b"uvicorn" in Path(f"/proc/{pid}/cmdline").read_bytes():
                return pid
    return wrapper_pid


class Profiler:
    """`py-spy record` of one process for the push, summarised when stopped."""

    def __init__(self, out_dir: Path, pid: int) -> None:
        self.out_dir = out_dir
        self.folded = out_dir / "profile.folded.txt"
        self.proc: subprocess.Popen[bytes] | None = None
        exe = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
        if not Path(exe).exists():
            raise SystemExit("--profile needs py-spy: pip install -c constraints.txt py-spy")
        out_dir.mkdir(parents=True, exist_ok=True)
        # --gil: only threads holding the GIL, i.e. running Python, not waiting in C or I/O.
        cmd = [exe, "record", "--pid", str(pid), "--format", "raw", "--nonblocking", "--gil"]
        self.proc = subprocess.Popen([*cmd, "--full-filenames", "--output", str(self.folded)])

    def stop(self) -> dict[str, Any]:
        """Stop recording (py-spy writes its file on SIGINT); write the speedscope and summary."""
        if self.proc is None:
            return {}
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        if not self.folded.exists():
            return {"error": "py-spy wrote no profile (ptrace not permitted?)"}
        stacks = read_folded(self.folded.read_text())
        speedscope = self.out_dir / "profile.speedscope.json"
        speedscope.write_text(json.dumps(to_speedscope(stacks, "aegra instance i0")))
        summary = summarize(stacks)
        (self.out_dir / "profile_summary.txt").write_text(render(summary))
        return summary


def read_folded(text: str) -> list[tuple[list[str], int]]:
    """py-spy's raw output: `frame;frame;… count` per line, the leaf last."""
    stacks = []
    for line in text.splitlines():
        stack, _, count = line.rpartition(" ")
        if stack and count.isdigit():
            stacks.append((stack.split(";"), int(count)))
    return stacks


def short_path(frame: str) -> str:
    """A frame's file relative to site-packages, the standard library or this repository."""
    path = frame[frame.rfind("(") + 1 :].rsplit(":", 1)[0]
    for marker in ("site-packages/", f"/python{sys.version_info[0]}.{sys.version_info[1]}/"):
        if marker in path:
            return path.split(marker, 1)[1]
    return path.removeprefix(f"{ROOT}/")


def package(frame: str) -> str:
    """The top-level package of a frame `func (path/file.py:line)`; stdlib modules by name."""
    head = short_path(frame).lstrip("/").split("/")[0]
    return head.removesuffix(".py") or "?"


def group_of(frame: str) -> str:
    """The frame's package group (`GROUPS`), else `stdlib` or `other`."""
    name = package(frame)
    if name in GROUPS:
        return GROUPS[name]
    return "stdlib" if name in sys.stdlib_module_names or name.startswith("<frozen") else "other"


def summarize(stacks: list[tuple[list[str], int]], top: int = 20) -> dict[str, Any]:
    """Top functions by own samples; per group, own and inclusive shares of all samples."""
    total = sum(n for _, n in stacks) or 1
    leaves: Counter[str] = Counter()
    own: Counter[str] = Counter()
    inclusive: Counter[str] = Counter()
    for frames, n in stacks:
        code = [f for f in frames if "(" in f and not f.startswith(("process ", "thread "))]
        if not code:
            continue
        leaf = code[-1]
        leaves[f"{leaf[: leaf.rfind(' (')]} ({short_path(leaf)})"] += n
        own[group_of(code[-1])] += n
        for group in {group_of(f) for f in code}:
            inclusive[group] += n
    return {
        "samples": total,
        "top_functions": [(f, round(100 * n / total, 1)) for f, n in leaves.most_common(top)],
        "own_pct": {g: round(100 * n / total, 1) for g, n in own.most_common()},
        "inclusive_pct": {g: round(100 * n / total, 1) for g, n in inclusive.most_common()},
    }


def render(summary: dict[str, Any]) -> str:
    """The summary as text: groups first, then the functions."""
    lines = [f"samples: {summary['samples']}", "", "group: own % / inclusive %"]
    for group, pct in summary["own_pct"].items():
        lines.append(f"  {group:<20} {pct:5.1f} / {summary['inclusive_pct'].get(group, 0):5.1f}")
    lines += ["", "top functions by own samples (%):"]
    lines += [f"  {pct:5.1f}  {func}" for func, pct in summary["top_functions"]]
    return "\n".join(lines) + "\n"


def to_speedscope(stacks: list[tuple[list[str], int]], name: str) -> dict[str, Any]:
    """Folded stacks as a speedscope 'sampled' profile (open it at speedscope.app)."""
    index: dict[str, int] = {}
    samples, weights = [], []
    for frames, n in stacks:
        samples.append([index.setdefault(f, len(index)) for f in frames])
        weights.append(n)
    return {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "shared": {"frames": [{"name": f} for f in index]},
        "profiles": [
            {
                "type": "sampled",
                "name": name,
                "unit": "none",
                "startValue": 0,
                "endValue": sum(weights),
                "samples": samples,
                "weights": weights,
            }
        ],
    }
