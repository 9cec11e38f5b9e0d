"""A scripted chat model: deterministic LLM output for tests and offline demos.

Replies are chosen by rules, not by call order, so a process that resumes a task mid-way gets the
same answers the first process would have: a rule matches on the agent role (the prompt's
`# role:` line) and on substrings of the conversation.

A rule may also make tool calls (`tool_calls`: name and args; its `reply` is then the turn's
thought), which a tool-calling agent binds with `bind_tools`; the ids are fresh per call, as a
server's are, so a resumed agent relies on the ids in its checkpointed messages. Asked for the
`ToolCall` JSON schema instead (`service.llm.tool_calls`, how the bundled server is asked), the
same rule answers its first call as that JSON text, as the server would.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Callable, Sequence
from pathlib import Path
from typing import Any

from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import ToolCallChunk, tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, Field


class ScriptedToolCall(BaseModel):
    """One tool call a scripted reply makes."""

    name: str
    args: dict[str, Any] = Field(default_factory=dict)


class ScriptRule(BaseModel):
    """One reply: used when the role matches and every `when` substring is in the prompt."""

    role: str
    when: list[str] = Field(default_factory=list)
    unless: list[str] = Field(default_factory=list)
    seed: int | None = None
    """Only for calls sampled with this seed (candidates of one batch differ by seed)."""
    reply: dict[str, Any] | str = ""
    tool_calls: list[ScriptedToolCall] = Field(default_factory=list)
    """Tool calls of the reply (each with a fresh id); `reply` is then the thought beside them."""


class Script(BaseModel):
    """A whole script; the first matching rule wins."""

    rules: list[ScriptRule]
    latency_s: float = Field(default=0.0, ge=0.0, le=60.0)


class ScriptMismatchError(LookupError):
    """No rule of the script matches a model call."""


def role_of(messages: list[BaseMessage]) -> str:
    """The agent role named on the system prompt's `# role: name@version` line."""
    for message in messages:
        text = message.content if isinstance(message.content, str) else ""
        for line in text.splitlines():
            if line.startswith("# role:"):
                return line.removeprefix("# role:").strip().split("@", 1)[0]
    return ""


_WORDS = re.compile(r"\s*\S+|\s+$")
"""A word and the whitespace before it (and trailing whitespace): the pieces rejoin exactly."""


class ScriptedChatModel(BaseChatModel):
    """Returns the scripted reply of the first matching rule, with approximate token usage."""

    script: Script
    calls: int = 0
    record: bool = False
    """Keep every call's message texts in `recorded` (tests and benchmarks measure prompts)."""
    recorded: list[list[str]] = Field(default_factory=list)
    max_tokens: int = 1024
    """Completion limit, as a server has: a longer reply is cut here and billed at the limit."""

    @classmethod
    def from_file(cls, path: Path) -> ScriptedChatModel:
        """Load and validate a JSON script."""
        return cls(script=Script.model_validate_json(Path(path).read_text()))

    @property
    def _llm_type(self) -> str:
        return "strategos-scripted"

    def _reply(
        self, messages: list[BaseMessage], seed: int | None = None, limit: int | None = None
    ) -> AIMessage:
        """The first matching rule's reply, cut at `limit` tokens (a call's own `max_tokens`)."""
        role = role_of(messages)
        texts = [m.content if isinstance(m.content, str) else "" for m in messages]
        if self.record:
            self.recorded.append(texts)
        prompt = "\n".join(texts)
        for rule in self.script.rules:
            if rule.role != role or (rule.seed is not None and rule.seed != seed):
                continue
            if all(w in prompt for w in rule.when) and not any(u in prompt for u in rule.unless):
                text = rule.reply if isinstance(rule.reply, str) else json.dumps(rule.reply)
                # ~4 characters a token, like the counts
                text = text[: (limit or self.max_tokens) * 4]
                self.calls += 1
                prompt_tokens, completion_tokens = max(1, len(prompt) // 4), max(1, len(text) // 4)
                return AIMessage(
                    content=text,
                    tool_calls=[
                        {"name": c.name, "args": c.args, "id": f"call_{uuid.uuid4().hex[:16]}"}
                        for c in rule.tool_calls
                    ],
                    usage_metadata={
                        "input_tokens": prompt_tokens,
                        "output_tokens": completion_tokens,
                        "total_tokens": prompt_tokens + completion_tokens,
                    },
                )
        raise ScriptMismatchError(f"no scripted reply for role {role!r}; prompt:\n{prompt[-1500:]}")

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Accept tool definitions as a server would; the script decides which calls are made."""
        definitions = [convert_to_openai_tool(tool) for tool in tools]
        return self.bind(tools=definitions, tool_choice=tool_choice, **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.script.latency_s:
            time.sleep(self.script.latency_s)
        reply = _shaped(self._reply(messages, kwargs.get("seed"), kwargs.get("max_tokens")), kwargs)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.script.latency_s:
            await asyncio.sleep(self.script.latency_s)
        reply = _shaped(self._reply(messages, kwargs.get("seed"), kwargs.get("max_tokens")), kwargs)
        return ChatResult(generations=[ChatGeneration(message=reply)])

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """The same reply, streamed a word at a time with its usage on the last piece.

        LangChain streams only when someone listens (a `messages` stream, `astream_events`);
        otherwise `_agenerate` answers in one piece, as before.
        """
        if self.script.latency_s:
            await asyncio.sleep(self.script.latency_s)
        reply = _shaped(self._reply(messages, kwargs.get("seed"), kwargs.get("max_tokens")), kwargs)
        pieces = _WORDS.findall(str(reply.content)) or [""]
        for index, piece in enumerate(pieces):
            last = index == len(pieces) - 1
            usage = reply.usage_metadata if last else None
            calls = _call_chunks(reply) if last else []  # a streamed reply keeps its tool calls
            yield ChatGenerationChunk(
                message=AIMessageChunk(content=piece, usage_metadata=usage, tool_call_chunks=calls)
            )


def _call_chunks(reply: AIMessage) -> list[ToolCallChunk]:
    """The reply's tool calls as the one chunk each that a streaming server would send."""
    return [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(reply.tool_calls)
    ]


def _shaped(reply: AIMessage, kwargs: dict[str, Any]) -> AIMessage:
    """The reply as a `ToolCall` JSON answer when the call asked for that schema."""
    response_format = kwargs.get("response_format")
    schema = response_format.get("json_schema", {}) if isinstance(response_format, dict) else {}
    if schema.get("name") != "ToolCall" or not reply.tool_calls:
        return reply
    call = reply.tool_calls[0]
    answer = {"thought": str(reply.content), "tool": call["name"], "args": call["args"]}
    return AIMessage(json.dumps(answer), usage_metadata=reply.usage_metadata)
