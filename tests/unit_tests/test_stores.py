"""PolicyStore backends in one process: memory and SQLite (Redis: integration)."""

from __future__ import annotations

import sqlite3
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm import LinUCBPolicy, MetaLLMRouterChatModel
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.stores import (
    MemoryStore,
    PolicyStore,
    SQLiteStore,
    namespace,
)
from langchain_metallm.core.stores.base import COMPACT_AT
from langchain_metallm.core.stores.sqlite import _use_wal

from .fakes import KeywordEmbeddings, echo_router, query
from .sequences import assert_matches, run_mixed

ARMS = ["a", "b", "c"]
DIM = 5
StoreFactory = Callable[[], PolicyStore]


@pytest.fixture(params=["memory", "sqlite"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> StoreFactory:
    """Makes store objects that all hold the same statistics, checked every call."""
    if request.param == "memory":
        shared = MemoryStore(refresh_interval=0)
        return lambda: shared
    return lambda: SQLiteStore(tmp_path / "policy.db", refresh_interval=0)


def _steps(n: int, seed: int = 0) -> list[tuple[int, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(len(ARMS))), rng.normal(size=DIM), float(rng.uniform()))
        for _ in range(n)
    ]


def _reference(steps: list[tuple[int, np.ndarray, float]]) -> LinUCBPolicy:
    policy = LinUCBPolicy(ARMS, DIM, alpha=0.5)
    for arm, x, r in steps:
        policy.update(arm, x, r)
    return policy


def _assert_same(policy: LinUCBPolicy, reference: LinUCBPolicy) -> None:
    for mine, theirs in zip(policy.statistics(), reference.statistics(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=0, atol=1e-9)
    x = np.linspace(-1, 1, DIM)
    arms, mean, width, counts = policy.estimate(x)
    ref_arms, ref_mean, ref_width, ref_counts = reference.estimate(x)
    assert arms == ref_arms
    np.testing.assert_allclose(mean, ref_mean, rtol=0, atol=1e-9)
    np.testing.assert_allclose(width, ref_width, rtol=0, atol=1e-9)
    np.testing.assert_array_equal(counts, ref_counts)
    assert policy.select(x) == reference.select(x)
    np.testing.assert_allclose(policy.theta, reference.theta, rtol=0, atol=1e-9)


def _snapshot(policy: LinUCBPolicy, x: np.ndarray) -> tuple[Any, ...]:
    """What ``policy`` decides on ``x``: its choice and every arm's estimates."""
    arms, mean, width, counts = policy.estimate(x)
    return policy.select(x), arms, mean.tobytes(), width.tobytes(), counts.tobytes()


def test_policies_sharing_a_store_learn_together(make_store: StoreFactory) -> None:
    first = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=make_store(), namespace="r")
    second = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=make_store(), namespace="r")
    steps = _steps(60)
    for i, (arm, x, r) in enumerate(steps):
        (first if i % 2 else second).update(arm, x, r)
    reference = _reference(steps)
    _assert_same(first, reference)
    _assert_same(second, reference)
    later = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=make_store(), namespace="r")
    _assert_same(later, reference)  # a worker started later sees it all


def test_refresh_waits_for_the_interval_and_reloads_stale_arms(
    tmp_path: Path,
) -> None:
    path = tmp_path / "policy.db"
    first = LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path, refresh_interval=3600))
    second = LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path, refresh_interval=3600))
    steps = _steps(2)
    first.update(0, steps[0][1], 1.0)
    theta = second.theta
    second.select(steps[0][1])
    np.testing.assert_array_equal(second.theta, theta)  # not refreshed yet
    second.update(0, steps[1][1], 0.5)  # its own update shows at once ...
    assert not np.array_equal(second.theta, theta)
    assert second.refresh()  # ... and the refresh adds the other worker's
    reference = _reference([(0, steps[0][1], 1.0), (0, steps[1][1], 0.5)])
    np.testing.assert_allclose(second.theta, reference.theta, rtol=0, atol=1e-12)
    assert not second.refresh()


def test_fit_and_load_statistics_write_through_the_store(
    make_store: StoreFactory,
) -> None:
    writer = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=make_store(), namespace="r")
    reader = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=make_store(), namespace="r")
    rng = np.random.default_rng(1)
    X, rewards = rng.normal(size=(30, DIM)), rng.uniform(size=(30, len(ARMS)))
    rewards[rng.uniform(size=rewards.shape) < 0.4] = np.nan
    writer.fit(X, rewards)
    fitted = LinUCBPolicy(ARMS, DIM, alpha=0.5)
    fitted.fit(X, rewards)
    _assert_same(reader, fitted)
    reader.load_statistics(*_reference(_steps(10)).statistics())
    _assert_same(writer, _reference(_steps(10)))


