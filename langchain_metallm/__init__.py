"""A LangChain chat model that routes each call to the cheapest good child."""

from langchain_metallm.calibration import CostWeightCalibration
from langchain_metallm.chat_models import MetaLLMRouterChatModel
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.engine import RouterEngine
from langchain_metallm.feedback import FEEDBACK_EVENT, MetaLLMFeedbackHandler
from langchain_metallm.pareto import ParetoFront, PlannedAssignment
from langchain_metallm.pending import FeedbackError
from langchain_metallm.planned_batch import PlannedBatchResult
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
    "RouterEngine",
    "SQLiteStore",
]
