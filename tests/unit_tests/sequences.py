"""A mixed sequence of learning steps under forgetting, and the statistics it must
give by the design formula: shared by the store tests (memory and SQLite here,
Redis in the integration tests), so every backend is held to the same numbers."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from langchain_metallm import LinUCBPolicy
from langchain_metallm.core.stores import PolicyStore

DIM = 4
DECAY = 0.9
RIDGE = 0.5


State = tuple[np.ndarray, np.ndarray, int]


class Reference:
    """Discounted LinUCB statistics by the formula: every update discounts
    every arm, then adds its outcome; a merge adds its increments where it is."""

    def __init__(self, arms: list[str]) -> None:
        self.stats: dict[str, State] = {arm: self._initial() for arm in arms}

    @staticmethod
    def _initial() -> State:
        return RIDGE * np.eye(DIM), np.zeros(DIM), 0

    def update(self, arm: str, x: np.ndarray, s: float, decay: float) -> None:
        prior = RIDGE * np.eye(DIM)
        self.stats = {
            k: (decay * (a - prior) + prior, decay * b, n)
            for k, (a, b, n) in self.stats.items()
        }
        self.merge(arm, np.outer(x, x), s * x, 1)

    def merge(self, arm: str, a_inc: np.ndarray, b_inc: np.ndarray, n: int) -> None:
        a, b, count = self.stats[arm]
        self.stats[arm] = (a + a_inc, b + b_inc, count + n)

    def add_arm(self, arm: str) -> None:
        self.stats[arm] = self._initial()

    def remove_arm(self, arm: str) -> None:
        del self.stats[arm]

    def statistics(self, arms: tuple[str, ...]) -> tuple[np.ndarray, ...]:
        return tuple(np.array([self.stats[a][i] for a in arms]) for i in range(3))


def run_mixed(make_store: Callable[[], PolicyStore]) -> tuple[LinUCBPolicy, Reference]:
    """Two workers (policies on their own store objects, refreshing on every
    call) learn through updates at two forgetting factors, a fit, an arm added
    like another, one removed and added back, an optimistic prior and more
    than ``COMPACT_AT`` updates of one arm; the later one of them and the
    reference. Merges land between decayed updates, so a store that folds
    them in the wrong place fails."""
    rng = np.random.default_rng(42)
    arms = ["a", "b", "c"]
    first = LinUCBPolicy(arms, DIM, ridge=RIDGE, decay=DECAY, store=make_store())
    second = LinUCBPolicy(arms, DIM, ridge=RIDGE, decay=DECAY, store=make_store())
    ref = Reference(arms)

    def updates(n: int, names: list[str], decay: float = DECAY) -> None:
        for i in range(n):
            policy = first if i % 2 else second
            policy.decay = decay
            arm = names[int(rng.integers(len(names)))]
            x, s = rng.normal(size=DIM), float(rng.uniform())
            policy.update(arm, x, s)
            ref.update(arm, x, s, decay)

    updates(30, arms)
    X, scores = rng.normal(size=(9, DIM)), rng.uniform(size=(9, 3))
    scores[rng.uniform(size=scores.shape) < 0.3] = np.nan
    first.fit(X, scores)
    for j, arm in enumerate(arms):
        seen = ~np.isnan(scores[:, j])
        rows = X[seen]
        ref.merge(arm, rows.T @ rows, rows.T @ scores[seen, j], int(seen.sum()))
    updates(25, arms, decay=0.8)
    first.refresh()
    recent = np.vstack([X[:3], np.eye(DIM)[-1:]])
    best = (recent @ first.theta.T).max(axis=1)
    first.add_arm("d", contexts=recent, prior_outcomes=5)
    second.add_arm("d")  # joins the statistics the first worker started
    ref.add_arm("d")
    ref.merge("d", 5 / 4 * recent.T @ recent, 5 / 4 * recent.T @ best, 0)
    updates(40, ["a", "b", "c", "d"])
    second.refresh()
    second.remove_arm("b")
    ref.remove_arm("b")
    updates(130, ["c"])  # past a log compaction
    updates(20, ["a", "c", "d"])
    first.refresh()
    first.add_arm("b")  # back, cold
    second.add_arm("b")
    ref.add_arm("b")
    first.add_prior(np.ones(DIM), np.full(4, 1.0), 1.0)
    for arm in first.arms:
        ref.merge(arm, np.ones((DIM, DIM)), np.ones(DIM), 0)
    updates(30, ["a", "b", "c", "d"])
    return LinUCBPolicy(["a", "b", "c", "d"], DIM, ridge=RIDGE, store=make_store()), ref


def assert_matches(policy: LinUCBPolicy, ref: Reference) -> None:
    """The store's statistics, and the policy's view of them, are the formula's."""
    expected = ref.statistics(policy.arms)
    for mine, theirs in zip(policy.statistics(), expected, strict=True):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy.A, expected[0], rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy.b, expected[1], rtol=1e-10, atol=1e-10)
