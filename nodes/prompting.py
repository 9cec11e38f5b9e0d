"""Every model call's prompt, assembled under a token budget by one shared path.

A small model's context is short and a long task's history is not, so no agent builds its
prompt by hand. The order is fixed, most important first:

1. pinned: the role's instructions (the system message), the goal and whatever the role
   declares pinned (the entry point, a human's rejection comments); never shortened or dropped;
2. a running summary ("project manifest"): where the task stands, plus a recursive summary of
   the messages folded out of the state;
3. the most recent steps, newest first, as many as fit;
4. paged-in memories (lessons from earlier tasks);
5. what the role needs for this very call (the current code, the failures to fix): kept whole
   when they fit, shortened but never dropped when they do not.

The supervisor folds old messages into `working` (see `fold_history`) and pages them out to
episodic memory, so checkpoints stay small. Tokens are counted with the serving model's
tokenizer: llama-server's `/tokenize` for the local model, tiktoken for OpenAI models when it is
installed, else an estimate. Counting and folding run off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AnyMessage, RemoveMessage
from langchain_openai import ChatOpenAI
from langgraph.config import get_config

from graphs.context import TeamContext
from graphs.state import TeamState, WorkingDigest
from memory.episodic import EpisodicMemory
from memory.working import (
    CharTokenCounter,
    FallbackTokenCounter,
    HttpTokenizer,
    PinnedOverBudget,
    TokenCounter,
    Turn,
    WorkingMemory,
    WorkingState,
    fit_text,
    split_sentences,
)
from nodes.prompts import load_prompt
from service import deps
from service.models import text_of
from service.scripted import ScriptedChatModel
from service.settings import get_settings

PIPELINE_PROMPTS = {"coder": 1, "tester": 2, "reviewer": 2, "supervisor": 1}
"""The prompt versions the JSON-answering pipeline nodes are written for (newer versions
belong to the candidate-selection core, which answers in fenced code)."""

__all__ = [
    "FOLD_AT",
    "KEEP_RECENT",
    "LESSONS_TITLE",
    "RolePrompt",
    "Section",
    "assemble",
    "build_prompt",
    "fold_history",
    "goal_section",
    "prompt_tokens",
    "token_counter",
]

logger = logging.getLogger("strategos.prompting")

FOLD_AT = 12
"""Unpinned messages the state holds before the oldest are folded into the summary.

About four attempts: a short task's prompts carry no summary at all.
"""
KEEP_RECENT = 6
"""Messages left in the state after a fold: the task's present."""
MESSAGE_OVERHEAD = 5
"""Chat-template tokens around each message (role markers); two messages per prompt."""
SUMMARY_SHARE = 0.25
MEMORY_SHARE = 0.2
LESSONS_TITLE = "Lessons from earlier similar tasks"
SUMMARY_TITLE = "Summary of the work so far"
RECENT_TITLE = "Recent steps"

SCRIPTED_COUNTER = CharTokenCounter(4.0)
"""The scripted model reports len/4 tokens: count the way it bills."""
ESTIMATE = CharTokenCounter(3.0)
"""No tokenizer: code runs near three characters a token, so this errs high, not low."""

EMPTY_DIGEST: WorkingDigest = {"summary": "", "paged_out": 0, "paged_out_tokens": 0}


@dataclass(frozen=True)
class Section:
    """One titled block of the user message: a `Title:` line and the body, or just the body."""

    title: str
    body: str
    keep: Literal["head", "tail", "both"] = "both"
    """Which end survives when a required section must be shortened."""

    def render(self, body: str | None = None) -> str:
        """The block as the model reads it."""
        text = self.body if body is None else body
        return f"{self.title}:\n{text}" if self.title else text


@dataclass(frozen=True)
class RolePrompt:
    """An assembled prompt and what it cost, with and without paging."""

    system: str
    user: str
    tokens: int
    """system + user + chat-template overhead, counted with the serving model's tokenizer."""
    unpaged_tokens: int
    """The same call with the whole history inlined instead of summary + recent steps."""
    budget: int
    summary_included: bool
    recent_turns: int
    history_messages: int
    """Messages of the task so far, folded ones included."""
    shortened: tuple[str, ...] = field(default=())
    """Titles of required sections that had to be shortened to fit."""
    iteration: int = 0
    """The coder attempts so far when the call was made."""

    def stats(self, role: str) -> dict[str, Any]:
        """The numbers logged for every call (for reports and benchmarks)."""
        return {
            "role": role,
            "iteration": self.iteration,
            "tokens": self.tokens,
            "unpaged_tokens": self.unpaged_tokens,
            "budget": self.budget,
            "summary": self.summary_included,
            "recent_turns": self.recent_turns,
            "history_messages": self.history_messages,
            "shortened": list(self.shortened),
        }


