"""The supervisor's routing decisions, on hand-built states, with a scripted model."""

from __future__ import annotations

from typing import Any

import pytest
from langgraph.runtime import Runtime
from langgraph.types import Command

from graphs.context import TeamContext
from graphs.state import Candidate, TeamState, merge_files
from graphs.state import TestRun as RunRecord
from nodes.supervisor import make_supervisor
from service.llm.scripted import Script, ScriptedChatModel, ScriptRule
from service.settings import get_settings
from service.team_deps import ServiceDeps

MAX_ITERATIONS = 4
MAX_STEPS = 20
TOKEN_BUDGET = 10_000
GOOD = "def f(x):\n    return 2 * x\n"
BAD = "def f(x):\n    return x\n"
supervisor = make_supervisor(ServiceDeps(get_settings()))


def scripted(*rules: dict[str, Any]) -> ScriptedChatModel:
    return ScriptedChatModel(script=Script(rules=[ScriptRule(**rule) for rule in rules]))


def supervisor_says(next_: str, reason: str) -> ScriptedChatModel:
    return scripted({"role": "supervisor", "reply": {"next": next_, "reason": reason}})


class Recorder:
    def __init__(self) -> None:
        self.events: list[Any] = []

    def __call__(self, event: Any) -> None:
        self.events.append(event)


def runtime(
    approve: str = "ask", model: ScriptedChatModel | None = None, writer: Any = None
) -> Runtime[TeamContext]:
    ctx = TeamContext(
        approve=approve,  # type: ignore[arg-type]
        max_steps=MAX_STEPS,
        max_iterations=MAX_ITERATIONS,
        token_budget=TOKEN_BUDGET,
        model=model if model is not None else supervisor_says("deliver", "unused"),
    )
    return Runtime(
        context=ctx,
        store=None,
        stream_writer=writer if writer is not None else (lambda _: None),
        previous=None,
    )


def make_run(
    run_id: str = "r1",
    iteration: int = 1,
    spec: tuple[int, int] = (3, 3),
    model: tuple[int, int] = (2, 2),
    error: str = "",
) -> RunRecord:
    return {
        "run_id": run_id,
        "iteration": iteration,
        "code_hash": f"h-{run_id}",
        "spec_passed": spec[0],
        "spec_total": spec[1],
        "model_passed": model[0],
        "model_total": model[1],
        "checks": [],
        "error": error,
    }


def state(**overrides: Any) -> TeamState:
    base: dict[str, Any] = {
        "goal": "Write f(x) that doubles x.\nf(2) == 4",
        "messages": [],
        "files": {"solution.py": GOOD},
        "rejected_tests": [],
        "test_runs": [],
        "reviews": [],
        "usage": {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0},
        "iteration": 1,
        "steps": 3,
        "best": None,
    }
    base.update(overrides)
    return base  # type: ignore[return-value]


def notes(command: Command[Any]) -> str:
    update = command.update or {}
    return " ".join(str(m.content) for m in update.get("messages", []))


async def route(st: TeamState, rt: Runtime[TeamContext] | None = None) -> Command[Any]:
    command = await supervisor(st, runtime=rt or runtime())
    assert isinstance(command, Command)
    # The decision is always recorded so the next supervisor visit knows who just worked.
    assert command.update["next"] == command.goto  # type: ignore[index]
    return command


# --- determined routes (no model call) ---------------------------------------------------


async def test_no_files_goes_to_the_coder() -> None:
    command = await route(state(files={}, iteration=0, steps=0))
    assert command.goto == "coder"


async def test_after_the_coder_the_code_is_tested() -> None:
    command = await route(state(next="coder"))
    assert command.goto == "tester"


async def test_route_is_streamed_to_the_client() -> None:
    writer = Recorder()
    await route(state(next="coder"), runtime(writer=writer))
    assert writer.events == [{"role": "supervisor", "event": "route", "next": "tester"}]


async def test_ground_truth_failures_go_back_to_the_coder_with_the_testers_feedback() -> None:
    failures = "- f(2) returned 2, expected 4 (from the goal's examples)"
    run = make_run(spec=(1, 3), model=(2, 2))
    command = await route(
        state(next="tester", files={"solution.py": BAD}, test_runs=[run], feedback=failures)
    )
    assert command.goto == "coder"
    # The tester's failure messages stay in the state for the coder: not overwritten or cleared.
    assert "feedback" not in command.update  # type: ignore[operator]
    assert "files" not in command.update  # type: ignore[operator]
    assert "tests fail" in notes(command)


