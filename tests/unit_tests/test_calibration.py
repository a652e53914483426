"""Warm start (``router.fit``), exact cost-weight shifts and budget calibration."""

from __future__ import annotations

import math
import random
from typing import Any

import numpy as np
import pytest

from langchain_metallm import LinUCBPolicy, MetaLLMRouterChatModel
from langchain_metallm.core.calibration import CostWeightCalibration
from langchain_metallm.core.costs import scores_from_rewards

from .fakes import KINDS, EchoChild, KeywordEmbeddings, query

NAMES = ["cheap", "mid", "pricey"]
COSTS = {"cheap": 0.1, "mid": 0.4, "pricey": 1.0}


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in NAMES},
        "costs": COSTS,
        "cost_weight": 0.3,
        "alpha": 0.5,
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def true_score(kind: str, model: str, i: int) -> float:
    """Poems: every model is fine. Math: only the priciest is right; ``mid`` half."""
    if kind == "poetry":
        return 1.0
    return {"cheap": 0.0, "mid": float(i % 2), "pricey": 1.0}[model]


def dataset(n: int, seed: int = 0) -> tuple[list[str], np.ndarray]:
    rng = random.Random(seed)
    prompts, rows = [], []
    for i in range(n):
        kind = rng.choice(KINDS)
        prompts.append(query(kind, i))
        rows.append([true_score(kind, m, i) for m in NAMES])
    return prompts, np.array(rows)


def state(router: MetaLLMRouterChatModel) -> list[bytes]:
    """Everything learned, byte for byte, plus the cost weight."""
    policy = router.policy
    assert policy is not None
    arrays = [*policy.statistics(), policy.theta]
    return [a.tobytes() for a in arrays] + [repr(router.cost_weight).encode()]


def assert_same_statistics(
    left: LinUCBPolicy, right: LinUCBPolicy, atol: float = 1e-9
) -> None:
    for a, b in zip(left.statistics(), right.statistics(), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=atol)
    np.testing.assert_allclose(left.theta, right.theta, rtol=0, atol=atol)


# fit ------------------------------------------------------------------------


def test_fit_equals_online_feedback_on_the_routed_arms() -> None:
    prompts, scores = dataset(60)
    online = make_router()
    observed = np.full_like(scores, np.nan)
    for i, prompt in enumerate(prompts):
        answer = online.invoke(prompt)
        arm = NAMES.index(answer.response_metadata["metallm"]["model"])
        online.record_feedback(answer, scores[i, arm])
        observed[i, arm] = scores[i, arm]
    fitted = make_router()
    fitted.fit(prompts, observed)
    assert online.policy is not None and fitted.policy is not None
    assert_same_statistics(online.policy, fitted.policy)
    assert fitted.policy.counts.tolist() == online.policy.counts.tolist()


def test_fit_equals_one_update_per_observed_score_in_one_embedding_call() -> None:
    prompts, scores = dataset(40, seed=1)
    rng = np.random.default_rng(0)
    scores[rng.random(scores.shape) < 0.3] = np.nan
    embeddings = KeywordEmbeddings()
    router = make_router(embeddings=embeddings)
    router.fit(prompts, scores)
    assert len(embeddings.calls) == 1
    assert sorted(embeddings.calls[0]) == sorted(set(prompts))
    contexts = np.array(
        [[*KeywordEmbeddings().embed_query(p), 1.0] for p in prompts], dtype=float
    )
    reference = LinUCBPolicy(NAMES, 5, alpha=0.5)
    for i, x in enumerate(contexts):
        for arm in range(3):
            if not math.isnan(scores[i, arm]):
                reference.update(arm, x, scores[i, arm])  # scores, whatever the cost
    assert router.policy is not None
    assert_same_statistics(router.policy, reference)


def test_fit_takes_dicts_keyed_by_model_name_and_adds_to_what_was_learned() -> None:
    prompts, scores = dataset(30, seed=2)
    rows = [
        {name: float(s) for name, s in zip(NAMES, row, strict=True) if i % 3 or s}
        for i, row in enumerate(scores)
    ]
    as_array = np.array([[row.get(m, np.nan) for m in NAMES] for row in rows])
    by_dicts, by_array = make_router(), make_router()
    for router in (by_dicts, by_array):
        router.invoke(query("math", 999))  # something learned online first
    by_dicts.fit(prompts[:10], rows[:10])
    by_dicts.fit(prompts[10:], rows[10:])
    by_array.fit(prompts, as_array)
    assert by_dicts.policy is not None and by_array.policy is not None
    assert_same_statistics(by_dicts.policy, by_array.policy)


