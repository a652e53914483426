"""Automatic tasks: k-means clusters of queries stand in for task labels.

Most recorded outcomes carry no task column, and a live router has none at all.
Without labels, ``router.fit`` clusters the training queries and routes on the
cluster as it would on a task: each child's estimate then pools a cluster's
queries, far less noisy than a per-query regression on the raw embedding
(BENCH_RESULTS.md, "Automatic tasks"). A query is clustered on its embedding
next to a few standardised text-style numbers (length, lines, digits, code, maths,
options...): prompts of one kind share a format that a topic embedding blurs, and
with them k-means recovers the data sets' tasks far better (purity 0.84 vs 0.65 on
llmrouter9 with 32 clusters).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]

MIN_QUERIES = 300
"""Fewer training queries keep the bare embedding."""

MIN_CLUSTERS = 8
"""Clusters of a small fit: on 300-1,200 queries, 8 route better than one per
``QUERIES_PER_CLUSTER`` (2-7) on held-out data (BENCH_RESULTS.md)."""

QUERIES_PER_CLUSTER = 150
"""One cluster per this many training queries (about 30 for 4,500 queries)."""

MAX_CLUSTERS = 64
"""More clusters only split kinds of queries into look-alike halves."""

STYLE_DIM = 10
"""Numbers per text from ``text_style``."""
STYLE_WEIGHT = 0.2
"""Weight of the standardised style numbers next to the unit-norm embedding."""

KMEANS_ITERATIONS = 50
"""Lloyd iterations at most; they usually converge far sooner."""

_CODE = re.compile(r"\bdef |\bimport |```|return ")
_OPTIONS = re.compile(r"(^|\n)\s*\(?[A-D][).:]")


def cluster_count(n_queries: int) -> int:
    """Clusters that ``n_queries`` training queries support: 0 below
    ``MIN_QUERIES``, else one per ``QUERIES_PER_CLUSTER``, at least
    ``MIN_CLUSTERS`` and at most ``MAX_CLUSTERS``."""
    if n_queries < MIN_QUERIES:
        return 0
    return min(MAX_CLUSTERS, max(MIN_CLUSTERS, n_queries // QUERIES_PER_CLUSTER))


def text_style(texts: Sequence[str]) -> FloatArray:
    """Ten numbers per text that tell formats apart: log length, log line count,
    digit share, lower-case start, ends with '?', maths ($ or backslash), code,
    lettered options, comma density and upper-case share."""
    rows = []
    for text in texts:
        n = max(len(text), 1)
        rows.append(
            [
                np.log1p(len(text)),
                np.log1p(text.count("\n")),
                sum(ch.isdigit() for ch in text) / n,
                float(text[:1].islower()),
                float(text.rstrip().endswith("?")),
                float("$" in text or "\\" in text),
                float(bool(_CODE.search(text))),
                float(bool(_OPTIONS.search(text))),
                10.0 * text.count(",") / n,
                sum(ch.isupper() for ch in text) / n,
            ]
        )
    return np.array(rows, dtype=np.float64).reshape(len(rows), STYLE_DIM)


@dataclass(frozen=True, eq=False)
class QueryClusters:
    """K-means clusters of ``[embedding, STYLE_WEIGHT * standardised text_style]``,
    used as tasks named ``cluster-00``, ``cluster-01``, ...

    ``centroids`` has shape (clusters, embedding dim + 10); ``style_mean`` and
    ``style_scale`` standardise ``text_style`` as on the training queries.
    """

    centroids: FloatArray
    style_mean: FloatArray
    style_scale: FloatArray

    def __post_init__(self) -> None:
        c, m, s = self.centroids, self.style_mean, self.style_scale
        style_dim = len(text_style([""])[0])
        if c.ndim != 2 or c.shape[0] < 2 or c.shape[1] <= style_dim:
            raise ValueError(
                f"cluster centroids: expected shape (>= 2, dim + {style_dim}), "
                f"got {c.shape}"
            )
        if m.shape != (style_dim,) or s.shape != (style_dim,):
            raise ValueError(
                f"cluster style mean and scale: expected shape ({style_dim},), "
                f"got {m.shape} and {s.shape}"
            )
        if not all(np.all(np.isfinite(a)) for a in (c, m, s)) or np.any(s <= 0):
            raise ValueError("clusters: NaN, infinity or a scale <= 0")

    @classmethod
    def fit(
        cls,
        vectors: ArrayLike,
        texts: Sequence[str],
        *,
        clusters: int | None = None,
        seed: int = 0,
    ) -> QueryClusters:
        """Cluster the queries ``texts`` embedded as ``vectors`` (k-means++ seeds,
        seeded); ``clusters`` defaults to ``cluster_count(len(texts))``."""
        return cls.fit_styles(vectors, text_style(texts), clusters=clusters, seed=seed)

    @classmethod
    def fit_styles(
        cls,
        vectors: ArrayLike,
        styles: ArrayLike,
        *,
        clusters: int | None = None,
        seed: int = 0,
    ) -> QueryClusters:
        """``fit`` on queries given by their ``text_style`` rows instead of their
        texts (so a caller can keep the numbers without the texts)."""
        style = np.asarray(styles, dtype=np.float64)
        emb = np.asarray(vectors, dtype=np.float64)
        n = style.shape[0]
        if emb.ndim != 2 or emb.shape[0] != n:
            raise ValueError(f"embeddings: expected {n} vectors, got shape {emb.shape}")
        if not np.all(np.isfinite(emb)):
            raise ValueError("embeddings: contain NaN or infinity")
        k = cluster_count(n) if clusters is None else clusters
        if not 2 <= k <= n:
            raise ValueError(
                f"clusters: need 2 to {n} for {n} queries, got {k} "
                f"(automatic tasks need at least {MIN_QUERIES} queries)"
            )
        mean, scale = style.mean(axis=0), style.std(axis=0)
        scale = np.where(scale > 0, scale, 1.0)
        points = np.hstack([emb, STYLE_WEIGHT * (style - mean) / scale])
        centroids = _kmeans(points, k, np.random.default_rng(seed))
        return cls(centroids, mean, scale)

    @property
    def tasks(self) -> tuple[str, ...]:
        """The clusters' names, in centroid order."""
        return tuple(f"cluster-{i:02d}" for i in range(self.centroids.shape[0]))

    @property
    def embedding_dim(self) -> int:
        """Dimension of the embeddings it reads."""
        return int(self.centroids.shape[1]) - len(self.style_mean)

    def assign(self, vectors: ArrayLike, texts: Sequence[str]) -> NDArray[np.intp]:
        """Index of each query's nearest centroid."""
        return self.assign_styles(vectors, text_style(texts))

    def assign_styles(self, vectors: ArrayLike, styles: ArrayLike) -> NDArray[np.intp]:
        """``assign`` for queries given by their ``text_style`` rows."""
        emb = np.asarray(vectors, dtype=np.float64)
        style = np.asarray(styles, dtype=np.float64)
        n = style.shape[0]
        if emb.ndim != 2 or emb.shape != (n, self.embedding_dim):
            raise ValueError(
                f"embeddings: the clusters read {n} vectors of dimension "
                f"{self.embedding_dim}, got shape {emb.shape}"
            )
        scaled = (style - self.style_mean) / self.style_scale
        return _nearest(np.hstack([emb, STYLE_WEIGHT * scaled]), self.centroids)

    def fingerprint(self) -> str:
        """A short hash of the centroids and style scaling: two routers share
        learned statistics only if their clusters are identical."""
        digest = hashlib.sha256(b"clusters")
        for array in (self.centroids, self.style_mean, self.style_scale):
            digest.update(np.ascontiguousarray(array, dtype="<f8").tobytes())
        return digest.hexdigest()[:16]


