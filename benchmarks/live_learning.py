"""Learning from live feedback alone (issue 16, target 1), measured on the package.

A router core (``RouterCore``, what the chat model runs) that was never fitted
(default settings: online clusters of the live prompts, optimistic prior,
``alpha=None``) gets a random 80% of llmrouter9's
rows as live traffic in a seeded random order, seeing only the chosen child's
score, then the held-out 20% (still learning). Each cost weight is one such run.
Printed, mean and worst over seeds:

- held-out accuracy and cost per cost weight, and the best accuracy within 50% of
  the best single child's cost minus that child's accuracy (target: >= 0);
- the two cases that must hold: at ``cost_weight=0`` never below the best single
  child; no collapse, i.e. no cost weight where one child alone (no pricier than
  the router's realised cost) is more accurate;
- cumulative regret (score - p * cost) against the oracle and against a router
  fitted on the live part's recorded outcomes (full information, routing greedily);
- the learning curve: accuracy per 500 calls.

``--baseline`` runs the issue's starting point instead (bare embedding, alpha 0.1).
Run from the project root (vectors come from ``.metallm_cache/``):
``python benchmarks/live_learning.py --seeds 3``
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR, CachedVectors
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.live import (
    COST_WEIGHTS,
    cached_vectors,
    live_choices,
    live_stream,
    margin_at_half_cost,
    new_core,
    prices_of,
)
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings

FloatArray = NDArray[np.float64]
WINDOW = 500
"""Calls per point of the learning curve."""


def fitted_predictions(
    core: RouterCore,
    prompts: Sequence[str],
    scores: FloatArray,
    stream: Sequence[str],
) -> FloatArray:
    """Predicted scores of the stream by a core fitted on ``prompts``' outcomes."""
    core.fit(prompts, scores, None)
    assert core.policy is not None
    return core.policy.predict(core.contexts(stream))[0]


@dataclass
class Point:
    """One cost weight's run: held-out accuracy and cost, regret, learning curve."""

    p: float
    accuracy: float
    cost: float
    fitted_accuracy: float
    fitted_cost: float
    regret_oracle: list[float]
    regret_fitted: list[float]
    curve: list[float]


@dataclass
class Run:
    """One seed: each child's held-out accuracy and the points of every weight."""

    seed: int
    single: list[float]
    points: list[Point]


def run_seed(
    data: Outcomes,
    vectors: CachedVectors,
    seed: int,
    weights: Sequence[float],
    baseline: bool,
) -> Run:
    """The live stream of one seed (training part shuffled, then the test part
    shuffled), served once per cost weight."""
    stream = live_stream(data, seed)
    prompts, scores, n_live = stream.prompts, stream.scores, stream.n_live
    cost, rows = data.cost, np.arange(len(prompts))
    catalogue = Catalogue.build(prices_of(data))
    settings = Settings()
    fitted = fitted_predictions(
        new_core("fitted", settings, catalogue, vectors),
        prompts[:n_live],
        scores[:n_live],
        prompts,
    )
    if baseline:
        settings = settings.changed(alpha=0.1, online_clusters=False)
    marks = [WINDOW - 1, 1_999, n_live - 1, len(prompts) - 1]
    points = []
    for p in weights:
        core = new_core("live", settings.changed(cost_weight=p), catalogue, vectors)
        chosen = live_choices(core, prompts, scores)
        reward = scores[rows, chosen] - p * cost[chosen]
        oracle = (scores - p * cost).max(axis=1)
        greedy = np.argmax(fitted - p * cost, axis=1)
        fit_reward = scores[rows, greedy] - p * cost[greedy]
        got = scores[rows, chosen]
        points.append(
            Point(
                p=p,
                accuracy=float(got[n_live:].mean()),
                cost=float(cost[chosen[n_live:]].mean()),
                fitted_accuracy=float(scores[rows, greedy][n_live:].mean()),
                fitted_cost=float(cost[greedy[n_live:]].mean()),
                regret_oracle=np.cumsum(oracle - reward)[marks].tolist(),
                regret_fitted=np.cumsum(fit_reward - reward)[marks].tolist(),
                curve=[
                    float(got[s : s + WINDOW].mean()) for s in range(0, n_live, WINDOW)
                ],
            )
        )
    single = scores[n_live:].mean(axis=0).tolist()
    return Run(seed=seed, single=single, points=points)


def summarize(runs: list[Run], cost: FloatArray) -> None:
    """Print the target, the must-hold cases, regret and the learning curve."""
    m50, p0, dominated = [], [], []
    for run in runs:
        single = np.array(run.single)
        best = int(np.argmax(single))
        pairs = [(q.accuracy, q.cost) for q in run.points]
        m50.append(margin_at_half_cost(pairs, single, cost))
        p0.append(run.points[0].accuracy - single[best])
        for q in run.points:
            affordable = single[cost <= q.cost + 1e-9]
            dominated.append(q.accuracy - (affordable.max() if len(affordable) else 0))
    print(
        "within 50% of the best child's cost, minus its accuracy: "
        f"mean {np.mean(m50):+.4f} worst {np.min(m50):+.4f}"
    )
    print(
        f"cost_weight=0 minus the best child: mean {np.mean(p0):+.4f} "
        f"worst {np.min(p0):+.4f}"
    )
    print(
        "minus the best child no pricier than the router (every weight and seed): "
        f"worst {min(dominated):+.4f}, "
        f"below 0 at {sum(d < 0 for d in dominated)}/{len(dominated)}"
    )
    print("p      accuracy mean/worst  cost   fitted acc/cost   regret @500/2000/")
    print("       live end/all vs the oracle, then vs the fitted router")
    for k, p in enumerate(q.p for q in runs[0].points):
        pts = [run.points[k] for run in runs]
        acc = [q.accuracy for q in pts]
        oracle = np.mean([q.regret_oracle for q in pts], axis=0).round(0)
        fitted = np.mean([q.regret_fitted for q in pts], axis=0).round(0)
        print(
            f"{p:<6} {np.mean(acc):.4f}/{np.min(acc):.4f}  "
            f"{np.mean([q.cost for q in pts]):.3f}  "
            f"{np.mean([q.fitted_accuracy for q in pts]):.4f}/"
            f"{np.mean([q.fitted_cost for q in pts]):.3f}   "
            f"{oracle.tolist()}  {fitted.tolist()}"
        )
        curve = np.mean([q.curve for q in pts], axis=0).round(3)
        print(f"       accuracy per {WINDOW} live calls: {curve.tolist()}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default="llmrouter9")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--baseline", action="store_true")
    parser.add_argument("--weights", default=",".join(map(str, COST_WEIGHTS)))
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    data = load_outcomes(resolve_data_dir(args.data))
    vectors = cached_vectors(data, args.cache_dir)
    weights = [float(w) for w in args.weights.split(",")]
    runs = []
    for seed in range(args.seeds):
        run = run_seed(data, vectors, seed, weights, args.baseline)
        runs.append(run)
        print(
            f"seed {seed}: "
            + " ".join(f"p{q.p}:{q.accuracy:.3f}/{q.cost:.2f}" for q in run.points),
            flush=True,
        )
    summarize(runs, data.cost)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    name = "live_learning_baseline.json" if args.baseline else "live_learning.json"
    (out / name).write_text(json.dumps([asdict(run) for run in runs], indent=1))


if __name__ == "__main__":
    main()
