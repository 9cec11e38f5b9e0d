"""What decoding a ReAct turn under the tools' JSON schemas costs on the bundled model.

    .venv/bin/python -m bench.react_tools.bench_tool_calls [--rounds 2] [--out FILE]

The ReAct worker asks for exactly one tool call per turn with `tool_choice="required"`; with
`--jinja`, llama-server then samples from a grammar built from the tools' schemas, from the first
token. Each prompt is a real worker turn (the `react` system prompt, the catalogue's tool
definitions as the gateway lists them, the goal and the files, some with earlier turns) sent
three ways to one server (started by `service.llm.local_model.running_server`, as the team
gets it), in an order that rotates per prompt:

- `required`: tools, `tool_choice: "required"` (the worker's way);
- `auto`: tools, `tool_choice: "auto"` (the grammar applies only once the model starts a call);
- `free`: no tools; the same definitions in the system prompt, and a JSON object asked for in
  words, parsed from the text (what "the model wrote invalid JSON" looks like without a grammar).

Per request: wall time, completion tokens, the server's own generation speed (`timings`), and
whether the call parsed and its arguments validated against the tool's args model (the
gateway's check). Writes `bench/react_tools/results.json` by default.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
from pathlib import Path
from typing import Any

import httpx

from bench.model.server import other_model_servers
from nodes.prompts import load_prompt
from nodes.react_support import CATALOGUE, name_of, offered
from service.llm.local_model import running_server
from service.settings import Settings
from tools.builtin import default_registry

MODES = ("required", "auto", "free")
MAX_TOKENS = 400
PACKAGES: list[tuple[str, dict[str, str]]] = [
    (
        "The test in test_calc.py fails. Fix the code so that it passes.",
        {"calc.py": "def add(a, b):\n    return a - b\n", "test_calc.py": "..."},
    ),
    (
        "Add a function mean(xs) to stats.py that returns the average of a list of numbers.",
        {"stats.py": "def total(xs):\n    return sum(xs)\n", "test_stats.py": "..."},
    ),
    (
        "tests/test_words.py fails: count_words should ignore punctuation. Fix words/core.py.",
        {"words/__init__.py": "", "words/core.py": "...", "tests/test_words.py": "..."},
    ),
]
READ = {"path": "calc.py", "content": "def add(a, b):\n    return a - b\n", "size": 33}


def _opening(goal: str, files: dict[str, str]) -> str:
    listing = "\n".join(f"- {p}" for p in sorted(files))
    return f"Goal: {goal}\n\nFiles in the workspace:\n{listing}"


def conversations() -> list[list[dict[str, Any]]]:
    """Worker turns: three first turns, and the first package after it read the file."""
    system: dict[str, Any] = {"role": "system", "content": load_prompt("react").text}
    firsts: list[list[dict[str, Any]]] = [
        [system, {"role": "user", "content": _opening(g, f)}] for g, f in PACKAGES
    ]
    call = {
        "id": "call_1",
        "type": "function",
        "function": {"name": "read_file", "arguments": json.dumps({"path": "calc.py"})},
    }
    after_read: list[dict[str, Any]] = [
        *firsts[0],
        {"role": "assistant", "content": "", "tool_calls": [call]},
        {
            "role": "tool",
            "tool_call_id": "call_1",
            "content": json.dumps({"ok": True, "result": READ}),
        },
    ]
    return [*firsts, after_read]


def _tools() -> list[dict[str, Any]]:
    return offered(default_registry().tool_definitions(), CATALOGUE)


def _body(messages: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    body: dict[str, Any] = {"max_tokens": MAX_TOKENS, "temperature": 0.0, "seed": 0}
    if mode == "free":
        described = json.dumps([t["function"] for t in _tools()])
        ask = (
            f"\nTools (JSON Schema): {described}\nReply with one JSON object only: "
            '{"name": "<tool>", "arguments": {...}}'
        )
        first = {**messages[0], "content": messages[0]["content"] + ask}
        flattened = [first, *(_plain(m) for m in messages[1:])]
        return body | {"messages": flattened}
    return body | {
        "messages": messages,
        "tools": _tools(),
        "tool_choice": mode,
        "parallel_tool_calls": False,
    }


def _plain(message: dict[str, Any]) -> dict[str, Any]:
    """A tool-calling message as plain chat, for the mode without tools."""
    if message["role"] == "assistant":
        function = message["tool_calls"][0]["function"]
        text = json.dumps(
            {"name": function["name"], "arguments": json.loads(function["arguments"])}
        )
        return {"role": "assistant", "content": text}
    if message["role"] == "tool":
        return {"role": "user", "content": f"Tool result: {message['content']}"}
    return message


def _call_of(reply: dict[str, Any], mode: str) -> tuple[str, object] | None:
    """The (name, arguments) the reply makes, or None when it makes no parseable call."""
    message = reply["choices"][0]["message"]
    try:
        if mode != "free":
            calls = message.get("tool_calls") or []
            if not calls:
                return None
            function = calls[0]["function"]
            return function["name"], json.loads(function["arguments"])
        text = (message.get("content") or "").strip().removeprefix("```json").strip("`\n ")
        data = json.loads(text)
        return str(data["name"]), data.get("arguments", {})
    except (json.JSONDecodeError, KeyError, TypeError):
        return None


def _valid(call: tuple[str, object] | None) -> bool:
    """Whether the call names an offered tool and its arguments pass the tool's args model."""
    if call is None:
        return False
    name, args = call
    registry = default_registry()
    if name == "finish":
        return isinstance(args, dict) and bool(args.get("summary"))
    if name not in registry or name not in {name_of(t) for t in _tools()}:
        return False
    try:
        registry.get(name).args_model.model_validate(args)
    except ValueError:
        return False
    return True


