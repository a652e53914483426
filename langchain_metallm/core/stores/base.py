"""``PolicyStore``: where LinUCB's per-arm sufficient statistics live.

A store holds, per namespace (one router) and arm NAME, ``A = ridge * I + sum
x x^T``, ``b = sum s x``, an outcome count and a version that grows with every
write (also across removing and adding the arm back). The arms of a namespace are
its catalogue: workers add and remove arms by name, and every other arm keeps its
statistics. Writes are increments applied atomically, so workers sharing a store
never lose an update; each worker keeps its own inverse of ``A`` as a cache and
rebuilds the arms whose version moved. Only these statistics are stored, never
prompts.

Shared backends keep each arm as a snapshot plus a log of increments ``(x, s,
decay)`` in the order the store received them: an update appends ``d + 2``
numbers instead of rewriting a ``d x d`` matrix, and every ``COMPACT_AT`` entries
the log is folded into the snapshot. Folding applies each entry's forgetting
factor in log order, so decay is exact and the log order is the one sequence
that every worker agrees on.
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

from langchain_metallm.core.identity import embedder_label

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
ArmState = tuple[FloatArray, FloatArray, int]
"""One arm's ``(A, b, count)``."""
Change = Callable[[str, FloatArray, FloatArray, int], ArmState]
"""Maps an arm's name and its current ``(A, b, count)`` to the new ones."""
COMPACT_AT = 100
"""Logged increments per arm after which a shared store folds them into the snapshot."""
REMOVED = -1
"""The version ``versions`` reports for an arm that is not in the catalogue."""


def namespace(router: str, embeddings: object, *, tasks: str | None = None) -> str:
    """Store namespace of a router: its name, its embedder's label
    (``identity.embedder_label``) and its task classifier's fingerprint (if any),
    so two routers never mix statistics. Children are arms inside it, by name, so
    a changing catalogue keeps the namespace."""
    parts = [router, embedder_label(embeddings)]
    return "|".join(parts if tasks is None else [*parts, f"tasks:{tasks}"])


@dataclass(frozen=True)
class Layout:
    """What every arm of a namespace shares: context dimension and ridge."""

    dim: int
    ridge: float

    def to_json(self) -> str:
        """Plain JSON (never pickle), as stored next to the statistics."""
        return json.dumps({"dim": self.dim, "ridge": self.ridge})

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Layout:
        """Parse a stored layout, refusing anything malformed or of the old,
        per-index format (whose statistics this version cannot read)."""
        try:
            raw = json.loads(text)
            if isinstance(raw, dict) and "arms" in raw:
                raise ValueError(
                    "it was written by an older version that kept arms by index; "
                    "save the router there and load the save into a new namespace"
                )
            layout = cls(raw["dim"], raw["ridge"])
            valid = isinstance(layout.dim, int) and isinstance(layout.ridge, float)
        except (ValueError, TypeError, KeyError) as exc:
            raise ValueError(f"store: corrupt layout for {where}: {exc}") from exc
        if not valid:
            raise ValueError(f"store: corrupt layout for {where}: {text!r}")
        return layout

    def initial(self) -> tuple[FloatArray, FloatArray]:
        """One arm's statistics before any outcome: ``(ridge * I, 0)``."""
        return self.ridge * np.eye(self.dim), np.zeros(self.dim)


