"""The CLI's live view: readable lines for each event, failing checks shown, no raw dicts."""

from __future__ import annotations

from langchain_core.messages import AIMessageChunk
from rich.console import Console

from service.live import LiveView


def shown(*events: dict[str, object]) -> str:
    console = Console(record=True, width=120, force_terminal=False)
    view = LiveView(console)
    for event in events:
        view.handle("custom", event)
    return console.export_text()


def test_a_failing_run_names_each_failing_check() -> None:
    text = shown(
        {
            "role": "tester",
            "event": "result",
            "spec": [1, 3],
            "model": [2, 2],
            "failing": ["add(2, [3]) == 5", "add(-1, 1) == 0"],
            "error": "",
        }
    )
    assert "goal examples 1/3, team tests 2/2" in text
    assert "✗ add(2, [3]) == 5" in text and "✗ add(-1, 1) == 0" in text


def test_the_selection_teams_result_shows_its_clusters() -> None:
    text = shown({"role": "tester", "event": "result", "spec": [2, 2], "clusters": [4, 1]})
    assert "goal examples 2/2, clusters [4, 1]" in text


def test_other_events_read_as_words_not_dicts() -> None:
    text = shown(
        {"role": "coder", "event": "wrote", "origin": "sample", "batch": 1},
        {"role": "deliver", "event": "tool", "replayed": False},
    )
    assert "wrote a candidate (sample, batch 1)" in text
    assert "{" not in text and "tool replayed=False" in text


def test_the_status_table_counts_elapsed_time_and_calls() -> None:
    console = Console(record=True, width=120, force_terminal=False)
    view = LiveView(console)
    view.handle("updates", {"sample": {"steps": 1, "usage": {"model_calls": 4}}})
    console.print(view)
    table = console.export_text()
    assert "elapsed" in table and "model calls" in table
    assert " 4 " in table


def tokens(view: LiveView, call: str, node: str, *pieces: str) -> None:
    """Stream `pieces` as one model call's chunks, the way LangGraph's `messages` mode does."""
    for piece in pieces:
        view.handle("messages", (AIMessageChunk(content=piece, id=call), {"langgraph_node": node}))


def test_a_log_gets_one_line_per_streamed_call_not_one_per_token() -> None:
    console = Console(record=True, width=100, force_terminal=False)
    view = LiveView(console)
    # Two samples stream at once, their chunks interleaved.
    tokens(view, "a", "sample", "def", " add(a,", " b):")
    tokens(view, "b", "sample", "def", " [x]")
    assert console.export_text(clear=False) == ""  # nothing per token
    tokens(view, "a", "sample", "\n    return", " a + b")
    view.handle("messages", (AIMessageChunk(content="", id="a", chunk_position="last"), {}))
    text = console.export_text(clear=False)
    assert text.splitlines() == ["    sample streamed 5 tokens: def add(a, b): return a + b"]
    with view:
        pass  # the end of the task closes what is still streaming
    lines = console.export_text().splitlines()
    assert lines[-1] == "    sample streamed 2 tokens: def [x]"  # code, not rich markup
    assert not any(c in "".join(lines) for c in "\r\x1b")


def test_a_terminal_shows_the_call_streaming_under_the_table() -> None:
    view = LiveView(Console(width=120, force_terminal=True))
    tokens(view, "a", "coder", "def", " add(a, b):", "\n    return a + b")
    shown = text_of(view)
    assert "coder streaming: 3 tokens" in shown and "def add(a, b): return a + b" in shown
    tokens(view, "b", "tester", "[")
    shown = text_of(view)  # the latest call, and how many others stream
    assert "tester streaming: 1 tokens" in shown and "(+1 more)" in shown


def text_of(view: LiveView) -> str:
    console = Console(record=True, width=120, force_terminal=True)
    console.print(view)
    return console.export_text()
