"""LinUCB math against a direct numpy reference with explicit inverses."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_metallm import LinUCBPolicy
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.decision import (
    NEWCOMER_ALPHA,
    NEWCOMER_FADE,
    Decision,
    estimates_of,
    newcomer_alpha,
    rank,
)
from langchain_metallm.core.policy import RIDGE_SLACK

ARMS = ["a", "b", "c"]


def _reference(
    xs: np.ndarray, arms: np.ndarray, rewards: np.ndarray, dim: int, ridge: float
) -> tuple[np.ndarray, np.ndarray]:
    A = np.stack([ridge * np.eye(dim) for _ in ARMS])
    b = np.zeros((len(ARMS), dim))
    for x, arm, r in zip(xs, arms, rewards, strict=True):
        A[arm] += np.outer(x, x)
        b[arm] += r * x
    return A, b


def _estimate(
    A: np.ndarray, b: np.ndarray, x: np.ndarray, alpha: float
) -> tuple[np.ndarray, np.ndarray]:
    """Each arm's predicted score and exploration bonus, by explicit inverses."""
    inv = np.linalg.inv(A)
    theta = np.einsum("kij,kj->ki", inv, b)
    return theta @ x, alpha * np.sqrt(np.einsum("i,kij,j->k", x, inv, x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_select_and_update_match_explicit_inverse(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dim, n, alpha, ridge = 12, 600, 0.7, 0.5
    policy = LinUCBPolicy(ARMS, dim, alpha=alpha, ridge=ridge)
    xs = rng.normal(size=(n, dim))
    rewards = rng.uniform(-0.5, 1.0, size=n)
    arms = np.empty(n, dtype=int)
    for i in range(n):
        names, mean, width, counts = policy.estimate(xs[i])
        bonus = alpha * width
        A_ref, b_ref = _reference(xs[:i], arms[:i], rewards[:i], dim, ridge)
        mean_ref, bonus_ref = _estimate(A_ref, b_ref, xs[i], alpha)
        assert names == tuple(ARMS)
        np.testing.assert_allclose(mean, mean_ref, rtol=0, atol=1e-9)
        np.testing.assert_allclose(bonus, bonus_ref, rtol=0, atol=1e-9)
        assert counts.tolist() == np.bincount(arms[:i], minlength=3).tolist()
        assert policy.select(xs[i]) == ARMS[int(np.argmax(mean_ref + bonus_ref))]
        arms[i] = rng.integers(len(ARMS))  # explore every arm, not only the argmax
        policy.update(int(arms[i]), xs[i], float(rewards[i]))
    A_ref, b_ref = _reference(xs, arms, rewards, dim, ridge)
    np.testing.assert_allclose(policy.A, A_ref, rtol=0, atol=1e-9)
    np.testing.assert_allclose(policy.b, b_ref, rtol=0, atol=1e-9)
    theta_ref = np.linalg.solve(A_ref, b_ref[..., None])[..., 0]
    np.testing.assert_allclose(policy.theta, theta_ref, rtol=0, atol=1e-9)
    assert policy.counts.tolist() == np.bincount(arms, minlength=3).tolist()


def test_predict_matches_select() -> None:
    rng = np.random.default_rng(5)
    policy = LinUCBPolicy(ARMS, 6, alpha=0.3)
    for _ in range(50):
        policy.update(int(rng.integers(3)), rng.normal(size=6), float(rng.uniform()))
    xs = rng.normal(size=(7, 6))
    mean, width = policy.predict(xs)
    for x, m, w in zip(xs, mean, width, strict=True):
        _, single_mean, single_width, _ = policy.estimate(x)
        np.testing.assert_allclose(single_mean, m, atol=1e-12)
        np.testing.assert_allclose(single_width, w, atol=1e-12)
        assert policy.select(x) == ARMS[int(np.argmax(m + 0.3 * w))]


def test_fit_equals_sequential_updates_and_skips_nan() -> None:
    rng = np.random.default_rng(3)
    xs = rng.normal(size=(40, 5))
    rewards = rng.uniform(size=(40, 3))
    rewards[rng.uniform(size=(40, 3)) < 0.3] = np.nan
    fitted = LinUCBPolicy(ARMS, 5)
    fitted.fit(xs, rewards)
    online = LinUCBPolicy(ARMS, 5)
    for x, row in zip(xs, rewards, strict=True):
        for arm, r in enumerate(row):
            if not np.isnan(r):
                online.update(arm, x, float(r))
    np.testing.assert_allclose(fitted.A, online.A, atol=1e-9)
    np.testing.assert_allclose(fitted.theta, online.theta, atol=1e-9)
    assert fitted.counts.tolist() == (~np.isnan(rewards)).sum(axis=0).tolist()


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.update(0, np.ones(3), 1.0), "dimension 4"),
        (lambda p: p.update(3, np.ones(4), 1.0), "out of range"),
        (lambda p: p.update(0, [np.nan, 0, 0, 0], 1.0), "NaN"),
        (lambda p: p.update(0, np.ones(4), float("inf")), "finite"),
        (lambda p: p.select(np.ones(5)), "dimension 4"),
        (lambda p: p.estimate(np.ones(5)), "dimension 4"),
        (lambda p: p.select(np.ones(4), {"a": np.nan}), "NaN"),
        (lambda p: p.fit(np.ones((2, 4)), np.ones((3, 3))), "scores"),
        (
            lambda p: p.load_statistics(np.ones((3, 4, 4)), np.zeros((3, 4)), [0] * 3),
            "positive definite|invertible",
        ),
    ],
)
def test_bad_input_leaves_state_unchanged(call, error: str) -> None:  # type: ignore[no-untyped-def]
    policy = LinUCBPolicy(ARMS, 4)
    policy.update(1, np.arange(4.0), 0.5)
    before = [a.tobytes() for a in policy.statistics()] + [policy.theta.tobytes()]
    with pytest.raises((ValueError, TypeError), match=error):
        call(policy)
    after = [a.tobytes() for a in policy.statistics()] + [policy.theta.tobytes()]
    assert before == after


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"arms": ["a", "a"], "dim": 2}, "arms"),
        ({"arms": ["a"], "dim": 0}, "dim"),
        ({"arms": ["a"], "dim": 2, "alpha": -1.0}, "alpha"),
        ({"arms": ["a"], "dim": 2, "ridge": 0.0}, "ridge"),
    ],
)
def test_constructor_validation(kwargs: dict, field: str) -> None:  # type: ignore[type-arg]
    with pytest.raises(ValueError, match=field):
        LinUCBPolicy(**kwargs)


