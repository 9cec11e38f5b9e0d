"""The CLI's live view of a task: one line per agent event and a status table on terminals.

While a model call streams (`messages` stream chunks), a terminal shows it as one updating line
under the table (the agent, tokens so far, their rate and the latest text); a log (no
terminal) gets one line per finished call instead, never a line per token.
"""

from __future__ import annotations

import time
from typing import Any

from langchain_core.messages import AIMessageChunk
from rich.console import Console, ConsoleOptions, Group, RenderResult
from rich.live import Live
from rich.markup import escape
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


PREVIEW_CHARS = 60
TAIL_CHARS = 400
"""Streamed text kept per call: enough for any preview, however wide the terminal."""


class TokenStream:
    """One model call streaming: who makes it, its tokens so far, since when, its latest text."""

    def __init__(self, role: str) -> None:
        self.role = role
        self.tokens = 0
        self.tail = ""
        self.started = time.monotonic()

    def add(self, text: str) -> None:
        """One streamed chunk (a token, for a server that streams token by token)."""
        self.tokens += 1
        self.tail = (self.tail + text)[-TAIL_CHARS:]

    def preview(self, chars: int = PREVIEW_CHARS) -> str:
        """The latest `chars` of text on one line: whitespace runs shown as one space."""
        flat = " ".join(self.tail.split())
        return flat if len(flat) <= chars else "…" + flat[-chars:]

    def line(self) -> str:
        """The terminal's updating line: tokens, rate and the latest text."""
        rate = self.tokens / max(time.monotonic() - self.started, 1e-3)
        return f"{self.role} streaming: {self.tokens} tokens, {rate:.0f}/s  {self.preview()}"


class LiveView:
    """Consumes `updates`, `custom` and `messages` stream chunks and shows progress."""

    def __init__(self, console: Console, *, steps: int = 0, tokens: int = 0) -> None:
        self.console = console
        self.role = "-"
        self.steps = steps
        self.tokens = tokens
        self.calls = 0
        self.tests = "-"
        self.started = time.monotonic()
        self.streams: dict[str, TokenStream] = {}
        """Model calls streaming now, by message id (parallel samples stream together)."""
        self._live: Live | None = None

    def __enter__(self) -> LiveView:
        if self.console.is_terminal:
            self._live = Live(self, console=self.console, refresh_per_second=4)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: object) -> None:
        for key in list(self.streams):
            self._finish(key)
        if self._live is not None:
            self._live.__exit__(None, None, None)
            self._live = None

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> RenderResult:
        """The status table, drawn at every refresh (so the elapsed time keeps moving).

        Under it, the latest model call still streaming, and how many others do.
        """
        if not self.streams:
            yield self._table()
            return
        latest = list(self.streams.values())[-1]
        text = latest.line()
        if len(self.streams) > 1:
            text += f"  (+{len(self.streams) - 1} more)"
        yield Group(self._table(), Text(text, style="dim", no_wrap=True, overflow="ellipsis"))

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
        if mode == "messages" and isinstance(chunk, tuple) and len(chunk) == 2:
            self._token(*chunk)
            return  # the terminal redraws at its own pace, not per token
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

    def _token(self, message: Any, metadata: Any) -> None:
        """A streamed piece of a model's answer (a whole message, not streamed, is not shown)."""
        if not isinstance(message, AIMessageChunk):
            return
        key = str(message.id)
        if key not in self.streams:
            node = metadata.get("langgraph_node") if isinstance(metadata, dict) else None
            self.streams[key] = TokenStream(str(node or self.role))
        if isinstance(message.content, str) and message.content:
            self.streams[key].add(message.content)
        if message.chunk_position == "last":
            self._finish(key)

    def _finish(self, key: str) -> None:
        """A call is over: in a log, its one line (a terminal's line just goes away)."""
        stream = self.streams.pop(key)
        if self._live is None and stream.tokens:
            said = f"streamed {stream.tokens} tokens: "
            room = max(self.console.width - len(said) - 12, 20)  # one line of the log
            self._say(stream.role, escape(said + stream.preview(room)))  # code is no markup

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
