"""The rules for a patch a human rejected: back to the worker with the comment, or the end."""

from __future__ import annotations

from typing import Any

import pytest

from graphs.deps import Limits
from graphs.react_state import RepoState
from nodes.react_support import GOAL
from nodes.repo_rework import (
    after_approval_answer,
    patch_digest,
    rework_stop,
    rework_update,
)
from nodes.repo_steps import after_tests

LIMITS = Limits(max_steps=10, max_iterations=2, token_budget=10_000)
ORIGINAL = {"a.py": "x = 1\n"}
PATCHED = {"a.py": "x = 2\n"}


def state_with(**values: Any) -> RepoState:
    state: RepoState = {"goal": "g", "repo_files": ORIGINAL, "files": dict(PATCHED)}  # type: ignore[typeddict-item]
    state.update(values)  # type: ignore[typeddict-item]
    return state


def rejected(comment: str = "use a constant", **values: Any) -> RepoState:
    return state_with(approval={"approved": False, "comment": comment}, **values)


SENT_BACK = [patch_digest(state_with())]


@pytest.mark.parametrize(
    ("state", "limits", "route", "why"),
    [
        (state_with(approval={"approved": True, "comment": ""}), LIMITS, "deliver", ""),
        (state_with(), LIMITS, "deliver", ""),  # nobody was asked (auto, deny)
        (rejected(), LIMITS, "worker", ""),
        (rejected(reworks=1), LIMITS, "worker", ""),
        (
            rejected(reworks=2),
            LIMITS,
            "deliver",
            "the rework limit is reached: 2 of max_iterations 2",
        ),
        (rejected(""), LIMITS, "deliver", "the rejection came without a comment to address"),
        (rejected("  "), LIMITS, "deliver", "the rejection came without a comment to address"),
        (
            rejected(),
            Limits(max_steps=10, max_iterations=2, token_budget=1, stop="token budget spent"),
            "deliver",
            "token budget spent",
        ),
        (
            rejected(reworks=1, rejected_patches=SENT_BACK),
            LIMITS,
            "deliver",
            "the rework left the patch as the human rejected it, so nobody was asked again",
        ),
    ],
)
def test_only_a_commented_rejection_within_the_limit_goes_back_to_the_worker(
    state: RepoState, limits: Limits, route: str, why: str
) -> None:
    assert after_approval_answer(state, limits) == route
    assert rework_stop(state, limits) == why


def test_the_rework_tells_the_worker_the_comment_under_a_fresh_scope() -> None:
    update = rework_update(rejected("use operator.add.", reworks=1))

    (message,) = update["messages"]
    assert message.content.startswith("A reviewer rejected your patch: use operator.add. Address")
    assert message.name == GOAL  # a loop-guard backtrack keeps it
    assert update["reworks"] == 1
    assert update["scope"] == "rework2"
    assert update["rejected_patches"] == SENT_BACK


@pytest.mark.parametrize(
    ("sent", "files", "route"),
    [
        ([], PATCHED, "approval"),
        (SENT_BACK, PATCHED, "deliver"),  # the same patch again: not asked again
        (SENT_BACK, {"a.py": "x = 3\n"}, "approval"),  # a new patch: asked
    ],
)
def test_a_patch_sent_back_is_not_asked_about_again(
    sent: list[str], files: dict[str, str], route: str
) -> None:
    state = state_with(rejected_patches=sent)
    state["files"] = files
    assert after_tests(state, "ask") == route