def test_fit_routes_math_to_the_model_that_gets_it_right() -> None:
    prompts, scores = dataset(80)
    router = make_router(alpha=0.0)
    router.fit(prompts, scores)
    assert router.route(query("math", 1000)).chosen == "pricey"
    assert router.route(query("poetry", 1000)).chosen == "cheap"


@pytest.mark.parametrize(
    ("prompts", "scores", "error", "match"),
    [
        (["a", "b"], [[1.0, 0.0, 1.0]], ValueError, "2 prompts but 1 score rows"),
        (
            ["a"],
            [{"cheap": 1.0, "gpt-9": 0.0}],
            ValueError,
            r"unknown models \['gpt-9'\]",
        ),
        (["a"], [[1.0, 1.5, 0.0]], ValueError, r"row 0, model 'mid' is 1.5"),
        (["a"], [[1.0, -0.1, 0.0]], ValueError, r"scores must be in \[0, 1\]"),
        (["a"], [[1.0, np.inf, 0.0]], ValueError, "model 'mid' is inf"),
        (["a"], [[1.0, 0.0]], ValueError, r"expected shape \(n, 3\)"),
        (["a"], [[np.nan, np.nan, np.nan]], ValueError, "nothing observed"),
        ([], np.zeros((0, 3)), ValueError, "prompts: empty"),
        ("a prompt", [[1.0, 0.0, 1.0]], TypeError, "list of strings"),
        ([1], [[1.0, 0.0, 1.0]], TypeError, "item 0 is int"),
        (["a"], [{"cheap": "yes"}], TypeError, "'cheap' is 'yes', not a number"),
        (["a", "b"], [{"cheap": 1.0}, [1.0, 0.0, 1.0]], TypeError, "row 1 is list"),
        (["a"], [["x", 0.0, 1.0]], TypeError, "array of numbers"),
    ],
)
def test_bad_fit_data_is_refused_and_changes_nothing(
    prompts: Any, scores: Any, error: type[Exception], match: str
) -> None:
    router = make_router()
    router.fit(*dataset(10))
    before = state(router)
    with pytest.raises(error, match=match):
        router.fit(prompts, scores)
    assert state(router) == before


def test_a_failed_first_fit_creates_no_policy() -> None:
    router = make_router()
    with pytest.raises(ValueError, match="unknown models"):
        router.fit(["x"], [{"nope": 1.0}])
    assert router.policy is None


# set_cost_weight ------------------------------------------------------------


@pytest.mark.parametrize(("old", "new"), [(0.0, 0.7), (0.9, 0.05), (0.3, 0.3)])
def test_a_new_cost_weight_changes_decisions_not_what_was_learned(
    old: float, new: float
) -> None:
    prompts, scores = dataset(50, seed=3)
    moved, direct = make_router(cost_weight=old), make_router(cost_weight=new)
    for router in (moved, direct):
        router.fit(prompts, scores)
    moved.set_cost_weight(new)
    assert moved.cost_weight == new
    assert moved.policy is not None and direct.policy is not None
    assert [a.tobytes() for a in moved.policy.statistics()] == [
        a.tobytes() for a in direct.policy.statistics()
    ]
    cost = np.array([COSTS[m] for m in NAMES]) / max(COSTS.values())
    for prompt in prompts[:10]:
        x = np.array([*KeywordEmbeddings().embed_query(prompt), 1.0])
        mean, width = moved.policy.predict(x[None])
        value = mean[0] - new * cost + moved.alpha * width[0]
        assert moved.route(prompt).chosen == NAMES[int(np.argmax(value))]


def test_rewards_convert_to_scores_only_with_the_bias_feature() -> None:
    policy = LinUCBPolicy(NAMES, 3)
    policy.update(0, [1.0, 2.0, 0.5], 1.0)
    A, b, counts = policy.statistics()
    with pytest.raises(ValueError, match="bias feature"):
        scores_from_rewards(1.0, A, b, counts, np.ones(3), 0.5)


def test_bad_cost_weight_is_refused() -> None:
    router = make_router()
    router.fit(*dataset(10))
    before = state(router)
    for bad in (-0.1, math.nan, math.inf):
        with pytest.raises(ValueError, match="cost_weight"):
            router.set_cost_weight(bad)
    assert state(router) == before


# calibrate_cost_weight --------------------------------------------------------


def two_model_router(**overrides: Any) -> MetaLLMRouterChatModel:
    return make_router(
        models={n: EchoChild(name_tag=n) for n in ("cheap", "pricey")},
        costs={"cheap": 0.1, "pricey": 1.0},
        **overrides,
    )


