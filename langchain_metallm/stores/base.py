"""``PolicyStore``: where LinUCB's per-arm sufficient statistics live.

A store holds, per namespace (one router) and arm, ``A = ridge * I + sum x x^T``,
``b = sum r x``, a reward count and a version that grows with every write. Writes
are additive increments applied atomically, so workers sharing a store never lose
an update; each worker keeps its own inverse of ``A`` as a cache and rebuilds the
arms whose version moved. Only these statistics are stored, never prompts.

Shared backends keep each arm as a snapshot plus a log of increments ``(x, r)``:
an update appends ``d + 1`` numbers instead of rewriting a ``d x d`` matrix, and
every ``COMPACT_AT`` entries the log is folded into the snapshot.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray
from scipy.linalg import blas

from langchain_metallm.identity import embedder_label

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ArmState = tuple[FloatArray, FloatArray, int]
"""One arm's ``(A, b, count)``."""
Change = Callable[[int, FloatArray, FloatArray, int], ArmState]
"""Maps arm index and its current ``(A, b, count)`` to the new ones."""
COMPACT_AT = 100
"""Logged increments per arm after which a shared store folds them into the snapshot."""


def namespace(
    router: str, embeddings: object, models: Sequence[str], *, tasks: str | None = None
) -> str:
    """Store namespace of a router: its name, its embedder's label
    (``identity.embedder_label``), its children's names and its task classifier's
    fingerprint (if any), so two routers never mix statistics."""
    parts = [router, embedder_label(embeddings), *models]
    return "|".join(parts if tasks is None else [*parts, f"tasks:{tasks}"])


@dataclass(frozen=True)
class Layout:
    """What a namespace was created for: arm names, context dimension, ridge."""

    arms: tuple[str, ...]
    dim: int
    ridge: float

    def to_json(self) -> str:
        """Plain JSON (never pickle), as stored next to the statistics."""
        return json.dumps(
            {"arms": list(self.arms), "dim": self.dim, "ridge": self.ridge}
        )

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Layout:
        """Parse a stored layout, refusing anything malformed."""
        try:
            raw = json.loads(text)
            layout = cls(tuple(raw["arms"]), raw["dim"], raw["ridge"])
            valid = (
                all(isinstance(a, str) for a in layout.arms)
                and isinstance(layout.dim, int)
                and isinstance(layout.ridge, float)
            )
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"store: corrupt layout for {where}: {exc}") from exc
        if not valid:
            raise ValueError(f"store: corrupt layout for {where}: {text!r}")
        return layout

    def initial(self) -> tuple[FloatArray, FloatArray]:
        """One arm's statistics before any reward: ``(ridge * I, 0)``."""
        return self.ridge * np.eye(self.dim), np.zeros(self.dim)


@dataclass(frozen=True)
class Statistics:
    """A consistent snapshot of a namespace: ``A`` (k, d, d), ``b`` (k, d),
    ``counts`` (k,) and per-arm ``versions`` (k,)."""

    A: FloatArray
    b: FloatArray
    counts: IntArray
    versions: IntArray


