"""LinUCB contextual bandit over query embeddings, in plain numpy (no LangChain).

One ridge regression per arm (MetaLLM): ``A_j = ridge * I + sum x x^T`` and
``b_j = sum r x`` are the source of truth and live in a ``PolicyStore`` (memory by
default; SQLite or Redis to learn with other processes). ``A_j^-1`` and
``theta_j`` are this process's caches, kept current by Sherman-Morrison for its
own updates (O(d^2), no inversion) and rebuilt for arms other writers changed.
"""

from __future__ import annotations

import threading
import time
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, lapack

from langchain_metallm.stores.base import PolicyStore
from langchain_metallm.stores.memory import MemoryStore

FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class RouteDecision:
    """Which arm LinUCB picks for one query, and why.

    ``expected_reward`` is ``x^T theta`` of the chosen arm and ``ucb`` adds the
    exploration bonus ``alpha * sqrt(x^T A^-1 x)``; ``ucbs`` holds every arm's
    bound so callers can fall back to the next-best arm.
    """

    arm: int
    model: str
    expected_reward: float
    ucb: float
    ucbs: tuple[float, ...]

    def ranking(self) -> list[int]:
        """Arms from best to worst upper confidence bound."""
        return sorted(range(len(self.ucbs)), key=lambda j: -self.ucbs[j])


