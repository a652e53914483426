"""First run: route a 14-task set across 9 models and see what routing buys.

llmrouter9 (ulab-uiuc/LLMRouter, MIT) records how 9 open models (7B to 70B, $0.10
to $0.90 per million tokens) scored on queries of 14 tasks (math, code, QA,
multiple choice, ...): one score per model and query, no answer texts. Each
model is a real ``ChatOpenAI`` client talking HTTP to the local replay server
(``langchain_metallm.testing``); since there are no answer texts, the server
replies with a text that says plainly it is a recorded outcome, e.g.
``[recorded llmrouter9 outcome for gemma-2-9b-it: score 1]``.

1. The rows are split per task, seeded: 70% for training, 30% held out.
2. The router is fitted on the training part's recorded outcomes (every model's
   score for every query, with the task labels): a warm start, no HTTP.
3. It routes each held-out query over HTTP, one at a time; a
   ``MetaLLMFeedbackHandler`` whose scorer reads the recorded score of the model
   that answered grades it, and the router keeps learning from each grade.
4. Step 3 is repeated from the same warm start at several budgets (a mean spend
   per call, as a share of the best single model's cost, paced online by
   ``budget=``) and at cost weight 0, which traces the cost/accuracy curve.

It prints every single model, random routing and the router's runs; accuracy at
50%, 35% and 25% of the best single model's cost; which models each task went
to; and writes the curve (PNG) and the router's HTML report to ``--out``.
Single models and random routing are scored from the recorded outcomes (what the
server would answer); the router's runs are real HTTP calls.

    python examples/llmrouter9_demo.py              # 1-4 minutes the first time
    python examples/llmrouter9_demo.py --seed 3     # another split
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation
from langchain_openai import ChatOpenAI
from numpy.typing import NDArray
from pydantic import SecretStr
from threadpoolctl import threadpool_limits
from tqdm.auto import tqdm

from langchain_metallm import (
    LocalEmbeddings,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
)
from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR, EmbeddingCache
from langchain_metallm.testing import (
    RecordedAnswers,
    ReplayServer,
    default_llmrouter9_models_path,
    default_llmrouter9_path,
    recorded_outcome,
)

BUDGETS = (0.7, 0.5, 0.35, 0.25, 0.15)
"""Budgets of the curve, as shares of the best single model's cost per call."""
MARKS = (0.5, 0.35, 0.25)
"""Spend caps (shares of the best single model's cost) the summary reports."""
FEATURED = 0.35
"""The run whose per-task shares are printed and whose report is written."""
PACING_SLACK = 0.02
"""A run counts under a cap if it spent at most 2% more (the pacer's accuracy)."""


# Data ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Recorded:
    """Rows of recorded outcomes: prompts, tasks, one score per model."""

    models: tuple[str, ...]
    price: NDArray[np.float64]
    """Mean of input and output list price, $ per million tokens, per model."""
    prompts: list[str]
    tasks: list[str]
    scores: NDArray[np.float64]
    """(rows, models) recorded scores in [0, 1]."""

    @property
    def cost(self) -> NDArray[np.float64]:
        """Each model's price over the priciest's (the router's normalised cost)."""
        return self.price / self.price.max()


def load(path: Path, models_path: Path) -> Recorded:
    """The rows at ``path`` (each scores every model in ``models_path``)."""
    listed = json.loads(models_path.read_text(encoding="utf-8"))["models"]
    models = tuple(m["name"] for m in listed)
    price = np.array(
        [(m["input_usd_per_mtok"] + m["output_usd_per_mtok"]) / 2 for m in listed]
    )
    with path.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    return Recorded(
        models,
        price,
        [row["prompt"] for row in rows],
        [row["task"] for row in rows],
        np.array([[row["scores"][m] for m in models] for row in rows], dtype=float),
    )