class PolicyStore(ABC):
    """Per-arm LinUCB statistics shared by every policy bound to a namespace.

    ``refresh_interval`` is how many seconds a policy may serve from its cached
    inverse before it asks the store whether other writers changed an arm.
    """

    def __init__(self, *, refresh_interval: float = 1.0) -> None:
        if not math.isfinite(refresh_interval) or refresh_interval < 0:
            raise ValueError(
                f"refresh_interval: must be finite and >= 0, got {refresh_interval!r}"
            )
        self.refresh_interval = float(refresh_interval)
        self._layouts: dict[str, Layout] = {}

    def create(
        self, namespace: str, arms: Sequence[str], dim: int, ridge: float
    ) -> None:
        """Create ``namespace`` for this layout, or check the one already there.

        Raises ``ValueError`` when the stored arms, dimension or ridge differ,
        so two different routers never mix their statistics.
        """
        wanted = Layout(tuple(arms), dim, float(ridge))
        stored = self._create(namespace, wanted)
        if stored != wanted:
            raise ValueError(
                f"store: namespace {namespace!r} holds arms {list(stored.arms)}, "
                f"dim {stored.dim}, ridge {stored.ridge}; this policy has arms "
                f"{list(wanted.arms)}, dim {wanted.dim}, ridge {wanted.ridge}"
            )
        self._layouts[namespace] = stored

    def merge(
        self,
        namespace: str,
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> None:
        """Add increments ``A`` (k, d, d), ``b`` (k, d), ``counts`` (k,) to every
        arm with a nonzero count, in one atomic write."""

        def change(j: int, a0: FloatArray, b0: FloatArray, n: int) -> ArmState:
            return a0 + A[j], b0 + b[j], n + int(counts[j])

        arms = [int(j) for j in np.flatnonzero(counts)]
        self._rewrite(namespace, arms, change, drop_log=False)

    def replace(
        self,
        namespace: str,
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> list[int]:
        """Overwrite every arm's statistics in one atomic write; return the
        arms' new versions."""

        def change(j: int, *_: object) -> ArmState:
            return A[j].copy(), b[j].copy(), int(counts[j])

        return self._rewrite(namespace, list(range(len(counts))), change, drop_log=True)

    def layout(self, namespace: str) -> Layout:
        """The layout ``namespace`` was created with in this store object."""
        try:
            return self._layouts[namespace]
        except KeyError:
            raise ValueError(
                f"store: namespace {namespace!r} was not created; call create() first"
            ) from None

    @abstractmethod
    def add(self, namespace: str, arm: int, x: FloatArray, reward: float) -> int:
        """``A[arm] += x x^T``, ``b[arm] += reward x``, count + 1, atomically.

        Returns the arm's new version.
        """

    @abstractmethod
    def versions(self, namespace: str) -> IntArray:
        """Every arm's version, cheaply: a policy polls this to decide to reload."""

    @abstractmethod
    def read(self, namespace: str) -> Statistics:
        """Every arm's statistics, read together."""

    @abstractmethod
    def _create(self, namespace: str, layout: Layout) -> Layout:
        """Store ``layout`` unless the namespace has one; return the stored one."""

    @abstractmethod
    def _rewrite(
        self, namespace: str, arms: list[int], change: Change, *, drop_log: bool
    ) -> list[int]:
        """Apply ``change`` to the snapshots of ``arms`` atomically (dropping
        their logged increments if ``drop_log``), bump and return their versions.

        ``change`` must be additive unless ``drop_log``: increments logged
        before or during the rewrite still count on top of the new snapshot.
        """


def encode(array: FloatArray) -> bytes:
    """Little-endian float64 bytes: portable across machines, never pickle."""
    return np.ascontiguousarray(array, dtype="<f8").tobytes()


def decode_arm(
    layout: Layout, where: str, a_bytes: object, b_bytes: object, count: object
) -> ArmState:
    """Check one stored snapshot and return its ``(A, b, count)``.

    No ``A`` and ``b`` at all is the initial state. Raises ``ValueError`` naming
    the arm for a wrong type or size, NaN, infinity, an asymmetric ``A`` or a
    negative count, so a corrupt row never reaches a policy.
    """
    if a_bytes is None and b_bytes is None and count == 0:
        a, b = layout.initial()
        return a, b, 0
    if isinstance(count, bool) or not isinstance(count, int) or count < 0:
        raise ValueError(
            f"store: corrupt row for {where}: count {count!r} is not an integer >= 0"
        )
    d = layout.dim
    a = _floats(where, "A", a_bytes, d * d).reshape(d, d)
    b = _floats(where, "b", b_bytes, d)
    if not np.allclose(a, a.T, rtol=1e-12, atol=1e-8):
        raise ValueError(f"store: corrupt row for {where}: A is not symmetric")
    return a, b, count


def entry(x: FloatArray, reward: float) -> bytes:
    """One logged increment: ``x`` then ``reward``, as little-endian float64."""
    return encode(np.append(x, reward))


def fold(
    layout: Layout, where: str, state: ArmState, entries: Sequence[object]
) -> ArmState:
    """A snapshot plus its logged increments: ``A + X^T X``, ``b + X^T r``,
    ``count + n``; a malformed entry raises ``ValueError``."""
    if not entries:
        return state
    d = layout.dim
    rows = np.stack([_floats(where, "a log entry", e, d + 1) for e in entries])
    x, r = np.asfortranarray(rows[:, :d]), rows[:, d]
    upper = blas.dsyrk(1.0, x, trans=1)  # x^T x, upper triangle, scipy's BLAS
    gram = np.triu(upper) + np.triu(upper, 1).T
    a, b, count = state
    return a + gram, b + blas.dgemv(1.0, x, r, trans=1), count + len(entries)


def _floats(where: str, name: str, blob: object, size: int) -> FloatArray:
    """``size`` finite float64 numbers from ``blob``, else ``ValueError``."""
    if not isinstance(blob, bytes):
        raise ValueError(f"store: corrupt row for {where}: {name} is not bytes")
    if len(blob) != 8 * size:
        raise ValueError(
            f"store: corrupt row for {where}: {name} has {len(blob)} bytes, "
            f"expected {8 * size}"
        )
    values = np.frombuffer(blob, dtype="<f8").astype(np.float64)
    if not np.all(np.isfinite(values)):
        raise ValueError(f"store: corrupt row for {where}: NaN or infinity in {name}")
    return values
