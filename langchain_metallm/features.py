"""Turn query embeddings into the context vectors the policy learns on."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray


def query_features(vectors: ArrayLike, texts: Sequence[str]) -> NDArray[np.float64]:
    """Context rows for the policy: each embedding with a constant bias feature.

    The bias lets every arm learn its mean reward independently of the embedding.
    """
    emb = np.asarray(vectors, dtype=np.float64)
    if emb.ndim != 2 or emb.shape[0] != len(texts):
        raise ValueError(
            f"embeddings: expected {len(texts)} vectors, got shape {emb.shape}"
        )
    return np.hstack([emb, np.ones((emb.shape[0], 1))])


def feature_dim(embedding_dim: int) -> int:
    """Context length for embeddings of ``embedding_dim``."""
    return embedding_dim + 1
