"""Metrics on hand-computed cases, and the baseline policies on synthetic problems."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_metallm.bench.metrics import (
    Point,
    apgr,
    best_within_budget,
    cpt,
    evaluate,
)
from langchain_metallm.bench.routers import (
    NearestNeighbours,
    OfflineRidge,
    OnlineLinUCB,
    Oracle,
    Problem,
    RandomPolicy,
    SingleModel,
)
from langchain_metallm.core.features import query_features


def test_evaluate_accuracy_cost_and_shares() -> None:
    scores = np.array([[1.0, 0.0], [0.0, 1.0], [0.5, 0.5]])
    cost = np.array([0.1, 1.0])
    point = evaluate(np.array([0, 1, 0]), scores, cost)
    assert point.accuracy == pytest.approx(2.5 / 3)
    assert point.cost == pytest.approx(1.2 / 3)
    assert point.shares == pytest.approx((2 / 3, 1 / 3))
    with pytest.raises(ValueError, match="model indices"):
        evaluate(np.array([0, 2, 0]), scores, cost)
    with pytest.raises(ValueError, match="expected shape"):
        evaluate(np.array([0, 1]), scores, cost)


def test_apgr_and_cpt_on_a_hand_computed_curve() -> None:
    # weak 0.5, strong 1.0; one point at 50% strong calls recovering 80% of the gap:
    # PGR curve (0, 0) -> (0.5, 0.8) -> (1, 1).
    shares, accs = [0.5], [0.9]
    assert apgr(shares, accs, 0.5, 1.0) == pytest.approx(0.25 * 0.8 + 0.25 * 1.8)
    assert cpt(0.5, shares, accs, 0.5, 1.0) == pytest.approx(0.5 * 0.5 / 0.8)
    assert cpt(0.8, shares, accs, 0.5, 1.0) == pytest.approx(0.5)
    assert cpt(0.9, shares, accs, 0.5, 1.0) == pytest.approx(0.75)


def test_points_at_the_same_share_are_averaged() -> None:
    assert apgr([0.5, 0.5], [0.8, 1.0], 0.5, 1.0) == pytest.approx(0.65)


def test_random_routing_recovers_half_the_gap() -> None:
    shares = [0.1, 0.3, 0.5, 0.7]
    accs = [0.6 + 0.2 * s for s in shares]  # on the weak-strong diagonal
    assert apgr(shares, accs, 0.6, 0.8) == pytest.approx(0.5)
    assert cpt(0.5, shares, accs, 0.6, 0.8) == pytest.approx(0.5)
    assert cpt(0.8, [], [], 0.6, 0.8) == pytest.approx(0.8)


def test_pgr_needs_a_gap_and_a_valid_target() -> None:
    with pytest.raises(ValueError, match="same accuracy"):
        apgr([0.5], [0.7], 0.7, 0.7)
    with pytest.raises(ValueError, match="CPT target"):
        cpt(1.5, [0.5], [0.7], 0.6, 0.8)


def test_best_within_budget() -> None:
    points = [Point(0.7, 0.2, ()), Point(0.8, 0.6, ()), Point(0.7, 0.1, ())]
    assert best_within_budget(points, 0.5) == Point(0.7, 0.1, ())
    assert best_within_budget(points, 1.0) == Point(0.8, 0.6, ())
    assert best_within_budget(points, 0.05) is None


def make_problem(
    train_emb: np.ndarray,
    train_scores: np.ndarray,
    test_emb: np.ndarray,
    test_scores: np.ndarray,
    cost: list[float],
) -> Problem:
    feats = query_features(np.vstack([train_emb, test_emb]))
    n = len(train_emb)
    return Problem(
        models=tuple(f"m{j}" for j in range(len(cost))),
        cost=np.array(cost),
        tasks=None,
        train_embeddings=train_emb,
        train_features=feats[:n],
        train_scores=train_scores,
        test_embeddings=test_emb,
        test_features=feats[n:],
        test_scores=test_scores,
        test_texts=tuple(f"query {i}" for i in range(len(test_emb))),
    )


def test_oracle_picks_the_cheapest_best_model() -> None:
    scores = np.array([[1.0, 1.0, 0.0], [0.0, 1.0, 1.0], [0.0, 0.0, 0.0]])
    emb = np.eye(3)
    problem = make_problem(emb, scores, emb, scores, [0.2, 0.5, 1.0])
    free, costly = Oracle().route(problem, [0.0, 0.9])
    np.testing.assert_array_equal(free.choices, [0, 1, 0])
    # at p = 0.9 the second query is still worth model 1 (1 - 0.45 > 0 - 0.18)
    np.testing.assert_array_equal(costly.choices, [0, 1, 0])
    assert evaluate(free.choices, scores, problem.cost).accuracy == pytest.approx(2 / 3)


def test_single_model_and_random() -> None:
    scores = np.zeros((300, 3))
    emb = np.ones((300, 2))
    problem = make_problem(emb, scores, emb, scores, [0.1, 0.2, 1.0])
    (single,) = SingleModel(2, "m2").route(problem, [0.5])
    assert set(single.choices) == {2}
    first, second = RandomPolicy(seed=1).route(problem, [0.0, 1.0])
    np.testing.assert_array_equal(first.choices, second.choices)
    shares = np.bincount(first.choices, minlength=3) / 300
    assert np.all(np.abs(shares - 1 / 3) < 0.1)
    other = RandomPolicy(seed=2).route(problem, [0.0])[0]
    assert not np.array_equal(first.choices, other.choices)


def clustered(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Two clusters: model 0 (cheap) is right on cluster A only, model 1 everywhere."""
    rng = np.random.default_rng(seed)
    side = rng.integers(0, 2, size=n)
    emb = np.stack([side, 1 - side], axis=1) + rng.normal(0, 0.05, size=(n, 2))
    scores = np.stack([(side == 0).astype(float), np.ones(n)], axis=1)
    return emb, scores


