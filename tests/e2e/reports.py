"""What holds for any model output: a task's report is well-formed and true to the files."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from tools.checks import entry_point_of, extract_spec_checks, parse_report, runner_files

STATUSES = {"delivered", "not_delivered"}


def spec_results(goal: str, code: str) -> tuple[int, int]:
    """(passed, total) of the goal's own examples against `code`, run outside the product."""
    entry = entry_point_of(goal, code)
    checks = extract_spec_checks(goal, entry) if entry else []
    with tempfile.TemporaryDirectory() as folder:
        for name, text in runner_files({"solution.py": code}, checks).items():
            (Path(folder) / name).write_text(text)
        done = subprocess.run(
            [sys.executable, "run_checks.py"],
            cwd=folder,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )
    report = parse_report(done.stdout, done.stderr, done.returncode, timed_out=False)
    passed = sum(1 for o in report.outcomes if o.passed and o.source == "spec")
    return passed, len(checks)


def assert_report_tells_the_truth(goal: str, report: dict[str, Any], out: Path) -> None:
    """The report has its fields, and a delivery's examples score what the report says."""
    assert report["status"] in STATUSES, report
    assert report["model_calls"] >= 1 and report["prompt_tokens"] > 0, report
    tests = report["tests"]
    assert 0 <= tests["spec_passed"] <= tests["spec_total"], report
    if report["status"] != "delivered":
        assert not report["files"], report
        return
    assert "solution.py" in report["files"], report
    for name in report["files"]:
        assert (out / name).is_file(), f"{name} is in the report but was not delivered"
    assert (out / "REPORT.json").is_file()
    code = (out / "solution.py").read_text()
    assert spec_results(goal, code) == (tests["spec_passed"], tests["spec_total"]), report
