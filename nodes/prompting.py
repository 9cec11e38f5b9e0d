"""The team's prompts: what each role pins and needs, packed by working memory's one packer.

A small model's context is short and a long task's history is not, so no agent builds its
prompt by hand: `memory.packing.pack` fits every call's prompt to the budget. What is the
team's, and stays here, is what goes in, most important first:

1. pinned: the role's instructions (the system message), the goal and whatever the role
   declares pinned (the entry point, a human's rejection comments); never shortened or dropped;
2. a running summary ("project manifest"): where the task stands, plus a recursive summary of
   the messages folded out of the state;
3. the most recent steps, newest first, as many as fit;
4. paged-in memories (lessons from earlier tasks);
5. what the role needs for this very call (the current code, the failures to fix): kept whole
   when they fit, shortened but never dropped when they do not.

The supervisor folds old messages into `working` and pages them out to episodic memory
(`nodes.prompt_history`), so checkpoints stay small. Everything here is deterministic and
takes its token counter and budget as arguments: which tokenizer counts for the run's model,
and the budget, are `nodes.prompt_budget`'s business.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from langchain_core.messages import AnyMessage

from graphs.state import TeamState
from memory.packing import Budget, Line, PromptParts, Section, pack, unpacked
from memory.tokens import TokenCounter
from nodes.prompt_history import (
    EMPTY_DIGEST,
    SUMMARY_SHARE,
    fold_digest,
    is_pinned,
    message_line,
    split_history,
)

__all__ = [
    "LESSONS_TITLE",
    "MEMORY_SHARE",
    "MESSAGE_OVERHEAD",
    "PIPELINE_PROMPTS",
    "RolePrompt",
    "Section",
    "assemble",
    "goal_section",
    "prompt_tokens",
]

PIPELINE_PROMPTS = {"coder": 1, "tester": 2, "reviewer": 2, "supervisor": 1}
"""The prompt versions the JSON-answering pipeline nodes are written for (newer versions
belong to the candidate-selection core, which answers in fenced code)."""

MESSAGE_OVERHEAD = 5
"""Chat-template tokens around each message (role markers); two messages per prompt."""
MEMORY_SHARE = 0.2
"""Share of the prompt budget the paged-in memories may take."""
LESSONS_TITLE = "Lessons from earlier similar tasks"
ADVICE = "raise STRATEGOS_PROMPT_TOKEN_BUDGET or shorten the goal"
"""The setting to change when the pinned part alone does not fit."""


@dataclass(frozen=True)
class RolePrompt:
    """An assembled prompt and what it cost, with and without paging."""

    system: str
    user: str
    tokens: int
    """system + user + chat-template overhead, counted with the serving model's tokenizer."""
    unpaged_tokens: int
    """The same call with the whole history inlined instead of summary + recent steps."""
    budget: int
    summary_included: bool
    recent_turns: int
    history_messages: int
    """Messages of the task so far, folded ones included."""
    shortened: tuple[str, ...] = field(default=())
    """Titles of required sections that had to be shortened to fit."""
    iteration: int = 0
    """The coder attempts so far when the call was made."""

    def stats(self, role: str) -> dict[str, Any]:
        """The numbers logged for every call (for reports and benchmarks)."""
        return {
            "role": role,
            "iteration": self.iteration,
            "tokens": self.tokens,
            "unpaged_tokens": self.unpaged_tokens,
            "budget": self.budget,
            "summary": self.summary_included,
            "recent_turns": self.recent_turns,
            "history_messages": self.history_messages,
            "shortened": list(self.shortened),
        }


def _system_tokens(system: str, counter: TokenCounter) -> int:
    """What a call costs besides its user message: the system message and the chat template."""
    return counter.count(system) + 2 * MESSAGE_OVERHEAD


def prompt_tokens(system: str, user: str, counter: TokenCounter) -> int:
    """Tokens of a system + user prompt, chat-template overhead included."""
    return _system_tokens(system, counter) + counter.count(user)


def goal_section(state: TeamState, title: str = "Goal") -> Section:
    """The goal, verbatim: pinned in every role's prompt."""
    return Section(title, state["goal"].strip())


# -- the team's parts of a prompt ----------------------------------------------------------


def _manifest(state: TeamState) -> str:
    """Where the task stands, derived from the state's artifacts (not from the chatter)."""
    lines = [f"Attempts so far: {state.get('iteration', 0)}."]
    best = state.get("best")
    runs = state.get("test_runs", [])
    if best is not None and best["score"][0] >= 0:
        spec, team = best["score"]
        totals = f" of {runs[-1]['spec_total']}" if runs else ""
        lines.append(
            f"Best version so far: attempt {best['iteration']}, passing {spec}{totals} of the "
            f"goal's examples and {team} of the team's tests."
        )
    if runs:
        latest = runs[-1]
        lines.append(
            f"Latest test run: {latest['spec_passed']}/{latest['spec_total']} of the goal's "
            f"examples, {latest['model_passed']}/{latest['model_total']} of the team's tests"
            + (f", error: {latest['error'][:160]}." if latest["error"] else ".")
        )
    if rejected := state.get("rejected_tests"):
        lines.append("Tests set aside as contradicting the goal: " + "; ".join(rejected) + ".")
    return "\n".join(lines)


def _lines(messages: Sequence[AnyMessage], kept: Sequence[AnyMessage]) -> list[Line]:
    """The history a prompt may show: a human's comments, and the messages not folded away."""
    window = {id(m) for m in kept}
    return [
        Line(message_line(m), held=is_pinned(m))
        for m in messages
        if is_pinned(m) or id(m) in window
    ]


def assemble(
    system: str,
    state: TeamState,
    *,
    pinned: Sequence[Section],
    required: Sequence[Section] = (),
    memories: Sequence[str] = (),
    memories_title: str = LESSONS_TITLE,
    counter: TokenCounter,
    budget: int,
) -> RolePrompt:
    """Build the user message for `system` within `budget` tokens (see the module docstring).

    Pure and deterministic: the same state gives the same prompt, so a resumed task asks the
    model the same question. Raises PinnedOverBudget when the pinned part alone does not fit.
    """
    messages = state.get("messages", [])
    folded = state.get("working") or EMPTY_DIGEST
    unfolded, kept = split_history(messages)
    # not folded yet (a node run outside the supervisor loop): fold for the view
    digest = fold_digest(folded, unfolded, counter, budget) if unfolded else folded
    parts = PromptParts(
        pinned=pinned,
        lines=_lines(messages, kept),
        summary_head=_manifest(state) if digest["summary"] else "",
        summary=digest["summary"],
        memories=memories,
        memories_title=memories_title,
        required=required,
    )
    limits = Budget(
        budget,
        counter,
        fixed=_system_tokens(system, counter),
        summary_share=SUMMARY_SHARE,
        memory_share=MEMORY_SHARE,
        advice=ADVICE,
    )
    packed = pack(parts, limits)
    whole = unpacked(replace(parts, lines=[Line(message_line(m)) for m in messages]))
    return RolePrompt(
        system=system,
        user=packed.text,
        tokens=packed.tokens,
        unpaged_tokens=prompt_tokens(system, whole, counter) + folded["paged_out_tokens"],
        budget=budget,
        summary_included=bool(packed.summary),
        recent_turns=len(packed.shown),
        history_messages=folded["paged_out"] + len(messages),
        shortened=packed.shortened,
        iteration=state.get("iteration", 0),
    )
