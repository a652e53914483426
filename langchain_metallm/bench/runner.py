"""``run_benchmark``: load, split, embed (cached), featurise, sweep every policy."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from langchain_core.embeddings import Embeddings
from numpy.typing import NDArray

from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR, EmbeddingCache
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.report import BenchmarkResult, SplitInfo
from langchain_metallm.bench.routers import (
    BenchRouter,
    NearestNeighbours,
    OfflineRidge,
    OnlineLinUCB,
    Oracle,
    Problem,
    RandomPolicy,
    SingleModel,
)
from langchain_metallm.bench.splits import Split, make_split
from langchain_metallm.bench.sweep import sweep
from langchain_metallm.core.auto_tasks import QueryClusters, cluster_count
from langchain_metallm.core.features import TaskClassifier, TaskModel, query_features

DEFAULT_COST_WEIGHTS: tuple[float, ...] = tuple(
    round(float(p), 3) for p in np.linspace(0.0, 1.2, 49)
)
"""0 to 1.2 in steps of 0.025: with costs in [0, 1] and scores in [0, 1], larger
weights only repeat "always the cheapest model"."""

FEATURES = ("auto", "tasks", "embedding")
"""What the fitted LinUCB policies route on (see ``build_problem``)."""


def run_benchmark(
    data_dir: str | os.PathLike[str],
    *,
    split: str = "random",
    seed: int = 0,
    test_fraction: float = 0.2,
    embeddings: Embeddings | None = None,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    cost_weights: Sequence[float] = DEFAULT_COST_WEIGHTS,
    alpha: float | None = None,
    ridge: float = 1.0,
    knn_k: int = 20,
    features: str = "auto",
    limit: int | None = None,
    progress: bool = True,
) -> BenchmarkResult:
    """Compare every policy on one split of a recorded-outcome data set.

    ``embeddings`` defaults to the packaged MiniLM (``LocalEmbeddings``); vectors
    are cached under ``cache_dir``. ``alpha`` and ``ridge`` configure the LinUCB
    policies exactly as the router's settings of the same names; ``features``
    says what the fitted ones route on (see ``build_problem``). ``limit`` keeps
    a random subset of that many rows (drawn with ``seed``) for a quick run.
    """
    prepared = prepare(
        data_dir,
        split=split,
        seed=seed,
        test_fraction=test_fraction,
        embeddings=embeddings,
        cache_dir=cache_dir,
        features=features,
        limit=limit,
        progress=progress,
    )
    data, parts, problem = prepared.data, prepared.split, prepared.problem
    policies: list[BenchRouter] = [
        *(SingleModel(j, name) for j, name in enumerate(data.models)),
        RandomPolicy(seed),
        Oracle(),
        NearestNeighbours(knn_k),
        OfflineRidge(ridge),
        OnlineLinUCB(warm=True, alpha=alpha, ridge=ridge),
        OnlineLinUCB(warm=False, alpha=alpha, ridge=ridge),
    ]
    curves = sweep(problem, policies, cost_weights, progress=progress)
    return BenchmarkResult(
        dataset=data.name,
        data_dir=str(Path(data_dir)),
        embedder=prepared.embedder,
        models=data.models,
        price=tuple(float(p) for p in data.price),
        cost=tuple(float(c) for c in data.cost),
        split=SplitInfo(
            kind=parts.kind,
            seed=seed,
            test_fraction=test_fraction,
            n_train=len(parts.train),
            n_test=len(parts.test),
            held_out_tasks=parts.held_out_tasks,
        ),
        feature_dim=problem.train_features.shape[1],
        task_names=() if problem.tasks is None else problem.tasks.tasks,
        alpha=alpha,
        ridge=ridge,
        cost_weights=tuple(float(p) for p in cost_weights),
        curves=tuple(curves),
        features=features,
    )


@dataclass(frozen=True)
class Prepared:
    """A data set, its split, the train/test problem and the embedder's name."""

    data: Outcomes
    split: Split
    problem: Problem
    embedder: str


def prepare(
    data_dir: str | os.PathLike[str],
    *,
    split: str = "random",
    seed: int = 0,
    test_fraction: float = 0.2,
    embeddings: Embeddings | None = None,
    cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR,
    features: str = "auto",
    limit: int | None = None,
    progress: bool = True,
) -> Prepared:
    """Load, split and embed (through the cache) a recorded-outcome data set,
    keeping a random ``limit`` rows of it (drawn with ``seed``) if given."""
    data = load_outcomes(Path(data_dir))
    if limit is not None:
        if limit < 2:
            raise ValueError(f"limit: must be >= 2 rows, got {limit}")
        rows = np.random.default_rng(seed).permutation(len(data))[:limit]
        data = data.subset(np.sort(rows))
    parts = make_split(data, split, test_fraction=test_fraction, seed=seed)
    if embeddings is None:
        from langchain_metallm.embeddings import LocalEmbeddings

        embeddings = LocalEmbeddings()
    cache = EmbeddingCache(embeddings, cache_dir)
    vectors = cache.embed(data.prompts, progress=progress)
    problem = build_problem(data, parts, vectors, features=features)
    return Prepared(data, parts, problem, cache.name)


def build_problem(
    data: Outcomes,
    parts: Split,
    vectors: NDArray[np.float64],
    *,
    features: str = "auto",
) -> Problem:
    """Embeddings, router features (``features.query_features``) and scores per part.

    ``features="auto"`` (the default a user without labels gets) clusters the
    training part's queries as ``router.fit(prompts, scores)`` does;
    ``"tasks"`` learns a task classifier from the training part's labels (with at
    least two tasks there) as ``router.fit(..., tasks=...)`` does; ``"embedding"``
    routes on the bare embedding. Test labels and texts never shape the features.
    """
    if features not in FEATURES:
        raise ValueError(f"features: expected one of {FEATURES}, got {features!r}")
    train, test = parts.train, parts.test
    train_tasks = [data.tasks[i] for i in train]
    tasks: TaskModel | None = None
    if features == "tasks" and len(set(train_tasks)) >= 2:
        tasks = TaskClassifier.fit(vectors[train], train_tasks)
    elif features == "auto" and cluster_count(len(train)) >= 2:
        tasks = QueryClusters.fit(vectors[train], [data.prompts[i] for i in train])
    contexts = query_features(vectors, tasks, data.prompts)
    return Problem(
        models=data.models,
        cost=data.cost,
        tasks=tasks,
        train_embeddings=vectors[train],
        train_features=contexts[train],
        train_scores=data.scores[train],
        test_embeddings=vectors[test],
        test_features=contexts[test],
        test_scores=data.scores[test],
        test_texts=tuple(data.prompts[i] for i in test),
    )