class LinUCBPolicy:
    """Disjoint LinUCB: ``argmax_j x^T theta_j + alpha * sqrt(x^T A_j^-1 x)``.

    Thread-safe: ``select`` and ``update`` may be called from many threads. With
    a shared ``store``, policies in other processes bound to the same
    ``namespace`` learn together: each update is written to the store at once,
    and arms others changed are reloaded every ``store.refresh_interval`` seconds.
    """

    def __init__(
        self,
        arms: Sequence[str],
        dim: int,
        *,
        alpha: float = 0.1,
        ridge: float = 1.0,
        store: PolicyStore | None = None,
        namespace: str = "default",
    ) -> None:
        names = list(arms)
        if len(names) < 1:
            raise ValueError("arms: at least one arm is required")
        if len(set(names)) != len(names):
            raise ValueError(f"arms: names must be unique, got {names}")
        if not isinstance(dim, int) or dim < 1:
            raise ValueError(f"dim: must be a positive integer, got {dim!r}")
        _check_non_negative("alpha", alpha)
        if not np.isfinite(ridge) or ridge <= 0:
            raise ValueError(f"ridge: must be > 0, got {ridge!r}")
        if store is not None and not isinstance(store, PolicyStore):
            raise TypeError(
                f"store: expected a PolicyStore, got {type(store).__name__}"
            )
        self.arms: tuple[str, ...] = tuple(names)
        self.dim = dim
        self.alpha = float(alpha)
        self.ridge = float(ridge)
        self.store: PolicyStore = MemoryStore() if store is None else store
        self.namespace = namespace
        self.store.create(namespace, self.arms, dim, self.ridge)
        k = len(names)
        self._b: FloatArray = np.zeros((k, dim))
        self._A_inv: FloatArray = np.repeat(np.eye(dim)[None] / self.ridge, k, axis=0)
        self._theta: FloatArray = np.zeros((k, dim))
        self._versions = np.zeros(k, dtype=np.int64)
        self._checked_at = -np.inf
        self._lock = threading.RLock()
        self.refresh()

    @property
    def n_arms(self) -> int:
        """Number of arms."""
        return len(self.arms)

    @property
    def counts(self) -> NDArray[np.int64]:
        """How many rewards each arm has learned from, as the store has it."""
        return self.statistics()[2]

    @property
    def A(self) -> FloatArray:  # noqa: N802 - the paper's name
        """Per-arm ``ridge * I + sum x x^T``, shape (arms, dim, dim), from the store."""
        return self.statistics()[0]

    @property
    def b(self) -> FloatArray:
        """Per-arm ``sum r x``, shape (arms, dim), from the store."""
        return self.statistics()[1]

    @property
    def theta(self) -> FloatArray:
        """Per-arm ridge coefficients ``A^-1 b`` as this policy last saw them
        (a copy), shape (arms, dim)."""
        with self._lock:
            theta_copy: FloatArray = self._theta.copy()
            return theta_copy

    def check_context(self, x: ArrayLike) -> FloatArray:
        """Return ``x`` as a finite float64 vector of this policy's dimension."""
        vec = np.asarray(x, dtype=np.float64)
        if vec.shape != (self.dim,):
            raise ValueError(
                f"context: expected a vector of dimension {self.dim}, "
                f"got shape {vec.shape}"
            )
        if not np.all(np.isfinite(vec)):
            raise ValueError("context: contains NaN or infinity")
        return vec

    def predict(self, X: ArrayLike) -> tuple[FloatArray, FloatArray]:  # noqa: N803
        """Expected reward and confidence width per query and arm, each (n, arms)."""
        ctx = self._check_matrix(X)
        with self._lock:
            self._maybe_refresh()
            mean = ctx @ self._theta.T
            quad = np.stack([((ctx @ a) * ctx).sum(axis=1) for a in self._A_inv], 1)
            width = np.sqrt(np.maximum(quad, 0.0))
        return mean, width

    def select(self, x: ArrayLike) -> RouteDecision:
        """Pick the arm with the highest upper confidence bound for context ``x``."""
        vec = self.check_context(x)
        k, d = self._A_inv.shape[:2]
        with self._lock:
            self._maybe_refresh()
            mean = np.einsum("ki,i->k", self._theta, vec)
            proj = blas.dgemv(1.0, self._A_inv.reshape(k * d, d).T, vec, trans=1)
            quad = np.einsum("ki,i->k", proj.reshape(k, d), vec)
        return self._decide(mean, np.sqrt(np.maximum(quad, 0.0)))

    def select_many(self, X: ArrayLike) -> list[RouteDecision]:  # noqa: N803
        """``select`` for each row of ``X``, vectorised."""
        mean, width = self.predict(X)
        return [self._decide(m, w) for m, w in zip(mean, width, strict=True)]

    def update(self, arm: int, x: ArrayLike, reward: float) -> None:
        """Learn that ``arm`` earned ``reward`` on context ``x``.

        ``A += x x^T``, ``b += r x`` in the store; the cached inverse and ``theta``
        follow by Sherman-Morrison. Rank-1 updates run in place through scipy's BLAS
        (symmetric matrices, so the transpose is the Fortran-ordered view ``dger``
        writes to). If the store fails, nothing changes here.
        """
        self._check_arm(arm)
        vec = self.check_context(x)
        r = _check_finite("reward", reward)
        with self._lock:
            self._maybe_refresh()
            version = self.store.add(self.namespace, int(arm), vec, r)
            a_inv = self._A_inv[arm]
            u = blas.dgemv(1.0, a_inv.T, vec)
            scale = 1.0 / (1.0 + vec @ u)
            b = self._b[arm]
            # theta' = A'^-1 (b + r x) with A'^-1 x = scale * u: O(d), no d^2 product.
            self._theta[arm] += (r - u @ b) * scale * u
            blas.dger(-scale, u, u, a=a_inv.T, overwrite_a=True)
            b += r * vec
            if version == self._versions[arm] + 1:
                self._versions[arm] = version
            # else another writer changed this arm too: the next refresh reloads it.

    def fit(self, X: ArrayLike, rewards: ArrayLike) -> None:  # noqa: N803
        """Warm start from recorded outcomes: the same ``A`` and ``b`` as one
        ``update`` per observed (row, arm), in one pass.

        ``rewards`` has shape (n, arms); NaN means "not observed" and leaves that
        arm untouched for that row.
        """
        ctx = self._check_matrix(X)
        r = np.asarray(rewards, dtype=np.float64)
        if r.shape != (ctx.shape[0], self.n_arms):
            raise ValueError(
                f"rewards: expected shape ({ctx.shape[0]}, {self.n_arms}), "
                f"got {r.shape}"
            )
        if np.any(np.isinf(r)):
            raise ValueError("rewards: contain infinity")
        observed = ~np.isnan(r)
        A = np.zeros((self.n_arms, self.dim, self.dim))  # noqa: N806
        b = np.zeros((self.n_arms, self.dim))
        for arm in range(self.n_arms):
            rows = ctx[observed[:, arm]]
            A[arm] = rows.T @ rows
            b[arm] = rows.T @ r[observed[:, arm], arm]
        with self._lock:
            self.store.merge(self.namespace, A, b, observed.sum(axis=0))
            self.refresh()

    def refresh(self) -> bool:
        """Reload from the store the arms another writer changed; True if any.

        Runs on its own every ``store.refresh_interval`` seconds; an arm's inverse
        is rebuilt from the store's ``A`` and ``b`` only when its version moved.
        """
        with self._lock:
            if np.array_equal(self.store.versions(self.namespace), self._versions):
                self._checked_at = time.monotonic()
                return False
            stats = self.store.read(self.namespace)
            changed = np.flatnonzero(stats.versions != self._versions)
            self._install(
                changed, _inverse(stats.A[changed]), stats.b[changed], stats.versions
            )
            self._checked_at = time.monotonic()
            return True

    def statistics(self) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
        """The sufficient statistics ``(A, b, counts)``, read at once from the store."""
        stats = self.store.read(self.namespace)
        return stats.A, stats.b, stats.counts

    def load_statistics(
        self,
        A: ArrayLike,  # noqa: N803
        b: ArrayLike,
        counts: ArrayLike,
    ) -> None:
        """Replace the learned state with ``(A, b, counts)``; caches are rebuilt."""
        k, d = self.n_arms, self.dim
        a_mat = np.array(A, dtype=np.float64)
        b_vec = np.array(b, dtype=np.float64)
        n = np.array(counts, dtype=np.int64)
        for name, arr, shape in (("A", a_mat, (k, d, d)), ("b", b_vec, (k, d))):
            if arr.shape != shape:
                raise ValueError(f"{name}: expected shape {shape}, got {arr.shape}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"{name}: contains NaN or infinity")
        if n.shape != (k,) or np.any(n < 0):
            raise ValueError(f"counts: expected {k} non-negative integers, got {n}")
        if not np.allclose(a_mat, a_mat.transpose(0, 2, 1), rtol=0, atol=1e-8):
            raise ValueError("A: must be symmetric")
        a_inv = _inverse(a_mat)
        with self._lock:
            versions = self.store.replace(self.namespace, a_mat, b_vec, n)
            self._install(np.arange(k), a_inv, b_vec, np.array(versions))

    def _install(
        self,
        arms: NDArray[np.intp],
        a_inv: FloatArray,
        b: FloatArray,
        versions: NDArray[np.int64],
    ) -> None:
        """Set the caches of ``arms`` from their inverses and ``b`` (in place, so
        the arrays stay contiguous for BLAS), and the versions they reflect."""
        self._A_inv[arms] = a_inv
        self._b[arms] = b
        self._theta[arms] = np.einsum("kij,kj->ki", a_inv, b)
        self._versions[arms] = versions[arms]

    def _maybe_refresh(self) -> None:
        """Refresh once the interval has passed. If the store fails (down,
        corrupt), warn and keep serving the cached model until the next one."""
        if time.monotonic() - self._checked_at < self.store.refresh_interval:
            return
        try:
            self.refresh()
        except Exception as exc:  # any store failure: stay available
            self._checked_at = time.monotonic()
            warnings.warn(
                f"store refresh failed, serving the cached model: {exc}",
                RuntimeWarning,
                stacklevel=3,
            )

    def _decide(self, mean: FloatArray, width: FloatArray) -> RouteDecision:
        ucb = mean + self.alpha * width
        arm = int(np.argmax(ucb))
        return RouteDecision(
            arm=arm,
            model=self.arms[arm],
            expected_reward=float(mean[arm]),
            ucb=float(ucb[arm]),
            ucbs=tuple(float(u) for u in ucb),
        )

    def _check_arm(self, arm: int) -> None:
        if isinstance(arm, bool) or not isinstance(arm, (int, np.integer)):
            raise TypeError(f"arm: expected an integer index, got {arm!r}")
        if not 0 <= arm < self.n_arms:
            raise ValueError(f"arm: {arm} is out of range for {self.n_arms} arms")

    def _check_matrix(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        mat = np.asarray(X, dtype=np.float64)
        if mat.ndim != 2 or mat.shape[1] != self.dim:
            raise ValueError(
                f"contexts: expected shape (n, {self.dim}), got {mat.shape}"
            )
        if not np.all(np.isfinite(mat)):
            raise ValueError("contexts: contain NaN or infinity")
        return mat


def _inverse(A: FloatArray) -> FloatArray:  # noqa: N803
    """Inverses of a stack of symmetric matrices, by Cholesky in scipy's LAPACK
    (the hot path's library); ``ValueError`` unless each is positive definite."""
    out = np.empty_like(A)
    for i, a in enumerate(A):
        factor, info = lapack.dpotrf(a, lower=False, clean=False)
        if info == 0:
            upper, info = lapack.dpotri(factor, lower=False)
        if info != 0:
            raise ValueError("A: must be positive definite")
        out[i] = np.triu(upper) + np.triu(upper, 1).T
    return out


def _check_finite(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.number)):
        raise TypeError(f"{name}: expected a number, got {type(value).__name__}")
    if not np.isfinite(value):
        raise ValueError(f"{name}: must be finite, got {value!r}")
    return float(value)


def _check_non_negative(name: str, value: float) -> float:
    number = _check_finite(name, value)
    if number < 0:
        raise ValueError(f"{name}: must be >= 0, got {value!r}")
    return number
