"""An exact cache of greedy model answers in Redis, behind LangChain's `BaseCache` interface.

LangChain looks a chat model's cache up with the normalized messages (`dumps` of the messages,
ids cleared) and an `llm_string`; for `ChatOpenAI` that string is the serialized constructor
(model name, base URL, temperature, seed, completion limit) followed by every per-call parameter
(`bind(temperature=…, seed=…)`, `n`, `response_format`). So a different model, endpoint,
temperature or seed is a different key, and a cached answer cannot hide a model change.

Only a deterministic call is looked up or stored: the effective temperature is 0 and at most one
choice is asked for. Anything else — a sampled candidate, `n > 1`, a temperature left to the
server's default, a parameter this module cannot read — bypasses the cache, so sampling still
samples. A hit is returned with zero token usage (it cost nothing) and marked in
`response_metadata["strategos_cache_hit"]`; hits and misses are counted by model.

Why not `langchain_redis.RedisCache`: it stores entries with RedisJSON (`JSON.SET`), and the
semantic cache needs RediSearch; a plain Redis (7.x without modules, what the platform runs on)
has neither. This is the same key scheme over plain strings with a TTL. Keys are scoped by
tenant (`{prefix}:llmcache:{tenant}:…`): one tenant's answer is never served to another, and
timing cannot tell a tenant what another asked. A Redis error is a miss, never a failed call.
"""

from __future__ import annotations

import ast
import hashlib
import json
import logging
import warnings
from collections.abc import AsyncIterator, Callable, Sequence
from typing import Any

from langchain_core._api import LangChainBetaWarning
from langchain_core.caches import RETURN_VAL_TYPE, BaseCache
from langchain_core.callbacks import AsyncCallbackManagerForLLMRun
from langchain_core.load import dumps, loads
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage, message_chunk_to_message
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult, Generation
from langchain_openai import ChatOpenAI
from redis import Redis
from redis.exceptions import RedisError

from service.settings import Settings
from tools.telemetry import MODEL_CACHE_HITS, MODEL_CACHE_MISSES

log = logging.getLogger(__name__)
HIT = "strategos_cache_hit"
"""`response_metadata` key marking an answer served from the cache."""


def call_params(llm_string: str) -> dict[str, Any] | None:
    """The model's effective parameters read from LangChain's `llm_string`, None if unreadable.

    Serializable models give `<json constructor>---<repr of sorted call params>`; the others
    only the repr. Call parameters override the constructor's, as they do in the request.
    """
    params: dict[str, Any] = {}
    rest = llm_string
    if llm_string.startswith("{"):
        try:
            constructor, end = json.JSONDecoder().raw_decode(llm_string)
        except ValueError:
            return None
        if not llm_string.startswith("---", end) or not isinstance(constructor, dict):
            return None
        params.update(constructor.get("kwargs") or {})
        rest = llm_string[end + 3 :]
    try:
        params.update(dict(ast.literal_eval(rest)))
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        return None
    return params


def is_deterministic(params: dict[str, Any] | None) -> bool:
    """Greedy and one choice: the only calls whose answer may be reused."""
    if params is None:
        return False
    temperature = params.get("temperature")
    n = params.get("n")
    greedy = isinstance(temperature, (int, float)) and float(temperature) == 0.0
    return greedy and (n is None or n == 1)


def _model_label(params: dict[str, Any] | None) -> str:
    if not params:
        return "-"
    return str(params.get("model_name") or params.get("model") or params.get("_type") or "-")


def _served_from_cache(generation: Generation) -> Generation:
    """A cached generation as a hit: no tokens (it cost nothing), marked as cached."""
    if not isinstance(generation, ChatGeneration) or not isinstance(generation.message, AIMessage):
        return generation
    message = generation.message
    usage = {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0}
    marked = message.model_copy(
        update={
            "usage_metadata": usage,
            "response_metadata": {**message.response_metadata, HIT: True},
        }
    )
    return ChatGeneration(message=marked, generation_info=generation.generation_info)


def _loads(raw: str | bytes) -> Any:
    with warnings.catch_warnings():  # `loads` is marked beta; LangChain's caches use it
        warnings.simplefilter("ignore", LangChainBetaWarning)
        return loads(raw if isinstance(raw, str) else raw.decode(), allowed_objects="core")


def load_generations(raw: str | bytes) -> list[Generation]:
    """Generations stored with `dumps`."""
    loaded = _loads(raw)
    return [g for g in loaded if isinstance(g, Generation)] if isinstance(loaded, list) else []


def load_messages(prompt: str) -> list[BaseMessage]:
    """The messages of LangChain's cache prompt (`dumps` of the call's messages)."""
    loaded = _loads(prompt)
    return [m for m in loaded if isinstance(m, BaseMessage)] if isinstance(loaded, list) else []


