"""Every model call's prompt, packed under a token budget by one shared, pure path.

A small model's context is short and a long task's history is not, so no agent builds its
prompt by hand. The order is fixed, most important first:

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
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.messages import AnyMessage

from graphs.state import TeamState, WorkingDigest
from memory.working import PinnedOverBudget, TokenCounter, fit_text, split_sentences
from nodes.prompt_history import (
    EMPTY_DIGEST,
    SUMMARY_SHARE,
    fold_digest,
    is_pinned,
    message_line,
    split_history,
)

PIPELINE_PROMPTS = {"coder": 1, "tester": 2, "reviewer": 2, "supervisor": 1}
"""The prompt versions the JSON-answering pipeline nodes are written for (newer versions
belong to the candidate-selection core, which answers in fenced code)."""

MESSAGE_OVERHEAD = 5
"""Chat-template tokens around each message (role markers); two messages per prompt."""
MEMORY_SHARE = 0.2
LESSONS_TITLE = "Lessons from earlier similar tasks"
SUMMARY_TITLE = "Summary of the work so far"
RECENT_TITLE = "Recent steps"


@dataclass(frozen=True)
class Section:
    """One titled block of the user message: a `Title:` line and the body, or just the body."""

    title: str
    body: str
    keep: Literal["head", "tail", "both"] = "both"
    """Which end survives when a required section must be shortened."""

    def render(self, body: str | None = None) -> str:
        """The block as the model reads it."""
        text = self.body if body is None else body
        return f"{self.title}:\n{text}" if self.title else text


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


def prompt_tokens(system: str, user: str, counter: TokenCounter) -> int:
    """Tokens of a system + user prompt, chat-template overhead included."""
    return counter.count(system) + counter.count(user) + 2 * MESSAGE_OVERHEAD


def goal_section(state: TeamState, title: str = "Goal") -> Section:
    """The goal, verbatim: pinned in every role's prompt."""
    return Section(title, state["goal"].strip())


# -- the parts of a prompt, most important first --------------------------------------------


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