async def test_a_crash_goes_back_to_the_coder() -> None:
    run = make_run(spec=(0, 3), model=(0, 2), error="SyntaxError: invalid syntax")
    command = await route(state(next="tester", test_runs=[run], feedback=run["error"]))
    assert command.goto == "coder"


async def test_only_the_teams_own_tests_failing_goes_to_the_reviewer() -> None:
    run = make_run(spec=(3, 3), model=(1, 3))
    command = await route(state(next="tester", test_runs=[run]))
    assert command.goto == "reviewer"


async def test_all_checks_passing_goes_to_the_reviewer() -> None:
    run = make_run(spec=(3, 3), model=(2, 2))
    command = await route(state(next="tester", test_runs=[run]))
    assert command.goto == "reviewer"


async def test_all_checks_passing_without_team_tests_goes_to_the_reviewer() -> None:
    run = make_run(spec=(2, 2), model=(0, 0))
    command = await route(state(next="tester", test_runs=[run]))
    assert command.goto == "reviewer"


async def test_a_worse_run_restores_the_best_candidate_and_says_so() -> None:
    best: Candidate = {"files": {"solution.py": GOOD}, "iteration": 1, "score": (3, 2)}
    current = {"solution.py": BAD, "extra.py": "X = 1\n"}
    failures = "- f(2) returned 2, expected 4 (from the goal's examples)"
    run = make_run(run_id="r2", iteration=2, spec=(1, 3), model=(0, 2))
    st = state(
        next="tester", files=current, best=best, test_runs=[run], iteration=2, feedback=failures
    )
    command = await route(st)
    update = command.update
    assert command.goto == "coder"
    assert update["files"] == {"solution.py": GOOD, "extra.py": ""}  # type: ignore[index]
    # Merged into the workspace, the files are exactly the best candidate's.
    assert merge_files(current, update["files"]) == best["files"]  # type: ignore[index]
    feedback = update["feedback"]  # type: ignore[index]
    assert "discarded" in feedback and "restored" in feedback
    assert failures in feedback


async def test_a_run_as_good_as_the_best_keeps_the_current_files() -> None:
    best: Candidate = {"files": {"solution.py": GOOD}, "iteration": 1, "score": (1, 0)}
    run = make_run(run_id="r2", iteration=2, spec=(1, 3), model=(0, 2))
    command = await route(
        state(next="tester", files={"solution.py": BAD}, best=best, test_runs=[run], iteration=2)
    )
    assert command.goto == "coder"
    assert "files" not in command.update  # type: ignore[operator]


async def test_reviewer_approval_asks_the_human_when_policy_is_ask() -> None:
    st = state(next="reviewer", reviews=[_review("approve")])
    command = await route(st, runtime(approve="ask"))
    assert command.goto == "approval"
    assert "approval" not in command.update  # type: ignore[operator]
    assert "stop_reason" not in command.update  # type: ignore[operator]


async def test_reviewer_approval_delivers_approved_when_policy_is_auto() -> None:
    st = state(next="reviewer", reviews=[_review("approve")])
    command = await route(st, runtime(approve="auto"))
    assert command.goto == "deliver"
    assert command.update["approval"]["approved"] is True  # type: ignore[index]
    assert "auto" in command.update["approval"]["comment"]  # type: ignore[index]


async def test_reviewer_approval_delivers_refused_when_policy_is_deny() -> None:
    st = state(next="reviewer", reviews=[_review("approve")])
    command = await route(st, runtime(approve="deny"))
    assert command.goto == "deliver"
    assert command.update["approval"]["approved"] is False  # type: ignore[index]
    assert "deny" in command.update["approval"]["comment"]  # type: ignore[index]


async def test_requested_changes_go_back_to_the_coder() -> None:
    st = state(next="reviewer", reviews=[_review("changes_requested")], iteration=1)
    command = await route(st)
    assert command.goto == "coder"
    assert "stop_reason" not in command.update  # type: ignore[operator]
    assert "requested changes" in notes(command)


async def test_requested_changes_at_the_iteration_limit_finish() -> None:
    st = state(next="reviewer", reviews=[_review("changes_requested")], iteration=MAX_ITERATIONS)
    command = await route(st, runtime(approve="auto"))
    assert command.goto == "deliver"
    assert "iteration limit" in command.update["stop_reason"]  # type: ignore[index]
    assert str(MAX_ITERATIONS) in command.update["stop_reason"]  # type: ignore[index]


