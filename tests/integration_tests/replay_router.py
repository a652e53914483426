"""A router over two ``ChatOpenAI`` children that talk HTTP to the replay server."""

from __future__ import annotations

from typing import Any

from langchain_openai import ChatOpenAI
from pydantic import SecretStr

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.testing import ReplayServer

from .embedders import HashingEmbeddings

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
NAMES = {"mixtral": MIXTRAL, "gpt-4": GPT4}


def replay_router(
    server: ReplayServer, *, timeout: float | None = None, **overrides: Any
) -> MetaLLMRouterChatModel:
    """Children named ``mixtral`` and ``gpt-4`` (costs 0.6 and 20) on ``server``,
    a hashing embedder, and any router field in ``overrides``."""
    children = {
        name: ChatOpenAI(
            base_url=server.base_url,
            api_key=SecretStr("test"),
            model=model,
            max_retries=0,
            stream_usage=True,
            timeout=timeout,
        )
        for name, model in NAMES.items()
    }
    settings: dict[str, Any] = {
        "models": children,
        "costs": {"mixtral": 0.6, "gpt-4": 20.0},
        "embeddings": HashingEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{**settings, **overrides})
