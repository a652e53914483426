"""Budget pacing: the cost weight follows spend so the mean cost tracks the budget."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.pacing import (
    CREDIT_CALLS,
    BudgetPacer,
    weight_for_budget,
)
from langchain_metallm.core.stores.memory import MemoryStore

COSTS = [0.1, 0.4, 1.0]


def _route(weight: float, quality: np.ndarray) -> int:
    """The arm a router with cost weight ``weight`` picks for these qualities."""
    return int(np.argmax(quality - weight * np.array(COSTS)))


@pytest.mark.parametrize(
    ("budget", "start"), [(0.15, 1.0), (0.25, 0.0), (0.5, 0.0), (0.8, 0.0), (0.1, 2.0)]
)
def test_realised_mean_cost_tracks_the_budget(budget: float, start: float) -> None:
    """From a weight of 0, or near the cheapest cost (where few calls can spend
    less to make up for an early overspend) from a calibrated one."""
    rng = np.random.default_rng(0)
    pacer = BudgetPacer(budget, weight=start)
    spent = []
    for _ in range(5_000):
        quality = np.array([0.5, 0.7, 0.9]) + rng.normal(0, 0.1, size=3)
        cost = COSTS[_route(pacer.weight, quality)]
        pacer.observe(cost)
        spent.append(cost)
    assert pacer.mean_cost == pytest.approx(np.mean(spent))
    assert abs(np.mean(spent) - budget) <= 0.02 * budget


def test_an_unbinding_budget_leaves_the_weight_at_zero() -> None:
    pacer = BudgetPacer(1.0)
    for _ in range(100):
        pacer.observe(0.4)
    assert pacer.weight == 0.0
    assert pacer.mean_cost == pytest.approx(0.4)


def test_overspend_raises_the_weight_and_underspend_lowers_it() -> None:
    pacer = BudgetPacer(0.3, step=0.1)
    assert pacer.observe(1.0) == pytest.approx(0.07)
    assert pacer.observe(0.1) == pytest.approx(0.05)


def test_an_underspend_at_weight_zero_is_spent_back_up_to_the_credit() -> None:
    """Calls that spend below the budget while the weight is 0 are not lost
    (clipping at 0 lost them: a budget near the unconstrained spend ended 2.8%
    under); a long stretch carries at most ``CREDIT_CALLS`` calls' worth."""
    budget = 0.6
    pacer = BudgetPacer(budget, step=0.05)
    for _ in range(50):  # 50 cheap calls: 25 cost units under, weight stays 0
        assert pacer.observe(0.1) == 0.0
    spent_back = 0
    while pacer.observe(1.0) == 0.0:  # dear calls spend it back before p rises
        spent_back += 1
    assert spent_back == pytest.approx(50 * 0.5 / 0.4, abs=1)
    long = BudgetPacer(budget, step=0.05)
    for _ in range(10_000):  # an unbinding stretch: credit capped
        long.observe(0.0)
    spent_back = 0
    while long.observe(1.0) == 0.0:
        spent_back += 1
    assert spent_back == pytest.approx(CREDIT_CALLS * budget / 0.4, abs=1)


def test_a_fleet_paces_one_budget_spending_where_it_buys_most() -> None:
    """Two workers on one store share one level: the one whose queries gain
    most from the priciest child spends above the budget, the other below, and
    together they spend it; pacing alone, each spends the budget itself."""
    budget = 0.4
    rng = np.random.default_rng(3)
    gains = {"hard": np.array([0.2, 0.5, 0.9]), "easy": np.array([0.7, 0.75, 0.8])}

    def serve(pacers: dict[str, BudgetPacer]) -> dict[str, float]:
        spent: dict[str, list[float]] = {name: [] for name in pacers}
        for _ in range(4_000):
            for name, pacer in pacers.items():
                quality = gains[name] + rng.normal(0, 0.05, size=3)
                cost = COSTS[_route(pacer.weight, quality)]
                pacer.observe(cost)
                spent[name].append(cost)
        return {name: float(np.mean(costs)) for name, costs in spent.items()}

    store = MemoryStore()
    fleet = {name: BudgetPacer(budget) for name in gains}
    for pacer in fleet.values():
        pacer.share(store, "router")
    together = serve(fleet)
    assert abs(np.mean(list(together.values())) - budget) <= 0.02 * budget
    assert together["hard"] > 1.5 * budget and together["easy"] < 0.5 * budget
    alone = serve({name: BudgetPacer(budget) for name in gains})
    for spend in alone.values():
        assert abs(spend - budget) <= 0.02 * budget


