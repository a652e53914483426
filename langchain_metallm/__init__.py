"""A LangChain chat model that routes each call to the cheapest good child.

Names are imported on first use, so ``import langchain_metallm.policy`` (or any
other numpy-only core module) does not pull in LangChain.
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from langchain_metallm.calibration import CostWeightCalibration
    from langchain_metallm.chat_models import MetaLLMRouterChatModel
    from langchain_metallm.embeddings import LocalEmbeddings
    from langchain_metallm.engine import RouterEngine
    from langchain_metallm.feedback import FEEDBACK_EVENT, MetaLLMFeedbackHandler
    from langchain_metallm.pareto import ParetoFront, PlannedAssignment
    from langchain_metallm.pending import FeedbackError
    from langchain_metallm.planned_batch import PlannedBatchResult
    from langchain_metallm.policy import LinUCBPolicy, RouteDecision
    from langchain_metallm.stores import (
        MemoryStore,
        PolicyStore,
        RedisStore,
        SQLiteStore,
    )

_MODULE_OF = {
    "CostWeightCalibration": "calibration",
    "FEEDBACK_EVENT": "feedback",
    "FeedbackError": "pending",
    "LinUCBPolicy": "policy",
    "LocalEmbeddings": "embeddings",
    "MemoryStore": "stores",
    "MetaLLMFeedbackHandler": "feedback",
    "MetaLLMRouterChatModel": "chat_models",
    "ParetoFront": "pareto",
    "PlannedAssignment": "pareto",
    "PlannedBatchResult": "planned_batch",
    "PolicyStore": "stores",
    "RedisStore": "stores",
    "RouteDecision": "policy",
    "RouterEngine": "engine",
    "SQLiteStore": "stores",
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
    "RouteDecision",
    "RouterEngine",
    "SQLiteStore",
]
