"""What becomes of a patch a human rejected: back to the worker with the comment, or the end.

A reviewer who rejects the repository agent's patch and says why expects the work to go on, as
the coding team's coder addresses a rejection's comment. So a rejection with a comment sends
the worker back to the current working copy (its patch still applied) with the comment in a new
message; the repository's tests run again and the human is asked about the new patch (a new
approval key: the key is bound to the diff). A rejection without a comment, the rework limit
(`Limits.max_iterations`, the team's knob), or a task that must stop ends as before: nothing
delivered, with the reason.

An identical patch after a rework is NOT asked about again: its recorded answer (the ledger
keys the answer by the diff) is the rejection, and asking a human twice about the same diff
wastes their time. It is reported instead: the rework left the patch as it was rejected.

Everything here is a pure function of the state (and the limits): a helper module both the
repository agent's steps and its graph builder use; the routers are table-tested.
"""

from __future__ import annotations

import hashlib
from typing import Any, Literal

from langchain_core.messages import HumanMessage

from graphs.deps import Limits
from graphs.react_state import RepoState
from nodes.react_support import GOAL
from tools.repo_diff import diff_snapshots

SCOPE = "rework"
"""The worker's ledger scope prefix on a rework (`rework1`, `rework2`, …)."""


def patch_digest(state: RepoState) -> str:
    """A short hash of the working copy's patch against the original repository."""
    patch = diff_snapshots(state.get("repo_files") or {}, state.get("files") or {}).patch
    return hashlib.sha256(patch.encode()).hexdigest()[:16]


def sent_back(state: RepoState) -> bool:
    """Whether the current patch is one a human rejected and the worker was sent back from."""
    return patch_digest(state) in (state.get("rejected_patches") or [])


def rework_stop(state: RepoState, limits: Limits) -> str:
    """Why a rejected patch does not go back to the worker; '' when it does (or was approved)."""
    approval = state.get("approval")
    if approval is None or approval["approved"]:
        return ""
    if sent_back(state):
        return "the rework left the patch as the human rejected it, so nobody was asked again"
    if not approval["comment"].strip():
        return "the rejection came without a comment to address"
    if limits.stop:
        return limits.stop
    done = state.get("reworks", 0)
    if done >= limits.max_iterations:
        return f"the rework limit is reached: {done} of max_iterations {limits.max_iterations}"
    return ""


def after_approval_answer(state: RepoState, limits: Limits) -> Literal["worker", "deliver"]:
    """After the human's answer: a rejection with a comment and reworks left → the worker."""
    approval = state.get("approval")
    if approval is None or approval["approved"] or rework_stop(state, limits):
        return "deliver"
    return "worker"


def rework_message(comment: str) -> HumanMessage:
    """The worker's new message: the comment to address.

    Named like the goal's opening: it is the rework's goal, so a loop-guard backtrack during
    the rework drops only the turns after it (`react_support.backtrack_messages`).
    """
    text = comment.strip().rstrip(".")
    return HumanMessage(
        f"A reviewer rejected your patch: {text}. Address it. The files still hold your "
        "changes; the repository's tests run again when you finish.",
        name=GOAL,
    )


def rework_update(state: RepoState) -> dict[str, Any]:
    """The rework's start: the comment as a message, one more rework, a fresh ledger scope.

    The worker subgraph takes only `goal`, `files`, `messages` and `scope` from this graph
    (`ReactInput`), so its turns, step count and loop-guard memory start afresh; its turn
    numbers restart too, hence the new scope (else a call would replay the first run's ledger).
    """
    approval = state.get("approval")
    comment = approval["comment"] if approval else ""
    number = state.get("reworks", 0) + 1
    return {
        "messages": [rework_message(comment)],
        "reworks": 1,
        "scope": f"{SCOPE}{number}",
        "rejected_patches": [patch_digest(state)],
    }