def _kmeans(points: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    """Lloyd's k-means from k-means++ seeds; an emptied cluster keeps its centroid."""
    centroids = _seeds(points, k, rng)
    for _ in range(KMEANS_ITERATIONS):
        nearest = _nearest(points, centroids)
        updated = centroids.copy()
        for j in range(k):
            members = points[nearest == j]
            if len(members):
                updated[j] = members.mean(axis=0)
        if np.allclose(updated, centroids):
            break
        centroids = updated
    return centroids


def _seeds(points: FloatArray, k: int, rng: np.random.Generator) -> FloatArray:
    """k-means++: each next seed is drawn with probability ~ squared distance."""
    chosen = [int(rng.integers(len(points)))]
    dist = ((points - points[chosen[0]]) ** 2).sum(axis=1)
    for _ in range(1, k):
        total = float(dist.sum())
        index = (
            int(rng.choice(len(points), p=dist / total))
            if total > 0
            else int(rng.integers(len(points)))
        )
        chosen.append(index)
        dist = np.minimum(dist, ((points - points[index]) ** 2).sum(axis=1))
    return np.array(points[chosen], dtype=np.float64)


def _nearest(points: FloatArray, centroids: FloatArray) -> NDArray[np.intp]:
    """Index of the nearest centroid of each point (squared Euclidean distance)."""
    squared = (centroids**2).sum(axis=1)[None, :] - 2.0 * points @ centroids.T
    return np.asarray(np.argmin(squared, axis=1))
