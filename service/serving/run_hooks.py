"""What a served run carries besides its stream: the task's trace as parent, and its steps counted.

The task API starts a run with the W3C `traceparent` of the request (or task) in its config's
metadata (`service.api.trace_context`). The run executes later, in whichever Aegra instance's
worker picks it up (after a lost lease, another one). OpenInference's LangChain instrumentation
starts the graph run's root span from the current OpenTelemetry context, so that context is
attached around Aegra's graph stream (`stream_graph_events`, looked up at call time): the graph
run, its nodes, model calls and tool calls become children of the API request's span.

The same wrapper hands the run a callback that counts each node execution
(`strategos_graph_steps_total{node, tenant}`): LangGraph starts every node as a LangChain run
named after the node, whatever the team.
"""

from __future__ import annotations

import inspect
import logging
from collections.abc import AsyncIterator, Callable
from types import ModuleType
from typing import Any
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from opentelemetry import context as otel_context

from graphs.context import principal_of
from service.api.trace_context import RUN_KEY, context_of
from tools.telemetry import GRAPH_STEPS

__all__ = ["StepCounter", "install"]

log = logging.getLogger(__name__)


class StepCounter(BaseCallbackHandler):
    """Counts the run's node executions under their node and the run's tenant."""

    run_inline = True  # a counter: no thread hop per callback

    def __init__(self, tenant: str) -> None:
        self.tenant = tenant

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        tags: list[str] | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        """A node's own run (named as its node), not a runnable inside it."""
        node = (metadata or {}).get("langgraph_node")
        if node is not None and kwargs.get("name") == node:
            GRAPH_STEPS.labels(node=str(node), tenant=self.tenant).inc()


def _with_step_counter(config: Any) -> Any:
    """`config` with a `StepCounter` among its callbacks (unchanged if they are a manager)."""
    if not isinstance(config, dict):
        return config
    callbacks = config.get("callbacks")
    if callbacks is not None and not isinstance(callbacks, list):
        return config
    principal = principal_of(config)
    counter = StepCounter(principal.tenant if principal is not None else "-")
    return {**config, "callbacks": [*(callbacks or []), counter]}


def _parent(config: Any) -> otel_context.Context | None:
    metadata = (config or {}).get("metadata") if isinstance(config, dict) else None
    return context_of((metadata or {}).get(RUN_KEY))


def _hooked(original: Callable[..., AsyncIterator[Any]]) -> Any:
    """Aegra's `stream_graph_events`, inside the run's trace and with its steps counted."""

    async def stream_in_trace(
        graph: Any, input_data: Any, config: Any, **kwargs: Any
    ) -> AsyncIterator[Any]:
        parent = _parent(config)
        token = otel_context.attach(parent) if parent is not None else None
        try:
            async for event in original(graph, input_data, _with_step_counter(config), **kwargs):
                yield event
        finally:
            if token is not None:
                otel_context.detach(token)  # logs (never raises) if closed from elsewhere

    return stream_in_trace


def install(run_executor: ModuleType) -> bool:
    """Hook the runs this process executes; False (and a warning) if Aegra changed.

    `run_executor` is `aegra_api.services.run_executor`, which looks `stream_graph_events`
    up at call time.
    """
    original = getattr(run_executor, "stream_graph_events", None)
    params = list(inspect.signature(original).parameters) if original is not None else []
    if original is None or params[:3] != ["graph", "input_data", "config"]:
        log.warning("Aegra's graph streaming is not the expected one; runs start their own traces")
        return False
    setattr(run_executor, "stream_graph_events", _hooked(original))  # noqa: B010
    return True
