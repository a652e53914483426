"""``Decision``: one routing choice as a record, and ``rank``, the rule that makes it.

Every ordering rule lives in ``rank``: predicted score less the cost penalty plus
the exploration bonus (LinUCB), wider for children added live, the plan of
a planned batch, a sticky tool loop, the outage default (no embedding), cooldown
order, and the fallback ranking of the rest. The adapter only calls children in
``Decision.order``; ``RouterCore.register`` completes the record with who
answered and what it cost.

A ``Decision`` holds what is needed to evaluate a policy offline (as Vowpal
Wabbit's ``action:cost:probability`` logs do): every child's estimates, the cost
weight, and the probability the chosen child had under the rule that chose it
(1.0 for the deterministic argmax). It holds no prompt text.
"""

from __future__ import annotations

import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any

import numpy as np

from langchain_metallm.core.catalogue import Catalogue

NEWCOMER_ALPHA = 0.3
"""Exploration scale of a child added live (a fitted router's is 0.1): its only
evidence is its own outcomes, so at 0.1 a few unlucky ones would write it off
where it is better (issue 22: a new best child kept 23% of calls, not 39%)."""
NEWCOMER_FADE = 1_000
"""A newcomer's own outcomes that bring its scale halfway back to the router's."""


@dataclass(frozen=True)
class Estimates:
    """The learner's view of one context: per child, its predicted score, its
    confidence width ``sqrt(x^T A^-1 x)`` and how many outcomes it has learned
    from; ``alpha`` scales a width into an exploration bonus."""

    predicted: Mapping[str, float]
    width: Mapping[str, float]
    counts: Mapping[str, int]
    alpha: float


