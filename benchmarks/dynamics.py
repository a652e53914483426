"""Budgets, drift and a changing catalogue (issue 15): recorded outcomes replayed
as a stream through the router's own core, ``RouterCore``, one call at a time as
the chat model drives it (``context`` -> ``decide`` -> ``register`` the chosen
child's answer -> ``learn`` its recorded score): its task features, cost as a
decision-time penalty, its budget pacer, the wider exploration of an added child.

Each seed splits a data set 50/50 at random by id: the training half warm-starts
every router (``fit`` on recorded scores with task labels: the task classifier
and the policy); the test half, shuffled, is the stream. Four scenarios,
several seeds, mean and worst:

1. budget sweep (llmrouter9, mmlu2): for 7 budgets from the cheapest child's
   cost to 1, realised mean cost against the budget, the worst overshoot over any
   200-call window, accuracy against the best fixed cost weight that spends the
   same (11 fixed weights, each replayed on the same stream by a router that
   keeps learning; the upper envelope of their (spend, accuracy) points,
   interpolated, is that baseline, tuned in hindsight). A budget above what the
   router spends at cost weight 0 does not bind: spending less is right there;
2. a new best model: fit without nemotron-51b, add it after 200 calls (a
   newcomer); its share over calls 150-500 after the add and over the last
   1,000 calls against a router that had it all along (target: within 10
   points), and calls until the shares are within 10 points;
3. a silent regression: from call 300 the most used child scores 0 (and is
   repaired at call 1300); calls until its share falls below 10%, and until it
   wins half its share back, with ``decay`` and without;
4. a price cut: at call 300 the priciest child's cost drops 10x, under a budget;
   its share, accuracy and spend before and after.

Run from the project root: ``python benchmarks/dynamics.py --seeds 3`` (prompts
are embedded once with the packaged MiniLM into ``.metallm_cache/``). Prints the
numbers and its run time, writes ``results/dynamics_*.json`` and plots
``results/dynamics_*.png``, copied to ``docs/`` for the README (a run with
``--out`` elsewhere leaves ``docs/`` alone).
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.cache import (
    DEFAULT_CACHE_DIR,
    CachedVectors,
    EmbeddingCache,
)
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.plots import save_figure, short_name
from langchain_metallm.bench.splits import random_split
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings
from langchain_metallm.embeddings import LocalEmbeddings

FloatArray = NDArray[np.float64]
WINDOW = 200
"""Calls per window for overshoot and running accuracy/cost."""
SHARE_WINDOW = 50
"""Calls per window for a child's share of the traffic."""
NEW_MODEL = "llama-3.1-nemotron-51b-instruct"
HOLD = 200
"""Calls a share must stay past a threshold to count as reached "for good"."""
DECAY = 0.99
WEIGHTS = (0.0, 0.02, 0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 1.0, 2.0, 10.0)
"""Fixed cost weights replayed for the baseline curve of scenario 1 (10 makes
every llmrouter9 and mmlu2 call go to a cheapest child)."""
BUDGET_STEPS = (0.0, 0.05, 0.1, 0.2, 0.35, 0.55, 1.0)
"""Budgets as fractions of the way from the cheapest child's cost to 1."""
TOLERANCE = 0.02
"""Target of scenario 1: realised mean cost within 2% of a binding budget."""
DEFAULT_OUT = "results"
"""Where results go; only a run writing here refreshes the README's plots."""


@dataclass(frozen=True)
class Stream:
    """One seed's warm-start part and shuffled stream of a data set; the
    embedder serves the data set's cached vectors by prompt."""

    models: tuple[str, ...]
    cost: FloatArray
    embeddings: CachedVectors
    train_prompts: tuple[str, ...]
    train_tasks: tuple[str, ...]
    train_scores: FloatArray
    prompts: tuple[str, ...]
    scores: FloatArray


@dataclass
class World:
    """Which children answer wrongly now (scenario 3 breaks one); what children
    cost is the core's catalogue, which scenarios change."""

    broken: set[str] = field(default_factory=set)