@pytest.mark.parametrize(("dim", "ridge"), [(6, 1.0), (DIM, 2.0)])
def test_a_store_of_another_layout_is_refused(
    make_store: StoreFactory, dim: int, ridge: float
) -> None:
    LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    with pytest.raises(ValueError, match=r"namespace 'r' holds dim 5, ridge 1.0"):
        LinUCBPolicy(ARMS, dim, ridge=ridge, store=make_store(), namespace="r")


def test_statistics_are_kept_per_arm_name(make_store: StoreFactory) -> None:
    first = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    for arm, x, r in _steps(30):
        first.update(arm, x, r)
    reordered = LinUCBPolicy(["c", "a"], DIM, store=make_store(), namespace="r")
    A, b, counts = first.statistics()
    for mine, theirs in zip(reordered.statistics(), (A, b, counts), strict=True):
        np.testing.assert_array_equal(mine, theirs[[2, 0]])
    assert reordered.store.arms("r") == ("a", "b", "c")


def test_namespaces_never_mix(make_store: StoreFactory) -> None:
    one = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="one")
    LinUCBPolicy(ARMS, DIM + 1, store=make_store(), namespace="two")
    one.update(1, np.ones(DIM), 1.0)
    two = LinUCBPolicy(ARMS, DIM + 1, store=make_store(), namespace="two")
    assert two.counts.tolist() == [0, 0, 0]
    np.testing.assert_array_equal(two.A, np.repeat(np.eye(DIM + 1)[None], 3, axis=0))


def test_store_refuses_an_uncreated_namespace_and_bad_settings(tmp_path: Path) -> None:
    for store in (MemoryStore(), SQLiteStore(tmp_path / "p.db")):
        with pytest.raises(ValueError, match="'nope' was not created"):
            store.read("nope", ARMS)
    with pytest.raises(ValueError, match="refresh_interval"):
        MemoryStore(refresh_interval=-1)
    with pytest.raises(TypeError, match="store: expected a PolicyStore"):
        LinUCBPolicy(ARMS, DIM, store="policy.db")  # type: ignore[arg-type]


CORRUPTIONS = {
    "A has 3 bytes": "UPDATE metallm_arm_stats SET a = x'000000'",
    "NaN or infinity": "UPDATE metallm_arm_stats SET b = ?",
    "A is not symmetric": "UPDATE metallm_arm_stats SET a = ?",
    "count -1 is not": "UPDATE metallm_arm_stats SET count = -1",
    "count 'many' is not": "UPDATE metallm_arm_stats SET count = 'many'",
    "arm 'c', version 'x'": "UPDATE metallm_arm_stats SET version = 'x' "
    "WHERE arm = 'c'",
    "a log entry has 1 bytes": "UPDATE metallm_arm_log SET entry = x'00'",
    "a log entry out of clock order": "UPDATE metallm_arm_log SET entry = ?",
    "corrupt clock": "INSERT OR REPLACE INTO metallm_clocks "
    "SELECT namespace, 0.5 FROM metallm_layouts",
    "corrupt stamp": "UPDATE metallm_arm_stats SET stamp = 'late'",
    "arms \\['z'\\] that have no row": "UPDATE metallm_arm_log SET arm = 'z'",
    "corrupt layout": "UPDATE metallm_layouts SET layout = '{\"dim\": 3}'",
    "older version that kept arms by index": "UPDATE metallm_layouts SET layout = "
    '\'{"arms": ["a", "b", "c"], "dim": 5, "ridge": 1.0}\'',
}


def _corrupt(path: Path, reason: str) -> None:
    sql = CORRUPTIONS[reason]
    params: tuple[Any, ...] = ()
    if "NaN" in reason:
        params = (np.full(DIM, np.nan).tobytes(),)
    elif "symmetric" in reason:
        bad = np.eye(DIM)
        bad[0, 1] = 5.0
        params = (bad.tobytes(),)
    elif "clock order" in reason:  # an entry written at a clock after the next
        params = (np.append(np.ones(DIM), (1.0, 2.0)).tobytes(),)
    with sqlite3.connect(path) as db:
        db.execute(sql, params)


