"""``MemoryStore``: statistics in this process's memory, the default store.

Nothing is written anywhere; policies sharing one ``MemoryStore`` object (and
namespace) learn together within a process. ``add`` updates ``A`` in place with
scipy's BLAS, the same library as the policy's hot path.
"""

from __future__ import annotations

import threading

import numpy as np
from scipy.linalg import blas

from langchain_metallm.stores.base import (
    Change,
    FloatArray,
    IntArray,
    Layout,
    PolicyStore,
    Statistics,
)


class MemoryStore(PolicyStore):
    """Per-namespace numpy arrays behind one lock."""

    def __init__(self, *, refresh_interval: float = 1.0) -> None:
        super().__init__(refresh_interval=refresh_interval)
        self._data: dict[str, tuple[Layout, Statistics]] = {}
        self._lock = threading.Lock()

    def add(self, namespace: str, arm: int, x: FloatArray, reward: float) -> int:
        """``A[arm] += x x^T`` (in place, rank 1), ``b[arm] += reward x``, count + 1."""
        data = self._namespace(namespace)
        with self._lock:
            # A is symmetric, so its transpose is the Fortran-ordered view dger writes.
            blas.dger(1.0, x, x, a=data.A[arm].T, overwrite_a=True)
            data.b[arm] += reward * x
            data.counts[arm] += 1
            data.versions[arm] += 1
            return int(data.versions[arm])

    def versions(self, namespace: str) -> IntArray:
        data = self._namespace(namespace)
        with self._lock:
            versions: IntArray = data.versions.copy()
            return versions

    def read(self, namespace: str) -> Statistics:
        data = self._namespace(namespace)
        with self._lock:
            return Statistics(
                data.A.copy(), data.b.copy(), data.counts.copy(), data.versions.copy()
            )

    def _create(self, namespace: str, layout: Layout) -> Layout:
        with self._lock:
            if namespace not in self._data:
                k = len(layout.arms)
                a, b = layout.initial()
                self._data[namespace] = (
                    layout,
                    Statistics(
                        np.repeat(a[None], k, axis=0),
                        np.repeat(b[None], k, axis=0),
                        np.zeros(k, dtype=np.int64),
                        np.zeros(k, dtype=np.int64),
                    ),
                )
            return self._data[namespace][0]

    def _rewrite(
        self, namespace: str, arms: list[int], change: Change, *, drop_log: bool
    ) -> list[int]:
        data = self._namespace(namespace)
        with self._lock:
            new = {
                j: change(j, data.A[j], data.b[j], int(data.counts[j])) for j in arms
            }
            for j, (a, b, n) in new.items():
                data.A[j], data.b[j], data.counts[j] = a, b, n
                data.versions[j] += 1
            return [int(data.versions[j]) for j in arms]

    def _namespace(self, namespace: str) -> Statistics:
        self.layout(namespace)  # refuses a namespace this object never created
        return self._data[namespace][1]
