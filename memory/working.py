"""Working memory: every prompt assembled under a token budget, nothing pinned ever dropped.

A small model drowns in its own history, and a checkpoint that stores every message grows with
the task. So the window holds a few recent turns; older turns are folded into a running summary
(recursive summarisation: the old summary is an input of the new one) and paged out to
episodic memory, from where relevant ones are paged back in.

Prompt order: pinned items (instructions, goal) → running summary → paged-in memories → recent
turns. Tokens are counted with the serving model's tokenizer when there is one (`HttpTokenizer`
for llama-server's `/tokenize`), else with a len/4 estimate; the assembled text is counted
once more as a whole, so the budget holds even where per-part counts do not add up.
"""

from __future__ import annotations

import hashlib
import logging
import math
import re
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

import httpx
from pydantic import BaseModel, ConfigDict, Field

from memory.episodic import EpisodicMemory, MemoryKind, MemoryRecord, Recalled, recall_query

__all__ = [
    "DEFAULT_IMPORTANCE",
    "AssembledPrompt",
    "CharTokenCounter",
    "FallbackTokenCounter",
    "HttpTokenizer",
    "PinnedOverBudget",
    "Summarizer",
    "TokenCounter",
    "TokenizerError",
    "Turn",
    "WorkingMemory",
    "WorkingState",
    "extractive_summary",
    "fit_text",
    "split_sentences",
]

Summarizer = Callable[[Sequence[str]], str]

logger = logging.getLogger(__name__)


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way the serving model will."""

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        ...


class CharTokenCounter:
    """A model-free estimate: one token per `chars_per_token` characters, rounded up."""

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ValueError("chars_per_token must be positive")
        self.chars_per_token = chars_per_token

    def count(self, text: str) -> int:
        """Ceil(len / chars_per_token)."""
        return math.ceil(len(text) / self.chars_per_token)


class TokenizerError(RuntimeError):
    """The tokenizer endpoint did not answer with tokens; check the model server's URL."""