@dataclass(frozen=True)
class Statistics:
    """A consistent snapshot of some arms of a namespace: ``A`` (k, d, d), ``b``
    (k, d), ``counts`` (k,) and per-arm ``versions`` (k,), in the order asked."""

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
        """Create ``namespace`` for this dimension and ridge, or check the one
        already there, and add those of ``arms`` its catalogue lacks (cold).

        Raises ``ValueError`` when the stored dimension or ridge differ, so two
        different routers never mix their statistics.
        """
        wanted = Layout(dim, float(ridge))
        stored = self._create(namespace, wanted)
        if stored != wanted:
            raise ValueError(
                f"store: namespace {namespace!r} holds dim {stored.dim}, ridge "
                f"{stored.ridge}; this policy has dim {wanted.dim}, ridge "
                f"{wanted.ridge}"
            )
        self._layouts[namespace] = stored
        present = set(self.arms(namespace))
        for arm in arms:
            if arm not in present:
                self.add_arm(namespace, arm)

    def merge(
        self,
        namespace: str,
        arms: Sequence[str],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> None:
        """Add increments ``A`` (k, d, d), ``b`` (k, d), ``counts`` (k,) to the
        ``k`` arms of ``arms``, in one atomic write."""
        index = {name: j for j, name in enumerate(arms)}

        def change(arm: str, a0: FloatArray, b0: FloatArray, n: int) -> ArmState:
            j = index[arm]
            return a0 + A[j], b0 + b[j], n + int(counts[j])

        self._rewrite(namespace, list(arms), change, drop_log=False)

    def replace(
        self,
        namespace: str,
        arms: Sequence[str],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> list[int]:
        """Overwrite the statistics of ``arms`` in one atomic write; return the
        arms' new versions."""
        index = {name: j for j, name in enumerate(arms)}

        def change(arm: str, *_: object) -> ArmState:
            j = index[arm]
            return A[j].copy(), b[j].copy(), int(counts[j])

        return self._rewrite(namespace, list(arms), change, drop_log=True)

    def layout(self, namespace: str) -> Layout:
        """The layout ``namespace`` was created with in this store object."""
        try:
            return self._layouts[namespace]
        except KeyError:
            raise ValueError(
                f"store: namespace {namespace!r} was not created; call create() first"
            ) from None

    @abstractmethod
    def arms(self, namespace: str) -> tuple[str, ...]:
        """The namespace's catalogue: every arm name, sorted."""

    @abstractmethod
    def add_arm(self, namespace: str, arm: str) -> bool:
        """Add ``arm`` at its initial statistics unless the catalogue has it
        (another worker may have added it first); True if this call added it."""

    @abstractmethod
    def remove_arm(self, namespace: str, arm: str) -> bool:
        """Drop ``arm`` and its statistics for every worker, atomically; True if
        the catalogue had it."""

    @abstractmethod
    def add(
        self, namespace: str, arm: str, x: FloatArray, score: float, decay: float
    ) -> int:
        """``A <- decay (A - ridge I) + ridge I + x x^T``, ``b <- decay b + s x``,
        count + 1, atomically; ``ValueError`` if ``arm`` is not in the catalogue.

        Returns the arm's new version.
        """

    @abstractmethod
    def versions(self, namespace: str, arms: Sequence[str]) -> IntArray:
        """The versions of ``arms`` (``REMOVED`` for one not in the catalogue),
        cheaply: a policy polls this to decide to reload."""

    @abstractmethod
    def read(self, namespace: str, arms: Sequence[str]) -> Statistics:
        """The statistics of ``arms``, read together; ``ValueError`` naming any
        that is not in the catalogue."""

    @abstractmethod
    def _create(self, namespace: str, layout: Layout) -> Layout:
        """Store ``layout`` unless the namespace has one; return the stored one."""

    @abstractmethod
    def _rewrite(
        self, namespace: str, arms: list[str], change: Change, *, drop_log: bool
    ) -> list[int]:
        """Apply ``change`` to the snapshots of ``arms`` atomically (dropping
        their logged increments if ``drop_log``), bump and return their versions.

        ``change`` must be additive unless ``drop_log``: increments logged
        before or during the rewrite still count on top of the new snapshot.
        """


def gather(
    layout: Layout, states: Sequence[ArmState], versions: Sequence[int]
) -> Statistics:
    """Arms' ``(A, b, count)`` and versions as one ``Statistics`` (none is fine)."""
    k, d = len(states), layout.dim
    return Statistics(
        np.array([s[0] for s in states], dtype=np.float64).reshape(k, d, d),
        np.array([s[1] for s in states], dtype=np.float64).reshape(k, d),
        np.array([s[2] for s in states], dtype=np.int64),
        np.array(versions, dtype=np.int64),
    )


def removed(namespace: str, arms: Sequence[str]) -> ValueError:
    """The error for arms a policy uses that another worker removed."""
    return ValueError(
        f"store: arms {list(arms)} are not in namespace {namespace!r} (another "
        "worker removed them): remove them here too (remove_arm / remove_model) "
        "or add them back (add_arm / add_model)"
    )


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


def entry(x: FloatArray, score: float, decay: float) -> bytes:
    """One logged increment: ``x``, ``score``, ``decay``, as little-endian float64."""
    return encode(np.append(x, (score, decay)))


def fold(
    layout: Layout, where: str, state: ArmState, entries: Sequence[object]
) -> ArmState:
    """A snapshot plus its logged increments applied in order; a malformed entry
    raises ``ValueError``.

    Entry ``i`` with factor ``g_i`` maps ``A - R`` to ``g_i (A - R) + x_i x_i^T``
    (``R = ridge I``) and ``b`` to ``g_i b + s_i x_i``, so in closed form
    ``A - R = G (A_0 - R) + sum_i w_i x_i x_i^T`` with ``w_i`` the product of
    the later factors and ``G`` of all. Without forgetting (every ``g = 1``)
    this is ``A + X^T X``, ``b + X^T s`` exactly as without the factor.
    """
    if not entries:
        return state
    d = layout.dim
    rows = np.stack([_floats(where, "a log entry", e, d + 2) for e in entries])
    x, s, g = rows[:, :d], rows[:, d], rows[:, d + 1]
    if np.any((g <= 0) | (g > 1)):
        raise ValueError(f"store: corrupt row for {where}: a decay outside (0, 1]")
    a, b, count = state
    if np.all(g == 1.0):
        return (
            _gram(a, x),
            b + blas.dgemv(1.0, np.asfortranarray(x), s, trans=1),
            (count + len(entries)),
        )
    later = np.append(np.cumprod(g[::-1])[::-1][1:], 1.0)
    kept = float(np.prod(g))
    prior = layout.ridge * np.eye(d)
    a = _gram(kept * (a - prior) + prior, x * np.sqrt(later)[:, None])
    b = kept * b + blas.dgemv(1.0, np.asfortranarray(x), later * s, trans=1)
    return a, b, count + len(entries)


def _gram(a: FloatArray, x: FloatArray) -> FloatArray:
    """``a + x^T x`` with the product by scipy's BLAS ``dsyrk`` (upper triangle)."""
    upper = blas.dsyrk(1.0, np.asfortranarray(x), trans=1)
    result: FloatArray = a + (np.triu(upper) + np.triu(upper, 1).T)
    return result


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