@pytest.mark.parametrize("reason", list(CORRUPTIONS))
def test_corrupt_rows_are_refused_and_change_nothing(
    tmp_path: Path, reason: str
) -> None:
    path = tmp_path / "policy.db"
    policy = LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path, refresh_interval=0))
    rng = np.random.default_rng(0)
    policy.fit(rng.normal(size=(9, DIM)), rng.uniform(size=(9, len(ARMS))))
    policy.update(1, np.ones(DIM), 1.0)  # a snapshot row and a logged increment
    x = np.linspace(-1, 1, DIM)
    before = _snapshot(policy, x)
    _corrupt(path, reason)
    with pytest.raises(ValueError, match=reason):  # a worker starting on it
        LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path))
    if "layout" in reason or "older" in reason:
        return
    with pytest.raises(ValueError, match=reason):  # any full read
        policy.statistics()
    policy.store.refresh_interval = 3600  # no reload: the cached model is intact
    assert _snapshot(policy, x) == before


def make_router(store: PolicyStore, **overrides: Any) -> MetaLLMRouterChatModel:
    return echo_router({"cheap": 0.1, "pricey": 1.0}, store=store, **overrides)


@pytest.mark.parametrize("online", [False, None])
def test_routers_share_a_sqlite_store_by_namespace_and_store_no_prompt(
    tmp_path: Path, online: bool | None
) -> None:
    """With online clusters (the default, None) the namespace names their
    fixed fingerprint; the store holds statistics and centroids, no prompt."""
    path = tmp_path / "policy.db"
    first = make_router(SQLiteStore(path), online_clusters=online)
    secret = "math question about the zebra-secret-4711"
    for i in range(5):
        first.record_feedback(first.invoke(f"{secret} {i}"), 1.0)
    assert first.policy is not None
    tasks = None if online is False else OnlineClusters(4).fingerprint()
    assert first.policy.namespace == namespace(
        "metallm-router", KeywordEmbeddings(), tasks=tasks
    )
    second = make_router(SQLiteStore(path), online_clusters=online)
    second.invoke(query("math", 1))
    assert second.policy is not None
    assert second.policy.counts.sum() == 5
    np.testing.assert_allclose(second.policy.theta, first.policy.theta, atol=1e-12)
    other = make_router(SQLiteStore(path), name="other-router", online_clusters=online)
    other.invoke(query("math", 1))
    assert other.policy is not None and other.policy.counts.sum() == 0
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"zebra" not in files and b"cheap" in files


def test_sqlite_log_is_folded_into_the_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "policy.db"
    policy = LinUCBPolicy(ARMS, DIM, alpha=0.5, store=SQLiteStore(path))
    steps = [(0, x, r) for _, x, r in _steps(2 * COMPACT_AT + 7)]
    for arm, x, r in steps:
        policy.update(arm, x, r)
    with sqlite3.connect(path) as db:
        (logged,) = db.execute("SELECT count(*) FROM metallm_arm_log").fetchone()
    assert logged == 7
    _assert_same(policy, _reference(steps))


def test_a_failing_store_keeps_the_cached_model_serving(tmp_path: Path) -> None:
    policy = LinUCBPolicy(ARMS, DIM, store=SQLiteStore(tmp_path / "p.db"))
    policy.update(1, np.ones(DIM), 1.0)
    x = np.linspace(-1, 1, DIM)
    before = _snapshot(policy, x)

    def down(*args: object) -> None:
        raise sqlite3.OperationalError("disk I/O error")

    policy.store.versions = down  # type: ignore[method-assign]
    policy.store.add = down  # type: ignore[method-assign]
    policy.store.refresh_interval = 0
    with pytest.warns(RuntimeWarning, match="serving the cached model: disk I/O"):
        assert _snapshot(policy, x) == before
    with pytest.raises(sqlite3.OperationalError), pytest.warns(RuntimeWarning):
        policy.update(1, np.ones(DIM), 1.0)  # learning needs the store
    with pytest.warns(RuntimeWarning):
        assert _snapshot(policy, x) == before  # and the failed update changed nothing
    with pytest.raises(sqlite3.OperationalError):
        policy.refresh()  # an explicit refresh reports the failure


def test_decay_through_a_shared_store_equals_one_sequential_policy(
    make_store: StoreFactory,
) -> None:
    """Updates alternate between two workers and pass a log compaction; the
    store folds each update's forgetting factor in log order, exactly."""
    first = LinUCBPolicy(ARMS, DIM, decay=0.8, store=make_store(), namespace="r")
    second = LinUCBPolicy(ARMS, DIM, decay=0.8, store=make_store(), namespace="r")
    steps = [(0 if i % 3 else arm, x, r) for i, (arm, x, r) in enumerate(_steps(250))]
    reference = LinUCBPolicy(ARMS, DIM, decay=0.8)
    for i, (arm, x, r) in enumerate(steps):
        (first if i % 2 else second).update(arm, x, r)
        reference.update(arm, x, r)
    A, b, _ = reference.statistics()
    joined = LinUCBPolicy(ARMS, DIM, decay=0.8, store=make_store(), namespace="r")
    for policy in (first, second, joined):
        policy.refresh()
        for mine, theirs in zip(
            policy.statistics(), reference.statistics(), strict=True
        ):
            np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)
    # A policy that loads the statistics inverts them exactly (no ridge deficit).
    theta = np.linalg.solve(A, b[..., None])[..., 0]
    np.testing.assert_allclose(joined.theta, theta, atol=1e-9)


def test_threads_forgetting_equal_a_sequential_run_in_clock_order(
    tmp_path: Path,
) -> None:
    """Threads update their own arm at once through one SQLite file; every
    update forgets on every arm, so the result depends on their order: the
    clocks the store returned give that order, and replaying it in one policy
    gives the same statistics."""
    import threading

    path = tmp_path / "policy.db"
    LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path), namespace="r")
    start = threading.Barrier(len(ARMS))
    written: list[tuple[float, int, np.ndarray, float]] = []

    def work(arm: int) -> None:
        store = SQLiteStore(path)
        LinUCBPolicy(ARMS, DIM, decay=0.9, store=store, namespace="r")
        start.wait()
        for _, x, r in _steps(150, seed=arm):
            clock = store.add("r", ARMS[arm], x, r, 0.9).clock
            written.append((clock, arm, x, r))

    threads = [threading.Thread(target=work, args=(j,)) for j in range(len(ARMS))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    clocks = sorted(c for c, *_ in written)
    assert len(set(clocks)) == len(written)  # one clock per update: one order
    reference = LinUCBPolicy(ARMS, DIM, decay=0.9)
    for _, arm, x, r in sorted(written, key=lambda w: -w[0]):
        reference.update(arm, x, r)
    shared = LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path), namespace="r")
    for mine, theirs in zip(shared.statistics(), reference.statistics(), strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-9, atol=1e-9)


def test_workers_see_a_changing_catalogue(make_store: StoreFactory) -> None:
    first = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    second = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    third = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    for arm, x, r in _steps(40):
        first.update(arm, x, r)
    first.add_arm("d")
    first.update("d", np.ones(DIM), 1.0)
    assert second.store.arms("r") == ("a", "b", "c", "d")
    assert second.refresh() and second.arms == tuple(ARMS)  # it keeps its arms
    joined = LinUCBPolicy(["a", "d"], DIM, store=make_store(), namespace="r")
    assert joined.counts[1] == 1  # a worker naming "d" shares its statistics
    first.remove_arm("c")
    x = np.linspace(-1, 1, DIM)
    # A worker that decides next follows at once (its store checks every call),
    # with no warning: it drops "c" and decides among the arms left.
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert third.select(x) in ("a", "b")
    assert third.arms == ("a", "b")
    left = LinUCBPolicy(["a", "b"], DIM, store=make_store(), namespace="r")
    _assert_same(third, left)
    # A worker that has not refreshed yet: the store refuses its feedback for
    # "c", and nothing changes here.
    second.store.refresh_interval = 3600
    counts = second.counts
    with pytest.raises(ValueError, match=r"arms \['c'\] are not in namespace 'r'"):
        second.update("c", x, 1.0)
    assert second.arms == tuple(ARMS) and second.counts.tolist() == counts.tolist()
    assert second.refresh()  # its next refresh drops "c" here too
    assert second.arms == ("a", "b")
    with pytest.raises(ValueError, match=r"'c' is not one of \['a', 'b'\]"):
        second.update("c", x, 1.0)  # its feedback is refused here now
    with pytest.raises(ValueError, match=r"'c' is not one of \['a', 'b'\]"):
        second.remove_arm("c")  # nothing left to remove
    assert not second.refresh()
    assert second.store.arms("r") == ("a", "b", "d")
    for mine, theirs in zip(
        second.statistics(), (a[:2] for a in first.statistics()), strict=True
    ):
        np.testing.assert_array_equal(mine, theirs)
    _assert_same(second, left)


def test_an_arm_added_back_starts_cold_with_a_new_version(
    make_store: StoreFactory,
) -> None:
    first = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    second = LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r")
    first.update("c", np.ones(DIM), 1.0)
    second.refresh()
    assert second.counts.tolist() == [0, 0, 1]
    first.remove_arm("c")
    first.add_arm("c")
    assert second.refresh()  # a new version, though the count went back to 0
    assert second.counts.tolist() == [0, 0, 0]
    np.testing.assert_array_equal(second.A[2], np.eye(DIM))


