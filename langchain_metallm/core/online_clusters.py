"""Online clusters: automatic tasks a never-fitted router learns from its live prompts.

A router with no recorded outcomes has nothing to cluster up front, and per-child
ridge on the bare embedding learns too slowly from live feedback: it locks onto
early winners (issue 16). Instead the router clusters the live prompts themselves
as they arrive, coarse to fine and without scores: 8 clusters
(``auto_tasks.QueryClusters``) once 200 prompts were seen, 32 more once 1,000
were. A context is ``[one-hot cluster of each stage, 1]``, a stage's slots zeros
until its clusters exist, so the context dimension never changes and nothing
learned is remapped: each child learns its mean score on the bias, then a
correction per coarse and per fine cluster, shrunk toward it by the ridge.
Prompts are kept (embedding and ``text_style`` numbers, never the text) only
until the last stage is fitted.

Clusters are learned per process: workers sharing a store would each cluster the
prompts they saw and disagree on what a slot means, so the engine does not use
online clusters with a shared store.
"""

from __future__ import annotations

import hashlib
import threading
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.core.auto_tasks import STYLE_DIM, QueryClusters, text_style

FloatArray = NDArray[np.float64]

STAGES: tuple[tuple[int, int], ...] = ((8, 200), (32, 1_000))
"""(clusters, live prompts seen before they are fitted) per stage, coarse first."""

SEED = 0
"""k-means seed, so one stream of prompts always gives the same clusters."""

ARRAY_NAMES = (
    "online_stages",
    "online_fitted",
    "online_centroids",
    "online_style_mean",
    "online_style_scale",
    "online_seen",
)
"""The arrays of a saved ``OnlineClusters`` (``to_arrays``); the first two are
integers."""


