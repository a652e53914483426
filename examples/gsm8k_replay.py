"""Main job: route GSM8K questions between Mixtral and GPT-4, learn, and save money.

Both children are real ``ChatOpenAI`` clients talking HTTP to a local replay server
that answers with what Mixtral-8x7B and GPT-4 really answered (RouteLLM's recorded
GSM8K responses). Every answer is graded by parsing its final number and comparing
it with the gold answer; grades reach the router through a
``MetaLLMFeedbackHandler``. The router is warm-started on a first part of the
questions (answered by both children and graded the same way), then routes the
rest online, learning from each grade. It is compared with always-Mixtral,
always-GPT-4 and a random router that spends the same: accuracy, dollars (list
prices from ``models.json`` times the tokens each answer used) and share of calls.
The router uses the defaults a new user gets: no task labels (its warm start
learns automatic tasks, ``auto_tasks``).

Then the whole cost/accuracy curve: the same warm start and online loop at a range
of cost weights, replayed on the recorded answers (each question's chosen answer is
the one that child gave over HTTP above), against random routing (the straight
line between the two children) and, as RouteLLM reports it, CPT(50%): the share
of GPT-4 calls needed to recover half of the Mixtral-to-GPT-4 accuracy gap
(random routing needs 50%).

    python examples/gsm8k_replay.py               # every question, about a minute
    python examples/gsm8k_replay.py --limit 200   # a quick look
"""

from __future__ import annotations

import argparse
import json
import random
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import Generation
from langchain_openai import ChatOpenAI
from pydantic import SecretStr
from tqdm.auto import tqdm

from langchain_metallm import (
    LocalEmbeddings,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
)
from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR, EmbeddingCache
from langchain_metallm.bench.metrics import apgr, cpt
from langchain_metallm.core.costs import dollars
from langchain_metallm.testing import (
    ReplayServer,
    default_gsm8k_models_path,
    default_gsm8k_path,
)

CHILDREN = {
    "mixtral": "mistralai/Mixtral-8x7B-Instruct-v0.1",
    "gpt-4": "gpt-4-1106-preview",
}
_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


# Grading ------------------------------------------------------------------------------


def final_number(text: str) -> float | None:
    """The answer's final number: after the last ``####`` if any, else the last
    number in the text (how GSM8K answers are graded)."""
    tail = text.rsplit("####", 1)[-1] if "####" in text else text
    numbers = _NUMBER.findall(tail)
    if not numbers:
        return None
    return float(numbers[-1].replace(",", ""))


def grade(text: str, gold: str) -> float:
    """1.0 if the answer's final number equals the gold number, else 0.0."""
    found = final_number(text)
    return float(found is not None and abs(found - float(gold.replace(",", ""))) < 1e-6)


class GoldScorer:
    """``MetaLLMFeedbackHandler`` scorer: grades the routed answer against the gold
    number of the question it was asked (looked up by the question's text)."""

    def __init__(self, gold: dict[str, str]) -> None:
        self.gold = gold

    def __call__(
        self, inputs: Sequence[BaseMessage] | str, answer: Generation
    ) -> float:
        question = inputs if isinstance(inputs, str) else inputs[-1].text
        return grade(answer.text, self.gold[question])


# Data, prices, embeddings -------------------------------------------------------------


def load_rows(path: Path, limit: int | None, seed: int) -> list[dict[str, Any]]:
    """The gsm8k2 rows in a seeded random order, the first ``limit`` of them."""
    with path.open(encoding="utf-8") as lines:
        rows = [json.loads(line) for line in lines if line.strip()]
    random.Random(seed).shuffle(rows)
    return rows if limit is None else rows[:limit]


def load_prices(path: Path) -> dict[str, tuple[float, float]]:
    """(input, output) list prices in $ per million tokens, by child name."""
    listed = {
        m["name"]: (m["input_usd_per_mtok"], m["output_usd_per_mtok"])
        for m in json.loads(path.read_text(encoding="utf-8"))["models"]
    }
    return {name: listed[model] for name, model in CHILDREN.items()}


class DiskCachedEmbeddings(Embeddings):
    """An ``Embeddings`` that reads vectors from the on-disk cache, embedding (and
    caching) only texts never seen before."""

    def __init__(self, cache: EmbeddingCache) -> None:
        self.cache = cache

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        vectors: list[list[float]] = self.cache.embed(texts, progress=False).tolist()
        return vectors

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


# Calls --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    """One answered question: who answered, whether it was right, what it cost."""

    model: str
    correct: float
    dollars: float


def spent(message: BaseMessage, price: tuple[float, float]) -> float:
    """Dollars ``message`` cost at ``price``, from its token usage (a routed
    answer reports its child's usage in its routing metadata)."""
    routed = message.response_metadata.get("metallm", {})
    usage = routed.get("usage") if routed else getattr(message, "usage_metadata", None)
    if not isinstance(message, AIMessage) or usage is None:
        raise ValueError("the child reported no token usage; cannot price it")
    return dollars(usage, price)


def answer_with_every_child(
    children: dict[str, BaseChatModel],
    rows: list[dict[str, Any]],
    prices: dict[str, tuple[float, float]],
    label: str,
) -> dict[str, list[Outcome]]:
    """Each child's graded, priced answer to every question (over HTTP)."""
    prompts = [row["prompt"] for row in rows]
    outcomes: dict[str, list[Outcome]] = {}
    for name, child in children.items():
        answers: list[BaseMessage] = []
        with tqdm(total=len(prompts), desc=f"{label}: {name}", leave=False) as bar:
            for start in range(0, len(prompts), 32):
                part = prompts[start : start + 32]
                answers += child.batch(part, config={"max_concurrency": 8})
                bar.update(len(part))
        outcomes[name] = [
            Outcome(name, grade(a.text, row["answer"]), spent(a, prices[name]))
            for row, a in zip(rows, answers, strict=True)
        ]
    return outcomes


def warm_start(
    router: MetaLLMRouterChatModel,
    rows: list[dict[str, Any]],
    answered: dict[str, list[Outcome]],
) -> None:
    """Fit the router on the warm-up questions, graded for every child."""
    scores = [
        {name: answered[name][i].correct for name in router.model_names}
        for i in range(len(rows))
    ]
    router.fit([row["prompt"] for row in rows], scores)


def route_online(
    router: MetaLLMRouterChatModel,
    rows: list[dict[str, Any]],
    prices: dict[str, tuple[float, float]],
) -> list[Outcome]:
    """Route each question, one at a time; the handler grades and rewards it."""
    handler = MetaLLMFeedbackHandler(
        router, GoldScorer({row["prompt"]: row["answer"] for row in rows})
    )
    outcomes = []
    for row in tqdm(rows, desc="routing online"):
        answer = router.invoke(row["prompt"], config={"callbacks": [handler]})
        model = answer.response_metadata["metallm"]["model"]
        outcomes.append(
            Outcome(
                model, grade(answer.text, row["answer"]), spent(answer, prices[model])
            )
        )
    return outcomes


# Report -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """One line of the results table."""

    policy: str
    accuracy: float
    dollars: float
    share: dict[str, float]


def equal_cost_random(
    budget: float, baselines: dict[str, list[Outcome]]
) -> tuple[float, np.ndarray, np.ndarray]:
    """GPT-4 share ``q`` that spends ``budget`` in expectation, and the expected
    running correctness and spend per question of picking GPT-4 with chance ``q``."""
    cheap, strong = baselines["mixtral"], baselines["gpt-4"]
    low = sum(o.dollars for o in cheap)
    high = sum(o.dollars for o in strong)
    q = float(np.clip((budget - low) / (high - low), 0.0, 1.0)) if high > low else 0.0
    correct = np.array(
        [
            (1 - q) * c.correct + q * s.correct
            for c, s in zip(cheap, strong, strict=True)
        ]
    )
    cost = np.array(
        [
            (1 - q) * c.dollars + q * s.dollars
            for c, s in zip(cheap, strong, strict=True)
        ]
    )
    return q, correct, cost


def results_table(
    routed: list[Outcome], baselines: dict[str, list[Outcome]]
) -> list[Row]:
    """The router, each child alone, and random routing at the router's spend."""
    names = list(baselines)

    def row(policy: str, outcomes: list[Outcome]) -> Row:
        share = {n: sum(o.model == n for o in outcomes) / len(outcomes) for n in names}
        return Row(
            policy,
            float(np.mean([o.correct for o in outcomes])),
            sum(o.dollars for o in outcomes),
            share,
        )

    budget = sum(o.dollars for o in routed)
    q, correct, cost = equal_cost_random(budget, baselines)
    rows = [row("MetaLLM router", routed)]
    rows += [row(f"always {name}", baselines[name]) for name in names]
    rows.append(
        Row(
            "random, equal cost",
            float(correct.mean()),
            float(cost.sum()),
            {"mixtral": 1 - q, "gpt-4": q},
        )
    )
    return rows