@dataclass(frozen=True)
class Trace:
    """Per call: chosen child, its score and cost, and the cost weight used."""

    models: tuple[str, ...]
    chosen: NDArray[np.int64]
    score: FloatArray
    cost: FloatArray
    weight: FloatArray

    def share(self, model: str) -> FloatArray:
        """Fraction of the last ``SHARE_WINDOW`` calls routed to ``model``."""
        return _moving(self.chosen == self.models.index(model), SHARE_WINDOW)


Event = Callable[[RouterCore, World], None]


def load_stream(data: Outcomes, embeddings: CachedVectors, seed: int) -> Stream:
    """Split ``data`` 50/50 by id with ``seed`` and shuffle the test half into a
    stream (``embeddings`` serves every prompt's vector)."""
    split = random_split(data, test_fraction=0.5, seed=seed)
    order = np.random.default_rng(seed).permutation(split.test)
    return Stream(
        data.models,
        data.cost,
        embeddings,
        tuple(data.prompts[i] for i in split.train),
        tuple(data.tasks[i] for i in split.train),
        data.scores[split.train],
        tuple(data.prompts[i] for i in order),
        data.scores[order],
    )


def warm_core(
    stream: Stream,
    models: tuple[str, ...],
    *,
    decay: float = 1.0,
    cost_weight: float = 0.0,
    budget: float | None = None,
) -> RouterCore:
    """A router core over ``models`` fitted on the stream's training part with
    its task labels, deciding at ``cost_weight`` or pacing to ``budget`` (the
    core starts its pacer from the fit)."""
    costs = {m: float(stream.cost[stream.models.index(m)]) for m in models}
    catalogue = Catalogue.build(costs)
    if catalogue.unit != 1.0:  # normalised as the stream's costs (priciest: 1)
        raise ValueError(f"models: none of {models} costs 1 (the priciest child)")
    core = RouterCore(
        name="dynamics",
        settings=Settings(cost_weight=cost_weight, budget=budget, decay=decay),
        catalogue=catalogue,
        embeddings=stream.embeddings,
    )
    columns = [stream.models.index(m) for m in models]
    core.fit(stream.train_prompts, stream.train_scores[:, columns], stream.train_tasks)
    return core


def replay(
    core: RouterCore,
    stream: Stream,
    *,
    events: dict[int, Event] | None = None,
    calls: int | None = None,
) -> Trace:
    """Route the stream call by call through ``core`` (``context``, ``decide``,
    ``register`` the chosen child's answer, ``learn`` its score); ``events``
    fire before a call."""
    world = World()
    n = min(len(stream.prompts), calls or len(stream.prompts))
    chosen = np.zeros(n, dtype=np.int64)
    score, cost, weights = np.zeros(n), np.zeros(n), np.zeros(n)
    column = {m: j for j, m in enumerate(stream.models)}
    for t in range(n):
        if events and t in events:
            events[t](core, world)
        run_id = str(t)
        context = core.context(stream.prompts[t])
        decision = core.decide(run_id, context)
        name = decision.chosen
        done = core.register(decision, name, context, None)
        s = 0.0 if name in world.broken else float(stream.scores[t, column[name]])
        core.learn(run_id, s)
        assert done.cost is not None
        chosen[t], score[t], cost[t] = column[name], s, done.cost
        weights[t] = decision.cost_weight
    return Trace(stream.models, chosen, score, cost, weights)


def _moving(values: NDArray[np.generic], window: int) -> FloatArray:
    """Mean of the last ``window`` values at each call (fewer at the start)."""
    sums = np.cumsum(np.asarray(values, dtype=np.float64))
    lagged = np.concatenate([np.zeros(window), sums[:-window]])[: len(sums)]
    counts = np.minimum(np.arange(1, len(sums) + 1), window)
    result: FloatArray = (sums - lagged) / counts
    return result


def worst_window_overshoot(cost: FloatArray, budget: float) -> float:
    """Largest (window mean cost - budget) over full windows of ``WINDOW`` calls."""
    full = _moving(cost, WINDOW)[WINDOW - 1 :]
    return float(full.max() - budget)


def frontier_accuracy(points: list[tuple[float, float]], spend: float) -> float:
    """Accuracy of the best fixed weight spending ``spend``: the upper envelope
    of (cost, accuracy) points, linearly interpolated."""
    xs, ys = zip(*sorted(points), strict=True)
    envelope = np.maximum.accumulate(np.array(ys))
    return float(np.interp(spend, np.array(xs), envelope))


def first_call(mask: NDArray[np.bool_], start: int, hold: int = 1) -> int | None:
    """Calls after ``start`` until ``mask`` holds for ``hold`` calls in a row
    (or to the end of the stream); None if never."""
    held = np.convolve(mask[start:].astype(np.int64), np.ones(hold, dtype=np.int64))
    runs = held[hold - 1 :]  # runs[t] counts mask over [t, t + hold)
    left = np.minimum(hold, len(mask) - start - np.arange(len(runs)))
    hits = np.flatnonzero(runs == left)
    return int(hits[0]) if len(hits) else None


def budget_sweep(stream: Stream, calls: int | None) -> dict[str, object]:
    """Scenario 1 on one seed: budgets against fixed weights on one stream."""
    fixed = []
    for w in WEIGHTS:
        trace = replay(
            warm_core(stream, stream.models, cost_weight=w), stream, calls=calls
        )
        fixed.append((float(trace.cost.mean()), float(trace.score.mean())))
    unconstrained = fixed[WEIGHTS.index(0.0)][0]
    cheapest = float(stream.cost.min())
    rows = []
    traces = {}
    for step in BUDGET_STEPS:
        budget = cheapest + step * (1.0 - cheapest)
        core = warm_core(stream, stream.models, budget=budget)
        trace = replay(core, stream, calls=calls)
        spend = float(trace.cost.mean())
        binding = budget < unconstrained
        error = (spend - budget) / budget
        rows.append(
            {
                "budget": budget,
                "binding": binding,
                "cost": spend,
                "error": error,
                "met": abs(error) <= TOLERANCE if binding else spend <= budget,
                "overshoot": worst_window_overshoot(trace.cost, budget),
                "accuracy": float(trace.score.mean()),
                "fixed_accuracy": frontier_accuracy(fixed, spend),
            }
        )
        traces[budget] = trace
    return {"rows": rows, "fixed": fixed, "traces": traces}


def new_model(stream: Stream, calls: int | None, weight: float) -> dict[str, object]:
    """Scenario 2 on one seed: add ``NEW_MODEL`` after 200 calls."""
    without = tuple(m for m in stream.models if m != NEW_MODEL)
    reference = replay(
        warm_core(stream, stream.models, cost_weight=weight), stream, calls=calls
    )

    def add(core: RouterCore, world: World) -> None:
        core.add_child(NEW_MODEL, float(stream.cost[stream.models.index(NEW_MODEL)]))

    added = replay(
        warm_core(stream, without, cost_weight=weight),
        stream,
        events={200: add},
        calls=calls,
    )
    column = stream.models.index(NEW_MODEL)

    def early(trace: Trace) -> np.floating:
        return np.mean(trace.chosen[200 + 150 : 200 + 500] == column)

    def last(trace: Trace) -> np.floating:
        return np.mean(trace.chosen[-1000:] == column)

    gap = np.abs(added.share(NEW_MODEL) - reference.share(NEW_MODEL))
    after = np.arange(len(gap)) >= 200 + SHARE_WINDOW  # windows wholly after the add
    return {
        "calls_to_adopt": first_call((gap <= 0.10) & after, 200),
        "calls_to_adopt_for_good": first_call((gap <= 0.10) & after, 200, HOLD),
        "early_share_reference": float(early(reference)),
        "early_share_added": float(early(added)),
        "share_reference": float(last(reference)),
        "share_added": float(last(added)),
        "accuracy_reference": float(reference.score[200:].mean()),
        "accuracy_added": float(added.score[200:].mean()),
        "traces": {"reference": reference, "added": added},
    }