@dataclass(frozen=True)
class Decision:
    """One routing choice: who was chosen, in which order children are tried,
    and why (see the module docstring)."""

    run_id: str
    """The LangChain run id of the routed call; feedback names it."""
    chosen: str
    """The child the rule chose."""
    order: tuple[str, ...]
    """Children in the order they are tried (cooling ones last)."""
    predicted: Mapping[str, float]
    """Each child's predicted score (NaN without an embedding)."""
    penalty: Mapping[str, float]
    """Each child's cost penalty ``cost_weight * normalised cost``."""
    bonus: Mapping[str, float]
    """Each child's exploration bonus, a newcomer's widened (NaN without an
    embedding)."""
    value: Mapping[str, float]
    """Each child's decision value: predicted score - penalty + bonus (NaN
    without an embedding)."""
    cost_weight: float
    """The cost weight ``p`` of this decision."""
    time: float = field(default_factory=time.time)
    """When it was made (seconds since the epoch)."""
    probability: float = 1.0
    """The chance the rule had of choosing ``chosen`` (1.0: deterministic)."""
    sticky: bool = False
    """``chosen`` continues the tool loop it started."""
    planned: bool = False
    """``chosen`` was assigned by a planned batch."""
    outage: bool = False
    """No embedding: ``chosen`` is the default child, the rest by cost."""
    shadow: bool = False
    """Shadow mode: the incumbent answers (first in ``order``), not ``chosen``."""
    explored: tuple[str, ...] = ()
    """Children also called in the background for their scores (exploration)."""
    explore_probability: float = 0.0
    """The chance each explorable child had of being explored on this call."""
    query_hash: str | None = None
    """sha256 of the routed text (never the text itself)."""
    cooldown: tuple[str, ...] = ()
    """Children tried last because they are cooling down."""
    answered: str | None = None
    """The child that answered (set by ``RouterCore.register``)."""
    fallback: bool = False
    """The answer came from a child after the first in ``order``."""
    cost: float | None = None
    """The answer's normalised cost (set by ``RouterCore.register``)."""
    task: str | None = None
    """The task or cluster the context was routed as, if any."""

    def answered_by(self, name: str, cost: float, task: str | None) -> Decision:
        """This decision completed with the child that answered and its cost."""
        return replace(
            self, answered=name, fallback=name != self.order[0], cost=cost, task=task
        )

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict of every field."""
        record = {k: getattr(self, k) for k in self.__dataclass_fields__}
        for key in ("predicted", "penalty", "bonus", "value"):
            record[key] = dict(record[key])
        for key in ("order", "cooldown", "explored"):
            record[key] = list(record[key])
        return record


def rank(
    run_id: str,
    catalogue: Catalogue,
    estimates: Estimates | None,
    *,
    cost_weight: float,
    fallback_to: str | None = None,
    planned: str | None = None,
    sticky: str | None = None,
    shadow: str | None = None,
    cooling: Sequence[str] = (),
    query_hash: str | None = None,
) -> Decision:
    """The decision for one call (see the module docstring).

    ``estimates`` None means no embedding: ``fallback_to`` (the default child,
    else the best by mean score) answers, else the cheapest, the rest by cost.
    ``planned`` or ``sticky`` name the child a plan or tool loop already chose.
    ``shadow`` (an incumbent) answers first while ``chosen`` stays the rule's.
    Children the estimates do not know yet (added a moment ago) are left out.
    """
    costs = catalogue.normalized
    if estimates is None:
        names = list(catalogue.names)
        penalty = {name: cost_weight * costs[name] for name in names}
        first = (
            fallback_to if fallback_to in costs else min(names, key=costs.__getitem__)
        )
        rest = sorted((n for n in names if n != first), key=costs.__getitem__)
        order = [first, *rest]
        unknown = MappingProxyType(dict.fromkeys(names, math.nan))
        return _cooled(
            Decision(
                run_id,
                first,
                tuple(order),
                unknown,
                MappingProxyType(penalty),
                unknown,
                unknown,
                cost_weight,
                outage=True,
                query_hash=query_hash,
            ),
            cooling,
        )
    names = [name for name in catalogue.names if name in estimates.predicted]
    penalty = {name: cost_weight * costs[name] for name in names}
    alpha = estimates.alpha
    bonus = {
        name: estimates.width[name]
        * (
            newcomer_alpha(alpha, estimates.counts[name])
            if name in catalogue.newcomers
            else alpha
        )
        for name in names
    }
    value = {
        name: estimates.predicted[name] - penalty[name] + bonus[name] for name in names
    }
    ordered = sorted(names, key=lambda n: -value[n])  # stable: catalogue order
    forced = planned if planned in value else sticky if sticky in value else None
    chosen = ordered[0] if forced is None else forced
    first = shadow if shadow in value else chosen
    order = [first, chosen, *(n for n in ordered if n not in (first, chosen))]
    order = list(dict.fromkeys(order))
    decision = Decision(
        run_id,
        chosen,
        tuple(order),
        MappingProxyType({n: estimates.predicted[n] for n in names}),
        MappingProxyType(penalty),
        MappingProxyType(bonus),
        MappingProxyType(value),
        cost_weight,
        sticky=forced is not None and forced == sticky and planned is None,
        planned=forced is not None and forced == planned,
        shadow=shadow is not None and first == shadow,
        query_hash=query_hash,
    )
    return _cooled(decision, cooling)


def newcomer_alpha(alpha: float, outcomes: int) -> float:
    """A newcomer's exploration scale after ``outcomes`` of its own: from
    ``NEWCOMER_ALPHA`` fading to the router's ``alpha`` (never below it; at
    ``alpha=0`` a newcomer is still tried, or it could never be learned)."""
    fade = NEWCOMER_FADE / (NEWCOMER_FADE + outcomes)
    return alpha + max(NEWCOMER_ALPHA - alpha, 0.0) * fade


def estimates_of(
    arms: Sequence[str],
    mean: np.ndarray[Any, Any],
    width: np.ndarray[Any, Any],
    counts: np.ndarray[Any, Any],
    alpha: float,
) -> Estimates:
    """``Estimates`` keyed by child name from a learner's arrays in ``arms``
    order, explored at ``alpha``."""
    return Estimates(
        predicted=dict(zip(arms, map(float, mean), strict=True)),
        width=dict(zip(arms, map(float, width), strict=True)),
        counts=dict(zip(arms, map(int, counts), strict=True)),
        alpha=alpha,
    )


def _cooled(decision: Decision, cooling: Sequence[str]) -> Decision:
    """``decision`` with its cooling children moved to the end of its order."""
    deferred = tuple(n for n in decision.order if n in cooling)
    if not deferred:
        return decision
    order = tuple(n for n in decision.order if n not in cooling) + deferred
    return replace(decision, order=order, cooldown=deferred)
