"""Shortening and summarising text under a token or character limit, deterministically.

Working memory folds old turns into a running summary and the packer shortens what does not
fit; both must give the same text for the same input (a resumed task asks the model the same
question), so nothing here calls a model.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Literal

from memory.tokens import TokenCounter

__all__ = ["Keep", "extractive_summary", "fit_text", "newest_sentences", "split_sentences"]

Keep = Literal["head", "tail", "both"]
"""Which end of a text survives shortening."""

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


def fit_text(text: str, max_tokens: int, counter: TokenCounter, *, keep: Keep = "tail") -> str:
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


def newest_sentences(text: str, max_tokens: int, counter: TokenCounter) -> str:
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
