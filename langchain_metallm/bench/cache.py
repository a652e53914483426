"""On-disk embedding cache keyed by embedder label and sha256 of the text.

Data sets are embedded once and reused across benchmark runs: each batch of new
vectors is written as one ``.npz`` shard under ``<cache_dir>/<embedder label>/``
(``identity.embedder_label``: the model's name, so two models of one class never
share vectors).
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings
from numpy.typing import NDArray
from tqdm.auto import tqdm

from langchain_metallm.core.identity import embedder_label
from langchain_metallm.core.vectors import BadEmbeddingsError

DEFAULT_CACHE_DIR = Path(".metallm_cache")


def text_key(text: str) -> str:
    """The sha256 hex digest of ``text`` (UTF-8), the cache key of one text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Embeds texts with ``embedder``, calling it only for texts never seen before."""

    def __init__(
        self,
        embedder: Embeddings,
        cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
        *,
        name: str | None = None,
        batch_size: int = 256,
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size: must be >= 1, got {batch_size}")
        self.embedder = embedder
        self.name = name or embedder_label(embedder)
        safe = re.sub(r"[^A-Za-z0-9._-]+", "_", self.name)
        self.directory = Path(cache_dir) / safe
        self.batch_size = batch_size
        self._vectors: dict[str, NDArray[np.float32]] = {}
        self._loaded = False

    def embed(
        self, texts: Sequence[str], *, progress: bool = True
    ) -> NDArray[np.float64]:
        """Embeddings of ``texts``, shape (n, dim), from the cache where possible."""
        self._load()
        keys = [text_key(t) for t in texts]
        missing: dict[str, str] = {}
        for key, text in zip(keys, texts, strict=True):
            if key not in self._vectors:
                missing.setdefault(key, text)
        if missing:
            self._embed_missing(missing, progress=progress)
        if not keys:
            return np.zeros((0, 0))
        return np.stack([self._vectors[k] for k in keys]).astype(np.float64)

    def _embed_missing(self, missing: dict[str, str], *, progress: bool) -> None:
        items = list(missing.items())
        bar = tqdm(
            total=len(items),
            desc=f"embedding ({self.name})",
            unit="text",
            disable=not progress,
        )
        with bar:
            for start in range(0, len(items), self.batch_size):
                batch = items[start : start + self.batch_size]
                vectors = np.asarray(
                    self.embedder.embed_documents([t for _, t in batch]),
                    dtype=np.float32,
                )
                if vectors.ndim != 2 or vectors.shape[0] != len(batch):
                    raise ValueError(
                        f"embedder {self.name!r}: returned shape {vectors.shape} "
                        f"for {len(batch)} texts"
                    )
                keys = [k for k, _ in batch]
                self._write_shard(keys, vectors)
                self._vectors.update(zip(keys, vectors, strict=True))
                bar.update(len(batch))

    def _write_shard(self, keys: list[str], vectors: NDArray[np.float32]) -> None:
        """Write one shard atomically, so a killed run never leaves a broken file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        digest = hashlib.sha256("".join(keys).encode()).hexdigest()[:16]
        fd, tmp = tempfile.mkstemp(dir=self.directory, suffix=".tmp")
        with os.fdopen(fd, "wb") as handle:
            np.savez(handle, keys=np.array(keys), vectors=vectors)
        os.replace(tmp, self.directory / f"shard-{digest}.npz")

    def _load(self) -> None:
        if self._loaded:
            return
        for path in sorted(self.directory.glob("shard-*.npz")):
            with np.load(path) as shard:
                keys = [str(k) for k in shard["keys"]]
                self._vectors.update(zip(keys, shard["vectors"], strict=True))
        self._loaded = True


class CachedVectors:
    """An embedder (``embed_documents`` / ``aembed_documents``, what
    ``RouterCore`` needs) that serves precomputed vectors by text: benchmarks
    embed a data set once (``EmbeddingCache``) and replay it through the core.

    ``label`` names the embedding model (``model_name``, which the core's
    namespace reads). A text it was not given raises ``BadEmbeddingsError``,
    which the core refuses loudly (any other error would be routed around as
    an embedder outage, silently changing what the benchmark measures).
    """

    def __init__(
        self, texts: Sequence[str], vectors: NDArray[np.floating], label: str
    ) -> None:
        rows = np.asarray(vectors, dtype=np.float64)
        if rows.ndim != 2 or rows.shape[0] != len(texts):
            raise ValueError(
                f"vectors: expected shape ({len(texts)}, dim), got {rows.shape}"
            )
        self.model_name = label
        self._rows = rows
        self._index = {text: i for i, text in enumerate(texts)}

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """The vectors of ``texts``."""
        unknown = [t for t in texts if t not in self._index]
        if unknown:
            raise BadEmbeddingsError(
                f"cached vectors: {len(unknown)} of {len(texts)} texts were never "
                f"embedded, e.g. {unknown[0][:80]!r}"
            )
        found: list[list[float]] = self._rows[[self._index[t] for t in texts]].tolist()
        return found

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]:
        """Async twin of ``embed_documents``."""
        return self.embed_documents(texts)
