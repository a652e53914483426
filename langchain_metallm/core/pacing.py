"""Budget pacing: the cost weight that keeps spend on a target, set online.

A router with a ``budget`` (target mean normalised cost per routed call) decides
with ``value_j = predicted score_j - p * c_j`` and lets a ``BudgetPacer`` move
``p`` by online primal-dual (dual subgradient) steps: after each routed call of
normalised cost ``c``, the level ``q <- q + step * (c - budget)`` and ``p =
max(0, q)``. ``p`` is the price of the budget constraint: it rises while calls
spend above the budget and falls back while they spend below. Summing the steps
gives ``sum_t (c_t - budget) = (q_T - q_0) / step``, so the realised mean cost
over ``T`` calls misses the budget by ``(q_T - q_0) / (step * T)`` either way.
The level may go below zero by ``CREDIT_CALLS`` calls' worth of budget: an
under-spend while ``p`` is 0 is spent back later instead of lost (clipping the
level at 0 left llmrouter9 at budget 0.6 up to 2.8% under), and a budget that
does not bind carries no more credit than that. Starting ``p`` from
``weight_for_budget`` on predicted scores of recorded
queries (the decision-time trade-off, no relearning) avoids the early overspend
that a budget at the cheapest child's cost could never win back.

Workers sharing a store pace one budget (``share``): the level lives in the store
and every worker's calls move it atomically (``PolicyStore.adjust``), so each
decides with the fleet's cost weight.
"""

from __future__ import annotations

import math
import threading
import warnings
from typing import TYPE_CHECKING

import numpy as np
from numpy.typing import ArrayLike

from langchain_metallm.core.checks import check_number

if TYPE_CHECKING:
    from langchain_metallm.core.stores.base import PolicyStore

CREDIT_CALLS = 200
"""Calls' worth of budget an under-spend may carry forward (see above)."""


class BudgetPacer:
    """Sets the cost weight ``p`` online so the mean normalised cost per call
    tracks ``budget`` (see the module docstring); thread-safe."""

    def __init__(
        self,
        budget: float,
        *,
        step: float = 0.05,
        weight: float = 0.0,
        started: bool = False,
    ) -> None:
        self.budget = check_number("budget", budget, low=0.0)
        self.step = check_number("step", step, low=0.0, low_open=True)
        self._level = check_number("weight", weight, low=0.0)
        self.started = started
        """Whether the weight was started from predicted decisions (else the
        router starts it once it has seen enough contexts)."""
        self._spent = 0.0
        self._calls = 0
        self._shared: tuple[PolicyStore, str] | None = None
        self._lock = threading.Lock()

    def share(self, store: PolicyStore, namespace: str) -> None:
        """Pace one budget with every worker sharing ``store`` under
        ``namespace``: the level lives there and each worker's calls move it
        (the first worker's start weight is the fleet's)."""
        self._shared = (store, namespace)

    @property
    def floor(self) -> float:
        """The lowest level: ``CREDIT_CALLS`` calls' worth of budget as credit."""
        return -self.step * CREDIT_CALLS * self.budget

    @property
    def weight(self) -> float:
        """The cost weight ``p`` to decide the next call with."""
        return max(0.0, self._level)

    @property
    def mean_cost(self) -> float:
        """This worker's realised mean normalised cost per call so far (0
        before any call)."""
        with self._lock:
            return self._spent / self._calls if self._calls else 0.0

    def observe(self, cost: float) -> float:
        """Account one routed call of normalised ``cost``; return the new weight
        (with a shared store: the fleet's, moved by this call)."""
        if not math.isfinite(cost) or cost < 0:
            raise ValueError(f"cost: must be finite and >= 0, got {cost!r}")
        delta = self.step * (cost - self.budget)
        floor = self.floor
        shared = self._shared
        level = None
        if shared is not None:
            store, namespace = shared
            key = f"pacer:{self.budget!r}:{self.step!r}"
            try:
                level = store.adjust(
                    namespace, key, delta, start=self._level, floor=floor
                )
            except Exception as exc:  # any store failure: pace alone meanwhile
                warnings.warn(
                    f"budget: the fleet's pacer in the store failed ({exc}); "
                    "this worker paces alone until it answers",
                    RuntimeWarning,
                    stacklevel=3,
                )
        with self._lock:
            self._spent += cost
            self._calls += 1
            self._level = max(self._level + delta, floor) if level is None else level
            return max(0.0, self._level)

    @property
    def level(self) -> float:
        """The signed level ``q``: the weight when positive, the credit an
        under-spend carries when negative; what a save keeps."""
        return self._level

    def resume(self, level: float) -> None:
        """Continue from a saved ``level`` (its pace and its credit; a level
        below this budget's credit floor is raised to it)."""
        checked = check_number("pacer level", level)
        with self._lock:
            self._level = max(checked, self.floor)
            self.started = True


def weight_for_budget(
    scores: ArrayLike, costs: ArrayLike, budget: float, *, high: float = 1.0
) -> float:
    """The smallest cost weight ``p`` whose decisions ``argmax_j scores_ij - p *
    costs_j`` spend at most ``budget`` per row on average (0 if ``p = 0`` does).

    ``scores`` (rows, arms) are decision values before the penalty, e.g. a
    policy's predictions on recorded queries; ``budget`` lies between the
    cheapest cost and ``high`` (the priciest child's normalised cost); the
    mean spend only falls as ``p`` grows, so bisection finds ``p`` to 1e-6.
    Once ``p`` outweighs every score gap all rows pick a cheapest child, so a
    budget at the cheapest cost is always reached.
    """
    s = np.asarray(scores, dtype=np.float64)
    c = np.asarray(costs, dtype=np.float64)
    if s.ndim != 2 or s.shape[0] < 1 or c.shape != (s.shape[1],):
        raise ValueError(
            f"scores: expected shape (rows, {c.size}) for {c.size} costs, got {s.shape}"
        )
    if not (np.all(np.isfinite(s)) and np.all(np.isfinite(c))):
        raise ValueError("scores and costs: must be finite")
    # A mean of equal costs can round just above them (1/9 averaged over 2,804
    # rows does): without slack a budget at the cheapest cost is never met.
    limit = check_number("budget", budget, low=float(c.min()), high=high)
    limit *= 1.0 + 1e-9

    def within(p: float) -> bool:
        return float(c[np.argmax(s - p * c, axis=1)].mean()) <= limit

    if within(0.0):
        return 0.0
    low, high = 0.0, 1.0
    while not within(high):
        low, high = high, 2.0 * high
    while high - low > 1e-6:
        middle = (low + high) / 2
        low, high = (low, middle) if within(middle) else (middle, high)
    return high
