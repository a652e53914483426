"""OptLLM-style batch planning: the cost / predicted-accuracy Pareto front of a batch.

A batch of n queries gets one of k models each. Total cost and total predicted
score are sums over queries, so the supported (convex) Pareto front is exact and
cheap (efficient-frontier method): every query's upper convex hull of
(cost, score), then all hull steps merged by marginal score per unit cost.
Budgets or accuracy floors that fall between two front points are refined by a
small multiple-choice-knapsack DP over the queries that a Lagrangian bound
leaves free, so a plan is never worse than the supported point it starts from.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.core.policy import LinUCBPolicy

if TYPE_CHECKING:
    from matplotlib.axes import Axes

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]

_REL_TOL = 1e-9  # float sums are compared with this relative tolerance


def policy_scores(
    policy: LinUCBPolicy, contexts: ArrayLike, *, robust: bool = False
) -> FloatArray:
    """Predicted score (n, arms) of every arm: the policy learns scores, so this
    is its mean; ``robust`` takes the lower confidence bound (``alpha * width``
    below the mean). Clipped to [0, 1], as scores are."""
    mean, width = policy.predict(contexts)
    scores = mean - policy.alpha * width if robust else mean
    clipped: FloatArray = np.clip(scores, 0.0, 1.0)
    return clipped


@dataclass(frozen=True)
class PlannedAssignment:
    """One model per query, with the predicted total cost and mean accuracy.

    ``supported`` is True for a point of the supported front. ``optimal`` is True
    when no assignment does better for the request (proved by the front, by the
    Lagrangian bound or by a DP that was exact on its grid). ``bound`` is the LP
    relaxation's best value for the request (mean accuracy for a budget, total
    cost for an accuracy floor): the true optimum lies between the plan and it.
    """

    models: list[str]
    arms: list[int]
    predicted_cost: float
    predicted_accuracy: float
    budget: float | None
    target: float | None
    supported: bool
    optimal: bool
    bound: float

    def to_dict(self) -> dict[str, Any]:
        """Plain-Python copy (lists, floats, None) for JSON export."""
        return asdict(self)


class ParetoFront:
    """Supported Pareto front of a batch; build it with :meth:`ParetoFront.build`.

    Stored compactly: each query's hull (at most k arms) and the merged step order
    (query, new arm), so the assignment of any point is materialised on request in
    O(n). Point ``t`` applies the first ``t`` steps to the all-cheapest start.
    """

    def __init__(self, scores: FloatArray, costs: FloatArray, models: tuple[str, ...]):
        """Front of validated ``(n, k)`` scores and costs (call ``build``)."""
        self.models = models
        self._scores = scores
        self._costs = costs
        n, k = scores.shape
        self._hull, length = _hulls(scores, costs)
        rows = np.arange(n)[:, None]
        valid = np.arange(1, k)[None, :] < length[:, None]
        nxt = np.where(valid, self._hull[:, 1:], 0)
        prev = np.where(valid, self._hull[:, :-1], 0)
        dc = costs[rows, nxt] - costs[rows, prev]
        ds = scores[rows, nxt] - scores[rows, prev]
        with np.errstate(divide="ignore", over="ignore"):
            slope = np.where(valid, ds / np.where(valid, dc, 1.0), np.inf)
        # Within a query slopes decrease; the running minimum keeps that order
        # even where rounding makes collinear steps' slopes wobble.
        key = np.minimum.accumulate(slope, axis=1)
        qi, pi = np.nonzero(valid)  # by query, then hull position
        order = np.argsort(-key[qi, pi], kind="stable")
        self._step_query: IntArray = qi[order]
        self._step_arm: IntArray = self._hull[qi, pi + 1][order]
        self._step_prev: IntArray = self._hull[qi, pi][order]
        self._step_key: FloatArray = key[qi, pi][order]
        start = self._hull[:, 0]
        zero = np.zeros(1)
        self._point_costs: FloatArray = costs[rows[:, 0], start].sum() + np.concatenate(
            [zero, np.cumsum(dc[qi, pi][order])]
        )
        self._point_scores: FloatArray = scores[
            rows[:, 0], start
        ].sum() + np.concatenate([zero, np.cumsum(ds[qi, pi][order])])

    @classmethod
    def build(
        cls, *, scores: ArrayLike, costs: ArrayLike, models: Sequence[str]
    ) -> ParetoFront:
        """Front of ``scores`` (n, k) with per-model costs (k,) or per-query (n, k).

        Scores are predicted probabilities of a good answer (or lower confidence
        bounds); costs must be finite and >= 0 (the router normalises them to a
        maximum of 1, but any scale works).
        """
        names = tuple(models)
        if not all(isinstance(m, str) for m in names):
            raise TypeError(f"models: expected model names (str), got {names!r}")
        if len(set(names)) != len(names):
            raise ValueError(f"models: names must be unique, got {list(names)}")
        s = np.asarray(scores, dtype=np.float64)
        if s.ndim != 2:
            raise ValueError(f"scores: expected an (n, k) matrix, got shape {s.shape}")
        n, k = s.shape
        if n == 0:
            raise ValueError("scores: the batch is empty (no queries to plan)")
        if k != len(names) or k == 0:
            raise ValueError(
                f"scores: has {k} columns but {len(names)} models were named"
            )
        if not np.isfinite(s).all():
            raise ValueError("scores: contain NaN or infinity")
        c = np.asarray(costs, dtype=np.float64)
        if c.shape not in ((k,), (n, k)):
            raise ValueError(
                f"costs: expected shape ({k},) or ({n}, {k}), got {c.shape}"
            )
        if not np.isfinite(c).all():
            raise ValueError("costs: contain NaN or infinity")
        if (c < 0).any():
            raise ValueError(f"costs: must be >= 0, got minimum {c.min():.6g}")
        return cls(s, np.array(np.broadcast_to(c, (n, k))), names)

    def __len__(self) -> int:
        """Number of supported points (at most ``1 + n * (k - 1)``)."""
        return len(self._point_costs)

    @property
    def n_queries(self) -> int:
        """Batch size n."""
        return int(self._scores.shape[0])

    @property
    def costs(self) -> FloatArray:
        """Total predicted cost of each supported point, increasing."""
        return np.array(self._point_costs)

    @property
    def accuracies(self) -> FloatArray:
        """Predicted accuracy (mean score over the batch) of each point, increasing."""
        return self._point_scores / self.n_queries

    @property
    def points(self) -> FloatArray:
        """``(len, 2)`` array: (total cost, predicted accuracy) per point."""
        return np.column_stack([self._point_costs, self.accuracies])

    def rescore(self, scores: ArrayLike) -> FloatArray:
        """Mean of other ``(n, k)`` scores at every supported point, in O(n k).

        With the recorded outcomes of the batch this is the realised accuracy of
        each planned assignment: the realised front beside the predicted one.
        """
        other = np.asarray(scores, dtype=np.float64)
        if other.shape != self._scores.shape:
            raise ValueError(
                f"scores: expected shape {self._scores.shape}, got {other.shape}"
            )
        if not np.isfinite(other).all():
            raise ValueError("scores: contain NaN or infinity")
        rows = np.arange(self.n_queries)
        start = other[rows, self._hull[:, 0]].sum()
        steps = other[self._step_query, self._step_arm]
        steps = steps - other[self._step_query, self._step_prev]
        totals: FloatArray = start + np.concatenate([np.zeros(1), np.cumsum(steps)])
        return totals / self.n_queries

    def point(self, index: int) -> PlannedAssignment:
        """Materialise supported point ``index`` (0 = cheapest, -1 = best)."""
        t = range(len(self))[index]
        return self._plan(self._arms_at(t), supported=True, optimal=True)

    def for_budget(
        self,
        total_cost: float,
        *,
        grid_step: float | None = None,
        max_free: int = 100,
        max_cells: int = 2_000_000,
    ) -> PlannedAssignment:
        """Best predicted accuracy with total cost <= ``total_cost``.

        A budget at or above the most expensive useful point returns the
        best-score assignment (more budget buys nothing). Between two front
        points a multiple-choice-knapsack DP looks for a better non-supported
        plan: a Lagrangian bound frees only the queries that could change, and
        the ``max_free`` most promising of them go to a DP over cost changes
        rounded up to a grid of ``grid_step`` (default: the finest step keeping
        free queries x cells within ``max_cells``). The DP is exact on its grid,
        so the plan is optimal over all k^n assignments when every cost is a
        multiple of ``grid_step`` and at most ``max_free`` queries are free
        (``optimal`` reports it). Always: within budget (up to a 1e-9 relative
        float tolerance) and never worse than the front point below it.
        """
        budget = _finite("total_cost", total_cost)
        grid = _Grid(grid_step, max_free, max_cells)
        lo, hi = self._point_costs[0], self._point_costs[-1]
        if budget < lo - _tol(lo):
            raise ValueError(
                f"total_cost {budget:.6g} is below the cheapest assignment of this "
                f"batch, which costs {lo:.6g}"
            )
        t = max(0, int(np.searchsorted(self._point_costs, budget + _tol(budget))) - 1)
        if budget >= hi or abs(budget - self._point_costs[t]) <= _tol(budget):
            return self._plan(self._arms_at(t), budget=budget, supported=True)
        c0, c1 = self._point_costs[t : t + 2]
        s0, s1 = self._point_scores[t : t + 2]
        bound = (s0 + (budget - c0) * (s1 - s0) / (c1 - c0)) / self.n_queries
        base = self._arms_at(t)
        floor = self._total(self._scores, base)
        arms, exact = self._refine(base, self._step_key[t], budget, floor, None, grid)
        if (
            arms is not None
            and self._total(self._costs, arms) <= budget + _tol(budget)
            and self._total(self._scores, arms) > floor + _tol(floor)
        ):
            return self._plan(arms, budget=budget, optimal=exact, bound=bound)
        return self._plan(
            base, budget=budget, supported=True, optimal=exact, bound=bound
        )

    def for_accuracy(
        self,
        min_expected_accuracy: float,
        *,
        grid_step: float | None = None,
        max_free: int = 100,
        max_cells: int = 2_000_000,
    ) -> PlannedAssignment:
        """Cheapest plan whose predicted accuracy (mean score) reaches the floor.

        Between two front points the gap DP of :meth:`for_budget` looks for a
        cheaper non-supported plan (exact under the same conditions); otherwise
        the supported point reaching the floor is returned, whose cost exceeds
        the optimum by at most ``predicted_cost - bound``. The floor is met up to
        a 1e-9 relative float tolerance.
        """
        accuracy = _finite("min_expected_accuracy", min_expected_accuracy)
        grid = _Grid(grid_step, max_free, max_cells)
        target = accuracy * self.n_queries
        best = self._point_scores[-1]
        if target > best + _tol(best):
            raise ValueError(
                f"min_expected_accuracy {accuracy:.6g} is above the best achievable "
                f"predicted accuracy {best / self.n_queries:.6g} for this batch"
            )
        t = int(np.searchsorted(self._point_scores, target - _tol(target)))
        t = min(t, len(self) - 1)
        if t == 0 or abs(target - self._point_scores[t]) <= _tol(target):
            return self._plan(self._arms_at(t), target=accuracy, supported=True)
        c0, c1 = self._point_costs[t - 1 : t + 1]
        s0, s1 = self._point_scores[t - 1 : t + 1]
        bound = c0 + (target - s0) * (c1 - c0) / (s1 - s0)
        base = self._arms_at(t)
        cap = self._total(self._costs, base)
        arms, exact = self._refine(
            base, self._step_key[t - 1], cap, target, target, grid
        )
        if (
            arms is not None
            and self._total(self._scores, arms) >= target - _tol(target)
            and self._total(self._costs, arms) < cap - _tol(cap)
        ):
            return self._plan(arms, target=accuracy, optimal=exact, bound=bound)
        return self._plan(
            base, target=accuracy, supported=True, optimal=exact, bound=bound
        )

    def to_records(self) -> list[dict[str, Any]]:
        """One plain dict per point: cost, accuracy, the (query, model) step to it."""
        queries: list[int | None] = [None, *self._step_query.tolist()]
        models: list[str | None] = [None, *(self.models[a] for a in self._step_arm)]
        return [
            {"point": t, "cost": c, "accuracy": a, "query": q, "model": m}
            for t, (c, a, q, m) in enumerate(
                zip(
                    self._point_costs.tolist(),
                    self.accuracies.tolist(),
                    queries,
                    models,
                    strict=True,
                )
            )
        ]

    def plot(self, ax: Axes | None = None, label: str | None = None) -> Axes:
        """Draw the front (cost vs predicted accuracy) on ``ax`` or a new figure."""
        import matplotlib.pyplot as plt

        if ax is None:
            _, ax = plt.subplots()
        marker = "." if len(self) <= 200 else None
        ax.plot(self._point_costs, self.accuracies, marker=marker, label=label)
        ax.set_xlabel("total predicted cost")
        ax.set_ylabel("predicted accuracy (mean score)")
        if label is not None:
            ax.legend()
        return ax

    def _arms_at(self, t: int) -> IntArray:
        """Arm per query at point ``t``: each query's hull advanced by its steps."""
        n = self.n_queries
        advanced = np.bincount(self._step_query[:t], minlength=n)
        return self._hull[np.arange(n), advanced]

    def _total(self, matrix: FloatArray, arms: IntArray) -> float:
        return float(matrix[np.arange(len(arms)), arms].sum())

    def _plan(
        self,
        arms: IntArray,
        *,
        budget: float | None = None,
        target: float | None = None,
        supported: bool = False,
        optimal: bool = True,
        bound: float | None = None,
    ) -> PlannedAssignment:
        cost = self._total(self._costs, arms)
        accuracy = self._total(self._scores, arms) / self.n_queries
        if bound is None:
            bound = accuracy if target is None else cost
        return PlannedAssignment(
            models=[self.models[a] for a in arms],
            arms=arms.tolist(),
            predicted_cost=cost,
            predicted_accuracy=accuracy,
            budget=budget,
            target=target,
            supported=supported,
            optimal=optimal,
            bound=float(bound),
        )

    def _refine(
        self,
        base: IntArray,
        lam: float,
        cap: float,
        floor: float,
        target: float | None,
        grid: _Grid,
    ) -> tuple[IntArray | None, bool]:
        """Gap DP: best plan of cost <= ``cap`` (``target`` None) or the cheapest
        one reaching total score ``target``; returns (arms or None, exact).

        Lagrangian reduction with multiplier ``lam``: every assignment x obeys
        ``S(x) - lam*C(x) = sum_i m_i - sum_i g_i(x)`` with per-option gaps
        ``g >= 0``, so one that beats ``floor`` within ``cap`` has
        ``sum g <= delta``; options with a larger gap are dropped and queries
        left with one option stay at ``base`` (exact). The free queries (the
        ``max_free`` with the smallest alternative gap) go to a multiple-choice
        knapsack on cost changes from ``base`` rounded up to the grid (so ``base``
        is always on the grid and rounding errs on the safe side). The default
        step is the finest that keeps free queries x cells within ``max_cells``.
        """
        if not math.isfinite(lam):
            return None, False
        s, c = self._scores, self._costs
        n, k = s.shape
        rows = np.arange(n)
        reduced = s - lam * c
        best = reduced.max(axis=1)
        gap = best[:, None] - reduced
        delta = float(best.sum() + lam * cap - floor)
        if delta <= 0:
            return None, True
        keep = gap <= delta + _tol(delta)
        keep[rows, base] = True
        free = np.flatnonzero(keep.sum(axis=1) >= 2)
        if len(free) == 0:
            return None, True
        exact = len(free) <= grid.max_free
        if not exact:  # keep the queries whose best alternative is closest
            alt = np.where(keep, gap, np.inf)
            alt[rows, base] = np.inf
            closest = np.argsort(alt[free].min(axis=1), kind="stable")
            free = np.sort(free[closest[: grid.max_free]])
        nf = len(free)
        fixed_score = float(s[rows, base].sum() - s[free, base[free]].sum())
        sf, kf = s[free], keep[free]
        diff = c[free] - c[free, base[free]][:, None]  # cost change vs base
        slack = max(0.0, cap - self._total(c, base))
        span = slack + float(np.where(kf, -diff, 0.0).max(axis=1).sum())
        step = grid.step
        if step is None:
            step = span / max(1, grid.max_cells // nf - 2) if span > 0 else 1.0
        units = diff / step
        nearest = np.round(units)
        on_grid = np.isclose(units, nearest, rtol=_REL_TOL, atol=_REL_TOL)
        exact = exact and bool(on_grid[kf].all())
        weight = np.where(on_grid, nearest, np.ceil(units))
        lowest = np.where(kf, weight, np.inf).min(axis=1)  # <= 0: base weighs 0
        cells = math.floor(slack / step + _REL_TOL) - int(lowest.sum())
        if nf * (cells + 1) > grid.max_cells:
            raise ValueError(
                f"grid_step {step:.6g} needs {cells + 1} cells for {nf} free "
                f"queries (max_cells {grid.max_cells}); use a coarser grid_step"
            )
        weight -= lowest[:, None]
        usable = kf & (weight <= cells)
        weight = np.where(usable, weight, cells + 1).astype(np.int64)
        value = np.where(usable, sf, -np.inf)
        # Sort each query's options by (weight, -score) and keep the strict
        # improvements only: a heavier option that scores no more never helps.
        arm_index = np.broadcast_to(np.arange(k), (nf, k))
        order = np.lexsort((arm_index, -value, weight))
        weight = np.take_along_axis(weight, order, axis=1)
        value = np.take_along_axis(value, order, axis=1)
        running = np.maximum.accumulate(value, axis=1)
        prev = np.concatenate([np.full((nf, 1), -np.inf), running[:, :-1]], axis=1)
        table, choice = _knapsack(weight, value, value > prev, cells)
        if target is None:
            cell = int(np.argmax(table >= table[-1]))
        else:
            reach = table >= target - fixed_score - _tol(target)
            if not reach.any():
                return None, exact
            cell = int(np.argmax(reach))
        arms = base.copy()
        for f in range(nf - 1, -1, -1):
            j = choice[f, cell]
            arms[free[f]] = order[f, j]
            cell -= int(weight[f, j])
        return arms, exact


@dataclass(frozen=True)
class _Grid:
    """Knobs of the gap DP: cost grid step, free-query cap, table-size cap."""

    step: float | None
    max_free: int
    max_cells: int

    def __post_init__(self) -> None:
        if self.step is not None and not (math.isfinite(self.step) and self.step > 0):
            raise ValueError(
                f"grid_step: must be a finite number > 0, got {self.step!r}"
            )
        if self.max_free < 1 or self.max_cells < 1:
            raise ValueError(
                f"max_free and max_cells: must be >= 1, got {self.max_free}, "
                f"{self.max_cells}"
            )


def _hulls(scores: FloatArray, costs: FloatArray) -> tuple[IntArray, IntArray]:
    """Each query's upper convex hull of (cost, score), cheapest first.

    Returns ``(n, k)`` arms padded with -1 and the hull lengths. Gift wrapping
    from the cheapest option (best score among equally cheap ones, then lowest
    index): the next vertex is the strictly costlier and strictly better option
    of steepest slope, the nearest one on slope ties. Dominated options drop out.
    """
    n, k = scores.shape
    rows = np.arange(n)
    hull = np.full((n, k), -1, dtype=np.int64)
    cheapest = costs == costs.min(axis=1, keepdims=True)
    current = np.argmax(np.where(cheapest, scores, -np.inf), axis=1)
    hull[:, 0] = current
    length = np.ones(n, dtype=np.int64)
    for p in range(1, k):
        dc = costs - costs[rows, current][:, None]
        ds = scores - scores[rows, current][:, None]
        ok = (dc > 0) & (ds > 0)
        with np.errstate(divide="ignore", over="ignore"):
            slope = np.where(ok, ds / np.where(ok, dc, 1.0), -np.inf)
        steepest = slope.max(axis=1)
        active = ok.any(axis=1)
        if not active.any():
            break
        nearest = np.argmin(np.where(ok & (slope == steepest[:, None]), dc, np.inf), 1)
        hull[active, p] = nearest[active]
        length += active
        current = np.where(active, nearest, current)
    return hull, length


def _knapsack(
    weight: IntArray, value: FloatArray, useful: NDArray[np.bool_], cells: int
) -> tuple[FloatArray, NDArray[np.integer[Any]]]:
    """Multiple-choice knapsack over integer weights (one option per row).

    Each row's first option must weigh 0. Returns the best total value for every
    capacity ``0..cells`` (non-decreasing) and the option chosen per row and
    capacity for backtracking; ties go to the lighter option.
    """
    rows, k = weight.shape
    table = np.zeros(cells + 1)
    choice = np.zeros((rows, cells + 1), dtype=np.min_scalar_type(k))
    for f in range(rows):
        new = np.full(cells + 1, -np.inf)
        picked = choice[f]
        for j in np.flatnonzero(useful[f]):
            w = int(weight[f, j])
            candidate = table[: cells + 1 - w] + value[f, j]
            better = candidate > new[w:]
            new[w:][better] = candidate[better]
            picked[w:][better] = j
        table = new
    return table, choice


def _finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not math.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return float(value)


def _tol(x: float) -> float:
    return _REL_TOL * max(1.0, abs(x))
