"""LinUCB contextual bandit over query embeddings, in plain numpy (no LangChain).

One ridge regression per arm (MetaLLM) predicts the arm's SCORE (answer quality):
``A_j = ridge * I + sum x x^T`` and ``b_j = sum s x`` are the source of truth and
live in a ``PolicyStore`` keyed by arm name (memory by default; SQLite or Redis to
learn with other processes). Cost enters only when deciding: each call may pass a
per-arm penalty (cost weight times normalised cost), so changing prices, weights
or budgets needs no relearning. ``A_j^-1`` and ``theta_j`` are this process's
caches, kept current by Sherman-Morrison for its own updates (O(d^2), no
inversion) and rebuilt for arms other writers changed.

Forgetting (``decay`` g < 1) is discounted LinUCB: every update, of any arm,
discounts EVERY arm toward its prior, ``A <- g (A - ridge I) + ridge I``, ``b
<- g b``, before the updated arm adds ``x x^T`` and ``s x``. A child that stops
being chosen thus forgets its old outcomes as the others are used, and its
widening bound lets it be tried again (a per-arm discount, applied only when the
arm itself is updated, would keep an abandoned child's bad stretch forever).
What it forgets toward is the pooled mean score of all arms, not 0: with
forgetting, predictions are ridge regressions toward ``m e`` (``e`` the bias,
``m`` the discounted mean score over every arm), ``x^T theta + ridge * m * x^T
A^-1 e``, so a forgotten child looks uncertain and average, and is tried again,
instead of looking worthless (it then never won back its share after a repair).
``theta`` and the store hold the data part only. The
store keeps a namespace clock ``L = sum log g`` and each arm as of its stamp
(``stores.base``); this cache does the same: arm ``k`` is cached as of stamp
``L_k`` and read at the policy's clock ``L`` through ``f_k = exp(L - L_k)``, so
discounting every arm is O(1) (the clock moves) and an update stays rank-1.

No rank-1 formula follows the shift of the ridge back toward the prior, so the
cached inverse is of ``C = A - delta I`` with a ridge deficit ``delta``: read at
``f``, ``f C = A(L) - (f delta + (1 - f) ridge) I``, so the inverse is ``C^-1 /
f`` and ``theta = C^-1 b`` does not change; an update follows ``C <- f C + x
x^T`` by Sherman-Morrison on ``C^-1 / f``. Once an arm's deficit would pass
``RIDGE_SLACK * ridge`` its inverse is rebuilt exactly from ``A`` (O(d^3)).
Decisions thus use the exact statistics with a ridge between ``(1 -
RIDGE_SLACK) * ridge`` and ``ridge``. An arm whose deficit passes the slack
although it learned nothing since its last exact inverse is idle: its statistics
only shrink toward the prior, ``A(f) = f M + ridge I`` for a fixed ``M``, so it is
kept instead as the eigendecomposition ``M = V diag(lam) V^T`` (one ``eigh``),
exact at every later clock in O(d^2) per estimate (``x^T A^-1 x = sum (V^T
x)^2 / (f lam + ridge)``) with no further work per update, until it learns again
(one exact inverse). So each update costs O(d^2), plus one O(d^3) rebuild per
``log(1 - RIDGE_SLACK) / log(g)`` namespace updates (29 at g = 0.99) for each arm
that keeps learning, and nothing extra without forgetting.
"""

from __future__ import annotations

import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.linalg import blas, eigh, lapack

from langchain_metallm.core.stores.base import PolicyStore
from langchain_metallm.core.stores.memory import MemoryStore

FloatArray = NDArray[np.float64]


SCORE_MAX = 1.0
"""The highest score an answer can get (priors are checked against it)."""
RIDGE_SLACK = 0.25
"""With forgetting, the largest fraction of the ridge a cached inverse may lack
before it is rebuilt exactly (see the module docstring)."""


