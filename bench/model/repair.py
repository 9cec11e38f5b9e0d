"""Repair-like requests for the speculative decoding part of `bench_model.py`.

A repair call of the team sends a whole function and asks for it back with one small fix, so
most of the answer copies the prompt. That is where draft-free (n-gram) speculative decoding
can help: it drafts the next tokens from text already in the context and the model verifies
a whole draft in one batch. Each case here is a ~40-line function with one small bug, the
failing call as the team's repair prompt reports it, and the same instructions (one sentence,
then the whole corrected file in one fenced block).
"""

from __future__ import annotations

from dataclasses import dataclass

from bench.model.server import Completion, Run, chat_prompt, complete

SYSTEM = (
    "You are the coder. The solution below was run and fails on the call shown: you get the "
    "failing call, the value the goal requires and the value the code returned.\n"
    "First say in one sentence what in the code causes the failure. Then answer with the whole "
    "corrected file in one fenced code block (```python ... ```).\n"
    "Keep the function names and parameters. Fix the cause; keep the behaviour that already "
    "works. Use only the Python standard library."
)


@dataclass(frozen=True)
class RepairCase:
    """One buggy function and the failure the team would report for it."""

    name: str
    code: str
    call: str
    expected: str
    returned: str

    def messages(self, lines: int = 0) -> list[dict[str, str]]:
        """The chat messages of the repair request; `lines` > 0 keeps only the code's first
        lines (`--quick` only: a shorter prompt, the bug still in it)."""
        code = "".join(self.code.splitlines(keepends=True)[:lines]) if lines else self.code
        user = (
            f"solution.py:\n```python\n{code}```\n\n"
            f"Failing call: {self.call}\nRequired value: {self.expected}\n"
            f"Returned value: {self.returned}"
        )
        return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": user}]


INVENTORY = '''\
from dataclasses import dataclass, field


@dataclass
class Item:
    name: str
    price: float
    quantity: int = 0
    tags: list[str] = field(default_factory=list)


def summarize_inventory(items: list[Item], min_quantity: int = 1) -> dict[str, object]:
    """Totals of the items that have at least `min_quantity` units in stock."""
    in_stock = [item for item in items if item.quantity > min_quantity]
    total_units = 0
    total_value = 0.0
    by_tag: dict[str, int] = {}
    cheapest: Item | None = None
    dearest: Item | None = None
    for item in in_stock:
        total_units += item.quantity
        total_value += item.price * item.quantity
        for tag in item.tags:
            by_tag[tag] = by_tag.get(tag, 0) + item.quantity
        if cheapest is None or item.price < cheapest.price:
            cheapest = item
        if dearest is None or item.price > dearest.price:
            dearest = item
    average = total_value / total_units if total_units else 0.0
    return {
        "items": len(in_stock),
        "units": total_units,
        "value": round(total_value, 2),
        "average_price": round(average, 2),
        "cheapest": cheapest.name if cheapest else None,
        "dearest": dearest.name if dearest else None,
        "by_tag": dict(sorted(by_tag.items())),
    }
'''

INTERVALS = '''\
def merge_intervals(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Merge overlapping or touching closed intervals; the result is sorted by start."""
    if not intervals:
        return []
    cleaned: list[tuple[int, int]] = []
    for start, end in intervals:
        if start > end:
            start, end = end, start
        cleaned.append((start, end))
    cleaned.sort()
    merged: list[tuple[int, int]] = [cleaned[0]]
    for start, end in cleaned[1:]:
        last_start, last_end = merged[-1]
        if start < last_end:
            merged[-1] = (last_start, max(last_end, end))
        else:
            merged.append((start, end))
    return merged


def total_covered(intervals: list[tuple[int, int]]) -> int:
    """How many integer points the intervals cover together."""
    return sum(end - start + 1 for start, end in merge_intervals(intervals))


def gaps(intervals: list[tuple[int, int]], low: int, high: int) -> list[tuple[int, int]]:
    """The parts of [low, high] that no interval covers."""
    result: list[tuple[int, int]] = []
    cursor = low
    for start, end in merge_intervals(intervals):
        if end < low or start > high:
            continue
        if start > cursor:
            result.append((cursor, min(start - 1, high)))
        cursor = max(cursor, end + 1)
        if cursor > high:
            break
    if cursor <= high:
        result.append((cursor, high))
    return result
'''

WORDS = '''\
import re
from collections import Counter

STOP_WORDS = {"a", "an", "and", "the", "of", "to", "in", "is", "it"}


def top_words(text: str, limit: int = 3, keep_stop_words: bool = False) -> list[tuple[str, int]]:
    """The `limit` most frequent words of `text`, lower-cased, ties broken alphabetically."""
    words = re.findall(r"[a-z']+", text.lower())
    cleaned: list[str] = []
    for word in words:
        word = word.strip("'")
        if not word:
            continue
        if not keep_stop_words and word in STOP_WORDS:
            continue
        cleaned.append(word)
    counts = Counter(cleaned)
    ranked = sorted(counts.items(), key=lambda pair: (pair[1], pair[0]))
    return ranked[:limit]


def word_lengths(text: str) -> dict[int, int]:
    """How many words of each length `text` has."""
    lengths: dict[int, int] = {}
    for word in re.findall(r"[a-z']+", text.lower()):
        word = word.strip("'")
        if word:
            lengths[len(word)] = lengths.get(len(word), 0) + 1
    return dict(sorted(lengths.items()))


def longest_word(text: str) -> str:
    """The longest word; the first one among equals."""
    best = ""
    for word in re.findall(r"[a-z']+", text.lower()):
        word = word.strip("'")
        if len(word) > len(best):
            best = word
    return best
'''

CASES = (
    RepairCase(
        name="inventory",
        code=INVENTORY,
        call="summarize_inventory([Item('pen', 1.5, 1)])['items']",
        expected="1",
        returned="0",
    ),
    RepairCase(
        name="intervals",
        code=INTERVALS,
        call="merge_intervals([(1, 3), (3, 5)])",
        expected="[(1, 5)]",
        returned="[(1, 3), (3, 5)]",
    ),
    RepairCase(
        name="words",
        code=WORDS,
        call="top_words('b b b a a c', 2)",
        expected="[('b', 3), ('a', 2)]",
        returned="[('c', 1), ('a', 2)]",
    ),
)
"""Each bug is one token or operator (`>` for `>=`, `<` for `<=`, a missing `reverse`/`-`)."""


async def repair_requests(
    run: Run, cases: int, repetitions: int, max_tokens: int, lines: int
) -> list[tuple[str, Completion]]:
    """The first `cases` cases, `repetitions` times each, one at a time, greedy, prompt cache
    off (every type pays the same prompt), stopping at the end of the answer or `max_tokens`."""
    out: list[tuple[str, Completion]] = []
    for case in CASES[:cases]:
        prompt = await chat_prompt(run.client, run.base, case.messages(lines))
        for _ in range(repetitions):
            done = await complete(
                run.client,
                run.base,
                prompt,
                n_predict=max_tokens,
                cache_prompt=False,
                ignore_eos=False,
            )
            out.append((case.name, done))
    return out
