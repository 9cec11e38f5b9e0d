"""Routing of the execution-first team: pure functions of the state, table-tested.

After each judged batch `decide` says what comes next, from the judge's verdict and the limits:

| verdict | and | next |
|---|---|---|
| a guard tripped (steps, tokens) | | conclude |
| passes the goal's examples | two or more distinct survivors, no inputs yet (inputs on) | probe |
| passes the goal's examples | no clear winner (largest cluster alone or tied), once | widen |
| greedy answer alone (cascade) | fails an example, none stated, or odd outputs elsewhere | widen |
| passes the goal's examples | two close clusters disagree, not yet asked (referee on) | referee |
| passes the goal's examples | otherwise | conclude |
| no candidate passes (or none was valid) | attempts used up | conclude |
| no candidate passes | fewer than `repair_rounds` repairs in a row, failures to show | repair |
| no candidate passes | otherwise | sample (a fresh round) |

`conclude` settles the stop reason and the approval policy; then `after_conclude` goes to the
human (`ask`) or straight to delivery, and `after_approval` back to sampling on a rejection.
The fan-outs (`sample_sends`, `widen_sends`, `repair_sends`) turn a decision into parallel
`Send`s. Widening draws more samples into the same batch, so the judge clusters them with the
first ones: where five candidates all behave differently, nine give agreement a chance, and
where they agree at once (most tasks) nothing more is spent. With `Sampling.when == "unsure"`
(a cascade) the first round is the greedy answer alone, and its samples are a widening drawn
only when the greedy answer fails an example, the goal states none to check it on, or on
the other inputs it raises or returns values of another type than the examples show.
"""

from __future__ import annotations

from typing import Any, Literal

from langgraph.types import Send
from typing_extensions import TypedDict

from graphs.context import TeamContext
from graphs.deps import Limits, Sampling
from graphs.selection_state import SelectionState, Verdict

Route = Literal["probe", "widen", "referee", "repair", "sample", "conclude"]
STEPS_PER_ROUND_RESERVE = 3
"""Steps a last round still needs after its samples (judge, conclude, deliver)."""


class SampleTask(TypedDict):
    """What one coder call of a batch gets (a `Send` payload)."""

    goal: str
    entry_point: str
    lessons: list[str]
    feedback: str
    origin: Literal["greedy", "sample"]
    seed: int
    batch: int
    count: int
    """Candidates this call draws: 1 for the greedy answer, the round's samples in one call."""
    widen: bool
    """Extra samples for a batch already judged (`widen_sends`)."""


class RepairTask(TypedDict):
    """What one repair call gets: the code and its first failure, verbatim."""

    goal: str
    entry_point: str
    code: str
    failure: str
    seed: int
    batch: int


def question_key(question: dict[str, str]) -> str:
    """The identity of a question: its input and the two outputs."""
    return "\x1f".join((question["call"], question["output_a"], question["output_b"]))


def guard_reason(state: SelectionState, limits: Limits) -> str:
    """Why the team must stop now ("" when it may go on)."""
    steps = state.get("steps", 0)
    if limits.stop:
        return limits.stop
    if steps >= limits.max_steps:
        return f"step limit reached ({limits.max_steps} steps)"
    usage = state.get("usage") or {"prompt_tokens": 0, "completion_tokens": 0}
    tokens = usage["prompt_tokens"] + usage["completion_tokens"]
    if tokens >= limits.token_budget:
        return f"token budget spent ({tokens} of {limits.token_budget} tokens)"
    return ""


def trailing_repairs(batches: list[str]) -> int:
    """How many repair batches were judged since the last sampling round."""
    count = 0
    for kind in reversed(batches):
        if kind != "repair":
            break
        count += 1
    return count


def unsettled(verdict: Verdict) -> bool:
    """No clear winner: two or more survivors, and the largest cluster alone or tied."""
    sizes = verdict["cluster_sizes"]
    if verdict["survivors"] < 2 or not sizes:
        return False
    return sizes[0] < 2 or (len(sizes) >= 2 and sizes[0] == sizes[1])


def greedy_first(batch: int, sampling: Sampling) -> bool:
    """Whether `batch` begins with the greedy answer alone (the cascade's first round)."""
    return sampling.when == "unsure" and batch <= 1


def samples_drawn(state: SelectionState, sampling: Sampling) -> bool:
    """Whether the batch being judged holds sampled candidates, not only the greedy answer."""
    batch = state.get("batch", 0)
    return not greedy_first(batch, sampling) or batch in state.get("widened", [])


def _wants_more(state: SelectionState, sampling: Sampling) -> bool:
    """Whether more samples would help.

    A lone greedy answer that fails an example or has none to pass is unsure; among samples,
    no cluster standing out is.
    """
    verdict = state.get("verdict")
    if not samples_drawn(state, sampling):
        if verdict is None or not verdict["passes_spec"] or verdict["spec_total"] == 0:
            return True
        return verdict.get("untyped", 0) > 0  # it raised, or returned an odd type, elsewhere
    return verdict is not None and verdict["passes_spec"] and unsettled(verdict)


