"""The one prompt packer: every prompt, the team's and working memory's, fitted to a token budget.

A small model's context is short and a long task's history is not, so no prompt is built by
hand. Parts are fitted most important first:

1. pinned sections (instructions, the goal) and held lines (a human's decisions): never
   shortened or dropped; `PinnedOverBudget` when they alone do not fit;
2. required sections (what this very call needs: the current code, the failures to fix):
   whole when they fit, else each shortened in proportion, never dropped;
3. a summary: where the task stands, then the newest sentences of the running summary, within
   its share of the budget;
4. paged-in memories, best first, those that fit in their share;
5. recent lines, newest first, as many as fit (a gap would read as a history that never was).

They are rendered pinned → summary → recent lines → memories → required, so what the call is
about comes last, nearest the answer. Per-part counts need not add up with a real tokenizer,
so the whole text is counted again and parts are shed (the oldest recent line, a memory, the
summary's tail, the longest required section) until it fits. Pure and deterministic: the same
parts give the same prompt, so a resumed task asks the model the same question.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

from memory.texts import Keep, fit_text, newest_sentences
from memory.tokens import TokenCounter

__all__ = [
    "ADVICE",
    "MEMORIES_TITLE",
    "RECENT_TITLE",
    "SUMMARY_TITLE",
    "Budget",
    "Line",
    "Packed",
    "PinnedOverBudget",
    "PromptParts",
    "Section",
    "pack",
    "unpacked",
]

SUMMARY_TITLE = "Summary of the work so far"
RECENT_TITLE = "Recent steps"
MEMORIES_TITLE = "Relevant memories"
ADVICE = "raise the budget or shorten the pinned goal/instructions"


class PinnedOverBudget(ValueError):
    """Pinned items alone exceed the budget: raise the budget or shorten the goal."""


@dataclass(frozen=True)
class Section:
    """One titled block of a prompt: a `Title:` line and the body, or just the body."""

    title: str
    body: str
    keep: Keep = "both"
    """Which end survives when a required section must be shortened."""

    def render(self, body: str | None = None) -> str:
        """The block as the model reads it."""
        text = self.body if body is None else body
        return f"{self.title}:\n{text}" if self.title else text


@dataclass(frozen=True)
class Line:
    """One step of the history, as the model reads it under "Recent steps"."""

    text: str
    held: bool = False
    """A human's decision: shown in every prompt, like a pinned section."""


@dataclass(frozen=True)
class PromptParts:
    """What a caller asks to have packed; `lines` are chronological."""

    pinned: Sequence[Section] = ()
    lines: Sequence[Line] = ()
    summary_head: str = ""
    """Where the task stands: shown above the running summary, and only with one."""
    summary: str = ""
    """The running summary of what left the window, oldest sentence first."""
    memories: Sequence[str] = ()
    memories_title: str = MEMORIES_TITLE
    required: Sequence[Section] = ()


@dataclass(frozen=True)
class Budget:
    """How many tokens the prompt may take, and how they are counted and shared."""

    tokens: int
    counter: TokenCounter
    fixed: int = 0
    """Tokens spent outside the packed text (a system message, the chat template)."""
    summary_share: float = 0.25
    memory_share: float = 0.2
    advice: str = ADVICE
    """What to change when the pinned part alone does not fit (ends the error message)."""


@dataclass(frozen=True)
class Packed:
    """A packed prompt within its budget, and what went into it."""

    text: str
    tokens: int
    """`fixed` plus the tokens of `text`."""
    summary: str
    memories: tuple[str, ...]
    shown: tuple[int, ...]
    """Indices of the `lines` shown, oldest first."""
    bodies: tuple[str, ...]
    """The required sections' bodies as shown (shortened or whole)."""
    shortened: tuple[str, ...]
    """Titles (or openings) of the required sections that had to be shortened."""


def _join(blocks: Sequence[str]) -> str:
    return "\n\n".join(b for b in blocks if b)


def _render(
    pinned_text: str,
    summary: str,
    lines: Sequence[str],
    memories: Sequence[str],
    memories_title: str,
    required: Sequence[str],
) -> str:
    listed = "\n".join(f"- {m}" for m in memories)
    return _join(
        [
            pinned_text,
            f"{SUMMARY_TITLE}:\n{summary}" if summary else "",
            f"{RECENT_TITLE}:\n" + "\n".join(lines) if lines else "",
            f"{memories_title}:\n{listed}" if memories else "",
            *required,
        ]
    )


def unpacked(parts: PromptParts) -> str:
    """The prompt with every line, memory and required section whole (what packing saves)."""
    return _render(
        _join([s.render() for s in parts.pinned]),
        "",
        [line.text for line in parts.lines],
        parts.memories,
        parts.memories_title,
        [s.render() for s in parts.required],
    )


@dataclass
class _Draft:
    """The parts of one prompt while it is packed; `render` joins them in order."""

    parts: PromptParts
    pinned_text: str
    bodies: list[str]
    shortened: list[str]
    summary: str = ""
    memories: list[str] = field(default_factory=list)
    shown: set[int] = field(default_factory=set)

    def render(self) -> str:
        """The prompt as the model reads it."""
        parts = self.parts
        return _render(
            self.pinned_text,
            self.summary,
            [parts.lines[i].text for i in sorted(self.shown)],
            self.memories,
            parts.memories_title,
            [s.render(b) for s, b in zip(parts.required, self.bodies, strict=True)],
        )


