"""What a repository task's own machinery costs: ingestion, the diff, the suite in the sandbox.

    .venv/bin/python -m bench.repo.bench_repo [--runs 5] [--out bench/repo/results.json]

A generated package of `modules` modules, each with a test module (every test passes but one),
is ingested from a directory and from a tar.gz upload (`service/repos.py`), a change to three
files is diffed (`tools/repo_diff.py`), and the repository's pytest suite runs through
`run_repo_tests` in the local sandbox. Each is timed `--runs` times; the median is reported.
No model is involved: this is the floor under every repository task.
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import os
import platform
import statistics
import tarfile
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from service.repos import RepoCaps, ingest_archive, ingest_dir
from tools.builtin.run_repo_tests import RunRepoTestsArgs, run_repo_tests
from tools.registry import ToolContext
from tools.repo_diff import diff_snapshots
from tools.sandbox import LocalSandbox
from tools.workspaces import MemoryWorkspace

HERE = Path(__file__).resolve().parent
CAPS = RepoCaps(max_files=10_000, max_bytes=50_000_000, max_upload_bytes=50_000_000)


def package(modules: int) -> dict[str, str]:
    """`modules` modules of a few functions, each with a test module; one test fails."""
    files = {"pkg/__init__.py": "", "tests/__init__.py": ""}
    for i in range(modules):
        body = "".join(f"\n\ndef f{j}(x):\n    return x + {j}\n" for j in range(10))
        files[f"pkg/m{i}.py"] = f'"""Module {i}."""\n' + body
        wrong = 1 if i == 0 else 0
        files[f"tests/test_m{i}.py"] = (
            f"from pkg.m{i} import f1, f2\n\n\n"
            f"def test_f1():\n    assert f1(1) == {2 + wrong}\n\n\n"
            "def test_f2():\n    assert f2(1) == 3\n"
        )
    return files


def _tar(files: dict[str, str]) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for path, text in files.items():
            data = text.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _median_ms(run: Callable[[], object], runs: int) -> float:
    walls = []
    for _ in range(runs):
        started = time.perf_counter()
        run()
        walls.append(time.perf_counter() - started)
    return round(statistics.median(walls) * 1000, 2)


async def _suite_ms(files: dict[str, str], runs: int) -> tuple[float, dict[str, Any]]:
    sandbox = LocalSandbox()
    walls, result = [], None
    for _ in range(runs):
        ctx = ToolContext(MemoryWorkspace(files), tenant_id="bench", task_id="b", sandbox=sandbox)
        started = time.perf_counter()
        result = await run_repo_tests(RunRepoTestsArgs(), ctx)
        walls.append(time.perf_counter() - started)
    assert result is not None
    summary = {"passed": result.tests_passed, "failed": result.tests_failed}
    return round(statistics.median(walls) * 1000, 1), summary


def measure(modules: int, runs: int) -> dict[str, Any]:
    """One repository size: every measurement, as milliseconds (medians)."""
    files = package(modules)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        for path, text in files.items():
            (root / path).parent.mkdir(parents=True, exist_ok=True)
            (root / path).write_text(text)
        ingest_ms = _median_ms(lambda: ingest_dir(root, CAPS), runs)
    upload = _tar(files)
    changed = dict(files)
    for i in range(min(3, modules)):
        changed[f"pkg/m{i}.py"] = files[f"pkg/m{i}.py"].replace("x + 1\n", "x + 1  # fixed\n")
    suite_ms, outcome = asyncio.run(_suite_ms(files, runs))
    return {
        "modules": modules,
        "files": len(files),
        "bytes": sum(len(t.encode()) for t in files.values()),
        "upload_bytes": len(upload),
        "ingest_dir_ms": ingest_ms,
        "ingest_tar_gz_ms": _median_ms(lambda: ingest_archive(upload, CAPS), runs),
        "diff_3_files_ms": _median_ms(lambda: diff_snapshots(files, changed), runs),
        "run_repo_tests_ms": suite_ms,
        "suite": outcome,
    }


def main() -> None:
    """Measure two repository sizes and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--out", type=Path, default=HERE / "results.json")
    args = parser.parse_args()
    rows = [measure(modules, args.runs) for modules in (5, 100)]
    data = {"runs": args.runs, "machine": platform.machine(), "cpus": _cpus(), "rows": rows}
    args.out.write_text(json.dumps(data, indent=2) + "\n")
    for row in rows:
        print(json.dumps(row))


def _cpus() -> int:
    return len(os.sched_getaffinity(0))


if __name__ == "__main__":
    main()
