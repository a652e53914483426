"""Rewarded decisions per second (``select`` + ``update``) at 9 arms x 385 dims.

In memory with 1, 2, 4 and 8 threads sharing one policy, and through a shared
SQLite file and a Redis server with 1 and 4 worker processes. Prints a Markdown
table; run with ``python benchmarks/concurrency.py``. Redis rows need a
``redis-server`` binary (one is started on a free port) or ``--redis-url``.

BLAS runs on one thread (``--blas-threads``): spinning BLAS thread pools stall
badly when the cores are shared with other threads or worker processes.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import threading
import time
from contextlib import nullcontext
from pathlib import Path

import numpy as np
from threadpoolctl import threadpool_limits

from langchain_metallm import LinUCBPolicy
from langchain_metallm.bench.redis_server import redis_server
from langchain_metallm.core.stores import PolicyStore, RedisStore, SQLiteStore

ARMS = [f"m{i}" for i in range(9)]
DIM = 385
NAMESPACE = "bench|random|" + "|".join(ARMS)


def _contexts(seed: int, n: int) -> np.ndarray:
    x = np.random.default_rng(seed).normal(size=(n, DIM))
    unit: np.ndarray = x / np.linalg.norm(x, axis=1, keepdims=True)
    return unit


def _decide_and_learn(policy: LinUCBPolicy, xs: np.ndarray) -> None:
    for x in xs:
        name = policy.select(x)
        policy.update(name, x, float(x[ARMS.index(name)] > 0))


def in_memory(threads: int, per_thread: int) -> float:
    """Decisions/s of ``threads`` threads sharing one in-memory policy."""
    policy = LinUCBPolicy(ARMS, DIM, alpha=0.5)
    _decide_and_learn(policy, _contexts(99, 200))  # warm up
    batches = [_contexts(t, per_thread) for t in range(threads)]
    workers = [
        threading.Thread(target=_decide_and_learn, args=(policy, xs)) for xs in batches
    ]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return threads * per_thread / (time.perf_counter() - start)


def _store(kind: str, target: str) -> PolicyStore:
    if kind == "sqlite":
        return SQLiteStore(target)
    return RedisStore(target)


def worker(kind: str, target: str, seed: int, n: int, blas_threads: int) -> None:
    """One worker process: wait for "go" on stdin, then decide and learn ``n`` times."""
    threadpool_limits(blas_threads)
    policy = LinUCBPolicy(
        ARMS, DIM, alpha=0.5, store=_store(kind, target), namespace=NAMESPACE
    )
    xs = _contexts(seed, n)
    print("ready", flush=True)
    sys.stdin.readline()
    _decide_and_learn(policy, xs)


def shared(
    kind: str, target: str, processes: int, per_process: int, blas_threads: int
) -> float:
    """Decisions/s of ``processes`` worker processes sharing one store."""
    LinUCBPolicy(ARMS, DIM, store=_store(kind, target), namespace=NAMESPACE)
    command = [sys.executable, __file__, "--worker", kind, target]
    workers = [
        subprocess.Popen(
            [*command, str(seed), str(per_process), str(blas_threads)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(processes)
    ]
    for w in workers:
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    start = time.perf_counter()
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in workers:
        if w.wait() != 0:
            raise RuntimeError(f"{kind} worker failed")
    return processes * per_process / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--per-thread", type=int, default=2_000)
    parser.add_argument("--per-process", type=int, default=300)
    parser.add_argument("--redis-url", help="an existing Redis server to use")
    parser.add_argument("--blas-threads", type=int, default=1)
    args = parser.parse_args()
    threadpool_limits(args.blas_threads)
    rows = [
        ("memory", f"{t} thread{'s' * (t > 1)}", in_memory(t, args.per_thread))
        for t in (1, 2, 4, 8)
    ]
    with tempfile.TemporaryDirectory() as tmp:
        started = nullcontext(args.redis_url) if args.redis_url else redis_server(tmp)
        with started as url:
            for p in (1, 4):
                path = str(Path(tmp) / f"bench{p}.db")
                rows.append(
                    (
                        "SQLite",
                        f"{p} process{'es' * (p > 1)}",
                        shared("sqlite", path, p, args.per_process, args.blas_threads),
                    )
                )
            for p in (1, 4):
                if url is not None:
                    RedisStore(url).client.flushdb()
                    rows.append(
                        (
                            "Redis",
                            f"{p} process{'es' * (p > 1)}",
                            shared(
                                "redis", url, p, args.per_process, args.blas_threads
                            ),
                        )
                    )
    if url is None:
        print("(no redis-server found: Redis rows skipped)")
    print(
        f"Rewarded decisions/s, {len(ARMS)} arms x {DIM} dims (select + update; "
        f"stores refresh every 1 s; {args.blas_threads} BLAS thread(s))\n"
    )
    print("| store | workers | decisions/s |")
    print("| --- | --- | ---: |")
    for store, workers, rate in rows:
        print(f"| {store} | {workers} | {rate:,.0f} |")


if __name__ == "__main__":
    if sys.argv[1:2] == ["--worker"]:
        kind, target, seed, n, threads = sys.argv[2:7]
        worker(kind, target, int(seed), int(n), int(threads))
    else:
        main()