def test_resume_continues_from_a_saved_weight() -> None:
    pacer = BudgetPacer(0.3)
    assert not pacer.started
    pacer.resume(0.42)
    assert (pacer.weight, pacer.started) == (0.42, True)
    assert pacer.observe(1.0) == pytest.approx(0.42 + 0.05 * 0.7)


def test_resume_keeps_the_credit_an_underspend_carries() -> None:
    """A restart resumed at weight 0 and lost the credit: the under-spend before
    it was never spent back. A level below the budget's floor is raised to it."""
    before = BudgetPacer(0.6)
    for _ in range(50):
        before.observe(0.1)
    assert before.weight == 0.0 and before.level < 0
    after = BudgetPacer(0.6)
    after.resume(before.level)
    assert after.level == before.level
    spent_back = 0
    while after.observe(1.0) == 0.0:
        spent_back += 1
    assert spent_back == pytest.approx(50 * 0.5 / 0.4, abs=1)
    low = BudgetPacer(0.3)
    low.resume(-1e6)
    assert low.level == pytest.approx(-0.05 * CREDIT_CALLS * 0.3)
    with pytest.raises(ValueError, match="pacer level: must be in"):
        low.resume(float("nan"))


@pytest.mark.parametrize(
    ("budget", "error"),
    [
        (0.05, r"between the cheapest child's normalised cost \(0.1\) and the "),
        (1.2, r"priciest child's \(1\)"),
        (float("nan"), "got nan"),
        ("0.3", "expected a number"),
        (True, "expected a number"),
        (np.float64(0.3), None),
    ],
)
def test_a_budget_outside_the_feasible_range_is_refused(
    budget: object, error: str | None
) -> None:
    catalogue = Catalogue.build(dict(zip("abc", COSTS, strict=True)))
    if error is None:  # numpy numbers are numbers
        assert catalogue.check_budget(budget) == 0.3
        return
    with pytest.raises((ValueError, TypeError), match=error):
        catalogue.check_budget(budget)


def test_bad_settings_and_costs_are_refused() -> None:
    with pytest.raises(ValueError, match="step"):
        BudgetPacer(0.3, step=0)
    with pytest.raises(ValueError, match="weight"):
        BudgetPacer(0.3, weight=-1)
    pacer = BudgetPacer(0.3)
    with pytest.raises(ValueError, match="cost"):
        pacer.observe(float("inf"))
    assert (pacer.weight, pacer.mean_cost) == (0.0, 0.0)


def test_weight_for_budget_is_the_smallest_weight_that_spends_the_budget() -> None:
    rng = np.random.default_rng(1)
    scores = rng.uniform(size=(500, 3)) + np.array([0.0, 0.1, 0.3])
    costs = np.array(COSTS)

    def spend(p: float) -> float:
        return float(costs[np.argmax(scores - p * costs, axis=1)].mean())

    for budget in (0.1, 0.3, 0.6):
        p = weight_for_budget(scores, costs, budget)
        assert spend(p) <= budget < spend(p - 1e-5)
    assert weight_for_budget(scores, costs, 1.0) == 0.0
    with pytest.raises(ValueError, match="budget"):
        weight_for_budget(scores, costs, 0.05)
    with pytest.raises(ValueError, match=r"expected shape \(rows, 3\)"):
        weight_for_budget(scores[:, :2], costs, 0.3)


def test_weight_for_budget_reaches_a_budget_at_the_cheapest_cost() -> None:
    """The mean of 2,804 costs of 1/9 rounds above 1/9: the search must still
    end, at a weight where every row picks the cheapest child."""
    scores = np.random.default_rng(2).uniform(size=(2_804, 3))
    costs = np.array([2 / 9, 1 / 9, 1.0])
    assert costs[np.ones(2_804, dtype=np.int64)].mean() > 1 / 9
    p = weight_for_budget(scores, costs, 1 / 9)
    assert np.all(np.argmax(scores - p * costs, axis=1) == 1)
