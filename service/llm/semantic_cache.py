"""An optional semantic layer on the response cache: a near-identical request, same instructions.

Off by default (`STRATEGOS_SEMANTIC_CACHE`). When the exact lookup misses, a greedy call may
still be answered with the stored answer of an earlier call that had exactly the same model,
sampling parameters and conversation up to the last user message (the system prompt, earlier
turns), the same literals in that message (code, numbers, quotes, operators: `literals`), and
whose last user message embeds within `threshold` cosine of this one's. All but the prose of
the last message is part of the partition key, so only a rewording of the request's prose can
match, never a different role, schema, conversation, signature or example.

Why the literals must match, and why it is off: code is unforgiving, and embeddings are not.
With e5-small, "add(a, b) that returns the sum of a and b" against "add(a, b, c) … of a, b and
c" scores 0.983 and "add(2, 3) == 5" against "== 6" 0.987 — above any threshold that still
accepts "which returns" for "that returns" (0.999) or "Please write … returning" (0.996). A
cosine alone would serve wrong answers; the literal match refuses them outright, and the
threshold (0.98) only judges the prose. Requests longer than the embedder reads (512 tokens for
e5) are never matched semantically: their tails would be invisible.

The embedder is the process's bundled one (`memory.embeddings`, e5-small on CPU, ~35 ms a
query). Entries live in one Redis hash per partition (at most `MAX_ENTRIES`), next to the exact
cache and with its TTL; lookups compare against all entries of the partition.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
from collections.abc import Callable
from typing import Any

from langchain_core.caches import RETURN_VAL_TYPE
from langchain_core.load import dumps
from langchain_core.messages import HumanMessage
from langchain_core.outputs import Generation
from redis import Redis
from redis.exceptions import RedisError

from memory.embeddings import Embedder, cosine
from service.llm.cache import (
    GreedyCache,
    call_params,
    is_deterministic,
    load_generations,
    load_messages,
)

log = logging.getLogger(__name__)
MAX_ENTRIES = 256
"""Entries per partition; more are not stored (a lookup compares against every one)."""
MAX_REQUEST_TOKENS = 500
"""Longer requests are exact-only: e5 reads 512 tokens and would not see the rest."""


_PROSE = re.compile(r"^[A-Za-z,.;:!?-]*$")


def literals(text: str) -> list[str]:
    """The request's words that are not plain prose: code, numbers, quotes, operators.

    "add(a, b)", "== 5" and "'Hello'" are literals; "which", "returning" are not. Trailing
    punctuation is dropped, so "b)," and "b)" are one literal.
    """
    words = (word.rstrip(",.;:!?") for word in text.split())
    return [word for word in words if word and not _PROSE.match(word)]


def split_request(prompt: str) -> tuple[str, str] | None:
    """(what must match exactly, the last request's text), or None when it does not end so.

    What must match: every message before the last user message, and that message's literals.
    """
    messages = load_messages(prompt)
    if not messages or not isinstance(messages[-1], HumanMessage):
        return None
    last = messages[-1].content
    if not isinstance(last, str):
        return None
    return dumps(messages[:-1]) + "\0" + json.dumps(literals(last)), last


class SemanticCache(GreedyCache):
    """The exact cache, then a strict nearest-neighbour match of the last request."""

    def __init__(
        self,
        redis: Redis,
        *,
        prefix: str,
        ttl_s: int,
        embedder: Callable[[], Embedder],
        threshold: float,
        scope: Callable[[], str] = lambda: "-",
    ) -> None:
        super().__init__(redis, prefix=prefix, ttl_s=ttl_s, scope=scope)
        self._embedder = embedder
        self._threshold = threshold

    def _partition(self, head: str, llm_string: str) -> str:
        digest = hashlib.sha256(head.encode())
        digest.update(b"\0")
        digest.update(llm_string.encode())
        return f"{self._prefix}sem:{self._scope()}:{digest.hexdigest()}"

    def _vector(self, text: str) -> list[float] | None:
        """The request's embedding, or None when it is too long to embed whole."""
        embedder = self._embedder()
        count = getattr(embedder, "token_count", None)
        tokens = int(count(text)) if callable(count) else len(text) // 3
        if tokens > MAX_REQUEST_TOKENS:
            return None
        return embedder.embed_query([text])[0]

    def _find(self, prompt: str, llm_string: str) -> tuple[list[Generation] | None, str]:
        exact, kind = super()._find(prompt, llm_string)
        if exact is not None:
            return exact, kind
        split = split_request(prompt)
        if split is None:
            return None, kind
        entries = self._redis.hgetall(self._partition(split[0], llm_string))
        vector = self._vector(split[1]) if entries else None
        if vector is None:
            return None, kind
        best, answer = 0.0, None
        for raw in entries.values():
            entry: dict[str, Any] = json.loads(raw)
            similarity = cosine(vector, entry["v"])
            if similarity > best:
                best, answer = similarity, entry["g"]
        if answer is None or best < self._threshold:
            return None, kind
        return load_generations(answer), "semantic"

    def update(self, prompt: str, llm_string: str, return_val: RETURN_VAL_TYPE) -> None:
        """Store the exact entry, and the request's embedding in its partition."""
        super().update(prompt, llm_string, return_val)
        if not is_deterministic(call_params(llm_string)):
            return
        split = split_request(prompt)
        vector = self._vector(split[1]) if split else None
        if split is None or vector is None:
            return
        key = self._partition(split[0], llm_string)
        entry = json.dumps({"v": vector, "g": dumps(list(return_val))})
        field = hashlib.sha256(split[1].encode()).hexdigest()
        try:
            if self._redis.hlen(key) < MAX_ENTRIES:
                self._redis.hset(key, field, entry)
                self._redis.expire(key, self._ttl_s)
        except RedisError:
            log.warning("could not store an answer in the semantic cache", exc_info=True)
