"""Batch planning on recorded outcomes: the planned front against the online router.

The warm policy is fitted on the training rewards exactly as the benchmark's
``linucb-warm``; the whole test part is then planned as one batch from its
predicted scores (``pareto.policy_scores``: mean, or the lower confidence
bound). Costs are fixed per model, so a plan's realised cost is its predicted
cost; its realised accuracy is the recorded mean score of the planned models.
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.metrics import Point, best_within_budget, evaluate
from langchain_metallm.bench.plots import save_figure, short_name
from langchain_metallm.bench.routers import OnlineLinUCB, Problem
from langchain_metallm.bench.runner import DEFAULT_COST_WEIGHTS, Prepared
from langchain_metallm.core.pareto import ParetoFront
from langchain_metallm.core.policy import LinUCBPolicy

FloatArray = NDArray[np.float64]
_PLOT_POINTS = 400  # fronts are thinned to this many points for JSON and plots


@dataclass(frozen=True)
class BudgetRow:
    """One budget (mean normalised cost per query) and what each approach got.

    ``online_*`` is the best ``linucb-warm`` point costing at most the budget and
    ``single_*`` the best single model within it (None when none fits).
    """

    budget: float
    cost: float
    predicted: float
    realised: float
    robust_cost: float
    robust_predicted: float
    robust_realised: float
    online_accuracy: float | None
    online_cost: float | None
    single_accuracy: float | None
    single_model: str | None


@dataclass(frozen=True)
class Saving:
    """The mean cost at which an approach reaches ``target`` accuracy.

    ``accuracy`` is the realised accuracy there and ``saved`` is ``1 - cost /
    reference cost``, given only when that accuracy reaches the target. All
    None when the approach never gets there.
    """

    approach: str
    target: float
    cost: float | None
    accuracy: float | None
    saved: float | None


@dataclass(frozen=True)
class FrontCurve:
    """A front thinned for plotting: mean cost, predicted and realised accuracy."""

    cost: tuple[float, ...]
    predicted: tuple[float, ...]
    realised: tuple[float, ...]


@dataclass(frozen=True)
class PlanningEvaluation:
    """Everything the planning evaluation measured on one split of one data set."""

    dataset: str
    split: str
    seed: int
    n_train: int
    n_test: int
    models: tuple[str, ...]
    cost_weight: float
    alpha: float
    ridge: float
    reference: str
    reference_accuracy: float
    reference_cost: float
    singles: tuple[tuple[str, float, float], ...]
    rows: tuple[BudgetRow, ...]
    mean_abs_gap: float
    mean_gap: float
    robust_mean_abs_gap: float
    savings: tuple[Saving, ...]
    front: FrontCurve
    robust_front: FrontCurve
    online: tuple[tuple[float, float], ...]
    plan_seconds: float

    def table(self) -> str:
        """The budget table and the savings table, in Markdown."""
        lines = [
            f"{self.dataset}: {self.split} split (seed {self.seed}), {self.n_train} "
            f"train / {self.n_test} test queries planned as one batch; reference "
            f"{self.reference} accuracy {self.reference_accuracy:.3f} at cost "
            f"{self.reference_cost:.3f}",
            "",
            "| budget | plan cost | predicted | realised | LCB plan cost "
            "| LCB predicted | LCB realised | online (cost) | best single (model) |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for r in self.rows:
            online = (
                "-"
                if r.online_accuracy is None
                else f"{r.online_accuracy:.3f} ({r.online_cost:.3f})"
            )
            single = (
                "-"
                if r.single_accuracy is None
                else f"{r.single_accuracy:.3f} ({short_name(r.single_model or '')})"
            )
            lines.append(
                f"| {r.budget:.3f} | {r.cost:.3f} | {r.predicted:.3f} | "
                f"{r.realised:.3f} | {r.robust_cost:.3f} | {r.robust_predicted:.3f} "
                f"| {r.robust_realised:.3f} | {online} | {single} |"
            )
        lines += [
            "",
            f"Predicted vs realised accuracy at these budgets: mean |gap| "
            f"{self.mean_abs_gap:.3f} (mean signed {self.mean_gap:+.3f}); LCB plans "
            f"{self.robust_mean_abs_gap:.3f}. Planning the batch took "
            f"{1e3 * self.plan_seconds:.0f} ms (predict, front, "
            f"{len(self.rows)} budgets). Cost saved at the reference accuracy and "
            "1 point below it (realised front: cheapest front point reaching it on "
            "the test outcomes, i.e. with hindsight; for_accuracy: the plan asked "
            "for it as its predicted floor, no hindsight):",
            "",
            "| approach | target accuracy | mean cost | realised acc | cost saved |",
            "|---|---|---|---|---|",
        ]
        for v in self.savings:
            cells = [
                v.approach,
                f"{v.target:.3f}",
                _fmt(v.cost),
                _fmt(v.accuracy),
                _fmt(v.saved, percent=True),
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)

    def write_json(self, path: str | Path) -> Path:
        """Write every number (fronts thinned) as JSON at ``path``."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(asdict(self), indent=2) + "\n", encoding="utf-8")
        return target


