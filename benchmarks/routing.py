"""Routing benchmark over several seeds and both split kinds, so no number rests on
one lucky split. Prints, per data set and split, each learned policy's margin to the
best single model at <=50% / <=25% of its cost (k-model data) or APGR / CPT(50%)
(two-model data), per seed and on average, plus LinUCB's time per select+update.

Run from the project root (embeddings are cached in ``.metallm_cache/``):
``.venv/bin/python benchmarks/routing.py --seeds 5`` (``--features tasks`` for
the fitted LinUCB policies on task labels, ``embedding`` on the bare embedding;
the default is automatic tasks, as ``router.fit`` without labels).
"""

from __future__ import annotations

import argparse
import statistics

from langchain_metallm.bench import BenchmarkResult, run_benchmark
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.runner import FEATURES

LEARNED = ("knn-20", "ridge-offline", "linucb-warm", "linucb-cold")


def margins(result: BenchmarkResult, policy: str) -> tuple[float, float]:
    """(accuracy at <=50% ref cost, at <=25%) minus the reference accuracy."""
    _, ref = result.reference
    summary = next(s for s in result.summaries if s.policy == policy)
    half = summary.at_half_cost if summary.at_half_cost is not None else 0.0
    quarter = summary.at_quarter_cost if summary.at_quarter_cost is not None else 0.0
    return half - ref.accuracy, quarter - ref.accuracy


def two_model(result: BenchmarkResult, policy: str) -> tuple[float, float]:
    """(APGR, CPT(50%)) of ``policy``."""
    summary = next(s for s in result.summaries if s.policy == policy)
    assert summary.apgr is not None and summary.cpt50 is not None
    return summary.apgr, summary.cpt50


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=5)
    parser.add_argument("--datasets", default="llmrouter9,mmlu2,gsm8k2")
    parser.add_argument("--splits", default="random,tasks")
    parser.add_argument("--features", choices=FEATURES, default="auto")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        data_dir = resolve_data_dir(name)
        for kind in args.splits.split(","):
            rows: dict[str, list[tuple[float, float]]] = {p: [] for p in LEARNED}
            timing: list[float] = []
            try:
                for seed in range(args.seeds):
                    result = run_benchmark(
                        data_dir,
                        split=kind,
                        seed=seed,
                        features=args.features,
                        progress=False,
                    )
                    measure = two_model if len(result.models) == 2 else margins
                    for policy in LEARNED:
                        rows[policy].append(measure(result, policy))
                    timing.extend(
                        s.us_per_query
                        for s in result.summaries
                        if s.policy.startswith("linucb")
                    )
            except ValueError as exc:
                print(f"\n{name} / {kind}: skipped ({exc})")
                continue
            two = len(result.models) == 2
            head = "APGR, CPT(50%)" if two else "acc - ref @<=50% cost, @<=25% cost"
            print(
                f"\n{name} / {kind} split, seeds 0..{args.seeds - 1}, "
                f"{args.features} features: {head}"
            )
            for policy, values in rows.items():
                per_seed = "  ".join(f"{a:+.3f},{b:+.3f}" for a, b in values)
                mean_a = statistics.fmean(a for a, _ in values)
                mean_b = statistics.fmean(b for _, b in values)
                print(f"  {policy:14s} mean {mean_a:+.3f},{mean_b:+.3f} | {per_seed}")
            print(f"  LinUCB select+update: {statistics.fmean(timing):.0f} us/query")


if __name__ == "__main__":
    main()
