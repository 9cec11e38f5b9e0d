"""The CLI's live view: readable lines for each event, failing checks shown, no raw dicts."""

from __future__ import annotations

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
