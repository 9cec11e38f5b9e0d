"""OpenTelemetry: one task is one tree of spans — nodes, model calls, tool calls, sandbox runs.

The execution-first team runs in-process on the scripted model, the real sandbox and ledger,
with OpenInference's LangChain instrumentation and the project's own spans going to an
in-memory exporter; the test reads the tree back.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from openinference.instrumentation.langchain import LangChainInstrumentor
from opentelemetry import trace
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from service.settings import Settings
from service.tracing import JsonLinesExporter
from tests.integration.test_selection_team import RIGHT, coder, run


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    provider = trace.get_tracer_provider()
    if not isinstance(provider, TracerProvider):
        provider = TracerProvider()
        trace.set_tracer_provider(provider)
    exporter = InMemorySpanExporter()
    processor = SimpleSpanProcessor(exporter)
    provider.add_span_processor(processor)
    instrumentor = LangChainInstrumentor()
    instrumentor.instrument(tracer_provider=provider)
    yield exporter
    instrumentor.uninstrument()
    processor.shutdown()


def ancestors(span: ReadableSpan, by_id: dict[int, ReadableSpan]) -> list[str]:
    names = []
    while span.parent is not None and span.parent.span_id in by_id:
        span = by_id[span.parent.span_id]
        names.append(span.name)
    return names


async def test_a_task_is_one_tree_of_nodes_model_calls_and_tool_calls(
    tmp_path: Path, spans: InMemorySpanExporter
) -> None:
    await run(tmp_path, [coder(RIGHT)], tenant="acme", settings=Settings(widen_rounds=0))
    finished = list(spans.get_finished_spans())
    by_id = {s.context.span_id: s for s in finished}
    assert len({s.context.trace_id for s in finished}) == 1, "one task, one trace"

    tools = [s for s in finished if s.name == "tool_call"]
    judged = [
        s for s in tools if s.attributes and s.attributes["strategos.tool"] == "run_candidates"
    ]
    assert len(judged) == 1
    attributes = judged[0].attributes or {}
    assert attributes["strategos.decision"] == "executed"
    assert attributes["strategos.tenant"] == "acme"
    assert ancestors(judged[0], by_id)[0] == "judge"  # under the node that called it

    sandbox = [s for s in finished if s.name == "sandbox_run"]
    assert sandbox and all(ancestors(s, by_id)[0] == "tool_call" for s in sandbox)

    model_calls = [
        s for s in finished if (s.attributes or {}).get("openinference.span.kind") == "LLM"
    ]
    assert len(model_calls) == 5  # the greedy answer and 4 samples (scripted: one call each)
    assert all("sample" in ancestors(s, by_id) for s in model_calls)
    assert all((s.attributes or {}).get("llm.token_count.total", 0) > 0 for s in model_calls)


def test_the_default_exporter_writes_one_json_span_per_line(tmp_path: Path) -> None:
    provider = TracerProvider()
    path = tmp_path / "traces.jsonl"
    provider.add_span_processor(SimpleSpanProcessor(JsonLinesExporter(path)))
    tracer = provider.get_tracer("test")
    with tracer.start_as_current_span("outer"), tracer.start_as_current_span("inner"):
        pass
    import json

    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [line["name"] for line in lines] == ["inner", "outer"]
    assert lines[0]["parent_id"] == lines[1]["context"]["span_id"]
