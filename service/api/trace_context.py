"""One trace per task: the task API's request span, and the W3C `traceparent` its runs carry.

Every request is a server span (FastAPI's own telemetry), joined to the caller's trace when it
sends a `traceparent` header; every `/v1` answer names that span in a `traceparent` header. A
run the request starts carries that span's `traceparent` in its config's metadata
(`RUN_KEY`), so the instance that executes the run, later and perhaps elsewhere, makes the
graph run's spans its children (`service.serving.run_hooks`). The task's thread keeps the
creating request's `traceparent`: its later runs (an answer to an approval) join the same
trace, and the task view shows its `trace_id`.

Without a tracer provider (`STRATEGOS_OTEL_EXPORTER=none`) the spans are no-ops and nothing
is carried.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

__all__ = [
    "RUN_KEY",
    "TraceRequests",
    "context_of",
    "current_traceparent",
    "trace_id_of",
]

RUN_KEY = "traceparent"
"""The key of the run config's (and the task thread's) metadata holding the trace parent."""

_PROPAGATOR = TraceContextTextMapPropagator()

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def current_traceparent() -> str | None:
    """The current span as a W3C `traceparent`; None outside a recorded span."""
    carrier: dict[str, str] = {}
    _PROPAGATOR.inject(carrier)
    return carrier.get("traceparent")


def context_of(traceparent: object) -> otel_context.Context | None:
    """The context whose current span is the one `traceparent` names; None if it names none."""
    if not isinstance(traceparent, str):
        return None
    context = _PROPAGATOR.extract({"traceparent": traceparent})
    return context if trace.get_current_span(context).get_span_context().is_valid else None


def trace_id_of(traceparent: object) -> str | None:
    """The 32-hex-digit trace id of a `traceparent`, as trace viewers show it."""
    context = context_of(traceparent)
    if context is None:
        return None
    return format(trace.get_current_span(context).get_span_context().trace_id, "032x")


class TraceRequests:
    """ASGI middleware: each `/v1` answer names its request's span in a `traceparent` header.

    FastAPI itself makes every request a server span, joined to the caller's trace when it
    sends a `traceparent`; this only tells the caller which span (and trace) that was. The
    LangGraph server's routes served by the same app pass through untouched.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Pass the request on; add the current span's `traceparent` to its answer."""
        path = str(scope.get("path", ""))
        answer = current_traceparent() if scope["type"] == "http" else None
        if answer is None or not (path == "/v1" or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return

        async def send_with_traceparent(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers.append((b"traceparent", answer.encode()))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_traceparent)
