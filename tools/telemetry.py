"""The platform's Prometheus metrics and OpenTelemetry spans.

The lowest layer defines them so every layer can count what it does (the gateway its decisions,
the service its model calls and tasks) without importing upward. They live in
`prometheus_client`'s default registry, which is what Aegra's `/metrics` endpoint serves
(`strategos serve` turns it on with `STRATEGOS_METRICS=true`): a served instance is scraped
like any other Prometheus target, and nothing here opens a port of its own.

Labels are bounded: tools and nodes are the registry's and the graphs' names, decisions a fixed
set, tenants the operator's API-key tenants.

Spans come from the global tracer provider, which `service.tracing` (or Aegra, when serving)
sets up; without one they cost nothing. Nodes and model calls are LangChain runs, traced by
OpenInference's LangChain instrumentation; the spans here — tool calls, sandbox runs, memory
recall — hang under the node that made them (`parent_context`), so one task is one tree.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from functools import wraps
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from prometheus_client import Counter, Histogram

__all__ = [
    "API_ERRORS",
    "GATEWAY_DECISIONS",
    "GRAPH_STEPS",
    "LEASES_LOST",
    "MODEL_CACHE_HITS",
    "MODEL_CACHE_MISSES",
    "MODEL_CALLS",
    "MODEL_COST",
    "MODEL_FALLBACKS",
    "MODEL_TOKENS",
    "SANDBOX_SECONDS",
    "TASKS",
    "TOOL_SECONDS",
    "decision_of",
    "span",
    "traced",
]

GATEWAY_DECISIONS = Counter(
    "strategos_gateway_decisions_total",
    "Tool calls through the gateway by outcome: executed, replayed (from the ledger), "
    "honeypot (simulated), or the error code (denied, rejected, invalid_args, …).",
    labelnames=["tool", "decision"],
)
TOOL_SECONDS = Histogram(
    "strategos_tool_seconds",
    "Wall time of a gateway call, validation to result (sandboxed runs included).",
    labelnames=["tool"],
    buckets=(0.005, 0.02, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
SANDBOX_SECONDS = Histogram(
    "strategos_sandbox_seconds",
    "Wall time of one sandboxed run by backend (local, gvisor, e2b): workspace setup, the "
    "command and cleanup; the part of `strategos_tool_seconds` spent in the sandbox.",
    labelnames=["backend"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 120.0),
)
GRAPH_STEPS = Counter(
    "strategos_graph_steps_total",
    "Graph steps (one node execution each) of served runs, by node and tenant: steps per "
    'task are this counter\'s increase divided by `strategos_tasks_total{event="created"}`.',
    labelnames=["node", "tenant"],
)
MODEL_CALLS = Counter(
    "strategos_model_calls_total",
    "Model calls (each sampled choice counts) by the node that made them and the tenant.",
    labelnames=["node", "tenant"],
)
MODEL_TOKENS = Counter(
    "strategos_model_tokens_total",
    "Model tokens by node, tenant and kind (prompt or completion).",
    labelnames=["node", "tenant", "kind"],
)
MODEL_BUDGET = Counter(
    "strategos_model_budget_total",
    "Model calls checked against the hard budget before they were sent, by node, tenant and "
    "outcome: sent (fitted as asked), shortened (a smaller completion limit), or refused_task, "
    "refused_role, refused_tenant (not sent).",
    labelnames=["node", "tenant", "outcome"],
)
MODEL_COST = Counter(
    "strategos_model_cost_usd_total",
    "Model spending in USD by tenant, node and priced model (the bundled model by its "
    "CPU-seconds; cached answers cost nothing).",
    labelnames=["tenant", "node", "model"],
)
MODEL_CACHE_HITS = Counter(
    "strategos_model_cache_hits_total",
    "Greedy model calls answered from the response cache, by model and kind (exact, or "
    "semantic: a near-identical request under the same instructions).",
    labelnames=["model", "kind"],
)
MODEL_CACHE_MISSES = Counter(
    "strategos_model_cache_misses_total",
    "Greedy model calls the response cache could not answer, by model (sampled calls never look).",
    labelnames=["model"],
)
MODEL_FALLBACKS = Counter(
    "strategos_model_fallbacks_total",
    "Routed calls an endpoint failed (429, timeout, error) and the next one was tried, "
    "by the endpoint that failed.",
    labelnames=["endpoint"],
)
TASKS = Counter(
    "strategos_tasks_total",
    "Task API events by kind: created, and each run's outcome (completed, failed, "
    "waiting_for_approval).",
    labelnames=["event"],
)
API_ERRORS = Counter(
    "strategos_api_errors_total",
    "Task API answers that refused a request, by error code: rate_limited, "
    "active_task_limit and overloaded (backpressure) are 429s, unauthorized 401, forbidden 403 …",
    labelnames=["code"],
)
LEASES_LOST = Counter(
    "strategos_run_leases_lost_total",
    "Runs whose lease the batched heartbeat found taken (the run is cancelled here).",
)


def decision_of(ok: bool, replayed: bool, simulated: bool, error_code: str | None) -> str:
    """The gateway's outcome of one call, as a bounded label."""
    if simulated:
        return "honeypot"
    if ok:
        return "replayed" if replayed else "executed"
    return error_code or "error"


TRACER = trace.get_tracer("strategos")


def parent_context() -> otel_context.Context | None:
    """Where a new span hangs: the current span, else the LangChain run (node) being executed.

    OpenInference traces LangChain runs from callbacks and does not make their spans current,
    so code inside a node finds its node's span through the run's config instead. A current
    span of another process (a served run's parent, the task API's request) is not one of
    ours: the node, which hangs under it, comes first.
    """
    if trace.get_current_span().is_recording():
        return None
    try:
        from openinference.instrumentation.langchain import (
            LangChainInstrumentor,
            get_current_span,
        )
    except ImportError:  # pragma: no cover - a dependency of aegra-api
        return None
    if not LangChainInstrumentor().is_instrumented_by_opentelemetry:
        return None  # (asking it would log a warning per call)
    node = get_current_span()
    return trace.set_span_in_context(node) if node is not None else None


type Attribute = str | int | float | bool


@contextmanager
def span(name: str, **attributes: Attribute) -> Iterator[trace.Span]:
    """A span of ours, under the current span or node, with `strategos.*` attributes."""
    named = {f"strategos.{key}": value for key, value in attributes.items()}
    with TRACER.start_as_current_span(name, context=parent_context(), attributes=named) as current:
        yield current


type Async[**P, R] = Callable[P, Coroutine[Any, Any, R]]


def traced[**P, R](
    name: str, seconds: Histogram | None = None, **attributes: str
) -> Callable[[Async[P, R]], Async[P, R]]:
    """Decorate an async function so every call is one span called `name`.

    With `seconds`, each call's wall time is observed there too, labelled with `attributes`
    (which the span carries as well), so a latency histogram and the spans tell one story.
    """
    timer = seconds.labels(**attributes) if seconds is not None else None

    def decorate(function: Async[P, R]) -> Async[P, R]:
        @wraps(function)
        async def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
            with span(name, **attributes):
                if timer is None:
                    return await function(*args, **kwargs)
                with timer.time():
                    return await function(*args, **kwargs)

        return wrapper

    return decorate
