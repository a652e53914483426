"""Time OptLLM-style batch planning: 10,000 queries x 9 models, target under 1 s.

Generates a seeded, realistic batch (per-query difficulty, per-model skill that
mostly rises with price, a few dominated models, lower-confidence-bound scores
that stray slightly outside [0, 1]) and prints the median time of front
building, one ``for_budget`` and one ``for_accuracy`` over several runs. It
also times the step before, the router's predicted scores
(``pareto.policy_scores``: ``LinUCBPolicy.predict`` on 385-dim contexts
of a policy fitted on 4,000 rows), which planning from a router adds.
Run: ``.venv/bin/python benchmarks/pareto_speed.py``.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import numpy as np

from langchain_metallm.core.pareto import ParetoFront, policy_scores
from langchain_metallm.core.policy import LinUCBPolicy


def make_batch(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Predicted scores (n, k), normalised per-model costs (k,) and model names."""
    rng = np.random.default_rng(seed)
    prices = np.sort(np.exp(rng.uniform(np.log(0.02), np.log(1.0), size=k)))
    prices /= prices.max()
    skill = 1.5 * np.log(prices / prices.min() + 1.0) + rng.normal(0, 0.4, size=k)
    difficulty = rng.normal(0.5, 1.2, size=(n, 1))
    logits = skill[None, :] - difficulty + rng.normal(0, 0.5, size=(n, k))
    probability = 1.0 / (1.0 + np.exp(-logits))
    width = rng.uniform(0.0, 0.08, size=(n, k))  # robust planning: a lower bound
    return probability - width, prices, [f"model-{j}" for j in range(k)]


def prediction_seconds(n: int, k: int, dim: int, seed: int, repeats: int) -> float:
    """Median time of the router's predicted scores for ``n`` contexts."""
    rng = np.random.default_rng(seed)
    vectors = rng.normal(size=(n, dim - 1))
    contexts = np.hstack(
        [vectors / np.linalg.norm(vectors, axis=1, keepdims=True), np.ones((n, 1))]
    )
    policy = LinUCBPolicy([f"model-{j}" for j in range(k)], dim)
    train = min(n, 4_000)
    policy.fit(contexts[:train], rng.uniform(size=(train, k)))
    costs = np.linspace(0.1, 1.0, k)
    return median_seconds(
        lambda: policy_scores(policy, contexts, costs, cost_weight=0.1, robust=True),
        repeats,
    )


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=10_000)
    parser.add_argument("--models", type=int, default=9)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--dim", type=int, default=385, help="router context length")
    args = parser.parse_args()
    scores, costs, models = make_batch(args.queries, args.models, args.seed)

    def build() -> ParetoFront:
        return ParetoFront.build(scores=scores, costs=costs, models=models)

    front = build()
    lo, hi = front.costs[0], front.costs[-1]
    budget = lo + 0.37 * (hi - lo)
    floor = float(np.quantile(front.accuracies, 0.61))
    t_build = median_seconds(build, args.repeats)
    t_budget = median_seconds(lambda: front.for_budget(budget), args.repeats)
    t_accuracy = median_seconds(lambda: front.for_accuracy(floor), args.repeats)
    by_budget = front.for_budget(budget)
    by_accuracy = front.for_accuracy(floor)

    print(f"batch: {args.queries} queries x {args.models} models, seed {args.seed}")
    print(f"front: {len(front)} supported points, cost {lo:.2f}..{hi:.2f}")
    print(f"build          {t_build * 1e3:8.1f} ms (median of {args.repeats})")
    print(f"for_budget     {t_budget * 1e3:8.1f} ms  budget {budget:.2f}")
    print(
        f"  -> cost {by_budget.predicted_cost:.4f}, accuracy "
        f"{by_budget.predicted_accuracy:.6f} (LP bound {by_budget.bound:.6f}), "
        f"supported={by_budget.supported}, optimal={by_budget.optimal}"
    )
    print(f"for_accuracy   {t_accuracy * 1e3:8.1f} ms  floor {floor:.6f}")
    print(
        f"  -> cost {by_accuracy.predicted_cost:.4f} (LP bound "
        f"{by_accuracy.bound:.4f}), accuracy {by_accuracy.predicted_accuracy:.6f}, "
        f"supported={by_accuracy.supported}, optimal={by_accuracy.optimal}"
    )
    total = t_build + t_budget + t_accuracy
    verdict = "OK" if total < 1.0 else "TOO SLOW"
    print(f"total          {total * 1e3:8.1f} ms  (target < 1000 ms: {verdict})")
    t_predict = prediction_seconds(
        args.queries, args.models, args.dim, args.seed, max(1, args.repeats // 2)
    )
    print(f"policy_scores  {t_predict * 1e3:8.1f} ms  (LinUCB predict, dim {args.dim})")
    routed = t_predict + total
    verdict = "OK" if routed < 1.0 else "TOO SLOW"
    print(f"with predict   {routed * 1e3:8.1f} ms  (target < 1000 ms: {verdict})")


if __name__ == "__main__":
    main()
