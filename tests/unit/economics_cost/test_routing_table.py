"""The router's choice table: cheapest adequate endpoint per role and difficulty, then fallbacks."""

from __future__ import annotations

import pytest
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from service.llm.routing import Difficulty, Route, difficulty_of, level, order
from service.llm.scripted import Script, ScriptedChatModel
from service.settings import ModelEndpoint, ModelPrice

_MODEL = ScriptedChatModel(script=Script(rules=[]))


def route(
    name: str, strength: int, prompt: float, completion: float, roles: list[str] | None = None
) -> Route:
    endpoint = ModelEndpoint(name=name, model=name, strength=strength, roles=roles or [])
    price = ModelPrice(prompt_per_mtok=prompt, completion_per_mtok=completion)
    return Route(endpoint=endpoint, model=_MODEL, price=price)


SMALL = route("small", 0, 0.05, 0.1)
MID = route("mid", 1, 0.5, 1.5)
BIG = route("big", 2, 3.0, 15.0)
ROUTES = [BIG, SMALL, MID]
EASY = Difficulty(prompt_tokens=400, failing=0, attempt=0)


@pytest.mark.parametrize(
    ("role", "difficulty", "expected"),
    [
        ("supervisor", EASY, ["small", "mid", "big"]),
        ("tester", EASY, ["small", "mid", "big"]),
        ("coder", EASY, ["mid", "big", "small"]),
        ("coder", Difficulty(400, failing=1, attempt=0), ["big", "mid", "small"]),
        ("tester", Difficulty(2000, failing=0, attempt=0), ["mid", "big", "small"]),
        ("reviewer", Difficulty(400, failing=0, attempt=1), ["mid", "big", "small"]),
        ("coder", Difficulty(5000, failing=4, attempt=2), ["big", "mid", "small"]),
    ],
)
def test_the_cheapest_adequate_endpoint_comes_first(
    role: str, difficulty: Difficulty, expected: list[str]
) -> None:
    assert [r.endpoint.name for r in order(ROUTES, role, difficulty)] == expected


def test_an_endpoint_serves_only_the_roles_it_lists() -> None:
    coder_only = route("coder-only", 2, 0.01, 0.01, roles=["coder"])
    names = [r.endpoint.name for r in order([coder_only, SMALL], "supervisor", EASY)]
    assert names == ["small"]
    assert [r.endpoint.name for r in order([coder_only, SMALL], "coder", EASY)][0] == "coder-only"


def test_a_role_no_endpoint_lists_may_use_all_of_them() -> None:
    only = route("only", 0, 1, 1, roles=["coder"])
    assert [r.endpoint.name for r in order([only], "tester", EASY)] == ["only"]


def test_difficulty_reads_prompt_size_failing_checks_and_repair_turns() -> None:
    messages = [
        SystemMessage("x" * 4000),
        HumanMessage("fix it\nadd(1, 2) failed: expected 3, got 4\nTraceback: boom\nok line"),
        AIMessage("{}"),
        HumanMessage("That output was invalid: missing field\nplease retry"),
    ]
    d = difficulty_of(messages)
    assert d.prompt_tokens > 1000
    assert d.attempt == 1
    assert d.failing == 2  # the node's request names two failures; the repair turn none
    assert level("coder", d) == 1 + 0 + 1 + 1  # role floor, size, failing, one repair


def test_difficulty_needs_more_strength_than_any_endpoint_has_gets_the_strongest() -> None:
    hard = Difficulty(9000, failing=9, attempt=5)
    assert order([SMALL, MID], "coder", hard)[0].endpoint.name == "mid"
