"""LinUCB math against a direct numpy reference with explicit inverses."""

from __future__ import annotations

import numpy as np
import pytest

from langchain_metallm import LinUCBPolicy

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


def _ucb(A: np.ndarray, b: np.ndarray, x: np.ndarray, alpha: float) -> np.ndarray:
    inv = np.linalg.inv(A)
    theta = np.einsum("kij,kj->ki", inv, b)
    return theta @ x + alpha * np.sqrt(np.einsum("i,kij,j->k", x, inv, x))


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_select_and_update_match_explicit_inverse(seed: int) -> None:
    rng = np.random.default_rng(seed)
    dim, n, alpha, ridge = 12, 600, 0.7, 0.5
    policy = LinUCBPolicy(ARMS, dim, alpha=alpha, ridge=ridge)
    xs = rng.normal(size=(n, dim))
    rewards = rng.uniform(-0.5, 1.0, size=n)
    arms = np.empty(n, dtype=int)
    for i in range(n):
        decision = policy.select(xs[i])
        A_ref, b_ref = _reference(xs[:i], arms[:i], rewards[:i], dim, ridge)
        expected = _ucb(A_ref, b_ref, xs[i], alpha)
        np.testing.assert_allclose(decision.ucbs, expected, rtol=0, atol=1e-9)
        assert decision.arm == int(np.argmax(expected))
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
    for x, m, w, d in zip(xs, mean, width, policy.select_many(xs), strict=True):
        single = policy.select(x)
        np.testing.assert_allclose(single.ucbs, m + 0.3 * w, atol=1e-12)
        assert d.arm == single.arm
        np.testing.assert_allclose(d.ucbs, single.ucbs, atol=1e-12)


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
