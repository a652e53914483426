"""The catalogue: the children a router may call, by name, with what each costs.

A ``Catalogue`` is immutable; ``with_child``, ``without_child`` and
``with_costs`` return a new one, and ``RouterCore`` swaps it in one assignment,
so a call sees either the old catalogue or the new one, never half of each.

Costs are normalised by the catalogue's ``unit``: the priciest child's cost when
the router was built (MetaLLM's "the most expensive model costs 1"); with
``cost_mode="usage"`` an answer's dollars are normalised by ``dollar_unit``,
what the priciest child charged for one reference call then. The units never
change afterwards, so a budget keeps meaning the same spend when
a pricier child is added or a price is cut (a new child may cost more than 1).

Each child also carries a ``generation``: a name removed and added again is a
new child, and feedback for a decision of the old one is refused.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from itertools import count
from types import MappingProxyType
from typing import Any

from langchain_metallm.core.checks import check_child_name, check_number
from langchain_metallm.core.costs import (
    Usage,
    check_prices,
    check_reference,
    dollars,
    reference_dollars,
)

_GENERATIONS = count(1)


@dataclass(frozen=True)
class Catalogue:
    """Children by name in routing order, their costs, prices and newcomers."""

    costs: Mapping[str, float]
    """Each child's cost in the user's unit, in the children's order."""
    unit: float
    """The cost that normalises to 1 (see the module docstring)."""
    dollar_unit: float | None = None
    """``cost_mode="usage"``: the dollars that normalise to 1."""
    cost_mode: str = "fixed"
    """``"fixed"``: an answer costs its child's cost; ``"usage"``: its tokens."""
    prices: Mapping[str, tuple[float, float]] | None = None
    """``cost_mode="usage"``: (input, output) dollars per million tokens."""
    reference_tokens: tuple[int, int] = (1_000, 1_000)
    """``cost_mode="usage"``: tokens of a call that cost ``unit``."""
    newcomers: frozenset[str] = frozenset()
    """Children added live: they explore wider until their own outcomes speak
    for them (``decision.newcomer_alpha``)."""
    default: str | None = None
    """The child that answers when there is no embedding (None: best mean)."""
    shadow: str | None = None
    """The incumbent that answers every call in shadow mode (None: live)."""
    generations: Mapping[str, int] = field(default_factory=dict)
    """A number per child, new each time a name is added."""

    @classmethod
    def build(
        cls,
        costs: Mapping[str, float],
        *,
        cost_mode: str = "fixed",
        prices: Mapping[str, Any] | None = None,
        reference_tokens: tuple[int, int] = (1_000, 1_000),
        default: str | None = None,
    ) -> Catalogue:
        """A checked catalogue, its units taken from the children it starts with."""
        checked = _checked_costs(costs)
        if len(checked) < 2:
            raise ValueError(f"models: at least 2 children needed, got {len(checked)}")
        checked_prices = None
        if cost_mode == "usage":
            if prices is None:
                raise ValueError('prices: required with cost_mode="usage"')
            checked_prices = check_prices(prices, checked)
            check_reference(checked_prices, reference_tokens)
        elif cost_mode != "fixed":
            raise ValueError(f'cost_mode: "fixed" or "usage", got {cost_mode!r}')
        elif prices is not None:
            raise ValueError('prices: only used with cost_mode="usage"')
        catalogue = cls(
            costs=MappingProxyType(checked),
            unit=max(checked.values()),
            dollar_unit=None
            if checked_prices is None
            else reference_dollars(checked_prices, reference_tokens),
            cost_mode=cost_mode,
            prices=None if checked_prices is None else MappingProxyType(checked_prices),
            reference_tokens=reference_tokens,
            generations=MappingProxyType({n: next(_GENERATIONS) for n in checked}),
        )
        return catalogue.with_default(default)

    @property
    def names(self) -> tuple[str, ...]:
        """The children's names, in routing order."""
        return tuple(self.costs)

    def __contains__(self, name: object) -> bool:
        return name in self.costs

    def __len__(self) -> int:
        return len(self.costs)

    def cost(self, name: str) -> float:
        """Child ``name``'s fixed cost over the unit."""
        return self.costs[name] / self.unit

    @property
    def normalized(self) -> dict[str, float]:
        """Every child's fixed cost over the unit."""
        return {name: cost / self.unit for name, cost in self.costs.items()}

    def answer_cost(self, name: str, usage: Usage | None) -> float | None:
        """What one answer of ``name`` cost over the unit: its tokens with
        ``cost_mode="usage"`` (None when it reported none), else its fixed cost."""
        if self.prices is None or self.dollar_unit is None:
            return self.cost(name)
        if usage is None:
            return None
        return dollars(usage, self.prices[name]) / self.dollar_unit

    def check_budget(self, budget: object) -> float:
        """``budget`` as a float between the cheapest and the priciest child's
        normalised cost, else an error naming that range."""
        costs = self.normalized.values()
        low, high = min(costs), max(costs)
        try:
            return check_number("budget", budget, low=low, high=high)
        except ValueError:
            raise ValueError(
                f"budget: must be between the cheapest child's normalised cost "
                f"({low:.4g}) and the priciest child's ({high:.4g}), got {budget!r}"
            ) from None

    def with_child(self, name: str, cost: object, *, price: Any = None) -> Catalogue:
        """This catalogue and child ``name`` (a new generation, a newcomer) at
        ``cost``."""
        check_child_name(name)
        if name in self.costs:
            raise ValueError(f"name: {name!r} is already a child")
        prices = None
        if self.prices is not None:
            if price is None:
                raise ValueError(
                    f'price: cost_mode="usage" needs the price of {name!r} '
                    "(dollars per million tokens, or an (input, output) pair)"
                )
            prices = {**self.prices, **check_prices({name: price}, [name])}
        elif price is not None:
            raise ValueError('price: only used with cost_mode="usage"')
        return replace(
            self,
            costs=MappingProxyType({**self.costs, name: _cost(name, cost)}),
            prices=None if prices is None else MappingProxyType(prices),
            newcomers=self.newcomers | {name},
            generations=MappingProxyType(
                {**self.generations, name: next(_GENERATIONS)}
            ),
        )

    def without_child(self, name: object) -> Catalogue:
        """This catalogue less child ``name``; the last two stay, and so does
        the ``default`` child until another is named."""
        name = check_child_name(name)
        if name not in self.costs:
            raise ValueError(f"name: {name!r} is not a child; have {list(self.names)}")
        if len(self.costs) <= 2:
            raise ValueError("models: a router needs at least 2 children")
        if name == self.default:
            raise ValueError(
                f"name: {name!r} is the default_model (the child that answers "
                "during an embedder outage); set another default_model first"
            )
        if name == self.shadow:
            raise ValueError(
                f"name: {name!r} is the shadow incumbent (it answers every call); "
                "set_shadow(None) to go live, or name another incumbent, first"
            )

        def drop(mapping: Mapping[str, Any]) -> MappingProxyType[str, Any]:
            return MappingProxyType({k: v for k, v in mapping.items() if k != name})

        return replace(
            self,
            costs=drop(self.costs),
            prices=None if self.prices is None else drop(self.prices),
            newcomers=self.newcomers - {name},
            generations=drop(self.generations),
        )

    def with_costs(self, costs: Mapping[str, float]) -> Catalogue:
        """This catalogue with new costs for some children (the unit stays)."""
        checked = _checked_costs(costs, complete=False)
        unknown = sorted(set(checked) - set(self.costs))
        if unknown:
            raise ValueError(
                f"costs: unknown children {unknown}; have {list(self.names)}"
            )
        merged = {**self.costs, **checked}
        if max(merged.values()) == 0:
            raise ValueError("costs: at least one cost must be > 0")
        return replace(self, costs=MappingProxyType(merged))

    def with_default(self, default: object) -> Catalogue:
        """This catalogue with ``default`` (a child, or None) as the outage child."""
        if default is not None:
            default = check_child_name(default, "default_model")
            if default not in self.costs:
                raise ValueError(
                    f"default_model: {default!r} is not one of {list(self.names)}"
                )
        return replace(self, default=default)

    def resumed(
        self, *, unit: object, dollar_unit: object, newcomers: Iterable[str]
    ) -> Catalogue:
        """This catalogue with a save's units and its newcomers still here."""
        return replace(
            self,
            unit=check_number("unit", unit, low=0.0, low_open=True),
            dollar_unit=None
            if dollar_unit is None or self.prices is None
            else check_number("dollar_unit", dollar_unit, low=0.0, low_open=True),
            newcomers=frozenset(newcomers) & set(self.costs),
        )

    def graduated(self, names: Iterable[str]) -> Catalogue:
        """This catalogue with ``names`` no longer newcomers: recorded outcomes
        of their own were fitted, so their estimates no longer rest on a prior."""
        return replace(self, newcomers=self.newcomers - set(names))

    def with_shadow(self, shadow: object) -> Catalogue:
        """This catalogue with ``shadow`` (a child, or None: live) as the incumbent."""
        if shadow is not None:
            shadow = check_child_name(shadow, "shadow")
            if shadow not in self.costs:
                raise ValueError(f"shadow: {shadow!r} is not one of {list(self.names)}")
        return replace(self, shadow=shadow)

    def state(self) -> dict[str, Any]:
        """What a save keeps of the catalogue (JSON-ready)."""
        return {
            "costs": dict(self.costs),
            "unit": self.unit,
            "dollar_unit": self.dollar_unit,
            "newcomers": sorted(self.newcomers),
            "default": self.default,
        }


def _cost(name: str, cost: object) -> float:
    return check_number(f"costs[{name!r}]", cost, low=0.0)


def _checked_costs(costs: object, *, complete: bool = True) -> dict[str, float]:
    if not isinstance(costs, Mapping):
        raise TypeError(
            f"costs: expected a mapping of child name -> cost, got {costs!r}"
        )
    checked = {check_child_name(n, "costs"): _cost(n, c) for n, c in costs.items()}
    if complete and checked and max(checked.values()) == 0:
        raise ValueError("costs: at least one cost must be > 0")
    return checked
