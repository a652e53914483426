"""A fleet of never-fitted routers learning live through one store (issue 22).

Four worker processes route and reward live traffic through one SQLite file and
through one real ``redis-server``: they agree on one set of online clusters (the
first to reach a stage publishes it, the others adopt it), add the optimistic
prior once, and learn into one namespace. In a first phase all four pass 200
prompts of their own at about the same time (they race for the first stage) and
worker 0 goes on to 1,000 (it alone fits the second); in a second phase all four
serve more traffic on both stages. A worker joining afterwards adopts the
published clusters on its first call and routes each kind of query to the
better child at once.

Workers are subprocesses running this file (``python this.py worker ...``), so
nothing crosses a process boundary but the store itself.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[2]
COSTS = {"cheap": 0.1, "pricey": 1.0}
PHASES = ((1_000, 250, 250, 250), (200, 200, 200, 200))
"""Prompts each worker serves in each phase."""


def score(prompt: str, model: str) -> float:
    """The pricey child is far better at maths; both write poems as well."""
    if "math" in prompt:
        return 0.9 if model == "pricey" else 0.2
    return 0.8


def _router(kind: str, target: str) -> Any:
    sys.path.insert(0, str(ROOT))
    from langchain_metallm import MetaLLMRouterChatModel
    from langchain_metallm.core.stores import RedisStore, SQLiteStore
    from tests.unit_tests.fakes import EchoChild, KeywordEmbeddings

    store = (
        SQLiteStore(target, refresh_interval=0.05)
        if kind == "sqlite"
        else RedisStore(target, refresh_interval=0.05)
    )
    return MetaLLMRouterChatModel(
        models={name: EchoChild(name_tag=name) for name in COSTS},
        costs=COSTS,
        cost_weight=0.2,
        embeddings=KeywordEmbeddings(),
        store=store,
    )


def _stream(n: int, seed: int) -> list[str]:
    from tests.unit_tests.fakes import KINDS, query

    kinds = np.random.default_rng(seed).integers(0, 2, size=n)
    return [query(KINDS[k], seed * 100_000 + i) for i, k in enumerate(kinds)]


def _fitted(router: Any) -> list[str | None]:
    """The fingerprint of each stage the router routes on (None: not yet)."""
    return [
        None if s is None else s.fingerprint() for s in router.task_classifier.fitted
    ]


def _work(kind: str, target: str, seed: int) -> None:
    """One worker: for each phase, wait for "go" on stdin, serve its prompts
    and say "done"; then report its clusters."""
    router = _router(kind, target)
    prompts = _stream(sum(n[seed] for n in PHASES), seed)
    print("ready", flush=True)
    start = 0
    for phase in PHASES:
        sys.stdin.readline()
        for prompt in prompts[start : start + phase[seed]]:
            answer = router.invoke(prompt)
            model = answer.response_metadata["metallm"]["model"]
            router.record_feedback(answer, score(prompt, model))
        start += phase[seed]
        router.task_classifier.wait()  # a stage this worker is fitting: published
        print("done", flush=True)
    report = {"fitted": _fitted(router), "created": router.policy.created}
    print(json.dumps(report), flush=True)


def _run_fleet(kind: str, target: str) -> list[dict[str, Any]]:
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", kind, target, str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        for seed in range(len(PHASES[0]))
    ]
    for w in workers:  # all built: release them together so they interleave
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for _ in PHASES:
        for w in workers:
            assert w.stdin is not None
            w.stdin.write("go\n")
            w.stdin.flush()
        for w in workers:
            assert w.stdout is not None and w.stdout.readline().strip() == "done"
    reports = []
    for w in workers:
        assert w.stdout is not None
        reports.append(json.loads(w.stdout.readline()))
        assert w.wait(timeout=60) == 0
    return reports


@pytest.fixture(params=["sqlite", "redis"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "fleet.db")
    return "redis", request.getfixturevalue("redis_url")


def test_a_fleet_learns_on_shared_clusters_and_a_joiner_routes_at_once(
    target: tuple[str, str],
) -> None:
    kind, where = target
    reports = _run_fleet(kind, where)
    # One worker created the namespace (and added the prior); all route on the
    # same two stages, though only worker 0 saw 1,000 prompts of its own.
    assert sum(r["created"] for r in reports) == 1
    assert all(r["fitted"] == reports[0]["fitted"] for r in reports)
    assert None not in reports[0]["fitted"]
    joiner = _router(kind, where)
    joiner.invoke(_stream(1, seed=99)[0])  # its first call adopts every stage
    assert _fitted(joiner) == reports[0]["fitted"]
    assert joiner.task_classifier.seen.shape[0] == 0  # nothing left to fit
    policy = joiner.policy
    assert not policy.created
    served = sum(sum(phase) for phase in PHASES)
    assert int(policy.counts.sum()) == served  # the whole fleet's outcomes
    _, b, _ = policy.statistics()
    assert np.all(b[:, -1] > 0)
    # It routes each kind of query to the better child from its first calls:
    # pricey on maths (0.9 against 0.2), cheap on poems (0.8 both). Every
    # estimate ranks them so; the exploration bonus still tries the other
    # child now and then where it has seen little of it.
    from tests.unit_tests.fakes import query

    for kind, better in (("math", "pricey"), ("poetry", "cheap")):
        decisions = [joiner.route(query(kind, 500_000 + i)) for i in range(40)]
        for decision in decisions:
            value = {m: decision.predicted[m] - decision.penalty[m] for m in COSTS}
            assert max(value, key=value.__getitem__) == better
        chosen = [decision.chosen for decision in decisions]
        assert chosen.count(better) >= 32, chosen


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _work(sys.argv[2], sys.argv[3], int(sys.argv[4]))