def split(
    tasks: Sequence[str], held_out: float, seed: int, limit: int | None = None
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Training and held-out row indices: each task split ``held_out`` at random
    (seeded); ``limit`` first keeps that many rows, in proportion per task. The
    held-out rows come in a shuffled order (the stream the router sees)."""
    rng = np.random.default_rng(seed)
    labels = np.array(tasks)
    train: list[int] = []
    test: list[int] = []
    for task in sorted(set(tasks)):
        rows = rng.permutation(np.flatnonzero(labels == task))
        if limit is not None:
            rows = rows[: max(2, round(limit * len(rows) / len(tasks)))]
        n_test = min(max(1, round(held_out * len(rows))), len(rows) - 1)
        test += rows[:n_test].tolist()
        train += rows[n_test:].tolist()
    return np.sort(np.array(train)), rng.permutation(np.array(test))


class DiskCachedEmbeddings(Embeddings):
    """Vectors from the on-disk cache, so no row is embedded twice."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache
        self.model_name = cache.name

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.cache.embed(texts, progress=False).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class RecordedScore:
    """``MetaLLMFeedbackHandler`` scorer: the recorded score of the model that
    answered (named in the routed answer's metadata) on the question asked."""

    def __init__(self, data: Recorded) -> None:
        self.models = data.models
        self.by_prompt = dict(zip(data.prompts, data.scores, strict=True))

    def __call__(
        self, inputs: Sequence[BaseMessage] | str, answer: Generation
    ) -> float:
        assert isinstance(answer, ChatGeneration)
        question = inputs if isinstance(inputs, str) else inputs[-1].text
        model = answer.message.response_metadata["metallm"]["model"]
        return float(self.by_prompt[question][self.models.index(model)])


# Runs ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Run:
    """One routing of the held-out rows: accuracy, mean normalised cost, choices."""

    label: str
    budget: float | None
    accuracy: float
    cost: float
    chosen: list[str]


def route_held_out(
    router: MetaLLMRouterChatModel, data: Recorded, rows: NDArray[np.int64], desc: str
) -> list[str]:
    """Route each row over HTTP, one at a time; the handler grades and rewards it."""
    handler = MetaLLMFeedbackHandler(router, RecordedScore(data), raise_error=True)
    chosen = []
    for i in tqdm(rows, desc=desc, leave=False):
        answer = router.invoke(data.prompts[i], config={"callbacks": [handler]})
        chosen.append(answer.response_metadata["metallm"]["model"])
    if router.stats()["applied"] != len(rows):
        raise RuntimeError("not every routed call was graded")
    return chosen


def measure(
    label: str, budget: float | None, chosen: list[str], data: Recorded, rows: Any
) -> Run:
    """Accuracy and cost of sending held-out row ``rows[i]`` to ``chosen[i]``."""
    picks = np.array([data.models.index(m) for m in chosen])
    return Run(
        label,
        budget,
        float(data.scores[rows, picks].mean()),
        float(data.cost[picks].mean()),
        chosen,
    )


# Baselines ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Baselines:
    """Every single model on the held-out rows, and random routing."""

    accuracy: NDArray[np.float64]
    cost: NDArray[np.float64]
    models: tuple[str, ...]

    @property
    def best(self) -> int:
        """The most accurate single model (cheapest on ties)."""
        return int(np.lexsort((self.cost, -self.accuracy))[0])

    def best_within(self, cap: float) -> int | None:
        """The most accurate single model costing at most ``cap``."""
        fits = [j for j in range(len(self.cost)) if self.cost[j] <= cap + 1e-12]
        return max(fits, key=lambda j: self.accuracy[j], default=None)

    def random_at(self, spend: float) -> float:
        """Expected accuracy of random routing that spends ``spend`` per call:
        each call goes at random to one of two single models, mixed to spend
        that much (the best such pair: the upper hull of the single models)."""
        best = -np.inf
        for i in range(len(self.cost)):
            for j in range(len(self.cost)):
                lo, hi = self.cost[i], self.cost[j]
                if lo <= spend <= hi:
                    w = 0.0 if hi == lo else (spend - lo) / (hi - lo)
                    mixed = (1 - w) * self.accuracy[i] + w * self.accuracy[j]
                    best = max(best, mixed)
        return float(best)


def router_within(runs: list[Run], cap: float) -> Run | None:
    """The most accurate run that spent at most ``cap`` (with pacing slack)."""
    fits = [r for r in runs if r.cost <= cap * (1 + PACING_SLACK)]
    return max(fits, key=lambda r: r.accuracy, default=None)


# Printing and plotting ----------------------------------------------------------------


def curve_table(runs: list[Run], base: Baselines) -> str:
    """Every single model, random routing and each router run."""
    best_cost = base.cost[base.best]
    header = f"{'policy':<40} {'accuracy':>8} {'cost':>7} {'vs random':>9}"
    lines = [header, "-" * len(header)]
    for j in np.argsort(-base.accuracy):
        lines.append(
            f"{'always ' + base.models[j]:<40} {base.accuracy[j]:>8.3f} "
            f"{base.cost[j] / best_cost:>7.1%}"
        )
    uniform = (float(base.accuracy.mean()), float(base.cost.mean()))
    lines.append(
        f"{'random, uniform over the 9 models':<40} {uniform[0]:>8.3f} "
        f"{uniform[1] / best_cost:>7.1%}"
    )
    for run in runs:
        gain = run.accuracy - base.random_at(run.cost)
        lines.append(
            f"{'router, ' + run.label:<40} {run.accuracy:>8.3f} "
            f"{run.cost / best_cost:>7.1%} {100 * gain:>+8.1f}p"
        )
    return "\n".join(lines)


@dataclass(frozen=True)
class Mark:
    """The router against the baselines under one spend cap."""

    share: float
    router: float | None
    router_spent: float | None
    best_single: float
    single_within: tuple[str, float] | None
    random: float


def marks(runs: list[Run], base: Baselines, shares: Sequence[float]) -> list[Mark]:
    """The router, the best single model and random routing at each cap."""
    best = base.best
    out = []
    for share in shares:
        cap = share * base.cost[best]
        run = router_within(runs, cap)
        within = base.best_within(cap)
        out.append(
            Mark(
                share,
                None if run is None else run.accuracy,
                None if run is None else run.cost / base.cost[best],
                float(base.accuracy[best]),
                None
                if within is None
                else (base.models[within], float(base.accuracy[within])),
                base.random_at(cap),
            )
        )
    return out


def marks_table(rows: list[Mark], best_name: str, best: float) -> str:
    """The router at each share of the best single model's cost, against the
    best single model, random routing at that spend and the best single model
    that costs no more (margins in points of accuracy)."""
    header = (
        f"{'cost cap':>8}  {'router (spent)':<15} {'vs best single':>14} "
        f"{'vs random':>9}  vs the best single model under the cap"
    )
    lines = [
        f"best single model: {best_name}, accuracy {best:.3f}",
        header,
        "-" * len(header),
    ]
    for m in rows:
        if m.router is None:
            lines.append(f"{m.share:>8.0%}  no router run spent this little")
            continue
        within = "-"
        if m.single_within is not None:
            name, accuracy = m.single_within
            within = f"{100 * (m.router - accuracy):+.1f}p ({name}, {accuracy:.3f})"
        lines.append(
            f"{m.share:>8.0%}  {m.router:.3f} ({m.router_spent:>5.1%}) "
            f"{100 * (m.router - m.best_single):>+13.1f}p "
            f"{100 * (m.router - m.random):>+8.1f}p  {within}"
        )
    return "\n".join(lines)


def task_shares(run: Run, data: Recorded, rows: Any, top: int = 3) -> str:
    """For each task: the router's accuracy, the best single model's on that
    task, and the models its calls went to."""
    tasks = np.array([data.tasks[i] for i in rows])
    chosen = np.array(run.chosen)
    picks = np.array([data.models.index(m) for m in run.chosen])
    got = data.scores[rows, picks]
    width = max(len(m) for m in data.models)
    lines = [
        f"{'task':<21} {'n':>4} {'router':>6}  {'best single on the task':<{width + 7}}"
        "  calls"
    ]
    for task in sorted(set(tasks)):
        here = tasks == task
        singles = data.scores[rows][here].mean(axis=0)
        j = int(singles.argmax())
        names, counts = np.unique(chosen[here], return_counts=True)
        order = np.argsort(-counts)[:top]
        shares = ", ".join(f"{names[k]} {counts[k] / here.sum():.0%}" for k in order)
        lines.append(
            f"{task:<21} {int(here.sum()):>4} {got[here].mean():>6.3f}  "
            f"{singles[j]:.3f} {data.models[j]:<{width}}  {shares}"
        )
    return "\n".join(lines)


def plot(path: Path, runs: list[Run], base: Baselines, title: str) -> Path:
    """Accuracy against cost: the router's runs, random routing, single models."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    unit = base.cost[base.best]
    fig, ax = plt.subplots(figsize=(8, 5.5))
    xs = np.linspace(base.cost.min(), base.cost.max(), 200)
    ax.plot(
        xs / unit,
        [base.random_at(x) for x in xs],
        "--",
        color="grey",
        label="random routing at equal spend",
    )
    ax.scatter(
        [base.cost.mean() / unit],
        [base.accuracy.mean()],
        marker="x",
        color="grey",
        label="random, uniform over the models",
    )
    ordered = sorted(runs, key=lambda r: r.cost)
    ax.plot(
        [r.cost / unit for r in ordered],
        [r.accuracy for r in ordered],
        "o-",
        label="MetaLLM router (budgets, cost weight 0)",
    )
    placed: list[tuple[float, float]] = []
    for j in np.lexsort((-base.accuracy, base.cost)):
        x, y = base.cost[j] / unit, base.accuracy[j]
        ax.scatter([x], [y], marker="s", color="black", s=20)
        near = sum(abs(x - px) < 1e-9 and abs(y - py) < 0.02 for px, py in placed)
        placed.append((x, y))
        right = x < 0.8  # labels of the priciest models go to their left
        ax.annotate(
            base.models[j],
            (x, y),
            fontsize=7,
            textcoords="offset points",
            xytext=(4 if right else -4, 3 - 9 * near),
            ha="left" if right else "right",
        )
    for share in MARKS:
        ax.axvline(share, color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("mean cost per call (share of the best single model's cost)")
    ax.set_ylabel("accuracy (recorded score)")
    ax.set_title(title, fontsize=9)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="center right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


# Main ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What ``main`` printed and wrote."""

    runs: list[Run]
    marks: list[Mark]
    baselines: Baselines
    n_train: int
    n_held_out: int
    router: MetaLLMRouterChatModel
    plot: Path
    report: Path
    seconds: float


def main(
    argv: Sequence[str] | None = None, *, embedder: Embeddings | None = None
) -> Summary:
    """Run the demo; ``embedder`` defaults to the packaged MiniLM."""
    started = time.monotonic()
    args = parse_args(argv)
    data = load(args.data, args.models)
    train, held_out = split(data.tasks, args.held_out, args.seed, args.limit)
    labels = "with" if args.task_labels else "without"
    print(
        f"data: {args.data} ({len(data.prompts)} rows, {len(set(data.tasks))} "
        f"tasks, {len(data.models)} models); split per task (seed {args.seed}): "
        f"{len(train)} to fit on, {len(held_out)} held out and routed over HTTP"
    )
    print(
        "The replay server has no answer texts for these rows: each model's reply "
        "says which recorded outcome it stands for, e.g. "
        f"'{_example_reply(data, held_out[0])}'; the feedback handler's scorer "
        "gives the router the recorded score of the model that answered."
    )
    cache = EmbeddingCache(embedder or LocalEmbeddings(), args.cache_dir)
    used = np.concatenate([train, held_out])
    cache.embed([data.prompts[i] for i in used])  # once; later runs read the disk
    answers = RecordedAnswers(
        [
            {
                "prompt": data.prompts[i],
                "scores": dict(zip(data.models, data.scores[i], strict=True)),
            }
            for i in used
        ],
        source="llmrouter9",
    )
    budgets = [*args.budgets, None]
    runs: list[Run] = []
    base = Baselines(data.scores[held_out].mean(axis=0), data.cost, data.models)
    unit = float(base.cost[base.best])
    featured: MetaLLMRouterChatModel | None = None
    with ReplayServer(answers) as server, threadpool_limits(1):
        children: dict[str, BaseChatModel] = {
            name: ChatOpenAI(
                base_url=server.base_url,
                api_key=SecretStr("replay"),
                model=name,
                max_retries=0,
            )
            for name in data.models
        }
        for share in budgets:
            budget = None if share is None else _feasible(share * unit, data.cost)
            router = MetaLLMRouterChatModel(
                models=children,
                costs=dict(zip(data.models, data.price, strict=True)),
                budget=budget,
                embeddings=DiskCachedEmbeddings(cache),
            )
            router.fit(
                [data.prompts[i] for i in train],
                data.scores[train],
                tasks=[data.tasks[i] for i in train] if args.task_labels else None,
            )
            label = "cost weight 0" if share is None else f"budget {share:.0%}"
            chosen = route_held_out(router, data, held_out, label)
            runs.append(measure(label, budget, chosen, data, held_out))
            if share == FEATURED or featured is None:
                featured, featured_run = router, runs[-1]
    print(
        f"\n\nHeld-out accuracy and mean cost per call (share of the best single "
        f"model's); the router fitted {labels} task labels on {len(train)} rows, "
        "then learned from every graded call; 'vs random': points over random "
        "routing that spends the same.\n"
    )
    print(curve_table(runs, base))
    summary_marks = marks(runs, base, MARKS)
    print("\nAccuracy at a share of the best single model's cost:")
    best_accuracy = float(base.accuracy[base.best])
    print(marks_table(summary_marks, base.models[base.best], best_accuracy))
    print(f"\nWhere each task's calls went ({featured_run.label}):")
    print(task_shares(featured_run, data, held_out))
    args.out.mkdir(parents=True, exist_ok=True)
    png = plot(
        args.out / "llmrouter9_curve.png",
        runs,
        base,
        f"llmrouter9: {len(held_out)} held-out queries, split seed {args.seed}",
    )
    (args.out / "llmrouter9_demo.json").write_text(
        json.dumps(
            {
                "runs": [asdict(r) for r in runs],
                "marks": [asdict(m) for m in summary_marks],
            },
            indent=1,
        ),
        encoding="utf-8",
    )
    assert featured is not None
    report = featured.report(args.out / "llmrouter9_router_report.html")
    seconds = time.monotonic() - started
    print(f"\ncurve: {png}\nthe router's report ({featured_run.label}): {report}")
    print(f"done in {seconds:.0f} s")
    return Summary(
        runs,
        summary_marks,
        base,
        len(train),
        len(held_out),
        featured,
        png,
        report,
        seconds,
    )


def _feasible(budget: float, cost: NDArray[np.float64]) -> float:
    """``budget`` moved into what the router accepts: [cheapest cost, 1]."""
    return float(min(max(budget, cost.min()), 1.0))


def _example_reply(data: Recorded, row: int) -> str:
    """What the replay server answers for ``row`` as its cheapest model."""
    cheapest = int(np.argmin(data.price))
    score = float(data.scores[row, cheapest])
    return recorded_outcome("llmrouter9", data.models[cheapest], score)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data",
        type=Path,
        default=default_llmrouter9_path(),
        help="recorded outcomes (default: ../shared/data/llmrouter9, else the "
        "packaged sample)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=default_llmrouter9_models_path(),
        help="models.json with the models' list prices",
    )
    parser.add_argument("--seed", type=int, default=0, help="seed of the split")
    parser.add_argument(
        "--held-out", type=float, default=0.3, help="share of each task held out"
    )
    parser.add_argument(
        "--limit", type=int, default=None, help="use about N rows (a quick run)"
    )
    parser.add_argument(
        "--budgets",
        type=lambda text: [float(b) for b in text.split(",")],
        default=list(BUDGETS),
        help="comma-separated budgets, as shares of the best single model's cost",
    )
    parser.add_argument(
        "--no-task-labels",
        dest="task_labels",
        action="store_false",
        help="fit without the task labels (the router learns clusters instead)",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where embeddings are cached on disk",
    )
    parser.add_argument(
        "--out",
        type=Path,
        default=Path("results"),
        help="folder for the plot, the JSON and the HTML report",
    )
    args = parser.parse_args(argv)
    if not 0 < args.held_out < 1:
        parser.error(f"--held-out must be in (0, 1), got {args.held_out}")
    if args.limit is not None and args.limit < 30:
        parser.error(f"--limit must be >= 30, got {args.limit}")
    return args


if __name__ == "__main__":
    main()
