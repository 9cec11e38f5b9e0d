"""The shared prompt assembly: pinned parts kept, required parts shortened last, budget held."""

from __future__ import annotations

import sys
import types
from typing import Any

import httpx
import pytest
from langchain_core.messages import AIMessage, RemoveMessage
from langchain_openai import ChatOpenAI
from pydantic import SecretStr

import nodes.prompt_budget as prompt_budget
import nodes.prompting as prompting
from graphs.context import TeamContext
from graphs.deps import ModelServing
from graphs.state import TeamState, WorkingDigest, newer_digest
from memory.packing import PinnedOverBudget
from memory.tokens import CharTokenCounter, FallbackTokenCounter, HttpTokenizer
from nodes.prompt_budget import ESTIMATE, SCRIPTED_COUNTER, fold_history, token_counter
from nodes.prompt_history import FOLD_AT, KEEP_RECENT
from nodes.prompting import Section, assemble, prompt_tokens
from nodes.prompts import load_prompt
from service.llm import models
from service.settings import get_settings
from service.team_deps import ServiceDeps
from tests.conftest import scripted

COUNTER = CharTokenCounter(4.0)
GOAL = "Write add(a, b) that returns the sum of a and b.\nExample: add(2, 3) == 5"
SYSTEM = load_prompt("coder").text


def state(**overrides: Any) -> TeamState:
    base: dict[str, Any] = {"goal": GOAL, "messages": [], "files": {}, "iteration": 0}
    base.update(overrides)
    return base  # type: ignore[return-value]


def chatter(n: int, start: int = 0) -> list[AIMessage]:
    return [
        AIMessage(
            f"coder: attempt {i} changed the loop again because step {i} failed.", name="coder"
        )
        for i in range(start, start + n)
    ]


def build(st: TeamState, budget: int = 4000, **kwargs: Any) -> prompting.RolePrompt:
    kwargs.setdefault("pinned", [Section("Goal", st["goal"])])
    return assemble(SYSTEM, st, counter=COUNTER, budget=budget, **kwargs)


def test_a_fresh_prompt_is_the_goal_entry_point_and_lessons_as_before() -> None:
    built = build(
        state(),
        pinned=[Section("Goal", GOAL), Section("", "The function to implement is `add`.")],
        memories=["use + not -"],
    )
    assert built.system == SYSTEM
    assert built.user == (
        f"Goal:\n{GOAL}\n\nThe function to implement is `add`.\n\n"
        "Lessons from earlier similar tasks:\n- use + not -"
    )
    assert built.tokens == prompt_tokens(SYSTEM, built.user, COUNTER)
    assert not built.summary_included and built.unpaged_tokens == built.tokens


def test_a_repair_shows_recent_steps_then_the_code_and_the_failures_last() -> None:
    st = state(messages=chatter(3), feedback="- add(2, 3) returned -1, expected 5")
    built = build(
        st,
        required=[
            Section("Current solution.py", "def add(a, b):\n    return a - b\n"),
            Section("Fix these problems", st["feedback"], keep="head"),
        ],
    )
    user = built.user
    assert user.index("Goal:") < user.index("Recent steps:") < user.index("Current solution.py:")
    assert user.endswith("Fix these problems:\n- add(2, 3) returned -1, expected 5")
    assert built.recent_turns == 3 and "- coder: attempt 2 changed" in user


def test_required_sections_are_shortened_not_dropped_and_pins_stay_whole() -> None:
    feedback = "- add(2, 3) returned -1, expected 5 (from the goal's examples)\n" + "\n".join(
        f"- add({i}, 1) returned {i - 1}, expected {i + 1}" for i in range(300)
    )
    code = (
        "def add(a, b):\n" + "".join(f"    x{i} = {i}\n" for i in range(400)) + "    return a - b\n"
    )
    st = state(messages=chatter(6), feedback=feedback)
    budget = 700
    built = build(
        st,
        budget=budget,
        required=[
            Section("Current solution.py", code, keep="both"),
            Section("Fix these problems", feedback, keep="head"),
        ],
    )
    assert built.tokens <= budget
    assert GOAL in built.user
    assert "Current solution.py:\ndef add(a, b):" in built.user and "return a - b" in built.user
    assert "returned -1, expected 5 (from the goal's examples)" in built.user
    assert set(built.shortened) == {"Current solution.py", "Fix these problems"}
    # Optional parts make room first: the newest step may go, the failures stay.
    assert built.unpaged_tokens > budget


def test_pinned_parts_over_the_budget_raise_with_the_setting_to_change() -> None:
    with pytest.raises(PinnedOverBudget, match="STRATEGOS_PROMPT_TOKEN_BUDGET"):
        build(state(goal="x" * 4000), budget=500)


