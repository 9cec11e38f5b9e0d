"""A shortened call reaches an OpenAI-compatible endpoint with the shortened completion limit."""

from __future__ import annotations

import json
from typing import Any

import httpx
from langchain_openai import ChatOpenAI
from langgraph.graph import END, START, StateGraph
from pydantic import SecretStr
from typing_extensions import TypedDict

from graphs.context import TeamContext
from service.settings import Settings
from service.team_deps import PIPELINE_ROLES, ServiceDeps

SENT: list[dict[str, Any]] = []


def endpoint(request: httpx.Request) -> httpx.Response:
    """A chat-completions endpoint that records each request and answers in 10 tokens."""
    SENT.append(json.loads(request.content))
    return httpx.Response(
        200,
        json={
            "id": "x",
            "object": "chat.completion",
            "created": 0,
            "model": "m",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "ok"},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 100, "completion_tokens": 10, "total_tokens": 110},
        },
    )


class Turns(TypedDict, total=False):
    done: bool


async def test_the_granted_limit_is_what_the_request_asks_for() -> None:
    model = ChatOpenAI(
        base_url="http://endpoint.invalid/v1",
        api_key=SecretStr("none"),
        model="m",
        max_completion_tokens=1024,
        max_retries=0,
        http_async_client=httpx.AsyncClient(transport=httpx.MockTransport(endpoint)),
    )
    deps = ServiceDeps(Settings(), PIPELINE_ROLES)
    user = "y" * 1500  # 500 tokens counted, with the system prompt ~520

    async def coder(state: Turns) -> Turns:
        await deps.ask_text(model, "# role: coder", user, temperature=0.0, seed=0)
        return {"done": True}

    graph = StateGraph(Turns, context_schema=TeamContext)
    graph.add_node("coder", coder)
    graph.add_edge(START, "coder")
    graph.add_edge("coder", END)
    compiled = graph.compile()
    config: Any = {"configurable": {"thread_id": "wire-a"}}
    await compiled.ainvoke({}, config, context=TeamContext(token_budget=100_000))
    config = {"configurable": {"thread_id": "wire-b"}}
    await compiled.ainvoke({}, config, context=TeamContext(token_budget=800))

    assert SENT[0]["max_completion_tokens"] == 1024  # it fitted: the model's own limit
    shortened = SENT[1]["max_completion_tokens"]
    assert 64 <= shortened < 300  # what is left of 800 after the ~520-token prompt
    assert "max_tokens" not in SENT[1]