class HttpTokenizer:
    """Counts with llama-server's `/tokenize` (POST {"content": …} → {"tokens": […]}).

    Counts are cached by content hash: assembly counts the same turns again on every call.
    The cache is shared by the threads assembly runs in (it runs off the event loop), hence
    the lock; the HTTP call itself is made outside it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/tokenize"
        self._client = client or httpx.Client(timeout=timeout)
        self._owns = client is None
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Tokens in `text` according to the server (no special tokens added)."""
        if not text:
            return 0
        key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        try:
            response = self._client.post(self.url, json={"content": text})
            response.raise_for_status()
            tokens = response.json()["tokens"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise TokenizerError(f"tokenize failed at {self.url}: {exc}") from exc
        if not isinstance(tokens, list):
            raise TokenizerError(f"tokenize at {self.url} returned no token list")
        n = len(tokens)
        with self._lock:
            self._cache[key] = n
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return n

    def close(self) -> None:
        """Close the HTTP client if this tokenizer created it."""
        if self._owns:
            self._client.close()


class FallbackTokenCounter:
    """The exact counter while it answers, an estimate for good once it fails.

    A prompt must still be built when the tokenizer endpoint is down or a tokenizer cannot
    load its vocabulary (tiktoken downloads it on first use); the estimate errs high.
    """

    def __init__(self, primary: TokenCounter, fallback: TokenCounter | None = None) -> None:
        self.primary: TokenCounter | None = primary
        self.fallback: TokenCounter = fallback or CharTokenCounter(3.0)

    def count(self, text: str) -> int:
        """Count with the primary counter, or with the fallback once the primary has failed."""
        primary = self.primary
        if primary is not None:
            try:
                return primary.count(text)
            except Exception as exc:  # any tokenizer failure means "estimate from now on"
                logger.warning("token counting falls back to an estimate: %s", exc)
                self.primary = None
        return self.fallback.count(text)


# -- summarisation --------------------------------------------------------------------------

# "…" ends a sentence too: a shortened sentence must split off again when the summary is
# summarised once more (recursive summarisation re-reads its own output).
_SENTENCE_END = re.compile(r"(?<=[.!?…])\s+")
_KEY_SENTENCE = re.compile(
    r"\b(error|fail|failed|failing|exception|traceback|must|never|always|decid\w*|fix\w*|"
    r"pass(?:ed|es)?|todo|because)\b",
    re.IGNORECASE,
)


def split_sentences(text: str) -> list[str]:
    """Whitespace-collapsed sentences of a text."""
    flat = " ".join(text.split())
    return [s for s in _SENTENCE_END.split(flat) if s] if flat else []


def extractive_summary(
    texts: Sequence[str], *, max_chars: int = 1200, sentence_chars: int = 240
) -> str:
    """Deterministic summary: each text's first sentence plus its key sentences.

    Key sentences mention errors, failures, fixes and decisions: those are what the next
    attempt needs. Over `max_chars`, the oldest ordinary sentences go first.
    """
    picked: list[tuple[str, bool]] = []
    seen: set[str] = set()
    for text in texts:
        sentences = split_sentences(text)
        if not sentences:
            continue
        chosen = [sentences[0]] + [s for s in sentences[1:] if _KEY_SENTENCE.search(s)][:2]
        for sentence in chosen:
            if len(sentence) > sentence_chars:
                sentence = sentence[: sentence_chars - 1].rstrip() + "…"
            if sentence not in seen:
                seen.add(sentence)
                picked.append((sentence, bool(_KEY_SENTENCE.search(sentence))))

    def size() -> int:
        return sum(len(s) + 1 for s, _ in picked)

    while picked and size() > max_chars:
        ordinary = next((i for i, (_, key) in enumerate(picked) if not key), 0)
        picked.pop(ordinary)
    return " ".join(s for s, _ in picked)


def fit_text(text: str, max_tokens: int, counter: TokenCounter, *, keep: str = "tail") -> str:
    """The longest part of `text` (its tail, head, or both ends) within `max_tokens`."""
    if max_tokens <= 0:
        return ""
    if counter.count(text) <= max_tokens:
        return text
    marker = "…"

    def piece(n: int) -> str:
        if keep == "head":
            return text[:n] + marker
        if keep == "both":
            half = n // 2
            return text[: n - half] + marker + text[len(text) - half :]
        return marker + text[len(text) - n :]

    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if counter.count(piece(mid)) <= max_tokens:
            lo = mid
        else:
            hi = mid - 1
    return piece(lo) if lo > 0 else ""


# -- state and assembly ---------------------------------------------------------------------


class PinnedOverBudget(ValueError):
    """Pinned items alone exceed the budget: raise the budget or shorten the goal."""


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
    system: str
    turns: tuple[Turn, ...]
    memories: tuple[str, ...]
    dropped_turns: tuple[int, ...]
    summary_included: bool


_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_]{2,}")

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


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORD.findall(text)}


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
        min_recent: int = 2,
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
        self.summary_tokens = int(budget * summary_share)
        self.memory_tokens = int(budget * memory_share)
        self.summarize: Summarizer = summarize or (
            lambda texts: extractive_summary(texts, max_chars=max(self.summary_tokens * 4, 200))
        )
        self.episodic = episodic
        self.tenant = tenant
        self.task_id = task_id
        self.max_turns = max_turns
        self.keep_recent = keep_recent
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
        if self.episodic is not None:
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
        self.state.paged_out += len(old)
        return old

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
        """Build the prompt for the next model call, within the budget.

        `memories` are paged-in texts ranked best first; when omitted and episodic memory is
        configured, the `recall_k` best matches for `query` are paged in.
        """
        counter = self.counter
        mems = list(memories) if memories is not None else self._page_in(query)
        pinned = "\n".join(self.state.pinned.values())
        pinned_section = f"## Instructions and goal\n{pinned}" if pinned else ""
        if counter.count(pinned_section) > self.budget:
            raise PinnedOverBudget(
                f"pinned items need {counter.count(pinned_section)} tokens, the budget is "
                f"{self.budget}: raise the budget or shorten the pinned goal/instructions"
            )
        left = self.budget - counter.count(pinned_section)

        summary = ""
        if self.state.summary and left > 8:
            summary = fit_text(self.state.summary, min(self.summary_tokens, left - 8), counter)
            left -= counter.count(summary) + 8

        kept_mems: list[str] = []
        header = counter.count("## Relevant memories\n") + 2
        mem_left = min(self.memory_tokens, left) - header
        for text in mems:
            cost = counter.count(text) + 2
            if cost <= mem_left:
                kept_mems.append(text)
                mem_left -= cost
                left -= cost
        if kept_mems:
            left -= header

        turns = self.state.turns
        if turns:
            left -= counter.count("## Recent turns\n") + 2
        newest = list(reversed(turns[-self.min_recent :])) if self.min_recent > 0 else []
        older = turns[: -self.min_recent] if self.min_recent > 0 else list(turns)
        topic = _words(query or "") | _words(pinned)
        older_ranked = sorted(older, key=lambda t: (-len(_words(t.content) & topic), -t.seq))
        chosen: dict[int, Turn] = {}
        for turn in [*newest, *older_ranked]:
            head = f"[{turn.role}] "
            cost = counter.count(head + turn.content) + 1
            if cost <= left:
                chosen[turn.seq] = turn
                left -= cost
            elif turn in newest and left > 16:
                # the latest turns are the task's present: shorten rather than drop them
                body = fit_text(turn.content, left - counter.count(head) - 2, counter, keep="both")
                if body:
                    chosen[turn.seq] = turn.model_copy(update={"content": body})
                    left -= counter.count(head + body) + 1

        while True:
            kept_turns = tuple(sorted(chosen.values(), key=lambda t: t.seq))
            system, text = _render(pinned_section, summary, kept_mems, kept_turns)
            tokens = counter.count(text)
            if tokens <= self.budget:
                break
            # per-part counts did not add up exactly: shed the least valuable part and retry
            if older_ranked and any(t.seq in chosen for t in older_ranked):
                victim = next(t for t in reversed(older_ranked) if t.seq in chosen)
                chosen.pop(victim.seq)
            elif kept_mems:
                kept_mems.pop()
            elif len(chosen) > 1:
                chosen.pop(min(chosen))
            elif summary:
                summary = fit_text(summary, max(counter.count(summary) - 16, 0), counter)
            elif chosen:
                chosen.clear()
            else:
                raise PinnedOverBudget(
                    f"pinned items render to {tokens} tokens, over the budget of {self.budget}"
                )
        dropped = tuple(t.seq for t in turns if t.seq not in chosen)
        return AssembledPrompt(
            text=text,
            tokens=tokens,
            budget=self.budget,
            system=system,
            turns=kept_turns,
            memories=tuple(kept_mems),
            dropped_turns=dropped,
            summary_included=bool(summary),
        )

    def to_state(self) -> dict[str, Any]:
        """A small JSON-able dict for the graph state / checkpoint."""
        return self.state.model_dump()


def _render(
    pinned_section: str, summary: str, memories: Sequence[str], turns: Sequence[Turn]
) -> tuple[str, str]:
    parts = [pinned_section] if pinned_section else []
    if summary:
        parts.append(f"## Summary so far\n{summary}")
    if memories:
        parts.append("## Relevant memories\n" + "\n".join(f"- {m}" for m in memories))
    system = "\n\n".join(parts)
    if turns:
        parts.append("## Recent turns\n" + "\n".join(f"[{t.role}] {t.content}" for t in turns))
    return system, "\n\n".join(parts)
