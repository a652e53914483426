"""Batch planning checked against brute-force enumeration of all k^n assignments."""

from __future__ import annotations

import json
from dataclasses import dataclass

import numpy as np
import pytest

from langchain_metallm.core.pareto import ParetoFront, PlannedAssignment

TOL = 1e-9
GRID = 0.05


@dataclass
class Case:
    scores: np.ndarray
    costs: np.ndarray  # (k,) or (n, k), as given to build
    front: ParetoFront
    all_costs: np.ndarray  # total cost of every assignment
    all_scores: np.ndarray  # total score of every assignment

    @property
    def n(self) -> int:
        return int(self.scores.shape[0])

    def best_within(self, budget: float) -> float:
        return float(self.all_scores[self.all_costs <= budget + TOL].max())

    def cheapest_reaching(self, total: float) -> float:
        return float(self.all_costs[self.all_scores >= total - TOL].min())


def make_case(seed: int, *, on_grid: bool) -> Case:
    """Small random batch: ties, equal costs, dominated models, per-query costs."""
    rng = np.random.default_rng(seed)
    n, k = int(rng.integers(1, 7)), int(rng.integers(1, 5))
    if seed % 3 == 0:  # heavy ties
        scores = rng.choice([0.0, 0.25, 0.5, 0.75, 1.0], size=(n, k))
    else:  # lower confidence bounds may stray slightly outside [0, 1]
        scores = rng.uniform(-0.05, 1.05, size=(n, k))
    shape = (n, k) if seed % 2 else (k,)
    if on_grid:
        costs = rng.integers(0, 21, size=shape) * GRID
    else:
        costs = rng.uniform(0.0, 1.0, size=shape)
    if k >= 2 and seed % 4 == 1:  # model 1 copies model 0's cost: equal costs
        costs[..., 1] = costs[..., 0]
    if k >= 3 and seed % 5 == 2:  # model 2 is dominated by model 0
        costs[..., 2] = costs[..., 0] + 2 * GRID
        scores[:, 2] = scores[:, 0] - 0.1
    front = ParetoFront.build(
        scores=scores, costs=costs, models=[f"m{j}" for j in range(k)]
    )
    arms = np.indices((k,) * n).reshape(n, -1).T  # every assignment
    c = np.broadcast_to(costs, (n, k))
    rows = np.arange(n)
    return Case(scores, costs, front, c[rows, arms].sum(1), scores[rows, arms].sum(1))


def check_consistent(case: Case, plan: PlannedAssignment) -> None:
    """The reported totals are those of the reported arms and model names."""
    c = np.broadcast_to(case.costs, case.scores.shape)
    rows = np.arange(case.n)
    assert plan.models == [case.front.models[a] for a in plan.arms]
    assert plan.predicted_cost == pytest.approx(c[rows, plan.arms].sum(), abs=TOL)
    assert plan.predicted_accuracy == pytest.approx(
        case.scores[rows, plan.arms].mean(), abs=TOL
    )


def budgets(front: ParetoFront) -> np.ndarray:
    lo, hi = front.costs[0], front.costs[-1]
    grid = np.arange(np.ceil(lo / GRID - TOL), np.floor(hi / GRID + TOL) + 1) * GRID
    between = (front.costs[:-1] + front.costs[1:]) / 2
    return np.concatenate([front.costs, grid, between, np.linspace(lo, hi + 0.3, 9)])


def targets(front: ParetoFront) -> np.ndarray:
    a = front.accuracies
    return np.concatenate([a, (a[:-1] + a[1:]) / 2, np.linspace(a[0] - 0.2, a[-1], 9)])


SEEDS = range(160)