class GreedyCache(BaseCache):
    """The exact response cache; `scope()` names the tenant the running call belongs to."""

    def __init__(
        self, redis: Redis, *, prefix: str, ttl_s: int, scope: Callable[[], str] = lambda: "-"
    ) -> None:
        self._redis = redis
        self._prefix = f"{prefix.rstrip(':')}:llmcache:"
        self._ttl_s = ttl_s
        self._scope = scope

    def _key(self, prompt: str, llm_string: str) -> str:
        digest = hashlib.sha256(prompt.encode())
        digest.update(b"\0")
        digest.update(llm_string.encode())
        return f"{self._prefix}{self._scope()}:{digest.hexdigest()}"

    def lookup(self, prompt: str, llm_string: str) -> RETURN_VAL_TYPE | None:
        """The cached answer of a deterministic call, else None (and a sampled call: None)."""
        params = call_params(llm_string)
        if not is_deterministic(params):
            return None
        label = _model_label(params)
        try:
            found, kind = self._find(prompt, llm_string)
        except RedisError:
            log.warning("response cache unavailable; asking the model", exc_info=True)
            found, kind = None, "exact"
        if found is None:
            MODEL_CACHE_MISSES.labels(model=label).inc()
            return None
        MODEL_CACHE_HITS.labels(model=label, kind=kind).inc()
        return [_served_from_cache(g) for g in found]

    def _find(self, prompt: str, llm_string: str) -> tuple[list[Generation] | None, str]:
        """The stored answer of exactly this call, and how it was found ("exact")."""
        raw = self._redis.get(self._key(prompt, llm_string))
        return (None if raw is None else load_generations(raw)), "exact"

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Keep the answer of a deterministic call for `ttl_s` seconds."""
        if not is_deterministic(call_params(llm_string)):
            return
        try:
            self._redis.set(self._key(prompt, llm_string), dumps(list(return_val)), ex=self._ttl_s)
        except RedisError:
            log.warning("could not store an answer in the response cache", exc_info=True)

    def clear(self, **kwargs: Any) -> None:
        """Drop every cached answer under this cache's prefix."""
        keys: Sequence[Any] = list(self._redis.scan_iter(match=f"{self._prefix}*", count=500))
        if keys:
            self._redis.delete(*keys)


class CachedChatOpenAI(ChatOpenAI):
    """`ChatOpenAI` that looks its greedy calls up in the response cache inside `_agenerate`.

    LangChain consults a model's `cache=` in `agenerate`, before `_agenerate`; the budget guard
    (`service.llm.guarded`) calls the inner model's `_agenerate` directly, which would skip it.
    Looking up here, with LangChain's own key (`_get_llm_string` and the id-less messages),
    serves every path: a plain call, a budgeted one (a hit settles 0 tokens) or a routed one;
    `_astream` does the same for streamed calls (the CLI streams), storing the merged answer
    under the same key, so a streamed and a plain call share entries. The cache is set after
    construction (`with_cache`), so it is not part of the serialized model and of the key.
    """

    response_cache: BaseCache | None = None

    def with_cache(self, cache: BaseCache | None) -> CachedChatOpenAI:
        """Use `cache` from now on (None: no cache); returns the model."""
        self.response_cache = cache
        return self

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        cache = self.response_cache
        if cache is None:
            return await super()._agenerate(messages, stop, run_manager, **kwargs)
        llm_string = self._get_llm_string(stop=stop, **kwargs)
        prompt = dumps([m.model_copy(update={"id": None}) for m in messages])
        cached = await cache.alookup(prompt, llm_string)
        if cached is not None:
            return ChatResult(generations=[g for g in cached if isinstance(g, ChatGeneration)])
        result = await super()._agenerate(messages, stop, run_manager, **kwargs)
        await cache.aupdate(prompt, llm_string, result.generations)
        return result

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """A streamed call (the CLI's live view) under the same key: a hit is one chunk."""
        cache = self.response_cache
        stream = super()._astream(messages, stop, run_manager, **kwargs)
        if cache is None:
            async for chunk in stream:
                yield chunk
            return
        llm_string = self._get_llm_string(stop=stop, **kwargs)
        prompt = dumps([m.model_copy(update={"id": None}) for m in messages])
        cached = await cache.alookup(prompt, llm_string)
        if cached:
            chunk = _as_chunk(cached[0])
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk
            return
        merged: ChatGenerationChunk | None = None
        async for chunk in stream:
            merged = chunk if merged is None else merged + chunk
            yield chunk
        if merged is not None:
            answer = message_chunk_to_message(merged.message)
            await cache.aupdate(prompt, llm_string, [ChatGeneration(message=answer)])


def _as_chunk(generation: Generation) -> ChatGenerationChunk:
    """A cached answer as the one chunk of a stream."""
    message = generation.message if isinstance(generation, ChatGeneration) else None
    if not isinstance(message, AIMessage):
        return ChatGenerationChunk(message=AIMessageChunk(content=generation.text))
    calls = [
        tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
        for i, c in enumerate(message.tool_calls)
    ]
    return ChatGenerationChunk(
        message=AIMessageChunk(
            content=message.content,
            additional_kwargs=message.additional_kwargs,
            response_metadata=message.response_metadata,
            usage_metadata=message.usage_metadata,
            id=message.id,
            tool_call_chunks=calls,
        )
    )


def _tenant() -> str:
    from service.deps import current_caller

    return current_caller()[1]


def response_cache(settings: Settings) -> GreedyCache | None:
    """The configured response cache (`STRATEGOS_RESPONSE_CACHE`), or None when it is off.

    With `STRATEGOS_SEMANTIC_CACHE` too, it has its semantic layer (`service.llm.semantic_cache`).
    It lives in the deployment's Redis (`strategos serve`'s default one when unset), under the
    deployment's key prefix.
    """
    if not settings.response_cache:
        return None
    redis = Redis.from_url(settings.serving_redis_url())
    ttl, prefix = settings.response_cache_ttl_s, settings.redis_prefix
    if not settings.semantic_cache:
        return GreedyCache(redis, prefix=prefix, ttl_s=ttl, scope=_tenant)
    from service.deps import default_embedder
    from service.llm.semantic_cache import SemanticCache

    return SemanticCache(
        redis,
        prefix=prefix,
        ttl_s=ttl,
        embedder=default_embedder,
        threshold=settings.semantic_cache_threshold,
        scope=_tenant,
    )
