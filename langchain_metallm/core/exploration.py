"""Exploration: on a random share of calls, every other child is also called.

Live routing shows the router one child's score per call. On a call drawn with
probability ``explore_rate``, the adapter also calls every child except the one
that answers, in the background, and their scored answers are learned like
feedback. We explore all the others rather than one at random or the router's
runner-up: an explored call then observes every child, so the explored calls are
a uniform random sample with full information. That gives unbiased replay
estimates of any routing rule (``evaluation``) and full rows to learn from (a
router fitted on full rows reaches what live learning misses; issue 16), at the
price of ``k - 1`` child calls per explored call; ``benchmarks/shadow.py``
measures what that information buys per dollar.

``explore_budget`` caps the spend: each routed call earns that much normalised
cost of credit (at most ``CREDIT_CALLS`` calls' worth is kept), and a drawn call
is explored only if its children's costs fit in the credit. The draw and the cap
never look at the query, so explored calls stay a random sample of traffic.
"""

from __future__ import annotations

import threading

import numpy as np

from langchain_metallm.core.catalogue import Catalogue

CREDIT_CALLS = 100
"""Routed calls' worth of exploration credit that may accumulate."""


class Exploration:
    """Draws the calls to explore and counts what exploration did; thread-safe."""

    def __init__(self, seed: int | None = None) -> None:
        self._rng = np.random.default_rng(seed)
        self._credit = 0.0
        self._counts = {"explored": 0, "explored_calls": 0, "explore_errors": 0}
        self._spend = 0.0
        self._lock = threading.Lock()

    def draw(
        self,
        catalogue: Catalogue,
        answering: str,
        rate: float,
        budget: float | None,
    ) -> tuple[str, ...]:
        """The children to call in the background besides ``answering`` (none
        unless this call is drawn and its cost fits the budget's credit)."""
        if rate <= 0.0:
            return ()
        others = tuple(name for name in catalogue.names if name != answering)
        cost = sum(catalogue.cost(name) for name in others)
        with self._lock:
            if budget is not None:
                self._credit = min(self._credit + budget, CREDIT_CALLS * budget)
            if self._rng.random() >= rate:
                return ()
            if budget is not None:
                if cost > self._credit:
                    return ()
                self._credit -= cost
            self._counts["explored"] += 1
            return others

    def answered(self, cost: float) -> None:
        """Count one explored child's answer and its normalised cost."""
        with self._lock:
            self._counts["explored_calls"] += 1
            self._spend += cost

    def failed(self) -> None:
        """Count one explored child whose call or scorer failed."""
        with self._lock:
            self._counts["explore_errors"] += 1

    def stats(self) -> dict[str, float]:
        """``explored`` calls, ``explored_calls`` answered in the background,
        their ``explored_spend`` (normalised cost) and ``explore_errors``."""
        with self._lock:
            return {**self._counts, "explored_spend": self._spend}