def test_human_comments_are_pinned_never_folded_and_always_shown() -> None:
    human = AIMessage("human rejected delivery: add a docstring", name="approval")
    messages = [human, *chatter(FOLD_AT + 5)]
    st = state(messages=messages)
    built = build(st, budget=400)
    assert "human rejected delivery: add a docstring" in built.user
    assert built.tokens <= 400


def test_an_unfolded_long_history_is_summarised_for_the_view() -> None:
    st = state(messages=chatter(FOLD_AT + 6), iteration=7)
    built = build(st)
    assert built.summary_included
    assert "Summary of the work so far:\nAttempts so far: 7." in built.user
    assert built.recent_turns == KEEP_RECENT
    assert f"attempt {FOLD_AT + 5} changed" in built.user


async def test_fold_history_removes_old_messages_and_summarises_recursively() -> None:
    ctx = TeamContext(model=scripted([]), use_memory=False)
    deps = ServiceDeps(get_settings())
    assert await fold_history(deps, state(messages=chatter(FOLD_AT)), ctx) == {}

    first = chatter(FOLD_AT + 1)
    for n, m in enumerate(first):
        m.id = f"m{n}"
    update = await fold_history(deps, state(messages=first), ctx)
    removed = update["messages"]
    assert all(isinstance(m, RemoveMessage) for m in removed)
    assert [m.id for m in removed] == [f"m{n}" for n in range(FOLD_AT + 1 - KEEP_RECENT)]
    digest: WorkingDigest = update["working"]
    assert digest["paged_out"] == len(removed) and digest["paged_out_tokens"] > 0
    assert "attempt 0 changed the loop" in digest["summary"]

    later = chatter(FOLD_AT + 1, start=100)
    for n, m in enumerate(later):
        m.id = f"n{n}"
    again = await fold_history(deps, state(messages=later, working=digest), ctx)
    summary = again["working"]["summary"]
    assert "attempt 0 changed the loop" in summary and "attempt 100 changed" in summary
    assert again["working"]["paged_out"] == 2 * len(removed)


def test_newer_digest_never_undoes_a_later_fold() -> None:
    old: WorkingDigest = {"summary": "a.", "paged_out": 4, "paged_out_tokens": 10}
    new: WorkingDigest = {"summary": "a. b.", "paged_out": 8, "paged_out_tokens": 20}
    assert newer_digest(None, old) == old
    assert newer_digest(old, new) == new
    assert newer_digest(new, old) == new
    assert newer_digest(new, None) == new


def test_the_counter_follows_the_model(monkeypatch: pytest.MonkeyPatch) -> None:
    deps = ServiceDeps(get_settings())

    def counted(model: Any) -> Any:
        return token_counter(model, deps.serving(model))

    assert deps.serving(scripted([])) == ModelServing(scripted=True)
    assert counted(scripted([])) is SCRIPTED_COUNTER
    local = "http://127.0.0.1:5999/v1"
    monkeypatch.setattr(models.LOCAL_SERVER, "_url", local)
    served = ChatOpenAI(base_url=local, api_key=SecretStr("local"), model="m")
    assert deps.serving(served) == ModelServing(local_url=local)
    counter = counted(served)
    assert isinstance(counter, FallbackTokenCounter)
    assert isinstance(counter.primary, HttpTokenizer)
    assert counter.primary.url == "http://127.0.0.1:5999/tokenize"
    assert counted(served) is counter, "one counter per server: its cache lasts"
    other = ChatOpenAI(base_url="http://10.0.0.1:8000/v1", api_key=SecretStr("k"), model="m")
    assert deps.serving(other) == ModelServing()
    assert counted(other) is ESTIMATE


def test_openai_models_count_with_tiktoken_when_it_is_installed(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    encoded: list[str] = []

    class Encoding:
        def encode(self, text: str, disallowed_special: Any = ()) -> list[int]:
            encoded.append(text)
            return [0] * len(text.split())

    fake = types.ModuleType("tiktoken")
    fake.encoding_for_model = lambda name: Encoding()  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "tiktoken", fake)
    prompt_budget._tiktoken_counter.cache_clear()
    try:
        model = ChatOpenAI(api_key=SecretStr("k"), model="gpt-4o-mini")
        counter = token_counter(model, ModelServing())
        assert counter.count("one two three") == 3
        assert counter.count("one two three") == 3
        assert encoded == ["one two three"], "counts are cached per text"
    finally:
        prompt_budget._tiktoken_counter.cache_clear()


def test_a_failing_tokenizer_falls_back_to_an_estimate() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(503)

    tokenizer = HttpTokenizer(
        "http://x/v1", client=httpx.Client(transport=httpx.MockTransport(refuse))
    )
    counter = FallbackTokenCounter(tokenizer, CharTokenCounter(3.0))
    assert counter.count("abcdef") == 2
    assert counter.primary is None
