"""Benchmark results: per-policy summary, the stdout table and the JSON record."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from langchain_metallm.bench.metrics import Point, apgr, best_within_budget, cpt
from langchain_metallm.bench.sweep import Curve, CurvePoint


@dataclass(frozen=True)
class SplitInfo:
    """How the data was split."""

    kind: str
    seed: int
    test_fraction: float
    n_train: int
    n_test: int
    held_out_tasks: tuple[str, ...] = ()


@dataclass(frozen=True)
class Summary:
    """One policy's headline numbers against the best single model ("reference").

    ``at_half_cost`` / ``at_quarter_cost`` are the best accuracies of points costing
    at most 50% / 25% of the reference; APGR and CPT exist for two-model data only.
    """

    policy: str
    best_accuracy: float
    cost_at_best: float
    at_half_cost: float | None
    at_quarter_cost: float | None
    apgr: float | None
    cpt50: float | None
    cpt80: float | None
    us_per_query: float


@dataclass(frozen=True)
class BenchmarkResult:
    """Everything one benchmark run measured, with the settings that produced it."""

    dataset: str
    data_dir: str
    embedder: str
    models: tuple[str, ...]
    price: tuple[float, ...]
    cost: tuple[float, ...]
    split: SplitInfo
    feature_dim: int
    task_names: tuple[str, ...]
    alpha: float | None
    ridge: float
    cost_weights: tuple[float, ...]
    curves: tuple[Curve, ...]
    features: str = "tasks"
    """The fitted LinUCB policies' context: "auto" (clusters of the training
    queries), "tasks" (classifier of their labels) or "embedding"."""
    summaries: tuple[Summary, ...] = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "summaries", tuple(summarise(self)))

    @property
    def reference(self) -> tuple[str, Point]:
        """The best single model on the test set (the cheaper one on ties)."""
        singles = [
            (c.policy, _point(c.points[0]))
            for c in self.curves
            if c.policy in self.models
        ]
        return max(singles, key=lambda item: (item[1].accuracy, -item[1].cost))

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready record of the settings, every curve point and the summary."""
        record = asdict(self)
        for curve in record["curves"]:
            for point in curve["points"]:
                point["shares"] = dict(zip(self.models, point["shares"], strict=True))
        name, ref = self.reference
        record["reference"] = {
            "model": name,
            "accuracy": ref.accuracy,
            "cost": ref.cost,
        }
        cleaned: dict[str, Any] = _finite(record)
        return cleaned

    def write_json(self, path: str | Path) -> None:
        """Write ``to_dict()`` to ``path`` (parents created)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")

    def table(self) -> str:
        """The summary as a Markdown table, one row per policy."""
        name, ref = self.reference
        kind = "automatic tasks" if self.features == "auto" else "tasks"
        features = (
            f"embedding + {len(self.task_names)} {kind}"
            if self.task_names
            else "embedding only"
        )
        lines = [
            f"{self.dataset}: {self.split.kind} split (seed {self.split.seed}), "
            f"{self.split.n_train} train / {self.split.n_test} test queries; "
            f"LinUCB features: {features}; "
            f"reference {name} accuracy {ref.accuracy:.3f} at cost {ref.cost:.3f}",
            "",
            "| policy | best acc | its cost | acc @<=50% ref cost "
            "| acc @<=25% ref cost | APGR | CPT(50%) | CPT(80%) | us/query |",
            "|---|---|---|---|---|---|---|---|---|",
        ]
        for s in self.summaries:
            cells = [
                s.policy,
                f"{s.best_accuracy:.3f}",
                f"{s.cost_at_best:.3f}",
                _fmt(s.at_half_cost),
                _fmt(s.at_quarter_cost),
                _fmt(s.apgr),
                _fmt(s.cpt50, percent=True),
                _fmt(s.cpt80, percent=True),
                f"{s.us_per_query:.1f}",
            ]
            lines.append("| " + " | ".join(cells) + " |")
        return "\n".join(lines)


def summarise(result: BenchmarkResult) -> list[Summary]:
    """Headline numbers of every policy in ``result``."""
    _, ref = result.reference
    two = len(result.models) == 2
    if two:
        weak, strong = sorted(range(2), key=lambda j: result.cost[j])
        single = {c.policy: c.points[0].accuracy for c in result.curves}
        acc_weak = single[result.models[weak]]
        acc_strong = single[result.models[strong]]
        two = acc_weak != acc_strong
    summaries = []
    for curve in result.curves:
        points = [_point(p) for p in curve.points]
        best = max(points, key=lambda p: (p.accuracy, -p.cost))
        half = best_within_budget(points, 0.5 * ref.cost)
        quarter = best_within_budget(points, 0.25 * ref.cost)
        gap: tuple[float | None, float | None, float | None] = (None, None, None)
        if two and curve.policy not in result.models:  # single models are the ends
            shares = [p.shares[strong] for p in points]
            accs = [p.accuracy for p in points]
            gap = (
                apgr(shares, accs, acc_weak, acc_strong),
                cpt(0.5, shares, accs, acc_weak, acc_strong),
                cpt(0.8, shares, accs, acc_weak, acc_strong),
            )
        seconds = sum(p.seconds_per_query for p in curve.points) / len(curve.points)
        summaries.append(
            Summary(
                policy=curve.policy,
                best_accuracy=best.accuracy,
                cost_at_best=best.cost,
                at_half_cost=half.accuracy if half else None,
                at_quarter_cost=quarter.accuracy if quarter else None,
                apgr=gap[0],
                cpt50=gap[1],
                cpt80=gap[2],
                us_per_query=seconds * 1e6,
            )
        )
    return summaries


def _point(p: CurvePoint) -> Point:
    return Point(accuracy=p.accuracy, cost=p.cost, shares=p.shares)


def _fmt(value: float | None, *, percent: bool = False) -> str:
    if value is None:
        return "-"
    return f"{100 * value:.1f}%" if percent else f"{value:.3f}"


def _finite(value: Any) -> Any:
    """JSON has no NaN: replace non-finite floats by ``None``, recursively."""
    if isinstance(value, float):
        return value if math.isfinite(value) else None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
