"""Learned state that a router shares with its copies and configured variants.

A router's ``RouterCore`` (settings, catalogue, policy, pending decisions,
budget pacer, embedding cache) and its children are shared by its
``model_copy()`` and ``configurable_fields(...)`` variants: the handles. A call
made through any handle routes on everything learned and its feedback lands in
the same statistics. A shared field set on any handle (``router.budget = 0.2``
or ``copy.set_budget(0.2)``) acts on the core and shows on every handle
(``Handles``); a field that defines the statistics is refused after
construction. Giving a copy or a configured variant its own value of such a
field is refused too; the cost weight only enters decisions, so a configured
variant may set it: it is applied as that call's ``cost_weight`` argument.
"""

from __future__ import annotations

import copy
import weakref
from collections.abc import Iterable, Mapping
from typing import Any, cast

from langchain_core.runnables import ConfigurableField, RunnableConfig
from langchain_core.runnables.configurable import RunnableConfigurableFields
from pydantic import BaseModel

from langchain_metallm.core.checks import check_number
from langchain_metallm.explorer import check_scorer

LEARNING_FIELDS = frozenset(
    {
        "models",
        "costs",
        "cost_weight",
        "budget",
        "decay",
        "alpha",
        "ridge",
        "auto_tasks",
        "embeddings",
        "online_clusters",
        "cost_mode",
        "prices",
        "reference_tokens",
        "store",
        "max_pending",
        "pending_ttl",
        "embedding_cache_size",
        "cache",
        "strict_feedback",
        "default_model",
        "allowed_fails",
        "cooldown_time",
        "shadow",
        "explore_rate",
        "explore_budget",
        "scorer",
        "decision_log_size",
    }
)
"""Fields whose value the shared statistics, tables or pacer depend on."""
PER_CALL_FIELDS = frozenset({"cost_weight"})
"""Of those, the ones a configured variant applies as a call argument instead
(``SharedLearningConfigurableFields``); a copy still cannot change them."""


def check_shareable(
    fields: Iterable[str], action: str, *, per_call: bool = False
) -> None:
    """Refuse changing a learning-defining field on a state-sharing variant
    (``PER_CALL_FIELDS`` are allowed when the variant applies them ``per_call``)."""
    allowed = PER_CALL_FIELDS if per_call else frozenset()
    clashing = sorted(set(fields) & (LEARNING_FIELDS - allowed))
    if clashing:
        raise ValueError(
            f"{action}: {', '.join(clashing)} cannot differ from the router's own: "
            "copies and configured variants share its learned statistics and "
            "budget pacer, which depend on it; use the router's setters "
            "(set_cost_weight, set_budget, set_costs) or a separate router "
            "(save/load)"
        )


SHARED_FIELDS = frozenset(
    {
        "cost_weight",
        "budget",
        "decay",
        "alpha",
        "strict_feedback",
        "costs",
        "default_model",
        "allowed_fails",
        "cooldown_time",
        "shadow",
        "explore_rate",
        "explore_budget",
        "scorer",
    }
)
"""Fields that may be set on a running router: the change acts on the shared
core and shows on every handle."""
FIXED_FIELDS = (LEARNING_FIELDS | {"models"}) - SHARED_FIELDS
"""Fields fixed at construction: setting one afterwards is refused."""
ASSIGNED = SHARED_FIELDS | FIXED_FIELDS
"""Fields whose assignment on a built router goes through ``set_shared``."""


def set_shared(router: Any, name: str, value: Any) -> None:
    """Set field ``name`` of a built ``router``: a shared field acts on its core
    (catalogue, settings) or its cooldowns and shows on every handle; a fixed
    one is refused."""
    if name not in SHARED_FIELDS:
        raise ValueError(
            f"{name}: fixed once the router is built (the learned statistics "
            "depend on it); use add_model/remove_model for children, or "
            "save() and load() into a new router"
        )
    core, private = router.core, router.__pydantic_private__
    explorer = private["_explorer"]
    if name == "costs":
        router.set_costs(value)
    elif name == "default_model":
        core.set_catalogue(core.catalogue.with_default(value))
    elif name == "shadow":
        core.set_catalogue(core.catalogue.with_shadow(value))
    elif name == "scorer":
        explorer.scorer = check_scorer(value, core.settings.explore_rate)
        private["_handles"].show(name, value)
    elif name == "explore_rate":
        check_scorer(explorer.scorer, check_number(name, value, low=0.0, high=1.0))
        core.set(name, value)
    elif name in ("allowed_fails", "cooldown_time"):
        cooldowns = private["_cooldowns"]
        cooldowns.configure(**{name: value})
        private["_handles"].show(name, getattr(cooldowns, name))
    else:
        core.set(name, value)


class Handles:
    """The live handles sharing one core; a change is written to each of them."""

    def __init__(self, first: BaseModel) -> None:
        self._refs = [weakref.ref(first)]

    def add(self, handle: BaseModel) -> None:
        """Let ``handle`` show the shared values from now on."""
        self._refs = [r for r in self._refs if r() is not None]
        self._refs.append(weakref.ref(handle))

    def show(self, name: str, value: Any) -> None:
        """Write field ``name``'s new ``value`` on every live handle."""
        for ref in self._refs:
            handle = ref()
            if handle is not None and name in type(handle).model_fields:
                handle.__dict__[name] = value


def share_private_state(source: BaseModel, target: BaseModel) -> None:
    """Make ``target`` a handle on ``source``'s private state (core, children)."""
    target.__pydantic_private__ = copy.copy(source.__pydantic_private__)
    private = target.__pydantic_private__ or {}
    cast(Handles, private["_handles"]).add(target)


class SharedLearningConfigurableFields(RunnableConfigurableFields):  # type: ignore[type-arg]
    """``configurable_fields`` whose configured routers share the default's
    learned state instead of starting untrained, and decide with a configured
    cost weight without changing it."""

    def _prepare(self, config: RunnableConfig | None = None) -> tuple[Any, Any]:
        runnable, prepared = super()._prepare(config)
        if runnable is not self.default and isinstance(runnable, BaseModel):
            share_private_state(cast(BaseModel, self.default), runnable)
            configured = _configured(self.fields, prepared.get("configurable", {}))
            weights = {f: getattr(runnable, f) for f in PER_CALL_FIELDS & configured}
            if weights:  # the shared engine reads the default's weight otherwise
                runnable = runnable.bind(**weights)
        return runnable, prepared


def _configured(fields: Mapping[str, Any], values: Mapping[str, Any]) -> set[str]:
    """The names of ``fields`` that this call's configurable ``values`` set (an
    options field always sets its default option)."""
    return {
        name
        for name, spec in fields.items()
        if not isinstance(spec, ConfigurableField) or spec.id in values
    }
