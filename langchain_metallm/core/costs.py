"""Costs: token prices and dollars, and the reward arithmetic of old saves.

A catalogue (``catalogue.Catalogue``) normalises every cost the router decides
with: a child's fixed cost over the priciest child's when the router was built,
or with ``cost_mode="usage"`` an answer's dollars, ``(input_tokens * in_m +
output_tokens * out_m) / 1e6`` with ``prices[m] = (in_m, out_m)`` in dollars per
million tokens, over what the priciest child charged for one reference call of
``reference_tokens`` tokens. This module holds the pieces: checked prices,
dollars of a usage, the reference call's dollars, cost vectors in arm order.

The policy learns each child's SCORE; cost enters only when deciding (the
penalty ``p * cost`` in ``decision.rank``), so a new cost weight, budget or
price needs no relearning. Saves before format 3 learned rewards ``score - p *
cost``; ``scores_from_rewards`` converts their statistics exactly.
``reward_matrix`` is that reward per query and model, which the benchmark
chooses by. Plain Python and numpy: no LangChain here.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]
Prices = dict[str, tuple[float, float]]
"""Per model ``(input, output)`` list price in dollars per million tokens."""
Price = float | tuple[float, float]
"""US dollars per million tokens: one price, or (input, output) prices."""
Usage = Mapping[str, Any]
"""Token usage with at least ``input_tokens`` and ``output_tokens``."""


def normalized_costs(
    costs: Mapping[str, float], models: Sequence[str]
) -> dict[str, float]:
    """Each model's cost divided by the largest, so the priciest costs 1."""
    top = max(costs.values())
    return {name: costs[name] / top for name in models}


def cost_vector(arms: Sequence[str], costs: Mapping[str, float]) -> FloatArray:
    """Normalised cost of each arm, in arm order."""
    return np.array([costs[name] for name in arms], dtype=np.float64)


def reward_matrix(
    scores: FloatArray, cost: FloatArray, cost_weight: float
) -> FloatArray:
    """``score - cost_weight * cost`` per row and arm; NaN stays NaN."""
    return scores - cost_weight * cost[None, :]


def scores_from_rewards(
    ridge: float,
    A: FloatArray,  # noqa: N803
    b: FloatArray,
    counts: NDArray[np.int64],
    cost: FloatArray,
    cost_weight: float,
) -> FloatArray:
    """``b`` of statistics learned on rewards ``score - p * c_j`` turned into ``b``
    of the same outcomes' scores: ``b + p * c_j * sum x`` (exact; contexts end in
    the bias 1, so ``sum x`` is the last column of ``A_j - ridge * I``)."""
    sums = context_sums(ridge, A, counts)
    converted: FloatArray = b + cost_weight * cost[:, None] * sums
    return converted


def context_sums(
    ridge: float,
    A: FloatArray,  # noqa: N803
    counts: NDArray[np.int64],
) -> FloatArray:
    """Each arm's sum of learned contexts, read off the bias column of ``A``."""
    sums: FloatArray = A[:, :, -1].copy()
    sums[:, -1] -= ridge
    if not np.allclose(sums[:, -1], counts, rtol=1e-9, atol=1e-6):
        raise ValueError(
            "policy: its statistics were not learned on contexts ending in the "
            "bias feature 1, so rewards cannot be turned into scores exactly"
        )
    return sums


def check_prices(
    prices: Mapping[str, Price], models: Iterable[str]
) -> dict[str, tuple[float, float]]:
    """``prices`` as (input, output) $/Mtok for exactly ``models``; a single
    number is both. ValueError names the first bad entry."""
    names = list(models)
    if set(prices) != set(names):
        missing = sorted(set(names) - set(prices))
        extra = sorted(set(prices) - set(names))
        raise ValueError(f"prices: missing for {missing}, unknown names {extra}")
    checked: dict[str, tuple[float, float]] = {}
    for name, price in prices.items():
        pair = price if isinstance(price, (tuple, list)) else (price, price)
        if len(pair) != 2 or not all(_is_price(p) for p in pair):
            raise ValueError(
                f"prices: {name!r} must be a $/Mtok number >= 0 or an "
                f"(input, output) pair of them, got {price!r}"
            )
        checked[name] = (float(pair[0]), float(pair[1]))
    return checked


def check_reference(prices: Prices, reference_tokens: tuple[int, int]) -> None:
    """Raise ValueError unless ``reference_tokens`` are two counts >= 0 and a
    reference call costs more than $0 on the priciest model."""
    if len(reference_tokens) != 2 or not all(
        isinstance(n, int) and n >= 0 for n in reference_tokens
    ):
        raise ValueError(
            "reference_tokens: must be (input, output) token counts >= 0, "
            f"got {reference_tokens!r}"
        )
    if reference_dollars(prices, reference_tokens) <= 0:
        raise ValueError(
            "prices/reference_tokens: a reference call must cost more than $0 on "
            f"the priciest model, got {dict(prices)} and {reference_tokens}"
        )


def reference_dollars(
    prices: Mapping[str, tuple[float, float]], reference_tokens: tuple[int, int]
) -> float:
    """Dollars the priciest model charges for one reference-sized call."""
    reference = {
        "input_tokens": reference_tokens[0],
        "output_tokens": reference_tokens[1],
    }
    return max(dollars(reference, price) for price in prices.values())


def dollars(usage: Usage, price: tuple[float, float]) -> float:
    """What ``usage`` costs at ``price`` = ($/Mtok input, $/Mtok output)."""
    tokens_in, tokens_out = int(usage["input_tokens"]), int(usage["output_tokens"])
    return (tokens_in * price[0] + tokens_out * price[1]) / 1e6


def _is_price(value: object) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )
