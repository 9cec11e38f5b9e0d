"""The trajectory evaluation as a LangSmith experiment, when LangSmith is configured.

    strategos eval [--model real] --upload

Uploading is asked for (`--upload`), never implied by a key being set: a key set for tracing
must not send evaluation data along. With `LANGSMITH_API_KEY` (and `LANGSMITH_ENDPOINT` for a
self-hosted instance) the results already computed become:

- a dataset of the reference cases (inputs: goal and team; outputs: the reference trajectory),
  named after a digest of the cases, so the same cases are uploaded once and reused;
- an experiment (a project whose reference dataset is that one) with one run per case, its
  outputs the trajectory's measures;
- feedback scores on each run: one per measure, and the LLM judge's verdict when it spoke
  (its comment says whether it counted or was advisory).

Without a key (or with LangSmith unreachable) nothing leaves the machine and one line says so.
The client's background sender is flushed and stopped before returning, so the command never
hangs at exit.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langsmith import Client
from langsmith import utils as ls_utils
from langsmith.schemas import Dataset

from eval.llm_judge import FEEDBACK_KEY
from eval.trajectory_run import Case
from service.cli_tracing import reachable

__all__ = ["FLUSH_TIMEOUT_S", "NO_KEY", "MEASURES", "dataset_name", "upload_experiment"]

FLUSH_TIMEOUT_S = 30.0
"""Longest the upload waits for queued runs to be sent before giving up on them."""
NO_KEY = "LANGSMITH_API_KEY is not set: nothing was uploaded, the results stay on this machine"
MEASURES = ("passed", "success", "graph_strict", "step_efficiency", "tool_validity", "safety")
"""The row's measures sent as feedback scores (booleans as 0/1); plus `tools_strict`."""


def dataset_name(cases: Sequence[Case]) -> str:
    """The dataset's name: the same cases always map to the same dataset."""
    digest = hashlib.sha256(json.dumps([_example(c) for c in cases], sort_keys=True).encode())
    return f"strategos-trajectories-{digest.hexdigest()[:10]}"


def _example(case: Case) -> dict[str, Any]:
    return {
        "inputs": {"goal": case.goal, "team": case.team, "case": case.id},
        "reference_outputs": dict(case.reference),
        "metadata": {"why": case.why},
    }


def _example_id(name: str, case: Case) -> uuid.UUID:
    return uuid.uuid5(uuid.NAMESPACE_URL, f"strategos:{name}:{case.id}")


def _dataset(client: Client, cases: Sequence[Case]) -> tuple[Dataset, dict[str, uuid.UUID]]:
    """The cases' dataset, created with its examples the first time."""
    name = dataset_name(cases)
    ids = {case.id: _example_id(name, case) for case in cases}
    if client.has_dataset(dataset_name=name):
        return client.read_dataset(dataset_name=name), ids
    dataset = client.create_dataset(name, description="Strategos trajectory cases and references")
    examples = [{**_example(case), "id": ids[case.id]} for case in cases]
    client.create_examples(dataset_id=dataset.id, examples=examples)
    return dataset, ids


def _feedback(row: Mapping[str, Any]) -> list[tuple[str, float, str]]:
    """(key, score, comment) for every measure of a row, and the judge's verdict if any."""
    scores = [(key, float(row[key]), "") for key in MEASURES if key in row]
    scores.append(("tools_strict", float(row["tools"]["strict"]), ""))
    verdict = row.get("judge")
    if verdict and verdict.get("score") is not None:
        note = f"{verdict.get('status', 'advisory')}: " + " | ".join(verdict.get("reasons", []))
        scores.append((FEEDBACK_KEY, float(verdict["score"]), note[:2000]))
    return scores


def _runs(
    client: Client,
    experiment: str,
    cases: Sequence[Case],
    found: Mapping[str, Any],
    ids: Mapping[str, uuid.UUID],
) -> list[tuple[uuid.UUID, Mapping[str, Any]]]:
    """One run per case (a trace of its own), linked to the case's example."""
    by_id = {case.id: case for case in cases}
    now = datetime.datetime.now(datetime.UTC)
    runs = []
    for row in found["rows"]:
        case = by_id[row["case"]]
        run_id = uuid.uuid4()
        started = now - datetime.timedelta(seconds=float(row.get("wall_s", 0.0)))
        client.create_run(
            "strategos-task",
            {"goal": case.goal, "team": case.team, "case": case.id},
            "chain",
            project_name=experiment,
            id=run_id,
            trace_id=run_id,
            dotted_order=f"{started:%Y%m%dT%H%M%S%fZ}{run_id}",
            start_time=started,
            end_time=now,
            outputs=dict(row),
            reference_example_id=ids[case.id],
        )
        runs.append((run_id, row))
    return runs


def upload_experiment(
    cases: Sequence[Case], found: Mapping[str, Any], client: Client | None = None
) -> str:
    """Upload `found` (a `strategos eval` result) as an experiment; the line to print."""
    if client is None and ls_utils.get_api_key(None) is None:
        return NO_KEY
    url = client.api_url if client is not None else ls_utils.get_api_url(None)
    if not reachable(url):  # before a client exists: its sender would warn and retry at exit
        return f"LangSmith at {url} is unreachable: nothing was uploaded"
    client = client or Client()
    try:
        dataset, ids = _dataset(client, cases)
        stamp = datetime.datetime.now(datetime.UTC)
        model = found.get("model", "?")
        name = f"strategos-eval-{model}-{stamp:%Y%m%d-%H%M%S}-{uuid.uuid4().hex[:6]}"
        project = client.create_project(
            name,
            reference_dataset_id=dataset.id,
            metadata={"model": found.get("model"), "totals": found.get("totals")},
            description="strategos eval: trajectory measures per case",
        )
        runs = _runs(client, name, cases, found, ids)
        client.flush(timeout=FLUSH_TIMEOUT_S)  # the runs exist before feedback points at them
        for run_id, row in runs:
            for key, score, comment in _feedback(row):
                client.create_feedback(
                    run_id,
                    key,
                    score=score,
                    comment=comment or None,
                    trace_id=run_id,
                    session_id=project.id,
                )
        client.update_project(project.id, end_time=datetime.datetime.now(datetime.UTC))
    finally:
        client.close(timeout=FLUSH_TIMEOUT_S)
    return (
        f"uploaded experiment {name} ({len(runs)} runs, dataset {dataset.name}) to {client.api_url}"
    )
