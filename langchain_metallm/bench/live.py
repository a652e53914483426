"""Replaying live traffic through a never-fitted ``RouterCore`` (what the chat
model runs), call by call, each call rewarded at once with the recorded score of
the child it chose. Shared by the live-learning and fleet benchmarks."""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.cache import (
    DEFAULT_CACHE_DIR,
    CachedVectors,
    EmbeddingCache,
)
from langchain_metallm.bench.data import Outcomes
from langchain_metallm.bench.splits import random_split
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings
from langchain_metallm.core.stores.base import PolicyStore
from langchain_metallm.embeddings import LocalEmbeddings

FloatArray = NDArray[np.float64]
COST_WEIGHTS = (0.0, 0.025, 0.05, 0.075, 0.1, 0.15, 0.2, 0.3)
"""The cost weights each live run is served at."""


@dataclass(frozen=True)
class LiveStream:
    """One seed's traffic: the live rows, then the held-out rows, in order."""

    prompts: list[str]
    scores: FloatArray
    n_live: int


def live_stream(data: Outcomes, seed: int) -> LiveStream:
    """A seeded random 80/20 split, the live part shuffled, then the held-out
    part shuffled (both by ``np.random.default_rng(seed)``)."""
    split = random_split(data, seed=seed)
    rng = np.random.default_rng(seed)
    live, held_out = rng.permutation(split.train), rng.permutation(split.test)
    order = np.concatenate([live, held_out])
    prompts = [data.prompts[i] for i in order]
    return LiveStream(prompts, data.scores[order], len(live))


def cached_vectors(
    data: Outcomes, cache_dir: str | os.PathLike[str] = DEFAULT_CACHE_DIR
) -> CachedVectors:
    """The data set's MiniLM vectors, embedded once into ``cache_dir``."""
    cache = EmbeddingCache(LocalEmbeddings(), cache_dir)
    return CachedVectors(data.prompts, cache.embed(data.prompts), cache.name)


def prices_of(data: Outcomes) -> dict[str, float]:
    """Each child's price, the costs of ``Catalogue.build``."""
    return {n: float(p) for n, p in zip(data.models, data.price, strict=True)}


def new_core(
    name: str,
    settings: Settings,
    catalogue: Catalogue,
    embedder: CachedVectors,
    store: PolicyStore | None = None,
) -> RouterCore:
    """A router core as the chat model builds it (few decisions await feedback
    here: each is rewarded at once), on ``store`` if given."""
    return RouterCore(
        name=name,
        settings=settings.changed(max_pending=10, pending_ttl=None),
        catalogue=catalogue,
        embeddings=embedder,
        store=store,
    )


def inline_stages(core: RouterCore) -> None:
    """Fit cluster stages inside the call that reaches them, not in the
    background, so a run does not depend on thread timing (the router fits
    them in the background so that no call waits)."""
    tasks = core.task_classifier
    if isinstance(tasks, OnlineClusters):
        tasks.background = False


def live_choices(
    core: RouterCore, prompts: Sequence[str], scores: FloatArray
) -> NDArray[np.int64]:
    """Route, answer and reward each prompt in order; the child chosen for each."""
    names = list(core.catalogue.names)
    chosen = np.empty(len(prompts), dtype=np.int64)
    for i, text in enumerate(prompts):
        run_id = str(i)
        context = core.context(text)
        inline_stages(core)
        decision = core.decide(run_id, context)
        core.register(decision, decision.chosen, context, None)
        j = names.index(decision.chosen)
        core.learn(run_id, float(scores[i, j]))
        chosen[i] = j
    return chosen


def margin_at_half_cost(
    points: Sequence[tuple[float, float]], single: FloatArray, cost: FloatArray
) -> float:
    """The best accuracy among ``points`` (accuracy, mean cost) spending at most
    half the best single child's cost, minus that child's accuracy (``single``:
    each child's; NaN if no point is cheap enough)."""
    best = int(np.argmax(single))
    cheap = [a for a, c in points if c <= 0.5 * cost[best] + 1e-9]
    return (max(cheap) if cheap else math.nan) - float(single[best])