def test_learned_policies_route_cheap_where_it_is_enough() -> None:
    train_emb, train_scores = clustered(200, 0)
    test_emb, test_scores = clustered(200, 1)
    problem = make_problem(train_emb, train_scores, test_emb, test_scores, [0.1, 1.0])
    oracle = Oracle().route(problem, [0.5])[0].choices
    for policy in (NearestNeighbours(5), OfflineRidge(), OnlineLinUCB(warm=True)):
        (routing,) = policy.route(problem, [0.5])
        assert np.mean(routing.choices == oracle) > 0.95, policy.name
    # at p = 0 cost is ignored: cluster B (where only model 1 is right) gets model 1
    (greedy,) = OfflineRidge().route(problem, [0.0])
    cluster_b = test_scores[:, 0] == 0
    assert np.all(greedy.choices[cluster_b] == 1)


def test_cold_linucb_learns_online_and_is_timed() -> None:
    train_emb, train_scores = clustered(10, 0)
    test_emb, test_scores = clustered(600, 1)
    problem = make_problem(train_emb, train_scores, test_emb, test_scores, [0.1, 1.0])
    # As a never-fitted router: online clusters of the stream, optimistic prior.
    (cold,) = OnlineLinUCB(warm=False).route(problem, [0.5])
    oracle = Oracle().route(problem, [0.5])[0].choices
    assert np.mean(cold.choices[-200:] == oracle[-200:]) > 0.9
    assert cold.seconds_per_query > 0


def test_knn_predicts_neighbour_means() -> None:
    train_emb = np.array([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0]])
    train_scores = np.array([[1.0, 0.0], [0.0, 0.0], [0.0, 1.0]])
    test_emb = np.array([[1.0, 0.05]])
    problem = make_problem(
        train_emb, train_scores, test_emb, np.zeros((1, 2)), [0.5, 1.0]
    )
    np.testing.assert_allclose(NearestNeighbours(2).predict(problem), [[0.5, 0.0]])
    with pytest.raises(ValueError, match="k: must be >= 1"):
        NearestNeighbours(0)
