"""A fleet of never-fitted routers learning live through one store (issue 22).

Target: four never-fitted workers on one SQLite store, and the same on Redis, fed
live traffic; a worker joining afterwards reaches the best single model's
accuracy at no more than 50% of its cost, within 1 point of one process on the
same traffic.

Per seed, llmrouter9's rows are split and ordered as in ``live_learning.py`` (a
random 80% is live traffic in a seeded order, the other 20% held out). Per store
(a SQLite file, or a ``redis-server`` this script starts on a free port) and cost
weight, four worker processes, each a never-fitted ``RouterCore`` (what the chat
model runs) on a new store, serve the live part together, worker k every 4th row
from row k, each call rewarded at once with the recorded score of the child it
chose. Nothing crosses a process boundary but the store: the workers agree on
online clusters there (the first to reach a stage publishes it) and learn into
one set of statistics. When all four are done, a fifth core (the joiner) serves
the held-out rows in order on that store, still learning. The comparison is one
process serving the same live order, then the held-out rows, alone
(``live_learning.py``'s run). Costs are normalised (the priciest child costs 1).

Printed per store, for each seed and as mean / worst over seeds: the joiner's best
held-out accuracy at <= 50% of the best single child's cost minus that child's
accuracy (target >= 0), the same for one process, and the joiner's margin minus
the one process's (target >= -1 point); checks that every run's workers and
joiner agreed on the clusters and kept every outcome; then, per cost weight, the
held-out and live accuracy and cost of the fleet and of one process. Then one
budget for the fleet (``--budgets``, default 0.3 and 0.5): the same runs with a
budget instead of a cost weight, the fleet's live spend against the budget
(target: within 2%), each worker's, and the fleet's accuracy against one process
at the same budget. Writes ``results/fleet.json``.

Stores refresh every ``--refresh`` seconds (default 0.05): the replay serves a few
thousand calls a second, so the library's default of 1 s would leave each worker
about a second (thousands of fleet calls) behind the others, where live LLM calls
taking a second or more leave it a few calls behind.

Run from the project root (vectors come from ``.metallm_cache/``):
``python benchmarks/fleet.py --seeds 3 --stores sqlite,redis``
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import queue
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, nullcontext, suppress
from dataclasses import asdict, dataclass, replace
from multiprocessing.queues import Queue
from multiprocessing.synchronize import Barrier
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.cache import DEFAULT_CACHE_DIR, CachedVectors
from langchain_metallm.bench.cli import resolve_data_dir
from langchain_metallm.bench.data import Outcomes, load_outcomes
from langchain_metallm.bench.live import (
    COST_WEIGHTS,
    LiveStream,
    cached_vectors,
    live_choices,
    live_stream,
    margin_at_half_cost,
    new_core,
    prices_of,
)
from langchain_metallm.bench.redis_server import redis_server
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.settings import Settings
from langchain_metallm.core.stores import PolicyStore, RedisStore, SQLiteStore

FloatArray = NDArray[np.float64]
WORKERS = 4
STORES = ("sqlite", "redis")
TIMEOUT = 600.0
"""Seconds a worker may take to start, or to serve its rows."""


@dataclass(frozen=True)
class Traffic:
    """Rows to serve in order: prompts, their vectors and recorded scores."""

    prompts: list[str]
    vectors: FloatArray
    scores: FloatArray

    def part(self, rows: slice) -> Traffic:
        """These rows only."""
        return Traffic(self.prompts[rows], self.vectors[rows], self.scores[rows])


@dataclass(frozen=True)
class Job:
    """What one core is given: its store, settings (a cost weight or a
    budget), children and traffic."""

    kind: str
    target: str
    refresh: float
    settings: Settings
    prices: dict[str, float]
    label: str
    traffic: Traffic


@dataclass(frozen=True)
class Served:
    """What one core did: its choices, the clusters it ended on (fingerprint of
    each stage), whether it created the namespace, and its serving time."""

    chosen: NDArray[np.int64]
    stages: list[str | None]
    created: bool
    seconds: float


@dataclass
class Point:
    """Held-out accuracy and mean cost at one cost weight, and the same over
    the live part."""

    p: float
    accuracy: float
    cost: float
    live_accuracy: float
    live_cost: float


@dataclass
class FleetPoint(Point):
    """The joiner's held-out figures, the fleet's live ones, and how it ran."""

    worker_costs: list[float]
    """Each worker's mean cost over its live rows."""
    worker_seconds: float
    """The slowest worker's time to serve its live rows."""
    seconds: float
    """Wall time of the whole run: starting the workers, serving, the joiner."""
    clusters_agree: bool
    """Every worker and the joiner ended on the same clusters, all stages fitted."""
    creators: int
    """Cores that created the store namespace (and added the prior): 1."""
    outcomes: int
    """Outcomes in the store once the joiner is done (every live and held-out
    call)."""