def _steps(n: int, dim: int, seed: int = 0) -> list[tuple[int, np.ndarray, float]]:
    rng = np.random.default_rng(seed)
    return [
        (int(rng.integers(len(ARMS))), rng.normal(size=dim), float(rng.uniform()))
        for _ in range(n)
    ]


def test_penalty_is_subtracted_at_decision_time_only() -> None:
    rng = np.random.default_rng(4)
    policy = LinUCBPolicy(ARMS, 6, alpha=0.3)
    for arm, x, s in _steps(80, 6):
        policy.update(arm, x, s)
    before = [a.tobytes() for a in policy.statistics()]
    penalty = {"a": 0.0, "b": 0.2, "c": 0.9}
    cost = np.array([penalty[name] for name in ARMS])
    # The same penalties from a catalogue: unit 1 (the priciest child at build
    # time), then c's price cut to 0.9, at cost weight 1.
    catalogue = Catalogue.build({"a": 0.0, "b": 0.2, "c": 1.0}).with_costs({"c": 0.9})
    for x in rng.normal(size=(20, 6)):
        mean, width = policy.predict(x[None])
        expected = mean[0] - cost + 0.3 * width[0]
        names, predicted, widths, counts = policy.estimate(x)
        assert names == tuple(ARMS)
        np.testing.assert_allclose(predicted, mean[0], atol=1e-12)
        np.testing.assert_allclose(widths, width[0], atol=1e-12)
        np.testing.assert_allclose(
            predicted - cost + 0.3 * widths, expected, atol=1e-12
        )
        chosen = policy.select(x, penalty)
        assert chosen == ARMS[int(np.argmax(expected))]
        decision = rank(
            "run",
            catalogue,
            estimates_of(names, predicted, widths, counts, policy.alpha),
            cost_weight=1.0,
        )
        assert dict(decision.penalty) == penalty
        assert decision.chosen == chosen
        assert list(decision.order) == [ARMS[j] for j in np.argsort(-expected)]
        np.testing.assert_allclose(
            [decision.value[name] for name in ARMS], expected, atol=1e-12
        )
    assert [a.tobytes() for a in policy.statistics()] == before  # nothing learned


