"""Routing when the embedder fails: answer anyway, from a default child.

If the embedder raises (an outage: network, rate limit, timeout), the call is not
lost: it goes to ``default_model`` if set, else to the child with the best mean
learned reward, else (nothing learned yet) to the cheapest child; the others
follow in cost order as fallbacks. Without an embedding there is no context to
learn from, so the answer's feedback is refused; ``stats()["embedding_failures"]``
counts these calls, ``response_metadata["metallm"]["embedding_failed"]`` marks
them and the first one warns. Vectors the router cannot use (wrong count or
dimension, NaN) still raise ``BadEmbeddingsError``: that is a misconfiguration.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence

from langchain_metallm.policy import LinUCBPolicy, RouteDecision

NO_CONTEXT = (
    "could not be embedded (the embedder failed), so there is no context to learn from"
)
"""Why feedback on a call routed without an embedding is refused."""


class BadEmbeddingsError(ValueError):
    """The embedder answered, but with vectors the router cannot use (wrong
    count or dimension, NaN): a misconfiguration, refused rather than routed
    around."""


def default_arm(
    arms: Sequence[str],
    costs: Mapping[str, float],
    policy: LinUCBPolicy | None,
    default_model: str | None,
) -> int:
    """The arm that answers without an embedding (see the module docstring)."""
    if default_model is not None:
        return list(arms).index(default_model)
    best = None if policy is None else policy.best_mean_arm()
    if best is not None:
        return best
    return min(range(len(arms)), key=lambda j: costs[arms[j]])


def blind_decisions(
    arms: Sequence[str], costs: Mapping[str, float], first: int
) -> Iterator[RouteDecision]:
    """``first``, then the other arms from cheapest to priciest, with no estimates."""
    unknown = tuple(math.nan for _ in arms)
    others = sorted(set(range(len(arms))) - {first}, key=lambda j: costs[arms[j]])
    order = [first, *others]
    for arm in order:
        yield RouteDecision(arm, arms[arm], math.nan, math.nan, unknown)
