"""``metallm-bench DATA_DIR``: run the benchmark; print a table, write JSON and PNG."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from langchain_core.embeddings import Embeddings

from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR
from langchain_metallm.bench.data import PACKAGED_SAMPLES
from langchain_metallm.bench.plots import plot_curves
from langchain_metallm.bench.runner import (
    DEFAULT_COST_WEIGHTS,
    FEATURES,
    run_benchmark,
)

SHARED_DATA = Path("..") / "shared" / "data"
"""Where the recorded outcomes live, relative to the project root."""


def main(
    argv: Sequence[str] | None = None, *, embeddings: Embeddings | None = None
) -> int:
    """Entry point; ``embeddings`` replaces the packaged MiniLM (e.g. in tests)."""
    args = _parser().parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir)
    try:
        result = run_benchmark(
            data_dir,
            split=args.split,
            seed=args.seed,
            test_fraction=args.test_fraction,
            embeddings=embeddings,
            cache_dir=args.cache_dir,
            cost_weights=args.cost_weights,
            alpha=args.alpha,
            ridge=args.ridge,
            knn_k=args.knn_k,
            features=args.features,
            limit=args.limit,
            progress=not args.quiet,
        )
    except ValueError as exc:
        raise SystemExit(f"metallm-bench: {exc}") from exc
    stem = f"bench_{result.dataset}_{result.split.kind}_seed{result.split.seed}"
    out = Path(args.out) if args.out else Path("results")
    json_path = out / f"{stem}.json"
    png_path = Path(args.png) if args.png else out / f"{stem}.png"
    result.write_json(json_path)
    plot_curves(result, png_path)
    print(result.table())
    print(f"\nJSON: {json_path}\nPNG:  {png_path}")
    return 0


def resolve_data_dir(name: str) -> Path:
    """``name`` if it is a directory, else ``../shared/data/<name>`` by the project,
    else the sample of that data set packaged with the library (gsm8k2,
    llmrouter9)."""
    given = Path(name)
    if given.is_dir():
        return given
    project = Path(__file__).resolve().parents[2]
    for root in (Path.cwd(), project):
        candidate = root / SHARED_DATA / name
        if candidate.is_dir():
            return candidate
    sample = PACKAGED_SAMPLES / name
    if sample.is_dir():
        print(f"metallm-bench: no {SHARED_DATA / name}; using the packaged sample")
        return sample
    known = sorted(p.name for p in PACKAGED_SAMPLES.iterdir() if p.is_dir())
    raise SystemExit(
        f"metallm-bench: {name}: no such data set directory (looked in ./, "
        f"{SHARED_DATA}; packaged samples: {', '.join(known)})"
    )


def _weights(text: str) -> list[float]:
    try:
        weights = [float(part) for part in text.split(",") if part.strip()]
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not a comma-separated list: {text}") from exc
    if not weights or any(w < 0 for w in weights):
        raise argparse.ArgumentTypeError("cost weights must be >= 0 and non-empty")
    return weights


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="metallm-bench",
        description="Compare routing policies on recorded LLM outcomes "
        "(models.json + *.jsonl): single models, random, oracle, kNN, "
        "offline ridge and LinUCB warm/cold, over a sweep of cost weights.",
    )
    parser.add_argument(
        "data_dir",
        nargs="?",
        default="gsm8k2",
        help="data set folder, or a name under ../shared/data (default gsm8k2; its "
        "packaged sample is used when ../shared/data is absent)",
    )
    parser.add_argument(
        "--split",
        choices=("random", "tasks"),
        default="random",
        help="random rows held out, or whole tasks held out (default random)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of the split and of --limit"
    )
    parser.add_argument(
        "--test-fraction",
        type=float,
        default=0.2,
        help="share of rows (or tasks) held out for testing (default 0.2)",
    )
    parser.add_argument(
        "--limit",
        type=int,
        help="use a random subset of this many rows, for a quick run",
    )
    parser.add_argument("--out", help="output folder for JSON and PNG (./results)")
    parser.add_argument("--png", help="PNG path (default: in --out)")
    parser.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE_DIR),
        help=f"where embeddings are cached on disk (default {DEFAULT_CACHE_DIR})",
    )
    parser.add_argument(
        "--cost-weights",
        type=_weights,
        default=list(DEFAULT_COST_WEIGHTS),
        help="comma-separated cost weights p (default 0 to 1.2 step 0.025)",
    )
    parser.add_argument(
        "--alpha",
        type=float,
        default=None,
        help="LinUCB exploration (default: the router's, 0.1 fitted and 0.5 cold)",
    )
    parser.add_argument(
        "--ridge", type=float, default=1.0, help="LinUCB ridge (default 1.0)"
    )
    parser.add_argument(
        "--knn-k", type=int, default=20, help="neighbours of the kNN baseline"
    )
    parser.add_argument(
        "--features",
        choices=FEATURES,
        default="auto",
        help="fitted LinUCB context: embedding plus automatic tasks, clusters of "
        "the training queries (default, no labels needed), plus the task "
        "predicted by a classifier of the training part's labels, or the "
        "embedding only",
    )
    parser.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser
