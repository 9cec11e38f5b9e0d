"""The planner and the re-planner: one structured model call each, validated before it runs.

`plan` asks for a `Plan` (`deps.ask_json`: schema-constrained, with the deployment's repair
retry for a reply that does not parse). A plan that parses but cannot run (a cycle, an unknown
file, too many subtasks, …) goes back once with every problem listed, as a schema error does;
still invalid, the task stops with the problems as its reason. `replan` answers a merge
conflict: the dropped subtasks get a new goal to run again on the merged files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.messages import AIMessage
from langgraph.runtime import Runtime

from graphs.context import TeamContext
from graphs.deps import ModelOutputError, Node, TeamDeps
from graphs.plan_state import PlanState, SubtaskResult, SubtaskSpec
from graphs.state import InvalidTaskInputError, Usage, add_usage, task_goal
from nodes.plan_dag import Plan, Replan, known_path, plan_problems, specs_of
from nodes.prompts import load_prompt

PLAN_ATTEMPTS = 2
"""The first plan, and one more with the validation problems shown."""
SHOWN_FILE_CHARS = 3000


def _stopped(reason: str, usage: Usage, steps: int) -> dict[str, Any]:
    return {
        "outcome": {"status": "stopped", "reason": reason, "summary": ""},
        "usage": usage,
        "steps": steps,
        "messages": [AIMessage(f"Stopped: {reason}.", name="planner")],
    }


def workspace_text(files: Mapping[str, str], budget_chars: int) -> str:
    """The file list, then as many files' text as fit (small files first)."""
    parts = ["Files in the workspace:", *(f"- {p}" for p in sorted(files))]
    left = budget_chars
    for path, text in sorted(files.items(), key=lambda item: (len(item[1]), item[0])):
        shown = text[:SHOWN_FILE_CHARS]
        if len(shown) + len(path) + 16 > left:
            break
        parts.append(f"\n## {path}\n```\n{shown}\n```")
        left -= len(shown) + len(path) + 16
    return "\n".join(parts)


def plan_request(goal: str, files: Mapping[str, str], problems: Sequence[str], budget: int) -> str:
    """The planner's user message; the problems of its last plan when it is asked again."""
    text = f"Goal: {goal}\n\n{workspace_text(files, budget * 3)}"
    if problems:
        listed = "\n".join(f"- {p}" for p in problems)
        text += f"\n\nYour last plan cannot run:\n{listed}\nAnswer with a corrected plan."
    return text


def make_planner(deps: TeamDeps, max_subtasks: int) -> Node[PlanState]:
    """The node that asks for a plan and validates it (at most `max_subtasks` subtasks)."""

    async def plan(state: PlanState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """A valid plan in `plan`, or the stated stop."""
        goal = task_goal(state)
        original = state.get("repo_files") or state.get("files") or {}
        if not original:
            raise InvalidTaskInputError(
                "invalid task input: plan-and-solve needs the files (`repo_files` or `files`)"
            )
        files = state.get("files") or original
        base = {"goal": goal, "repo_files": original, "files": files}
        ctx = deps.run_context(runtime.context)
        model = await deps.model(ctx)
        system = load_prompt("planner").text
        usage: Usage = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
        problems: list[str] = []
        for attempt in range(1, PLAN_ATTEMPTS + 1):
            user = plan_request(goal, files, problems, deps.prompt_budget)
            try:
                answer, used = await deps.ask_json(model, system, user, Plan)
            except ModelOutputError as exc:
                reason = f"the planner gave no usable plan: {exc}"
                return base | _stopped(reason, add_usage(usage, exc.usage), attempt)
            usage = add_usage(usage, used)
            problems = plan_problems(answer, files, max_subtasks)
            if not problems:
                specs = specs_of(answer)
                note = f"Plan: {len(specs)} subtask(s): " + ", ".join(s["id"] for s in specs)
                return base | {
                    "plan": specs,
                    "usage": usage,
                    "steps": attempt,
                    "messages": [AIMessage(note, name="planner")],
                }
        reason = "the plan is still invalid after one retry: " + "; ".join(problems)
        return base | _stopped(reason, usage, PLAN_ATTEMPTS)

    return plan


def replan_request(state: PlanState) -> str:
    """The conflicts, the dropped subtasks, and the merged text of the files they clash in."""
    by_id = {s["id"]: s for s in state.get("plan") or []}
    conflicts = state.get("conflicts") or []
    lines = [f"Goal of the whole task: {state['goal']}", "", "Conflicts:"]
    for c in conflicts:
        lines.append(
            f"- {c['path']}: subtask {c['dropped']!r} changed {c['lines']} (the second range), "
            f"which subtask {c['kept']!r} (kept) also changed"
        )
    lines.append("\nDropped subtasks (to revise):")
    for dropped in dict.fromkeys(c["dropped"] for c in conflicts):
        lines.append(f"- {dropped}: {by_id[dropped]['goal']}")
    files = state.get("files") or {}
    for path in dict.fromkeys(c["path"] for c in conflicts):
        lines.append(f"\n## {path} (merged)\n```\n{files.get(path, '')[:SHOWN_FILE_CHARS]}\n```")
    return "\n".join(lines)


def revised_plan(
    plan: Sequence[SubtaskSpec], answer: Replan, dropped: Sequence[str], files: Mapping[str, str]
) -> list[SubtaskSpec]:
    """The plan with the dropped subtasks' goals (and known files) revised; others unchanged."""
    revisions = {r.id: r for r in answer.revisions if r.id in dropped}
    revised: list[SubtaskSpec] = []
    for spec in plan:
        revision = revisions.get(spec["id"])
        if revision is None:
            revised.append(spec)
            continue
        paths = [p for p in revision.files if known_path(p, files)] or spec["files"]
        revised.append({**spec, "goal": revision.goal, "files": paths})
    return revised


def make_replanner(deps: TeamDeps) -> Node[PlanState]:
    """The node that revises the subtasks a merge dropped, so they run again on merged files."""

    async def replan(state: PlanState, *, runtime: Runtime[TeamContext]) -> dict[str, Any]:
        """One `Replan` call; the dropped subtasks are marked to run again."""
        ctx = deps.run_context(runtime.context)
        dropped = list(dict.fromkeys(c["dropped"] for c in state.get("conflicts") or []))
        try:
            answer, usage = await deps.ask_json(
                await deps.model(ctx), load_prompt("replanner").text, replan_request(state), Replan
            )
        except ModelOutputError as exc:
            return _stopped(f"re-planning the conflicting subtasks failed: {exc}", exc.usage, 1)
        results = state.get("results") or {}
        again: dict[str, SubtaskResult] = {
            i: {**results[i], "status": "replanned"} for i in dropped if i in results
        }
        plan = revised_plan(state.get("plan") or [], answer, dropped, state.get("files") or {})
        note = f"Re-planned after a conflict: {', '.join(dropped)} run again on the merged files."
        return {
            "plan": plan,
            "results": again,
            "conflicts": [],
            "usage": usage,
            "steps": 1,
            "messages": [AIMessage(note, name="replanner")],
        }

    return replan
