"""One tool call per turn, decoded under a JSON schema the call cannot break.

The bundled model's chat template has no tool-call format llama.cpp recognises, so with
`tools` + `tool_choice="required"` the server falls back to a generic grammar the 1.5B model
wraps in a Markdown fence and then pads with newlines to the token limit: the reply has no
parsed call (bench/react_tools measured it). A `response_format` JSON schema is what the teams'
structured calls already decode under, reliably: here it is an `anyOf` with one branch per
tool — `{"thought": …, "tool": <const name>, "args": <the tool's argument schema>}` — so the
answer parses and names an offered tool by construction. The thought comes first and is
bounded, so the model states its reason before acting and the loop guard can compare thoughts.

The tools are listed in the system message (a schema given as `response_format` is grammar
only; the model never sees it). The reply becomes an `AIMessage` with one `tool_calls` entry,
the shape native tool calling gives, so the worker does not know which way was used.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, SystemMessage
from pydantic import JsonValue

from graphs.deps import text_of

__all__ = ["THOUGHT_MAX_CHARS", "ask_json_tool_call", "call_from_text", "tool_call_schema"]

THOUGHT_MAX_CHARS = 400
"""Longest thought the grammar lets the model write before its call."""
DESCRIPTION_CHARS = 300
"""How much of a tool's description the system message repeats."""


def _function(tool: Mapping[str, JsonValue]) -> Mapping[str, Any]:
    function = tool.get("function")
    return function if isinstance(function, Mapping) else {}


def tool_call_schema(tools: Sequence[Mapping[str, JsonValue]]) -> dict[str, Any]:
    """The JSON schema of one call of one of `tools` (OpenAI-style definitions).

    A tool's argument schema may refer to its own `$defs`; nested in a branch those references
    would point at the combined schema's root, so each tool's definitions move there, renamed
    after the tool (two tools may both define a `Case`).
    """
    branches = []
    definitions: dict[str, Any] = {}
    for tool in tools:
        function = _function(tool)
        params, own = _hoisted(
            function.get("parameters") or {"type": "object"}, str(function.get("name", ""))
        )
        definitions.update(own)
        branches.append(
            {
                "type": "object",
                "properties": {
                    "thought": {"type": "string", "maxLength": THOUGHT_MAX_CHARS},
                    "tool": {"const": function.get("name", "")},
                    "args": params,
                },
                "required": ["thought", "tool", "args"],
            }
        )
    schema: dict[str, Any] = {"anyOf": branches}
    if definitions:
        schema["$defs"] = definitions
    return schema


def _hoisted(params: Any, tool: str) -> tuple[Any, dict[str, Any]]:
    """`params` without its `$defs`, references renamed; and those definitions, renamed."""
    if not isinstance(params, Mapping) or "$defs" not in params:
        return params, {}
    own = dict(params["$defs"])
    renamed = {name: f"{tool}__{name}" for name in own}

    def rewrite(node: Any) -> Any:
        if isinstance(node, Mapping):
            out = {key: rewrite(value) for key, value in node.items() if key != "$defs"}
            ref = node.get("$ref")
            if isinstance(ref, str) and ref.startswith("#/$defs/"):
                out["$ref"] = f"#/$defs/{renamed.get(ref.removeprefix('#/$defs/'), '')}"
            return out
        if isinstance(node, list):
            return [rewrite(item) for item in node]
        return node

    return rewrite(params), {renamed[name]: rewrite(body) for name, body in own.items()}


def tools_text(tools: Sequence[Mapping[str, JsonValue]]) -> str:
    """The offered tools as the system message lists them: name, purpose, arguments."""
    lines = [
        'Answer with one JSON object: {"thought": why, "tool": name, "args": {…}}. Tools:',
    ]
    for tool in tools:
        function = _function(tool)
        description = str(function.get("description", "")).strip()[:DESCRIPTION_CHARS]
        params = function.get("parameters") or {}
        properties = params.get("properties", {}) if isinstance(params, Mapping) else {}
        required = set(params.get("required", [])) if isinstance(params, Mapping) else set()
        args = ", ".join(f"{name}{'' if name in required else '?'}" for name in properties)
        lines.append(f"- {function.get('name', '')}({args}): {description}")
    return "\n".join(lines)


def call_from_text(text: str, offered: Sequence[str]) -> AIMessage:
    """The reply as an `AIMessage` with its one tool call; no call if it does not parse.

    A reply cut off at the length limit is the one way the grammar's answer can fail to parse;
    it comes back as text, which the worker treats as a turn without a call.
    """
    try:
        answer = json.loads(text)
    except json.JSONDecodeError:
        return AIMessage(text)
    if not isinstance(answer, dict) or answer.get("tool") not in offered:
        return AIMessage(text)
    args = answer.get("args")
    call = {
        "name": str(answer["tool"]),
        "args": args if isinstance(args, dict) else {},
        "id": f"call_{uuid.uuid4().hex[:24]}",
        "type": "tool_call",
    }
    return AIMessage(str(answer.get("thought", "")), tool_calls=[call])


async def ask_json_tool_call(
    model: BaseChatModel,
    messages: Sequence[BaseMessage],
    tools: Sequence[Mapping[str, JsonValue]],
) -> AIMessage:
    """One turn decoded under `tool_call_schema(tools)`, returned as a tool-calling message."""
    schema = tool_call_schema(tools)
    bound = model.bind(
        response_format={
            "type": "json_schema",
            "json_schema": {"name": "ToolCall", "schema": schema},
        }
    )
    listing = tools_text(tools)
    prompt = list(messages)
    if prompt and isinstance(prompt[0], SystemMessage):
        prompt[0] = SystemMessage(f"{text_of(prompt[0])}\n\n{listing}")
    else:
        prompt.insert(0, SystemMessage(listing))
    reply = await bound.ainvoke(prompt)
    names = [str(_function(tool).get("name", "")) for tool in tools]
    message = call_from_text(text_of(reply), names)
    message.usage_metadata = getattr(reply, "usage_metadata", None)
    message.response_metadata = dict(getattr(reply, "response_metadata", {}) or {})
    return message
