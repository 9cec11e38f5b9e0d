"""Chat model providers and the structured-output call every agent uses.

One interface: `ChatOpenAI` against any OpenAI-compatible endpoint (the embedded default is the
bundled llama.cpp server). Agents pick actions through JSON-schema constrained output, validated
with pydantic, with a bounded repair retry that feeds the validation error back verbatim.

Every 429 from the model endpoint is counted in the backpressure gauge (`service.rate_limits`)
by a response hook on the model's HTTP clients, so the task API sheds load while the endpoint
throttles.
"""

from __future__ import annotations

import asyncio
import atexit
import logging
import threading
from collections.abc import Sequence
from contextlib import ExitStack
from typing import TYPE_CHECKING, TypeVar

import openai
from langchain_core.caches import BaseCache
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI
from openai import LengthFinishReasonError
from pydantic import BaseModel, SecretStr, ValidationError
from redis.asyncio import Redis

from graphs.deps import text_of
from graphs.state import Usage, add_usage
from service.llm.cache import CachedChatOpenAI, response_cache
from service.llm.prices import price_of
from service.llm.routing import COST as ROUTED_COST
from service.rate_limits import LimitStore, record_model_429
from service.settings import Settings, get_settings

if TYPE_CHECKING:
    import httpx2

T = TypeVar("T", bound=BaseModel)
REPAIR_TEMPERATURE = 0.4
GAUGE_TIMEOUT_S = 2.0
"""Longest a 429 waits for the gauge (Redis down or slow): counting must not stall the call."""

log = logging.getLogger(__name__)
_PENDING: set[asyncio.Task[None]] = set()


class StructuredOutputError(RuntimeError):
    """The model did not produce valid structured output within the retry budget."""

    def __init__(self, message: str, usage: Usage) -> None:
        super().__init__(message)
        self.usage = usage
        """What the failed attempts cost: they count against the budget too."""


def usage_of(message: BaseMessage) -> Usage:
    """Token usage reported with a model response (zero when the provider reports none)."""
    meta = getattr(message, "usage_metadata", None) or {}
    usage: Usage = {
        "model_calls": 1,
        "prompt_tokens": int(meta.get("input_tokens", 0)),
        "completion_tokens": int(meta.get("output_tokens", 0)),
    }
    cost = message.response_metadata.get(ROUTED_COST)  # priced by the router at its endpoint
    if isinstance(cost, (int, float)):
        usage["cost_usd"] = float(cost)
    return usage


def _response_format(schema: type[BaseModel]) -> dict[str, object]:
    return {
        "type": "json_schema",
        "json_schema": {"name": schema.__name__, "schema": schema.model_json_schema()},
    }


def _usage_of_completion(exc: LengthFinishReasonError) -> Usage:
    usage = exc.completion.usage
    return {
        "model_calls": 1,
        "prompt_tokens": usage.prompt_tokens if usage else 0,
        "completion_tokens": usage.completion_tokens if usage else 0,
    }


def _strip_fences(text: str) -> str:
    text = text.strip()
    if text.startswith("```"):
        text = text.split("\n", 1)[1] if "\n" in text else ""
        text = text.rsplit("```", 1)[0]
    return text.strip()


async def structured_call[T: BaseModel](
    model: BaseChatModel,
    system: str,
    user: str,
    schema: type[T],
    *,
    retries: int = 2,
    sample: bool = False,
) -> tuple[T, Usage]:
    """Ask for output matching `schema`; on invalid output, show the model its error and retry.

    Returns the validated object and the usage of every attempt. Raises StructuredOutputError
    after `retries` failed repairs, naming the schema and the last validation error. With
    `sample`, every attempt samples at a small temperature (for repairs of earlier answers).
    """
    bound = model.bind(
        response_format=_response_format(schema),
        **({"temperature": REPAIR_TEMPERATURE} if sample else {}),
    )
    retry = model.bind(response_format=_response_format(schema), temperature=REPAIR_TEMPERATURE)
    messages: list[BaseMessage] = [SystemMessage(system), HumanMessage(user)]
    total: Usage = {"model_calls": 0, "prompt_tokens": 0, "completion_tokens": 0}
    last_error = ""
    for attempt in range(retries + 1):
        # A greedy decoder repeats its mistake; repairs sample a little to get out of it.
        try:
            reply = await (retry if attempt else bound).ainvoke(messages)
        except LengthFinishReasonError as exc:
            # The answer hit the completion limit mid-JSON (often a repetition loop).
            total = add_usage(total, _usage_of_completion(exc))
            last_error = "the answer was cut off at the length limit; write a much shorter one"
            text = ""
        else:
            total = add_usage(total, usage_of(reply))
            text = _strip_fences(text_of(reply))
            try:
                return schema.model_validate_json(text), total
            except ValidationError as exc:
                last_error = _short_errors(exc)
        messages = [
            *messages,
            AIMessage(text[:2000]),
            HumanMessage(
                f"That output was invalid: {last_error}\n"
                f"Reply again with only a JSON object that matches the {schema.__name__} schema."
            ),
        ]
    raise StructuredOutputError(
        f"the model gave no valid {schema.__name__} after {retries + 1} attempts "
        f"(last error: {last_error}); try a larger model (STRATEGOS_MODEL / OPENAI_BASE_URL) "
        "or raise STRATEGOS_STRUCTURED_RETRIES",
        total,
    )


def _short_errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "(root)"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


