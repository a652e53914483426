"""Counterfactual evaluation: what routing live would give, estimated from the log.

For each setting (a cost weight ``p``, or a budget turned into the ``p`` that
meets it on the logged calls) the rule being evaluated picks, on every logged
call that had an embedding, ``argmax_j predicted_j - p * cost_j`` with the
predicted scores the router logged then (greedy: no exploration bonus). Its score
on that call is known when that child's answer was scored: the child that
answered (observed with probability 1: the rule that chose it is deterministic),
or an explored child (observed with the exploration probability ``q``, the share
of calls explored; the draw never looks at the query).

Estimators of the mean score (``estimator=``), each with its assumption:

- ``"replay"``: the mean observed score over explored calls only. Unbiased when
  explored calls are a random sample of traffic and every child's answer on them
  was scored (``exploration``); needs exploration.
- ``"ips"``: ``1[observed] * score / P(observed)`` over all calls; unbiased when
  the logged probabilities are right and every choice had a chance to be observed
  (calls where it had none are counted as 0, so without exploration it is biased
  low for choices other than the answering child).
- ``"snips"``: IPS divided by the mean weight; a little biased, less variance.
- ``"dr"`` (default): doubly robust, ``m + 1[observed] (score - m) / P(observed)``
  with ``m`` the logged predicted score clipped to [0, 1]; unbiased if either the
  probabilities or the predictions are right, and usable without exploration
  (then it leans on the predictions where nothing was observed).

Intervals are normal 95% intervals of the per-call estimates' mean; the cost of a
choice is known exactly, so the cost interval is the traffic's sampling noise.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from langchain_metallm.core.checks import check_number
from langchain_metallm.core.decision_log import LoggedDecision
from langchain_metallm.core.pacing import weight_for_budget

ESTIMATORS = ("dr", "ips", "snips", "replay")
Z95 = 1.959963984540054
"""The standard normal's 97.5% quantile."""


@dataclass(frozen=True)
class Evaluation:
    """Estimated rows per setting, and what was observed beside them."""

    rows: list[dict[str, Any]]
    """Per setting: ``cost_weight`` (and ``budget``), ``accuracy`` with
    ``accuracy_low``/``accuracy_high``, ``cost`` with ``cost_low``/``cost_high``,
    each child's ``shares``, and ``calls`` (the logged calls used)."""
    observed: dict[str, Any] = field(default_factory=dict)
    """The answering children's observed ``accuracy`` and ``cost`` (``child``:
    the incumbent in shadow mode), over ``calls`` scored calls."""


def evaluate(
    records: Sequence[LoggedDecision],
    costs: Mapping[str, float],
    *,
    cost_weights: Sequence[float] | None = None,
    budgets: Sequence[float] | None = None,
    estimator: str = "dr",
) -> Evaluation:
    """Estimate routing at each setting from ``records`` (see the module
    docstring); ``costs`` are the children's normalised costs now."""
    if estimator not in ESTIMATORS:
        raise ValueError(f"estimator: one of {ESTIMATORS}, got {estimator!r}")
    table = _Table.of(records, costs)
    weights = [check_number("cost_weights", w, low=0.0) for w in cost_weights or ()]
    if cost_weights is None and budgets is None:
        weights = [0.0, 0.05, 0.1, 0.2, 0.3, 0.5]
    rows = [table.row(w, estimator) for w in weights]
    for budget in budgets or ():
        low, high = float(table.cost.min()), float(table.cost.max())
        checked = check_number("budgets", budget, low=low, high=high)
        weight = weight_for_budget(table.predicted, table.cost, checked, high=high)
        rows.append({"budget": checked, **table.row(weight, estimator)})
    return Evaluation(rows, table.observed())


