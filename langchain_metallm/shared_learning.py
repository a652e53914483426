"""Learned state that a router shares with its copies and configured variants.

A router's ``RouterEngine`` (policy, task classifier, pending decisions,
embedding cache and the cost weight its statistics were learned at) is shared by
its ``model_copy()`` and ``configurable_fields(...)`` variants, so a call made
through any of them routes on everything learned and its feedback lands in the
same statistics. Fields that would change what those statistics mean (the cost
weight, costs, children, embedder, ...) cannot differ between sharers: changing
them on a copy or per call is refused; use ``set_cost_weight`` or a separate
router (``save``/``load``) instead.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable
from typing import Any, cast

from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.configurable import RunnableConfigurableFields
from pydantic import BaseModel

LEARNING_FIELDS = frozenset(
    {
        "models",
        "costs",
        "cost_weight",
        "ridge",
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
"""Fields whose value the shared statistics and tables depend on."""


def check_shareable(fields: Iterable[str], action: str) -> None:
    """Refuse changing a learning-defining field on a state-sharing variant."""
    clashing = sorted(set(fields) & LEARNING_FIELDS)
    if clashing:
        raise ValueError(
            f"{action}: {', '.join(clashing)} cannot differ from the router's own: "
            "copies and configured variants share its learned statistics, which "
            "depend on it; use set_cost_weight, or a separate router (save/load)"
        )


def share_private_state(source: BaseModel, target: BaseModel) -> None:
    """Make ``target`` use ``source``'s private state (policy, tables, caches)."""
    target.__pydantic_private__ = copy.copy(source.__pydantic_private__)


class SharedLearningConfigurableFields(RunnableConfigurableFields):  # type: ignore[type-arg]
    """``configurable_fields`` whose configured routers share the default's
    learned state instead of starting untrained."""

    def _prepare(self, config: RunnableConfig | None = None) -> tuple[Any, Any]:
        runnable, prepared = super()._prepare(config)
        if runnable is not self.default and isinstance(runnable, BaseModel):
            share_private_state(cast(BaseModel, self.default), runnable)
        return runnable, prepared
