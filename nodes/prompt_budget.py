"""Prompts measured the way the run's model bills, under the deployment's budget.

Tokens are counted with the serving model's tokenizer: llama-server's `/tokenize` for the
bundled local model, tiktoken for OpenAI models when it is installed, else an estimate. Which
model is which comes from `TeamDeps.serving` as plain data, and the budget from
`TeamDeps.prompt_budget`, so the packing itself (`nodes.prompting`) stays pure. Counting,
folding and reading prompt files run off the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import importlib
import logging
from collections.abc import Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import RemoveMessage
from langchain_openai import ChatOpenAI

from graphs.context import TeamContext
from graphs.deps import ModelServing, TeamDeps
from graphs.state import TeamState
from memory.tokens import CharTokenCounter, FallbackTokenCounter, HttpTokenizer, TokenCounter
from nodes.prompt_history import EMPTY_DIGEST, fold_digest, split_history
from nodes.prompting import LESSONS_TITLE, PIPELINE_PROMPTS, RolePrompt, Section, assemble
from nodes.prompts import load_prompt

logger = logging.getLogger("strategos.prompting")

SCRIPTED_COUNTER = CharTokenCounter(4.0)
"""The scripted model reports len/4 tokens: count the way it bills."""
ESTIMATE = CharTokenCounter(3.0)
"""No tokenizer: code runs near three characters a token, so this errs high, not low."""


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


def token_counter(model: BaseChatModel, serving: ModelServing) -> TokenCounter:
    """Count tokens the way `model` will: its server's tokenizer when it has one."""
    if serving.scripted:
        return SCRIPTED_COUNTER
    if serving.local_url:
        return _http_counter(serving.local_url)
    if isinstance(model, ChatOpenAI):
        base = (model.openai_api_base or "").rstrip("/")
        if not base or "api.openai.com" in base:
            found = _tiktoken_counter(model.model_name)
            if found is not None:
                return found
    return ESTIMATE


async def counter_for(deps: TeamDeps, ctx: TeamContext) -> TokenCounter:
    """The token counter for the run's model."""
    model = await deps.model(ctx)
    return token_counter(model, deps.serving(model))


async def fold_history(deps: TeamDeps, state: TeamState, ctx: TeamContext) -> dict[str, Any]:
    """The update that folds old messages into the running summary (empty while it is short).

    The folded messages leave the state (`RemoveMessage`), so a checkpoint holds a bounded
    window and the summary, not the whole history; they are paged out to episodic memory
    when memory is on. Deterministic, and idempotent on replay (memory ids derive from content).
    """
    old, _ = split_history(state.get("messages", []))
    if not old:
        return {}
    counter = await counter_for(deps, ctx)
    episodic = await deps.memory(ctx)
    task_id = deps.thread_id() if episodic else ""
    digest = await asyncio.to_thread(
        fold_digest,
        state.get("working") or EMPTY_DIGEST,
        old,
        counter,
        deps.prompt_budget,
        episodic,
        ctx.tenant,
        task_id,
    )
    return {
        "messages": [RemoveMessage(id=m.id) for m in old if m.id],
        "working": digest,
    }


async def build_prompt(
    deps: TeamDeps,
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
    counter = await counter_for(deps, ctx)
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
        budget=deps.prompt_budget,
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