# -- token counting -------------------------------------------------------------------------


def prompt_tokens(system: str, user: str, counter: TokenCounter) -> int:
    """Tokens of a system + user prompt, chat-template overhead included."""
    return counter.count(system) + counter.count(user) + 2 * MESSAGE_OVERHEAD


@functools.cache
def _http_counter(base_url: str) -> TokenCounter:
    # One per server for the process: its per-text cache then lasts across calls and tasks.
    return FallbackTokenCounter(HttpTokenizer(base_url), ESTIMATE)


class _TiktokenCounter:
    """tiktoken's encoding for an OpenAI model, loaded on first use, counts cached per text."""

    def __init__(self, module: Any, model_name: str) -> None:
        self._module = module
        self._model_name = model_name
        self._encoding: Any = None
        self.count = functools.lru_cache(maxsize=4096)(self._count)

    def _count(self, text: str) -> int:
        if self._encoding is None:
            try:
                self._encoding = self._module.encoding_for_model(self._model_name)
            except KeyError:  # a model name tiktoken does not know: the current default
                self._encoding = self._module.get_encoding("o200k_base")
        return len(self._encoding.encode(text, disallowed_special=()))


@functools.cache
def _tiktoken_counter(model_name: str) -> TokenCounter | None:
    try:
        module = importlib.import_module("tiktoken")
    except ImportError:
        return None
    # tiktoken fetches its vocabulary on first use: offline that fails, so estimate instead.
    return FallbackTokenCounter(_TiktokenCounter(module, model_name), ESTIMATE)


def _local_server_url() -> str | None:
    from service.models import LOCAL_SERVER

    url = getattr(LOCAL_SERVER, "_url", None)
    return url.rstrip("/") if isinstance(url, str) else None


def token_counter(model: BaseChatModel) -> TokenCounter:
    """Count tokens the way `model` will: its server's tokenizer when it has one."""
    if isinstance(model, ScriptedChatModel):
        return SCRIPTED_COUNTER
    if isinstance(model, ChatOpenAI):
        base = (model.openai_api_base or "").rstrip("/")
        if base and base == _local_server_url():
            return _http_counter(base)
        if not base or "api.openai.com" in base:
            found = _tiktoken_counter(model.model_name)
            if found is not None:
                return found
    return ESTIMATE


async def counter_for(ctx: TeamContext) -> TokenCounter:
    """The token counter for the run's model."""
    return token_counter(await deps.get_model(ctx))


# -- history: pinned messages, folding -----------------------------------------------------


def _pinned(message: AnyMessage) -> bool:
    # A human's decision is an instruction, not chatter: it is never folded away (delivery
    # also reads rejection comments from the messages to store them as lessons).
    return message.name == "approval"


def _split(messages: Sequence[AnyMessage]) -> tuple[list[AnyMessage], list[AnyMessage]]:
    """(messages to fold, messages to keep) of the unpinned history; nothing to fold if short."""
    loose = [m for m in messages if not _pinned(m)]
    if len(loose) <= FOLD_AT:
        return [], loose
    return loose[:-KEEP_RECENT], loose[-KEEP_RECENT:]


def _line(message: AnyMessage) -> str:
    return f"- {text_of(message)}"


def _turn(message: AnyMessage, seq: int) -> Turn:
    role = message.name or message.type
    body = text_of(message).removeprefix(f"{role}: ")
    # Mid-task chatter is an observation: `lessons()` recalls only verified critiques,
    # failures and solutions, which delivery stores.
    return Turn(seq=seq, role=role, content=body, kind="observation")


def _fold(
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
        + sum(counter.count(_line(m)) + 1 for m in old),
    }


async def fold_history(state: TeamState, ctx: TeamContext) -> dict[str, Any]:
    """The update that folds old messages into the running summary (empty while it is short).

    The folded messages leave the state (`RemoveMessage`), so a checkpoint holds a bounded
    window and the summary, not the whole history; they are paged out to episodic memory
    when memory is on. Deterministic, and idempotent on replay (memory ids derive from content).
    """
    old, _ = _split(state.get("messages", []))
    if not old:
        return {}
    counter = await counter_for(ctx)
    episodic = await deps.get_memory(ctx)
    task_id = str(get_config().get("configurable", {}).get("thread_id", "")) if episodic else ""
    digest = await asyncio.to_thread(
        _fold,
        state.get("working") or EMPTY_DIGEST,
        old,
        counter,
        get_settings().prompt_token_budget,
        episodic,
        ctx.tenant,
        task_id,
    )
    return {
        "messages": [RemoveMessage(id=m.id) for m in old if m.id],
        "working": digest,
    }


