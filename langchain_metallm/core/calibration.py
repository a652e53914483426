"""Calibrating the cost weight: the ``p`` whose greedy routing is most accurate
within a budget on validation data. The policy learns scores and ``p`` only
weighs costs at decision time, so each candidate is judged from the learned
statistics as they are, without relearning.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.core.costs import cost_vector
from langchain_metallm.core.policy import LinUCBPolicy

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
    budget: float,
    cost_weights: Sequence[float] | None = None,
) -> CostWeightCalibration:
    """The cost weight whose greedy choices (alpha 0) on the validation ``contexts``
    reach the highest accuracy against ``scores`` at mean cost <= ``budget``.

    Each candidate ``p`` is judged by what ``policy`` would choose at decision
    time, ``argmax_j x^T theta_j - p * c_j``. Ties go to the lower cost, then to
    the smaller weight.
    """
    if policy is None or int(policy.counts.sum()) == 0:
        raise ValueError("router: nothing learned yet; call fit(...) first")
    candidates = _check_weights(
        default_cost_weights(costs) if cost_weights is None else cost_weights
    )
    cost = cost_vector(policy.arms, costs)
    predicted = contexts @ policy.theta.T
    rows = np.arange(len(scores))
    curve = []
    for p in candidates:
        chosen = np.argmax(predicted - p * cost[None, :], axis=1)
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


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(w) for w in weights)
    if not values:
        raise ValueError("cost_weights: at least one candidate is needed")
    for w in values:
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"cost_weights: must be finite and >= 0, got {w}")
    return values
