"""Costs: normalised costs, token prices, and the decision-time trade-off.

Every cost the router decides with is normalised so the priciest child costs 1:

- ``cost_mode="fixed"`` (MetaLLM): a child's ``costs`` entry over the largest one.
- ``cost_mode="usage"``: an answer's dollars, ``(input_tokens * in_m +
  output_tokens * out_m) / 1e6`` with ``prices[m] = (in_m, out_m)`` in dollars
  per million tokens, over what the priciest child charges for one reference call
  of ``reference_tokens = (input, output)`` tokens (so a reference-sized answer of
  the priciest child costs 1, as its fixed cost does).

The policy learns each child's SCORE; cost enters only when deciding, as the
penalty ``p * cost`` (``penalty``), so a new cost weight, budget or price needs no
relearning. Saves before format 3 learned rewards ``score - p * cost``;
``scores_from_rewards`` converts their statistics exactly. ``reward_matrix`` is
that reward per query and model, which the benchmark chooses by. Plain Python and
numpy: no LangChain here.
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


def check_costs(costs: Mapping[str, float], models: Iterable[str]) -> None:
    """Raise ValueError unless ``costs`` names exactly ``models``, each finite and
    >= 0, at least one > 0."""
    names = list(models)
    if set(costs) != set(names):
        missing = sorted(set(names) - set(costs))
        extra = sorted(set(costs) - set(names))
        raise ValueError(f"costs: missing for {missing}, unknown names {extra}")
    for name, cost in costs.items():
        if not math.isfinite(cost) or cost < 0:
            raise ValueError(f"costs: {name!r} must be finite and >= 0, got {cost}")
    if max(costs.values()) == 0:
        raise ValueError("costs: at least one cost must be > 0")


def check_cost_weight(cost_weight: object) -> float:
    """``cost_weight`` as a float, refusing anything but a finite number >= 0."""
    if isinstance(cost_weight, bool) or not isinstance(cost_weight, (int, float)):
        raise TypeError(f"cost_weight: expected a number, got {cost_weight!r}")
    if not math.isfinite(cost_weight) or cost_weight < 0:
        raise ValueError(f"cost_weight: must be finite and >= 0, got {cost_weight}")
    return float(cost_weight)


def normalized_costs(
    costs: Mapping[str, float], models: Sequence[str]
) -> dict[str, float]:
    """Each model's cost divided by the largest, so the priciest costs 1."""
    top = max(costs.values())
    return {name: costs[name] / top for name in models}


def cost_vector(arms: Sequence[str], costs: Mapping[str, float]) -> FloatArray:
    """Normalised cost of each arm, in arm order."""
    return np.array([costs[name] for name in arms], dtype=np.float64)


def penalty(
    arms: Sequence[str], costs: Mapping[str, float], weight: float
) -> FloatArray:
    """What each arm's value loses at decision time: ``weight * cost``, in arm order."""
    return weight * cost_vector(arms, costs)


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


def usage_cost(
    usage: Usage,
    model: str,
    prices: Mapping[str, tuple[float, float]],
    reference_tokens: tuple[int, int],
) -> float:
    """``usage``'s dollars at ``model``'s price over the reference call's dollars."""
    return dollars(usage, prices[model]) / reference_dollars(prices, reference_tokens)


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
