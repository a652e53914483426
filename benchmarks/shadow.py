"""Shadow mode, exploration and counterfactual estimates on the package (issue 21).

Per data set and seed: a random 80% of the rows is live traffic in a seeded order,
the other 20% held out. The incumbent is the best single model on the traffic.
Everything goes through ``RouterCore`` (context -> decide -> register -> learn,
and ``learn_explored`` for each explored child, as ``explorer.Explorer`` does
with a scorer that returns the recorded score).

1. Shadow learning: a never-fitted router runs in the incumbent's shadow over the
   traffic at ``explore_rate`` 0.05 and 0.1, then goes live on the held-out rows
   (still learning). Target: the incumbent's held-out accuracy at no more than
   50% of its cost. The shadow phase's spend (incumbent plus exploration) is
   printed.
2. Estimates against reality: ``evaluate`` on the last 1,000 shadow decisions
   estimates accuracy and cost at each cost weight; the realised held-out
   accuracy after going live at that weight should fall in the 95% interval.
3. Live exploration: a never-fitted live router at ``explore_rate`` 0.05 against
   0, each at every cost weight: held-out accuracy against total spend
   (routing plus exploration), and the 0.05 runs against the 0 curve at the
   same spend.
4. ``--latency``: the chat model over children that take 0.2 s, at
   ``explore_rate`` 0 and 0.1: the answer's p50 and p99 latency.

Run from the project root (vectors come from ``.metallm_cache/``):
``python benchmarks/shadow.py --data llmrouter9 --seeds 3``; ``--plot`` writes
``docs/shadow_<data>.png``.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np

from langchain_metallm.bench.cache import (
    DEFAULT_CACHE_DIR,
    CachedVectors,
    EmbeddingCache,
)
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.splits import random_split
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.decision_log import DecisionLog
from langchain_metallm.core.exploration import Exploration
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings
from langchain_metallm.embeddings import LocalEmbeddings

COST_WEIGHTS = (0.0, 0.05, 0.1, 0.2, 0.4)
SHADOW_RATES = (0.05, 0.1)
ESTIMATE_WINDOW = 1_000
"""Last shadow decisions ``evaluate`` estimates from."""


@dataclass
class Stream:
    """One seed's traffic then held-out rows, with recorded scores."""

    prompts: list[str]
    scores: np.ndarray
    n_live: int
    incumbent: int


@dataclass
class Served:
    """One run: held-out accuracy and cost, spend while learning, estimates."""

    weight: float
    accuracy: float
    cost: float
    spend: float
    """Mean normalised spend per call over the traffic (answers + exploration)."""
    estimate: dict[str, float] = field(default_factory=dict)


def stream_of(data: Outcomes, seed: int) -> Stream:
    split = random_split(data, seed=seed)
    rng = np.random.default_rng(seed)
    live, held = rng.permutation(split.train), rng.permutation(split.test)
    order = np.concatenate([live, held])
    scores = data.scores[order]
    incumbent = int(np.argmax(scores[: len(live)].mean(axis=0)))
    return Stream([data.prompts[i] for i in order], scores, len(live), incumbent)


def serve(
    data: Outcomes,
    vectors: CachedVectors,
    stream: Stream,
    *,
    seed: int,
    weight: float,
    rate: float,
    shadow: bool,
) -> Served:
    """Traffic (in the incumbent's shadow or live, exploring at ``rate``), then
    the held-out rows live without exploration."""
    names = list(data.models)
    catalogue = Catalogue.build(dict(zip(names, map(float, data.price), strict=True)))
    if shadow:
        catalogue = catalogue.with_shadow(names[stream.incumbent])
    core = RouterCore(
        name=f"shadow-{seed}",
        settings=Settings(cost_weight=weight, explore_rate=rate),
        catalogue=catalogue,
        embeddings=vectors,
    )
    core.exploration = Exploration(seed)
    cost = data.cost
    spent = 0.0
    got = np.empty(len(stream.prompts))
    chosen = np.empty(len(stream.prompts), dtype=np.int64)
    for i, text in enumerate(stream.prompts):
        if i == stream.n_live:
            estimate = _estimate(core, weight) if shadow else {}
            core.set_catalogue(core.catalogue.with_shadow(None))
            core.set("explore_rate", 0.0)
        run_id = str(i)
        context = core.context(text)
        decision = core.decide(run_id, context)
        answered = decision.order[0]
        j = names.index(answered)
        core.register(decision, answered, context, None)
        core.learn(run_id, float(stream.scores[i, j]))
        got[i], chosen[i] = stream.scores[i, j], j
        if i < stream.n_live:
            spent += cost[j]
        for child in decision.explored:
            k = names.index(child)
            core.learn_explored(run_id, child, context, stream.scores[i, k], None)
            spent += cost[k]
    held = slice(stream.n_live, None)
    return Served(
        weight=weight,
        accuracy=float(got[held].mean()),
        cost=float(cost[chosen[held]].mean()),
        spend=spent / stream.n_live,
        estimate=estimate if shadow else {},
    )


def _estimate(core: RouterCore, weight: float) -> dict[str, float]:
    """``evaluate`` at ``weight`` from the last shadow decisions."""
    recent = DecisionLog(ESTIMATE_WINDOW)
    for logged in core.log.records()[-ESTIMATE_WINDOW:]:
        recent.add(logged.decision)
        for child, score in logged.scores.items():
            recent.observe(logged.decision.run_id, child, score=score)
    row = core.evaluate(cost_weights=[weight], decisions=recent).rows[0]
    return {k: v for k, v in row.items() if isinstance(v, float)}


def run_seed(
    data: Outcomes, vectors: CachedVectors, seed: int, weights: Sequence[float]
) -> dict[str, object]:
    stream = stream_of(data, seed)
    runs: dict[str, list[Served]] = {}
    for rate in SHADOW_RATES:
        runs[f"shadow {rate}"] = [
            serve(data, vectors, stream, seed=seed, weight=w, rate=rate, shadow=True)
            for w in weights
        ]
    for rate in (0.0, 0.05):
        runs[f"live {rate}"] = [
            serve(data, vectors, stream, seed=seed, weight=w, rate=rate, shadow=False)
            for w in weights
        ]
    held = stream.scores[stream.n_live :]
    return {
        "seed": seed,
        "incumbent": data.models[stream.incumbent],
        "incumbent_accuracy": float(held[:, stream.incumbent].mean()),
        "incumbent_cost": float(data.cost[stream.incumbent]),
        "single": held.mean(axis=0).tolist(),
        "runs": {k: [asdict(s) for s in v] for k, v in runs.items()},
    }


def summarize(results: list[dict[str, object]], data: Outcomes) -> None:
    """Print the four measures, mean and worst seed."""
    print(
        f"\n== {data.name}: {len(results)} seeds; incumbent per seed: "
        f"{[r['incumbent'] for r in results]}"
    )
    for mode in [k for k in results[0]["runs"]]:  # type: ignore[union-attr]
        margins, spends, accs = [], [], []
        for r in results:
            served = r["runs"][mode]  # type: ignore[index]
            cap = 0.5 * float(r["incumbent_cost"])  # type: ignore[arg-type]
            cheap = [s["accuracy"] for s in served if s["cost"] <= cap + 1e-9]
            margins.append((max(cheap) if cheap else np.nan) - r["incumbent_accuracy"])  # type: ignore[operator]
            spends.append(np.mean([s["spend"] for s in served]))
            accs.append([s["accuracy"] for s in served])
        print(
            f"{mode:<12} accuracy at <=50% of the incumbent's cost minus its "
            f"accuracy: mean {np.nanmean(margins):+.4f} worst {np.nanmin(margins):+.4f}"
            f"; spend per traffic call {np.mean(spends):.3f}"
        )
        print(
            f"{'':<12} held-out accuracy per weight (mean): "
            f"{np.round(np.mean(accs, axis=0), 4).tolist()}"
        )
    covered, total = 0, 0
    errors = []
    for r in results:
        for mode in ("shadow 0.05", "shadow 0.1"):
            for s in r["runs"][mode]:  # type: ignore[index]
                e = s["estimate"]
                total += 1
                covered += e["accuracy_low"] <= s["accuracy"] <= e["accuracy_high"]
                errors.append((e["accuracy"] - s["accuracy"], e["cost"] - s["cost"]))
    err = np.array(errors)
    print(
        f"estimates: 95% interval covers the realised accuracy in {covered}/{total} "
        f"({covered / total:.0%}); mean error accuracy {err[:, 0].mean():+.4f} "
        f"(|max| {np.abs(err[:, 0]).max():.4f}), cost {err[:, 1].mean():+.4f}"
    )
    gaps = []
    for r in results:
        base = r["runs"]["live 0.0"]  # type: ignore[index]
        order = np.argsort([s["spend"] for s in base])
        xs = np.array([base[i]["spend"] for i in order])
        ys = np.array([base[i]["accuracy"] for i in order])
        for s in r["runs"]["live 0.05"]:  # type: ignore[index]
            gaps.append(s["accuracy"] - float(np.interp(s["spend"], xs, ys)))
    print(
        "live exploration 0.05 minus no exploration at equal total spend "
        f"(held-out accuracy): mean {np.mean(gaps):+.4f} worst {np.min(gaps):+.4f}"
    )


