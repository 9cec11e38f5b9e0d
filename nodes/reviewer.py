"""Reviewer: critiques the code against the goal and adjudicates disputed tests (reflection)."""

from __future__ import annotations

from typing import Any, Literal

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime
from pydantic import BaseModel, Field

from graphs.context import TeamContext
from graphs.state import CheckResult, ReviewVerdict, TeamState
from nodes.prompts import load_prompt
from service import deps
from service.models import structured_call
from service.settings import get_settings


class Review(BaseModel):
    """The reviewer's structured verdict."""

    verdict: Literal["approve", "changes_requested"]
    issues: list[str] = Field(default_factory=list, max_length=10)
    wrong_tests: list[int] = Field(default_factory=list, max_length=20)


def _failing_model_checks(state: TeamState) -> list[CheckResult]:
    runs = state.get("test_runs", [])
    if not runs:
        return []
    return [c for c in runs[-1]["checks"] if c["source"] == "model" and not c["passed"]]


def _request(state: TeamState, disputed: list[CheckResult]) -> str:
    code = state.get("files", {}).get("solution.py", "") or "\n\n".join(
        f"# {path}\n{content}" for path, content in state.get("files", {}).items()
    )
    parts = [f"Specification:\n{state['goal'].strip()}", f"Code:\n{code}"]
    if disputed:
        listed = "\n".join(f"{n}. {c['error']}" for n, c in enumerate(disputed, start=1))
        parts.append(
            "These tests written by our tester fail. For each, decide whether the test "
            f"contradicts the specification (list its number in wrong_tests) or the code is wrong:"
            f"\n{listed}"
        )
    return "\n\n".join(parts)


async def reviewer(state: TeamState, runtime: Runtime[TeamContext]) -> dict[str, Any]:
    """Approve the code or request concrete changes; tests found wrong are set aside."""
    ctx = deps.context_of(runtime.context)
    disputed = _failing_model_checks(state)
    runtime.stream_writer({"role": "reviewer", "event": "reviewing", "disputed": len(disputed)})
    review, usage = await structured_call(
        await deps.get_model(ctx),
        load_prompt("reviewer").text,
        _request(state, disputed),
        Review,
        retries=get_settings().structured_retries,
    )
    wrong = [disputed[n - 1]["name"] for n in review.wrong_tests if 1 <= n <= len(disputed)]
    upheld = [c for c in disputed if c["name"] not in wrong]
    issues = [issue.strip() for issue in review.issues if issue.strip()]
    verdict = review.verdict
    if upheld and verdict == "approve":
        # Failing tests the reviewer did not reject still count against the code.
        verdict = "changes_requested"
        issues += [c["error"] for c in upheld]
    if verdict == "changes_requested" and not issues:
        verdict = "approve"
    record: ReviewVerdict = {
        "iteration": state["iteration"],
        "verdict": verdict,
        "issues": issues,
        "rejected_tests": wrong,
    }
    runtime.stream_writer(
        {"role": "reviewer", "event": verdict, "issues": issues[:3], "rejected_tests": len(wrong)}
    )
    text = "reviewer: approved" if verdict == "approve" else "reviewer: " + "; ".join(issues)[:400]
    return {
        "reviews": [record],
        "rejected_tests": wrong,
        "usage": usage,
        "steps": 1,
        "feedback": "\n".join(f"- {issue}" for issue in issues) if verdict != "approve" else "",
        "messages": [AIMessage(text, name="reviewer")],
    }