def _may_widen(state: SelectionState, limits: Limits, sampling: Sampling) -> bool:
    if sampling.samples == 0 or not _wants_more(state, sampling):
        return False
    batch = state.get("batch", 0)
    widened = state.get("widened", []).count(batch)
    allowed = sampling.widen + greedy_first(batch, sampling)
    room = limits.max_steps - state.get("steps", 0)
    return widened < allowed and room >= 1 + STEPS_PER_ROUND_RESERVE


def decide(state: SelectionState, limits: Limits, sampling: Sampling) -> Route:
    """The next step after a judged batch or the reviewer's answer (see the module table)."""
    verdict = state.get("verdict")
    if guard_reason(state, limits):
        return "conclude"
    if verdict is not None and verdict["passes_spec"]:
        if "inputs" not in state and verdict["survivors"] >= 2 and sampling.inputs > 0:
            return "probe"
        if _may_widen(state, limits, sampling):
            return "widen"
        question = verdict.get("question")
        asked = question is not None and question_key(question) in state.get("asked", [])
        if question is not None and not verdict["agree"] and not asked and sampling.referee:
            return "referee"
        return "conclude"
    if state.get("iteration", 0) >= limits.max_iterations:
        return "conclude"
    if _may_widen(state, limits, sampling):
        return "widen"  # the greedy answer alone failed: sample before repairing it
    repairs = verdict["repairs"] if verdict is not None else []
    if repairs and trailing_repairs(state.get("batches", [])) < sampling.repair_rounds:
        return "repair"
    room = limits.max_steps - state.get("steps", 0)
    if room < sampling.samples + 1 + STEPS_PER_ROUND_RESERVE:
        return "conclude"
    return "sample"


def stop_reason(state: SelectionState, limits: Limits) -> str:
    """Why the team stopped, for the report ("" when the winner passes every example)."""
    if reason := guard_reason(state, limits):
        return reason
    verdict = state.get("verdict")
    if verdict is not None and verdict["passes_spec"]:
        return ""
    if not state.get("pool"):
        return f"no valid model output after {state.get('iteration', 0)} attempts"
    if state.get("iteration", 0) >= limits.max_iterations:
        return f"iteration limit reached ({limits.max_iterations} attempts)"
    return "no candidate passes the goal's examples"


def after_conclude(ctx: TeamContext) -> Literal["approval", "deliver"]:
    """The approval policy: a human first, or straight to delivery (which honours deny)."""
    return "approval" if ctx.approve == "ask" else "deliver"


def after_approval(state: SelectionState) -> Literal["deliver", "sample"]:
    """Approved (or stopped by a guard) → deliver; rejected → a fresh round with the comment."""
    decision = state.get("approval") or {"approved": False, "comment": ""}
    if decision["approved"] or state.get("stop_reason"):
        return "deliver"
    return "sample"


def _feedback(state: SelectionState) -> str:
    """A human's rejection comment, for the next round's coder."""
    decision = state.get("approval")
    if decision is not None and not decision["approved"] and decision["comment"].strip():
        return decision["comment"].strip()
    return state.get("feedback", "")


def _task(state: SelectionState, batch: int) -> dict[str, Any]:
    """What every coder call of `batch` is told: the goal, lessons and a human's comment."""
    return {
        "goal": state["goal"],
        "entry_point": state.get("entry_point", ""),
        "lessons": state.get("lessons", []),
        "feedback": _feedback(state),
        "batch": batch,
        "widen": False,
    }


def sample_sends(state: SelectionState, sampling: Sampling) -> list[Send]:
    """A fresh batch: one greedy answer, and `samples` sampled ones drawn by one call."""
    batch = state.get("batch", 0) + 1
    base = _task(state, batch)
    sends = [Send("sample", {**base, "origin": "greedy", "seed": 0, "count": 1})]
    if sampling.samples > 0 and not greedy_first(batch, sampling):
        # One call for all samples: the server reads the prompt once for all of them.
        samples = {**base, "origin": "sample", "seed": batch * 100 + 1, "count": sampling.samples}
        sends.append(Send("sample", samples))
    return sends


def widen_sends(state: SelectionState, sampling: Sampling) -> list[Send]:
    """More samples for the batch just judged (one call, seeds the batch has not used)."""
    batch = state.get("batch", 0)
    done = state.get("widened", []).count(batch)
    seed = batch * 100 + 51 + done
    task = {**_task(state, batch), "origin": "sample", "seed": seed, "count": sampling.samples}
    return [Send("sample", {**task, "widen": True})]


def repair_sends(state: SelectionState, sampling: Sampling) -> list[Send]:
    """One repair per target the judge named, each with its failure verbatim."""
    verdict = state.get("verdict")
    pool = state.get("pool", {})
    batch = state.get("batch", 0) + 1
    targets = [t for t in (verdict["repairs"] if verdict else []) if t["candidate"] in pool]
    return [
        Send(
            "repair",
            {
                "goal": state["goal"],
                "entry_point": state.get("entry_point", ""),
                "code": pool[t["candidate"]]["code"],
                "failure": t["failure"],
                "seed": batch * 100 + i,
                "batch": batch,
            },
        )
        for i, t in enumerate(targets[: sampling.repair_targets])
    ]