def evaluate_planning(
    prepared: Prepared,
    *,
    n_budgets: int = 10,
    cost_weight: float = 0.0,
    alpha: float = 0.1,
    ridge: float = 1.0,
    cost_weights: tuple[float, ...] = DEFAULT_COST_WEIGHTS,
) -> PlanningEvaluation:
    """Plan the test part at ``n_budgets`` budgets; compare with online and singles.

    Budgets are evenly spaced mean costs from the cheapest plan to the most
    expensive useful plan of the mean front. ``cost_weight`` is the router's ``p``
    the policy learns with (its predicted score adds ``p * cost`` back).
    """
    if n_budgets < 2:
        raise ValueError(f"n_budgets: must be >= 2, got {n_budgets}")
    problem = prepared.problem
    n = problem.test_scores.shape[0]
    policy = _warm_policy(problem, cost_weight, alpha, ridge)
    start = time.perf_counter()
    front = _front(policy, problem, cost_weight, robust=False)
    budgets = np.linspace(front.costs[0], front.costs[-1], n_budgets) / n
    plans = [front.for_budget(float(b) * n) for b in budgets]
    plan_seconds = time.perf_counter() - start
    robust_front = _front(policy, problem, cost_weight, robust=True)
    robust_plans = [robust_front.for_budget(float(b) * n) for b in budgets]
    rows_index = np.arange(n)

    def realised(arms: list[int]) -> float:
        return float(problem.test_scores[rows_index, arms].mean())

    singles = [
        (name, evaluate(np.full(n, j), problem.test_scores, problem.cost))
        for j, name in enumerate(problem.models)
    ]
    ref_name, ref = max(singles, key=lambda s: (s[1].accuracy, -s[1].cost))
    online = [
        evaluate(r.choices, problem.test_scores, problem.cost)
        for r in OnlineLinUCB(warm=True, alpha=alpha, ridge=ridge).route(
            problem, cost_weights
        )
    ]
    rows = []
    for b, plan, robust in zip(budgets, plans, robust_plans, strict=True):
        best_online = best_within_budget(online, float(b))
        affordable = [s for s in singles if s[1].cost <= b + 1e-12]
        single = max(affordable, key=lambda s: s[1].accuracy, default=None)
        rows.append(
            BudgetRow(
                budget=float(b),
                cost=plan.predicted_cost / n,
                predicted=plan.predicted_accuracy,
                realised=realised(plan.arms),
                robust_cost=robust.predicted_cost / n,
                robust_predicted=robust.predicted_accuracy,
                robust_realised=realised(robust.arms),
                online_accuracy=best_online.accuracy if best_online else None,
                online_cost=best_online.cost if best_online else None,
                single_accuracy=single[1].accuracy if single else None,
                single_model=single[0] if single else None,
            )
        )

    gaps = np.array([r.predicted - r.realised for r in rows])
    robust_gaps = np.array([r.robust_predicted - r.robust_realised for r in rows])
    return PlanningEvaluation(
        dataset=prepared.data.name,
        split=prepared.split.kind,
        seed=prepared.split.seed,
        n_train=len(prepared.split.train),
        n_test=n,
        models=problem.models,
        cost_weight=cost_weight,
        alpha=alpha,
        ridge=ridge,
        reference=ref_name,
        reference_accuracy=ref.accuracy,
        reference_cost=ref.cost,
        singles=tuple((name, p.accuracy, p.cost) for name, p in singles),
        rows=tuple(rows),
        mean_abs_gap=float(np.abs(gaps).mean()),
        mean_gap=float(gaps.mean()),
        robust_mean_abs_gap=float(np.abs(robust_gaps).mean()),
        savings=_savings(front, robust_front, online, problem, ref),
        front=_curve(front, problem.test_scores),
        robust_front=_curve(robust_front, problem.test_scores),
        online=tuple((p.cost, p.accuracy) for p in online),
        plan_seconds=plan_seconds,
    )


def _warm_policy(
    problem: Problem, cost_weight: float, alpha: float, ridge: float
) -> LinUCBPolicy:
    """The router's policy fitted on the training rewards (as ``linucb-warm``)."""
    policy = LinUCBPolicy(
        problem.models, problem.train_features.shape[1], alpha=alpha, ridge=ridge
    )
    policy.fit(
        problem.train_features, problem.rewards(problem.train_scores, cost_weight)
    )
    return policy


def _curve(front: ParetoFront, truth: FloatArray) -> FrontCurve:
    keep = np.unique(np.linspace(0, len(front) - 1, _PLOT_POINTS).round().astype(int))
    n = front.n_queries
    return FrontCurve(
        cost=tuple((front.costs[keep] / n).tolist()),
        predicted=tuple(front.accuracies[keep].tolist()),
        realised=tuple(front.rescore(truth)[keep].tolist()),
    )