# -- assembly -------------------------------------------------------------------------------


def _manifest(state: TeamState) -> str:
    """Where the task stands, derived from the state's artifacts (not from the chatter)."""
    lines = [f"Attempts so far: {state.get('iteration', 0)}."]
    best = state.get("best")
    runs = state.get("test_runs", [])
    if best is not None and best["score"][0] >= 0:
        spec, team = best["score"]
        totals = f" of {runs[-1]['spec_total']}" if runs else ""
        lines.append(
            f"Best version so far: attempt {best['iteration']}, passing {spec}{totals} of the "
            f"goal's examples and {team} of the team's tests."
        )
    if runs:
        latest = runs[-1]
        lines.append(
            f"Latest test run: {latest['spec_passed']}/{latest['spec_total']} of the goal's "
            f"examples, {latest['model_passed']}/{latest['model_total']} of the team's tests"
            + (f", error: {latest['error'][:160]}." if latest["error"] else ".")
        )
    if rejected := state.get("rejected_tests"):
        lines.append("Tests set aside as contradicting the goal: " + "; ".join(rejected) + ".")
    return "\n".join(lines)


def _newest_sentences(text: str, max_tokens: int, counter: TokenCounter) -> str:
    """The newest whole sentences of a summary that fit in `max_tokens`.

    The summary is chronological, so its end is the latest; a sentence is cut only when it
    alone is too long.
    """
    sentences = split_sentences(text)
    kept: list[str] = []
    used = 0
    for sentence in reversed(sentences):
        size = counter.count(sentence) + 1
        if used + size > max_tokens:
            break
        kept.append(sentence)
        used += size
    if not kept and sentences:
        return fit_text(sentences[-1], max_tokens, counter)
    return " ".join(reversed(kept))


def _join(blocks: Sequence[str]) -> str:
    return "\n\n".join(b for b in blocks if b)


