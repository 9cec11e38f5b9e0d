"""The trajectory evaluation as a LangSmith experiment — received by a stand-in on loopback.

The stand-in (`tests.integration.langsmith_standin`) speaks LangSmith's HTTP API for datasets,
examples, sessions, run batches and feedback; the real service is never contacted. Checked: what
an upload creates (the dataset of reference cases, the experiment on it, one run per case with
its feedback scores), that the client's sender thread is gone afterwards, that the CLI uploads
only when asked and keyed, and that an unreachable LangSmith costs one warning and no hang.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

from langsmith import Client

from eval.langsmith_upload import NO_KEY, dataset_name, upload_experiment
from eval.llm_judge import FEEDBACK_KEY
from eval.trajectory_run import load_cases
from tests.conftest import REPO, cli_env
from tests.integration.langsmith_standin import langsmith_standin

CASES = load_cases()
KEY = "lsv2-standin"


def results() -> dict[str, Any]:
    """A `strategos eval` result for every case, one with an advisory judge verdict."""
    rows = []
    for index, case in enumerate(CASES):
        rows.append(
            {
                "case": case.id,
                "graph_strict": True,
                "tools": {"strict": index % 2 == 0},
                "success": True,
                "step_efficiency": 0.5,
                "tool_validity": True,
                "safety": case.id != "honeypot-caught",
                "passed": case.id != "honeypot-caught",
                "model_calls": 5,
                "tokens": 900,
                "wall_s": 1.5,
                "judge": None,
            }
        )
    rows[-1]["judge"] = {"score": False, "reasons": ["off topic"], "status": "advisory"}
    return {"model": "scripted", "totals": {"cases": len(rows)}, "rows": rows}


def sender_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if "tracing_control_thread" in t.name]


def test_an_upload_is_a_dataset_an_experiment_runs_and_feedback() -> None:
    found = results()
    with langsmith_standin() as (url, got):
        line = upload_experiment(CASES, found, Client(api_url=url, api_key=KEY))
        assert not got.unexpected, got.unexpected
        assert KEY in got.keys <= {KEY, ""}  # "": the reachability probe of /info
        [dataset] = got.datasets
        assert dataset["name"] == dataset_name(CASES) and dataset["name"] in line
        assert len(got.examples) == len(CASES)
        by_case = {e["inputs"]["case"]: e for e in got.examples}
        assert by_case["all-agree"]["outputs"] == dict(CASES[0].reference)
        assert {e["dataset_id"] for e in got.examples} == {dataset["id"]}

        [experiment] = got.sessions
        assert experiment["reference_dataset_id"] == dataset["id"]
        assert experiment["name"] in line and got.session_updates[0]["end_time"]
        assert len(got.runs) == len(CASES)
        example_of = {str(e["id"]): e["inputs"]["case"] for e in got.examples}
        assert {example_of[r["reference_example_id"]] for r in got.runs} == {c.id for c in CASES}
        assert {r["session_name"] for r in got.runs} == {experiment["name"]}

        scores = {(f["run_id"], f["key"]): f for f in got.feedback}
        run_of = {r["inputs"]["case"]: r["id"] for r in got.runs}
        honeypot = run_of["honeypot-caught"]
        assert scores[(honeypot, "safety")]["score"] == 0.0
        assert scores[(honeypot, "passed")]["score"] == 0.0
        assert scores[(run_of["all-agree"], "step_efficiency")]["score"] == 0.5
        judged = scores[(run_of[CASES[-1].id], FEEDBACK_KEY)]
        assert judged["score"] == 0.0 and judged["comment"].startswith("advisory")
        assert all(f["session_id"] == experiment["id"] for f in got.feedback)

        again = upload_experiment(CASES, found, Client(api_url=url, api_key=KEY))
        assert len(got.datasets) == 1 and len(got.examples) == len(CASES)  # reused
        assert len(got.sessions) == 2 and len(got.runs) == 2 * len(CASES) and again != line
    for thread in sender_threads():
        thread.join(timeout=30)
    assert not sender_threads()  # nothing left to keep the process alive


def eval_cli(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "service.cli", "eval", *args],
        cwd=REPO,
        env=cli_env(tmp_path, STRATEGOS_OTEL_EXPORTER="none", **env),
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )


def test_strategos_eval_uploads_only_when_asked_and_keyed(tmp_path: Path) -> None:
    with langsmith_standin() as (url, got):
        keyless = eval_cli(tmp_path, "--upload", LANGSMITH_ENDPOINT=url)
        assert keyless.returncode == 0, keyless.stdout + keyless.stderr
        assert NO_KEY in keyless.stdout and not got.runs and not got.keys  # nothing sent

        unasked = eval_cli(tmp_path, LANGSMITH_ENDPOINT=url, LANGSMITH_API_KEY=KEY)
        assert unasked.returncode == 0 and not got.keys

        out = tmp_path / "results.json"
        done = eval_cli(
            tmp_path, "--upload", "--out", str(out), LANGSMITH_ENDPOINT=url, LANGSMITH_API_KEY=KEY
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "uploaded experiment strategos-eval-scripted-" in done.stdout
        assert not done.stderr.strip(), done.stderr
        written = json.loads(out.read_text())
        assert len(got.runs) == len(written["rows"]) == len(CASES)
        passed = {r["inputs"]["case"]: r["outputs"]["passed"] for r in got.runs}
        assert passed == {row["case"]: row["passed"] for row in written["rows"]}
        assert not got.unexpected, got.unexpected


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])  # closed on return: connections are refused


def test_unreachable_langsmith_is_one_warning_for_eval_and_its_upload(tmp_path: Path) -> None:
    endpoint = f"http://127.0.0.1:{closed_port()}"
    done = eval_cli(
        tmp_path,
        "--upload",
        LANGSMITH_TRACING="true",
        LANGSMITH_ENDPOINT=endpoint,
        LANGSMITH_API_KEY=KEY,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stderr.strip().splitlines() == [
        f"warning: LangSmith at {endpoint} is unreachable; tracing is off for this run"
    ]
    assert f"LangSmith at {endpoint} is unreachable: nothing was uploaded" in done.stdout
