"""The router's learning API on real recorded outcomes.

1. ``router.fit(prompts, scores, tasks=...)`` + ``invoke``/``record_feedback`` over
   the test stream reproduces the benchmark's ``linucb-warm`` policy (same task
   features, same choices).
2. ``router.calibrate_cost_weight`` on a validation part of the training data picks
   a cost weight for a budget; the test accuracy and cost of the router's choices at
   that weight (``router.route``: decided, not learned) are printed.

Run from the project root (embeddings come from ``.metallm_cache/``):
``.venv/bin/python benchmarks/router_fit.py --data llmrouter9``
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_metallm import LocalEmbeddings, MetaLLMRouterChatModel
from langchain_metallm.bench.cache import EmbeddingCache
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.routers import OnlineLinUCB
from langchain_metallm.bench.runner import build_problem
from langchain_metallm.bench.splits import random_split


class CachedEmbeddings(Embeddings):
    """The packaged MiniLM through the benchmark's on-disk cache (same vectors)."""

    def __init__(self) -> None:
        self.cache = EmbeddingCache(LocalEmbeddings())
        self.name = self.cache.name

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.cache.embed(texts, progress=False).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def make_router(data: Outcomes, cost_weight: float) -> MetaLLMRouterChatModel:
    children: dict[str, BaseChatModel] = {
        name: FakeListChatModel(responses=[name]) for name in data.models
    }
    return MetaLLMRouterChatModel(
        models=children,
        costs={n: float(p) for n, p in zip(data.models, data.price, strict=True)},
        cost_weight=cost_weight,
        embeddings=CachedEmbeddings(),
    )


def serve(
    router: MetaLLMRouterChatModel, prompts: Sequence[str], scores: np.ndarray
) -> np.ndarray:
    """Route, answer and reward each test prompt in order; the chosen children
    as column indices of ``scores`` (the router's children, in order)."""
    column = {name: j for j, name in enumerate(router.model_names)}
    chosen = np.empty(len(prompts), dtype=np.int64)
    for i, prompt in enumerate(prompts):
        answer = router.invoke(prompt)
        j = column[answer.response_metadata["metallm"]["model"]]
        router.record_feedback(answer, float(scores[i, j]))
        chosen[i] = j
    return chosen


def check_against_bench(data: Outcomes, weights: Sequence[float]) -> None:
    split = random_split(data, seed=0)
    vectors = EmbeddingCache(LocalEmbeddings()).embed(data.prompts, progress=True)
    problem = build_problem(data, split, vectors, features="tasks")
    train = [data.prompts[i] for i in split.train]
    train_tasks = [data.tasks[i] for i in split.train]
    test = [data.prompts[i] for i in split.test]
    rows = np.arange(len(test))
    for p in weights:
        bench = OnlineLinUCB(warm=True).route(problem, [p])[0].choices
        router = make_router(data, p)
        router.fit(train, problem.train_scores, tasks=train_tasks)
        chosen = serve(router, test, problem.test_scores)
        same = int((chosen == bench).sum())
        acc = problem.test_scores[rows, chosen].mean()
        bench_acc = problem.test_scores[rows, bench].mean()
        print(
            f"p={p:.3f}: router.fit+invoke/feedback acc {acc:.4f} cost "
            f"{problem.cost[chosen].mean():.4f} | bench linucb-warm acc "
            f"{bench_acc:.4f} cost {problem.cost[bench].mean():.4f} | same choice "
            f"{same}/{len(test)}"
        )


def calibrated(data: Outcomes, budgets: Sequence[float]) -> None:
    split = random_split(data, seed=0)
    fit_part = random_split(data.subset(split.train), seed=1)
    train = data.subset(split.train)
    fit_rows, val_rows = fit_part.train, fit_part.test
    test = data.subset(split.test)
    rows = np.arange(len(test))
    for budget in budgets:
        router = make_router(data, 0.0)
        router.fit(
            [train.prompts[i] for i in fit_rows],
            train.scores[fit_rows],
            tasks=[train.tasks[i] for i in fit_rows],
        )
        result = router.calibrate_cost_weight(
            [train.prompts[i] for i in val_rows], train.scores[val_rows], budget=budget
        )
        column = {name: j for j, name in enumerate(router.model_names)}
        chosen = np.array([column[router.route(p).chosen] for p in test.prompts])
        print(
            f"budget {budget:.3f}: cost_weight {result.cost_weight:.3f} "
            f"(validation acc {result.accuracy:.4f}, cost {result.cost:.4f}) -> "
            f"test acc {test.scores[rows, chosen].mean():.4f}, "
            f"cost {data.cost[chosen].mean():.4f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="llmrouter9")
    parser.add_argument("--weights", default="0,0.25,0.5")
    parser.add_argument("--budgets", default="0.5,0.25")
    args = parser.parse_args()
    data = load_outcomes(resolve_data_dir(args.data))
    check_against_bench(data, [float(w) for w in args.weights.split(",")])
    calibrated(data, [float(b) for b in args.budgets.split(",")])


if __name__ == "__main__":
    main()