def regression(stream: Stream, calls: int | None, weight: float) -> dict[str, object]:
    """Scenario 3 on one seed: the most used child scores 0 from call 300 to
    1300, with and without ``decay``."""
    probe = replay(
        warm_core(stream, stream.models, cost_weight=weight), stream, calls=300
    )
    victim = stream.models[int(np.bincount(probe.chosen).argmax())]

    def break_it(core: RouterCore, world: World) -> None:
        world.broken.add(victim)

    def repair(core: RouterCore, world: World) -> None:
        world.broken.discard(victim)

    result: dict[str, object] = {"victim": victim}
    before = float(probe.share(victim)[-1])
    for label, decay in (("decay", DECAY), ("no_decay", 1.0)):
        trace = replay(
            warm_core(stream, stream.models, decay=decay, cost_weight=weight),
            stream,
            events={300: break_it, 1300: repair},
            calls=calls,
        )
        share = trace.share(victim)
        result[label] = {
            "calls_to_drop": first_call(share < 0.10, 300, HOLD),
            "calls_to_recover": first_call(share >= before / 2, 1300 + SHARE_WINDOW),
            "accuracy_broken": float(trace.score[300:1300].mean()),
            "trace": trace,
        }
    result["share_before"] = before
    return result


def price_cut(stream: Stream, calls: int | None, budget: float) -> dict[str, object]:
    """Scenario 4 on one seed: under ``budget``, the priciest child (the best
    of the ties on the training part) costs 10x less from call 300."""
    top = np.flatnonzero(stream.cost == stream.cost.max())
    cut = stream.models[int(top[np.argmax(stream.train_scores[:, top].mean(axis=0))])]

    def discount(core: RouterCore, world: World) -> None:
        cheaper = core.catalogue.costs[cut] / 10.0
        core.set_catalogue(core.catalogue.with_costs({cut: cheaper}))

    trace = replay(
        warm_core(stream, stream.models, budget=budget),
        stream,
        events={300: discount},
        calls=calls,
    )
    share = trace.chosen == stream.models.index(cut)
    return {
        "model": cut,
        "share_before": float(share[:300].mean()),
        "share_after": float(share[300:].mean()),
        "accuracy_before": float(trace.score[:300].mean()),
        "accuracy_after": float(trace.score[300:].mean()),
        "cost_after": float(trace.cost[300:].mean()),
        "trace": trace,
    }