def test_every_store_gives_the_formula_s_statistics_for_a_mixed_sequence(
    make_store: StoreFactory,
) -> None:
    """Updates at two forgetting factors by two workers, a fit, arms added,
    removed and added back, a prior, a log compaction: the store holds what
    discounted LinUCB's formula gives (every update discounts every arm; a
    merge lands where it was made, after the updates logged before it)."""
    policy, reference = run_mixed(make_store)
    assert_matches(policy, reference)
    assert policy.counts.sum() == sum(n for *_, n in reference.stats.values())


def test_a_merge_lands_after_the_decayed_updates_logged_before_it(
    make_store: StoreFactory,
) -> None:
    """A fit between forgetting updates is discounted only by the updates
    after it (a shared store used to fold it in before its logged updates)."""
    policy = LinUCBPolicy(ARMS, DIM, decay=0.5, store=make_store(), namespace="r")
    x = np.eye(DIM)[0]
    policy.update("b", x, 1.0)  # logged (not folded yet), the clock halves all
    policy.fit(x[None], np.array([[np.nan, 1.0, np.nan]]))  # b gains x x^T now
    policy.update("c", np.eye(DIM)[1], 0.0)  # every arm halves once more
    A, b, counts = policy.statistics()
    # (1 + 1) / 2: the update and the fit each halved once (folding the fit in
    # before the logged update would halve it twice: 1 + 1.5 / 2 = 1.75).
    assert A[1][0, 0] == pytest.approx(1.0 + 1.0)
    assert b[1][0] == pytest.approx(1.0)
    np.testing.assert_array_equal(A[0], np.eye(DIM))
    assert A[2][1, 1] == pytest.approx(2.0)
    assert counts.tolist() == [0, 2, 1]


def test_a_store_written_before_clocks_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path), namespace="r")
    with sqlite3.connect(path) as db:
        db.execute('UPDATE metallm_layouts SET layout = \'{"dim": 5, "ridge": 1.0}\'')
    with pytest.raises(ValueError, match="forgetting discounted only the child"):
        LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path), namespace="r")
    LinUCBPolicy(ARMS, DIM, store=SQLiteStore(path), namespace="new")  # others work


class _BusyThenFree:
    """A connection whose switch to WAL is refused ``busy`` times, as SQLite
    refuses it (without waiting) to a process racing another on a new file."""

    def __init__(self, busy: int, error: str = "database is locked") -> None:
        self.busy, self.error, self.tries = busy, error, 0

    def execute(self, sql: str) -> None:
        self.tries += 1
        if self.tries <= self.busy:
            raise sqlite3.OperationalError(self.error)


def test_opening_a_new_file_retries_a_refused_switch_to_wal() -> None:
    racing = _BusyThenFree(busy=3)
    _use_wal(racing, timeout=5.0)  # type: ignore[arg-type]
    assert racing.tries == 4
    with pytest.raises(sqlite3.OperationalError, match="locked"):
        _use_wal(_BusyThenFree(busy=10**6), timeout=0.05)  # type: ignore[arg-type]
    broken = _BusyThenFree(busy=1, error="disk I/O error")
    with pytest.raises(sqlite3.OperationalError, match="disk I/O"):
        _use_wal(broken, timeout=5.0)  # type: ignore[arg-type]
    assert broken.tries == 1  # only a lock is worth waiting for


def test_published_values_are_set_once_and_shared(make_store: StoreFactory) -> None:
    store, other = make_store(), make_store()
    assert store.published("r", "stage-0") is None
    assert store.publish("r", "stage-0", b"first") == b"first"
    assert other.publish("r", "stage-0", b"second") == b"first"  # first wins
    assert other.published("r", "stage-0") == b"first"
    assert other.published("s", "stage-0") is None  # per namespace
    with pytest.raises(TypeError, match="bytes"):
        store.publish("r", "stage-1", "text")  # type: ignore[arg-type]


def test_a_shared_level_starts_once_moves_and_stops_at_its_floor(
    make_store: StoreFactory,
) -> None:
    store, other = make_store(), make_store()
    assert store.adjust("r", "pace", 0.5, start=1.0, floor=-1.0) == 1.5
    assert other.adjust("r", "pace", 0.25, start=9.0, floor=-1.0) == 1.75  # once
    assert other.adjust("r", "pace", -5.0, start=0.0, floor=-1.0) == -1.0
    assert store.adjust("s", "pace", 0.0, start=2.0, floor=-1.0) == 2.0  # per namespace


def test_a_policy_knows_whether_it_created_its_namespace(
    make_store: StoreFactory,
) -> None:
    assert LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r").created
    assert not LinUCBPolicy(ARMS, DIM, store=make_store(), namespace="r").created