def test_a_penalty_is_by_arm_name_and_absent_names_pay_none() -> None:
    policy = LinUCBPolicy(ARMS, 4)
    policy.fit(np.eye(4)[:3], np.diag([0.9, 0.5, 0.1]))  # a scores best on x
    x = np.eye(4)[0]
    assert policy.select(x) == "a"
    assert policy.select(x, {"a": 0.0}) == "a"
    assert policy.select(x, {"a": 1.0}) != "a"  # a pays: another wins
    assert policy.select(x, {"b": 1.0, "c": 1.0}) == "a"  # a pays nothing


@pytest.mark.parametrize(
    "penalty",
    [{"a": 0.0, "b": np.nan, "c": 0.0}, {"c": float("inf")}, {"a": -np.inf}],
)
def test_a_bad_penalty_is_refused(penalty: dict[str, float]) -> None:
    policy = LinUCBPolicy(ARMS, 4)
    with pytest.raises(ValueError, match="penalty: contains NaN or infinity"):
        policy.select(np.ones(4), penalty)


@pytest.mark.parametrize(("decay", "steps"), [(0.99, 200), (0.9, 120), (0.5, 120)])
def test_decay_discounts_every_arm_toward_the_prior_on_each_update(
    decay: float, steps: int
) -> None:
    """The statistics follow the design formula exactly: each update, of any
    arm, discounts every arm (discounted LinUCB). Decisions use them with the
    ridge less a deficit that grows by ``(1 - decay) * ridge`` per update of the
    policy, for every arm, and is cleared before it passes the slack: by an
    exact rebuild if the arm learned since its last one, else (idle) by its
    eigendecomposition, exact at every later clock until it learns again (at
    0.99 and 0.9 the rank-1 path runs, at 0.5 every update rebuilds)."""
    dim, ridge = 5, 0.7
    policy = LinUCBPolicy(ARMS, dim, ridge=ridge, decay=decay, alpha=0.4)
    A = np.stack([ridge * np.eye(dim)] * 3)
    b = np.zeros((3, dim))
    deficit = np.zeros(3)
    hot = np.zeros(3, dtype=bool)  # learned since its last exact inverse
    idle = np.zeros(3, dtype=bool)  # kept exactly by its eigendecomposition
    rank_one = went_idle = False
    x = np.linspace(-1, 1, dim)
    for i, (arm, context, s) in enumerate(_steps(steps, dim)):
        policy.update(arm, context, s)
        A = decay * (A - ridge * np.eye(dim)) + ridge * np.eye(dim)
        A[arm] += np.outer(context, context)
        b = decay * b
        b[arm] += s * context
        others = np.arange(3) != arm
        if idle[arm]:  # exact at the update's clock, then learns without forgetting
            idle[arm] = False
        else:
            deficit[arm] = decay * deficit[arm] + (1 - decay) * ridge
            if deficit[arm] > RIDGE_SLACK * ridge:
                deficit[arm] = 0.0
        hot[arm] = True
        deficit[others & ~idle] = decay * deficit[others & ~idle] + (1 - decay) * ridge
        for k in np.flatnonzero(~idle & (deficit > RIDGE_SLACK * ridge)):
            deficit[k] = 0.0
            idle[k] = not hot[k]
            hot[k] = False
        rank_one |= bool(deficit.max() > 0)
        went_idle |= bool(idle.any())
        cached = A - deficit[:, None, None] * np.eye(dim)
        if i % 10 == 0 or i == steps - 1:
            theta = np.linalg.solve(cached, b[..., None])[..., 0]
            np.testing.assert_allclose(policy.theta, theta, rtol=1e-8, atol=1e-10)
            mean_ref, bonus_ref = _estimate(cached, b, x, 0.4)
            # ... toward the pooled mean on the last coordinate, not toward 0
            pooled = b[:, -1].sum() / (A[:, -1, -1] - ridge).sum()
            mean_ref += ridge * pooled * np.linalg.solve(cached, x)[:, -1]
            _, mean, width, _ = policy.estimate(x)
            bonus = 0.4 * width
            np.testing.assert_allclose(mean, mean_ref, atol=1e-9)
            np.testing.assert_allclose(bonus, bonus_ref, atol=1e-9)
            mean_p, width_p = policy.predict(np.stack([x, -x]))
            np.testing.assert_allclose(mean_p[0], mean_ref, atol=1e-9)
            np.testing.assert_allclose(0.4 * width_p[0], bonus_ref, atol=1e-9)
            np.testing.assert_allclose(policy.A, A, rtol=1e-10, atol=1e-10)
            np.testing.assert_allclose(policy.b, b, rtol=1e-10, atol=1e-10)
    for mine, theirs in zip(policy.statistics(), (A, b), strict=False):
        np.testing.assert_allclose(mine, theirs, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(policy.A, A, rtol=1e-10, atol=1e-10)
    assert rank_one == (decay != 0.5)
    assert went_idle == (decay != 0.99)  # at 0.99 every arm learns within 29


def test_a_child_no_longer_chosen_forgets_its_bad_stretch() -> None:
    """Under forgetting, a child that had a bad stretch and is then never
    chosen shrinks back toward the prior as the other children are updated,
    so its widening bound gets it tried again (per-child forgetting kept its
    bad stretch for ever)."""
    dim = 3
    policy = LinUCBPolicy(["good", "fallen"], dim, decay=0.95, alpha=0.5)
    x = np.array([1.0, 0.0, 1.0])
    for _ in range(40):
        policy.update("fallen", x, 0.0)  # its bad stretch
    bonus_bad = 0.5 * policy.estimate(x)[2]
    for _ in range(200):
        policy.update("good", x, 0.5)  # the others are used; it is not
    A, b, counts = policy.statistics()
    assert counts.tolist() == [200, 40]
    prior = np.eye(dim)
    assert np.abs(A[1] - prior).max() < 1e-3 * np.abs(A[0] - prior).max()
    assert np.abs(b[1]).max() == 0.0  # its scores were all 0: nothing to shrink
    _, mean, width, _ = policy.estimate(x)
    bonus = 0.5 * width
    assert bonus[1] == pytest.approx(0.5 * np.sqrt(2), rel=1e-3)  # the prior's
    assert bonus[1] > 5 * bonus_bad[1]  # uncertain again ...
    assert mean[1] + bonus[1] > mean[0] + bonus[0]  # ... so it is tried again
    np.testing.assert_allclose(policy.A[1], A[1], rtol=1e-9, atol=1e-12)


def test_decay_one_is_bit_identical_to_learning_without_forgetting() -> None:
    """The update path before decay existed: in-place BLAS rank-1 updates of
    ``A`` and ``b`` in the store, Sherman-Morrison for the cached inverse."""
    from scipy.linalg import blas

    dim = 6
    policy = LinUCBPolicy(ARMS, dim, decay=1.0)
    A = np.stack([np.eye(dim)] * 3)
    b = np.zeros((3, dim))
    a_inv = np.stack([np.eye(dim)] * 3)
    theta = np.zeros((3, dim))
    for arm, x, s in _steps(200, dim):
        policy.update(arm, x, s)
        blas.dger(1.0, x, x, a=A[arm].T, overwrite_a=True)
        u = blas.dgemv(1.0, a_inv[arm].T, x)
        scale = 1.0 / (1.0 + x @ u)
        theta[arm] += (s - u @ b[arm]) * scale * u
        blas.dger(-scale, u, u, a=a_inv[arm].T, overwrite_a=True)
        b[arm] += s * x
    stored_a, stored_b, _ = policy.statistics()
    assert stored_a.tobytes() == A.tobytes() and stored_b.tobytes() == b.tobytes()
    assert policy.theta.tobytes() == theta.tobytes()


@pytest.mark.parametrize("decay", [0.0, -0.5, 1.01, float("nan"), "0.9"])
def test_decay_outside_the_unit_interval_is_refused(decay: object) -> None:
    with pytest.raises((ValueError, TypeError), match="decay"):
        LinUCBPolicy(ARMS, 3, decay=decay)  # type: ignore[arg-type]


def test_arms_are_added_and_removed_keeping_the_others_statistics() -> None:
    policy = LinUCBPolicy(ARMS, 4)
    for arm, x, s in _steps(60, 4):
        policy.update(arm, x, s)
    A, b, counts = (a.copy() for a in policy.statistics())
    theta = policy.theta
    policy.add_arm("d")
    assert policy.arms == ("a", "b", "c", "d")
    new_a, new_b, new_counts = policy.statistics()
    assert new_a[:3].tobytes() == A.tobytes() and new_b[:3].tobytes() == b.tobytes()
    np.testing.assert_array_equal(new_a[3], np.eye(4))
    assert new_counts.tolist() == [*counts.tolist(), 0]
    assert policy.theta[:3].tobytes() == theta.tobytes()
    policy.update("d", np.ones(4), 1.0)  # by name
    policy.remove_arm("b")
    assert policy.arms == ("a", "c", "d")
    left_a, left_b, _ = policy.statistics()
    assert left_a[:2].tobytes() == A[[0, 2]].tobytes()
    assert left_b[:2].tobytes() == b[[0, 2]].tobytes()
    assert policy.counts.tolist() == [counts[0], counts[2], 1]
    x = np.linspace(-1, 1, 4)
    names, mean, width, est_counts = policy.estimate(x)
    bonus = policy.alpha * width
    assert names == ("a", "c", "d")
    assert len(mean) == len(bonus) == 3
    assert est_counts.tolist() == [counts[0], counts[2], 1]
    penalty = {"a": 0.0, "c": 0.1, "d": 0.2}
    value = mean - np.array([0.0, 0.1, 0.2]) + bonus
    assert policy.select(x, penalty) == names[int(np.argmax(value))]


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda p: p.add_arm("b"), "'b' is already one of"),
        (lambda p: p.add_arm(""), "non-empty strings"),
        (lambda p: p.add_arm("d", prior_outcomes=-1), "prior_outcomes"),
        (lambda p: p.add_arm("d", contexts=np.ones((2, 3))), r"shape \(n, 4\)"),
        (lambda p: p.remove_arm("z"), "'z' is not one of"),
        (lambda p: p.update("z", np.ones(4), 1.0), "'z' is not one of"),
    ],
)
def test_bad_catalogue_changes_leave_state_unchanged(call, error: str) -> None:  # type: ignore[no-untyped-def]
    policy = LinUCBPolicy(ARMS, 4)
    policy.update(1, np.arange(4.0), 0.5)
    before = [a.tobytes() for a in policy.statistics()] + [policy.theta.tobytes()]
    with pytest.raises(ValueError, match=error):
        call(policy)
    after = [a.tobytes() for a in policy.statistics()] + [policy.theta.tobytes()]
    assert before == after and policy.arms == tuple(ARMS)
    assert policy.store.arms(policy.namespace) == tuple(ARMS)


def test_the_last_arm_cannot_be_removed() -> None:
    policy = LinUCBPolicy(["only"], 3)
    with pytest.raises(ValueError, match="'only' is the only arm"):
        policy.remove_arm("only")
    assert policy.arms == ("only",)


def _decide(
    policy: LinUCBPolicy, catalogue: Catalogue, x: np.ndarray, cost_weight: float
) -> Decision:
    """The router's rule (``decision.rank``) on this policy's estimates for ``x``."""
    estimates = estimates_of(*policy.estimate(x), policy.alpha)
    return rank("run", catalogue, estimates, cost_weight=cost_weight)


def test_a_newcomer_explores_wider_and_the_widening_fades_with_its_outcomes() -> None:
    """A child added live (``Catalogue.newcomers``) explores at
    ``NEWCOMER_ALPHA``, fading to the router's alpha as its own outcomes come;
    never below it."""
    assert newcomer_alpha(0.1, 0) == pytest.approx(NEWCOMER_ALPHA)
    halfway = 0.1 + (NEWCOMER_ALPHA - 0.1) / 2
    assert newcomer_alpha(0.1, NEWCOMER_FADE) == pytest.approx(halfway)
    assert newcomer_alpha(0.1, 10**9) == pytest.approx(0.1, abs=1e-6)
    assert newcomer_alpha(0.5, 0) == 0.5  # never below the router's
    assert newcomer_alpha(0.0, 0) == NEWCOMER_ALPHA  # tried even when greedy
    rng = np.random.default_rng(2)
    dim = 4
    policy = LinUCBPolicy(["cheap", "good"], dim, alpha=0.1)
    xs = np.hstack([rng.normal(0, 0.1, size=(400, dim - 1)), np.ones((400, 1))])
    policy.fit(xs, np.tile([0.3, 0.8], (400, 1)))
    policy.add_arm("new", contexts=xs, prior_outcomes=20)
    plain = Catalogue.build({"cheap": 0.0, "good": 1.0, "new": 1.0})
    added = Catalogue.build({"cheap": 0.0, "good": 1.0}).with_child("new", 1.0)
    assert added.newcomers == {"new"} and not plain.newcomers
    x = xs[0]
    wide, narrow = _decide(policy, added, x, 0.0), _decide(policy, plain, x, 0.0)
    assert wide.bonus["new"] == pytest.approx(3.0 * narrow.bonus["new"])
    assert wide.bonus["good"] == narrow.bonus["good"]
    assert wide.chosen == "new"  # the prior ties it with "good"; its width wins
    for _ in range(30):  # ... and it is bad: its own outcomes speak
        policy.update("new", x, 0.0)
    decisions = [_decide(policy, added, x, 0.0) for x in xs[:50]]
    assert "new" not in [d.chosen for d in decisions]


def test_a_forgotten_child_returns_to_the_pooled_mean_and_is_tried_again() -> None:
    """With forgetting, a child broken for a stretch and then never chosen is
    predicted at the mean score of all children once its outcomes fade, not at
    0: at a fitted router's ``alpha=0.1`` its bound then beats the others and
    it is tried again (toward 0 it never was, so a repair went unseen)."""
    x = np.array([0.3, 1.0])
    policy = LinUCBPolicy(["steady", "repaired"], 2, decay=0.99, alpha=0.1)
    for _ in range(100):
        policy.update("steady", x, 0.6)
        policy.update("repaired", x, 0.9)
    for _ in range(30):
        policy.update("repaired", x, 0.0)  # broken
    mean, _ = policy.predict(x[None])
    assert mean[0, 1] < mean[0, 0]
    for _ in range(600):
        policy.update("steady", x, 0.6)  # repaired now, but not chosen
    A, b, _ = policy.statistics()
    pooled = b[:, -1].sum() / (A[:, -1, -1] - policy.ridge).sum()
    mean = policy.predict(x[None])[0]
    assert mean[0, 1] == pytest.approx(pooled, abs=0.02)
    assert abs(x @ policy.theta[1]) < 0.1  # the data part alone has faded
    assert policy.select(x) == "repaired"
    without = LinUCBPolicy(["steady", "repaired"], 2, alpha=0.1)
    without.load_statistics(*policy.statistics())
    assert without.select(x) == "steady"  # no forgetting: no pull either


