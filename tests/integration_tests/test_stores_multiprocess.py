"""Shared stores across processes: 4 workers x 500 updates through SQLite and
through a real ``redis-server`` equal one process applying all 2,000, and their
budget pacers move one level without losing a step; and the three stores give
one another's statistics under forgetting.

Workers are subprocesses running this file (``python this.py worker ...``), so
nothing crosses a process boundary but the store itself.
"""

from __future__ import annotations

import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from langchain_metallm import LinUCBPolicy
from langchain_metallm.core.pacing import BudgetPacer
from langchain_metallm.core.stores import (
    MemoryStore,
    PolicyStore,
    RedisStore,
    SQLiteStore,
)

ARMS = ["small", "medium", "large", "huge"]
DIM = 12
WORKERS, UPDATES = 4, 500
PACED = 200
"""Calls each worker's pacer accounts (each at the priciest cost, 1)."""
NAMESPACE = "router|embedder|small|medium|large|huge"


def _steps(seed: int, n: int) -> list[tuple[int, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    arms = rng.integers(len(ARMS), size=n)
    xs = rng.normal(size=(n, DIM))
    rewards = rng.uniform(-0.2, 1.0, size=n)
    return [(int(a), x, float(r)) for a, x, r in zip(arms, xs, rewards, strict=True)]


def _store(kind: str, target: str, refresh_interval: float) -> PolicyStore:
    if kind == "sqlite":
        return SQLiteStore(target, refresh_interval=refresh_interval)
    return RedisStore(target, refresh_interval=refresh_interval)


def _work(kind: str, target: str, seed: int) -> None:
    """One worker: wait for "go" on stdin, then route and learn ``UPDATES`` times."""
    policy = LinUCBPolicy(
        ARMS, DIM, alpha=0.5, store=_store(kind, target, 0.01), namespace=NAMESPACE
    )
    print("ready", flush=True)
    sys.stdin.readline()
    for arm, x, r in _steps(seed, UPDATES):
        policy.select(x)  # reads the shared model, refreshing every 10 ms
        policy.update(arm, x, r)
    pacer = BudgetPacer(0.5)
    pacer.share(policy.store, NAMESPACE)
    for _ in range(PACED):
        pacer.observe(1.0)


def _run_workers(kind: str, target: str) -> None:
    workers = [
        subprocess.Popen(
            [sys.executable, __file__, "worker", kind, target, str(seed)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(WORKERS)
    ]
    for w in workers:  # all started: release them together so writes interleave
        assert w.stdout is not None and w.stdout.readline().strip() == "ready"
    for w in workers:
        assert w.stdin is not None
        w.stdin.write("go\n")
        w.stdin.flush()
    for w in workers:
        assert w.wait(timeout=300) == 0


def _reference() -> LinUCBPolicy:
    policy = LinUCBPolicy(ARMS, DIM, alpha=0.5)
    for seed in range(WORKERS):
        for arm, x, r in _steps(seed, UPDATES):
            policy.update(arm, x, r)
    return policy


@pytest.fixture(params=["sqlite", "redis"])
def target(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    if request.param == "sqlite":
        return "sqlite", str(tmp_path / "policy.db")
    return "redis", request.getfixturevalue("redis_url")


def test_four_processes_learn_what_one_process_learns(target: tuple[str, str]) -> None:
    kind, where = target
    _run_workers(kind, where)
    fleet = BudgetPacer(0.5)
    fleet.share(_store(kind, where, 1.0), NAMESPACE)
    # one level for the fleet: every worker's 200 steps of 0.05 * (1 - 0.5)
    assert fleet.observe(0.5) == pytest.approx(WORKERS * PACED * 0.025)
    reference = _reference()
    later = LinUCBPolicy(
        ARMS, DIM, alpha=0.5, store=_store(kind, where, 1.0), namespace=NAMESPACE
    )
    for mine, theirs in zip(later.statistics(), reference.statistics(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
    assert later.counts.sum() == WORKERS * UPDATES
    # A worker started later routes exactly as the one that learned it all.
    np.testing.assert_allclose(later.theta, reference.theta, rtol=0, atol=1e-9)
    xs = np.random.default_rng(99).normal(size=(20, DIM))
    for x in xs:
        arms, mean, width, counts = later.estimate(x)
        ref_arms, ref_mean, ref_width, ref_counts = reference.estimate(x)
        assert arms == ref_arms
        np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-9)
        np.testing.assert_allclose(width, ref_width, rtol=0, atol=1e-9)
        np.testing.assert_array_equal(counts, ref_counts)
        assert later.select(x) == reference.select(x)


def test_redis_store_refuses_other_layouts_and_corrupt_rows(redis_url: str) -> None:
    from redis import Redis

    policy = LinUCBPolicy(ARMS, DIM, store=RedisStore(redis_url), namespace="r")
    rng = np.random.default_rng(0)
    policy.fit(rng.normal(size=(9, DIM)), rng.uniform(size=(9, len(ARMS))))
    policy.update(2, np.ones(DIM), 1.0)  # a snapshot and a logged increment
    with pytest.raises(ValueError, match="holds dim"):
        LinUCBPolicy(ARMS, DIM + 1, store=RedisStore(redis_url), namespace="r")
    other = LinUCBPolicy(ARMS, DIM + 1, store=RedisStore(redis_url), namespace="s")
    assert other.counts.sum() == 0  # namespaces never mix
    client = Redis.from_url(redis_url)
    before = policy.statistics()
    for key, field, value, reason in [
        ("metallm:r:arm:large", "a", b"\x00" * 3, "A has 3 bytes"),
        ("metallm:r:arm:large", "b", np.full(DIM, np.inf).tobytes(), "NaN or infinity"),
        ("metallm:r:arm:large", "count", b"-4", "not a non-negative integer"),
        ("metallm:r:log:large", None, b"\x00", "a log entry has 1 bytes"),
    ]:
        if field is None:
            good = client.lindex(key, 0)
            client.lset(key, 0, value)
        else:
            good = client.hget(key, field)
            client.hset(key, field, value)
        with pytest.raises(ValueError, match=reason):
            LinUCBPolicy(ARMS, DIM, store=RedisStore(redis_url), namespace="r")
        with pytest.raises(ValueError, match=reason):
            policy.statistics()
        if field is None:
            client.lset(key, 0, good)  # type: ignore[arg-type]
        else:
            client.hset(key, field, good)  # type: ignore[arg-type]
    for mine, old in zip(policy.statistics(), before, strict=True):
        np.testing.assert_array_equal(mine, old)


def test_redis_store_forgets_exactly_and_follows_a_changing_catalogue(
    redis_url: str,
) -> None:
    first = LinUCBPolicy(
        ARMS, DIM, decay=0.8, store=RedisStore(redis_url, refresh_interval=0)
    )
    second = LinUCBPolicy(
        ARMS, DIM, decay=0.8, store=RedisStore(redis_url, refresh_interval=0)
    )
    reference = LinUCBPolicy(ARMS, DIM, decay=0.8)
    for i, (arm, x, r) in enumerate(_steps(7, 250)):  # passes a log compaction
        (first if i % 2 else second).update(arm % 2, x, r)
        reference.update(arm % 2, x, r)
    for mine, theirs in zip(first.statistics(), reference.statistics(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)
    first.add_arm("extra")
    first.update("extra", np.ones(DIM), 1.0)
    assert second.store.arms("default") == tuple(sorted([*ARMS, "extra"]))
    joined = LinUCBPolicy(["extra"], DIM, store=RedisStore(redis_url))
    assert joined.counts.tolist() == [1]
    third = LinUCBPolicy(ARMS, DIM, store=RedisStore(redis_url, refresh_interval=0))
    first.remove_arm("huge")
    # A worker whose store checks every call follows on its next decision,
    # with no warning: it drops "huge" and decides among the arms left.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert third.select(np.ones(DIM)) in ARMS[:3]
    assert third.arms == tuple(ARMS[:3])
    # A worker that has not refreshed yet: Redis refuses its feedback for "huge",
    # and nothing changes here.
    second.store.refresh_interval = 3600
    counts = second.counts
    with pytest.raises(ValueError, match=r"arms \['huge'\] are not in namespace"):
        second.update("huge", np.ones(DIM), 1.0)
    assert second.arms == tuple(ARMS) and second.counts.tolist() == counts.tolist()
    assert second.refresh()  # its next refresh drops "huge" here too
    assert second.arms == tuple(ARMS[:3])
    with pytest.raises(ValueError, match="'huge' is not one of"):
        second.update("huge", np.ones(DIM), 1.0)
    with pytest.raises(ValueError, match="'huge' is not one of"):
        second.remove_arm("huge")
    assert not second.refresh()


def test_memory_sqlite_and_redis_give_identical_statistics_under_forgetting(
    redis_url: str, tmp_path: Path
) -> None:
    """One mixed sequence (two workers, decay 0.9 and 0.8, a fit, arms added,
    removed and added back, a prior, a log compaction) through each store:
    each holds the formula's statistics, and the three agree to rounding."""
    from ..unit_tests.sequences import assert_matches, run_mixed  # not in workers

    shared = MemoryStore(refresh_interval=0)
    makers: dict[str, Callable[[], PolicyStore]] = {
        "memory": lambda: shared,
        "sqlite": lambda: SQLiteStore(tmp_path / "p.db", refresh_interval=0),
        "redis": lambda: RedisStore(redis_url, refresh_interval=0),
    }
    results = {}
    for kind, make in makers.items():
        policy, reference = run_mixed(make)
        assert_matches(policy, reference)
        results[kind] = policy.statistics()
    for kind in ("sqlite", "redis"):
        for mine, theirs in zip(results[kind], results["memory"], strict=True):
            np.testing.assert_allclose(mine, theirs, rtol=1e-12, atol=1e-12)


def test_redis_publishes_once_and_refuses_a_corrupt_clock(redis_url: str) -> None:
    from redis import Redis

    store, other = RedisStore(redis_url), RedisStore(redis_url)
    assert store.published("r", "stage-0") is None
    assert store.publish("r", "stage-0", b"first") == b"first"
    assert other.publish("r", "stage-0", b"second") == b"first"
    assert LinUCBPolicy(ARMS, DIM, store=store, namespace="r").created
    policy = LinUCBPolicy(ARMS, DIM, decay=0.9, store=other, namespace="r")
    assert not policy.created
    rng = np.random.default_rng(0)
    policy.fit(rng.normal(size=(9, DIM)), rng.uniform(size=(9, len(ARMS))))
    policy.update("small", np.ones(DIM), 1.0)  # a snapshot and a logged update
    client = Redis.from_url(redis_url)
    for key, field, value, reason in [
        ("metallm:r:clock", None, b"soon", "corrupt clock"),
        ("metallm:r:clock", None, b"0.5", "corrupt clock"),
        ("metallm:r:arm:small", "stamp", b"late", "corrupt stamp"),
    ]:
        good = client.get(key) if field is None else client.hget(key, field)
        if field is None:
            client.set(key, value)
        else:
            client.hset(key, field, value)
        with pytest.raises(ValueError, match=reason):
            LinUCBPolicy(ARMS, DIM, store=RedisStore(redis_url), namespace="r")
        if field is None:
            client.set(key, good)  # type: ignore[arg-type]
        else:
            client.hset(key, field, good)  # type: ignore[arg-type]
        if "stamp" in reason:
            continue
        with pytest.raises(ValueError, match=reason):  # the update is refused
            client.set(key, value)
            policy.update("small", np.ones(DIM), 1.0)
        client.set(key, good)  # type: ignore[arg-type]


if __name__ == "__main__" and sys.argv[1:2] == ["worker"]:
    _work(sys.argv[2], sys.argv[3], int(sys.argv[4]))
