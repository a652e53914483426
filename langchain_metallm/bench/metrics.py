"""Accuracy and cost of a routing, and RouteLLM's two-model measures (APGR, CPT).

PGR (performance gap recovered) is ``(acc - weak) / (strong - weak)``; APGR is its
area over the share of calls sent to the strong model, and CPT(x) the smallest
strong share whose PGR reaches x. Curves are piecewise linear through a policy's
points plus the two single-model ends (0, weak) and (1, strong), which random
mixing of a policy with a single model achieves; random routing scores APGR 0.5.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]


@dataclass(frozen=True)
class Point:
    """Mean score and mean normalised cost of one routing, and each model's share."""

    accuracy: float
    cost: float
    shares: tuple[float, ...]


def evaluate(choices: IndexArray, scores: FloatArray, cost: FloatArray) -> Point:
    """Score and cost of sending query ``i`` to model ``choices[i]``."""
    n, k = scores.shape
    if choices.shape != (n,):
        raise ValueError(f"choices: expected shape ({n},), got {choices.shape}")
    if n == 0:
        raise ValueError("choices: no queries to evaluate")
    if np.any((choices < 0) | (choices >= k)):
        raise ValueError(f"choices: model indices must be in [0, {k})")
    shares = np.bincount(choices, minlength=k) / n
    return Point(
        accuracy=float(scores[np.arange(n), choices].mean()),
        cost=float(cost[choices].mean()),
        shares=tuple(float(s) for s in shares),
    )


def pgr_curve(
    strong_shares: Sequence[float],
    accuracies: Sequence[float],
    weak: float,
    strong: float,
) -> tuple[FloatArray, FloatArray]:
    """The PGR curve: sorted strong shares (ends included) and their mean PGR."""
    if len(strong_shares) != len(accuracies):
        raise ValueError("strong_shares and accuracies must have the same length")
    gap = strong - weak
    if gap == 0:
        raise ValueError("PGR: the strong and weak models have the same accuracy")
    shares = np.concatenate([[0.0, 1.0], np.asarray(strong_shares, dtype=np.float64)])
    pgr = np.concatenate([[0.0, 1.0], (np.asarray(accuracies) - weak) / gap])
    if np.any((shares < 0) | (shares > 1)):
        raise ValueError("strong_shares: must lie in [0, 1]")
    xs = np.unique(shares)
    ys = np.array([pgr[shares == x].mean() for x in xs])
    return xs, ys


def apgr(
    strong_shares: Sequence[float],
    accuracies: Sequence[float],
    weak: float,
    strong: float,
) -> float:
    """Average PGR over strong shares 0..1 (trapezoid rule on the PGR curve)."""
    xs, ys = pgr_curve(strong_shares, accuracies, weak, strong)
    return float(np.sum((xs[1:] - xs[:-1]) * (ys[1:] + ys[:-1]) / 2))


def cpt(
    target: float,
    strong_shares: Sequence[float],
    accuracies: Sequence[float],
    weak: float,
    strong: float,
) -> float:
    """Smallest strong share at which the PGR curve reaches ``target`` (e.g. 0.5)."""
    if not 0.0 < target <= 1.0:
        raise ValueError(f"CPT target: must be in (0, 1], got {target}")
    xs, ys = pgr_curve(strong_shares, accuracies, weak, strong)
    if ys[0] >= target:
        return float(xs[0])
    for x0, x1, y0, y1 in zip(xs[:-1], xs[1:], ys[:-1], ys[1:], strict=True):
        if y1 >= target:
            return float(x0 + (target - y0) / (y1 - y0) * (x1 - x0))
    return float(xs[-1])


def best_within_budget(points: Sequence[Point], budget: float) -> Point | None:
    """The most accurate point costing at most ``budget`` (cheapest on ties)."""
    affordable = [p for p in points if p.cost <= budget + 1e-12]
    if not affordable:
        return None
    return max(affordable, key=lambda p: (p.accuracy, -p.cost))