def figures(
    chosen: NDArray[np.int64], scores: FloatArray, n_live: int, cost: FloatArray
) -> dict[str, float]:
    """Accuracy and mean cost of the children ``chosen`` for each row of the
    stream, held out (after ``n_live``) and live."""
    got = scores[np.arange(len(chosen)), chosen]
    return {
        "accuracy": float(got[n_live:].mean()),
        "cost": float(cost[chosen[n_live:]].mean()),
        "live_accuracy": float(got[:n_live].mean()),
        "live_cost": float(cost[chosen[:n_live]].mean()),
    }


@dataclass
class Run:
    """One seed: each child's held-out accuracy, one process's points and the
    fleet's points per store."""

    seed: int
    single: list[float]
    one_process: list[Point]
    fleets: dict[str, list[FleetPoint]]
    paced_alone: list[Point]
    """One process at each budget (``p``: the budget)."""
    paced: dict[str, list[FleetPoint]]
    """The fleet at each budget, per store (``p``: the budget)."""


def open_store(kind: str, target: str, refresh: float) -> PolicyStore:
    """A store object of ``kind`` on the SQLite file or Redis URL ``target``."""
    if kind == "sqlite":
        return SQLiteStore(target, refresh_interval=refresh)
    return RedisStore(target, refresh_interval=refresh)


def new_target(kind: str, where: str, name: str) -> str:
    """An empty store of ``kind``: a new SQLite file ``name`` in the directory
    ``where``, or the Redis server at URL ``where``, emptied."""
    if kind == "sqlite":
        return str(Path(where) / f"{name}.db")
    client = RedisStore(where).client
    client.flushdb()
    client.close()
    return where


def core_for(job: Job) -> RouterCore:
    """A never-fitted core on the job's store (default settings but the
    weight or budget)."""
    return new_core(
        "fleet",
        job.settings,
        Catalogue.build(job.prices),
        CachedVectors(job.traffic.prompts, job.traffic.vectors, job.label),
        open_store(job.kind, job.target, job.refresh),
    )


def serve(core: RouterCore, traffic: Traffic) -> Served:
    """Serve ``traffic`` in order on ``core``, then let a stage it is fitting
    be published (a long-running worker would)."""
    start = time.perf_counter()
    chosen = live_choices(core, traffic.prompts, traffic.scores)
    tasks, policy = core.task_classifier, core.policy
    assert isinstance(tasks, OnlineClusters) and policy is not None
    tasks.wait()
    stages = [None if s is None else s.fingerprint() for s in tasks.fitted]
    return Served(chosen, stages, policy.created, time.perf_counter() - start)


def worker(
    k: int, job: Job, barrier: Barrier, results: Queue[tuple[int, Served]]
) -> None:
    """Worker process ``k``: build its core, start with the others, serve."""
    core = core_for(job)
    barrier.wait(TIMEOUT)
    results.put((k, serve(core, job.traffic)))


def run_workers(jobs: Sequence[Job]) -> list[Served]:
    """Serve each job in a new process of its own, all at once."""
    spawn = multiprocessing.get_context("spawn")
    barrier, results = spawn.Barrier(len(jobs)), spawn.Queue()
    processes = [
        spawn.Process(target=worker, args=(k, job, barrier, results))
        for k, job in enumerate(jobs)
    ]
    for process in processes:
        process.start()
    found: dict[int, Served] = {}
    deadline = time.monotonic() + TIMEOUT
    while len(found) < len(jobs):
        failed = [k for k, w in enumerate(processes) if w.exitcode not in (None, 0)]
        if failed or time.monotonic() > deadline:
            for process in processes:
                process.kill()
            raise RuntimeError(f"fleet workers {failed or 'timed out'}: see above")
        with suppress(queue.Empty):
            k, served = results.get(timeout=1.0)
            found[k] = served
    for process in processes:
        process.join()
    return [found[k] for k in range(len(jobs))]


def fleet_point(job: Job, n_live: int, cost: FloatArray) -> FleetPoint:
    """Four workers serve the job's first ``n_live`` rows on its store, worker
    k every 4th from row k; then a joiner serves the rest there."""
    start = time.perf_counter()
    traffic = job.traffic
    served = run_workers(
        [
            replace(job, traffic=traffic.part(slice(k, n_live, WORKERS)))
            for k in range(WORKERS)
        ]
    )
    live = np.empty(n_live, dtype=np.int64)
    for k, result in enumerate(served):
        live[k::WORKERS] = result.chosen
    held_out = traffic.part(slice(n_live, None))
    joiner = core_for(replace(job, traffic=held_out))
    joined = serve(joiner, held_out)
    assert joiner.policy is not None
    counts = joiner.policy.statistics()[2]
    chosen = np.concatenate([live, joined.chosen])
    budget = job.settings.budget
    return FleetPoint(
        p=job.settings.cost_weight if budget is None else budget,
        **figures(chosen, traffic.scores, n_live, cost),
        worker_costs=[float(cost[s.chosen].mean()) for s in served],
        worker_seconds=max(s.seconds for s in served),
        seconds=time.perf_counter() - start,
        clusters_agree=None not in joined.stages
        and all(s.stages == joined.stages for s in served),
        creators=sum(s.created for s in served) + joined.created,
        outcomes=int(counts.sum()),
    )


def one_process(
    stream: LiveStream,
    vectors: CachedVectors,
    catalogue: Catalogue,
    settings: Settings,
    cost: FloatArray,
) -> Point:
    """One never-fitted core serving the same live order, then the held-out
    rows, alone (``live_learning.py``'s run); ``p`` the weight or budget."""
    core = new_core("live", settings, catalogue, vectors)
    chosen = live_choices(core, stream.prompts, stream.scores)
    p = settings.cost_weight if settings.budget is None else settings.budget
    return Point(p=p, **figures(chosen, stream.scores, stream.n_live, cost))


def run_seed(
    data: Outcomes,
    vectors: CachedVectors,
    seed: int,
    weights: Sequence[float],
    budgets: Sequence[float],
    places: dict[str, str],
    refresh: float,
) -> Run:
    """One seed's stream, served by one process and by a fleet on each store
    (``places``: kind -> where its stores live), at every cost weight and
    every budget."""
    stream = live_stream(data, seed)
    traffic = Traffic(
        stream.prompts,
        np.asarray(vectors.embed_documents(stream.prompts)),
        stream.scores,
    )
    prices = prices_of(data)
    catalogue = Catalogue.build(prices)
    runs = {
        **{f"p{p}": Settings(cost_weight=p) for p in weights},
        **{f"budget{b}": Settings(budget=b) for b in budgets},
    }
    fleets: dict[str, dict[str, FleetPoint]] = {}
    for kind, where in places.items():
        for label, settings in runs.items():
            target = new_target(kind, where, f"seed{seed}-{label}")
            job = Job(
                kind, target, refresh, settings, prices, vectors.model_name, traffic
            )
            point = fleet_point(job, stream.n_live, data.cost)
            fleets.setdefault(kind, {})[label] = point
            print(
                f"seed {seed} {kind} {label}: joiner {point.accuracy:.3f}/"
                f"{point.cost:.2f}, fleet live {point.live_accuracy:.3f}/"
                f"{point.live_cost:.3f}, {point.seconds:.1f} s",
                flush=True,
            )
    alone = {
        label: one_process(stream, vectors, catalogue, settings, data.cost)
        for label, settings in runs.items()
    }
    weighted, paced = [f"p{p}" for p in weights], [f"budget{b}" for b in budgets]
    return Run(
        seed=seed,
        single=stream.scores[stream.n_live :].mean(axis=0).tolist(),
        one_process=[alone[label] for label in weighted],
        fleets={
            k: [points[label] for label in weighted] for k, points in fleets.items()
        },
        paced_alone=[alone[label] for label in paced],
        paced={k: [points[label] for label in paced] for k, points in fleets.items()},
    )


@contextmanager
def store_places(kinds: Sequence[str]) -> Iterator[dict[str, str]]:
    """Where each kind's stores live for the run: a temporary directory for
    SQLite files, a ``redis-server`` started in it."""
    with (
        tempfile.TemporaryDirectory() as tmp,
        redis_server(tmp) if "redis" in kinds else nullcontext(None) as url,
    ):
        if "redis" in kinds and url is None:
            raise SystemExit("fleet: no redis-server binary; use --stores sqlite")
        where = {"sqlite": tmp, "redis": url or ""}
        yield {kind: where[kind] for kind in kinds}


def margins(runs: Sequence[Run], kind: str, cost: FloatArray) -> list[list[float]]:
    """Per seed: the joiner's margin at half the best child's cost, one
    process's, and their difference."""
    rows = []
    for run in runs:
        single = np.array(run.single)
        fleet = margin_at_half_cost(
            [(q.accuracy, q.cost) for q in run.fleets[kind]], single, cost
        )
        alone = margin_at_half_cost(
            [(q.accuracy, q.cost) for q in run.one_process], single, cost
        )
        rows.append([fleet, alone, fleet - alone])
    return rows


