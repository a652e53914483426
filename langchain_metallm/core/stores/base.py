"""``PolicyStore``: where LinUCB's per-arm sufficient statistics live.

A store holds, per namespace (one router) and arm NAME, ``A = ridge * I + sum
x x^T``, ``b = sum s x``, an outcome count and a version that grows with every
write of that arm (also across removing and adding the arm back). The arms of a
namespace are its catalogue: workers add and remove arms by name, and every other
arm keeps its statistics. Writes are increments applied atomically, so workers
sharing a store never lose an update; each worker keeps its own inverse of ``A``
as a cache and rebuilds the arms whose version moved. Only these statistics are
stored, never prompts (and, for online clusters, their published centroids:
``publish``).

Forgetting discounts EVERY arm on every update of any arm (discounted LinUCB):
update ``t`` with factor ``g_t`` maps each arm's ``A - R`` (``R = ridge I``) to
``g_t (A - R)`` and ``b`` to ``g_t b``, then adds ``x x^T`` and ``s x`` to the
arm it is about. A namespace keeps a clock, ``L = sum_t log g_t`` (0 without
forgetting, falling with each factor below 1), and each arm's statistics are
kept as of a stamp ``L_arm``, the clock when they were last written: read at
clock ``L`` they are discounted by ``exp(L - L_arm)``. So discounting all arms
costs nothing (the clock moves), an update stays rank-1 on one arm, and every
reader sees every arm at the same clock.

Shared backends keep each arm as a snapshot (with its stamp) plus a log of
increments in the order the store received them: an update appends ``(x, s,
L)`` (``d + 2`` numbers, ``L`` the clock after its factor) instead of rewriting a
``d x d`` matrix, and every ``COMPACT_AT`` entries the log is folded into the
snapshot. The clock is advanced and the entry appended in one atomic step, so the
log order, the clocks and the statistics are the same for every worker and equal
what ``MemoryStore`` computes for the same sequence. A ``merge`` (a fit's or a
prior's increments) lands at the clock when it is written, after every update
logged before it.
"""

from __future__ import annotations

import json
import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import NamedTuple

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
FORMAT = 2
"""The layout format: 2 keeps a namespace clock (forgetting discounts every arm)."""


class Written(NamedTuple):
    """What an update wrote: the arm's new version and the namespace clock
    after the update's forgetting factor (its stamp)."""

    version: int
    clock: float


def namespace(router: str, embeddings: object, *, tasks: str | None = None) -> str:
    """Store namespace of a router: its name, its embedder's label
    (``identity.embedder_label``) and its task classifier's fingerprint (if any),
    so two routers never mix statistics. Children are arms inside it, by name, so
    a changing catalogue keeps the namespace."""
    parts = [router, embedder_label(embeddings)]
    return "|".join(parts if tasks is None else [*parts, f"tasks:{tasks}"])


def clock_step(decay: float) -> float:
    """How far an update with forgetting factor ``decay`` moves the clock:
    ``log(decay)``, exactly 0.0 without forgetting (every store uses this)."""
    return 0.0 if decay == 1.0 else math.log(decay)


