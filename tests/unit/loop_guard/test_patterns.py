"""Each loop pattern trips at exactly its threshold, not one turn earlier, and not on progress."""

from __future__ import annotations

import pytest

from nodes.loop_guard import GuardConfig, Turn, Verdict, action_key, judge_turns

READ = action_key("read_file", {"path": "shop/cart.py"})
TESTS = action_key("run_tests", {"path": "tests"})
DEFAULT = GuardConfig()


def call(action: str, observation: str, *, error: bool = False, thought: str = "") -> Turn:
    return Turn(thought=thought, action=action, observation=observation, error=error)


def think(text: str) -> Turn:
    return Turn(thought=text, action="", observation="")


def first_trip(turns: list[Turn], config: GuardConfig = DEFAULT) -> tuple[int, Verdict]:
    """Judge after every turn, as a loop would; the 1-based turn that first tripped."""
    for i in range(1, len(turns) + 1):
        verdict = judge_turns(turns[:i], backtracks=0, config=config)
        if verdict.state != "ok":
            return i, verdict
    return 0, judge_turns(turns, backtracks=0, config=config)


def test_action_key_is_canonical() -> None:
    assert action_key("t", {"b": 1, "a": [1, 2]}) == action_key("t", {"a": [1, 2], "b": 1})
    assert action_key("t", {"a": 1}) != action_key("u", {"a": 1})
    assert action_key("t", {"a": 1}) != action_key("t", {"a": "1"})


@pytest.mark.parametrize("n", [2, 4, 5])
def test_repeat_trips_at_its_threshold(n: int) -> None:
    turns = [call(READ, "def total(): ...", thought=f"look {i}") for i in range(10)]
    at, verdict = first_trip(turns, GuardConfig(repeat=n))
    assert at == n
    assert verdict.pattern == "repeat"
    assert verdict.reason == f"repeated the same call {n} times with the same result"


def test_repeat_needs_the_same_observation() -> None:
    turns = [call(READ, f"line {i}") for i in range(8)]
    assert first_trip(turns) == (0, Verdict("ok", None, ""))


def test_repeat_is_broken_by_a_different_call() -> None:
    turns = [call(READ, "x")] * 3 + [call(TESTS, "1 failed")] + [call(READ, "x")] * 3
    assert first_trip(turns)[0] == 0


def test_error_repeat_trips_at_three_even_with_varying_messages() -> None:
    turns = [call(TESTS, f"timeout after {i}s", error=True) for i in range(6)]
    at, verdict = first_trip(turns)
    assert (at, verdict.pattern) == (3, "error_repeat")
    assert "failed every time" in verdict.reason


def test_error_repeat_needs_every_call_to_fail() -> None:
    turns = [call(TESTS, f"e{i}", error=i % 3 != 2) for i in range(9)]
    assert first_trip(turns)[0] == 0


def test_monologue_trips_at_three_replies_without_a_tool() -> None:
    turns = [call(READ, "x"), think("hmm"), think("let me think"), think("maybe"), think("so")]
    at, verdict = first_trip(turns)
    assert (at, verdict.pattern) == (4, "monologue")
    assert verdict.reason == "replied 3 times in a row without calling a tool"


def test_thinking_between_calls_is_not_a_monologue() -> None:
    turns = [t for i in range(6) for t in (think(f"plan {i}"), think("ok"), call(READ, f"v{i}"))]
    assert first_trip(turns)[0] == 0


def test_ping_pong_trips_on_the_sixth_alternating_turn() -> None:
    a, b = call(READ, "def total(): ..."), call(TESTS, "1 failed")
    at, verdict = first_trip([a, b] * 5)
    assert (at, verdict.pattern) == (6, "ping_pong")
    assert verdict.reason == "alternated between the same two calls and results for 6 turns"


def test_ping_pong_with_changing_results_is_progress() -> None:
    turns = [t for i in range(6) for t in (call(READ, f"v{i}"), call(TESTS, f"{i} failed"))]
    assert first_trip(turns)[0] == 0


def test_a_config_that_cannot_work_is_refused() -> None:
    with pytest.raises(ValueError, match="ping_pong"):
        GuardConfig(ping_pong=5)
    with pytest.raises(ValueError, match="repeat"):
        GuardConfig(repeat=1)
    with pytest.raises(ValueError, match="semantic_threshold"):
        GuardConfig(semantic_threshold=0.0)


def test_replies_without_a_tool_are_a_monologue_even_when_marked_as_errors() -> None:
    """The ReAct worker records a reply without a call as an error turn with no action."""
    nudged = [Turn("the bug is in add", "", "Your reply called no tool.", error=True)] * 3
    at, verdict = first_trip(nudged)
    assert (at, verdict.pattern) == (3, "monologue")
