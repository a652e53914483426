"""Query vectors: the embedder behind a bounded cache keyed by a hash of the text.

The cache holds vectors, never text (its keys are sha256 digests). Vectors the
router cannot use (wrong count or dimension, NaN) raise ``BadEmbeddingsError``:
that is a misconfiguration, refused loudly rather than routed around. Any other
embedder failure is an outage, which the core routes around (``RouterCore``).
"""

from __future__ import annotations

import hashlib
import threading
from collections import OrderedDict
from collections.abc import Sequence
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]


class Embedder(Protocol):
    """What the core needs of an embedder (any LangChain ``Embeddings`` is one)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]: ...


class BadEmbeddingsError(ValueError):
    """The embedder answered, but with vectors the router cannot use (wrong
    count or dimension, NaN): a misconfiguration, refused rather than routed
    around."""


class VectorCache:
    """Embeddings of query texts, the most recent ``size`` kept; thread-safe."""

    def __init__(self, embeddings: Embedder, size: int) -> None:
        self.embeddings = embeddings
        self.size = size
        self._vectors: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.Lock()

    def vectors(self, texts: Sequence[str], dim: int | None) -> FloatArray:
        """Embeddings of ``texts`` (n, dim), the uncached ones in one call;
        ``dim`` (if known) is the dimension they must have."""
        keys = [text_key(t) for t in texts]
        found, missing = self._lookup(keys, texts)
        if missing:
            raw = self.embeddings.embed_documents(list(missing.values()))
            found.update(self._remember(missing, raw, dim))
        return np.stack([found[k] for k in keys])

    async def avectors(self, texts: Sequence[str], dim: int | None) -> FloatArray:
        """Async twin of ``vectors``."""
        keys = [text_key(t) for t in texts]
        found, missing = self._lookup(keys, texts)
        if missing:
            raw = await self.embeddings.aembed_documents(list(missing.values()))
            found.update(self._remember(missing, raw, dim))
        return np.stack([found[k] for k in keys])

    def _lookup(
        self, keys: list[str], texts: Sequence[str]
    ) -> tuple[dict[str, FloatArray], dict[str, str]]:
        """Cached embeddings among ``texts`` by key, and the distinct uncached
        texts by key."""
        with self._lock:
            found = {k: self._vectors[k] for k in keys if k in self._vectors}
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        return found, missing

    def _remember(
        self, missing: dict[str, str], raw: list[list[float]], dim: int | None
    ) -> dict[str, FloatArray]:
        """Check fresh embeddings and cache them (oldest dropped)."""
        fresh = dict(zip(missing, checked_vectors(raw, len(missing), dim), strict=True))
        with self._lock:
            self._vectors.update(fresh)
            while len(self._vectors) > self.size:
                self._vectors.popitem(last=False)
        return fresh


def checked_vectors(
    raw: list[list[float]], count: int, dim: int | None
) -> list[FloatArray]:
    """``raw`` as arrays, refusing a wrong count, dimension or NaN."""
    if len(raw) != count:
        raise BadEmbeddingsError(
            f"embeddings: returned {len(raw)} vectors for {count} texts"
        )
    vectors = [np.asarray(v, dtype=np.float64) for v in raw]
    expected = vectors[0].shape if dim is None else (dim,)
    for vector in vectors:
        if vector.ndim != 1 or vector.shape != expected:
            raise BadEmbeddingsError(
                f"embeddings: returned a vector of shape {vector.shape}, "
                f"but this router routes on dimension {expected[0]}"
            )
        if not np.all(np.isfinite(vector)):
            raise BadEmbeddingsError("embeddings: returned NaN or infinity")
    return vectors


def text_key(text: str) -> str:
    """Cache key of a query text: its sha256, so the cache holds no raw text.
    A lone surrogate (``'\\ud800'``, valid in a Python str) is hashed as is."""
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()
