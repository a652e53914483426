"""A LangChain chat model that routes each call to the cheapest good child.

Names are imported on first use, so ``import langchain_metallm.core.policy`` (or any
other numpy-only core module) does not pull in LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_metallm.chat_models import MetaLLMRouterChatModel
    from langchain_metallm.core.calibration import CostWeightCalibration
    from langchain_metallm.core.decision import Decision
    from langchain_metallm.core.pareto import ParetoFront, PlannedAssignment
    from langchain_metallm.core.pending import FeedbackError
    from langchain_metallm.core.policy import LinUCBPolicy
    from langchain_metallm.core.router import RouterCore
    from langchain_metallm.core.stores import (
        MemoryStore,
        PolicyStore,
        RedisStore,
        SQLiteStore,
    )
    from langchain_metallm.embeddings import LocalEmbeddings
    from langchain_metallm.feedback import FEEDBACK_EVENT, MetaLLMFeedbackHandler
    from langchain_metallm.planned_batch import PlannedBatchResult

_MODULE_OF = {
    "CostWeightCalibration": "core.calibration",
    "Decision": "core.decision",
    "FEEDBACK_EVENT": "feedback",
    "FeedbackError": "core.pending",
    "LinUCBPolicy": "core.policy",
    "LocalEmbeddings": "embeddings",
    "MemoryStore": "core.stores",
    "MetaLLMFeedbackHandler": "feedback",
    "MetaLLMRouterChatModel": "chat_models",
    "ParetoFront": "core.pareto",
    "PlannedAssignment": "core.pareto",
    "PlannedBatchResult": "planned_batch",
    "PolicyStore": "core.stores",
    "RedisStore": "core.stores",
    "RouterCore": "core.router",
    "SQLiteStore": "core.stores",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use."""
    module = _MODULE_OF.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value


__all__ = [
    "FEEDBACK_EVENT",
    "CostWeightCalibration",
    "Decision",
    "FeedbackError",
    "LinUCBPolicy",
    "LocalEmbeddings",
    "MemoryStore",
    "MetaLLMFeedbackHandler",
    "MetaLLMRouterChatModel",
    "ParetoFront",
    "PlannedAssignment",
    "PlannedBatchResult",
    "PolicyStore",
    "RedisStore",
    "RouterCore",
    "SQLiteStore",
]
