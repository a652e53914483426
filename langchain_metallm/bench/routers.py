"""Routing policies compared by the benchmark, all on the same train/test problem.

Each policy maps cost weights ``p`` to one chosen model per test query, the one
with the best ``score - p * cost``. The online LinUCB policies (``linucb-*``)
are the product's ``RouterCore``, driven as a call is: ``context`` ->
``decide`` -> ``register`` -> ``learn`` (and ``fit`` for the warm start), so
they measure what ``MetaLLMRouterChatModel`` runs.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.cache import CachedVectors
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.costs import reward_matrix
from langchain_metallm.core.features import TaskModel
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]


@dataclass(frozen=True)
class Problem:
    """Train and test queries as embeddings, router features and per-model scores;
    ``tasks`` is the task classifier or clusters the features use, if any."""

    models: tuple[str, ...]
    cost: FloatArray
    tasks: TaskModel | None
    train_embeddings: FloatArray
    train_features: FloatArray
    train_scores: FloatArray
    test_embeddings: FloatArray
    test_features: FloatArray
    test_scores: FloatArray
    test_texts: tuple[str, ...]

    def rewards(self, scores: FloatArray, cost_weight: float) -> FloatArray:
        """``score - p * cost`` per query and model (``costs.reward_matrix``)."""
        return reward_matrix(scores, self.cost, cost_weight)


@dataclass(frozen=True)
class Routing:
    """The model chosen for each test query and the mean time per decision."""

    choices: IndexArray
    seconds_per_query: float


class BenchRouter(Protocol):
    """A router under benchmark (a baseline or a LinUCB variant): its name, whether
    the cost weight matters, and its choices."""

    @property
    def name(self) -> str:
        """Label in tables and plots."""
        ...

    @property
    def uses_cost_weight(self) -> bool:
        """False if the choices are the same for every cost weight."""
        ...

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Choose a model for every test query, once per cost weight."""
        ...


class SingleModel:
    """Always the same model."""

    uses_cost_weight = False

    def __init__(self, arm: int, name: str) -> None:
        self.arm = arm
        self.name = name

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Every test query goes to this policy's model."""
        n = problem.test_scores.shape[0]
        routing = Routing(np.full(n, self.arm, dtype=np.int64), 0.0)
        return [routing for _ in cost_weights]


class RandomPolicy:
    """A uniformly random model per query (seeded)."""

    name = "random"
    uses_cost_weight = False

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Draw a model per test query."""
        n, k = problem.test_scores.shape
        draws = np.random.default_rng(self.seed).integers(0, k, size=n)
        routing = Routing(np.asarray(draws, dtype=np.int64), 0.0)
        return [routing for _ in cost_weights]


class Oracle:
    """Knows the test scores: per query the best reward, ties to the cheapest model.

    At ``p = 0`` this is the cheapest model with the best score.
    """

    name = "oracle"
    uses_cost_weight = True

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Best true reward per test query."""
        return [
            Routing(
                _cheapest_best(problem.rewards(problem.test_scores, p), problem.cost),
                0.0,
            )
            for p in cost_weights
        ]


class NearestNeighbours:
    """Predicts each model's score as its mean over the ``k`` most similar train
    queries (cosine on embeddings), then maximises ``score - p * cost``."""

    uses_cost_weight = True

    def __init__(self, k: int = 20) -> None:
        if k < 1:
            raise ValueError(f"k: must be >= 1, got {k}")
        self.k = k
        self.name = f"knn-{k}"

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Nearest-neighbour score estimates, computed once for all cost weights."""
        start = time.perf_counter()
        predicted = self.predict(problem)
        per_query = (time.perf_counter() - start) / len(predicted)
        return [
            Routing(_argmax(problem.rewards(predicted, p)), per_query)
            for p in cost_weights
        ]

    def predict(self, problem: Problem) -> FloatArray:
        """Mean score of each model over each test query's nearest train queries."""
        train = _unit_rows(problem.train_embeddings)
        test = _unit_rows(problem.test_embeddings)
        k = min(self.k, train.shape[0])
        predicted = np.empty_like(problem.test_scores)
        for start in range(0, test.shape[0], 1024):
            sims = test[start : start + 1024] @ train.T
            nearest = np.argpartition(-sims, k - 1, axis=1)[:, :k]
            predicted[start : start + 1024] = problem.train_scores[nearest].mean(axis=1)
        return predicted