def _front(
    policy: LinUCBPolicy, problem: Problem, cost_weight: float, *, robust: bool
) -> ParetoFront:
    """The test batch's front from the policy's predicted scores (or LCBs): it
    learned rewards at ``cost_weight``, so its scores are those plus the penalty."""
    mean, width = policy.predict(problem.test_features)
    rewards = mean - policy.alpha * width if robust else mean
    scores = np.clip(rewards + cost_weight * problem.cost[None, :], 0.0, 1.0)
    return ParetoFront.build(scores=scores, costs=problem.cost, models=problem.models)


def _savings(
    front: ParetoFront,
    robust_front: ParetoFront,
    online: list[Point],
    problem: Problem,
    ref: Point,
) -> tuple[Saving, ...]:
    """Every approach at the reference accuracy and 1 point below it."""
    savings = []
    for target in (ref.accuracy, ref.accuracy - 0.01):
        for name, fr in (("planned", front), ("planned LCB", robust_front)):
            savings.append(
                _front_saving(f"{name}, realised front", fr, problem, target, ref.cost)
            )
        for name, fr in (("planned", front), ("planned LCB", robust_front)):
            savings.append(
                _floor_saving(f"{name}, for_accuracy", fr, problem, target, ref.cost)
            )
        savings.append(_points_saving("online linucb-warm", online, target, ref.cost))
    return tuple(savings)


def _front_saving(
    name: str, front: ParetoFront, problem: Problem, target: float, ref_cost: float
) -> Saving:
    """Cheapest supported point whose realised accuracy reaches ``target``.

    Picked with hindsight (the test outcomes), as a front-to-front comparison.
    """
    realised = front.rescore(problem.test_scores)
    reached = np.flatnonzero(realised >= target)
    if len(reached) == 0:
        return Saving(name, target, None, None, None)
    t = int(reached[0])
    cost = float(front.costs[t] / front.n_queries)
    return _saving(name, target, cost, float(realised[t]), ref_cost)


def _floor_saving(
    name: str, front: ParetoFront, problem: Problem, target: float, ref_cost: float
) -> Saving:
    """The plan asked for ``target`` as its predicted floor (no hindsight)."""
    try:
        plan = front.for_accuracy(target)
    except ValueError:  # the predictions never reach the target
        return Saving(name, target, None, None, None)
    rows = np.arange(front.n_queries)
    accuracy = float(problem.test_scores[rows, plan.arms].mean())
    cost = plan.predicted_cost / front.n_queries
    return _saving(name, target, cost, accuracy, ref_cost)


def _points_saving(
    name: str, points: list[Point], target: float, ref_cost: float
) -> Saving:
    """The cheapest routing point whose accuracy reaches ``target``."""
    reaching = [p for p in points if p.accuracy >= target]
    if not reaching:
        return Saving(name, target, None, None, None)
    best = min(reaching, key=lambda p: p.cost)
    return _saving(name, target, best.cost, best.accuracy, ref_cost)


def _saving(
    name: str, target: float, cost: float, accuracy: float, ref_cost: float
) -> Saving:
    saved = 1 - cost / ref_cost if accuracy >= target else None
    return Saving(name, target, cost, accuracy, saved)


def plot_planning(
    evaluation: PlanningEvaluation, path: str | Path, *, dpi: int = 100
) -> Path:
    """Predicted and realised fronts, budget plans, online router, single models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(8, 5.5))
    for curve, label, color, width, layer in (
        (evaluation.front, "planned", "tab:blue", 2.2, 2.5),
        (evaluation.robust_front, "planned LCB", "tab:orange", 1.0, 2.2),
    ):
        ax.plot(
            curve.cost,
            curve.predicted,
            "--",
            color=color,
            linewidth=1,
            label=f"{label}: predicted front",
        )
        ax.plot(
            curve.cost,
            curve.realised,
            "-",
            color=color,
            linewidth=width,
            zorder=layer,
            label=f"{label}: realised",
        )
    ax.scatter(
        [r.cost for r in evaluation.rows],
        [r.realised for r in evaluation.rows],
        color="tab:blue",
        s=22,
        zorder=3,
        edgecolor="white",
        label=f"planned at the {len(evaluation.rows)} budgets (realised)",
    )
    online = sorted(evaluation.online)
    ax.plot(
        [c for c, _ in online],
        [a for _, a in online],
        "-",
        marker=".",
        markersize=4,
        linewidth=1,
        color="tab:green",
        label="online router (linucb-warm, p swept)",
    )
    for name, accuracy, cost in evaluation.singles:
        ax.scatter([cost], [accuracy], marker="s", color="black", s=20, zorder=3)
        ax.annotate(
            short_name(name),
            (cost, accuracy),
            textcoords="offset points",
            xytext=(4, 3),
            fontsize=7,
        )
    ax.axhline(
        evaluation.reference_accuracy, color="grey", linewidth=0.6, linestyle=":"
    )
    ax.set_xlabel("mean cost per query (most expensive model = 1)")
    ax.set_ylabel("mean score (accuracy)")
    ax.set_title(
        f"{evaluation.dataset}: batch planning on {evaluation.n_test} test queries "
        f"({evaluation.split} split, seed {evaluation.seed})",
        fontsize=9,
    )
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, loc="lower right")
    return save_figure(fig, path, dpi)


def _fmt(value: float | None, *, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"
