"""A LangChain chat model that routes each call to the cheapest good child."""

from langchain_metallm.batch_planning import PlannedBatchResult
from langchain_metallm.chat_models import MetaLLMRouterChatModel
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.feedback import (
    FEEDBACK_EVENT,
    FeedbackError,
    MetaLLMFeedbackHandler,
)
from langchain_metallm.learning import CostWeightCalibration
from langchain_metallm.planning import ParetoFront, PlannedAssignment
from langchain_metallm.policy import LinUCBPolicy, RouteDecision
from langchain_metallm.stores import MemoryStore, PolicyStore, RedisStore, SQLiteStore

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
    "SQLiteStore",
]
