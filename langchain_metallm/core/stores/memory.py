"""``MemoryStore``: statistics in this process's memory, the default store.

Nothing is written anywhere; policies sharing one ``MemoryStore`` object (and
namespace) learn together within a process. ``add`` updates ``A`` in place with
scipy's BLAS, the same library as the policy's hot path.
"""

from __future__ import annotations

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
    gather,
    removed,
)


@dataclass
class _Arm:
    """One arm's mutable statistics."""

    A: FloatArray
    b: FloatArray
    count: int = 0


@dataclass
class _Namespace:
    """A namespace's layout, catalogue and versions; versions
    outlive removal so an arm added back never repeats one."""

    layout: Layout
    arms: dict[str, _Arm] = field(default_factory=dict)
    versions: dict[str, int] = field(default_factory=dict)


class MemoryStore(PolicyStore):
    """Per-namespace numpy arrays behind one lock."""

    def __init__(self, *, refresh_interval: float = 1.0) -> None:
        super().__init__(refresh_interval=refresh_interval)
        self._data: dict[str, _Namespace] = {}
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
            data.arms[arm] = _Arm(*data.layout.initial())
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
    ) -> int:
        """``A`` and ``b`` updated in place (rank 1 by BLAS ``dger``), count + 1."""
        data = self._namespace(namespace)
        with self._lock:
            stats = data.arms.get(arm)
            if stats is None:
                raise removed(namespace, [arm])
            if decay != 1.0:
                ridge = data.layout.ridge
                stats.A *= decay
                stats.A[np.diag_indices_from(stats.A)] += (1.0 - decay) * ridge
                stats.b *= decay
            # A is symmetric, so its transpose is the Fortran-ordered view dger writes.
            blas.dger(1.0, x, x, a=stats.A.T, overwrite_a=True)
            stats.b += score * x
            stats.count += 1
            data.versions[arm] += 1
            return data.versions[arm]

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
                [_state(data.arms[a]) for a in arms],
                [data.versions[a] for a in arms],
            )

    def _create(self, namespace: str, layout: Layout) -> Layout:
        with self._lock:
            data = self._data.setdefault(namespace, _Namespace(layout))
            return data.layout

    def _rewrite(
        self, namespace: str, arms: list[str], change: Change, *, drop_log: bool
    ) -> list[int]:
        data = self._namespace(namespace)
        with self._lock:
            missing = [a for a in arms if a not in data.arms]
            if missing:
                raise removed(namespace, missing)
            new = {a: change(a, *_state(data.arms[a])) for a in arms}
            for a, (A, b, n) in new.items():  # noqa: N806
                data.arms[a] = _Arm(A.copy(), b.copy(), n)
                data.versions[a] += 1
            return [data.versions[a] for a in arms]

    def _namespace(self, namespace: str) -> _Namespace:
        self.layout(namespace)  # refuses a namespace this object never created
        return self._data[namespace]


def _state(arm: _Arm) -> ArmState:
    """A copy of ``arm``'s ``(A, b, count)``."""
    return arm.A.copy(), arm.b.copy(), arm.count
