"""Which embedder a router learned on: one label for store namespaces, saves and
the benchmark's embedding cache.

Statistics learned on one embedding model mean nothing on another, even of the
same dimension (``text-embedding-3-small`` and ``text-embedding-ada-002`` are
both 1536-dim), so the label is the model's name, not its class or size.
"""

from __future__ import annotations

_NAME_ATTRIBUTES = ("name", "model", "model_name", "model_id")


def embedder_label(embeddings: object) -> str:
    """The embedding model's name (its ``name``, ``model``, ``model_name`` or
    ``model_id``, else its class name), with ``@<dimensions>`` when it is asked
    for shortened vectors (``OpenAIEmbeddings(dimensions=...)``)."""
    label = type(embeddings).__name__
    for attr in _NAME_ATTRIBUTES:
        value = getattr(embeddings, attr, None)
        if isinstance(value, str) and value:
            label = value
            break
    dimensions = getattr(embeddings, "dimensions", None)
    if isinstance(dimensions, int) and not isinstance(dimensions, bool):
        label = f"{label}@{dimensions}"
    return label


def declared_dimension(embeddings: object) -> int | None:
    """The vector length ``embeddings`` declares (``dimension`` or
    ``dimensions``), if any."""
    for attr in ("dimension", "dimensions"):
        value = getattr(embeddings, attr, None)
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    return None