def format_table(rows: list[Row]) -> str:
    """A plain-text table of ``rows``."""
    names = list(rows[0].share)
    header = f"{'policy':<20} {'accuracy':>8} {'spend $':>9} " + " ".join(
        f"{'% ' + n:>9}" for n in names
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        shares = " ".join(f"{100 * r.share[n]:>9.1f}" for n in names)
        lines.append(f"{r.policy:<20} {r.accuracy:>8.3f} {r.dollars:>9.4f} {shares}")
    return "\n".join(lines)


def plot(
    path: Path, routed: list[Outcome], baselines: dict[str, list[Outcome]]
) -> None:
    """Running accuracy and cumulative spend of every policy, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    _, correct_random, cost_random = equal_cost_random(
        sum(o.dollars for o in routed), baselines
    )
    curves = {
        "MetaLLM router": (
            np.array([o.correct for o in routed]),
            np.array([o.dollars for o in routed]),
        ),
        **{
            f"always {name}": (
                np.array([o.correct for o in outcomes]),
                np.array([o.dollars for o in outcomes]),
            )
            for name, outcomes in baselines.items()
        },
        "random, equal cost": (correct_random, cost_random),
    }
    steps = np.arange(1, len(routed) + 1)
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(7, 7), sharex=True)
    for label, (correct, cost) in curves.items():
        top.plot(steps, np.cumsum(correct) / steps, label=label)
        bottom.plot(steps, np.cumsum(cost), label=label)
    top.set_ylabel("running accuracy")
    top.set_ylim(0.4, 1.0)
    top.legend(loc="lower right")
    bottom.set_ylabel("cumulative spend ($)")
    bottom.set_xlabel("questions routed online")
    fig.suptitle("GSM8K: MetaLLM routing between Mixtral-8x7B and GPT-4")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# The cost/accuracy curve -------------------------------------------------------------

CURVE_WEIGHTS = (0.0, 0.15, 0.18, 0.2, 0.22, 0.25, 0.3, 0.35, 0.5)
"""Cost weights of the curve, from "never mind the cost" to "Mixtral only": with
GPT-4 at 33x Mixtral's price the router's choices all change between 0.15 and 0.4."""


@dataclass(frozen=True)
class CurvePoint:
    """The online router at one cost weight: accuracy, spend and GPT-4 share."""

    cost_weight: float
    accuracy: float
    dollars: float
    gpt4_share: float


def replay_online(
    router: MetaLLMRouterChatModel,
    rows: list[dict[str, Any]],
    baselines: dict[str, list[Outcome]],
) -> list[Outcome]:
    """The online loop on recorded answers, through the router's core: context,
    decide, register the call as answered by the chosen child's recorded answer,
    learn its grade (what ``invoke`` and the feedback handler do, without the
    HTTP call)."""
    core = router.core
    outcomes = []
    for i, row in enumerate(rows):
        run_id = f"replay-{i}"
        context = core.context(row["prompt"])
        decision = core.decide(run_id, context)
        outcome = baselines[decision.chosen][i]
        core.register(decision, decision.chosen, context, None)
        core.learn(run_id, outcome.correct)
        outcomes.append(outcome)
    return outcomes


def cost_curve(
    new_router: Callable[[float], MetaLLMRouterChatModel],
    warm: list[dict[str, Any]],
    warm_answers: dict[str, list[Outcome]],
    online: list[dict[str, Any]],
    baselines: dict[str, list[Outcome]],
    weights: Sequence[float],
) -> list[CurvePoint]:
    """Warm start and online loop at each cost weight, from a fresh router."""
    points = []
    for weight in tqdm(weights, desc="cost/accuracy curve", leave=False):
        router = new_router(weight)
        warm_start(router, warm, warm_answers)
        routed = replay_online(router, online, baselines)
        points.append(
            CurvePoint(
                weight,
                float(np.mean([o.correct for o in routed])),
                sum(o.dollars for o in routed),
                sum(o.model == "gpt-4" for o in routed) / len(routed),
            )
        )
    return points


def gap_recovered(
    points: list[CurvePoint], baselines: dict[str, list[Outcome]]
) -> tuple[float, float] | None:
    """RouteLLM's APGR and CPT(50%) of the curve (None if both children tie)."""
    weak = float(np.mean([o.correct for o in baselines["mixtral"]]))
    strong = float(np.mean([o.correct for o in baselines["gpt-4"]]))
    if weak == strong:
        return None
    shares = [p.gpt4_share for p in points]
    accuracies = [p.accuracy for p in points]
    return (
        apgr(shares, accuracies, weak, strong),
        cpt(0.5, shares, accuracies, weak, strong),
    )


def format_curve(
    points: list[CurvePoint], random_accuracy: Callable[[float], float]
) -> str:
    """A plain-text table of the curve, with random routing at each spend."""
    header = (
        f"{'cost weight':>11} {'accuracy':>8} {'spend $':>9} {'% gpt-4':>8} "
        f"{'random':>7}"
    )
    lines = [header, "-" * len(header)]
    for p in points:
        lines.append(
            f"{p.cost_weight:>11.2f} {p.accuracy:>8.3f} {p.dollars:>9.4f} "
            f"{100 * p.gpt4_share:>8.1f} {random_accuracy(p.dollars):>7.3f}"
        )
    return "\n".join(lines)


def plot_curve(
    path: Path,
    points: list[CurvePoint],
    routed: Row,
    baselines: dict[str, list[Outcome]],
) -> None:
    """Accuracy against spend: the router's curve, random routing, each child."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ends = {
        name: (
            sum(o.dollars for o in outcomes),
            float(np.mean([o.correct for o in outcomes])),
        )
        for name, outcomes in baselines.items()
    }
    fig, ax = plt.subplots(figsize=(7, 5))
    (x0, y0), (x1, y1) = ends["mixtral"], ends["gpt-4"]
    ax.plot([x0, x1], [y0, y1], "--", color="grey", label="random routing")
    ax.plot(
        [p.dollars for p in points],
        [p.accuracy for p in points],
        "o-",
        label="MetaLLM router (cost weights)",
    )
    ax.plot([routed.dollars], [routed.accuracy], "*", ms=14, label="router over HTTP")
    for name, (x, y) in ends.items():
        ax.plot([x], [y], "s", ms=9, label=f"always {name}")
    ax.set_xlabel("spend on the online questions ($)")
    ax.set_ylabel("accuracy")
    ax.legend(loc="lower right")
    ax.set_title("GSM8K: cost/accuracy of routing Mixtral-8x7B vs GPT-4")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)


# Main ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class Summary:
    """What ``main`` measured: the table, the warm-up spend and where files went."""

    table: list[Row]
    warmup_questions: int
    warmup_dollars: float
    online_questions: int
    plot: Path
    router: MetaLLMRouterChatModel
    curve: list[CurvePoint]
    apgr_cpt50: tuple[float, float] | None
    curve_plot: Path


def main(
    argv: Sequence[str] | None = None, *, embedder: Embeddings | None = None
) -> Summary:
    """Run the demo; returns what it printed and wrote. ``embedder`` defaults to
    the packaged MiniLM (``LocalEmbeddings``)."""
    args = parse_args(argv)
    rows = load_rows(args.data, args.limit, args.seed)
    warm, online = (
        rows[: int(len(rows) * args.warmup)],
        rows[int(len(rows) * args.warmup) :],
    )
    if not warm or not online:
        raise ValueError(f"--warmup {args.warmup} leaves no warm-up or no online rows")
    prices = load_prices(args.models)
    print(
        f"data: {args.data} ({len(rows)} questions); warm start on {len(warm)}, "
        f"then {len(online)} routed online"
    )
    cache = EmbeddingCache(embedder or LocalEmbeddings(), args.cache_dir)
    cache.embed([row["prompt"] for row in rows])  # once; later runs read the disk
    with ReplayServer(args.data) as server:
        children: dict[str, BaseChatModel] = {
            name: ChatOpenAI(
                base_url=server.base_url,
                api_key=SecretStr("replay"),
                model=model,
                max_retries=0,
            )
            for name, model in CHILDREN.items()
        }

        def new_router(cost_weight: float) -> MetaLLMRouterChatModel:
            return MetaLLMRouterChatModel(
                models=children,
                costs={name: sum(price) / 2 for name, price in prices.items()},
                cost_weight=cost_weight,
                alpha=args.alpha,
                embeddings=DiskCachedEmbeddings(cache),
            )

        router = new_router(args.cost_weight)
        warm_answers = answer_with_every_child(children, warm, prices, "warm-up")
        warm_start(router, warm, warm_answers)
        baselines = answer_with_every_child(children, online, prices, "baselines")
        routed = route_online(router, online, prices)
        curve = cost_curve(
            new_router, warm, warm_answers, online, baselines, args.curve_weights
        )
    table = results_table(routed, baselines)
    warm_spend = sum(o.dollars for outcomes in warm_answers.values() for o in outcomes)
    print(
        f"\n{len(online)} questions routed online after a warm start on {len(warm)} "
        f"(answered by both children: ${warm_spend:.4f}, not in the table).\n"
    )
    print(format_table(table))
    out = args.out / "gsm8k_replay.png"
    plot(out, routed, baselines)
    (args.out / "gsm8k_replay.json").write_text(
        json.dumps([asdict(r) for r in table], indent=2), encoding="utf-8"
    )

    def random_accuracy(dollars: float) -> float:
        return float(equal_cost_random(dollars, baselines)[1].mean())

    print(
        "\nThe cost/accuracy curve (same warm start, online on the recorded answers):"
    )
    print(format_curve(curve, random_accuracy))
    recovered = gap_recovered(curve, baselines)
    if recovered is not None:
        print(
            f"APGR {recovered[0]:.3f} (random 0.5); CPT(50%) {recovered[1]:.1%}: "
            f"half of GPT-4's gain over Mixtral for {recovered[1]:.1%} of calls to "
            f"GPT-4, where random routing needs 50%"
        )
    curve_out = args.out / "gsm8k_curve.png"
    plot_curve(curve_out, curve, table[0], baselines)
    print(f"\nplots: {out}, {curve_out}")
    router_row, random_row = table[0], table[-1]
    gain = 100 * (router_row.accuracy - random_row.accuracy)
    print(
        f"summary: router {router_row.accuracy:.3f} for ${router_row.dollars:.4f} "
        f"({100 * router_row.share['gpt-4']:.0f}% GPT-4) vs random at equal cost "
        f"{random_row.accuracy:.3f} ({gain:+.1f} points)"
        + ("" if recovered is None else f"; CPT(50%) {recovered[1]:.1%} vs 50% random")
    )
    return Summary(
        table,
        len(warm),
        warm_spend,
        len(online),
        out,
        router,
        curve,
        recovered,
        curve_out,
    )


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--limit", type=int, default=None, help="use only the first N questions"
    )
    parser.add_argument("--warmup", type=float, default=0.25, help="warm-up fraction")
    parser.add_argument(
        "--cost-weight", type=float, default=0.2, help="p in score - p * cost"
    )
    parser.add_argument("--alpha", type=float, default=0.1, help="exploration width")
    parser.add_argument("--seed", type=int, default=0, help="question order")
    parser.add_argument(
        "--curve-weights",
        type=lambda text: [float(w) for w in text.split(",")],
        default=list(CURVE_WEIGHTS),
        help="comma-separated cost weights of the cost/accuracy curve",
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=default_gsm8k_path(),
        help="recorded answers (default: ../shared/data/gsm8k2, else the sample)",
    )
    parser.add_argument(
        "--models",
        type=Path,
        default=default_gsm8k_models_path(),
        help="models.json with the children's list prices",
    )
    parser.add_argument(
        "--cache-dir",
        type=Path,
        default=DEFAULT_CACHE_DIR,
        help="where embeddings are cached on disk",
    )
    parser.add_argument(
        "--out", type=Path, default=Path("results"), help="folder for plot and JSON"
    )
    args = parser.parse_args(argv)
    if args.limit is not None and args.limit < 2:
        parser.error(f"--limit must be >= 2, got {args.limit}")
    if not 0 < args.warmup < 1:
        parser.error(f"--warmup must be in (0, 1), got {args.warmup}")
    return args


if __name__ == "__main__":
    main()