def test_a_new_arm_that_is_better_is_adopted() -> None:
    rng = np.random.default_rng(3)
    dim = 4
    policy = LinUCBPolicy(["cheap", "good"], dim, alpha=0.1)
    xs = np.hstack([rng.normal(0, 0.1, size=(600, dim - 1)), np.ones((600, 1))])
    policy.fit(xs[:400], np.tile([0.3, 0.6], (400, 1)))
    policy.add_arm("new", contexts=xs[:400], prior_outcomes=10)
    catalogue = Catalogue.build({"cheap": 1.0, "good": 1.0}).with_child("new", 1.0)
    chosen = []
    for x in xs[400:]:
        decision = _decide(policy, catalogue, x, 0.0)  # no cost penalty
        chosen.append(decision.chosen)
        policy.update(
            decision.chosen,
            x,
            {"cheap": 0.3, "good": 0.6, "new": 0.9}[decision.chosen],
        )
    assert chosen[0] == "new"  # tried at once ...
    assert chosen[-100:].count("new") >= 95  # ... and adopted on its data


def test_cached_attributes_do_no_store_io() -> None:
    policy = LinUCBPolicy(ARMS, 3)
    policy.update(0, np.ones(3), 1.0)

    def down(*args: object) -> None:
        raise AssertionError("store I/O on attribute access")

    policy.store.read = down  # type: ignore[method-assign]
    policy.store.versions = down  # type: ignore[method-assign]
    assert policy.counts.tolist() == [1, 0, 0]
    np.testing.assert_allclose(policy.A[0], np.eye(3) + 1.0)
    np.testing.assert_allclose(policy.b[0], np.ones(3))
    assert policy.theta.shape == (3, 3)