@dataclass(frozen=True)
class Layout:
    """What every arm of a namespace shares: context dimension and ridge."""

    dim: int
    ridge: float

    def to_json(self) -> str:
        """Plain JSON (never pickle), as stored next to the statistics."""
        return json.dumps({"dim": self.dim, "ridge": self.ridge, "format": FORMAT})

    @classmethod
    def from_json(cls, text: str | bytes, where: str) -> Layout:
        """Parse a stored layout, refusing anything malformed or of an older
        format (whose statistics this version cannot read)."""
        try:
            raw = json.loads(text)
            if isinstance(raw, dict) and "arms" in raw:
                raise ValueError(
                    "it was written by an older version that kept arms by index; "
                    "save the router there and load the save into a new namespace"
                )
            layout = cls(raw["dim"], raw["ridge"])
            valid = isinstance(layout.dim, int) and isinstance(layout.ridge, float)
            if valid and raw.get("format") != FORMAT:
                raise ValueError(
                    "it was written by an older version whose forgetting discounted "
                    "only the child updated; save the router there and load the "
                    "save into a new namespace"
                )
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
    (k, d), ``counts`` (k,) and per-arm ``versions`` (k,), in the order asked,
    every arm discounted to the namespace ``clock`` they were read at."""

    A: FloatArray
    b: FloatArray
    counts: IntArray
    versions: IntArray
    clock: float = 0.0


class PolicyStore(ABC):
    """Per-arm LinUCB statistics shared by every policy bound to a namespace.

    ``refresh_interval`` is how many seconds a policy may serve from its cached
    inverse before it asks the store whether other writers changed an arm (and
    a router with online clusters whether another worker published a stage).
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
    ) -> bool:
        """Create ``namespace`` for this dimension and ridge, or check the one
        already there, and add those of ``arms`` its catalogue lacks (cold).
        True if this call created the namespace (one worker of a fleet does).

        Raises ``ValueError`` when the stored dimension or ridge differ, so two
        different routers never mix their statistics.
        """
        wanted = Layout(dim, float(ridge))
        stored, created = self._create(namespace, wanted)
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
        return created

    def merge(
        self,
        namespace: str,
        arms: Sequence[str],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> None:
        """Add increments ``A`` (k, d, d), ``b`` (k, d), ``counts`` (k,) to the
        ``k`` arms of ``arms``, in one atomic write at the current clock (after
        every update logged before it; later updates discount them)."""
        index = {name: j for j, name in enumerate(arms)}

        def change(arm: str, a0: FloatArray, b0: FloatArray, n: int) -> ArmState:
            j = index[arm]
            return a0 + A[j], b0 + b[j], n + int(counts[j])

        self._rewrite(namespace, list(arms), change)

    def replace(
        self,
        namespace: str,
        arms: Sequence[str],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> tuple[list[int], float]:
        """Overwrite the statistics of ``arms`` in one atomic write, as of the
        current clock; return the arms' new versions and that clock."""
        index = {name: j for j, name in enumerate(arms)}

        def change(arm: str, *_: object) -> ArmState:
            j = index[arm]
            return A[j].copy(), b[j].copy(), int(counts[j])

        return self._rewrite(namespace, list(arms), change)

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
    ) -> Written:
        """One outcome, atomically: the clock moves by ``clock_step(decay)``
        (every arm is discounted by ``decay``), then ``A <- A + x x^T``, ``b <- b
        + s x`` and count + 1 for ``arm``; ``ValueError`` if ``arm`` is not in
        the catalogue. Returns the arm's new version and the new clock."""

    @abstractmethod
    def clock(self, namespace: str) -> float:
        """The namespace's clock now (0.0 until an update forgets)."""

    @abstractmethod
    def versions(self, namespace: str, arms: Sequence[str]) -> IntArray:
        """The versions of ``arms`` (``REMOVED`` for one not in the catalogue),
        cheaply: a policy polls this to decide to reload."""

    @abstractmethod
    def read(self, namespace: str, arms: Sequence[str]) -> Statistics:
        """The statistics of ``arms`` at the current clock, read together;
        ``ValueError`` naming any that is not in the catalogue."""

    @abstractmethod
    def publish(self, namespace: str, key: str, value: bytes) -> bytes:
        """Store ``value`` under ``key`` unless the namespace already holds one
        (the first writer wins, atomically); return the value stored. Published
        values never change. The namespace need not be created."""

    @abstractmethod
    def published(self, namespace: str, key: str) -> bytes | None:
        """The value published under ``key``, or None."""

    @abstractmethod
    def adjust(
        self, namespace: str, key: str, delta: float, *, start: float, floor: float
    ) -> float:
        """Atomically move the number under ``key`` (``start`` if there is none)
        by ``delta``, not below ``floor``, and return it: a fleet's shared
        budget pacer. The namespace need not be created."""

    @abstractmethod
    def _create(self, namespace: str, layout: Layout) -> tuple[Layout, bool]:
        """Store ``layout`` unless the namespace has one; return the stored one
        and whether this call stored it."""

    @abstractmethod
    def _rewrite(
        self, namespace: str, arms: list[str], change: Change
    ) -> tuple[list[int], float]:
        """Apply ``change`` to the statistics of ``arms`` at the current clock
        (their logged increments folded in first) and store the results as of
        that clock, atomically; bump and return their versions, and the clock."""


def gather(
    layout: Layout,
    states: Sequence[ArmState],
    versions: Sequence[int],
    clock: float = 0.0,
) -> Statistics:
    """Arms' ``(A, b, count)`` and versions as one ``Statistics`` (none is fine)."""
    k, d = len(states), layout.dim
    return Statistics(
        np.array([s[0] for s in states], dtype=np.float64).reshape(k, d, d),
        np.array([s[1] for s in states], dtype=np.float64).reshape(k, d),
        np.array([s[2] for s in states], dtype=np.int64),
        np.array(versions, dtype=np.int64),
        clock,
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


def check_clock(where: str, name: str, value: object) -> float:
    """A stored clock or stamp: a finite float <= 0, else ``ValueError``."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not math.isfinite(value)
        or value > 0
    ):
        raise ValueError(
            f"store: corrupt {name} for {where}: {value!r} is not a clock (<= 0)"
        )
    return float(value)


def discount(layout: Layout, state: ArmState, factor: float) -> ArmState:
    """``state`` forgotten by ``factor``: ``A - R`` and ``b`` times it (the
    prior ``R = ridge I`` kept); the same numbers, no copy, at factor 1."""
    if factor == 1.0:
        return state
    a, b, n = state
    a = factor * a
    a[np.diag_indices_from(a)] += (1.0 - factor) * layout.ridge
    return a, factor * b, n


def at_clock(
    layout: Layout, where: str, state: ArmState, stamp: float | None, clock: float
) -> ArmState:
    """An arm's statistics written at ``stamp`` (None: never written, its
    initial state), read at the namespace's ``clock``."""
    if stamp is None or stamp == clock:
        return state
    if stamp < clock:
        raise ValueError(
            f"store: corrupt row for {where}: stamp {stamp!r} is after the "
            f"namespace clock {clock!r}"
        )
    return discount(layout, state, math.exp(clock - stamp))


def entry(x: FloatArray, score: float) -> bytes:
    """The body of one logged update: ``x`` and ``score`` as little-endian
    float64 (the store appends the clock, ``stamped``)."""
    return encode(np.append(x, score))


def merge_entry(a: FloatArray, b: FloatArray, count: int) -> bytes:
    """The body of one logged merge: ``A`` and ``b`` increments and a count."""
    return encode(np.concatenate([np.ravel(a), b, [float(count)]]))


def stamped(body: bytes, clock: float) -> bytes:
    """A log entry: its body followed by the clock it was written at."""
    return body + encode(np.array([clock]))


def fold(
    layout: Layout,
    where: str,
    state: ArmState,
    stamp: float | None,
    entries: Sequence[object],
) -> tuple[ArmState, float | None]:
    """A snapshot written at ``stamp`` plus its logged entries, applied in
    order: the statistics as of the last entry's clock, and that clock. A
    malformed entry raises ``ValueError``.

    An update entry ``(x_i, s_i, L_i)`` adds ``x_i x_i^T`` and ``s_i x_i`` at
    clock ``L_i``; a merge entry ``(A_m, b_m, n_m, L_m)`` adds its increments
    at ``L_m``. Read at the last clock ``L``, each is discounted by ``w_i =
    exp(L - L_i)``, so in closed form ``A - R = exp(L - stamp) (A_0 - R) + sum_i
    w_i x_i x_i^T + sum_m w_m A_m`` (``R = ridge I``). Without forgetting
    (every clock equal) this is ``A + X^T X``, ``b + X^T s`` as before clocks.
    """
    if not entries:
        return state, stamp
    d = layout.dim
    update, merge = d + 2, d * d + d + 2
    rows = [_entry(where, e, update, merge) for e in entries]
    clocks = np.array([row[-1] for row in rows])
    first = clocks[0] if stamp is None else stamp
    if np.any(clocks > 0) or np.any(np.diff(np.append(first, clocks)) > 0):
        raise ValueError(
            f"store: corrupt row for {where}: a log entry out of clock order"
        )
    last = float(clocks[-1])
    is_update = np.array([len(row) == update for row in rows])
    weights = np.exp(last - clocks)
    a, b, count = discount(
        layout, state, 1.0 if stamp is None else math.exp(last - stamp)
    )
    if is_update.any():
        x = np.stack([row[:d] for row, u in zip(rows, is_update, strict=True) if u])
        s = np.array([row[d] for row, u in zip(rows, is_update, strict=True) if u])
        w = weights[is_update]
        if np.all(w == 1.0):
            a = _gram(a, x)
            b = b + blas.dgemv(1.0, np.asfortranarray(x), s, trans=1)
        else:
            a = _gram(a, x * np.sqrt(w)[:, None])
            b = b + blas.dgemv(1.0, np.asfortranarray(x), w * s, trans=1)
        count += int(is_update.sum())
    for row, u, w_m in zip(rows, is_update, weights, strict=True):
        if not u:
            n_m = row[d * d + d]
            if n_m < 0 or n_m != int(n_m):
                raise ValueError(
                    f"store: corrupt row for {where}: a merge of {n_m!r} outcomes"
                )
            a = a + w_m * row[: d * d].reshape(d, d)
            b = b + w_m * row[d * d : d * d + d]
            count += int(n_m)
    return (a, b, count), last


def _entry(where: str, blob: object, update: int, merge: int) -> FloatArray:
    """One log entry's numbers (an update's ``update`` or a merge's ``merge``)."""
    if not isinstance(blob, bytes):
        raise ValueError(f"store: corrupt row for {where}: a log entry is not bytes")
    if len(blob) not in (8 * update, 8 * merge):
        raise ValueError(
            f"store: corrupt row for {where}: a log entry has {len(blob)} bytes, "
            f"expected {8 * update} (an update) or {8 * merge} (a merge)"
        )
    return _floats(where, "a log entry", blob, len(blob) // 8)


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
