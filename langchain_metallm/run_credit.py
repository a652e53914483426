"""Credit for a whole chain or agent run: the routed calls made under a run.

A ``MetaLLMFeedbackHandler`` attached to a run sees every nested run start with its
parent, so it can tell which routed calls were made under any run, at any depth
(a LangGraph agent's model calls sit several runs below the graph's root).
Rewarding a run gives every routed call under it that still awaits feedback the
run's score: each decision shared in the outcome, and splitting the score would
make the router learn that calls in long runs (several tool steps) are worse than
calls in short ones. The router learns scores; cost is weighed only when it
decides, so no call's cost enters what it learns.

Each routed call is filed under every run above it when it starts, so crediting
a run takes its calls out of one index instead of scanning every call.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from uuid import UUID

_CAPACITY = 100_000
"""Runs remembered (oldest forgotten first), bounding memory per handler."""


class RunTree:
    """Bounded, thread-safe parent links of the runs a handler saw, and which of
    them were routed calls."""

    def __init__(self, capacity: int = _CAPACITY) -> None:
        self.capacity = capacity
        self._parents: OrderedDict[UUID, UUID | None] = OrderedDict()
        self._under: OrderedDict[UUID, list[UUID]] = OrderedDict()
        self._routed: OrderedDict[UUID, None] = OrderedDict()
        self._lock = threading.Lock()

    def started(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        """Remember that ``run_id`` runs under ``parent_run_id``."""
        with self._lock:
            self._parents[run_id] = parent_run_id
            while len(self._parents) > self.capacity:
                self._parents.popitem(last=False)

    def routed(self, run_id: UUID) -> None:
        """Remember that ``run_id`` is a routed call awaiting feedback, filed
        under itself and every run above it."""
        with self._lock:
            self._routed[run_id] = None
            for ancestor in self._lineage(run_id):
                self._under.setdefault(ancestor, []).append(run_id)
            while len(self._routed) > self.capacity:
                self._routed.popitem(last=False)
            while len(self._under) > self.capacity:
                self._under.popitem(last=False)

    def is_root(self, run_id: UUID) -> bool:
        """Whether ``run_id`` started with no parent."""
        with self._lock:
            return run_id in self._parents and self._parents[run_id] is None

    def knows(self, run_id: UUID) -> bool:
        """Whether ``run_id`` is a run this tree saw start or be routed."""
        with self._lock:
            return run_id in self._parents or run_id in self._under

    def take_routed_under(self, run_id: UUID) -> list[UUID]:
        """The routed calls made under ``run_id`` (or that are it) not taken
        yet, forgotten."""
        with self._lock:
            found = [
                r for r in self._under.pop(run_id, []) if self._routed.pop(r, 0) is None
            ]
            return found

    def _lineage(self, run_id: UUID) -> list[UUID]:
        """``run_id`` and the runs above it, nearest first."""
        lineage: list[UUID] = []
        current: UUID | None = run_id
        while current is not None and current not in lineage:
            lineage.append(current)
            current = self._parents.get(current)
        return lineage