class LinUCBPolicy:
    """Disjoint LinUCB on scores: ``argmax_j x^T theta_j - penalty_j + alpha *
    sqrt(x^T A_j^-1 x)``.

    ``decay`` in (0, 1] forgets: each update, of any arm, first discounts every
    arm's statistics toward the prior (``A <- decay (A - ridge I) + ridge I``,
    ``b <- decay b``); 1.0 never forgets. Arms can be added and removed on a live
    policy; every other arm keeps its statistics. Thread-safe: ``estimate`` and
    ``update`` may be called from many threads. With a shared ``store``,
    policies in other processes bound to the same ``namespace`` learn together:
    each update is written to the store at once, and arms others changed are
    reloaded every ``store.refresh_interval`` seconds.
    """

    def __init__(
        self,
        arms: Sequence[str],
        dim: int,
        *,
        alpha: float = 0.1,
        ridge: float = 1.0,
        decay: float = 1.0,
        store: PolicyStore | None = None,
        namespace: str = "default",
    ) -> None:
        names = list(arms)
        if len(names) < 1:
            raise ValueError("arms: at least one arm is required")
        if len(set(names)) != len(names):
            raise ValueError(f"arms: names must be unique, got {names}")
        for name in names:
            _check_name(name)
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
        self.decay = check_decay(decay)
        self.store: PolicyStore = MemoryStore() if store is None else store
        self.namespace = namespace
        self.created = self.store.create(namespace, self.arms, dim, self.ridge)
        """Whether this policy created its namespace in the store (one worker
        of a fleet does: the one that adds a prior)."""
        k = len(names)
        self._A: FloatArray = np.repeat(np.eye(dim)[None] * self.ridge, k, axis=0)
        self._A_inv: FloatArray = np.repeat(np.eye(dim)[None] / self.ridge, k, axis=0)
        self._b: FloatArray = np.zeros((k, dim))
        self._theta: FloatArray = np.zeros((k, dim))
        self._counts = np.zeros(k, dtype=np.int64)
        self._versions = np.zeros(k, dtype=np.int64)
        self._written = np.zeros(k, dtype=np.int64)  # latest own write applied
        self._deficit: FloatArray = np.zeros(k)
        self._stamps: FloatArray = np.zeros(k)
        self._clock = 0.0
        # Idle arms kept exactly: V^T in _A_inv, eigenvalues of A - ridge I, V^T b.
        self._eig = np.zeros(k, dtype=bool)
        self._lam: FloatArray = np.zeros((k, dim))
        self._vb: FloatArray = np.zeros((k, dim))
        self._hot = np.zeros(k, dtype=bool)  # learned since its last exact inverse
        self._checked_at = -np.inf
        self._lock = threading.RLock()
        self.refresh()

    @property
    def n_arms(self) -> int:
        """Number of arms."""
        return len(self.arms)

    @property
    def counts(self) -> NDArray[np.int64]:
        """How many outcomes each arm has learned from, as this policy last saw
        them (a copy; no store I/O: ``statistics()`` reads the store)."""
        with self._lock:
            counts: NDArray[np.int64] = self._counts.copy()
            return counts

    @property
    def A(self) -> FloatArray:  # noqa: N802 - the paper's name
        """Per-arm ``ridge * I + sum x x^T`` (discounted) as this policy last
        saw them (a copy), shape (arms, dim, dim)."""
        with self._lock:
            factors = self._factors()
            a_copy: FloatArray = self._A.copy()
            for j in np.flatnonzero(factors != 1.0):
                a_copy[j] *= factors[j]
                a_copy[j][np.diag_indices(self.dim)] += (1.0 - factors[j]) * self.ridge
            return a_copy

    @property
    def b(self) -> FloatArray:
        """Per-arm ``sum s x`` (discounted) as this policy last saw them (a
        copy), shape (arms, dim)."""
        with self._lock:
            b_copy: FloatArray = self._b * self._factors()[:, None]
            return b_copy

    def best_mean(self) -> str | None:
        """The arm with the best mean learned score, or None before any outcome.

        Contexts end in the bias 1, so ``b``'s last entry sums an arm's scores
        and ``A``'s last diagonal entry less the ridge counts them, both
        discounted alike under forgetting (by the same factor, so the cache's
        stamps do not matter) and both holding the same prior: their ratio is
        the arm's (decayed) mean score.
        """
        with self._lock:
            self._maybe_refresh()
            counts = self._counts.copy()
            sums = self._b[:, -1].copy()
            weights = self._A[:, -1, -1] - self.ridge
        if counts.sum() == 0:
            return None
        learned = (counts > 0) & (weights > 0)
        means = np.where(learned, sums / np.where(learned, weights, 1.0), -np.inf)
        return self.arms[int(np.argmax(means))]

    @property
    def theta(self) -> FloatArray:
        """Per-arm ridge coefficients ``A^-1 b`` as this policy last saw them
        (a copy), shape (arms, dim); with forgetting ``(A - delta I)^-1 b``,
        ``delta <= RIDGE_SLACK * ridge`` (see the module docstring)."""
        with self._lock:
            theta_copy: FloatArray = self._theta.copy()
            factors = self._factors()
            for j in np.flatnonzero(self._eig).tolist():
                theta_copy[j] = self._A_inv[j].T @ self._weights(j, factors[j])
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
        """Expected score and confidence width per query and arm, each (n, arms)."""
        ctx = self._check_matrix(X)
        with self._lock:
            self._maybe_refresh()
            return self._predict(ctx)

    def estimate(
        self, x: ArrayLike
    ) -> tuple[tuple[str, ...], FloatArray, FloatArray, NDArray[np.int64]]:
        """For context ``x``, at one instant: the arms, each arm's predicted
        score ``x^T theta``, confidence width ``sqrt(x^T A^-1 x)`` (its bonus
        is ``alpha`` times it) and outcome count (a decision is made from
        these, by name)."""
        vec = self.check_context(x)
        self._maybe_refresh()
        with self._lock:
            k, d = self._A_inv.shape[:2]
            mean = np.einsum("ki,i->k", self._theta, vec)
            proj = blas.dgemv(1.0, self._A_inv.reshape(k * d, d).T, vec, trans=1)
            factors = self._factors()
            quad = np.einsum("ki,i->k", proj.reshape(k, d), vec) / factors
            toward = proj.reshape(k, d)[:, -1] / factors  # x^T A^-1 e
            for j in np.flatnonzero(
                self._eig
            ).tolist():  # idle arms: exact (module docstring)
                z = proj[j * d : (j + 1) * d]
                f = factors[j]
                inverse = 1.0 / (f * self._lam[j] + self.ridge)
                quad[j] = (z * z) @ inverse
                mean[j] = z @ self._weights(j, f)
                toward[j] = z @ (self._A_inv[j][:, -1] * inverse)
            mean += self._pull(factors) * toward
            width = np.sqrt(np.maximum(quad, 0.0))
            return self.arms, mean, width, self._counts.copy()

    def select(self, x: ArrayLike, penalty: Mapping[str, float] | None = None) -> str:
        """The arm with the highest ``x^T theta - penalty + bonus`` for context
        ``x`` (``penalty`` by arm name, e.g. cost weight times cost; absent
        names pay none). The router decides with ``decision.rank`` instead,
        which adds its other rules to the same estimates."""
        if penalty is not None and not isinstance(penalty, Mapping):
            raise TypeError(
                f"penalty: expected a mapping of arm name -> penalty, got {penalty!r}"
            )
        arms, mean, width, _ = self.estimate(x)
        cost = np.array([0.0 if penalty is None else penalty.get(a, 0.0) for a in arms])
        if not np.all(np.isfinite(cost)):
            raise ValueError("penalty: contains NaN or infinity")
        return arms[int(np.argmax(mean - cost + self.alpha * width))]

    def update(self, arm: int | str, x: ArrayLike, score: float) -> None:
        """Learn that ``arm`` (index or name) scored ``score`` on context ``x``.

        In the store every arm is discounted (``A <- decay (A - ridge I) + ridge
        I``, ``b <- decay b``: the namespace clock moves), then ``A <- A + x
        x^T``, ``b <- b + s x`` for ``arm``. Without forgetting the cached
        inverse and ``theta`` follow by Sherman-Morrison: rank-1 updates in place
        through scipy's BLAS (symmetric matrices, so the transpose is the
        Fortran-ordered view ``dger`` writes to); with it too, up to a bounded
        ridge deficit (see the module docstring). If the store fails, nothing
        changes here.
        """
        vec = self.check_context(x)
        s = _check_finite("score", score)
        self._maybe_refresh()
        name = self.arms[self._index(arm)]
        written = self.store.add(self.namespace, name, vec, s, self.decay)  # no lock
        with self._lock:
            if name not in self.arms:
                return  # removed meanwhile: its statistics went with it
            j = self.arms.index(name)
            if written.version <= self._versions[j]:
                self._advance(written.clock)  # a refresh already loaded this write
                return
            factor = min(1.0, math.exp(written.clock - self._stamps[j]))
            if self._eig[j]:  # idle until now: exact at the update's clock first
                self._rebuild(np.array([j]), np.array([factor]), written.clock)
                factor = 1.0
            if factor == 1.0:
                self._learn(j, vec, s)
            else:
                self._forget_and_learn(j, vec, s, factor)
            self._stamps[j] = written.clock
            self._hot[j] = True
            self._written[j] = max(self._written[j], written.version)
            self._counts[j] += 1
            if written.version == self._versions[j] + 1:
                self._versions[j] = written.version
            # else another writer changed this arm too: the next refresh reloads it.
            self._advance(written.clock)

    def fit(self, X: ArrayLike, scores: ArrayLike) -> None:  # noqa: N803
        """Warm start from recorded outcomes: the same ``A`` and ``b`` as one
        ``update`` per observed (row, arm) without forgetting, in one pass.

        ``scores`` has shape (n, arms); NaN means "not observed" and leaves that
        arm untouched for that row.
        """
        ctx = self._check_matrix(X)
        s = np.asarray(scores, dtype=np.float64)
        with self._lock:
            if s.shape != (ctx.shape[0], self.n_arms):
                raise ValueError(
                    f"scores: expected shape ({ctx.shape[0]}, {self.n_arms}), "
                    f"got {s.shape}"
                )
            if np.any(np.isinf(s)):
                raise ValueError("scores: contain infinity")
            observed = ~np.isnan(s)
            counts = observed.sum(axis=0)
            seen = np.flatnonzero(counts)
            A = np.zeros((len(seen), self.dim, self.dim))  # noqa: N806
            b = np.zeros((len(seen), self.dim))
            for i, j in enumerate(seen):
                rows = ctx[observed[:, j]]
                A[i] = rows.T @ rows
                b[i] = rows.T @ s[observed[:, j], j]
            arms = [self.arms[j] for j in seen]
            self.store.merge(self.namespace, arms, A, b, counts[seen])
            self.refresh()

    def add_prior(self, x: ArrayLike, scores: ArrayLike, outcomes: float) -> None:
        """Give each arm ``outcomes`` pseudo-outcomes of score ``scores[j]`` on
        context ``x`` (in ``A`` and ``b``, not in ``counts``): a prior its real
        outcomes soon outweigh, e.g. an optimistic one (every score 1) so that
        no arm is written off after a few unlucky calls."""
        vec = self.check_context(x)
        weight = _check_finite("outcomes", outcomes)
        if weight <= 0:
            raise ValueError(f"outcomes: must be > 0, got {outcomes!r}")
        prior = np.asarray(scores, dtype=np.float64)
        if prior.shape != (self.n_arms,) or not np.all(
            (prior >= 0.0) & (prior <= SCORE_MAX)
        ):
            raise ValueError(
                f"scores: expected {self.n_arms} scores in [0, {SCORE_MAX}], "
                f"got {prior}"
            )
        gram = np.repeat(weight * np.outer(vec, vec)[None], self.n_arms, axis=0)
        with self._lock:
            self.store.merge(
                self.namespace,
                self.arms,
                gram,
                weight * prior[:, None] * vec[None],
                np.zeros(self.n_arms, dtype=np.int64),
            )
            self.refresh()

    def add_arm(
        self,
        name: str,
        *,
        contexts: ArrayLike | None = None,
        prior_outcomes: int = 20,
    ) -> None:
        """Add arm ``name`` on the live policy, keeping every other arm's
        statistics; it joins the store's statistics if another worker added it.

        With ``contexts`` (e.g. recent queries') the new arm starts as good as
        the best arm at each of them, seen ``prior_outcomes`` times in all: an
        optimistic prior, so it is tried wherever it might be the best, that
        its own outcomes soon outweigh.
        """
        _check_name(name)
        if (
            isinstance(prior_outcomes, bool)
            or not isinstance(prior_outcomes, int)
            or prior_outcomes < 0
        ):
            raise ValueError(
                f"prior_outcomes: must be an integer >= 0, got {prior_outcomes!r}"
            )
        with self._lock:
            if name in self.arms:
                raise ValueError(f"arm: {name!r} is already one of {list(self.arms)}")
            prior = None if contexts is None else self._check_matrix(contexts)
            if self.store.add_arm(self.namespace, name) and prior is not None:
                self._prime(name, prior, prior_outcomes)
            stats = self.store.read(self.namespace, [name])
            self.arms = (*self.arms, name)
            self._A = np.concatenate([self._A, np.zeros_like(stats.A)])
            self._A_inv = np.concatenate([self._A_inv, np.zeros_like(stats.A)])
            self._b = np.concatenate([self._b, np.zeros_like(stats.b)])
            self._theta = np.concatenate([self._theta, np.zeros_like(stats.b)])
            self._counts = np.concatenate([self._counts, stats.counts])
            self._versions = np.concatenate([self._versions, stats.versions])
            self._written = np.append(self._written, 0)
            self._deficit = np.append(self._deficit, 0.0)
            self._stamps = np.append(self._stamps, stats.clock)
            self._eig = np.append(self._eig, False)
            self._hot = np.append(self._hot, False)
            self._lam = np.concatenate([self._lam, np.zeros_like(stats.b)])
            self._vb = np.concatenate([self._vb, np.zeros_like(stats.b)])
            self._install(
                np.array([self.n_arms - 1]),
                stats.A,
                stats.b,
                stats.counts,
                stats.versions,
                stats.clock,
            )
            self._advance(stats.clock)

    def remove_arm(self, name: str) -> None:
        """Remove arm ``name`` and its statistics (for every worker sharing the
        store), keeping every other arm's; the last arm cannot be removed."""
        with self._lock:
            if name not in self.arms:
                raise ValueError(f"arm: {name!r} is not one of {list(self.arms)}")
            if self.n_arms == 1:
                raise ValueError(f"arm: {name!r} is the only arm; it cannot go")
            self.store.remove_arm(self.namespace, name)
            self._forget_arm(name)

    def _forget_arm(self, name: str) -> None:
        """Drop arm ``name``'s caches here (not in the store), under the lock."""
        j = self.arms.index(name)
        self.arms = self.arms[:j] + self.arms[j + 1 :]
        self._A, self._A_inv, self._b, self._theta = (
            np.delete(a, j, axis=0)
            for a in (self._A, self._A_inv, self._b, self._theta)
        )
        self._counts = np.delete(self._counts, j)
        self._versions = np.delete(self._versions, j)
        self._written = np.delete(self._written, j)
        self._deficit = np.delete(self._deficit, j)
        self._stamps = np.delete(self._stamps, j)
        self._eig = np.delete(self._eig, j)
        self._hot = np.delete(self._hot, j)
        self._lam = np.delete(self._lam, j, axis=0)
        self._vb = np.delete(self._vb, j, axis=0)

    def refresh(self) -> bool:
        """Reload from the store the arms another writer changed and follow
        its clock; True if anything changed.

        Runs on its own every ``store.refresh_interval`` seconds; an arm's inverse
        is rebuilt from the store's ``A`` and ``b`` only when its version moved
        (or the clock moved far enough, see the module docstring). An arm
        another worker removed is dropped here too (its decisions' feedback is
        then refused), so the policy recovers instead of going stale. Store
        reads happen without the lock, so decisions never wait for them.
        """
        arms = self.arms
        clock = self.store.clock(self.namespace)  # before the versions: no lag
        present = set(self.store.arms(self.namespace))
        live = tuple(name for name in arms if name in present)
        versions = self.store.versions(self.namespace, live)
        with self._lock:
            for name in arms:
                if name not in present and name in self.arms and self.n_arms > 1:
                    self._forget_arm(name)
            known = {
                name: self._versions[self.arms.index(name)]
                for name in live
                if name in self.arms
            }
        changed = [
            n
            for n, v in zip(live, versions, strict=True)
            if n in known and v != known[n]
        ]
        stats = self.store.read(self.namespace, changed) if changed else None
        with self._lock:
            self._checked_at = time.monotonic()
            moved = self._advance(clock)
            if stats is None:
                return len(live) != len(arms) or moved
            # Only reads newer than the cache and holding every update applied
            # here: one applied while this read was under way must not be undone
            # by it (the arm is then reloaded by the next refresh).
            rows = [
                i
                for i, name in enumerate(changed)
                if name in self.arms
                and stats.versions[i] > self._versions[self.arms.index(name)]
                and stats.versions[i] >= self._written[self.arms.index(name)]
            ]
            self._install(
                np.array([self.arms.index(changed[i]) for i in rows], dtype=np.intp),
                stats.A[rows],
                stats.b[rows],
                stats.counts[rows],
                stats.versions[rows],
                stats.clock,
            )
            self._advance(stats.clock)
            self._settle()
            return True

    def statistics(self) -> tuple[FloatArray, FloatArray, NDArray[np.int64]]:
        """The sufficient statistics ``(A, b, counts)``, read at once from the store."""
        stats = self.store.read(self.namespace, self.arms)
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
        _inverse(a_mat)  # refuses a matrix that is not positive definite
        with self._lock:
            versions, clock = self.store.replace(
                self.namespace, self.arms, a_mat, b_vec, n
            )
            self._install(np.arange(k), a_mat, b_vec, n, np.array(versions), clock)
            self._advance(clock)

    def _install(
        self,
        arms: NDArray[np.intp],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: NDArray[np.int64],
        versions: NDArray[np.int64],
        stamps: float | FloatArray,
    ) -> None:
        """Set the caches of ``arms`` from their statistics as of the clock
        ``stamps`` (in place, so the arrays stay contiguous for BLAS; exact
        inverses, no ridge deficit), and the versions they reflect."""
        a_inv = _inverse(A)
        self._A[arms] = A
        self._A_inv[arms] = a_inv
        self._b[arms] = b
        self._theta[arms] = np.einsum("kij,kj->ki", a_inv, b)
        self._counts[arms] = counts
        self._versions[arms] = versions
        self._deficit[arms] = 0.0
        self._stamps[arms] = stamps
        self._eig[arms] = False
        self._hot[arms] = False

    def _factors(self) -> FloatArray:
        """Each arm's discount from its stamp to the policy's clock (all 1.0
        without forgetting), under the lock."""
        factors: FloatArray = np.exp(self._clock - self._stamps)
        return factors

    def _advance(self, clock: float) -> bool:
        """Follow the namespace clock to ``clock`` if it is later (clocks only
        fall), rebuilding arms it leaves too short of ridge; under the lock."""
        if clock >= self._clock:
            return False
        self._clock = clock
        self._settle()
        return True

    def _settle(self) -> None:
        """Make exact, at the policy's clock, each arm whose cached inverse
        would lack more than ``RIDGE_SLACK`` of the ridge there: a rebuilt
        inverse if it learned since its last one, else (idle) its
        eigendecomposition (under the lock; see the module docstring)."""
        factors = self._factors()
        deficit = factors * self._deficit + (1.0 - factors) * self.ridge
        stale = np.flatnonzero((deficit > RIDGE_SLACK * self.ridge) & ~self._eig)
        if not len(stale):
            return
        hot, idle = stale[self._hot[stale]], stale[~self._hot[stale]]
        if len(hot):
            self._rebuild(hot, factors[hot], self._clock)
        for j in idle.tolist():
            self._idle(j, float(factors[j]))

    def _discounted(
        self, arms: NDArray[np.intp], factors: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """The cached ``A`` and ``b`` of ``arms`` discounted by ``factors``."""
        a = factors[:, None, None] * self._A[arms]
        diagonal = np.arange(self.dim)
        a[:, diagonal, diagonal] += ((1.0 - factors) * self.ridge)[:, None]
        return a, factors[:, None] * self._b[arms]

    def _rebuild(
        self, arms: NDArray[np.intp], factors: FloatArray, clock: float
    ) -> None:
        """Exact inverses of ``arms`` discounted by ``factors`` to ``clock``."""
        a, b = self._discounted(arms, factors)
        self._install(arms, a, b, self._counts[arms], self._versions[arms], clock)

    def _idle(self, j: int, factor: float) -> None:
        """Keep arm ``j``, which learned nothing since its last exact inverse,
        as the eigendecomposition of its statistics at the policy's clock."""
        at = np.array([j])
        a, b = self._discounted(at, np.array([factor]))
        lam, vectors = eigh(a[0] - self.ridge * np.eye(self.dim))
        self._A[j], self._b[j] = a[0], b[0]
        self._A_inv[j] = vectors.T
        self._lam[j] = np.maximum(lam, 0.0)
        self._vb[j] = vectors.T @ b[0]
        self._stamps[j] = self._clock
        self._deficit[j] = 0.0
        self._eig[j] = True

    def _weights(self, j: int, factor: float) -> FloatArray:
        """For idle arm ``j`` at ``factor``: ``theta = V @ weights``."""
        weights: FloatArray = (
            factor * self._vb[j] / (factor * self._lam[j] + self.ridge)
        )
        return weights

    def _prime(self, name: str, X: FloatArray, outcomes: int) -> None:  # noqa: N803
        """Give the new arm ``name`` ``outcomes`` pseudo-outcomes (no real
        count) spread over contexts ``X``, each scoring the best arm's
        prediction there."""
        if len(X) == 0 or outcomes == 0 or self._counts.sum() == 0:
            return
        best = (X @ self.theta.T).max(axis=1)
        weight = outcomes / len(X)
        self.store.merge(
            self.namespace,
            [name],
            (weight * X.T @ X)[None],
            (weight * X.T @ best)[None],
            np.zeros(1, dtype=np.int64),
        )

    def _learn(self, j: int, x: FloatArray, s: float) -> None:
        """Add ``(x, s)`` to arm ``j``'s caches by rank-1 updates."""
        a_inv = self._A_inv[j]
        u = blas.dgemv(1.0, a_inv.T, x)
        scale = 1.0 / (1.0 + x @ u)
        b = self._b[j]
        # theta' = A'^-1 (b + s x) with A'^-1 x = scale * u: O(d), no d^2 product.
        self._theta[j] += (s - u @ b) * scale * u
        blas.dger(-scale, u, u, a=a_inv.T, overwrite_a=True)
        blas.dger(1.0, x, x, a=self._A[j].T, overwrite_a=True)
        b += s * x

    def _forget_and_learn(self, j: int, x: FloatArray, s: float, g: float) -> None:
        """Discount arm ``j``'s statistics toward the prior by ``g`` (from its
        stamp to the update's clock) and add ``(x, s)``; its inverse follows
        ``C <- g C + x x^T`` by Sherman-Morrison while the ridge deficit stays
        within ``RIDGE_SLACK``, else it is rebuilt from ``A`` (see the module
        docstring)."""
        a, b = self._A[j], self._b[j]
        a *= g
        a[np.diag_indices_from(a)] += (1.0 - g) * self.ridge
        blas.dger(1.0, x, x, a=a.T, overwrite_a=True)
        deficit = g * self._deficit[j] + (1.0 - g) * self.ridge
        if deficit > RIDGE_SLACK * self.ridge:
            b *= g
            b += s * x
            at = np.array([j])
            self._install(
                at,
                a[None],
                b[None],
                self._counts[at],
                self._versions[at],
                self._stamps[at],
            )
            return
        a_inv = self._A_inv[j]
        u = blas.dgemv(1.0, a_inv.T, x)
        denominator = g + x @ u
        # theta' = (g C + x x^T)^-1 (g b + s x) = theta + u (s - u.b) / (g + x.u)
        self._theta[j] += (s - u @ b) / denominator * u
        blas.dger(-1.0 / denominator, u, u, a=a_inv.T, overwrite_a=True)
        a_inv /= g
        b *= g
        b += s * x
        self._deficit[j] = deficit

    def _predict(self, ctx: FloatArray) -> tuple[FloatArray, FloatArray]:
        """``predict`` on checked contexts, under the lock."""
        mean = ctx @ self._theta.T
        projected = [ctx @ a for a in self._A_inv]
        quad = np.stack([(z * ctx).sum(axis=1) for z in projected], 1)
        toward = np.stack([z[:, -1] for z in projected], 1)  # x^T A^-1 e
        factors = self._factors()
        quad /= factors[None, :]
        toward /= factors[None, :]
        for j in np.flatnonzero(
            self._eig
        ).tolist():  # idle arms: exact (module docstring)
            z = ctx @ self._A_inv[j].T
            f = factors[j]
            inverse = 1.0 / (f * self._lam[j] + self.ridge)
            quad[:, j] = (z * z) @ inverse
            mean[:, j] = z @ self._weights(j, f)
            toward[:, j] = z @ (self._A_inv[j][:, -1] * inverse)
        mean += self._pull(factors) * toward
        return mean, np.sqrt(np.maximum(quad, 0.0))

    def _pull(self, factors: FloatArray) -> float:
        """``ridge * m``: the pooled mean score ``m`` every arm forgets toward,
        times the ridge (0 without forgetting, or before any outcome)."""
        if self.decay >= 1.0:
            return 0.0
        evidence = factors @ (self._A[:, -1, -1] - self.ridge)
        if evidence <= 0.0:
            return 0.0
        return self.ridge * float(factors @ self._b[:, -1]) / float(evidence)

    def _maybe_refresh(self) -> None:
        """Refresh once the interval has passed. If the store fails (down,
        corrupt, an arm removed elsewhere), warn and keep serving the cached
        model until the next one."""
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

    def _index(self, arm: int | str) -> int:
        """The index of ``arm`` (an index or a name) among the current arms."""
        if isinstance(arm, str):
            if arm not in self.arms:
                raise ValueError(f"arm: {arm!r} is not one of {list(self.arms)}")
            return self.arms.index(arm)
        if isinstance(arm, bool) or not isinstance(arm, (int, np.integer)):
            raise TypeError(f"arm: expected an index or a name, got {arm!r}")
        if not 0 <= arm < self.n_arms:
            raise ValueError(f"arm: {arm} is out of range for {self.n_arms} arms")
        return int(arm)

    def _check_matrix(self, X: ArrayLike) -> FloatArray:  # noqa: N803
        mat = np.asarray(X, dtype=np.float64)
        if mat.ndim != 2 or mat.shape[1] != self.dim:
            raise ValueError(
                f"contexts: expected shape (n, {self.dim}), got {mat.shape}"
            )
        if not np.all(np.isfinite(mat)):
            raise ValueError("contexts: contain NaN or infinity")
        return mat


def check_decay(decay: float) -> float:
    """``decay`` as a float in (0, 1], else a ``ValueError`` naming it."""
    gamma = _check_finite("decay", decay)
    if not 0.0 < gamma <= 1.0:
        raise ValueError(f"decay: must be in (0, 1], got {decay!r}")
    return gamma


def _check_name(name: object) -> None:
    if not isinstance(name, str) or not name:
        raise ValueError(f"arm: names must be non-empty strings, got {name!r}")


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