def test_a_new_arm_starts_as_good_as_the_best_arm_at_each_context() -> None:
    """Each arm is best on half the contexts: the new arm's prior predicts the
    better of the two on both halves, from ``prior_outcomes`` pseudo-outcomes
    that are no real count."""
    rng = np.random.default_rng(5)
    policy = LinUCBPolicy(["a", "b"], 3)
    xs = np.hstack([rng.choice([-1.0, 1.0], size=(80, 1)), np.ones((80, 2))])
    left = xs[:, 0] < 0
    policy.fit(xs, np.where(left[:, None], [0.2, 0.9], [0.8, 0.3]))
    policy.add_arm("c", contexts=xs, prior_outcomes=10)
    A, b, counts = policy.statistics()
    best = np.where(left, 0.9, 0.8)
    np.testing.assert_allclose(A[2], np.eye(3) + xs.T @ xs / 8)
    np.testing.assert_allclose(b[2], xs.T @ (policy.theta[:2] @ xs.T).max(0) / 8)
    predicted = xs @ policy.theta[2]
    assert np.all(np.abs(predicted - best) < 0.1)  # shrunk a little by the ridge
    assert counts.tolist() == [80, 80, 0]
    width = policy.predict(xs)[1]
    assert np.all(width[:, 2] > width[:, 1])  # less data: a wider bound