def _pinned_cost(parts: PromptParts, pinned_text: str, budget: Budget) -> int:
    """What the never-dropped part costs; raises PinnedOverBudget when it alone does not fit."""
    counter = budget.counter
    held = [line for line in parts.lines if line.held]
    held_cost = sum(counter.count(line.text) + 1 for line in held)
    recent_title = counter.count(RECENT_TITLE) + 2 if held else 0
    base = budget.fixed + counter.count(pinned_text) + held_cost + recent_title
    if base > budget.tokens:
        raise PinnedOverBudget(
            f"the pinned instructions and goal need {base} tokens, the prompt budget is "
            f"{budget.tokens}: {budget.advice}"
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


def _fit_summary(parts: PromptParts, left: int, budget: Budget) -> tuple[str, int]:
    """(the head and the newest summary sentences within the summary's share, tokens left)."""
    counter = budget.counter
    if not (parts.summary and left > 16):
        return "", left
    head = parts.summary_head
    cap = min(int(budget.tokens * budget.summary_share), left) - counter.count(SUMMARY_TITLE) - 4
    earlier = cap - counter.count(head) - 4
    steps = newest_sentences(parts.summary, earlier, counter) if earlier > 8 else ""
    summary = "\n".join(p for p in (head, f"Earlier steps: {steps}" if steps else "") if p)
    if counter.count(summary) > cap:
        summary = fit_text(summary, max(cap, 0), counter, keep="head")
    if summary:
        left -= counter.count(summary) + counter.count(SUMMARY_TITLE) + 4
    return summary, left


def _fit_memories(parts: PromptParts, left: int, budget: Budget) -> tuple[list[str], int]:
    """(the memories that fit in their share, in their order; tokens left)."""
    counter = budget.counter
    title = parts.memories_title
    kept: list[str] = []
    room = min(int(budget.tokens * budget.memory_share), left) - counter.count(title) - 4
    for text in parts.memories:
        size = counter.count(f"- {text}") + 1
        if size <= room:
            kept.append(text)
            room -= size
            left -= size
    if kept:
        left -= counter.count(title) + 4
    return kept, left


def _fit_recent(lines: Sequence[Line], left: int, counter: TokenCounter) -> set[int]:
    """Indices of the lines shown: the held ones always, then the newest that fit, unbroken."""
    shown = {i for i, line in enumerate(lines) if line.held}
    loose = [i for i, line in enumerate(lines) if not line.held]
    if loose and not shown:
        left -= counter.count(RECENT_TITLE) + 2
    for i in reversed(loose):
        size = counter.count(lines[i].text) + 1
        if size > left:
            break
        shown.add(i)
        left -= size
    return shown


def _shed(draft: _Draft, tokens: int, budget: Budget) -> None:
    """Drop or shorten the least needed part; raise PinnedOverBudget when none is left."""
    counter = budget.counter
    loose = [i for i in sorted(draft.shown) if not draft.parts.lines[i].held]
    if loose:
        draft.shown.discard(loose[0])
    elif draft.memories:
        draft.memories.pop()
    elif draft.summary:
        draft.summary = fit_text(
            draft.summary, counter.count(draft.summary) - 16, counter, keep="head"
        )
    elif any(draft.bodies):
        _shorten_longest(draft, counter)
    else:
        raise PinnedOverBudget(
            f"the pinned part renders to {tokens} tokens, over the prompt budget of "
            f"{budget.tokens}: {budget.advice}"
        )


def _shorten_longest(draft: _Draft, counter: TokenCounter) -> None:
    """Cut the longest required body by a tenth: the last resort before giving up."""
    bodies = draft.bodies
    i = max(range(len(bodies)), key=lambda k: counter.count(bodies[k]))
    section = draft.parts.required[i]
    bodies[i] = fit_text(
        bodies[i], counter.count(bodies[i]) * 9 // 10 - 1, counter, keep=section.keep
    )
    title = section.title or section.body[:40]
    if title not in draft.shortened:
        draft.shortened.append(title)


def _shed_until_it_fits(draft: _Draft, budget: Budget) -> tuple[str, int]:
    """(the text, its tokens with `fixed`), shedding parts until it is within the budget."""
    text = draft.render()
    tokens = budget.fixed + budget.counter.count(text)
    while tokens > budget.tokens:
        _shed(draft, tokens, budget)
        text = draft.render()
        tokens = budget.fixed + budget.counter.count(text)
    return text, tokens


def pack(parts: PromptParts, budget: Budget) -> Packed:
    """Pack `parts` within `budget` (see the module docstring for what goes first).

    Raises PinnedOverBudget when the pinned sections and held lines alone do not fit.
    """
    counter = budget.counter
    pinned_text = _join([s.render() for s in parts.pinned])
    left = budget.tokens - _pinned_cost(parts, pinned_text, budget)
    bodies, shortened = _fit_required(parts.required, left, counter)
    left -= sum(counter.count(s.render(b)) + 2 for s, b in zip(parts.required, bodies, strict=True))
    draft = _Draft(parts, pinned_text, bodies, shortened)
    draft.summary, left = _fit_summary(parts, left, budget)
    draft.memories, left = _fit_memories(parts, left, budget)
    draft.shown = _fit_recent(parts.lines, left, counter)
    text, tokens = _shed_until_it_fits(draft, budget)
    return Packed(
        text=text,
        tokens=tokens,
        summary=draft.summary,
        memories=tuple(draft.memories),
        shown=tuple(sorted(draft.shown)),
        bodies=tuple(draft.bodies),
        shortened=tuple(draft.shortened),
    )
