"""Calibrating the cost weight: the ``p`` whose greedy routing is most accurate
within a budget on validation data, judged exactly from the learned statistics
(see ``costs.shift_cost_weight``) without relearning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.costs import context_sums, cost_vector
from langchain_metallm.policy import LinUCBPolicy

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class CalibrationPoint:
    """What the fitted policy would do on the validation data at one cost weight."""

    cost_weight: float
    accuracy: float
    cost: float


@dataclass(frozen=True)
class CostWeightCalibration:
    """The chosen cost weight, its validation accuracy and mean normalised cost,
    and every candidate's point (the cost-accuracy curve)."""

    cost_weight: float
    accuracy: float
    cost: float
    budget: float
    curve: tuple[CalibrationPoint, ...]


def check_budget(budget: float, costs: Mapping[str, float]) -> float:
    """``budget`` as a float no lower than the cheapest normalised cost."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)):
        raise TypeError(f"budget: expected a number, got {type(budget).__name__}")
    value = float(budget)
    if not math.isfinite(value):
        raise ValueError(f"budget: must be finite, got {budget!r}")
    cheapest = min(costs.values())
    if value < cheapest:
        raise ValueError(
            f"budget: {value} is below the cheapest model's normalised cost "
            f"{cheapest:.4g}; no routing can cost less"
        )
    return value


def default_cost_weights(costs: Mapping[str, float]) -> tuple[float, ...]:
    """0 to 1 in steps of 0.025, then geometric up to where every cost gap outweighs
    a score difference of 2 (larger weights cannot change a choice further)."""
    levels = np.unique(np.array(list(costs.values()), dtype=np.float64))
    gap = float(np.min(np.diff(levels))) if len(levels) > 1 else 1.0
    top = max(2.0 / gap, 2.0)
    grid = np.concatenate([np.linspace(0.0, 1.0, 41), np.geomspace(1.0, top, 25)])
    return tuple(float(p) for p in np.unique(np.round(grid, 6)))


def calibrate(
    policy: LinUCBPolicy | None,
    contexts: FloatArray,
    scores: FloatArray,
    costs: Mapping[str, float],
    *,
    fitted_weight: float,
    budget: float,
    cost_weights: Sequence[float] | None = None,
) -> CostWeightCalibration:
    """The cost weight whose greedy choices (alpha 0) on the validation ``contexts``
    reach the highest accuracy against ``scores`` at mean cost <= ``budget``.

    Each candidate ``p`` is judged by what ``policy`` would choose after
    ``costs.shift_cost_weight(policy, costs, fitted_weight, p)``, computed exactly.
    Ties go to the lower cost, then to the smaller weight.
    """
    if policy is None or int(policy.counts.sum()) == 0:
        raise ValueError("router: nothing learned yet; call fit(...) first")
    candidates = _check_weights(
        default_cost_weights(costs) if cost_weights is None else cost_weights
    )
    cost = cost_vector(policy.arms, costs)
    base, slope = _score_and_cost_terms(policy, cost, fitted_weight, contexts)
    rows = np.arange(len(scores))
    curve = []
    for p in candidates:
        chosen = np.argmax(base - p * slope, axis=1)
        accuracy = float(scores[rows, chosen].mean())
        curve.append(CalibrationPoint(p, accuracy, float(cost[chosen].mean())))
    within = [point for point in curve if point.cost <= budget + 1e-12]
    if not within:
        lowest = min(curve, key=lambda point: point.cost)
        raise ValueError(
            f"budget: no candidate cost weight keeps the mean cost <= {budget}; the "
            f"lowest is {lowest.cost:.4f} at cost_weight {lowest.cost_weight}; "
            "pass larger cost_weights"
        )
    best = min(within, key=lambda pt: (-pt.accuracy, pt.cost, pt.cost_weight))
    return CostWeightCalibration(
        best.cost_weight, best.accuracy, best.cost, budget, tuple(curve)
    )


def _score_and_cost_terms(
    policy: LinUCBPolicy, cost: FloatArray, fitted_weight: float, contexts: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per row and arm, ``m`` and ``s`` with ``mean reward at weight p = m - p * s``.

    With ``u_j = A_j^-1 sum x``: ``theta_j(p) = theta_j(p_fit) + (p_fit - p) c_j u_j``.
    """
    if contexts.ndim != 2 or not np.all(contexts[:, -1] == 1.0):
        raise ValueError("contexts: the last feature must be the constant bias 1")
    A, b, counts = policy.statistics()  # noqa: N806
    sums = context_sums(policy.ridge, A, counts)
    u = np.linalg.solve(A, sums[..., None])[..., 0]
    theta = np.linalg.solve(A, b[..., None])[..., 0]
    score_theta = theta + fitted_weight * cost[:, None] * u
    return contexts @ score_theta.T, (contexts @ u.T) * cost[None, :]


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(w) for w in weights)
    if not values:
        raise ValueError("cost_weights: at least one candidate is needed")
    for w in values:
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"cost_weights: must be finite and >= 0, got {w}")
    return values
