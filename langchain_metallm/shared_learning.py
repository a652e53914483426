"""Learned state that a router shares with its copies and configured variants.

A router's ``RouterEngine`` (policy, task classifier, pending decisions, budget
pacer, embedding cache) is shared by its ``model_copy()`` and
``configurable_fields(...)`` variants, so a call made through any of them routes
on everything learned and its feedback lands in the same statistics. Fields that
would change what those statistics mean (costs, children, embedder, decay, ...)
or that the shared state owns (the budget's pacer) cannot differ between
sharers: changing them on a copy or per call is refused; use the router's
setters (``set_cost_weight``, ``set_budget``, ``set_costs``) or a separate
router (``save``/``load``) instead. The cost weight only enters decisions, so a
configured variant may set it: it is applied as that call's ``cost_weight``
argument, and the statistics stay scores.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Mapping
from typing import Any, cast

from langchain_core.runnables import ConfigurableField, RunnableConfig
from langchain_core.runnables.configurable import RunnableConfigurableFields
from pydantic import BaseModel

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


def share_private_state(source: BaseModel, target: BaseModel) -> None:
    """Make ``target`` use ``source``'s private state (policy, tables, caches)."""
    target.__pydantic_private__ = copy.copy(source.__pydantic_private__)


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
