"""``Settings``: how a router learns and decides, checked once, owned by its core.

The chat model's fields are where a user writes them; the core holds the one
live copy. ``RouterCore.set`` changes the ones that can change on a running
router (``MUTABLE``), and a change shows on every handle that shares the core.
The others define what the learned statistics mean and are fixed at
construction (or by ``load``).
"""

from __future__ import annotations

from dataclasses import dataclass, fields, replace
from typing import Any

from langchain_metallm.core.checks import check_number

MUTABLE = frozenset(
    {
        "cost_weight",
        "budget",
        "decay",
        "alpha",
        "strict_feedback",
        "explore_rate",
        "explore_budget",
    }
)
"""Settings a running router may change (``RouterCore.set``)."""


@dataclass(frozen=True)
class Settings:
    """The learning and decision settings of one router (see the chat model's
    fields for what each means)."""

    cost_weight: float = 0.0
    budget: float | None = None
    decay: float = 1.0
    alpha: float | None = None
    ridge: float = 1.0
    strict_feedback: bool = True
    auto_tasks: bool = True
    online_clusters: bool | None = None
    embedding_cache_size: int = 2_048
    max_pending: int = 10_000
    pending_ttl: float | None = None
    explore_rate: float = 0.0
    explore_budget: float | None = None
    decision_log_size: int = 10_000

    def __post_init__(self) -> None:
        for name, value in checked_values(self).items():
            object.__setattr__(self, name, value)

    def changed(self, **values: Any) -> Settings:
        """These settings with ``values`` (checked) instead."""
        unknown = sorted(set(values) - {f.name for f in fields(self)})
        if unknown:
            raise ValueError(f"settings: unknown {unknown}")
        return replace(self, **values)


def checked_values(settings: Settings) -> dict[str, Any]:
    """Every setting of ``settings`` checked and converted (the budget is
    checked against the catalogue by ``RouterCore``)."""
    return {
        "cost_weight": check_number("cost_weight", settings.cost_weight, low=0.0),
        "budget": None
        if settings.budget is None
        else check_number("budget", settings.budget, low=0.0),
        "decay": check_number(
            "decay", settings.decay, low=0.0, high=1.0, low_open=True
        ),
        "alpha": None
        if settings.alpha is None
        else check_number("alpha", settings.alpha, low=0.0),
        "ridge": check_number("ridge", settings.ridge, low=0.0, low_open=True),
        "strict_feedback": _flag("strict_feedback", settings.strict_feedback),
        "auto_tasks": _flag("auto_tasks", settings.auto_tasks),
        "online_clusters": None
        if settings.online_clusters is None
        else _flag("online_clusters", settings.online_clusters),
        "embedding_cache_size": _count(
            "embedding_cache_size", settings.embedding_cache_size, 0
        ),
        "max_pending": _count("max_pending", settings.max_pending, 1),
        "pending_ttl": None
        if settings.pending_ttl is None
        else check_number("pending_ttl", settings.pending_ttl, low=0.0, low_open=True),
        "explore_rate": check_number(
            "explore_rate", settings.explore_rate, low=0.0, high=1.0
        ),
        "explore_budget": None
        if settings.explore_budget is None
        else check_number("explore_budget", settings.explore_budget, low=0.0),
        "decision_log_size": _count("decision_log_size", settings.decision_log_size, 1),
    }


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name}: expected True or False, got {value!r}")
    return value


def _count(name: str, value: object, low: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: must be an integer >= {low}, got {value!r}")
    return value
