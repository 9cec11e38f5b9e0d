"""The execution-first team's prompts: shared prefix, placeholders, and answer formats."""

from __future__ import annotations

import os

import pytest
from langchain_core.messages import HumanMessage, SystemMessage

from nodes.candidates import ProposedInputs, extract_code
from nodes.prompts import load_prompt
from nodes.selection import ReviewerAnswer
from nodes.team_prompt import instructions, messages, preamble
from service.llm.scripted import role_of

GOAL = "Write a function f(xs: list[int]) -> int that returns the sum of xs.\nf([1, 2]) == 3"
ROLES: dict[str, dict[str, object]] = {
    "coder": {},
    "coder_repair": {},
    "tester": {"max_calls": 8},
    "reviewer": {},
}


def test_every_role_starts_with_the_same_bytes() -> None:
    built = {role: messages(role, GOAL, ["Some detail"], values) for role, values in ROLES.items()}
    systems = {system for system, _ in built.values()}
    assert systems == {preamble()}
    shared = os.path.commonprefix([user for _, user in built.values()])
    assert shared.startswith(f"Goal:\n{GOAL}\n\n# role: ")


@pytest.mark.parametrize("role", sorted(ROLES))
def test_the_role_is_named_in_the_user_message_not_the_preamble(role: str) -> None:
    system, user = messages(role, GOAL, values=ROLES[role])
    assert "# role:" not in system
    assert role_of([SystemMessage(system), HumanMessage(user)]) == role


@pytest.mark.parametrize(
    ("role", "version"),
    [("coder", 2), ("coder_repair", 1), ("tester", 3), ("reviewer", 3), ("team", 1)],
)
def test_the_new_prompt_versions_exist(role: str, version: int) -> None:
    assert load_prompt(role, version).id == f"{role}@{version}"


def test_sections_follow_the_instructions_in_order() -> None:
    _, user = messages("coder_repair", GOAL, ["Your code:\nx", "", "Failing call: f([])"])
    assert user.endswith("\n\nYour code:\nx\n\nFailing call: f([])")


def test_placeholders_must_be_filled_exactly() -> None:
    assert "at most 5 calls" in instructions("tester", {"max_calls": 5})
    with pytest.raises(ValueError, match="no value for \\['max_calls'\\]"):
        instructions("tester")
    with pytest.raises(ValueError, match="no placeholder \\['max_calls'\\]"):
        instructions("coder", {"max_calls": 5})


def test_the_coder_prompts_ask_for_a_fenced_block_and_no_json() -> None:
    for role in ("coder", "coder_repair"):
        text = instructions(role)
        assert "```python" in text and "No JSON" in text


def test_the_answer_formats_parse() -> None:
    assert ProposedInputs.model_validate_json('{"calls": ["f([])", "f([0])"]}').calls == [
        "f([])",
        "f([0])",
    ]
    assert ReviewerAnswer.model_validate_json('{"answer": "neither"}').answer == "neither"
    with pytest.raises(ValueError):
        ReviewerAnswer.model_validate_json('{"answer": "C"}')
    reply = "The loop skips the last item.\n```python\ndef f(xs):\n    return sum(xs)\n```"
    assert extract_code(reply, "f") == "def f(xs):\n    return sum(xs)"
