"""Online clusters: a never-fitted router learns from live feedback on clusters of
its own prompts (issue 16)."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.core.auto_tasks import QueryClusters
from langchain_metallm.core.online_clusters import (
    POINTS_PER_CLUSTER,
    STAGES,
    STARVED,
    YIELD,
    OnlineClusters,
    SharedStages,
    same,
)
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.router import LIVE_ALPHA
from langchain_metallm.core.stores.memory import MemoryStore
from langchain_metallm.core.stores.sqlite import SQLiteStore

from . import fakes
from .fakes import KINDS, EchoChild, KeywordEmbeddings, query

LIVE_DIM = sum(k for k, _ in STAGES) + 1
COSTS = {"cheap": 0.1, "pricey": 1.0}


class LiveRouter(MetaLLMRouterChatModel):
    """The router with the settings it gets once ``alpha`` defaults to None and
    ``online_clusters`` exists (None: on)."""

    alpha: float | None = None  # type: ignore[assignment]
    online_clusters: bool | None = None


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in COSTS},
        "costs": COSTS,
        "cost_weight": 0.2,
        "embeddings": KeywordEmbeddings(),
    }
    return LiveRouter(**{**settings, **overrides})


def score(prompt: str, model: str) -> float:
    """The pricey child is far better at maths; both write poems as well."""
    if "math" in prompt:
        return 0.9 if model == "pricey" else 0.2
    return 0.8


def serve(router: MetaLLMRouterChatModel, prompts: list[str]) -> list[str]:
    """Route and reward each prompt by ``score``; the chosen models in order."""
    return fakes.serve(router, prompts, score)


def stream(n: int, seed: int) -> list[str]:
    kinds = np.random.default_rng(seed).integers(0, 2, size=n)
    return [query(KINDS[k], seed * 100_000 + i) for i, k in enumerate(kinds)]


def test_stages_are_fitted_once_their_prompt_counts_are_seen() -> None:
    clusters = OnlineClusters(4, stages=((2, 6), (3, 10)))
    prompts = stream(12, seed=1)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    for i, (text, vector) in enumerate(zip(prompts, vectors, strict=True)):
        clusters.observe([vector], [text])
        fitted = [stage is not None for stage in clusters.fitted]
        assert fitted == [i + 1 >= 6, i + 1 >= 10]
    assert clusters.seen.shape == (0, 14)  # no prompt kept once all are fitted


def test_contexts_keep_their_dimension_and_fill_the_slots_as_stages_appear() -> None:
    clusters = OnlineClusters(4, stages=((2, 6), (3, 10)))
    prompts = stream(10, seed=2)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    before = clusters.contexts(vectors, prompts)
    np.testing.assert_array_equal(before, np.eye(6)[[5] * 10])
    clusters.observe(vectors[:6], prompts[:6])
    middle = clusters.contexts(vectors, prompts)
    assert middle.shape == (10, 6)
    np.testing.assert_array_equal(middle[:, :2].sum(axis=1), 1.0)
    np.testing.assert_array_equal(middle[:, 2:5], 0.0)
    clusters.observe(vectors[6:], prompts[6:])
    after = clusters.contexts(vectors, prompts)
    np.testing.assert_array_equal(after[:, 2:5].sum(axis=1), 1.0)
    np.testing.assert_array_equal(after[:, -1], 1.0)


def test_bad_stages_and_vectors_are_refused() -> None:
    with pytest.raises(ValueError, match="stages"):
        OnlineClusters(4, stages=((1, 10),))
    with pytest.raises(ValueError, match="must not decrease"):
        OnlineClusters(4, stages=((2, 20), (4, 10)))
    clusters = OnlineClusters(4, stages=((2, 6),))
    with pytest.raises(ValueError, match="dimension 4"):
        clusters.observe([[0.0] * 3], ["x"])
    assert clusters.seen.shape == (0, 14)


def test_a_never_fitted_router_routes_on_online_clusters_from_its_first_call() -> None:
    router = make_router()
    router.invoke(query("math", 0))
    policy = router.policy
    assert isinstance(policy, LinUCBPolicy)
    assert isinstance(router.task_classifier, OnlineClusters)
    assert policy.dim == LIVE_DIM
    assert policy.alpha == LIVE_ALPHA
    np.testing.assert_array_equal(policy.b[:, -1], 1.0)  # the optimistic prior
    np.testing.assert_array_equal(policy.counts, 0)
    serve(router, stream(STAGES[0][1], seed=3))
    assert router.policy is policy and policy.dim == LIVE_DIM
    assert router.task_classifier.wait(timeout=30)  # fitted in the background
    assert router.task_classifier.fitted[0] is not None


def test_it_learns_the_better_child_per_cluster_without_collapsing_on_the_cheap() -> (
    None
):
    router = make_router()
    serve(router, stream(600, seed=4))
    late = stream(200, seed=5)
    chosen = serve(router, late)
    maths = [m for p, m in zip(late, chosen, strict=True) if "math" in p]
    poems = [m for p, m in zip(late, chosen, strict=True) if "math" not in p]
    assert maths.count("pricey") >= 0.9 * len(maths)  # worth its price on maths
    assert poems.count("cheap") >= 0.9 * len(poems)  # not worth it on poems


def test_a_save_resumes_the_clusters_and_the_prompts_they_still_wait_for(
    tmp_path: Path,
) -> None:
    router = make_router()
    serve(router, stream(250, seed=6))
    router.save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "metallm.json").read_text())
    assert manifest["router"]["task_kind"] == "online"
    assert manifest["dim"] == LIVE_DIM
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r",
        {name: EchoChild(name_tag=name) for name in COSTS},
        embeddings=KeywordEmbeddings(),
    )
    assert loaded.policy is not None and router.policy is not None
    for a, b in zip(
        loaded.policy.statistics(), router.policy.statistics(), strict=True
    ):
        np.testing.assert_array_equal(a, b)
    assert loaded.policy.alpha == LIVE_ALPHA
    more = stream(STAGES[1][1] - 250, seed=7)
    vectors = KeywordEmbeddings().embed_documents(more)
    for r in (router, loaded):
        tasks = r.task_classifier
        assert isinstance(tasks, OnlineClusters)
        tasks.observe(vectors, more)
        assert tasks.wait(timeout=30)  # fitted in the background
    first, second = router.task_classifier, loaded.task_classifier
    assert isinstance(first, OnlineClusters) and isinstance(second, OnlineClusters)
    for a, b in zip(first.fitted, second.fitted, strict=True):
        assert a is not None and b is not None
        np.testing.assert_array_equal(a.centroids, b.centroids)


def test_with_a_shared_store_online_clusters_are_on_and_live_saves_load(
    tmp_path: Path,
) -> None:
    for setting in (None, True):
        router = make_router(
            online_clusters=setting, store=SQLiteStore(tmp_path / f"{setting}.db")
        )
        router.invoke(query("math", 1))
        assert isinstance(router.task_classifier, OnlineClusters)
        assert router.policy is not None and router.policy.dim == LIVE_DIM
        assert router.policy.alpha == LIVE_ALPHA
    off = make_router(online_clusters=False, store=SQLiteStore(tmp_path / "off.db"))
    off.invoke(query("math", 1))
    assert off.task_classifier is None
    assert off.policy is not None and off.policy.dim == 5
    # A live save loads into a store router: its clusters are published there,
    # and a worker joining the store adopts them with the statistics.
    saved = make_router()
    serve(saved, stream(250, seed=12))
    saved.save(tmp_path / "r")
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r",
        {name: EchoChild(name_tag=name) for name in COSTS},
        embeddings=KeywordEmbeddings(),
        store=SQLiteStore(tmp_path / "t.db"),
    )
    joiner = make_router(store=SQLiteStore(tmp_path / "t.db"))
    joiner.invoke(query("poetry", 1))
    tasks, mine = joiner.task_classifier, saved.task_classifier
    assert isinstance(tasks, OnlineClusters) and isinstance(mine, OnlineClusters)
    assert mine.fitted[0] is not None and tasks.fitted[0] is not None
    np.testing.assert_array_equal(tasks.fitted[0].centroids, mine.fitted[0].centroids)
    assert tasks.fitted[1] is None
    assert loaded.policy is not None and joiner.policy is not None
    assert joiner.policy.namespace == loaded.policy.namespace
    assert saved.policy is not None
    np.testing.assert_array_equal(
        joiner.policy.counts, saved.policy.counts
    )  # the save's statistics, shared
    # A store holding other clusters refuses a save, before anything changes.
    other = make_router()
    serve(other, stream(250, seed=13))
    other.save(tmp_path / "o")
    before = joiner.policy.statistics()
    with pytest.raises(ValueError, match="already holds other online clusters"):
        MetaLLMRouterChatModel.load(
            tmp_path / "o",
            {name: EchoChild(name_tag=name) for name in COSTS},
            embeddings=KeywordEmbeddings(),
            store=SQLiteStore(tmp_path / "t.db"),
        )
    for now, then in zip(joiner.policy.statistics(), before, strict=True):
        np.testing.assert_array_equal(now, then)


def test_the_live_prior_is_added_once_per_store_namespace(tmp_path: Path) -> None:
    first = make_router(store=SQLiteStore(tmp_path / "s.db"))
    second = make_router(store=SQLiteStore(tmp_path / "s.db"))
    for router in (first, second):
        router.invoke(query("math", 1))
    assert first.policy is not None and second.policy is not None
    assert first.policy.created and not second.policy.created
    _, b, counts = second.policy.statistics()
    np.testing.assert_array_equal(b[:, -1], 1.0)  # one pseudo-outcome, not two
    np.testing.assert_array_equal(counts, 0)


def test_a_stage_is_due_when_the_fleet_reaches_it_given_points_to_fit() -> None:
    """A worker of a fleet fits a stage once the fleet's routed prompts reach
    its count, with only its own share seen, if it holds
    ``POINTS_PER_CLUSTER`` prompts per cluster (counting its own prompts, each
    of four workers reached the stages four times later)."""
    clusters = OnlineClusters(4, stages=((2, 20), (3, 80)))
    prompts = stream(20, seed=3)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    for i, (text, vector) in enumerate(zip(prompts, vectors, strict=True)):
        clusters.observe([vector], [text], fleet_prompts=4 * (i + 1))
        fitted = [stage is not None for stage in clusters.fitted]
        # stage 0: the fleet reaches 20 at 5 own prompts; fitted at 2 x 5 own
        assert fitted == [i + 1 >= POINTS_PER_CLUSTER * 2, i + 1 >= 20]
    alone = OnlineClusters(4, stages=((2, 20), (3, 80)))
    alone.observe(vectors[:19], prompts[:19])
    assert alone.fitted == (None, None)  # its own 19 reach neither stage


def test_a_worker_adopts_the_stage_another_published_instead_of_fitting() -> None:
    """Each worker counts its own prompts; the first to reach a stage fits and
    publishes it, the others adopt it (also one whose own fit lost the race)."""
    store = MemoryStore(refresh_interval=3600)  # adoption only before fitting
    prompts = stream(10, seed=14)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    first, second, third = (OnlineClusters(4, stages=((2, 6), (3, 10))) for _ in "abc")
    for clusters in (first, second, third):
        clusters.share(store, "fleet")
    first.observe(vectors[:6], prompts[:6])
    assert first.fitted[0] is not None
    published = store.published("fleet", SharedStages.key(0))
    assert published is not None
    assert second.fitted[0] is None  # not polled yet (an hour's interval)
    second.observe(vectors[4:10], prompts[4:10])  # its own 6: it would fit now ...
    assert second.fitted[0] is not None and same(second.fitted[0], first.fitted[0])
    assert second.fitted[1] is None  # ... but adopts; 6 prompts of its own only
    third._shared.get = lambda s: None  # type: ignore[method-assign,union-attr]
    third.observe(vectors[2:8], prompts[2:8])  # fits, then loses the race
    assert third.fitted[0] is not None and same(third.fitted[0], first.fitted[0])
    assert store.published("fleet", SharedStages.key(0)) == published


def test_a_later_worker_adopts_every_published_stage_on_its_first_prompt() -> None:
    store = MemoryStore(refresh_interval=0)
    prompts = stream(10, seed=15)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    fleet = OnlineClusters(4, stages=((2, 6), (3, 10)))
    fleet.share(store, "fleet")
    fleet.observe(vectors, prompts)
    joiner = OnlineClusters(4, stages=((2, 6), (3, 10)))
    joiner.share(store, "fleet")
    joiner.observe(vectors[:1], prompts[:1])
    for mine, theirs in zip(joiner.fitted, fleet.fitted, strict=True):
        assert mine is not None and theirs is not None and same(mine, theirs)
    assert joiner.seen.shape[0] == 0  # nothing left to fit: no prompt kept


def test_corrupt_published_clusters_are_refused_and_routing_goes_on() -> None:
    store = MemoryStore(refresh_interval=0)
    store.publish("fleet", SharedStages.key(0), b'{"format": 1}\n\x00')
    clusters = OnlineClusters(4, stages=((2, 6),))
    clusters.share(store, "fleet")
    prompts = stream(2, seed=16)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    with pytest.warns(RuntimeWarning, match="corrupt online clusters.*stage 0"):
        clusters.observe(vectors, prompts)
    assert clusters.fitted == (None,)


def test_a_call_while_a_stage_is_fitted_does_not_wait_for_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """k-means runs in a background thread: the call that reaches a stage's
    prompt count and the calls after it route on the stages already there."""
    fit = QueryClusters.fit_styles
    release = threading.Event()

    def slow_fit(*args: Any, **kwargs: Any) -> QueryClusters:
        release.wait(timeout=30)
        return fit(*args, **kwargs)

    monkeypatch.setattr(QueryClusters, "fit_styles", staticmethod(slow_fit))
    router = make_router()
    serve(router, stream(STAGES[0][1] - 1, seed=17))
    tasks = router.task_classifier
    assert isinstance(tasks, OnlineClusters)
    for i, prompt in enumerate(stream(20, seed=18)):
        start = time.perf_counter()
        answer = router.invoke(prompt)
        assert time.perf_counter() - start < 1.0  # the fit is held for 30 s
        router.record_feedback(answer, score(prompt, "cheap"))
        assert tasks.fitted[0] is None  # the previous stage (none) routes
        assert router.core.context(prompt, learn=False) is not None
        context = router.core.contexts([prompt])[0]
        assert context[: STAGES[0][0]].sum() == 0.0 and context[-1] == 1.0
        if i == 0:
            assert not tasks.wait(timeout=0.05)  # being fitted meanwhile
    release.set()
    assert tasks.wait(timeout=30)
    assert tasks.fitted[0] is not None
    context = router.core.contexts([query("math", 1)])[0]
    assert context[: STAGES[0][0]].sum() == 1.0  # installed: the next calls use it


def test_a_first_fit_of_enough_prompts_replaces_unused_online_clusters() -> None:
    router = make_router()
    router.core.context(query("math", 2))  # a live call's first step
    assert isinstance(router.task_classifier, OnlineClusters)
    prompts = stream(400, seed=8)
    scores = [[score(p, m) for m in COSTS] for p in prompts]
    router.fit(prompts, scores)
    assert not isinstance(router.task_classifier, OnlineClusters)
    assert router.policy is not None and router.policy.alpha == 0.1


def test_a_small_fit_before_any_feedback_is_the_fitted_router_it_was() -> None:
    router = make_router()
    router.route(query("math", 3))
    prompts = stream(100, seed=9)
    router.fit(prompts, [[score(p, m) for m in COSTS] for p in prompts])
    assert router.task_classifier is None
    assert router.policy is not None
    assert (router.policy.dim, router.policy.alpha) == (5, 0.1)


def test_feedback_before_a_fit_keeps_the_online_clusters() -> None:
    router = make_router()
    serve(router, stream(3, seed=10))
    prompts = stream(400, seed=11)
    router.fit(prompts, [[score(p, m) for m in COSTS] for p in prompts])
    assert isinstance(router.task_classifier, OnlineClusters)
    assert router.policy is not None and router.policy.dim == LIVE_DIM
    assert int(router.policy.counts.sum()) == 3 + 2 * 400


def test_calls_yield_briefly_to_a_fit_they_starve(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Calls that never wait on I/O can keep the fitting thread from the GIL
    for hundreds of calls; once the fit is ``STARVED`` prompts late, each call
    yields to it for at most ``YIELD`` seconds (and never waits longer)."""
    fit = QueryClusters.fit_styles
    release = threading.Event()

    def slow_fit(*args: Any, **kwargs: Any) -> QueryClusters:
        release.wait(timeout=30)
        return fit(*args, **kwargs)

    monkeypatch.setattr(QueryClusters, "fit_styles", staticmethod(slow_fit))
    clusters = OnlineClusters(4, stages=((2, 6),), background=True)
    waits: list[float | None] = []
    wait = clusters.wait

    def spy(timeout: float | None = None) -> bool:
        waits.append(timeout)
        return wait(timeout)

    clusters.wait = spy  # type: ignore[method-assign]
    prompts = stream(6 + STARVED + 5, seed=19)
    vectors = KeywordEmbeddings().embed_documents(prompts)
    for i, (text, vector) in enumerate(zip(prompts, vectors, strict=True)):
        start = time.perf_counter()
        clusters.observe([vector], [text])
        assert time.perf_counter() - start < 0.5  # the fit is held for 30 s
        assert len(waits) == max(0, i + 1 - (6 + STARVED) + 1)
    assert set(waits) == {YIELD} and clusters.fitted == (None,)
    release.set()
    assert wait(timeout=30) and clusters.fitted[0] is not None