class _LocalServer:
    """Process-wide llama-server, started on first use and stopped at exit."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._stack: ExitStack | None = None
        self._url: str | None = None

    def url(self, settings: Settings) -> str:
        with self._lock:
            if self._url is None:
                from service.llm.local_model import running_server

                self._stack = ExitStack()
                self._url = self._stack.enter_context(running_server(settings))
                atexit.register(self.stop)
            return self._url

    def stop(self) -> None:
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack, self._url = None, None


LOCAL_SERVER = _LocalServer()


async def _record_429(store: LimitStore | None = None) -> None:
    """Count one 429 in the gauge (the loop's store unless given); never raise.

    The gauge only steers admission, so Redis being down must not fail the model call: errors
    and a slow gauge (over `GAUGE_TIMEOUT_S`) are logged and dropped.
    """
    try:
        async with asyncio.timeout(GAUGE_TIMEOUT_S):
            if store is None:
                await record_model_429()
            else:
                await store.record_model_429()
    except Exception:
        log.warning("could not count a model-endpoint 429 in the backpressure gauge", exc_info=True)


async def _count_429(response: httpx2.Response) -> None:
    """Response hook of the async client (`ainvoke`, what the agents use).

    It sees every HTTP response, so the 429s the OpenAI client retries by itself count too,
    not only one that ends the call.
    """
    if response.status_code == 429:
        await _record_429()


async def _record_429_in_redis(settings: Settings, url: str) -> None:
    """Count one 429 through a connection of its own, for a thread without an event loop."""
    store = LimitStore(settings, Redis.from_url(url))
    try:
        await _record_429(store)
    finally:
        await store.close()


def _count_429_sync(response: httpx2.Response) -> None:
    """Response hook of the sync client (`invoke`, which the agents do not use).

    The gauge is async. On a thread running an event loop (a sync call blocking it), the count
    is scheduled there and lands when the loop runs again. Without a loop it goes to Redis over
    a short-lived connection, or is skipped when the gauge is in-process: that gauge belongs to
    an event loop this thread cannot reach, and nothing on this thread reads it.
    """
    if response.status_code != 429:
        return
    try:
        loop = asyncio.get_running_loop()
    except RuntimeError:
        loop = None
    if loop is not None:
        task = loop.create_task(_record_429())
        _PENDING.add(task)  # the loop keeps only a weak reference
        task.add_done_callback(_PENDING.discard)
        return
    settings = get_settings()
    if not settings.redis_url:
        log.debug("model-endpoint 429 on a thread without an event loop: in-process gauge skipped")
        return
    try:
        asyncio.run(_record_429_in_redis(settings, settings.redis_url))
    except Exception:  # a malformed URL, say: still never the model call's problem
        log.warning("could not count a model-endpoint 429 in the backpressure gauge", exc_info=True)


def chat_model(settings: Settings) -> BaseChatModel:
    """The configured chat model: a script, an OpenAI-compatible endpoint, or the local model.

    With `model_endpoints` configured, a router over them (`service.llm.routing`); with the
    response cache on, every OpenAI-compatible model looks greedy calls up in it first.
    """
    if settings.scripted_model is not None:
        from service.llm.scripted import ScriptedChatModel

        scripted = ScriptedChatModel.from_file(settings.scripted_model)
        scripted.max_tokens = settings.max_completion_tokens
        return scripted
    cache = response_cache(settings)
    if settings.model_endpoints:
        return _routed_model(settings, cache)
    if settings.openai_base_url:
        base_url = settings.openai_base_url
        api_key = settings.openai_api_key.get_secret_value() if settings.openai_api_key else "none"
    else:
        base_url, api_key = LOCAL_SERVER.url(settings), "local"
    return _openai_model(
        settings, base_url, api_key, settings.model, settings.model_max_retries, cache
    )


def _routed_model(settings: Settings, cache: BaseCache | None) -> BaseChatModel:
    """The router over the configured endpoints; a routed endpoint never retries by itself."""
    from service.deps import current_caller
    from service.llm.routing import Route, RoutedChatModel

    routes = []
    for endpoint in settings.model_endpoints:
        key = settings.endpoint_api_key(endpoint)
        local = endpoint.base_url is None
        base_url = LOCAL_SERVER.url(settings) if local else str(endpoint.base_url)
        api_key = "local" if local else key.get_secret_value() if key else "none"
        model = _openai_model(settings, base_url, api_key, endpoint.model, 0, cache)
        price = endpoint.price or price_of(endpoint.model, settings, local=local)
        routes.append(Route(endpoint=endpoint, model=model, price=price))
    return RoutedChatModel(routes=routes, caller=current_caller)


def _openai_model(
    settings: Settings,
    base_url: str,
    api_key: str,
    model: str,
    max_retries: int,
    cache: BaseCache | None,
) -> ChatOpenAI:
    """One OpenAI-compatible endpoint with the service's sampling, limits and 429 hooks."""
    chat = CachedChatOpenAI(
        base_url=base_url,
        api_key=SecretStr(api_key),
        model=model,
        temperature=settings.temperature,
        seed=settings.model_seed,
        max_completion_tokens=settings.max_completion_tokens,
        timeout=settings.request_timeout_s,
        max_retries=max_retries,
        # Streamed answers (the CLI's live view) carry their token usage too: the accounting
        # and the metrics read it from the last chunk.
        stream_usage=True,
        # The SDK's client classes keep its defaults (limits, redirects); ours add the 429 hook.
        http_client=openai.DefaultHttpxClient(event_hooks={"response": [_count_429_sync]}),
        http_async_client=openai.DefaultAsyncHttpxClient(event_hooks={"response": [_count_429]}),
    )
    return chat.with_cache(cache)


def message_texts(messages: Sequence[BaseMessage]) -> list[str]:
    """Plain text of messages (for scripted-model matching and logs)."""
    return [text_of(m) for m in messages]