@dataclass
class _Table:
    """The usable records as arrays: children in columns."""

    names: list[str]
    cost: np.ndarray[Any, Any]
    predicted: np.ndarray[Any, Any]
    scores: np.ndarray[Any, Any]
    """Observed scores, NaN where not observed."""
    answered: np.ndarray[Any, Any]
    """Column of the answering child per call."""
    explored: np.ndarray[Any, Any]
    """Whether each call was explored."""
    answer_cost: np.ndarray[Any, Any]
    shadow: str | None

    @classmethod
    def of(
        cls, records: Sequence[LoggedDecision], costs: Mapping[str, float]
    ) -> _Table:
        names = list(costs)
        usable = [
            r
            for r in records
            if not r.decision.outage
            and r.decision.answered in costs
            and all(
                not math.isnan(r.decision.predicted.get(n, math.nan)) for n in names
            )
        ]
        if not usable or not any(r.scores for r in usable):
            raise ValueError(
                "evaluate: the decision log has no routed call with an embedding, "
                "a prediction for every current child and an observed score; route "
                "calls and give feedback (or set explore_rate and a scorer) first"
            )
        shadows = {r.decision.answered for r in usable if r.decision.shadow}
        return cls(
            names=names,
            cost=np.array([costs[n] for n in names]),
            predicted=np.clip(
                [[r.decision.predicted[n] for n in names] for r in usable], 0.0, 1.0
            ),
            scores=np.array(
                [[r.scores.get(n, math.nan) for n in names] for r in usable]
            ),
            answered=np.array([names.index(str(r.decision.answered)) for r in usable]),
            explored=np.array([bool(r.decision.explored) for r in usable]),
            answer_cost=np.array(
                [r.costs.get(str(r.decision.answered), math.nan) for r in usable]
            ),
            shadow=shadows.pop() if len(shadows) == 1 else None,
        )

    def row(self, weight: float, estimator: str) -> dict[str, Any]:
        """The estimates for cost weight ``weight``."""
        n = len(self.answered)
        choice = np.argmax(self.predicted - weight * self.cost, axis=1)
        calls = np.arange(n)
        score = self.scores[calls, choice]
        seen = ~np.isnan(score)
        rate = float(self.explored.mean())
        chance = np.where(choice == self.answered, 1.0, rate)
        weight_seen = np.where(seen, 1.0 / np.maximum(chance, 1e-12), 0.0)
        observed = np.where(seen, score, 0.0)
        model = self.predicted[calls, choice]
        if estimator == "replay":
            keep = self.explored & seen
            if not keep.any():
                raise ValueError(
                    "evaluate: replay needs explored calls with scored answers; "
                    "set explore_rate and a scorer, or use estimator='dr'"
                )
            per_call = score[keep]
        elif estimator == "ips":
            per_call = weight_seen * observed
        elif estimator == "snips":
            per_call = weight_seen * observed / max(float(weight_seen.mean()), 1e-12)
        else:
            per_call = model + weight_seen * (observed - np.where(seen, model, 0.0))
        chosen_cost = self.cost[choice]
        shares = np.bincount(choice, minlength=len(self.names)) / n
        return {
            "cost_weight": float(weight),
            **_interval("accuracy", per_call),
            **_interval("cost", chosen_cost),
            "shares": dict(zip(self.names, map(float, shares), strict=True)),
            "calls": len(per_call),
        }

    def observed(self) -> dict[str, Any]:
        """What the answering children scored and cost on the scored calls."""
        calls = np.arange(len(self.answered))
        score = self.scores[calls, self.answered]
        seen = ~np.isnan(score)
        return {
            "child": self.shadow,
            **_interval("accuracy", score[seen]),
            **_interval("cost", self.answer_cost[seen]),
            "calls": int(seen.sum()),
        }


def _interval(name: str, values: np.ndarray[Any, Any]) -> dict[str, float]:
    """``name``: the mean of ``values`` with its normal 95% interval."""
    if len(values) == 0:
        return {name: math.nan, f"{name}_low": math.nan, f"{name}_high": math.nan}
    mean = float(np.mean(values))
    spread = float(np.std(values, ddof=1)) if len(values) > 1 else math.inf
    half = Z95 * spread / math.sqrt(len(values))
    return {name: mean, f"{name}_low": mean - half, f"{name}_high": mean + half}