def plot_trace(
    trace: Trace,
    path: Path,
    title: str,
    *,
    budget: float | None = None,
    marks: tuple[int, ...] = (),
) -> Path:
    """Share per child, running accuracy and running cost against the budget."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(3, 1, figsize=(8, 8), sharex=True)
    calls = np.arange(1, len(trace.chosen) + 1)
    for model in trace.models:
        share = trace.share(model)
        if share.max() >= 0.05:
            axes[0].plot(calls, share, linewidth=1, label=short_name(model))
    axes[0].set_ylabel(f"share ({SHARE_WINDOW}-call window)")
    axes[0].legend(fontsize=7, ncol=3, loc="upper right")
    axes[1].plot(calls, _moving(trace.score, WINDOW), color="black", linewidth=1)
    axes[1].set_ylabel(f"accuracy ({WINDOW}-call window)")
    axes[2].plot(calls, _moving(trace.cost, WINDOW), linewidth=1, label="window")
    axes[2].plot(calls, np.cumsum(trace.cost) / calls, linewidth=1, label="cumulative")
    if budget is not None:
        axes[2].axhline(
            budget, color="red", linestyle="--", linewidth=1, label="budget"
        )
    axes[2].set_ylabel("mean normalised cost")
    axes[2].set_xlabel("call")
    axes[2].legend(fontsize=7, loc="upper right")
    for ax in axes:
        ax.grid(alpha=0.3)
        for mark in marks:
            ax.axvline(mark, color="grey", linestyle=":", linewidth=1)
    axes[0].set_title(title, fontsize=9)
    return save_figure(fig, path, 110)


def plot_sweep(name: str, seeds: list[dict[str, object]], path: Path) -> Path:
    """One data set's sweep: realised cost against budget (mean, range over
    seeds), accuracy against spend for budgets and fixed weights (means), and
    the 200-call window cost over time for every budget (first seed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [seed["rows"] for seed in seeds]
    budgets = np.array([r["budget"] for r in rows[0]])
    costs = np.array([[r["cost"] for r in seed] for seed in rows])
    accs = np.array([[r["accuracy"] for r in seed] for seed in rows])
    fixed = np.array([seed["fixed"] for seed in seeds])
    fig, axes = plt.subplots(1, 3, figsize=(14, 4.2))
    spread = [costs.mean(0) - costs.min(0), costs.max(0) - costs.mean(0)]
    axes[0].errorbar(budgets, costs.mean(0), yerr=spread, marker="o", capsize=3)
    axes[0].plot([0, 1], [0, 1], color="grey", linestyle=":", linewidth=1)
    axes[0].axhline(
        fixed[:, WEIGHTS.index(0.0), 0].mean(),
        color="grey",
        linestyle="--",
        linewidth=1,
        label="spend at cost weight 0",
    )
    axes[0].set_xlabel("budget (mean normalised cost per call)")
    axes[0].set_ylabel("realised mean cost (mean, range over seeds)")
    axes[1].plot(costs.mean(0), accs.mean(0), marker="o", label="budget (pacer)")
    axes[1].plot(
        fixed[:, :, 0].mean(0),
        fixed[:, :, 1].mean(0),
        marker="x",
        linestyle="--",
        label="fixed cost weights",
    )
    axes[1].set_xlabel("realised mean cost")
    axes[1].set_ylabel("accuracy (mean over seeds)")
    for budget, trace in seeds[0]["traces"].items():
        calls = np.arange(WINDOW, len(trace.cost) + 1)
        window = _moving(trace.cost, WINDOW)[WINDOW - 1 :]
        line = axes[2].plot(calls, window, linewidth=1)
        axes[2].axhline(budget, color=line[0].get_color(), linestyle=":", linewidth=1)
    axes[2].set_xlabel("call")
    axes[2].set_ylabel(f"mean cost, {WINDOW}-call window (seed 0)")
    for ax in axes:
        ax.grid(alpha=0.3)
    for ax in axes[:2]:
        ax.legend(fontsize=8)
    fig.suptitle(f"{name}: budget sweep, {len(seeds)} seeds", fontsize=10)
    return save_figure(fig, path, 110)


def _mean_worst(values: list[float | None], worst: Callable[..., float]) -> str:
    """``mean (worst w)`` of the known values, and how many never happened."""
    known = [v for v in values if v is not None]
    missing = len(values) - len(known)
    if not known:
        return "never"
    text = f"{statistics.fmean(known):.3g} (worst {worst(known):.3g})"
    return text + (f", {missing} never" if missing else "")


def _plain(result: dict[str, object]) -> dict[str, object]:
    """``result`` without its traces (for JSON)."""
    return {
        k: _plain(v) if isinstance(v, dict) else v  # type: ignore[arg-type]
        for k, v in result.items()
        if k not in ("trace", "traces")
    }


def report_sweep(streams: dict[str, list[Stream]], out: Path, calls: int) -> object:
    """Scenario 1 on every data set and seed: print, plot, return rows."""
    print(
        f"\n1. Budget sweep ({calls} calls): mean over seeds (worst seed);"
        f" target: within {TOLERANCE:.0%} of a binding budget, at least the"
        "\n   accuracy of the best fixed weight at the same spend (fixed@spend,"
        " tuned in hindsight on the stream)"
    )
    results: dict[str, object] = {}
    for name, seeds in streams.items():
        sweeps = [budget_sweep(s, calls) for s in seeds]
        free = statistics.fmean(s["fixed"][WEIGHTS.index(0.0)][0] for s in sweeps)
        print(f"  {name}: spends {free:.3f} at cost weight 0 (mean)")
        print(
            "    budget  spent   error (worst)    window over  accuracy"
            "  fixed@spend  diff (worst)    target"
        )
        for i, row in enumerate(sweeps[0]["rows"]):
            per = [seed["rows"][i] for seed in sweeps]
            error = [r["error"] for r in per]
            diff = [r["accuracy"] - r["fixed_accuracy"] for r in per]
            binding = sum(r["binding"] for r in per)
            met = sum(r["met"] for r in per)
            status = f"met {met}/{len(per)}" + (
                "" if binding == len(per) else f", binding {binding}/{len(per)}"
            )
            spent = statistics.fmean(r["cost"] for r in per)
            print(
                f"    {row['budget']:.3f}   {spent:.3f}"
                f"  {statistics.fmean(error):+.2%} ({max(error, key=abs):+.2%})"
                f"  {max(r['overshoot'] for r in per):+.3f}"
                f"       {statistics.fmean(r['accuracy'] for r in per):.3f}"
                f"     {statistics.fmean(r['fixed_accuracy'] for r in per):.3f}"
                f"      {statistics.fmean(diff):+.4f} ({min(diff):+.4f})"
                f"  {status}"
            )
        plot_sweep(name, sweeps, out / f"dynamics_budget_{name}.png")
        results[name] = [{"rows": s["rows"], "fixed": s["fixed"]} for s in sweeps]
    return results


def report_new_model(streams: list[Stream], out: Path, calls: int) -> object:
    """Scenario 2 on every seed of llmrouter9."""
    runs = [new_model(s, calls, 0.0) for s in streams]
    print(f"\n2. {NEW_MODEL} added after 200 calls (cost weight 0)")
    first = _mean_worst([r["calls_to_adopt"] for r in runs], max)
    good = _mean_worst([r["calls_to_adopt_for_good"] for r in runs], max)
    print(
        "  calls until its share is within 10 points of a router that had it: "
        f"{first}; and stays so for {HOLD} calls: {good}"
    )
    shares = ("early_share_reference", "early_share_added", "share_reference")
    for key in (*shares, "share_added", "accuracy_reference"):
        print(f"  {key}: {_mean_worst([r[key] for r in runs], min)}")
    for label, prefix in (
        ("calls 150-500 after the add", "early_"),
        ("the last 1,000", ""),
    ):
        gaps = [r[prefix + "share_added"] - r[prefix + "share_reference"] for r in runs]
        worst = max(gaps, key=abs)
        met = sum(abs(g) <= 0.10 for g in gaps)
        print(
            f"  share added - reference over {label}: mean {np.mean(gaps):+.3f}, "
            f"worst {worst:+.3f}; within 10 points on {met}/{len(gaps)} seeds"
        )
    print(f"  accuracy_added: {_mean_worst([r['accuracy_added'] for r in runs], min)}")
    plot_trace(
        runs[0]["traces"]["added"],
        out / "dynamics_new_model.png",
        f"llmrouter9: {short_name(NEW_MODEL)} added at call 200 (seed 0)",
        marks=(200,),
    )
    return [_plain(r) for r in runs]


def report_regression(streams: list[Stream], out: Path, calls: int) -> object:
    """Scenario 3 on every seed of llmrouter9."""
    runs = [regression(s, calls, 0.0) for s in streams]
    print(
        "\n3. Most used child scores 0 from call 300, repaired at 1300 (cost weight 0)"
    )
    print(f"  victims: {[r['victim'] for r in runs]}")
    for label in ("decay", "no_decay"):
        per = [r[label] for r in runs]
        print(f"  {label} ({DECAY if label == 'decay' else 1.0}):")
        for key in ("calls_to_drop", "calls_to_recover", "accuracy_broken"):
            worst = min if key == "accuracy_broken" else max
            print(f"    {key}: {_mean_worst([p[key] for p in per], worst)}")
    plot_trace(
        runs[0]["decay"]["trace"],
        out / "dynamics_regression.png",
        f"llmrouter9: {short_name(str(runs[0]['victim']))} scores 0 "
        f"from call 300 to 1300, decay {DECAY} (seed 0)",
        marks=(300, 1300),
    )
    return [_plain(r) for r in runs]


def report_price_cut(streams: list[Stream], out: Path, calls: int) -> object:
    """Scenario 4 on every seed of llmrouter9."""
    budget = 0.3
    runs = [price_cut(s, calls, budget) for s in streams]
    print(f"\n4. Priciest child 10x cheaper from call 300 (budget {budget})")
    print(f"  models: {[r['model'] for r in runs]}")
    for key in ("share", "accuracy"):
        for when in ("before", "after"):
            values = [r[f"{key}_{when}"] for r in runs]
            print(f"  {key} {when}: {_mean_worst(values, min)}")
    print(f"  cost after: {_mean_worst([r['cost_after'] for r in runs], max)}")
    plot_trace(
        runs[0]["trace"],
        out / "dynamics_price_cut.png",
        f"llmrouter9: {short_name(str(runs[0]['model']))} 10x cheaper "
        f"from call 300, budget {budget} (seed 0)",
        budget=budget,
        marks=(300,),
    )
    return [_plain(r) for r in runs]


SCENARIOS = ("budget", "new_model", "regression", "price_cut")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--data", default=None, help="folder of the data sets")
    parser.add_argument(
        "--cache-dir",
        default=str(DEFAULT_CACHE_DIR),
        help="where prompt embeddings are cached on disk",
    )
    parser.add_argument("--calls", type=int, default=2000, help="stream length cap")
    parser.add_argument("--out", default=DEFAULT_OUT)
    parser.add_argument(
        "--scenarios", default=",".join(SCENARIOS), help="comma-separated subset"
    )
    parser.add_argument(
        "--sweep-datasets", default="llmrouter9,mmlu2", help="data sets of scenario 1"
    )
    args = parser.parse_args()
    started, cpu = time.perf_counter(), time.process_time()
    chosen = args.scenarios.split(",")
    out, docs = Path(args.out), Path("docs")
    out.mkdir(parents=True, exist_ok=True)
    swept = args.sweep_datasets.split(",") if "budget" in chosen else []
    names = sorted({*swept, "llmrouter9"} if set(chosen) - {"budget"} else set(swept))
    streams: dict[str, list[Stream]] = {}
    cache = EmbeddingCache(LocalEmbeddings(), args.cache_dir)
    for name in names:
        folder = Path(args.data) / name if args.data else resolve_data_dir(name)
        data = load_outcomes(folder)
        vectors = CachedVectors(data.prompts, cache.embed(data.prompts), cache.name)
        streams[name] = [load_stream(data, vectors, seed) for seed in range(args.seeds)]
    reports = {
        "budget": lambda: report_sweep({n: streams[n] for n in swept}, out, args.calls),
        "new_model": lambda: report_new_model(streams["llmrouter9"], out, args.calls),
        "regression": lambda: report_regression(streams["llmrouter9"], out, args.calls),
        "price_cut": lambda: report_price_cut(streams["llmrouter9"], out, args.calls),
    }
    for scenario in chosen:
        result = reports[scenario]()
        (out / f"dynamics_{scenario}.json").write_text(json.dumps(result, indent=1))
    refresh_docs = args.out == DEFAULT_OUT
    if refresh_docs:
        for png in out.glob("dynamics_*.png"):
            shutil.copy(png, docs / png.name)
    copied = f" (copied to {docs}/)" if refresh_docs else ""
    print(f"\nwrote {out}/dynamics_*.json and plots{copied}")
    print(
        f"run time {time.perf_counter() - started:.0f} s wall, "
        f"{time.process_time() - cpu:.0f} s CPU"
    )


if __name__ == "__main__":
    main()
