"""The team's shared state and its merge reducers.

Every reducer is a pure function so parallel or repeated updates merge predictably, and so they
can be unit-tested without a graph. List-valued channels are bounded: each checkpoint stores the
whole channel, so unbounded lists would make checkpoints grow with every step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Annotated, Any, Literal, NotRequired

from langchain_core.messages import AnyMessage, BaseMessage
from langgraph.graph.message import add_messages
from langgraph.managed import RemainingSteps
from pydantic import (
    BaseModel,
    Field,
    StrictBool,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)
from typing_extensions import TypedDict

MAX_KEPT_TEST_RUNS = 8
MAX_KEPT_REVIEWS = 8
MAX_GOAL_CHARS = 20_000
"""Longest goal a task accepts: every prompt pins the goal, so it must fit the prompt budget."""


class Usage(TypedDict):
    """Model usage so far; added up across nodes."""

    model_calls: int
    prompt_tokens: int
    completion_tokens: int
    cost_usd: NotRequired[float]
    """Priced by the service's price table; absent (0) in checkpoints written before it."""


class CheckResult(TypedDict):
    """One executed check (an assertion) and what happened."""

    name: str
    source: Literal["spec", "model"]
    passed: bool
    error: str


class TestRun(TypedDict):
    """One execution of the checks against one version of the code."""

    run_id: str
    iteration: int
    code_hash: str
    spec_passed: int
    spec_total: int
    model_passed: int
    model_total: int
    checks: list[CheckResult]
    error: str


class ReviewVerdict(TypedDict):
    """The reviewer's judgement of one version of the code."""

    iteration: int
    verdict: Literal["approve", "changes_requested"]
    issues: list[str]
    rejected_tests: list[str]
    run_id: str
    """The test run (code and checks) this verdict judged."""
    claims: list[str]
    """Executable claims (checks) the reviewer's issues came with; they are run, not trusted."""


class Candidate(TypedDict):
    """The best version of the code so far and its score (spec checks first)."""

    files: dict[str, str]
    iteration: int
    score: tuple[int, int]


class ApprovalAnswer(TypedDict):
    """A human's answer to an approval request."""

    approved: bool
    comment: str


class ApprovalResume(BaseModel):
    """What `Command(resume=...)` must carry to answer the approval interrupt.

    `approved` is a strict boolean: "yes" or 1 is a malformed answer, not a yes.
    """

    approved: StrictBool
    comment: str = Field(default="", max_length=4000)


class DeliveryApprovalRequest(BaseModel):
    """Typed payload of the approval interrupt, for terminals and UIs to render."""

    kind: Literal["approval_request"] = "approval_request"
    action: Literal["deliver"]
    summary: str
    files: list[str]
    destination: str
    tests: str
    contents: dict[str, str] = Field(
        default_factory=dict,
        description="What would be delivered: each file's text (long files cut, with a note).",
    )
    failing: list[str] = Field(
        default_factory=list,
        description="The checks the code fails, each with its call, expected value and error.",
    )
    flags: list[str] = Field(
        default_factory=list,
        description="What the task did that a person should review (a honeypot tripped, a "
        "side effect left in doubt by a crash).",
    )


def files_to_deliver(state: Mapping[str, Any]) -> dict[str, str]:
    """The files a task delivers: its best attempt's, else its latest."""
    best = state.get("best")
    files = best["files"] if best else state.get("files")
    return files if isinstance(files, dict) else {}


def run_of_delivered(state: Mapping[str, Any]) -> TestRun | None:
    """The test run of the files to deliver: the best attempt's, else the latest run."""
    runs: list[TestRun] = state.get("test_runs") or []
    best = state.get("best")
    if best is not None:
        for run in reversed(runs):
            if run["iteration"] == best["iteration"]:
                return run
    return runs[-1] if runs else None


def failed_checks(run: TestRun, limit: int) -> list[CheckResult]:
    """The first `limit` checks of `run` that failed."""
    return [check for check in run["checks"] if not check["passed"]][:limit]


def run_score(run: TestRun) -> tuple[int, int]:
    """Ground-truth checks passed first, then the team's own tests; a crash scores lowest."""
    return (-1, -1) if run["error"] else (run["spec_passed"], run["model_passed"])


