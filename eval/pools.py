"""What the execution-first team chose from, kept so that selection rules can be compared later.

A benchmark run of the `selection` mode decodes every candidate once; which rule picks best
among them is a question about those same candidates. So the run keeps, per task, every
candidate the team judged (code, origin, batch, votes), the tester's inputs, the goal's
examples, the winner — and whether each candidate passes the task's hidden tests. `eval.replay`
then re-runs one task's candidates in the sandbox and scores any rule on them, with no model
call: ablations of N, of the tester's inputs and of the tie-breaks cost seconds, not hours, and
they are measured on exactly the candidates the headline number was measured on.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any, TypedDict, cast

from eval.checking import run_hidden_tests
from eval.datasets import CodingTask
from graphs.selection_state import PooledCandidate
from tools.sandbox import Sandbox


class RecordedCandidate(TypedDict):
    """One distinct candidate the team judged, and whether the hidden tests pass it."""

    id: str
    origin: str
    batch: int
    votes: int
    code: str
    hidden_passed: bool


class PoolRecord(TypedDict):
    """Everything one task's selection was made from, and what the team delivered."""

    task_id: str
    entry_point: str
    spec_checks: list[str]
    inputs: list[str]
    candidates: list[RecordedCandidate]
    replies: list[str]
    """Candidate ids in the order the replies arrived (a repeat is another vote; replies drawn
    by one call arrive together, in the call's order)."""
    winner: str
    batches: list[str]
    asked: int
    """Questions the reviewer answered (the referee's calls)."""


def pool_updates(update: Mapping[str, Any]) -> list[PooledCandidate]:
    """The candidates one node's update adds to the pool (empty for other updates)."""
    pool = update.get("pool") if isinstance(update, Mapping) else None
    return list(pool.values()) if isinstance(pool, Mapping) else []


def merged(seen: list[PooledCandidate]) -> list[PooledCandidate]:
    """Every candidate once per batch, with the votes of all replies that produced it."""
    by_key: dict[tuple[str, int], PooledCandidate] = {}
    for candidate in seen:
        key = (candidate["id"], candidate["batch"])
        known = by_key.get(key)
        if known is None:
            by_key[key] = dict(candidate)  # type: ignore[assignment]
            continue
        origin = "greedy" if "greedy" in (known["origin"], candidate["origin"]) else known["origin"]
        by_key[key] = {**known, "origin": origin, "votes": known["votes"] + candidate["votes"]}
    return sorted(by_key.values(), key=lambda c: (c["batch"], c["origin"] != "greedy", c["id"]))


async def record(
    task: CodingTask,
    state: Mapping[str, Any],
    seen: list[PooledCandidate],
    sandbox: Sandbox,
) -> PoolRecord:
    """The task's pool with each candidate scored on the hidden tests."""
    candidates: list[RecordedCandidate] = []
    for candidate in merged(seen):
        hidden = await run_hidden_tests(task, candidate["code"], sandbox)
        candidates.append(
            {
                "id": candidate["id"],
                "origin": candidate["origin"],
                "batch": candidate["batch"],
                "votes": candidate["votes"],
                "code": candidate["code"],
                "hidden_passed": hidden.passed,
            }
        )
    verdict = state.get("verdict") or {}
    return {
        "task_id": task.task_id,
        "entry_point": task.entry_point,
        "spec_checks": list(state.get("spec_checks", [])),
        "inputs": list(state.get("inputs", [])),
        "candidates": candidates,
        "replies": [c["id"] for c in seen for _ in range(c["votes"])],
        "winner": str(verdict.get("winner", "")),
        "batches": list(state.get("batches", [])),
        "asked": len(state.get("asked", [])),
    }


def pools_path(out: Path) -> Path:
    """Where a results file keeps its pools: beside it, one JSON line per task."""
    return out.with_name(out.stem + ".pools.jsonl")


def append(path: Path, entry: PoolRecord) -> None:
    """Add one task's pool (a resumed run appends; `load` keeps the newest per task)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(entry, sort_keys=True) + "\n")


def load(path: Path) -> dict[str, PoolRecord]:
    """The recorded pools by task id; a line that does not parse is skipped."""
    found: dict[str, PoolRecord] = {}
    if not path.exists():
        return found
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            entry = json.loads(line)
        except ValueError:
            continue
        if isinstance(entry, dict) and "task_id" in entry and "candidates" in entry:
            # Our own file, written by `append` from `PoolRecord`s.
            found[str(entry["task_id"])] = cast(PoolRecord, entry)
    return found