def measure(base: str, messages: list[dict[str, Any]], mode: str) -> dict[str, Any]:
    """One request: wall, tokens, the server's generation speed, and whether the call is valid."""
    print(f"{mode}: sending", flush=True)
    started = time.monotonic()
    response = httpx.post(f"{base}/chat/completions", json=_body(messages, mode), timeout=1800)
    response.raise_for_status()
    reply = response.json()
    wall = time.monotonic() - started
    timings = reply.get("timings") or {}
    call = _call_of(reply, mode)
    return {
        "mode": mode,
        "wall_s": round(wall, 2),
        "prompt_tokens": reply["usage"]["prompt_tokens"],
        "completion_tokens": reply["usage"]["completion_tokens"],
        "generation_tok_s": round(timings.get("predicted_per_second", 0.0), 2),
        "prompt_ms": round(timings.get("prompt_ms", 0.0), 1),
        "parsed": call is not None,
        "valid": _valid(call),
        "call": call[0] if call else None,
        "finish_reason": reply["choices"][0].get("finish_reason"),
        "reply": json.dumps(reply["choices"][0]["message"])[:1500],
    }


def summary(rows: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Per mode: requests, parsed and valid calls, median wall, tokens and generation speed."""
    out: dict[str, dict[str, float]] = {}
    for mode in MODES:
        mine = [r for r in rows if r["mode"] == mode]
        if not mine:
            continue
        out[mode] = {
            "requests": len(mine),
            "parsed": sum(r["parsed"] for r in mine),
            "valid": sum(r["valid"] for r in mine),
            "median_wall_s": round(statistics.median(r["wall_s"] for r in mine), 2),
            "median_completion_tokens": statistics.median(r["completion_tokens"] for r in mine),
            "median_generation_tok_s": round(
                statistics.median(r["generation_tok_s"] for r in mine), 2
            ),
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--prompts", type=int, default=4, help="how many of the 4 turns to send")
    parser.add_argument("--note", default="", help="free text stored with the results")
    parser.add_argument("--out", type=Path, default=Path("bench/react_tools/results.json"))
    options = parser.parse_args()
    settings = Settings()
    rows: list[dict[str, Any]] = []
    with running_server(settings) as base:
        for round_ in range(options.rounds):
            for index, messages in enumerate(conversations()[: options.prompts]):
                shift = (index + round_) % len(MODES)
                for mode in MODES[shift:] + MODES[:shift]:
                    row = measure(base, messages, mode) | {"prompt": index, "round": round_}
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    result = {
        "summary": summary(rows),
        "rows": rows,
        "max_tokens": MAX_TOKENS,
        "note": options.note,
        "other_model_servers": other_model_servers(),
    }
    options.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["summary"], indent=2))


if __name__ == "__main__":
    main()
