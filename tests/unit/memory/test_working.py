"""Working memory: budgets, pinning, summarising, paging out and back in."""

from __future__ import annotations

import random

import pytest
from qdrant_client import QdrantClient

from memory.embeddings import HashEmbedder
from memory.episodic import EpisodicMemory
from memory.packing import PinnedOverBudget
from memory.scoring import ScoringParams
from memory.texts import extractive_summary, fit_text
from memory.tokens import CharTokenCounter
from memory.working import WorkingMemory, WorkingState

from .conftest import FakeClock

PIN_GOAL = "GOAL: implement parse_duration('1h30m') returning seconds; PIN-FACT-7731."
PIN_RULE = "RULE: never change the public signature of parse_duration."


def test_char_counter_rounds_up() -> None:
    c = CharTokenCounter()
    assert c.count("") == 0
    assert c.count("abc") == 1
    assert c.count("abcde") == 2


def test_fit_text_keeps_the_requested_end_within_budget() -> None:
    c = CharTokenCounter()
    text = "".join(str(i % 10) for i in range(400))
    tail = fit_text(text, 20, c)
    head = fit_text(text, 20, c, keep="head")
    both = fit_text(text, 20, c, keep="both")
    for piece in (tail, head, both):
        assert c.count(piece) <= 20
        assert len(piece) >= 70  # close to the 80-char budget, not trivially short
    assert tail.endswith(text[-10:]) and head.startswith(text[:10])
    assert both.startswith(text[:10]) and both.endswith(text[-10:])
    assert fit_text("short", 20, c) == "short"
    assert fit_text(text, 0, c) == ""


def test_extractive_summary_keeps_first_and_key_sentences_within_limit() -> None:
    texts = [
        "Ran the tests. Nothing interesting here. The test_split case failed on empty input.",
        "Reviewer looked at it. We decided to keep the regex.",
    ]
    s = extractive_summary(texts, max_chars=1000)
    assert "Ran the tests." in s
    assert "The test_split case failed on empty input." in s
    assert "We decided to keep the regex." in s
    assert "Nothing interesting here." not in s
    short = extractive_summary(texts * 20, max_chars=120)
    assert len(short) <= 120
    assert extractive_summary(texts) == extractive_summary(texts)


def test_extractive_summary_drops_ordinary_sentences_before_key_ones() -> None:
    texts = [f"Note {i} about nothing." for i in range(10)] + ["The build failed on step 3."]
    s = extractive_summary(texts, max_chars=60)
    assert "failed on step 3" in s


def test_pinned_items_come_first_and_over_budget_pins_raise() -> None:
    wm = WorkingMemory(200)
    wm.pin("rules", PIN_RULE)
    wm.pin("goal", PIN_GOAL)
    wm.add_turn("user", "hello")
    prompt = wm.assemble()
    assert prompt.text.index(PIN_RULE) < prompt.text.index(PIN_GOAL) < prompt.text.index("hello")
    big = WorkingMemory(50)
    big.pin("goal", "x" * 1000)
    with pytest.raises(PinnedOverBudget, match="raise the budget"):
        big.assemble()


def test_newest_turn_is_shortened_rather_than_dropped() -> None:
    wm = WorkingMemory(120, max_turns=50, keep_recent=4)
    wm.pin("goal", PIN_GOAL)
    wm.add_turn("tool", "HEAD " + "x" * 2000 + " TAIL")
    prompt = wm.assemble()
    assert prompt.tokens <= 120
    assert "HEAD" in prompt.text and "TAIL" in prompt.text
    assert PIN_GOAL in prompt.text
    shown = prompt.turns[-1].content
    assert shown in prompt.text and len(shown) < 2000, "the turn records what was shown"


