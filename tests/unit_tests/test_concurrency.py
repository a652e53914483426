"""Concurrent select/update and delayed, duplicated, lost or expired feedback."""

from __future__ import annotations

import asyncio
import sys
import threading
from collections.abc import Iterator
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage

from langchain_metallm import FeedbackError, LinUCBPolicy, MetaLLMRouterChatModel
from langchain_metallm.core.features import query_features
from langchain_metallm.core.pending import PendingDecision, PendingDecisions

from .fakes import EchoChild, KeywordEmbeddings, query

ARMS = [f"arm{j}" for j in range(4)]


def _reward(x: np.ndarray, arm: int) -> float:
    """A deterministic reward that depends on context and arm."""
    return float(np.tanh(x[arm % len(x)] * (arm + 1)))


def _replay(
    triples: list[tuple[int, np.ndarray, float]], dim: int
) -> tuple[np.ndarray, np.ndarray]:
    reference = LinUCBPolicy(ARMS, dim)
    for arm, x, r in triples:
        reference.update(arm, x, r)
    A, b, _ = reference.statistics()
    return A, b


@pytest.fixture
def fast_switching() -> Iterator[None]:
    """Switch threads every microsecond, so a missing lock shows up as a race."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


@pytest.mark.usefixtures("fast_switching")
def test_eight_threads_equal_a_sequential_run_over_the_same_rewards() -> None:
    dim, threads, calls = 16, 8, 1_000
    policy = LinUCBPolicy(ARMS, dim, alpha=1.0)
    applied: list[list[tuple[int, np.ndarray, float]]] = [[] for _ in range(threads)]
    start = threading.Barrier(threads)

    def work(t: int) -> None:
        rng = np.random.default_rng(t)
        start.wait()
        for _ in range(calls):
            x = rng.normal(size=dim)
            arm = ARMS.index(policy.select(x))
            r = _reward(x, arm)
            policy.update(arm, x, r)
            applied[t].append((arm, x, r))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    A, b, counts = policy.statistics()
    assert counts.sum() == threads * calls
    A_ref, b_ref = _replay([t for log in applied for t in log], dim)
    np.testing.assert_allclose(A, A_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(b, b_ref, rtol=0, atol=1e-9)
    # The cached inverse and theta stayed consistent with A and b.
    theta_ref = np.linalg.solve(A_ref, b_ref[..., None])[..., 0]
    np.testing.assert_allclose(policy.theta, theta_ref, rtol=0, atol=1e-9)


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in ARMS[:2]},
        "costs": {ARMS[0]: 0.2, ARMS[1]: 1.0},
        "cost_weight": 0.5,
        "alpha": 0.5,
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def _score(text: str, model: str) -> float:
    return 1.0 if ("math" in text) == (model == ARMS[1]) else 0.3


def _triple(
    router: MetaLLMRouterChatModel, text: str, answer: AIMessage, reward: float
) -> tuple[str, np.ndarray, float]:
    vector = np.array(KeywordEmbeddings().embed_documents([text]))
    return (
        answer.response_metadata["metallm"]["model"],
        query_features(vector)[0],
        reward,
    )


def _router_replay(
    router: MetaLLMRouterChatModel, triples: list[tuple[int, np.ndarray, float]]
) -> None:
    assert router.policy is not None
    reference = LinUCBPolicy(router.model_names, router.policy.dim)
    for arm, x, r in triples:
        reference.update(arm, x, r)
    for mine, theirs in zip(
        router.policy.statistics(), reference.statistics(), strict=True
    ):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)


@pytest.mark.usefixtures("fast_switching")
def test_router_threads_apply_every_reward_once() -> None:
    router = make_router()
    threads, calls = 8, 250
    logs: list[list[tuple[int, np.ndarray, float]]] = [[] for _ in range(threads)]

    def work(t: int) -> None:
        for i in range(calls):
            text = query("math" if (i + t) % 2 else "poetry", t * calls + i)
            answer = router.invoke(text)
            model = answer.response_metadata["metallm"]["model"]
            reward = router.record_feedback(answer, _score(text, model))
            logs[t].append(_triple(router, text, answer, reward))

    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    _router_replay(router, [t for log in logs for t in log])
    stats = router.stats()
    assert stats["applied"] == threads * calls
    assert stats["pending"] == stats["refused"] == 0


async def test_router_asyncio_tasks_apply_every_reward_once() -> None:
    router = make_router()
    texts = [query("math" if i % 3 else "poetry", i) for i in range(400)]

    async def one(text: str) -> tuple[int, np.ndarray, float]:
        answer = await router.ainvoke(text)
        model = answer.response_metadata["metallm"]["model"]
        await asyncio.sleep(0)  # let other tasks route before this reward lands
        reward = router.record_feedback(answer, _score(text, model))
        return _triple(router, text, answer, reward)

    triples = await asyncio.gather(*(one(t) for t in texts))
    _router_replay(router, list(triples))
    assert router.stats()["applied"] == len(texts)


def test_late_out_of_order_feedback_rewards_the_right_arm() -> None:
    router = make_router(max_pending=5_000)
    answers = [router.invoke(query("math", i)) for i in range(3_000)]
    assert router.stats()["pending"] == 3_000
    first, rest = answers[0], answers[1:]
    for answer in reversed(rest[::7]):  # out of order, thousands of calls later
        router.record_feedback(answer, 0.5)
    before = router.policy.statistics()[2].copy()  # type: ignore[union-attr]
    router.record_feedback(first, 1.0)
    after = router.policy.statistics()[2]  # type: ignore[union-attr]
    model = first.response_metadata["metallm"]["model"]
    names = router.model_names
    assert (after - before).tolist() == [int(name == model) for name in names]


def test_evicted_duplicate_and_unknown_feedback_is_refused_and_counted() -> None:
    router = make_router(max_pending=3)
    answers = [router.invoke(query("poetry", i)) for i in range(5)]
    router.record_feedback(answers[4], 1.0)
    before = [a.copy() for a in router.policy.statistics()]  # type: ignore[union-attr]
    cases = [
        (answers[0], "evicted"),
        (answers[4], "already rewarded"),
        ("no-such-run", "unknown"),
    ]
    for run, reason in cases:
        with pytest.raises(FeedbackError, match=reason):
            router.record_feedback(run, 1.0)
    with pytest.warns(UserWarning, match="evicted"):
        assert np.isnan(router.record_feedback(answers[1], 1.0, strict=False))
    for mine, old in zip(router.policy.statistics(), before, strict=True):  # type: ignore[union-attr]
        np.testing.assert_array_equal(mine, old)
    assert router.stats() == {
        "pending": 2,
        "applied": 1,
        "refused": 4,
        "expired": 0,
        "evicted": 2,
        "scorer_errors": 0,
        "embedding_failures": 0,
        "explored": 0,
        "explored_calls": 0,
        "explore_errors": 0,
        "explored_spend": 0.0,
        "cooldowns": 0,
        "cooling_down": 0,
    }


def test_pending_ttl_expires_decisions_and_reports_late_feedback() -> None:
    router = make_router(pending_ttl=60.0)
    now = [0.0]
    router.core.pending.clock = lambda: now[0]  # a controllable clock
    early = router.invoke(query("math", 1))
    now[0] = 30.0
    recent = router.invoke(query("math", 2))
    now[0] = 61.0
    assert not router.is_pending(early.response_metadata["metallm"]["run_id"])
    with pytest.raises(FeedbackError, match="expired after 60 s"):
        router.record_feedback(early, 1.0)
    router.record_feedback(recent, 1.0)
    assert router.stats() == {
        "pending": 0,
        "applied": 1,
        "refused": 1,
        "expired": 1,
        "evicted": 0,
        "scorer_errors": 0,
        "embedding_failures": 0,
        "explored": 0,
        "explored_calls": 0,
        "explore_errors": 0,
        "explored_spend": 0.0,
        "cooldowns": 0,
        "cooling_down": 0,
    }


def _decision(arm: int = 0) -> PendingDecision:
    return PendingDecision(ARMS[arm], 1, np.zeros(3), 0.5)


def test_pending_table_refuses_reused_run_ids_and_restores_failed_updates() -> None:
    table = PendingDecisions(10)
    table.add("a", _decision())
    with pytest.raises(ValueError, match="already routed"):
        table.add("a", _decision(1))
    assert table.take("a").child == ARMS[0]
    with pytest.raises(ValueError, match="already routed"):
        table.add("a", _decision(1))  # its late duplicate feedback must not land
    table.restore("a", _decision())
    assert "a" in table
    assert table.stats() == {
        "pending": 1,
        "applied": 0,
        "refused": 0,
        "expired": 0,
        "evicted": 0,
        "scorer_errors": 0,
        "embedding_failures": 0,
    }


@pytest.mark.parametrize("ttl", [0.0, -1.0, float("nan"), float("inf")])
def test_pending_ttl_must_be_positive_and_finite(ttl: float) -> None:
    with pytest.raises(ValueError, match="pending_ttl"):
        make_router(pending_ttl=ttl)


def test_failed_update_restores_the_decision() -> None:
    router = make_router()
    answer = router.invoke(query("math", 1))
    assert router.policy is not None

    def broken(*args: object) -> int:
        raise OSError("store unreachable")

    router.policy.store.add = broken  # type: ignore[method-assign]
    with pytest.raises(OSError, match="unreachable"):
        router.record_feedback(answer, 1.0)
    assert router.is_pending(answer.response_metadata["metallm"]["run_id"])
    assert router.policy.counts.sum() == 0
    assert router.stats()["applied"] == 0
