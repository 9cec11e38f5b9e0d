"""The CLI's live view of a task: one line per agent event and a status table on terminals."""

from __future__ import annotations

import time
from typing import Any

from rich.console import Console, ConsoleOptions, RenderResult
from rich.live import Live
from rich.table import Table
from rich.text import Text

ROLE_STYLE = {
    "supervisor": "magenta",
    "coder": "cyan",
    "tester": "yellow",
    "reviewer": "green",
    "approval": "red",
    "deliver": "blue",
}


class LiveView:
    """Consumes `updates` and `custom` stream chunks and shows progress."""

    def __init__(self, console: Console, *, steps: int = 0, tokens: int = 0) -> None:
        self.console = console
        self.role = "-"
        self.steps = steps
        self.tokens = tokens
        self.calls = 0
        self.tests = "-"
        self.started = time.monotonic()
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The status table, drawn at every refresh (so the elapsed time keeps moving)."""
        yield self._table()

    def _table(self) -> Table:
        table = Table(show_header=True, header_style="bold", box=None)
        columns = ("elapsed", "agent", "step", "tests (goal / team)", "model calls", "tokens")
        for column in columns:
            table.add_column(column)
        elapsed = f"{time.monotonic() - self.started:.0f} s"
        table.add_row(
            elapsed, self.role, str(self.steps), self.tests, str(self.calls), str(self.tokens)
        )
        return table

    def _say(self, role: str, text: str) -> None:
        style = ROLE_STYLE.get(role, "white")
        self.console.print(f"[{style}]{role:>10}[/] {text}", highlight=False)

    def handle(self, mode: str, chunk: Any) -> None:
        """Render one stream chunk."""
        if mode == "custom" and isinstance(chunk, dict):
            self._custom(chunk)
        elif mode == "updates" and isinstance(chunk, dict):
            for node, update in chunk.items():
                if node == "__interrupt__" or not isinstance(update, dict):
                    continue
                self.steps += int(update.get("steps", 0))
                usage = update.get("usage") or {}
                self.calls += int(usage.get("model_calls", 0))
                self.tokens += int(usage.get("prompt_tokens", 0)) + int(
                    usage.get("completion_tokens", 0)
                )
        if self._live is not None:
            self._live.refresh()

    def _custom(self, event: dict[str, Any]) -> None:
        role = str(event.get("role", "?"))
        self.role = role
        kind = event.get("event")
        if role == "supervisor":
            self._say(role, f"→ {event.get('next')}")
        elif role == "tester" and kind == "result":
            self._result(event)
        elif role == "reviewer" and kind in ("approve", "changes_requested"):
            issues = "; ".join(event.get("issues", []))[:200]
            self._say(role, f"{kind}" + (f": {issues}" if issues else ""))
        elif role == "coder" and kind == "wrote" and event.get("files"):
            self._say(role, f"wrote {', '.join(event.get('files', []))}")
        elif role == "coder" and kind in ("wrote", "rejected"):
            what = "a candidate" if kind == "wrote" else "an answer with no usable code"
            self._say(role, f"{kind} {what} ({event.get('origin')}, batch {event.get('batch')})")
        else:
            details = " ".join(
                f"{k}={v}" for k, v in event.items() if k not in ("role", "event") and v != ""
            )
            self._say(role, f"{kind} {details}".strip())

    def _result(self, event: dict[str, Any]) -> None:
        """A test run: the goal's examples, then the team's tests or the candidates' clusters."""
        spec = event.get("spec", [0, 0])
        text = f"goal examples {spec[0]}/{spec[1]}"
        if "clusters" in event:
            self.tests = f"{spec[0]}/{spec[1]} / -"
            text += f", clusters {event['clusters']}"
        else:
            team = event.get("model", [0, 0])
            self.tests = f"{spec[0]}/{spec[1]} / {team[0]}/{team[1]}"
            text += f", team tests {team[0]}/{team[1]}"
        self._say("tester", text)
        for failure in event.get("failing") or []:
            self.console.print(Text.assemble(("           ✗ ", "red"), str(failure)))
        if event.get("error"):
            self.console.print(Text.assemble(("           ", ""), (str(event["error"]), "red")))