async def test_requested_changes_at_the_iteration_limit_ask_the_human_with_the_reason() -> None:
    st = state(next="reviewer", reviews=[_review("changes_requested")], iteration=MAX_ITERATIONS)
    command = await route(st, runtime(approve="ask"))
    assert command.goto == "approval"
    assert "iteration limit" in command.update["stop_reason"]  # type: ignore[index]


async def test_failing_ground_truth_at_the_iteration_limit_finishes() -> None:
    run = make_run(spec=(1, 3), iteration=MAX_ITERATIONS)
    st = state(next="tester", test_runs=[run], iteration=MAX_ITERATIONS)
    command = await route(st, runtime(approve="auto"))
    assert command.goto == "deliver"
    assert "iteration limit" in command.update["stop_reason"]  # type: ignore[index]


async def test_step_limit_finishes_naming_the_limit() -> None:
    st = state(next="coder", steps=MAX_STEPS)
    command = await route(st, runtime(approve="auto"))
    assert command.goto == "deliver"
    reason = command.update["stop_reason"]  # type: ignore[index]
    assert "step limit" in reason and str(MAX_STEPS) in reason


async def test_one_step_below_the_limit_keeps_working() -> None:
    command = await route(state(next="coder", steps=MAX_STEPS - 1))
    assert command.goto == "tester"


async def test_token_budget_finishes_naming_the_limit() -> None:
    usage = {"model_calls": 5, "prompt_tokens": TOKEN_BUDGET - 10, "completion_tokens": 10}
    command = await route(state(next="coder", usage=usage), runtime(approve="ask"))
    assert command.goto == "approval"
    reason = command.update["stop_reason"]  # type: ignore[index]
    assert "token budget" in reason and str(TOKEN_BUDGET) in reason


async def test_rejected_approval_goes_back_to_the_coder_with_the_comment() -> None:
    decision = {"approved": False, "comment": "use a loop, not recursion"}
    command = await route(state(next="approval", approval=decision))
    assert command.goto == "coder"
    assert "use a loop, not recursion" in command.update["feedback"]  # type: ignore[index]


async def test_rejected_approval_without_comment_still_gives_feedback() -> None:
    command = await route(state(next="approval", approval={"approved": False, "comment": "  "}))
    assert command.goto == "coder"
    assert "rejected" in command.update["feedback"]  # type: ignore[index]


async def test_approved_delivery_goes_to_deliver() -> None:
    command = await route(state(next="approval", approval={"approved": True, "comment": ""}))
    assert command.goto == "deliver"


async def test_rejection_of_a_forced_stop_ends_the_task() -> None:
    st = state(
        next="approval",
        approval={"approved": False, "comment": "no"},
        stop_reason="step limit reached (20 steps)",
        steps=MAX_STEPS,
    )
    command = await route(st)
    assert command.goto == "deliver"


async def test_determined_routes_make_no_model_call() -> None:
    model = supervisor_says("deliver", "should not be asked")
    cases = [
        state(files={}),
        state(next="coder"),
        state(next="tester", test_runs=[make_run(spec=(1, 3))]),
        state(next="tester", test_runs=[make_run(spec=(3, 3), model=(0, 2))]),
        state(next="reviewer", reviews=[_review("approve")]),
        state(next="reviewer", reviews=[_review("changes_requested")]),
        state(next="approval", approval={"approved": True, "comment": ""}),
        state(next="coder", steps=MAX_STEPS),
    ]
    for st in cases:
        command = await route(st, runtime(model=model))
        assert "usage" not in command.update  # type: ignore[operator]
    assert model.calls == 0


# --- stagnation: the only decision the model makes ----------------------------------------


def stagnated_state() -> TeamState:
    runs = [
        make_run(run_id="r1", iteration=1, spec=(1, 3), model=(1, 2)),
        make_run(run_id="r2", iteration=2, spec=(1, 3), model=(1, 2)),
    ]
    best: Candidate = {"files": {"solution.py": BAD}, "iteration": 2, "score": (1, 1)}
    return state(
        next="tester",
        files={"solution.py": BAD},
        test_runs=runs,
        best=best,
        iteration=2,
        feedback="- f(2) returned 2, expected 4",
    )


async def test_stagnation_asks_the_model_which_may_deliver() -> None:
    model = supervisor_says("deliver", "the same check keeps failing")
    command = await route(stagnated_state(), runtime(approve="auto", model=model))
    assert model.calls == 1
    assert command.goto == "deliver"
    assert "the same check keeps failing" in command.update["stop_reason"]  # type: ignore[index]