def test_window_pages_out_into_summary_and_state_stays_small() -> None:
    wm = WorkingMemory(400, max_turns=6, keep_recent=3)
    for i in range(30):
        wm.add_turn("coder", f"Iteration {i} wrote version {i}. Test t{i} failed on input {i}.")
    assert len(wm.state.turns) <= 6
    assert wm.state.paged_out >= 24
    last_paged = min(t.seq for t in wm.state.turns) - 1
    assert f"Test t{last_paged} failed on input {last_paged}." in wm.state.summary
    assert len(wm.state.summary) <= 400  # the summary is bounded, not a log
    assert len(wm.state.model_dump_json()) < 2500  # checkpoint size does not grow with turns
    restored = WorkingMemory(400, state=WorkingState.model_validate(wm.to_state()))
    assert restored.assemble().text == wm.assemble().text


def test_forty_iterations_stay_under_budget_and_keep_pins(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    budget = 300
    counter = CharTokenCounter()
    episodic = EpisodicMemory(
        qdrant, embedder, params=ScoringParams(similarity_floor=0.0), clock=clock
    )
    wm = WorkingMemory(
        budget, counter=counter, episodic=episodic, tenant="acme", task_id="t1", max_turns=8
    )
    wm.pin("rules", PIN_RULE)
    wm.pin("goal", PIN_GOAL)
    rng = random.Random(7)
    roles = ["supervisor", "coder", "tester", "reviewer"]
    sizes: list[int] = []
    for i in range(48):
        role = roles[i % 4]
        body = " ".join(f"tok{rng.randrange(500)}" for _ in range(rng.choice([5, 30, 120, 400])))
        if role == "tester":
            wm.add_turn(role, f"step {i}: {body}", kind="test_failure")
        else:
            wm.add_turn(role, f"step {i}: {body}")
        prompt = wm.assemble(query=f"step {i} parse_duration")
        sizes.append(prompt.tokens)
        assert prompt.tokens == counter.count(prompt.text)
        assert prompt.tokens <= budget, f"iteration {i}: {prompt.tokens} > {budget}"
        assert PIN_GOAL in prompt.text and PIN_RULE in prompt.text
        assert f"step {i}:" in prompt.text  # the newest turn is always there
        clock.advance(60)
    assert wm.state.paged_out > 0
    assert episodic.count("acme") == wm.state.paged_out
    assert max(sizes) <= budget


def test_paged_out_turns_come_back_when_relevant(
    qdrant: QdrantClient, embedder: HashEmbedder, clock: FakeClock
) -> None:
    episodic = EpisodicMemory(
        qdrant, embedder, params=ScoringParams(similarity_floor=0.0), clock=clock
    )
    wm = WorkingMemory(
        400, episodic=episodic, tenant="acme", task_id="t1", max_turns=4, keep_recent=2
    )
    wm.pin("goal", PIN_GOAL)
    wm.add_turn(
        "tester", "zebra_overflow crashed with OverflowError on huge hours", kind="test_failure"
    )
    for i in range(6):
        wm.add_turn("coder", f"unrelated refactor number {i}")
    assert all("zebra_overflow" not in t.content for t in wm.state.turns)
    prompt = wm.assemble(query="fix zebra_overflow OverflowError")
    assert any("zebra_overflow" in m for m in prompt.memories)
    assert "zebra_overflow" in prompt.text
    assert prompt.tokens <= 400
    explicit = wm.assemble(memories=["hand-picked memory"])
    assert explicit.memories == ("hand-picked memory",)


def test_recursive_summary_re_splits_its_own_shortened_sentences() -> None:
    wm = WorkingMemory(2000, max_turns=50)
    long_turn = "word " * 80  # one sentence longer than a summary sentence may be
    wm.add_turn("coder", long_turn + "and no full stop")
    wm.add_turn("tester", "Test t1 failed on input 1")
    wm.compact(keep=0)
    assert wm.state.turns == [] and wm.state.paged_out == 2
    first = wm.state.summary
    assert "Test t1 failed on input 1." in first
    wm.add_turn("tester", "Test t2 failed on input 2.")
    wm.compact(keep=0)
    # The shortened sentence ("…") and the unpunctuated turn stay separate sentences, so the
    # earlier facts survive the second round of summarising.
    assert "Test t1 failed on input 1." in wm.state.summary
    assert "Test t2 failed on input 2." in wm.state.summary
