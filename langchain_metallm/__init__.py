"""LangChain chat model that routes each call to the cheapest child that will answer well."""

from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.policy import LinUCBPolicy, RouteDecision

__all__ = ["LinUCBPolicy", "LocalEmbeddings", "RouteDecision"]