async def test_stagnation_deliver_counts_the_model_call_in_usage() -> None:
    model = supervisor_says("deliver", "no progress")
    command = await route(stagnated_state(), runtime(approve="auto", model=model))
    assert model.calls == 1
    usage = command.update.get("usage")  # type: ignore[union-attr]
    assert usage is not None, "the supervisor's model call is missing from the usage update"
    assert usage["model_calls"] == 1
    assert usage["prompt_tokens"] > 0


async def test_stagnation_asks_the_model_which_may_try_again() -> None:
    model = supervisor_says("coder", "one more try")
    command = await route(stagnated_state(), runtime(model=model))
    assert model.calls == 1
    assert command.goto == "coder"
    assert command.update["usage"]["model_calls"] == 1  # type: ignore[index]
    assert "stop_reason" not in command.update  # type: ignore[operator]


@pytest.mark.parametrize("reply", ["not json at all", {"next": "tester"}])
async def test_stagnation_with_unusable_model_output_keeps_repairing(reply: Any) -> None:
    model = scripted({"role": "supervisor", "reply": reply})
    command = await route(stagnated_state(), runtime(model=model))
    assert command.goto == "coder"
    assert model.calls >= 1


async def test_first_repair_is_not_stagnation() -> None:
    model = supervisor_says("deliver", "unused")
    st = stagnated_state()
    st["iteration"] = 1
    command = await route(st, runtime(model=model))
    assert command.goto == "coder"
    assert model.calls == 0


def _review(verdict: str, claims: list[str] | None = None, iteration: int = 1) -> dict[str, Any]:
    issues = ["a problem"] if verdict == "changes_requested" else []
    return {
        "iteration": iteration,
        "verdict": verdict,
        "issues": issues,
        "rejected_tests": [],
        "claims": claims or [],
        "run_id": "",
    }


CLAIM = "f(-1) == -2"


async def test_reviewer_claims_are_run_before_any_code_changes() -> None:
    reviews = [_review("changes_requested", [CLAIM])]
    command = await route(state(next="reviewer", reviews=reviews, test_runs=[make_run()]))
    assert command.goto == "tester"
    assert "claims" in notes(command)


def _verification_run(passed: bool) -> RunRecord:
    run = make_run(run_id="verify")
    error = "" if passed else "f(-1) returned 2, expected -2"
    run["checks"] = [{"name": CLAIM, "source": "model", "passed": passed, "error": error}]
    run["model_passed"] = run["model_total"] - (0 if passed else 1)
    return run


async def test_refuted_reviewer_claims_lead_to_delivery_not_to_the_coder() -> None:
    st = state(
        next="tester",
        reviews=[_review("changes_requested", [CLAIM])],
        test_runs=[make_run(), _verification_run(passed=True)],
    )
    command = await route(st)
    assert command.goto == "approval"
    assert "did not hold" in notes(command)


async def test_confirmed_reviewer_claims_go_to_the_coder_with_the_failure() -> None:
    st = state(
        next="tester",
        reviews=[_review("changes_requested", [CLAIM])],
        test_runs=[make_run(), _verification_run(passed=False)],
    )
    command = await route(st)
    assert command.goto == "coder"
    assert "f(-1) returned 2, expected -2" in (command.update or {})["feedback"]


async def test_repeated_advice_without_a_failing_call_is_not_followed_again() -> None:
    reviews = [_review("changes_requested", iteration=1), _review("changes_requested", iteration=2)]
    st = state(next="reviewer", reviews=reviews, test_runs=[make_run()], iteration=2)
    command = await route(st)
    assert command.goto == "approval"
    assert "cannot show" in notes(command)


async def test_code_already_reviewed_is_not_sent_to_the_reviewer_again() -> None:
    run = make_run(run_id="same", model=(2, 2))
    review = {**_review("changes_requested"), "run_id": "same"}
    st = state(next="tester", test_runs=[run], reviews=[review], iteration=2)
    command = await route(st)
    assert command.goto == "approval"
    assert "unchanged since the last review" in notes(command)


async def test_a_repair_that_changed_nothing_goes_back_to_the_coder_saying_so() -> None:
    run = make_run(run_id="same", model=(1, 2))
    review = {**_review("changes_requested"), "run_id": "same"}
    st = state(
        next="tester", test_runs=[run], reviews=[review], iteration=2, feedback="- f(3) wrong"
    )
    command = await route(st)
    assert command.goto == "coder"
    feedback = (command.update or {})["feedback"]
    assert "repeated the code that fails" in feedback and "f(3) wrong" in feedback
