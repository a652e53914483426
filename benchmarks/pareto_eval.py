"""Batch planning on recorded outcomes: planned fronts vs the online router and the
single models, at 10 budgets, on held-out random splits (seed 0, 80/20).

For each data set: fit the router's LinUCB policy on the training rewards (as the
benchmark's ``linucb-warm``), plan the whole test part as one batch, and print the
budget table, the gap between predicted and realised accuracy, and the cost saved at
the best single model's accuracy. Writes ``results/planning_<name>.json`` and the
plot ``docs/planning_<name>.png``. Embeddings come from ``.metallm_cache/``.

Run from the project root: ``.venv/bin/python benchmarks/pareto_eval.py``
"""

from __future__ import annotations

import argparse
from pathlib import Path

from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.pareto_eval import evaluate_planning, plot_planning
from langchain_metallm.bench.runner import prepare


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--datasets", default="llmrouter9,mmlu2")
    parser.add_argument("--split", choices=("random", "tasks"), default="random")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--test-fraction", type=float, default=0.2)
    parser.add_argument("--budgets", type=int, default=10)
    parser.add_argument("--cost-weight", type=float, default=0.0)
    parser.add_argument("--alpha", type=float, default=0.1)
    parser.add_argument("--ridge", type=float, default=1.0)
    parser.add_argument("--out", default="results", help="folder for the JSON files")
    parser.add_argument("--docs", default="docs", help="folder for the PNG plots")
    args = parser.parse_args()
    for name in args.datasets.split(","):
        prepared = prepare(
            resolve_data_dir(name),
            split=args.split,
            seed=args.seed,
            test_fraction=args.test_fraction,
            progress=False,
        )
        evaluation = evaluate_planning(
            prepared,
            n_budgets=args.budgets,
            cost_weight=args.cost_weight,
            alpha=args.alpha,
            ridge=args.ridge,
        )
        stem = f"planning_{evaluation.dataset}"
        if args.split != "random" or args.seed != 0:
            stem += f"_{args.split}_seed{args.seed}"
        json_path = evaluation.write_json(Path(args.out) / f"{stem}.json")
        png_path = plot_planning(evaluation, Path(args.docs) / f"{stem}.png")
        print(evaluation.table())
        print(f"\nJSON: {json_path}\nPNG:  {png_path}\n")


if __name__ == "__main__":
    main()