@pytest.mark.parametrize("on_grid", [True, False])
def test_front_is_exactly_the_supported_brute_force_front(on_grid: bool) -> None:
    for seed in SEEDS:
        case = make_case(seed, on_grid=on_grid)
        front = case.front
        assert 1 <= len(front) <= 1 + case.n * (len(front.models) - 1)
        assert np.all(np.diff(front.costs) > 0) and np.all(
            np.diff(front.accuracies) > 0
        )
        np.testing.assert_allclose(front.points[:, 0], front.costs)
        for cost, accuracy in front.points:  # each point is Pareto-optimal
            assert case.best_within(cost) <= accuracy * case.n + TOL
            assert case.cheapest_reaching(accuracy * case.n) >= cost - TOL
        for cost, score in upper_hull(case.all_costs, case.all_scores):
            assert np.any(
                (abs(front.costs - cost) <= TOL)
                & (abs(front.accuracies * case.n - score) <= TOL)
            ), f"seed {seed}: hull vertex ({cost}, {score}) missing from the front"
        for t in (0, len(front) // 2, -1):
            plan = front.point(t)
            check_consistent(case, plan)
            assert plan.predicted_cost == pytest.approx(front.costs[t], abs=TOL)
            assert plan.predicted_accuracy == pytest.approx(
                front.accuracies[t], abs=TOL
            )


def upper_hull(costs: np.ndarray, scores: np.ndarray) -> list[tuple[float, float]]:
    """Vertices of the increasing upper convex hull of a (cost, score) cloud."""
    order = np.lexsort((-scores, costs))
    vertices: list[tuple[float, float]] = []
    for c, s in zip(costs[order], scores[order], strict=True):
        if vertices and s <= vertices[-1][1] + TOL:
            continue  # dominated by a cheaper point
        while len(vertices) >= 2:
            (c1, s1), (c2, s2) = vertices[-2], vertices[-1]
            if (s2 - s1) * (c - c1) <= (s - s1) * (c2 - c1) + TOL:
                vertices.pop()  # vertex 2 lies on or below the chord
            else:
                break
        vertices.append((float(c), float(s)))
    return vertices


def test_for_budget_is_the_brute_force_optimum_when_costs_lie_on_the_grid() -> None:
    from_dp = 0
    for seed in SEEDS:
        case = make_case(seed, on_grid=True)
        for budget in budgets(case.front):
            plan = case.front.for_budget(budget, grid_step=GRID)
            check_consistent(case, plan)
            assert plan.budget == budget and plan.target is None
            assert plan.predicted_cost <= budget + TOL
            assert plan.optimal, f"seed {seed}, budget {budget}"
            assert plan.predicted_accuracy * case.n == pytest.approx(
                case.best_within(budget), abs=TOL
            ), f"seed {seed}, budget {budget}"
            from_dp += not plan.supported
    assert from_dp > 200  # the gap DP beat the supported front that often


def test_for_budget_off_grid_stays_in_budget_and_above_the_front() -> None:
    for seed in SEEDS:
        case = make_case(seed, on_grid=False)
        front = case.front
        for budget in budgets(front):
            plan = front.for_budget(budget, max_cells=600)
            check_consistent(case, plan)
            best = case.best_within(budget)
            below = np.searchsorted(front.costs, budget + TOL) - 1
            assert plan.predicted_cost <= budget + TOL
            assert plan.predicted_accuracy >= front.accuracies[below] - TOL
            assert (
                plan.predicted_accuracy * case.n
                <= best + TOL
                <= (plan.bound * case.n + 2 * TOL)
            )
            if plan.optimal:
                assert plan.predicted_accuracy * case.n == pytest.approx(best, abs=TOL)


def test_for_accuracy_is_the_brute_force_cheapest_when_costs_lie_on_the_grid() -> None:
    from_dp = 0
    for seed in SEEDS:
        case = make_case(seed, on_grid=True)
        for accuracy in targets(case.front):
            plan = case.front.for_accuracy(accuracy, grid_step=GRID)
            check_consistent(case, plan)
            assert plan.target == accuracy and plan.budget is None
            assert plan.predicted_accuracy >= accuracy - TOL
            assert plan.optimal, f"seed {seed}, accuracy {accuracy}"
            assert plan.predicted_cost == pytest.approx(
                case.cheapest_reaching(accuracy * case.n), abs=TOL
            ), f"seed {seed}, accuracy {accuracy}"
            from_dp += not plan.supported
    assert from_dp > 30


def test_for_accuracy_off_grid_is_bounded_by_the_front_and_the_lp_bound() -> None:
    for seed in SEEDS:
        case = make_case(seed, on_grid=False)
        front = case.front
        for accuracy in targets(front):
            plan = front.for_accuracy(accuracy, max_cells=600)
            check_consistent(case, plan)
            cheapest = case.cheapest_reaching(accuracy * case.n)
            reaching = int(np.searchsorted(front.accuracies, accuracy - TOL))
            assert plan.predicted_accuracy >= accuracy - TOL
            assert plan.predicted_cost <= front.costs[reaching] + TOL
            assert plan.bound - 2 * TOL <= cheapest <= plan.predicted_cost + TOL
            if plan.optimal:
                assert plan.predicted_cost == pytest.approx(cheapest, abs=TOL)


def test_truncated_gap_dp_still_respects_budget_and_front() -> None:
    rng = np.random.default_rng(7)
    scores, costs = rng.uniform(0, 1, (40, 5)), rng.uniform(0, 1, 5)
    front = ParetoFront.build(scores=scores, costs=costs, models=list("abcde"))
    for budget in np.linspace(front.costs[0], front.costs[-1], 25):
        plan = front.for_budget(budget, max_free=1)
        below = np.searchsorted(front.costs, budget + TOL) - 1
        assert plan.predicted_cost <= budget + TOL
        assert plan.predicted_accuracy >= front.accuracies[below] - TOL
        assert plan.predicted_accuracy <= plan.bound + TOL


def test_gap_dp_finds_the_non_supported_plan() -> None:
    # Query 0 gains 1.0 for cost 1, query 1 gains 1.9 for cost 2: the front is
    # (0, 0) -> (1, 1.0) -> (3, 2.9), but budget 2 affords query 1's upgrade alone.
    front = ParetoFront.build(
        scores=[[0.0, 1.0], [0.0, 1.9]], costs=[[0, 1], [0, 2]], models=["s", "l"]
    )
    np.testing.assert_allclose(front.points, [[0, 0], [1, 0.5], [3, 1.45]])
    plan = front.for_budget(2.0, grid_step=1.0)
    assert plan.models == ["s", "l"] and plan.arms == [0, 1]
    assert (plan.predicted_cost, plan.predicted_accuracy) == (2.0, 0.95)
    assert not plan.supported and plan.optimal
    assert plan.bound == pytest.approx((1.0 + 0.95) / 2)
    cheapest = front.for_accuracy(0.9)
    assert cheapest.arms == [0, 1] and cheapest.predicted_cost == 2.0


def test_budget_edges() -> None:
    front = ParetoFront.build(
        scores=[[0.2, 0.6, 0.9], [0.5, 0.5, 0.7]], costs=[0.1, 0.4, 1.0], models="abc"
    )
    best = front.point(-1)
    for budget in (front.costs[-1], 50.0):  # budget beyond use: best-score plan
        plan = front.for_budget(budget)
        assert plan.arms == best.arms and plan.supported and plan.optimal
        assert plan.predicted_cost < budget + TOL
    cheapest = front.for_budget(front.costs[0])
    assert cheapest.arms == [0, 0] and cheapest.optimal
    assert front.for_accuracy(-1.0).arms == cheapest.arms
    top = front.for_accuracy(front.accuracies[-1])
    assert top.arms == best.arms


def test_ties_go_to_the_cheaper_then_lower_index_model() -> None:
    # b duplicates a (same cost, same score); c costs more for the same score.
    front = ParetoFront.build(
        scores=[[0.5, 0.5, 0.5, 0.9]], costs=[0.2, 0.2, 0.3, 1.0], models="abcd"
    )
    assert [r["model"] for r in front.to_records()] == [None, "d"]
    assert front.point(0).models == ["a"]
    single = ParetoFront.build(scores=[[0.3], [0.8]], costs=[0.5], models=["only"])
    assert len(single) == 1 and single.for_budget(1.0).models == ["only", "only"]


def test_collinear_steps_stay_in_hull_order_despite_rounding() -> None:
    # In floats slope(0.1 -> 0.7) exceeds slope(0 -> 0.1) by one ulp here; the
    # front must still take the nearer step first.
    costs = np.array([0.0, 0.1, 0.7])
    front = ParetoFront.build(scores=[costs * 0.9], costs=costs, models="abc")
    assert [r["model"] for r in front.to_records()] == [None, "b", "c"]
    for t in range(len(front)):
        assert front.point(t).predicted_cost == pytest.approx(front.costs[t])


def test_exports_are_plain_python() -> None:
    front = ParetoFront.build(
        scores=[[0.1, 0.8], [0.4, 0.6]], costs=[0.25, 1.0], models=["cheap", "big"]
    )
    records = front.to_records()
    assert len(records) == len(front) == 3
    assert records[0] == {
        "point": 0,
        "cost": 0.5,
        "accuracy": 0.25,
        "query": None,
        "model": None,
    }
    assert records[1]["query"] == 0 and records[1]["model"] == "big"
    plan = front.for_budget(1.3)
    data = plan.to_dict()
    assert json.loads(json.dumps(data)) == data
    assert data["models"] == ["big", "cheap"] and data["budget"] == 1.3


def test_plot_returns_the_axes() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    front = ParetoFront.build(
        scores=[[0.1, 0.8], [0.4, 0.6]], costs=[0.25, 1.0], models=["a", "b"]
    )
    ax = front.plot(label="batch")
    line = ax.get_lines()[0]
    np.testing.assert_allclose(line.get_xdata(), front.costs)
    assert line.get_label() == "batch"
    _, other = plt.subplots()
    assert front.plot(ax=other) is other
    plt.close("all")


@pytest.mark.parametrize(
    ("scores", "costs", "models", "message"),
    [
        (np.zeros((0, 2)), [0.1, 1.0], ["a", "b"], "empty"),
        ([0.1, 0.2], [0.1, 1.0], ["a", "b"], r"\(n, k\) matrix"),
        ([[0.1, 0.2]], [0.1, 1.0], ["a"], "2 columns but 1 models"),
        ([[0.1, 0.2]], [0.1, 1.0, 0.5], ["a", "b"], "costs: expected shape"),
        ([[0.1, 0.2]], [[0.1, 1.0], [0.1, 1.0]], ["a", "b"], "costs: expected shape"),
        ([[np.nan, 0.2]], [0.1, 1.0], ["a", "b"], "scores: contain NaN"),
        ([[0.1, np.inf]], [0.1, 1.0], ["a", "b"], "scores: contain NaN"),
        ([[0.1, 0.2]], [np.nan, 1.0], ["a", "b"], "costs: contain NaN"),
        ([[0.1, 0.2]], [-0.1, 1.0], ["a", "b"], "costs: must be >= 0"),
        ([[0.1, 0.2]], [0.1, 1.0], ["a", "a"], "unique"),
    ],
)
def test_bad_inputs_raise(
    scores: object, costs: object, models: list[str], message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        ParetoFront.build(scores=scores, costs=costs, models=models)  # type: ignore[arg-type]


def test_bad_requests_raise_with_the_limits() -> None:
    front = ParetoFront.build(
        scores=[[0.2, 0.6], [0.5, 0.9]], costs=[0.1, 1.0], models=["a", "b"]
    )
    with pytest.raises(ValueError, match=r"below the cheapest .* costs 0\.2"):
        front.for_budget(0.1)
    with pytest.raises(ValueError, match=r"best achievable predicted accuracy 0\.75"):
        front.for_accuracy(0.8)
    with pytest.raises(ValueError, match="total_cost: must be finite"):
        front.for_budget(float("nan"))
    with pytest.raises(TypeError, match="expected a number"):
        front.for_accuracy("0.5")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="grid_step: must be a finite number > 0"):
        front.for_budget(1.0, grid_step=0.0)
    with pytest.raises(ValueError, match="use a coarser grid_step"):
        front.for_budget(1.0, grid_step=1e-9)
    with pytest.raises(ValueError, match="max_free and max_cells"):
        front.for_accuracy(0.6, max_free=0)
    with pytest.raises(TypeError, match="model names"):
        ParetoFront.build(scores=[[0.1]], costs=[1.0], models=[1])  # type: ignore[list-item]


def test_rescore_gives_other_scores_at_every_supported_point() -> None:
    rng = np.random.default_rng(3)
    scores, truth = rng.uniform(0, 1, (30, 4)), rng.integers(0, 2, (30, 4))
    front = ParetoFront.build(scores=scores, costs=[0.1, 0.3, 0.2, 1.0], models="abcd")
    realised = front.rescore(truth)
    assert realised.shape == (len(front),)
    rows = np.arange(30)
    for t in range(len(front)):
        assert realised[t] == pytest.approx(truth[rows, front.point(t).arms].mean())
    np.testing.assert_allclose(front.rescore(scores), front.accuracies)
    with pytest.raises(ValueError, match=r"expected shape \(30, 4\)"):
        front.rescore(truth[:5])
    with pytest.raises(ValueError, match="NaN"):
        front.rescore(np.full((30, 4), np.nan))
