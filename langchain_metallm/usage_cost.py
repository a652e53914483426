"""Cost of one answer from its token usage (``cost_mode="usage"``), normalised.

An answer from model ``m`` costs ``(input_tokens * in_m + output_tokens * out_m)
/ 1e6`` dollars, with ``prices[m] = (in_m, out_m)`` in dollars per million tokens.
It is normalised by the reference cost: what the most expensive model charges for
one reference call of ``reference_tokens = (input, output)`` tokens. A
reference-sized answer of the priciest model so costs 1, as that model's fixed
cost does; longer answers cost more than 1, shorter ones less.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

from langchain_core.messages import BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage

Prices = dict[str, tuple[float, float]]
"""Per model ``(input, output)`` list price in dollars per million tokens."""


def check_prices(
    prices: Mapping[str, tuple[float, float]],
    models: Iterable[str],
    reference_tokens: tuple[int, int],
) -> None:
    """Raise ValueError unless ``prices`` covers exactly ``models`` with valid
    pairs and a reference call costs more than $0 on the priciest model."""
    names = list(models)
    if set(prices) != set(names):
        missing = sorted(set(names) - set(prices))
        extra = sorted(set(prices) - set(names))
        raise ValueError(f"prices: missing for {missing}, unknown names {extra}")
    for name, pair in prices.items():
        if len(pair) != 2 or not all(math.isfinite(p) and p >= 0 for p in pair):
            raise ValueError(
                f"prices: {name!r} must be (input, output) $/Mtok, finite and >= 0,"
                f" got {pair!r}"
            )
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


def normalised_cost(
    usage: UsageMetadata,
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
    return max(token_dollars(*reference_tokens, price) for price in prices.values())


def dollars(usage: UsageMetadata, price: tuple[float, float]) -> float:
    """What ``usage`` costs at ``price`` = ($/Mtok input, $/Mtok output)."""
    return token_dollars(usage["input_tokens"], usage["output_tokens"], price)


def token_dollars(
    input_tokens: int, output_tokens: int, price: tuple[float, float]
) -> float:
    """What a call of these token counts costs at ``price`` ($/Mtok in, out)."""
    return (input_tokens * price[0] + output_tokens * price[1]) / 1e6


class UsageTally:
    """Sums the token usage reported by streamed chunks."""

    def __init__(self) -> None:
        self.usage: UsageMetadata | None = None

    def add(self, message: BaseMessage) -> None:
        """Add ``message``'s ``usage_metadata``, if it has any."""
        usage = getattr(message, "usage_metadata", None)
        if usage:
            self.usage = add_usage(self.usage, usage)
