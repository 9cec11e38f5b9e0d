"""Token counting the way the serving model bills: its tokenizer when it has one, else an estimate.

Every prompt is packed under a token budget (`memory.packing`), so the count must be the
model's own where possible (`HttpTokenizer` for llama-server's `/tokenize`); where it is not,
a len/N estimate that errs high stands in (`CharTokenCounter`, `FallbackTokenCounter`).
"""

from __future__ import annotations

import hashlib
import logging
import math
import threading
from collections import OrderedDict
from typing import Protocol, runtime_checkable

import httpx

__all__ = [
    "CharTokenCounter",
    "FallbackTokenCounter",
    "HttpTokenizer",
    "TokenCounter",
    "TokenizerError",
]

logger = logging.getLogger(__name__)


@runtime_checkable
class TokenCounter(Protocol):
    """Counts tokens the way the serving model will."""

    def count(self, text: str) -> int:
        """Number of tokens in `text`."""
        ...


class CharTokenCounter:
    """A model-free estimate: one token per `chars_per_token` characters, rounded up."""

    def __init__(self, chars_per_token: float = 4.0) -> None:
        if chars_per_token <= 0:
            raise ValueError("chars_per_token must be positive")
        self.chars_per_token = chars_per_token

    def count(self, text: str) -> int:
        """Ceil(len / chars_per_token)."""
        return math.ceil(len(text) / self.chars_per_token)


class TokenizerError(RuntimeError):
    """The tokenizer endpoint did not answer with tokens; check the model server's URL."""


class HttpTokenizer:
    """Counts with llama-server's `/tokenize` (POST {"content": …} → {"tokens": […]}).

    Counts are cached by content hash: assembly counts the same turns again on every call.
    The cache is shared by the threads assembly runs in (it runs off the event loop), hence
    the lock; the HTTP call itself is made outside it.
    """

    def __init__(
        self,
        base_url: str,
        *,
        timeout: float = 10.0,
        client: httpx.Client | None = None,
        cache_size: int = 4096,
    ) -> None:
        self.url = base_url.rstrip("/").removesuffix("/v1") + "/tokenize"
        self._client = client or httpx.Client(timeout=timeout)
        self._owns = client is None
        self._cache: OrderedDict[str, int] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def count(self, text: str) -> int:
        """Tokens in `text` according to the server (no special tokens added)."""
        if not text:
            return 0
        key = hashlib.blake2b(text.encode(), digest_size=16).hexdigest()
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        n = self._ask(text)
        with self._lock:
            self._cache[key] = n
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return n

    def _ask(self, text: str) -> int:
        """The server's count, or TokenizerError: a wrong count would break every budget."""
        try:
            response = self._client.post(self.url, json={"content": text})
            response.raise_for_status()
            tokens = response.json()["tokens"]
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:
            raise TokenizerError(f"tokenize failed at {self.url}: {exc}") from exc
        if not isinstance(tokens, list):
            raise TokenizerError(f"tokenize at {self.url} returned no token list")
        return len(tokens)

    def close(self) -> None:
        """Close the HTTP client if this tokenizer created it."""
        if self._owns:
            self._client.close()


class FallbackTokenCounter:
    """The exact counter while it answers, an estimate for good once it fails.

    A prompt must still be built when the tokenizer endpoint is down or a tokenizer cannot
    load its vocabulary (tiktoken downloads it on first use); the estimate errs high.
    """

    def __init__(self, primary: TokenCounter, fallback: TokenCounter | None = None) -> None:
        self.primary: TokenCounter | None = primary
        self.fallback: TokenCounter = fallback or CharTokenCounter(3.0)

    def count(self, text: str) -> int:
        """Count with the primary counter, or with the fallback once the primary has failed."""
        primary = self.primary
        if primary is not None:
            try:
                return primary.count(text)
            except Exception as exc:  # any tokenizer failure means "estimate from now on"
                logger.warning("token counting falls back to an estimate: %s", exc)
                self.primary = None
        return self.fallback.count(text)
