"""The task's history as prompts see it: which messages are pinned, which are folded, and how.

A long task's messages outgrow a small model's context, so the oldest unpinned ones are folded
into a running summary (`working`) and, when memory is on, paged out to episodic memory. The
supervisor folds the state (`nodes.prompt_budget.fold_history`); `nodes.prompting.assemble`
folds an unfolded history for the view only. Deterministic, and idempotent on replay (memory
ids derive from content).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from langchain_core.messages import AnyMessage

from graphs.deps import text_of
from graphs.state import WorkingDigest
from memory.episodic import EpisodicMemory
from memory.tokens import TokenCounter
from memory.working import Turn, WorkingMemory, WorkingState

logger = logging.getLogger("strategos.prompting")

FOLD_AT = 12
"""Unpinned messages the state holds before the oldest are folded into the summary.

About four attempts: a short task's prompts carry no summary at all.
"""
KEEP_RECENT = 6
"""Messages left in the state after a fold: the task's present."""
SUMMARY_SHARE = 0.25
"""Share of the prompt budget the running summary may take (when folding and in a prompt)."""

EMPTY_DIGEST: WorkingDigest = {"summary": "", "paged_out": 0, "paged_out_tokens": 0}


def is_pinned(message: AnyMessage) -> bool:
    """A human's decision: an instruction, not chatter, so it is never folded away.

    Delivery also reads rejection comments from the messages to store them as lessons.
    """
    return message.name == "approval"


def split_history(messages: Sequence[AnyMessage]) -> tuple[list[AnyMessage], list[AnyMessage]]:
    """(messages to fold, messages to keep) of the unpinned history; nothing to fold if short."""
    loose = [m for m in messages if not is_pinned(m)]
    if len(loose) <= FOLD_AT:
        return [], loose
    return loose[:-KEEP_RECENT], loose[-KEEP_RECENT:]


def message_line(message: AnyMessage) -> str:
    """One message as a line of the prompt's "Recent steps"."""
    return f"- {text_of(message)}"


def _turn(message: AnyMessage, seq: int) -> Turn:
    role = message.name or message.type
    body = text_of(message).removeprefix(f"{role}: ")
    # Mid-task chatter is an observation: `lessons()` recalls only verified critiques,
    # failures and solutions, which delivery stores.
    return Turn(seq=seq, role=role, content=body, kind="observation")


def fold_digest(
    digest: WorkingDigest,
    old: Sequence[AnyMessage],
    counter: TokenCounter,
    budget: int,
    episodic: EpisodicMemory | None = None,
    tenant: str = "local",
    task_id: str = "",
) -> WorkingDigest:
    """Summarise `old` together with the previous summary; page `old` out when memory is on."""
    wm = WorkingMemory(
        budget,
        counter=counter,
        episodic=episodic,
        tenant=tenant,
        task_id=task_id,
        max_turns=len(old) + 1,
        keep_recent=1,
        summary_share=SUMMARY_SHARE,
        state=WorkingState(
            summary=digest["summary"],
            turns=[_turn(m, digest["paged_out"] + i) for i, m in enumerate(old)],
        ),
    )
    try:
        wm.compact(keep=0)
    except Exception as exc:  # memory is optional: a failed page-out must not stop the task
        # compact() updates the summary before it pages out, so only the page-out is lost.
        logger.warning("paging out %d messages to episodic memory failed: %s", len(old), exc)
    return {
        "summary": wm.state.summary,
        "paged_out": digest["paged_out"] + len(old),
        "paged_out_tokens": digest["paged_out_tokens"]
        + sum(counter.count(message_line(m)) + 1 for m in old),
    }
