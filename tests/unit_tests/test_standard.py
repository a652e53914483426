"""LangChain's standard chat model unit tests for the router over fake children."""

from __future__ import annotations

from typing import Any

from langchain_tests.unit_tests import ChatModelUnitTests

from langchain_metallm import MetaLLMRouterChatModel

from .fakes import EchoChild, KeywordEmbeddings


class TestMetaLLMRouterStandard(ChatModelUnitTests):
    @property
    def chat_model_class(self) -> type[MetaLLMRouterChatModel]:
        return MetaLLMRouterChatModel

    @property
    def chat_model_params(self) -> dict[str, Any]:
        return {
            "models": {"a": EchoChild(name_tag="a"), "b": EchoChild(name_tag="b")},
            "costs": {"a": 1.0, "b": 3.0},
            "embeddings": KeywordEmbeddings(),
        }

    @property
    def standard_chat_model_params(self) -> dict[str, Any]:
        # Sampling settings (temperature, max_tokens, api_key, ...) belong to the
        # children; the router refuses unknown fields rather than ignoring them.
        return {}

    @property
    def has_tool_calling(self) -> bool:
        return True

    @property
    def has_tool_choice(self) -> bool:
        return True