def summarize(runs: Sequence[Run], cost: FloatArray) -> None:
    """Print the target per store, then accuracy and cost per cost weight."""
    for kind in runs[0].fleets:
        table = np.array(margins(runs, kind, cost)) * 100
        points = [q for run in runs for q in run.fleets[kind]]
        print(
            f"\n{kind}: best accuracy at <=50% of the best child's cost minus its "
            "accuracy, points (joiner / one process / joiner minus one process)"
        )
        for run, row in zip(runs, table, strict=True):
            print(f"  seed {run.seed}: {row[0]:+.2f} / {row[1]:+.2f} / {row[2]:+.2f}")
        mean, worst = table.mean(axis=0), table.min(axis=0)
        print(f"  mean:   {mean[0]:+.2f} / {mean[1]:+.2f} / {mean[2]:+.2f}")
        print(f"  worst:  {worst[0]:+.2f} / {worst[1]:+.2f} / {worst[2]:+.2f}")
        print(
            f"  clusters agreed in {sum(q.clusters_agree for q in points)}/"
            f"{len(points)} runs; namespace created once in "
            f"{sum(q.creators == 1 for q in points)}/{len(points)}; outcomes in "
            f"the store {sorted({q.outcomes for q in points})}; run time "
            f"{sum(q.seconds for q in points):.0f} s (slowest worker "
            f"{max(q.worker_seconds for q in points):.1f} s)"
        )
        print("  mean over seeds, accuracy/cost:")
        print("  p      held out: joiner  one process    live: fleet  one process")
        for k, p in enumerate(q.p for q in runs[0].one_process):
            fleet = [run.fleets[kind][k] for run in runs]
            alone = [run.one_process[k] for run in runs]
            print(
                f"  {p:<6} {pair(fleet, False)}  {pair(alone, False)}   "
                f"{pair(fleet, True)}  {pair(alone, True)}"
            )
        summarize_budgets(runs, kind)


def summarize_budgets(runs: Sequence[Run], kind: str) -> None:
    """Per budget: the fleet's live spend against it (mean and worst seed),
    its workers' spends, and accuracy against one process at the same budget."""
    if not runs[0].paced_alone:
        return
    print(
        "  one budget for the fleet (live rows): spend error, mean (worst); each "
        "worker's spend; accuracy fleet / one process (its spend error)"
    )
    for k, q in enumerate(runs[0].paced_alone):
        fleet = [run.paced[kind][k] for run in runs]
        alone = [run.paced_alone[k] for run in runs]
        errors = [(f.live_cost - q.p) / q.p for f in fleet]
        solo = [(a.live_cost - q.p) / q.p for a in alone]
        workers = [round(c, 3) for f in fleet for c in f.worker_costs]
        print(
            f"  budget {q.p}: {np.mean(errors):+.2%} ({max(errors, key=abs):+.2%}); "
            f"workers {min(workers):.3f}-{max(workers):.3f}; accuracy "
            f"{np.mean([f.live_accuracy for f in fleet]):.4f} / "
            f"{np.mean([a.live_accuracy for a in alone]):.4f} "
            f"({np.mean(solo):+.2%})"
        )


def pair(points: Sequence[Point], live: bool) -> str:
    """Mean accuracy/cost of ``points``, live or held out."""
    if live:
        return (
            f"{np.mean([q.live_accuracy for q in points]):.4f}/"
            f"{np.mean([q.live_cost for q in points]):.3f}"
        )
    return (
        f"{np.mean([q.accuracy for q in points]):.4f}/"
        f"{np.mean([q.cost for q in points]):.3f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--stores", default=",".join(STORES))
    parser.add_argument("--data", default="llmrouter9")
    parser.add_argument("--cache-dir", default=str(DEFAULT_CACHE_DIR))
    parser.add_argument("--weights", default=",".join(map(str, COST_WEIGHTS)))
    parser.add_argument("--budgets", default="0.3,0.5")
    parser.add_argument("--refresh", type=float, default=0.05)
    parser.add_argument("--out", default="results")
    args = parser.parse_args()
    kinds = args.stores.split(",")
    unknown = sorted(set(kinds) - set(STORES))
    if unknown:
        parser.error(f"--stores: unknown {unknown}; choose from {list(STORES)}")
    start = time.perf_counter()
    data = load_outcomes(resolve_data_dir(args.data))
    vectors = cached_vectors(data, args.cache_dir)
    weights = [float(w) for w in args.weights.split(",")]
    budgets = [float(b) for b in args.budgets.split(",") if b]
    with store_places(kinds) as places:
        runs = [
            run_seed(data, vectors, seed, weights, budgets, places, args.refresh)
            for seed in range(args.seeds)
        ]
    summarize(runs, data.cost)
    seconds = time.perf_counter() - start
    print(f"\nrun time {seconds:.0f} s")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    report = {
        "refresh_interval": args.refresh,
        "seconds": seconds,
        "runs": [asdict(run) for run in runs],
    }
    (out / "fleet.json").write_text(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