class OfflineRidge:
    """LinUCB with ``alpha = 0`` fit on the training scores and never updated."""

    name = "ridge-offline"
    uses_cost_weight = True

    def __init__(self, ridge: float = 1.0) -> None:
        self.ridge = ridge

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """Greedy on the fitted per-model linear score estimates less ``p * cost``
        (one fit serves every cost weight)."""
        policy = LinUCBPolicy(
            problem.models, problem.train_features.shape[1], alpha=0.0, ridge=self.ridge
        )
        policy.fit(problem.train_features, problem.train_scores)
        start = time.perf_counter()
        predicted = problem.test_features @ policy.theta.T
        per_query = (time.perf_counter() - start) / len(predicted)
        return [
            Routing(_argmax(problem.rewards(predicted, p)), per_query)
            for p in cost_weights
        ]


class OnlineLinUCB:
    """The router over the test stream, one ``RouterCore`` per cost weight: each
    query is one call (``context``, ``decide``, ``register`` the chosen child
    as the answer) and its true score is learned (``learn``).

    ``warm`` first fits the core on the training scores (``fit``) and routes on
    the problem's features (its task classifier or clusters, built as
    ``router.fit`` builds them): the core embeds a query as its feature row
    without the trailing bias and routes on that "embedding" plus the bias,
    i.e. on the feature row itself. Cold, it is a router never fitted with its
    defaults: online clusters of the stream's prompts and embeddings, an
    optimistic prior. ``alpha`` None: the router's default for each.
    """

    uses_cost_weight = True

    def __init__(
        self, *, warm: bool, alpha: float | None = None, ridge: float = 1.0
    ) -> None:
        self.warm = warm
        self.alpha = alpha
        self.ridge = ridge
        self.name = "linucb-warm" if warm else "linucb-cold"

    def route(self, problem: Problem, cost_weights: Sequence[float]) -> list[Routing]:
        """One call and one score per test query, timed together (the core's
        work per call: context from the cached vector, decide, register, learn)."""
        return [self._route(problem, p) for p in cost_weights]

    def _route(self, problem: Problem, cost_weight: float) -> Routing:
        core, texts = self._core(problem, cost_weight)
        scores = problem.test_scores
        column = {name: j for j, name in enumerate(problem.models)}
        choices = np.empty(len(scores), dtype=np.int64)
        start = time.perf_counter()
        for i, text in enumerate(texts):
            run_id = str(i)
            context = core.context(text)
            tasks = core.task_classifier
            if isinstance(tasks, OnlineClusters):
                # A stage is fitted in the background; a live call takes far
                # longer than k-means, so it is in place for the next call.
                # Waiting here keeps a replay deterministic.
                tasks.wait()
            decision = core.decide(run_id, context)
            j = column[decision.chosen]
            core.register(decision, decision.chosen, context, None)
            core.learn(run_id, float(scores[i, j]))
            choices[i] = j
        return Routing(choices, (time.perf_counter() - start) / len(choices))

    def _core(
        self, problem: Problem, cost_weight: float
    ) -> tuple[RouterCore, tuple[str, ...]]:
        """A core as the router builds it (warm: fitted on the training part),
        and the texts of the test queries it is called with."""
        catalogue = Catalogue.build(
            dict(zip(problem.models, problem.cost.tolist(), strict=True))
        )
        settings = Settings(cost_weight=cost_weight, alpha=self.alpha, ridge=self.ridge)
        if not self.warm:
            embedder = CachedVectors(
                problem.test_texts, problem.test_embeddings, "bench-embeddings"
            )
            core = RouterCore(
                name="bench",
                settings=settings,
                catalogue=catalogue,
                embeddings=embedder,
            )
            return core, problem.test_texts
        train = tuple(f"train {i}" for i in range(len(problem.train_features)))
        test = tuple(f"test {i}" for i in range(len(problem.test_features)))
        features = np.vstack([problem.train_features, problem.test_features])
        if not np.all(features[:, -1] == 1.0):
            raise ValueError("features: each row must end with the bias 1.0")
        embedder = CachedVectors(train + test, features[:, :-1], "bench-features")
        core = RouterCore(
            name="bench",
            settings=settings.changed(auto_tasks=False, online_clusters=False),
            catalogue=catalogue,
            embeddings=embedder,
        )
        core.fit(train, problem.train_scores, None)
        return core, test


def _argmax(values: FloatArray) -> IndexArray:
    """Per row, the column of the largest value."""
    return np.asarray(np.argmax(values, axis=1), dtype=np.int64)


def _cheapest_best(reward: FloatArray, cost: FloatArray) -> IndexArray:
    """Per row, the cheapest column among those tied for the largest reward."""
    best = reward.max(axis=1, keepdims=True)
    tied = reward >= best - 1e-12
    return _argmin(np.where(tied, cost[None, :], np.inf))


def _argmin(values: FloatArray) -> IndexArray:
    return np.asarray(np.argmin(values, axis=1), dtype=np.int64)


def _unit_rows(matrix: FloatArray) -> FloatArray:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return matrix / np.where(norms > 0, norms, 1.0)