def merge_files(left: dict[str, str] | None, right: dict[str, str] | None) -> dict[str, str]:
    """Merge workspace files by path; an empty-string value deletes the file."""
    merged = dict(left or {})
    for path, content in (right or {}).items():
        if content == "":
            merged.pop(path, None)
        else:
            merged[path] = content
    return merged


def add_usage(left: Usage | None, right: Usage | None) -> Usage:
    """Add usage counters field by field."""
    zero: Usage = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    a, b = left or zero, right or zero
    total: Usage = {
        "model_calls": a["model_calls"] + b["model_calls"],
        "prompt_tokens": a["prompt_tokens"] + b["prompt_tokens"],
        "completion_tokens": a["completion_tokens"] + b["completion_tokens"],
    }
    if "cost_usd" in a or "cost_usd" in b:  # unpriced usage stays as it always was
        total["cost_usd"] = a.get("cost_usd", 0.0) + b.get("cost_usd", 0.0)
    return total


def append_test_runs(left: list[TestRun] | None, right: list[TestRun] | None) -> list[TestRun]:
    """Append new runs (a repeated run id moves to the end) and keep only the newest few."""
    incoming = {run["run_id"] for run in right or []}
    merged = [*(r for r in left or [] if r["run_id"] not in incoming), *(right or [])]
    return merged[-MAX_KEPT_TEST_RUNS:]


def append_reviews(
    left: list[ReviewVerdict] | None, right: list[ReviewVerdict] | None
) -> list[ReviewVerdict]:
    """Append review verdicts, keeping only the newest few."""
    return [*(left or []), *(right or [])][-MAX_KEPT_REVIEWS:]


def add_int(left: int | None, right: int | None) -> int:
    """Counter reducer: a node returns the increment."""
    return (left or 0) + (right or 0)


def keep_best(left: Candidate | None, right: Candidate | None) -> Candidate | None:
    """Keep the higher-scoring candidate; on a tie the newer one wins."""
    if right is None:
        return left
    if left is None or tuple(right["score"]) >= tuple(left["score"]):
        return right
    return left


def union_sorted(left: list[str] | None, right: list[str] | None) -> list[str]:
    """Set union kept as a sorted list (JSON-friendly and deterministic)."""
    return sorted({*(left or []), *(right or [])})


class WorkingDigest(TypedDict):
    """What working memory keeps of the messages folded out of `messages`."""

    summary: str
    """Running summary of the folded messages; each fold summarises the previous summary too."""
    paged_out: int
    """How many messages were folded (and paged out to episodic memory, when it is on)."""
    paged_out_tokens: int
    """Their size in tokens: what every prompt would cost on top without paging."""


def newer_digest(left: WorkingDigest | None, right: WorkingDigest | None) -> WorkingDigest | None:
    """Keep the digest that has folded more: a replayed, older fold never undoes a newer one."""
    if right is None or (left is not None and right["paged_out"] < left["paged_out"]):
        return left
    return right


class TaskFields(TypedDict):
    """The task a run works on, once its goal is settled; validated by `validate_input`."""

    goal: Annotated[str, StringConstraints(min_length=1, max_length=MAX_GOAL_CHARS, pattern=r"\S")]
    """What to build: a non-blank string."""
    entry_point: NotRequired[str]
    """Name of the function to write, when the caller knows it."""


class TeamInput(TypedDict):
    """What a caller provides to start a task: the graph's input schema.

    Either a `goal` or a chat (`messages`, as Agent Chat UI and Studio's chat send it): with no
    goal, the last human message is the goal (`task_input`). The constraints are part of the
    served schema, but LangGraph does not enforce an input schema, so the first node checks
    every run with `task_input` before any work is spent.
    """

    goal: NotRequired[
        Annotated[str, StringConstraints(min_length=1, max_length=MAX_GOAL_CHARS, pattern=r"\S")]
    ]
    """What to build: a non-blank string (else the chat's last human message)."""
    entry_point: NotRequired[str]
    """Name of the function to write, when the caller knows it."""
    messages: NotRequired[Annotated[list[AnyMessage], add_messages]]
    """A chat whose last human message says what to build (used when no goal is given)."""


TASK_FIELDS = frozenset(TaskFields.__annotations__)
"""The input fields that define the task (what a client may edit: `command.update`)."""
_TASK_FIELDS = TypeAdapter(TaskFields)


class InvalidTaskInputError(ValueError):
    """The run's input is not a task: no goal, or a goal that is not a non-empty string."""