class OnlineClusters:
    """Coarse-to-fine clusters fitted on the first live prompts, read as one-hot
    context slots (zeros until a stage is fitted) plus a bias.

    ``observe`` feeds prompts as the router sees them; ``contexts`` reads them
    without learning. Thread-safe.
    """

    def __init__(
        self,
        embedding_dim: int,
        stages: Sequence[tuple[int, int]] = STAGES,
        *,
        fitted: Sequence[QueryClusters | None] | None = None,
        seen: ArrayLike | None = None,
    ) -> None:
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int):
            raise TypeError(f"embedding_dim: expected an int, got {embedding_dim!r}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim: must be >= 1, got {embedding_dim}")
        self.stages = _check_stages(stages)
        self.embedding_dim = embedding_dim
        self._fitted: list[QueryClusters | None] = (
            [None] * len(self.stages) if fitted is None else list(fitted)
        )
        width = embedding_dim + STYLE_DIM
        points = np.zeros((0, width)) if seen is None else np.asarray(seen, float)
        self._check_state(points)
        self._seen: list[FloatArray] = list(points)
        self._lock = threading.Lock()

    @property
    def dim(self) -> int:
        """Context dimension: every stage's clusters plus the bias."""
        return sum(k for k, _ in self.stages) + 1

    @property
    def tasks(self) -> tuple[str, ...]:
        """Names of the context slots, ``online-<stage>-<cluster>``."""
        return tuple(
            f"online-{s}-{i:02d}"
            for s, (k, _) in enumerate(self.stages)
            for i in range(k)
        )

    @property
    def fitted(self) -> tuple[QueryClusters | None, ...]:
        """Each stage's clusters, None until enough prompts were seen."""
        with self._lock:
            return tuple(self._fitted)

    @property
    def seen(self) -> FloatArray:
        """Prompts kept for stages still to fit: rows ``[embedding, text_style]``."""
        with self._lock:
            return np.array(self._seen, dtype=np.float64).reshape(
                len(self._seen), self.embedding_dim + STYLE_DIM
            )

    def observe(self, vectors: ArrayLike, texts: Sequence[str]) -> None:
        """Count live prompts ``texts`` embedded as ``vectors``; fit each stage
        whose prompt count is reached (on the prompts seen so far)."""
        emb = self._check_vectors(vectors, texts)
        with self._lock:
            if all(stage is not None for stage in self._fitted):
                return
            self._seen.extend(np.hstack([emb, text_style(texts)]))
            for s, (k, after) in enumerate(self.stages):
                if self._fitted[s] is None and len(self._seen) >= after:
                    points = np.array(self._seen)
                    self._fitted[s] = QueryClusters.fit_styles(
                        points[:, : self.embedding_dim],
                        points[:, self.embedding_dim :],
                        clusters=k,
                        seed=SEED + s,
                    )
            if all(stage is not None for stage in self._fitted):
                self._seen = []

    def contexts(self, vectors: ArrayLike, texts: Sequence[str]) -> FloatArray:
        """Context rows ``[one-hot per stage (zeros if not fitted), 1]``."""
        emb = self._check_vectors(vectors, texts)
        fitted = self.fitted
        style = text_style(texts) if any(f is not None for f in fitted) else None
        rows = np.zeros((len(texts), self.dim))
        start = 0
        for (k, _), clusters in zip(self.stages, fitted, strict=True):
            if clusters is not None and style is not None:
                found = clusters.assign_styles(emb, style)
                rows[np.arange(len(texts)), start + found] = 1.0
            start += k
        rows[:, -1] = 1.0
        return rows

    def task_of(self, context: FloatArray) -> str | None:
        """The finest fitted cluster a context encodes, or None before any."""
        names, start, found = self.tasks, 0, None
        for k, _ in self.stages:
            block = context[start : start + k]
            if block.any():
                found = names[start + int(np.argmax(block))]
            start += k
        return found

    def fingerprint(self) -> str:
        """A short hash of the stages and embedding dimension (the clusters
        themselves grow per process, so they are not shared)."""
        digest = hashlib.sha256(b"online-clusters")
        digest.update(repr((self.stages, self.embedding_dim)).encode("utf-8"))
        return digest.hexdigest()[:16]

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """Its state as the named arrays of a save (``from_arrays`` reads them)."""
        fitted, seen = self.fitted, self.seen
        width = self.embedding_dim + STYLE_DIM
        centroids = np.zeros((self.dim - 1, width))
        mean = np.zeros((len(self.stages), STYLE_DIM))
        scale = np.ones((len(self.stages), STYLE_DIM))
        flags = np.zeros(len(self.stages), dtype=np.int64)
        start = 0
        for s, ((k, _), clusters) in enumerate(zip(self.stages, fitted, strict=True)):
            if clusters is not None:
                centroids[start : start + k] = clusters.centroids
                mean[s], scale[s], flags[s] = (
                    clusters.style_mean,
                    clusters.style_scale,
                    1,
                )
            start += k
        values = (np.array(self.stages, dtype=np.int64), flags, centroids, mean, scale)
        return {**dict(zip(ARRAY_NAMES, values, strict=False)), "online_seen": seen}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]]) -> OnlineClusters:
        """The online clusters ``to_arrays`` saved; ``ValueError`` if the arrays
        are missing or do not fit together."""
        if sorted(arrays) != sorted(ARRAY_NAMES):
            raise ValueError(f"online clusters: expected arrays {list(ARRAY_NAMES)}")
        table, flags, centroids, mean, scale, seen = (arrays[k] for k in ARRAY_NAMES)
        if table.ndim != 2 or table.shape[1] != 2 or flags.shape != (len(table),):
            raise ValueError(
                f"online clusters: stages {table.shape} and flags {flags.shape}"
            )
        stages = [(int(k), int(n)) for k, n in table]
        if (
            centroids.ndim != 2
            or centroids.shape[1] <= STYLE_DIM
            or centroids.shape[0] != sum(k for k, _ in stages)
        ):
            raise ValueError(f"online clusters: centroids of shape {centroids.shape}")
        if mean.shape != scale.shape or mean.shape != (len(stages), STYLE_DIM):
            raise ValueError(f"online clusters: style scaling of shape {mean.shape}")
        fitted: list[QueryClusters | None] = []
        start = 0
        for s, (k, _) in enumerate(stages):
            block = centroids[start : start + k]
            fitted.append(QueryClusters(block, mean[s], scale[s]) if flags[s] else None)
            start += k
        dim = int(centroids.shape[1]) - STYLE_DIM
        return cls(dim, stages, fitted=fitted, seen=seen)

    def _check_vectors(self, vectors: ArrayLike, texts: Sequence[str]) -> FloatArray:
        emb = np.asarray(vectors, dtype=np.float64)
        if emb.shape != (len(texts), self.embedding_dim):
            raise ValueError(
                f"embeddings: online clusters read {len(texts)} vectors of "
                f"dimension {self.embedding_dim}, got shape {emb.shape}"
            )
        if not np.all(np.isfinite(emb)):
            raise ValueError("embeddings: contain NaN or infinity")
        return emb

    def _check_state(self, seen: FloatArray) -> None:
        """Refuse fitted stages or kept prompts that do not fit the stages."""
        if len(self._fitted) != len(self.stages):
            raise ValueError(
                f"online clusters: {len(self._fitted)} fitted stages for "
                f"{len(self.stages)} stages"
            )
        for (k, _), clusters in zip(self.stages, self._fitted, strict=True):
            if clusters is not None and (
                clusters.centroids.shape[0] != k
                or clusters.embedding_dim != self.embedding_dim
            ):
                raise ValueError(
                    f"online clusters: a stage of {k} clusters on dimension "
                    f"{self.embedding_dim} got centroids {clusters.centroids.shape}"
                )
        width = self.embedding_dim + STYLE_DIM
        if seen.ndim != 2 or seen.shape[1] != width or not np.all(np.isfinite(seen)):
            raise ValueError(
                f"online clusters: kept prompts must be finite rows of {width} "
                f"numbers, got shape {seen.shape}"
            )


def _check_stages(stages: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``stages`` as (clusters >= 2, prompts >= clusters) pairs, prompts rising."""
    checked = tuple((int(k), int(n)) for k, n in stages)
    if not checked:
        raise ValueError("stages: at least one (clusters, prompts) stage is needed")
    for (k, n), raw in zip(checked, stages, strict=True):
        if tuple(raw) != (k, n) or k < 2 or n < k:
            raise ValueError(
                f"stages: each needs clusters >= 2 and prompts >= clusters, got {raw}"
            )
    counts = [n for _, n in checked]
    if counts != sorted(counts):
        raise ValueError(f"stages: prompt counts must not decrease, got {counts}")
    return checked
