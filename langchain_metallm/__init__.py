"""A LangChain chat model that routes each call to the cheapest good child."""

from langchain_metallm.chat_models import MetaLLMRouterChatModel
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.feedback import (
    FEEDBACK_EVENT,
    FeedbackError,
    MetaLLMFeedbackHandler,
)
from langchain_metallm.planning import ParetoFront, PlannedAssignment
from langchain_metallm.policy import LinUCBPolicy, RouteDecision

__all__ = [
    "FEEDBACK_EVENT",
    "FeedbackError",
    "LinUCBPolicy",
    "LocalEmbeddings",
    "MetaLLMFeedbackHandler",
    "MetaLLMRouterChatModel",
    "ParetoFront",
    "PlannedAssignment",
    "RouteDecision",
]
