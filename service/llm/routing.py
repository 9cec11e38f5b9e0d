"""Cost-aware routing: the cheapest adequate endpoint per call, and the next one when it fails.

`STRATEGOS_MODEL_ENDPOINTS` lists OpenAI-compatible endpoints with a price, a strength rank and
the graph nodes each may serve. With none configured the service keeps its one model and this
module is never used (no wrapper, no extra call, nothing to pay). With some, `RoutedChatModel`
stands where the model stood, so nodes and the `ask_*` calls are unchanged; per call it

1. reads the role — the graph node making the call (`deps.current_caller()`), else the prompt's
   `# role:` line — and a difficulty from plain rules on what it is asked (`difficulty_of`);
2. needs strength `level(role, difficulty)`: the role's floor (code-writing roles 1, the rest 0),
   +1 for a prompt over 1,500 tokens and +1 over 3,500, +1 when the request shows a failing
   check and +1 for three or more, +1 per earlier answer in the conversation (a repair turn),
   at most +2;
3. tries the endpoints that may serve the role and are strong enough, cheapest first (estimated
   cost of this prompt and a typical answer), then the weaker ones, strongest first — better a
   weaker answer than none — moving on after a 429, a timeout, a connection error or a 5xx.

The loop is ours rather than `Runnable.with_fallbacks` because the answer must say which
endpoint gave it: its price, the cost metric's `model` label and the fallback counter depend on
it. It catches the same exceptions `with_fallbacks(exceptions_to_handle=…)` would be given.
Routed endpoints do not retry in the OpenAI client: after a 429 the next endpoint is the retry.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import openai
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun, CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, HumanMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import ConfigDict

from graphs.deps import text_of
from service.llm.prices import cost_usd
from service.llm.scripted import role_of
from service.settings import ModelEndpoint, ModelPrice
from tools.telemetry import MODEL_COST, MODEL_FALLBACKS

FALLBACK_ON: tuple[type[BaseException], ...] = (
    openai.RateLimitError,
    openai.APITimeoutError,
    openai.APIConnectionError,
    openai.InternalServerError,
)
"""What moves a call to the next endpoint; anything else (a bad request) is the caller's."""

ENDPOINT = "strategos_model"
COST = "strategos_cost_usd"
"""`response_metadata` keys of a routed answer: the endpoint that gave it and its price."""

ROLE_FLOOR = {"coder": 1, "coder_repair": 1, "repair": 1, "sample": 1}
"""Roles that write code start one rank up; routing, tests and reviews start at the bottom."""
LONG_PROMPT, VERY_LONG_PROMPT = 1500, 3500
EXPECTED_COMPLETION = 300
"""Completion tokens assumed when comparing endpoints' prices before the answer exists."""
_FAILURE = re.compile(r"\b(fail(s|ed|ing|ure)?|error|traceback|exception)\b", re.IGNORECASE)


class Difficulty(NamedTuple):
    """What a call's messages tell about its difficulty, without asking a model."""

    prompt_tokens: int
    failing: int
    attempt: int


@dataclass(frozen=True)
class Route:
    """One endpoint: its configuration, the chat model talking to it and its price."""

    endpoint: ModelEndpoint
    model: BaseChatModel
    price: ModelPrice

    def serves(self, role: str) -> bool:
        """Whether the operator lets this endpoint answer `role`'s calls."""
        return not self.endpoint.roles or role in self.endpoint.roles

    def estimate(self, prompt_tokens: int) -> float:
        """The expected price of a call with this prompt here."""
        return cost_usd(self.price, prompt_tokens, EXPECTED_COMPLETION)


def difficulty_of(messages: Sequence[BaseMessage]) -> Difficulty:
    """Prompt size (~4 characters a token), failing-check lines of the request, repair turns.

    The request is the node's first user message; later ones are structured-output repairs,
    counted as attempts, and their "invalid output" wording is not a failing check.
    """
    texts = [text_of(m) for m in messages]
    request = next((text_of(m) for m in messages if isinstance(m, HumanMessage)), "")
    failing = sum(1 for line in request.splitlines() if _FAILURE.search(line))
    return Difficulty(
        prompt_tokens=sum(len(t) for t in texts) // 4,
        failing=min(failing, 10),
        attempt=sum(isinstance(m, AIMessage) for m in messages),
    )


def level(role: str, difficulty: Difficulty) -> int:
    """The strength a call needs (module docstring, step 2)."""
    return (
        ROLE_FLOOR.get(role, 0)
        + (difficulty.prompt_tokens > LONG_PROMPT)
        + (difficulty.prompt_tokens > VERY_LONG_PROMPT)
        + (difficulty.failing >= 1)
        + (difficulty.failing >= 3)
        + min(difficulty.attempt, 2)
    )


