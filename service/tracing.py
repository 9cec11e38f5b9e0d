"""Where the process's OpenTelemetry spans go: nowhere, a file, the console or OTLP.

`tools.telemetry` makes the spans of tool calls, sandbox runs and memory recall; OpenInference's
LangChain instrumentation makes those of graph runs, nodes and model calls (with token counts).
Both go to the global tracer provider set up here once per process: by the CLI before a task,
and in a served instance (`service.serving.serve.aegra_app`). `STRATEGOS_OTEL_EXPORTER`:

- `file` (the default): one JSON object per span, appended to `<data dir>/traces.jsonl` —
  nothing leaves the machine, and `jq` reads it;
- `console`: the SDK's console exporter, on standard output;
- `otlp`: OTLP over HTTP to `OTEL_EXPORTER_OTLP_ENDPOINT` (the standard variables apply);
- `none`: no provider, no instrumentation, no cost.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Sequence
from pathlib import Path

from opentelemetry import trace
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import (
    BatchSpanProcessor,
    ConsoleSpanExporter,
    SpanExporter,
    SpanExportResult,
)

from service.settings import Settings

__all__ = ["JsonLinesExporter", "setup_tracing", "shutdown_tracing"]

_lock = threading.Lock()
_provider: TracerProvider | None = None


class JsonLinesExporter(SpanExporter):
    """Spans as JSON lines in a file (the SDK's own JSON of each span, one per line)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        path.parent.mkdir(parents=True, exist_ok=True)

    def export(self, spans: Sequence[ReadableSpan]) -> SpanExportResult:
        """Append the batch; a failed write drops it (tracing never fails a task)."""
        lines = "".join(json.dumps(json.loads(s.to_json(indent=None))) + "\n" for s in spans)
        try:
            with self.path.open("a", encoding="utf-8") as out:
                out.write(lines)
        except OSError:
            return SpanExportResult.FAILURE
        return SpanExportResult.SUCCESS


def _exporter(settings: Settings) -> SpanExporter | None:
    kind = settings.otel_exporter
    if kind == "file":
        return JsonLinesExporter(settings.data_dir / "traces.jsonl")
    if kind == "console":
        return ConsoleSpanExporter()
    if kind == "otlp":
        from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter

        return OTLPSpanExporter()
    return None


def setup_tracing(settings: Settings) -> TracerProvider | None:
    """The process's tracer provider, set up once (None when tracing is off)."""
    global _provider
    with _lock:
        if _provider is not None:
            return _provider
        exporter = _exporter(settings)
        if exporter is None:
            return None
        provider = TracerProvider(resource=Resource.create({"service.name": "strategos"}))
        provider.add_span_processor(BatchSpanProcessor(exporter))
        trace.set_tracer_provider(provider)
        from openinference.instrumentation.langchain import LangChainInstrumentor

        LangChainInstrumentor().instrument(tracer_provider=provider)
        _provider = provider
        return provider


def shutdown_tracing() -> None:
    """Flush what is buffered (at the end of a CLI command)."""
    with _lock:
        if _provider is not None:
            _provider.force_flush(timeout_millis=5_000)
