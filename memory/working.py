"""Working memory: one task's window of turns, a running summary, and its prompts under a budget.

A small model drowns in its own history, and a checkpoint that stores every message grows with
the task. So the window holds a few recent turns; older turns are folded into a running summary
(recursive summarisation: the old summary is an input of the new one) and paged out to
episodic memory, from where relevant ones are paged back in.

Prompts are packed by `memory.packing`, the packer the team's prompts go through too: pinned
items (instructions, goal) → running summary → older turns → paged-in memories → the newest
turns, which are shortened rather than dropped. Tokens are counted with the serving model's
tokenizer when there is one (`memory.tokens`), and the packed text is counted once more as a
whole, so the budget holds even where per-part counts do not add up.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ConfigDict, Field

from memory.episodic import EpisodicMemory, MemoryKind, MemoryRecord, Recalled
from memory.packing import Budget, Line, PromptParts, Section, pack
from memory.recall_query import recall_query
from memory.texts import extractive_summary, split_sentences
from memory.tokens import CharTokenCounter, TokenCounter

__all__ = [
    "DEFAULT_IMPORTANCE",
    "PINNED_TITLE",
    "AssembledPrompt",
    "Summarizer",
    "Turn",
    "WorkingMemory",
    "WorkingState",
]

Summarizer = Callable[[Sequence[str]], str]

PINNED_TITLE = "Instructions and goal"


# -- state ---------------------------------------------------------------------------------


class Turn(BaseModel):
    """One message in the window; `kind` decides how it is remembered when paged out."""

    model_config = ConfigDict(extra="forbid")

    seq: int
    role: str
    content: str
    kind: MemoryKind = "observation"
    importance: float = Field(default=0.3, ge=0.0, le=1.0)


class WorkingState(BaseModel):
    """What a checkpoint keeps: pins, the summary and a bounded window (not the history)."""

    model_config = ConfigDict(extra="forbid")

    pinned: dict[str, str] = Field(default_factory=dict)
    summary: str = ""
    turns: list[Turn] = Field(default_factory=list)
    next_seq: int = 0
    paged_out: int = 0


@dataclass(frozen=True)
class AssembledPrompt:
    """A prompt that fits: its text, its token count and what went in or stayed out."""

    text: str
    tokens: int
    budget: int
    turns: tuple[Turn, ...]
    """The turns shown, oldest first; a shortened newest turn carries its shortened text."""
    memories: tuple[str, ...]
    dropped_turns: tuple[int, ...]
    summary_included: bool


# How much a paged-out turn is worth remembering, by kind: lessons outlive chatter.
DEFAULT_IMPORTANCE: dict[str, float] = {
    "instruction": 0.9,
    "solution": 0.7,
    "critique": 0.6,
    "test_failure": 0.6,
    "fact": 0.6,
    "observation": 0.3,
}


def _as_sentence(text: str) -> str:
    text = text.rstrip()
    return text if not text or text[-1] in ".!?…" else text + "."


def _line(turn: Turn) -> str:
    """An older turn as a line of the prompt's recent steps (the team's layout too)."""
    return f"- {turn.role}: {turn.content}"


def _shown(
    older: Sequence[Turn], newest: Sequence[Turn], shown: Sequence[int], bodies: Sequence[str]
) -> list[Turn]:
    """The turns a packed prompt shows, a shortened newest turn with the text it shows."""
    kept = [older[i] for i in shown]
    for turn, body in zip(newest, bodies, strict=True):
        if body == turn.content:
            kept.append(turn)
        elif body:
            kept.append(turn.model_copy(update={"content": body}))
    return kept


class WorkingMemory:
    """Bounded working memory for one task's agent loop."""

    def __init__(
        self,
        budget: int,
        *,
        counter: TokenCounter | None = None,
        summarize: Summarizer | None = None,
        episodic: EpisodicMemory | None = None,
        tenant: str = "default",
        task_id: str = "",
        max_turns: int = 12,
        keep_recent: int = 4,
        min_recent: int = 1,
        summary_share: float = 0.25,
        memory_share: float = 0.2,
        recall_k: int = 3,
        recall_min_score: float | None = None,
        state: WorkingState | None = None,
    ) -> None:
        if budget < 16:
            raise ValueError("budget must be at least 16 tokens")
        if not 0 < keep_recent <= max_turns:
            raise ValueError("need 0 < keep_recent <= max_turns")
        if not (0 <= summary_share < 1 and 0 <= memory_share < 1):
            raise ValueError("summary_share and memory_share must be in [0, 1)")
        self.budget = budget
        self.counter: TokenCounter = counter or CharTokenCounter()
        self.summary_share = summary_share
        self.memory_share = memory_share
        self.summary_tokens = int(budget * summary_share)
        self.summarize: Summarizer = summarize or (
            lambda texts: extractive_summary(texts, max_chars=max(self.summary_tokens * 4, 200))
        )
        self.episodic = episodic
        self.tenant = tenant
        self.task_id = task_id
        self.max_turns = max_turns
        self.keep_recent = keep_recent
        # The newest turns are packed as required sections: shortened rather than dropped.
        # They share the room in proportion to their size, so a long one can squeeze a short
        # one out: hence one by default.
        self.min_recent = min_recent
        self.recall_k = recall_k
        self.recall_min_score = recall_min_score
        self.state = state.model_copy(deep=True) if state else WorkingState()

    # -- mutations ----------------------------------------------------------------------

    def pin(self, key: str, text: str) -> None:
        """Keep `text` in every prompt, in pin order (instructions first, then the goal)."""
        self.state.pinned[key] = text

    def unpin(self, key: str) -> None:
        """Stop pinning an item."""
        self.state.pinned.pop(key, None)

    def add_turn(
        self,
        role: str,
        content: str,
        *,
        kind: MemoryKind = "observation",
        importance: float | None = None,
    ) -> Turn:
        """Append a turn; pages the oldest out once the window is too long."""
        turn = Turn(
            seq=self.state.next_seq,
            role=role,
            content=content,
            kind=kind,
            importance=DEFAULT_IMPORTANCE[kind] if importance is None else importance,
        )
        self.state.next_seq += 1
        self.state.turns.append(turn)
        window_tokens = sum(self.counter.count(t.content) for t in self.state.turns)
        if len(self.state.turns) > self.max_turns or window_tokens > self.budget:
            self.compact()
        return turn

    def compact(self, keep: int | None = None) -> list[Turn]:
        """Fold all but the `keep` (default `keep_recent`) newest turns into the summary.

        The folded turns are paged out to episodic memory when there is one, after the summary
        and window are updated (a failed page-out loses no context). Each turn is folded as a
        sentence, so the next summary can split this one again.
        """
        keep = self.keep_recent if keep is None else max(keep, 0)
        turns = self.state.turns
        if len(turns) <= keep:
            return []
        cut = len(turns) - keep
        old, self.state.turns = turns[:cut], turns[cut:]
        inputs = split_sentences(self.state.summary) + [
            _as_sentence(f"{t.role}: {t.content}") for t in old
        ]
        self.state.summary = self.summarize(inputs)
        self._page_out(old)
        self.state.paged_out += len(old)
        return old

    def _page_out(self, old: Sequence[Turn]) -> None:
        """Store folded turns in episodic memory, where `_page_in` can find them again."""
        if self.episodic is None:
            return
        now = self.episodic.now()
        self.episodic.remember_many(
            [
                MemoryRecord(
                    text=t.content[:4000],
                    kind=t.kind,
                    tenant=self.tenant,
                    task_id=self.task_id,
                    importance=t.importance,
                    created_at=now,
                    meta={"role": t.role, "seq": t.seq},
                )
                for t in old
                if t.content.strip()
            ]
        )

    # -- assembly -----------------------------------------------------------------------

    def _page_in(self, query: str | None) -> list[str]:
        if self.episodic is None or not query or self.recall_k <= 0:
            return []
        hits: list[Recalled] = self.episodic.recall(
            recall_query(query), self.tenant, self.recall_k, self.recall_min_score
        )
        in_window = {t.content for t in self.state.turns}
        return [h.record.text for h in hits if h.record.text not in in_window]

    def assemble(
        self, query: str | None = None, memories: Sequence[str] | None = None
    ) -> AssembledPrompt:
        """Build the prompt for the next model call, within the budget (`memory.packing`).

        `memories` are paged-in texts ranked best first; when omitted and episodic memory is
        configured, the `recall_k` best matches for `query` are paged in. The newest
        `min_recent` turns are required sections (the task's present: shortened, never
        dropped); older turns are recent lines, shown newest first while they fit.
        """
        turns = self.state.turns
        split = max(len(turns) - max(self.min_recent, 0), 0)
        older, newest = turns[:split], turns[split:]
        pinned = "\n".join(self.state.pinned.values())
        parts = PromptParts(
            pinned=[Section(PINNED_TITLE, pinned)] if pinned else [],
            lines=[Line(_line(t)) for t in older],
            summary=self.state.summary,
            memories=list(memories) if memories is not None else self._page_in(query),
            required=[Section(f"{t.role} (turn {t.seq})", t.content) for t in newest],
        )
        budget = Budget(
            self.budget,
            self.counter,
            summary_share=self.summary_share,
            memory_share=self.memory_share,
        )
        packed = pack(parts, budget)
        kept = _shown(older, newest, packed.shown, packed.bodies)
        seen = {t.seq for t in kept}
        return AssembledPrompt(
            text=packed.text,
            tokens=packed.tokens,
            budget=self.budget,
            turns=tuple(kept),
            memories=packed.memories,
            dropped_turns=tuple(t.seq for t in turns if t.seq not in seen),
            summary_included=bool(packed.summary),
        )

    def to_state(self) -> dict[str, object]:
        """A small JSON-able dict for the graph state / checkpoint."""
        return self.state.model_dump()