def kinds_data(n: int) -> tuple[list[str], list[dict[str, float]]]:
    """Math: only ``pricey`` is right; poems: both are."""
    prompts = [query(KINDS[i % 2], i) for i in range(n)]
    scores = [
        {"cheap": float(KINDS[i % 2] == "poetry"), "pricey": 1.0} for i in range(n)
    ]
    return prompts, scores


@pytest.mark.parametrize(
    ("budget", "accuracy", "cost"),
    [(0.6, 1.0, 0.55), (0.3, 0.5, 0.1), (1.0, 1.0, 0.55)],
)
def test_calibration_finds_the_budget_rule_answer(
    budget: float, accuracy: float, cost: float
) -> None:
    router = two_model_router(cost_weight=0.0)
    router.fit(*kinds_data(60))
    result = router.calibrate_cost_weight(*kinds_data(40), budget=budget)
    assert isinstance(result, CostWeightCalibration)
    assert result.accuracy == pytest.approx(accuracy)
    assert result.cost == pytest.approx(cost)
    assert result.budget == budget
    assert router.cost_weight == result.cost_weight
    assert result.cost_weight in [point.cost_weight for point in result.curve]
    assert all(
        point.accuracy <= result.accuracy
        for point in result.curve
        if point.cost <= budget
    )


def test_calibration_curve_is_what_each_refitted_policy_would_choose() -> None:
    train, val = dataset(120, seed=4), dataset(60, seed=5)
    router = make_router(cost_weight=0.2)
    router.fit(*train)
    weights = [0.0, 0.1, 0.25, 0.5, 0.8, 1.2, 3.0]
    result = router.calibrate_cost_weight(*val, budget=0.5, cost_weights=weights)
    cost = np.array([COSTS[m] for m in NAMES])
    contexts = np.array([[*KeywordEmbeddings().embed_query(p), 1.0] for p in val[0]])
    assert router.policy is not None
    mean = router.policy.predict(contexts)[0]
    for point in result.curve:
        chosen = np.argmax(mean - point.cost_weight * cost[None, :], axis=1)
        rows = np.arange(len(chosen))
        assert point.accuracy == pytest.approx(val[1][rows, chosen].mean(), abs=1e-12)
        assert point.cost == pytest.approx(cost[chosen].mean(), abs=1e-12)
    best = max(
        (p for p in result.curve if p.cost <= 0.5),
        key=lambda p: (p.accuracy, -p.cost, -p.cost_weight),
    )
    assert (result.cost_weight, result.accuracy) == (best.cost_weight, best.accuracy)
    direct = make_router(cost_weight=result.cost_weight)
    direct.fit(*train)
    assert router.policy is not None and direct.policy is not None
    assert_same_statistics(router.policy, direct.policy)


def test_default_candidates_reach_the_cheapest_model() -> None:
    router = make_router(cost_weight=0.0)
    router.fit(*dataset(80))
    result = router.calibrate_cost_weight(*dataset(40, seed=9), budget=0.1)
    assert result.cost == pytest.approx(0.1)
    assert max(p.cost_weight for p in result.curve) >= 2 / 0.3


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"budget": 0.05}, ValueError, "between the cheapest child's normalised"),
        ({"budget": math.nan}, ValueError, "budget: must be between"),
        ({"budget": math.inf}, ValueError, "budget: must be between"),
        ({"budget": "0.5"}, TypeError, "budget: expected a number"),
        (
            {"budget": 0.12, "cost_weights": [0.0]},
            ValueError,
            "no candidate cost weight keeps the mean cost <= 0.12",
        ),
        ({"budget": 0.5, "cost_weights": []}, ValueError, "at least one candidate"),
        ({"budget": 0.5, "cost_weights": [0.1, -1]}, ValueError, "cost_weights"),
    ],
)
def test_bad_calibration_requests_are_refused_and_change_nothing(
    kwargs: dict[str, Any], error: type[Exception], match: str
) -> None:
    router = two_model_router(cost_weight=0.0)
    router.fit(*kinds_data(60))
    before = state(router)
    with pytest.raises(error, match=match):
        router.calibrate_cost_weight(*kinds_data(20), **kwargs)
    assert state(router) == before


def test_calibration_needs_every_score_and_a_fitted_router() -> None:
    router = two_model_router()
    prompts, scores = kinds_data(10)
    with pytest.raises(ValueError, match="nothing learned yet"):
        router.calibrate_cost_weight(prompts, scores, budget=0.5)
    router.fit(prompts, scores)
    before = state(router)
    partial = [dict(row) for row in scores]
    del partial[3]["cheap"]
    with pytest.raises(ValueError, match="row 3, model 'cheap' is not observed"):
        router.calibrate_cost_weight(prompts, partial, budget=0.5)
    assert state(router) == before
