"""Turn query embeddings into the context vectors the policy learns on.

Without task labels a context is the embedding plus a constant bias. With a
``TaskClassifier`` learned from labelled recorded outcomes it is the embedding
(down-weighted), the one-hot predicted task and the bias: each arm then learns
one mean reward per task from all of that task's queries, and the embedding
only refines it. Per-arm ridge on the bare 384-dim embedding is too noisy to
separate models whose accuracies differ by a few points (BENCH_RESULTS.md).
Without labels, ``auto_tasks.QueryClusters`` (k-means of the queries) plays the
classifier's part: its clusters are the tasks. A router that was never fitted
routes on ``online_clusters.OnlineClusters`` instead: clusters of its live prompts,
without the embedding.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.core.auto_tasks import QueryClusters
from langchain_metallm.core.online_clusters import OnlineClusters

FloatArray = NDArray[np.float64]

TASK_RIDGE = 0.1
"""Ridge of the least-squares task classifier (on unit-norm embeddings)."""

EMBEDDING_SCALE = 0.2
"""Weight of the embedding next to task features: the policy's ridge then
penalises embedding coefficients 25x more than a task's mean reward."""


@dataclass(frozen=True, eq=False)
class TaskClassifier:
    """Predicts a query's task from its embedding: a ridge (least-squares one-vs-rest)
    classifier, learned in closed form from prompts labelled with their task.

    ``weights`` has shape (embedding dimension + 1, tasks), the last row the bias.
    """

    tasks: tuple[str, ...]
    weights: FloatArray

    def __post_init__(self) -> None:
        if len(self.tasks) < 2 or len(set(self.tasks)) != len(self.tasks):
            raise ValueError(
                f"tasks: need at least 2 distinct task names, got {list(self.tasks)}"
            )
        w = self.weights
        if w.ndim != 2 or w.shape[0] < 2 or w.shape[1] != len(self.tasks):
            raise ValueError(
                f"task weights: expected shape (dim + 1, {len(self.tasks)}), "
                f"got {w.shape}"
            )
        if not np.all(np.isfinite(w)):
            raise ValueError("task weights: contain NaN or infinity")

    @classmethod
    def fit(
        cls, vectors: ArrayLike, labels: Sequence[str], *, ridge: float = TASK_RIDGE
    ) -> TaskClassifier:
        """Learn to predict ``labels`` (one task name per vector) from ``vectors``."""
        emb = _matrix(vectors)
        names = check_task_labels(labels, emb.shape[0])
        tasks = tuple(sorted(set(names)))
        if len(tasks) < 2:
            raise ValueError(
                f"tasks: need at least 2 distinct tasks to tell apart, got {tasks}"
            )
        index = {task: i for i, task in enumerate(tasks)}
        targets = np.eye(len(tasks))[[index[name] for name in names]]
        x = _with_bias(emb)
        gram = x.T @ x + ridge * np.eye(x.shape[1])
        weights = np.linalg.solve(gram, x.T @ targets).astype(np.float64)
        return cls(tasks, weights)

    @property
    def embedding_dim(self) -> int:
        """Dimension of the embeddings it reads."""
        return int(self.weights.shape[0]) - 1

    def predict(self, vectors: ArrayLike) -> NDArray[np.intp]:
        """Index into ``tasks`` of each vector's most likely task."""
        emb = _matrix(vectors)
        if emb.shape[1] != self.embedding_dim:
            raise ValueError(
                f"embeddings: the task classifier reads dimension "
                f"{self.embedding_dim}, got {emb.shape[1]}"
            )
        return np.asarray(np.argmax(_with_bias(emb) @ self.weights, axis=1))

    def fingerprint(self) -> str:
        """A short hash of the task names and weights: two routers share learned
        statistics only if their classifiers are identical."""
        digest = hashlib.sha256("\x00".join(self.tasks).encode("utf-8"))
        digest.update(np.ascontiguousarray(self.weights, dtype="<f8").tobytes())
        return digest.hexdigest()[:16]


TaskModel = TaskClassifier | QueryClusters | OnlineClusters
"""What gives a query its task: a classifier learned from labels, clusters of
recorded prompts, or clusters of live prompts."""


def query_features(
    vectors: ArrayLike,
    tasks: TaskModel | None = None,
    texts: Sequence[str] | None = None,
) -> FloatArray:
    """Context rows for the policy: ``[embedding, 1]``, or with ``tasks``
    ``[EMBEDDING_SCALE * embedding, one-hot predicted task, 1]``, or with online
    clusters their ``[one-hot per stage, 1]``.

    The bias lets every arm learn its mean reward independently of the embedding.
    Clusters also read the query ``texts``.
    """
    emb = np.asarray(vectors, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings: expected (n, dim) vectors, got {emb.shape}")
    if tasks is None:
        return _with_bias(emb)
    if isinstance(tasks, TaskClassifier):
        found = tasks.predict(emb)
    elif texts is None:
        raise ValueError("texts: clusters need the query texts next to the vectors")
    elif isinstance(tasks, OnlineClusters):
        return tasks.contexts(emb, texts)
    else:
        found = tasks.assign(emb, texts)
    one_hot = np.eye(len(tasks.tasks))[found]
    return _with_bias(np.hstack([EMBEDDING_SCALE * emb, one_hot]))


def embedding_dim(context_dim: int, tasks: TaskModel | None) -> int:
    """Embedding length inside contexts of ``context_dim`` built with ``tasks``
    (online clusters read embeddings of their own dimension but hold none)."""
    if isinstance(tasks, OnlineClusters):
        return tasks.embedding_dim
    return context_dim - (0 if tasks is None else len(tasks.tasks)) - 1


def task_of(context: FloatArray, tasks: TaskModel | None) -> str | None:
    """The predicted task a context encodes (None without a task classifier)."""
    if tasks is None:
        return None
    if isinstance(tasks, OnlineClusters):
        return tasks.task_of(context)
    start = tasks.embedding_dim
    return tasks.tasks[int(np.argmax(context[start : start + len(tasks.tasks)]))]


def check_task_labels(labels: Sequence[str], n: int) -> list[str]:
    """``labels`` as a list of ``n`` non-empty task names, or a ``ValueError``."""
    if isinstance(labels, str):
        raise TypeError("tasks: expected one task name per prompt, got one string")
    names = list(labels)
    if len(names) != n:
        raise ValueError(
            f"tasks: expected {n} task names (one per prompt), got {len(names)}"
        )
    bad = [i for i, name in enumerate(names) if not isinstance(name, str) or not name]
    if bad:
        raise ValueError(
            f"tasks: entry {bad[0]} is {names[bad[0]]!r}; each must be a non-empty str"
        )
    return names


def _matrix(vectors: ArrayLike) -> FloatArray:
    emb = np.asarray(vectors, dtype=np.float64)
    if emb.ndim != 2:
        raise ValueError(f"embeddings: expected shape (n, dim), got {emb.shape}")
    if not np.all(np.isfinite(emb)):
        raise ValueError("embeddings: contain NaN or infinity")
    return emb


def _with_bias(emb: FloatArray) -> FloatArray:
    return np.hstack([emb, np.ones((emb.shape[0], 1))])