def _newest_sentences(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """The newest whole sentences of a summary that fit in `max_tokens`.

    The summary is chronological, so its end is the latest; a sentence is cut only when it
    alone is too long.
    """
    sentences = split_sentences(text)
    kept: list[str] = []
    used = 0
    for sentence in reversed(sentences):
        size = counter.count(sentence) + 1
        if used + size > max_tokens:
            break
        kept.append(sentence)
        used += size
    if not kept and sentences:
        return fit_text(sentences[-1], max_tokens, counter)
    return " ".join(reversed(kept))


def _join(blocks: Sequence[str]) -> str:
    return "\n\n".join(b for b in blocks if b)


def _pinned_cost(
    system: str, pinned_text: str, held: Sequence[AnyMessage], counter: TokenCounter, budget: int
) -> int:
    """What the never-dropped part costs; raises PinnedOverBudget when it alone does not fit."""
    held_cost = sum(counter.count(message_line(m)) + 1 for m in held)
    recent_title = counter.count(RECENT_TITLE) + 2 if held else 0
    base = prompt_tokens(system, pinned_text, counter) + held_cost + recent_title
    if base > budget:
        raise PinnedOverBudget(
            f"the pinned instructions and goal need {base} tokens, the prompt budget is "
            f"{budget}: raise STRATEGOS_PROMPT_TOKEN_BUDGET or shorten the goal"
        )
    return base


def _fit_required(
    required: Sequence[Section], left: int, counter: TokenCounter
) -> tuple[list[str], list[str]]:
    """(bodies, titles shortened): whole when they fit, else each shortened in proportion."""
    bodies = [s.body for s in required]
    need = sum(counter.count(s.render()) + 2 for s in required)
    shortened: list[str] = []
    if need > left:
        for i, section in enumerate(required):
            share = left * (counter.count(section.render()) + 2) // max(need, 1)
            room = share - counter.count(section.render("")) - 3
            bodies[i] = fit_text(section.body, max(room, 0), counter, keep=section.keep)
            shortened.append(section.title or section.body[:40])
    return bodies, shortened


def _summary(
    state: TeamState, digest: WorkingDigest, left: int, budget: int, counter: TokenCounter
) -> tuple[str, int]:
    """(the manifest and the newest folded steps within the summary's share, tokens left)."""
    if not (digest["summary"] and left > 16):
        return "", left
    manifest = _manifest(state)
    cap = min(int(budget * SUMMARY_SHARE), left) - counter.count(SUMMARY_TITLE) - 4
    earlier = cap - counter.count(manifest) - 4
    steps = _newest_sentences(digest["summary"], earlier, counter) if earlier > 8 else ""
    summary = manifest + (f"\nEarlier steps: {steps}" if steps else "")
    if counter.count(summary) > cap:
        summary = fit_text(summary, max(cap, 0), counter, keep="head")
    if summary:
        left -= counter.count(summary) + counter.count(SUMMARY_TITLE) + 4
    return summary, left


def _memories(
    memories: Sequence[str], title: str, left: int, budget: int, counter: TokenCounter
) -> tuple[list[str], int]:
    """(the memories that fit in their share, in their order; tokens left)."""
    kept: list[str] = []
    room = min(int(budget * MEMORY_SHARE), left) - counter.count(title) - 4
    for text in memories:
        size = counter.count(f"- {text}") + 1
        if size <= room:
            kept.append(text)
            room -= size
            left -= size
    if kept:
        left -= counter.count(title) + 4
    return kept, left


def _recent(
    kept: Sequence[AnyMessage], held: Sequence[AnyMessage], left: int, counter: TokenCounter
) -> set[int]:
    """Ids of the messages shown: a human's comments always, then the newest steps that fit."""
    chosen: set[int] = {id(m) for m in held}
    if kept and not held:
        left -= counter.count(RECENT_TITLE) + 2
    for message in reversed(kept):
        size = counter.count(message_line(message)) + 1
        if size > left:
            break
        chosen.add(id(message))
        left -= size
    return chosen


@dataclass
class _Draft:
    """The parts of one user message while it is packed; `render` joins them in order."""

    pinned_text: str
    messages: Sequence[AnyMessage]
    required: Sequence[Section]
    bodies: list[str]
    shortened: list[str]
    memories_title: str
    summary: str = ""
    memories: list[str] = field(default_factory=list)
    chosen: set[int] = field(default_factory=set)

    def render(self) -> str:
        """The user message as the model reads it."""
        recent = [message_line(m) for m in self.messages if id(m) in self.chosen]
        memories = "\n".join(f"- {m}" for m in self.memories)
        return _join(
            [
                self.pinned_text,
                f"{SUMMARY_TITLE}:\n{self.summary}" if self.summary else "",
                f"{RECENT_TITLE}:\n" + "\n".join(recent) if recent else "",
                f"{self.memories_title}:\n{memories}" if self.memories else "",
                *(s.render(b) for s, b in zip(self.required, self.bodies, strict=True)),
            ]
        )

    def shed(
        self, kept: Sequence[AnyMessage], counter: TokenCounter, tokens: int, budget: int
    ) -> None:
        """Drop or shorten the least needed part; raise PinnedOverBudget when none is left.

        Per-part counts need not add up with a real tokenizer, so a packed prompt can still
        be over: the oldest recent step goes first, then a memory, the summary, and last the
        longest required section.
        """
        optional = [m for m in kept if id(m) in self.chosen]
        if optional:
            self.chosen.discard(id(optional[0]))
        elif self.memories:
            self.memories.pop()
        elif self.summary:
            self.summary = fit_text(
                self.summary, counter.count(self.summary) - 16, counter, keep="head"
            )
        elif any(self.bodies):
            self._shorten_longest(counter)
        else:
            raise PinnedOverBudget(
                f"the pinned part renders to {tokens} tokens, over the prompt budget of "
                f"{budget}: raise STRATEGOS_PROMPT_TOKEN_BUDGET or shorten the goal"
            )

    def _shorten_longest(self, counter: TokenCounter) -> None:
        bodies = self.bodies
        i = max(range(len(bodies)), key=lambda k: counter.count(bodies[k]))
        section = self.required[i]
        bodies[i] = fit_text(
            bodies[i], counter.count(bodies[i]) * 9 // 10 - 1, counter, keep=section.keep
        )
        title = section.title or section.body[:40]
        if title not in self.shortened:
            self.shortened.append(title)


def _unpaged_user(
    pinned_text: str,
    messages: Sequence[AnyMessage],
    memories: Sequence[str],
    memories_title: str,
    required: Sequence[Section],
) -> str:
    """The same call's user message with the whole history inlined (what paging saves)."""
    whole_history = "\n".join(message_line(m) for m in messages)
    listed = "\n".join(f"- {m}" for m in memories)
    return _join(
        [
            pinned_text,
            f"{RECENT_TITLE}:\n{whole_history}" if messages else "",
            f"{memories_title}:\n{listed}" if memories else "",
            *(s.render() for s in required),
        ]
    )


def _packed(
    system: str, draft: _Draft, kept: Sequence[AnyMessage], counter: TokenCounter, budget: int
) -> tuple[str, int]:
    """(the user message, the prompt's tokens), shedding parts until it is within `budget`."""
    user = draft.render()
    tokens = prompt_tokens(system, user, counter)
    while tokens > budget:
        draft.shed(kept, counter, tokens, budget)
        user = draft.render()
        tokens = prompt_tokens(system, user, counter)
    return user, tokens


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
    digest = state.get("working") or EMPTY_DIGEST
    unfolded, kept = split_history(messages)
    if unfolded:  # not folded yet (a node run outside the supervisor loop): fold for the view
        digest = fold_digest(digest, unfolded, counter, budget)
    held = [m for m in messages if is_pinned(m)]
    pinned_text = _join([s.render() for s in pinned])
    left = budget - _pinned_cost(system, pinned_text, held, counter, budget)
    bodies, shortened = _fit_required(required, left, counter)
    left -= sum(counter.count(s.render(b)) + 2 for s, b in zip(required, bodies, strict=True))
    draft = _Draft(pinned_text, messages, required, bodies, shortened, memories_title)
    draft.summary, left = _summary(state, digest, left, budget, counter)
    draft.memories, left = _memories(memories, memories_title, left, budget, counter)
    draft.chosen = _recent(kept, held, left, counter)
    user, tokens = _packed(system, draft, kept, counter, budget)
    unpaged = _unpaged_user(pinned_text, messages, memories, memories_title, required)
    folded = state.get("working") or EMPTY_DIGEST
    return RolePrompt(
        system=system,
        user=user,
        tokens=tokens,
        unpaged_tokens=prompt_tokens(system, unpaged, counter) + folded["paged_out_tokens"],
        budget=budget,
        summary_included=bool(draft.summary),
        recent_turns=len([m for m in messages if id(m) in draft.chosen]),
        history_messages=folded["paged_out"] + len(messages),
        shortened=tuple(draft.shortened),
        iteration=state.get("iteration", 0),
    )
