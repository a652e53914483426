"""Run every policy over a grid of cost weights: the cost-accuracy curves."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from tqdm.auto import tqdm

from langchain_metallm.bench.metrics import evaluate
from langchain_metallm.bench.routers import BenchRouter, Problem


@dataclass(frozen=True)
class CurvePoint:
    """One policy at one cost weight (``None`` if the policy ignores it)."""

    cost_weight: float | None
    accuracy: float
    cost: float
    shares: tuple[float, ...]
    seconds_per_query: float


@dataclass(frozen=True)
class Curve:
    """A policy's points, in cost-weight order; one point if it ignores the weight."""

    policy: str
    uses_cost_weight: bool
    points: tuple[CurvePoint, ...]


def sweep(
    problem: Problem,
    policies: Sequence[BenchRouter],
    cost_weights: Sequence[float],
    *,
    progress: bool = True,
) -> list[Curve]:
    """Evaluate each policy on the test queries at each cost weight."""
    weights = [float(p) for p in cost_weights]
    if not weights:
        raise ValueError("cost_weights: at least one is required")
    if any(p < 0 for p in weights):
        raise ValueError(f"cost_weights: must be >= 0, got {weights}")
    total = sum(len(weights) if p.uses_cost_weight else 1 for p in policies)
    curves: list[Curve] = []
    with tqdm(total=total, desc="policies", unit="run", disable=not progress) as bar:
        for policy in policies:
            bar.set_postfix_str(policy.name)
            grid = weights if policy.uses_cost_weight else weights[:1]
            points = []
            for weight, routing in zip(grid, policy.route(problem, grid), strict=True):
                point = evaluate(routing.choices, problem.test_scores, problem.cost)
                points.append(
                    CurvePoint(
                        cost_weight=weight if policy.uses_cost_weight else None,
                        accuracy=point.accuracy,
                        cost=point.cost,
                        shares=point.shares,
                        seconds_per_query=routing.seconds_per_query,
                    )
                )
            curves.append(Curve(policy.name, policy.uses_cost_weight, tuple(points)))
            bar.update(len(grid))
    return curves