def validate_input(state: Mapping[str, Any]) -> None:
    """Raise `InvalidTaskInputError` (one readable line) unless `state` holds a valid task input.

    Without this, a missing or mistyped goal surfaces as a `KeyError` or `TypeError` deep in a
    worker, and an empty one runs the whole team on nothing.
    """
    given = {key: state[key] for key in TASK_FIELDS if key in state}
    try:
        _TASK_FIELDS.validate_python(given, strict=True)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(part) for part in error['loc']) or 'input'}: "
            + ("must not be blank" if error["type"] == "string_pattern_mismatch" else error["msg"])
            for error in exc.errors()
        )
        raise InvalidTaskInputError(f"invalid task input: {problems}") from None


def goal_from_chat(messages: Sequence[object]) -> str:
    """The text of the chat's last human message (string or content blocks; '' if none)."""
    for message in reversed(messages):
        if isinstance(message, BaseMessage) and message.type == "human":
            return str(message.text)
    return ""


def task_goal(state: Mapping[str, Any]) -> str:
    """The run's goal, checked: the one given, else the text of the chat's last human message.

    Called by each graph's first node on every visit (cheap once the goal is set); raises
    `InvalidTaskInputError` for a run that is not a task. A chat message sent to a thread
    whose task has finished is refused rather than run on top of the old task's files and
    report: a new goal wants a new thread.
    """
    messages: list[object] = list(state.get("messages") or [])
    last = messages[-1] if messages else None
    chatting = isinstance(last, BaseMessage) and last.type == "human"
    if chatting and state.get("report") is not None:
        raise InvalidTaskInputError(
            "invalid task input: this task has finished; start a new thread for a new goal"
        )
    if state.get("goal") is not None:
        validate_input(state)
        return str(state["goal"])
    goal = goal_from_chat(messages)
    if not goal.strip():
        why = "the last human message has no text" if chatting else "no goal and no chat message"
        raise InvalidTaskInputError(
            f"invalid task input: {why}; give a goal, or a chat message saying what to build"
        )
    validate_input({**state, "goal": goal})
    return goal


class TeamState(TypedDict):
    """Shared state of the coding team."""

    goal: str
    """The programming goal, verbatim; its examples are ground truth."""
    entry_point: NotRequired[str]
    """Name of the function to write, when the caller knows it."""
    messages: Annotated[list[AnyMessage], add_messages]
    """A short narrative of what each agent did (not the raw prompts)."""
    files: Annotated[dict[str, str], merge_files]
    """The task's workspace: path -> content."""
    spec_checks: NotRequired[list[str]]
    """Assertions extracted from the goal's own examples (ground truth)."""
    model_tests: NotRequired[list[str]]
    """Assertions written by the tester; may be wrong, the reviewer adjudicates."""
    rejected_tests: Annotated[list[str], union_sorted]
    """Model-written assertions the reviewer found to contradict the specification."""
    test_runs: Annotated[list[TestRun], append_test_runs]
    reviews: Annotated[list[ReviewVerdict], append_reviews]
    usage: Annotated[Usage, add_usage]
    iteration: Annotated[int, add_int]
    """How many times the coder has produced code."""
    steps: Annotated[int, add_int]
    """How many agent steps ran; guards the step limit."""
    best: Annotated[Candidate | None, keep_best]
    lessons: NotRequired[list[str]]
    """Lessons from earlier similar tasks, paged in from episodic memory once per task."""
    working: NotRequired[Annotated[WorkingDigest | None, newer_digest]]
    """Running summary of the messages folded out of `messages`, so checkpoints stay small."""
    feedback: NotRequired[str]
    """What the coder should fix next (test failures, review, or a human comment)."""
    approval: NotRequired[ApprovalAnswer | None]
    """The team's reading of the human's answer, for routing. Delivery never trusts it: the
    deliver step asks the gateway, which holds the answer the human gave in its ledger."""
    destination: NotRequired[str]
    """Where the delivery goes, fixed when the team asks for approval (what the human saw)."""
    next: NotRequired[str]
    """The supervisor's latest routing decision."""
    stop_reason: NotRequired[str]
    delivered: NotRequired[list[str]]
    report: NotRequired[dict[str, object]]
    remaining_steps: NotRequired[RemainingSteps]
    """Super-steps LangGraph still allows this run (managed, never stored): the supervisor
    stops the team while it can still deliver, before the recursion limit aborts the run."""