def order(routes: Sequence[Route], role: str, difficulty: Difficulty) -> list[Route]:
    """The endpoints to try, in order (module docstring, step 3).

    A role no endpoint lists falls back to all of them: a configuration gap must not stop a task.
    """
    allowed = [r for r in routes if r.serves(role)] or list(routes)
    need = min(level(role, difficulty), max(r.endpoint.strength for r in allowed))
    tokens = difficulty.prompt_tokens
    adequate = sorted(
        (r for r in allowed if r.endpoint.strength >= need),
        key=lambda r: (r.estimate(tokens), -r.endpoint.strength),
    )
    weaker = sorted(
        (r for r in allowed if r.endpoint.strength < need), key=lambda r: -r.endpoint.strength
    )
    return adequate + weaker


async def _prepend(
    first: ChatGenerationChunk, rest: AsyncIterator[ChatGenerationChunk]
) -> AsyncIterator[ChatGenerationChunk]:
    yield first
    async for chunk in rest:
        yield chunk


def _no_caller() -> tuple[str, str]:
    return "-", "-"


class RoutedChatModel(BaseChatModel):
    """A chat model that sends each call to the endpoint `order` picks."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    routes: list[Route]
    caller: Callable[[], tuple[str, str]] = _no_caller
    """(node, tenant) of the running call: the role, and the labels of the cost metric."""

    @property
    def _llm_type(self) -> str:
        return "strategos-routed"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"endpoints": [r.endpoint.name for r in self.routes]}

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Tools in the OpenAI format every routed endpoint takes, as `ChatOpenAI` binds them."""
        if tool_choice is not None:
            kwargs["tool_choice"] = tool_choice
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("the routed model is asynchronous: use ainvoke")

    def _chain(self, messages: list[BaseMessage]) -> tuple[list[Route], str, str]:
        """The endpoints to try for these messages, and the caller's node and tenant."""
        node, tenant = self.caller()
        role = node if node != "-" else role_of(messages)
        return order(self.routes, role, difficulty_of(messages)), node, tenant

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # The endpoint's `_agenerate` under this run, as LangChain's wrappers do: one traced
        # model call, and the endpoint's response cache (inside it) still consulted.
        chain, node, tenant = self._chain(messages)
        for i, route in enumerate(chain):
            try:
                result = await route.model._agenerate(messages, stop, run_manager, **kwargs)
            except FALLBACK_ON:
                if i == len(chain) - 1:
                    raise
                MODEL_FALLBACKS.labels(endpoint=route.endpoint.name).inc()
                continue
            generations = [
                ChatGeneration(message=self._tag(g.message, route, node, tenant))
                for g in result.generations
            ]
            return ChatResult(generations=generations, llm_output=result.llm_output)
        raise RuntimeError("no model endpoint is configured")  # `routes` is never empty

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """A streamed answer (the CLI's live view), priced in a last, empty chunk.

        An endpoint failing before its first chunk hands the call on; one failing mid-answer
        fails it, as the tokens were already shown.
        """
        chain, node, tenant = self._chain(messages)
        for i, route in enumerate(chain):
            stream = route.model._astream(messages, stop, run_manager, **kwargs)
            try:
                first = await anext(aiter(stream))
            except StopAsyncIteration:
                return
            except FALLBACK_ON:
                if i == len(chain) - 1:
                    raise
                MODEL_FALLBACKS.labels(endpoint=route.endpoint.name).inc()
                continue
            prompt = completion = 0
            async for chunk in _prepend(first, stream):
                usage = getattr(chunk.message, "usage_metadata", None) or {}
                prompt += usage.get("input_tokens", 0)
                completion += usage.get("output_tokens", 0)
                yield chunk
            cost = cost_usd(route.price, prompt, completion)
            MODEL_COST.labels(tenant=tenant, node=node, model=route.endpoint.name).inc(cost)
            metadata = {ENDPOINT: route.endpoint.name, COST: cost}
            yield ChatGenerationChunk(
                message=AIMessageChunk(content="", response_metadata=metadata)
            )
            return

    @staticmethod
    def _tag(reply: BaseMessage, route: Route, node: str, tenant: str) -> BaseMessage:
        """The answer, priced at its endpoint and named after it; the cost counted."""
        usage = getattr(reply, "usage_metadata", None) or {}
        cost = cost_usd(route.price, usage.get("input_tokens", 0), usage.get("output_tokens", 0))
        MODEL_COST.labels(tenant=tenant, node=node, model=route.endpoint.name).inc(cost)
        metadata = {**reply.response_metadata, ENDPOINT: route.endpoint.name, COST: cost}
        return reply.model_copy(update={"response_metadata": metadata})
