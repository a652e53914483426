"""``MemoryStore``: statistics in this process's memory, the default store.

Nothing is written anywhere; policies sharing one ``MemoryStore`` object (and
namespace) learn together within a process. ``add`` updates ``A`` in place with
scipy's BLAS, the same library as the policy's hot path. Each arm is kept as of
its stamp (the namespace clock when it was last written) and discounted to the
clock when it is next written or read (``base``: forgetting discounts every arm).
"""

from __future__ import annotations

import math
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.linalg import blas

from langchain_metallm.core.stores.base import (
    REMOVED,
    ArmState,
    Change,
    FloatArray,
    IntArray,
    Layout,
    PolicyStore,
    Statistics,
    Written,
    at_clock,
    clock_step,
    gather,
    removed,
)


@dataclass
class _Arm:
    """One arm's mutable statistics, as of the clock ``stamp``."""

    A: FloatArray
    b: FloatArray
    count: int = 0
    stamp: float = 0.0


@dataclass
class _Namespace:
    """A namespace's layout, clock, catalogue and versions; versions
    outlive removal so an arm added back never repeats one."""

    layout: Layout
    clock: float = 0.0
    arms: dict[str, _Arm] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


class MemoryStore(PolicyStore):
    """Per-namespace numpy arrays behind one lock."""

    def __init__(self, *, refresh_interval: float = 1.0) -> None:
        super().__init__(refresh_interval=refresh_interval)
        self._data: dict[str, _Namespace] = {}
        self._published: dict[tuple[str, str], bytes] = {}
        self._levels: dict[tuple[str, str], float] = {}
        self._lock = threading.Lock()

    def arms(self, namespace: str) -> tuple[str, ...]:
        data = self._namespace(namespace)
        with self._lock:
            return tuple(sorted(data.arms))

    def add_arm(self, namespace: str, arm: str) -> bool:
        data = self._namespace(namespace)
        with self._lock:
            if arm in data.arms:
                return False
            data.arms[arm] = _Arm(*data.layout.initial(), stamp=data.clock)
            data.versions[arm] = data.versions.get(arm, 0) + 1
            return True

    def remove_arm(self, namespace: str, arm: str) -> bool:
        data = self._namespace(namespace)
        with self._lock:
            if data.arms.pop(arm, None) is None:
                return False
            data.versions[arm] += 1
            return True

    def add(
        self, namespace: str, arm: str, x: FloatArray, score: float, decay: float
    ) -> Written:
        """The clock moves; ``A`` and ``b`` of ``arm`` are discounted to it and
        updated in place (rank 1 by BLAS ``dger``), count + 1."""
        data = self._namespace(namespace)
        with self._lock:
            stats = data.arms.get(arm)
            if stats is None:
                raise removed(namespace, [arm])
            step = clock_step(decay)
            if step:
                data.clock += step
            factor = math.exp(data.clock - stats.stamp)
            if factor != 1.0:
                stats.A *= factor
                stats.A[np.diag_indices_from(stats.A)] += (
                    1.0 - factor
                ) * data.layout.ridge
                stats.b *= factor
            # A is symmetric, so its transpose is the Fortran-ordered view dger writes.
            blas.dger(1.0, x, x, a=stats.A.T, overwrite_a=True)
            stats.b += score * x
            stats.count += 1
            stats.stamp = data.clock
            data.versions[arm] += 1
            return Written(data.versions[arm], data.clock)

    def clock(self, namespace: str) -> float:
        data = self._namespace(namespace)
        with self._lock:
            return data.clock

    def versions(self, namespace: str, arms: Sequence[str]) -> IntArray:
        data = self._namespace(namespace)
        with self._lock:
            return np.array(
                [data.versions[a] if a in data.arms else REMOVED for a in arms],
                dtype=np.int64,
            )

    def read(self, namespace: str, arms: Sequence[str]) -> Statistics:
        data = self._namespace(namespace)
        with self._lock:
            missing = [a for a in arms if a not in data.arms]
            if missing:
                raise removed(namespace, missing)
            return gather(
                data.layout,
                [self._state(namespace, data, a) for a in arms],
                [data.versions[a] for a in arms],
                data.clock,
            )

    def publish(self, namespace: str, key: str, value: bytes) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError(f"value: expected bytes, got {type(value).__name__}")
        with self._lock:
            return self._published.setdefault((namespace, key), value)

    def published(self, namespace: str, key: str) -> bytes | None:
        with self._lock:
            return self._published.get((namespace, key))

    def adjust(
        self, namespace: str, key: str, delta: float, *, start: float, floor: float
    ) -> float:
        with self._lock:
            level = max(self._levels.get((namespace, key), start) + delta, floor)
            self._levels[namespace, key] = level
            return level

    def _create(self, namespace: str, layout: Layout) -> tuple[Layout, bool]:
        with self._lock:
            created = namespace not in self._data
            data = self._data.setdefault(namespace, _Namespace(layout))
            return data.layout, created

    def _rewrite(
        self, namespace: str, arms: list[str], change: Change
    ) -> tuple[list[int], float]:
        data = self._namespace(namespace)
        with self._lock:
            missing = [a for a in arms if a not in data.arms]
            if missing:
                raise removed(namespace, missing)
            new = {a: change(a, *self._state(namespace, data, a)) for a in arms}
            for a, (A, b, n) in new.items():  # noqa: N806
                data.arms[a] = _Arm(A.copy(), b.copy(), n, data.clock)
                data.versions[a] += 1
            return [data.versions[a] for a in arms], data.clock

    def _namespace(self, namespace: str) -> _Namespace:
        self.layout(namespace)  # refuses a namespace this object never created
        return self._data[namespace]

    @staticmethod
    def _state(namespace: str, data: _Namespace, arm: str) -> ArmState:
        """A copy of ``arm``'s ``(A, b, count)`` at the namespace clock."""
        stats = data.arms[arm]
        where = f"namespace {namespace!r} arm {arm!r}"
        state = (stats.A.copy(), stats.b.copy(), stats.count)
        return at_clock(data.layout, where, state, stats.stamp, data.clock)