def assemble(
    system: str,
    state: TeamState,
    *,
    pinned: Sequence[Section],
    required: Sequence[Section] = (),
    memories: Sequence[str] = (),
    memories_title: str = LESSONS_TITLE,
    counter: TokenCounter,
    budget: int,
) -> RolePrompt:
    """Build the user message for `system` within `budget` tokens (see the module docstring).

    Pure and deterministic: the same state gives the same prompt, so a resumed task asks the
    model the same question. Raises PinnedOverBudget when the pinned part alone does not fit.
    """
    messages = state.get("messages", [])
    digest = state.get("working") or EMPTY_DIGEST
    unfolded, kept = _split(messages)
    if unfolded:  # not folded yet (a node run outside the supervisor loop): fold for the view
        digest = _fold(digest, unfolded, counter, budget)
    held = [m for m in messages if _pinned(m)]

    def cost(user: str) -> int:
        return prompt_tokens(system, user, counter)

    pinned_text = _join([s.render() for s in pinned])
    held_cost = sum(counter.count(_line(m)) + 1 for m in held)
    base = cost(pinned_text) + held_cost + (counter.count(RECENT_TITLE) + 2 if held else 0)
    if base > budget:
        raise PinnedOverBudget(
            f"the pinned instructions and goal need {base} tokens, the prompt budget is "
            f"{budget}: raise STRATEGOS_PROMPT_TOKEN_BUDGET or shorten the goal"
        )
    left = budget - base

    # What this call is about: whole when it fits, else every section shortened in proportion.
    bodies = [s.body for s in required]
    need = sum(counter.count(s.render()) + 2 for s in required)
    shortened: list[str] = []
    if need > left:
        for i, section in enumerate(required):
            share = left * (counter.count(section.render()) + 2) // max(need, 1)
            room = share - counter.count(section.render("")) - 3
            bodies[i] = fit_text(section.body, max(room, 0), counter, keep=section.keep)
            shortened.append(section.title or section.body[:40])
    left -= sum(counter.count(s.render(b)) + 2 for s, b in zip(required, bodies, strict=True))

    summary = ""
    if digest["summary"] and left > 16:
        manifest = _manifest(state)
        cap = min(int(budget * SUMMARY_SHARE), left) - counter.count(SUMMARY_TITLE) - 4
        earlier = cap - counter.count(manifest) - 4
        steps = _newest_sentences(digest["summary"], earlier, counter) if earlier > 8 else ""
        summary = manifest + (f"\nEarlier steps: {steps}" if steps else "")
        if counter.count(summary) > cap:
            summary = fit_text(summary, max(cap, 0), counter, keep="head")
        if summary:
            left -= counter.count(summary) + counter.count(SUMMARY_TITLE) + 4

    kept_memories: list[str] = []
    room = min(int(budget * MEMORY_SHARE), left) - counter.count(memories_title) - 4
    for text in memories:
        size = counter.count(f"- {text}") + 1
        if size <= room:
            kept_memories.append(text)
            room -= size
            left -= size
    if kept_memories:
        left -= counter.count(memories_title) + 4

    # The newest steps first, as many as fit; a human's comments are always there (pinned).
    chosen: set[int] = {id(m) for m in held}
    if kept and not held:
        left -= counter.count(RECENT_TITLE) + 2
    for message in reversed(kept):
        size = counter.count(_line(message)) + 1
        if size > left:
            break
        chosen.add(id(message))
        left -= size

    def render() -> str:
        recent = [_line(m) for m in messages if id(m) in chosen]
        return _join(
            [
                pinned_text,
                f"{SUMMARY_TITLE}:\n{summary}" if summary else "",
                f"{RECENT_TITLE}:\n" + "\n".join(recent) if recent else "",
                f"{memories_title}:\n" + "\n".join(f"- {m}" for m in kept_memories)
                if kept_memories
                else "",
                *(s.render(b) for s, b in zip(required, bodies, strict=True)),
            ]
        )

    user = render()
    tokens = cost(user)
    while tokens > budget:
        # Per-part counts need not add up with a real tokenizer: shed the least needed part.
        optional = [m for m in kept if id(m) in chosen]
        if optional:
            chosen.discard(id(optional[0]))
        elif kept_memories:
            kept_memories.pop()
        elif summary:
            summary = fit_text(summary, counter.count(summary) - 16, counter, keep="head")
        elif any(bodies):
            i = max(range(len(bodies)), key=lambda k: counter.count(bodies[k]))
            bodies[i] = fit_text(
                bodies[i], counter.count(bodies[i]) * 9 // 10 - 1, counter, keep=required[i].keep
            )
            title = required[i].title or required[i].body[:40]
            if title not in shortened:
                shortened.append(title)
        else:
            raise PinnedOverBudget(
                f"the pinned part renders to {tokens} tokens, over the prompt budget of "
                f"{budget}: raise STRATEGOS_PROMPT_TOKEN_BUDGET or shorten the goal"
            )
        user = render()
        tokens = cost(user)

    whole_history = "\n".join(_line(m) for m in messages)
    unpaged_user = _join(
        [
            pinned_text,
            f"{RECENT_TITLE}:\n{whole_history}" if messages else "",
            f"{memories_title}:\n" + "\n".join(f"- {m}" for m in memories) if memories else "",
            *(s.render() for s in required),
        ]
    )
    folded = state.get("working") or EMPTY_DIGEST
    return RolePrompt(
        system=system,
        user=user,
        tokens=tokens,
        unpaged_tokens=cost(unpaged_user) + folded["paged_out_tokens"],
        budget=budget,
        summary_included=bool(summary),
        recent_turns=len([m for m in messages if id(m) in chosen]),
        history_messages=folded["paged_out"] + len(messages),
        shortened=tuple(shortened),
        iteration=state.get("iteration", 0),
    )


async def build_prompt(
    role: str,
    state: TeamState,
    ctx: TeamContext,
    *,
    pinned: Sequence[Section],
    required: Sequence[Section] = (),
    memories: Sequence[str] = (),
    memories_title: str = LESSONS_TITLE,
) -> RolePrompt:
    """Assemble `role`'s prompt for this call off the event loop, and log its size."""
    counter = await counter_for(ctx)
    # Reading the prompt files is file I/O too (a directory listing on the first call).
    prompt = await asyncio.to_thread(load_prompt, role, PIPELINE_PROMPTS.get(role))
    built = await asyncio.to_thread(
        assemble,
        prompt.text,
        state,
        pinned=pinned,
        required=required,
        memories=memories,
        memories_title=memories_title,
        counter=counter,
        budget=get_settings().prompt_token_budget,
    )
    stats = built.stats(role)
    logger.debug(
        "%s prompt: %d tokens (%d without paging), budget %d",
        role,
        built.tokens,
        built.unpaged_tokens,
        built.budget,
        extra={"prompt_stats": stats},
    )
    return built


def goal_section(state: TeamState, title: str = "Goal") -> Section:
    """The goal, verbatim: pinned in every role's prompt."""
    return Section(title, state["goal"].strip())
