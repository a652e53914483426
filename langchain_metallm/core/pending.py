"""Decisions awaiting a reward: run id -> (child, context, cost), bounded and timed.

A routed call leaves one here; feedback takes it out exactly once, so a reward is
never applied twice nor to another run's arm. Plain Python: no LangChain.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray


class FeedbackError(ValueError):
    """Feedback that cannot be applied: unknown, evicted or already rewarded run."""


@dataclass(frozen=True)
class PendingDecision:
    """What a routed call needs to be rewarded later: who answered, and on what."""

    child: str
    """The child that answered."""
    generation: int
    """The child's catalogue generation then (a name re-added is a new child)."""
    context: NDArray[np.float64]
    """The context it was routed on."""
    cost: float
    """Normalised cost of the answer."""


class PendingDecisions:
    """Bounded, thread-safe table of decisions awaiting a reward.

    At most ``capacity`` decisions wait (the oldest is evicted), each for at most
    ``ttl`` seconds if given (then it expires). The table also remembers
    (boundedly) which runs were rewarded, evicted or expired, so late or repeated
    feedback gets an error saying which, and is never applied to another run's arm.
    ``stats()`` counts applied, refused, expired and evicted feedback.
    """

    def __init__(
        self,
        capacity: int,
        ttl: float | None = None,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if capacity < 1:
            raise ValueError(f"max_pending: must be >= 1, got {capacity}")
        if ttl is not None and not (math.isfinite(ttl) and ttl > 0):
            raise ValueError(f"pending_ttl: must be a finite number > 0, got {ttl}")
        self.capacity = capacity
        self.ttl = ttl
        self.clock = clock
        self._pending: OrderedDict[str, tuple[PendingDecision, float]] = OrderedDict()
        self._closed: OrderedDict[str, str] = OrderedDict()
        self._counts = dict.fromkeys(
            (
                "applied",
                "refused",
                "expired",
                "evicted",
                "scorer_errors",
                "embedding_failures",
            ),
            0,
        )
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            self._expire()
            return len(self._pending)

    def __contains__(self, run_id: object) -> bool:
        with self._lock:
            self._expire()
            return str(run_id) in self._pending

    def add(self, run_id: str, decision: PendingDecision) -> None:
        """Remember ``decision`` for ``run_id``, evicting the oldest when full.

        A run id seen before is refused (``ValueError``): its feedback could not
        tell the two decisions apart.
        """
        with self._lock:
            self._check_unused(run_id)
            self._expire()
            self._pending[run_id] = (decision, self.clock())
            while len(self._pending) > self.capacity:
                evicted, _ = self._pending.popitem(last=False)
                self._close(evicted, "was evicted from the pending table")
                self._counts["evicted"] += 1

    def check_unused(self, run_id: str) -> None:
        """Refuse (``ValueError``) a run id already routed, before any child call."""
        with self._lock:
            self._check_unused(run_id)

    def refuse(self, run_id: str, reason: str) -> None:
        """Mark ``run_id`` as a run that cannot be rewarded, saying why."""
        with self._lock:
            self._close(run_id, reason)

    def count(self, event: str) -> None:
        """Count a call-side ``event``: ``scorer_errors`` (a scorer or feedback
        event gave no valid score) or ``embedding_failures`` (routed blind)."""
        with self._lock:
            self._counts[event] += 1

    def take(self, run_id: str) -> PendingDecision:
        """Remove and return the decision for ``run_id``, or raise ``FeedbackError``."""
        with self._lock:
            self._expire()
            entry = self._pending.pop(run_id, None)
            if entry is None:
                self._counts["refused"] += 1
                reason = self._closed.get(run_id, "is unknown to this router")
                raise FeedbackError(f"run_id {run_id}: {reason}; feedback not applied")
            self._close(run_id, "was already rewarded")
            self._counts["applied"] += 1
            return entry[0]

    def count_refused(self) -> None:
        """Count a taken decision as refused after all (its child is gone)."""
        with self._lock:
            self._counts["applied"] -= 1
            self._counts["refused"] += 1

    def restore(self, run_id: str, decision: PendingDecision) -> None:
        """Put back a decision taken for an update that then failed."""
        with self._lock:
            self._closed.pop(run_id, None)
            self._pending[run_id] = (decision, self.clock())
            self._counts["applied"] -= 1

    def stats(self) -> dict[str, int]:
        """Counters: decisions ``pending`` now, feedback ``applied`` and
        ``refused``, decisions ``expired`` (ttl) or ``evicted`` (capacity), and the
        ``count``ed ``scorer_errors`` and ``embedding_failures``."""
        with self._lock:
            self._expire()
            return {"pending": len(self._pending), **self._counts}

    def _expire(self) -> None:
        """Drop decisions older than ``ttl`` (the table is in insertion order)."""
        if self.ttl is None:
            return
        deadline = self.clock() - self.ttl
        while self._pending:
            run_id, (_, added) = next(iter(self._pending.items()))
            if added > deadline:
                return
            del self._pending[run_id]
            self._close(run_id, f"expired after {self.ttl:g} s without feedback")
            self._counts["expired"] += 1

    def _check_unused(self, run_id: str) -> None:
        if run_id in self._pending or run_id in self._closed:
            raise ValueError(f"run_id {run_id}: already routed; run ids must be unique")

    def _close(self, run_id: str, reason: str) -> None:
        self._closed[run_id] = reason
        while len(self._closed) > self.capacity:
            self._closed.popitem(last=False)
