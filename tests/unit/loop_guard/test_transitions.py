"""ok → backtrack → stop: one second chance, then a stop whose reason names the pattern."""

from __future__ import annotations

from nodes.loop_guard import GuardConfig, Turn, action_key, judge_turns

READ = action_key("read_file", {"path": "a.py"})
LOOP = [Turn("read it", READ, "print(1)")] * 4


def test_a_first_loop_sends_the_agent_back() -> None:
    verdict = judge_turns(LOOP, backtracks=0)
    assert (verdict.state, verdict.pattern) == ("backtrack", "repeat")


def test_the_same_loop_after_a_backtrack_stops_with_a_reason() -> None:
    verdict = judge_turns(LOOP, backtracks=1)
    assert (verdict.state, verdict.pattern) == ("stop", "repeat")
    assert verdict.reason == (
        "stopped: repeated the same call 4 times with the same result, again after a backtrack"
    )


def test_a_different_loop_after_a_backtrack_also_stops() -> None:
    errors = [Turn("", READ, f"boom {i}", error=True) for i in range(3)]
    verdict = judge_turns(errors, backtracks=1)
    assert (verdict.state, verdict.pattern) == ("stop", "error_repeat")


def test_the_window_restarts_after_a_backtrack() -> None:
    """The caller drops the window on a backtrack: three repeats after it are not yet a loop."""
    assert judge_turns(LOOP[:3], backtracks=1).state == "ok"


def test_more_backtracks_allowed_means_more_chances() -> None:
    config = GuardConfig(max_backtracks=2)
    assert judge_turns(LOOP, backtracks=1, config=config).state == "backtrack"
    stop = judge_turns(LOOP, backtracks=2, config=config)
    assert stop.state == "stop" and stop.reason.endswith("again after 2 backtracks")


def test_no_backtracks_allowed_stops_at_once() -> None:
    verdict = judge_turns(LOOP, backtracks=0, config=GuardConfig(max_backtracks=0))
    assert verdict.state == "stop" and "no backtracks allowed" in verdict.reason


def test_the_stated_bound_is_threshold_times_chances() -> None:
    assert GuardConfig().bound("repeat") == 8
    assert GuardConfig(max_backtracks=2).bound("ping_pong") == 18