def plot(results: list[dict[str, object]], data: Outcomes, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    for mode, style in (
        ("shadow 0.05", "o-"),
        ("shadow 0.1", "s-"),
        ("live 0.0", "^--"),
        ("live 0.05", "v--"),
    ):
        cost = np.mean([[s["cost"] for s in r["runs"][mode]] for r in results], axis=0)  # type: ignore[index]
        acc = np.mean(
            [[s["accuracy"] for s in r["runs"][mode]] for r in results], axis=0
        )  # type: ignore[index]
        ax.plot(cost, acc, style, label=f"router: {mode}, then live")
    single = np.mean([r["single"] for r in results], axis=0)
    ax.scatter(data.cost, single, c="grey", marker="x", label="single models")
    ax.set_xlabel("held-out mean normalised cost per call")
    ax.set_ylabel("held-out accuracy")
    ax.set_title(
        f"{data.name}: after a shadow phase vs live learning ({len(results)} seeds)"
    )
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def latency(calls: int = 60) -> None:
    """The answer's latency with and without background exploration."""
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel
    from langchain_core.messages import AIMessage
    from langchain_core.outputs import ChatGeneration, ChatResult

    from langchain_metallm import MetaLLMRouterChatModel

    class SlowChild(BaseChatModel):
        @property
        def _llm_type(self) -> str:
            return "slow"

        def _generate(self, messages: object, *a: object, **k: object) -> ChatResult:
            time.sleep(0.2)
            return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])

    class Words(Embeddings):
        model_name = "words"

        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[float(len(t) % 7), float(len(t) % 3), 1.0] for t in texts]

        def embed_query(self, text: str) -> list[float]:
            return self.embed_documents([text])[0]

    for rate in (0.0, 0.1):
        router = MetaLLMRouterChatModel(
            models={f"m{i}": SlowChild() for i in range(4)},
            costs={f"m{i}": float(i + 1) for i in range(4)},
            embeddings=Words(),
            explore_rate=rate,
            scorer=lambda messages, generation: 1.0,
        )
        samples = []
        for i in range(calls):
            begin = time.perf_counter()
            answer = router.invoke(f"question {i}")
            samples.append(time.perf_counter() - begin)
            router.record_feedback(answer, 1.0)
        router.wait_explorations()
        ms = np.array(samples) * 1e3
        print(
            f"explore_rate {rate}: answer p50 {np.percentile(ms, 50):.1f} ms, "
            f"p99 {np.percentile(ms, 99):.1f} ms over {calls} calls; "
            f"explored {router.stats()['explored']:.0f} calls in the background"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", default="llmrouter9")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--weights", default=",".join(map(str, COST_WEIGHTS)))
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--limit", type=int, default=None, help="rows (quick runs)")
    parser.add_argument("--plot", action="store_true")
    parser.add_argument("--out", default="results")
    parser.add_argument("--latency", action="store_true")
    args = parser.parse_args()
    if args.latency:
        latency()
        return
    start = time.perf_counter()
    data = load_outcomes(resolve_data_dir(args.data))
    if args.limit:
        data = data.subset(np.arange(min(args.limit, len(data.prompts))))
    cache = EmbeddingCache(LocalEmbeddings(), args.cache_dir)
    vectors = CachedVectors(data.prompts, cache.embed(data.prompts), cache.name)
    weights = [float(w) for w in args.weights.split(",")]
    results = []
    for seed in range(args.seeds):
        results.append(run_seed(data, vectors, seed, weights))
        print(f"seed {seed} done ({time.perf_counter() - start:.0f} s)", flush=True)
    summarize(results, data)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"shadow_{data.name}.json").write_text(json.dumps(results, indent=1))
    if args.plot:
        plot(results, data, Path("docs") / f"shadow_{data.name}.png")
    print(f"run time {time.perf_counter() - start:.0f} s")


if __name__ == "__main__":
    main()
