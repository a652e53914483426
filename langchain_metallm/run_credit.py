"""Credit for a whole chain or agent run: the routed calls made under a run.

A ``MetaLLMFeedbackHandler`` attached to a run sees every nested run start with its
parent, so it can tell which routed calls were made under any run, at any depth
(a LangGraph agent's model calls sit several runs below the graph's root).
Rewarding a run gives every routed call under it that still awaits feedback the
run's score: each decision shared in the outcome, and splitting the score would
make the router learn that calls in long runs (several tool steps) are worse than
calls in short ones. Each call's reward still subtracts its own child's cost.
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
        self._routed: OrderedDict[UUID, None] = OrderedDict()
        self._lock = threading.Lock()

    def started(self, run_id: UUID, parent_run_id: UUID | None) -> None:
        """Remember that ``run_id`` runs under ``parent_run_id``."""
        with self._lock:
            self._parents[run_id] = parent_run_id
            while len(self._parents) > self.capacity:
                self._parents.popitem(last=False)

    def routed(self, run_id: UUID) -> None:
        """Remember that ``run_id`` is a routed call awaiting feedback."""
        with self._lock:
            self._routed[run_id] = None
            while len(self._routed) > self.capacity:
                self._routed.popitem(last=False)

    def is_root(self, run_id: UUID) -> bool:
        """Whether ``run_id`` started with no parent."""
        with self._lock:
            return run_id in self._parents and self._parents[run_id] is None

    def take_routed_under(self, run_id: UUID) -> list[UUID]:
        """The routed calls made under ``run_id`` (or that are it), forgotten."""
        with self._lock:
            found = [r for r in self._routed if self._descends(r, run_id)]
            for routed in found:
                del self._routed[routed]
            return found

    def _descends(self, run_id: UUID, ancestor: UUID) -> bool:
        seen: set[UUID] = set()
        current: UUID | None = run_id
        while current is not None and current not in seen:
            if current == ancestor:
                return True
            seen.add(current)
            current = self._parents.get(current)
        return False
