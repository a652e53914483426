"""A small deterministic embedder for integration tests (no model download).

Each word is hashed into one of ``dim`` buckets with a signed count, and the vector
is L2-normalised: similar questions get similar vectors, like a real embedder, at
no cost. Only ``test_local_embeddings`` uses the real MiniLM.
"""

from __future__ import annotations

import hashlib
import math
import re

from langchain_core.embeddings import Embeddings

_WORD = re.compile(r"\w+")


class HashingEmbeddings(Embeddings):
    """Signed hashed bag of words, L2-normalised; records every call."""

    def __init__(self, dim: int = 32) -> None:
        self.dim = dim
        self.calls: list[list[str]] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(text) for text in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _vector(self, text: str) -> list[float]:
        vector = [0.0] * self.dim
        for word in _WORD.findall(text.lower()):
            digest = hashlib.sha256(word.encode()).digest()
            sign = 1.0 if digest[1] % 2 else -1.0
            vector[digest[0] % self.dim] += sign
        norm = math.sqrt(sum(v * v for v in vector)) or 1.0
        return [v / norm for v in vector]
