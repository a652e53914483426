"""Deterministic fakes for router tests: keyword embedder, tool-calling children."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

KINDS = ("math", "poetry")


class KeywordEmbeddings(Embeddings):
    """4-dim embedding: one-hot of the query kind plus two hash-noise dims."""

    def __init__(self, dim_override: int | None = None) -> None:
        self.calls: list[list[str]] = []
        self.dim_override = dim_override

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _vector(self, text: str) -> list[float]:
        if self.dim_override is not None:
            return [0.5] * self.dim_override
        digest = hashlib.sha256(text.encode()).digest()
        noise = [digest[0] / 255 - 0.5, digest[1] / 255 - 0.5]
        return [float("math" in text), float("poem" in text), *noise]


class EchoChild(BaseChatModel):
    """Answers ``"<name>: <last text>"``; streams word by word; emits tool calls
    for the first bound tool when tools are bound."""

    name_tag: str
    tools: list[dict[str, Any]] = Field(default_factory=list)
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "echo-child"

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        if self.fail:
            raise RuntimeError(f"{self.name_tag} is down")
        text = f"{self.name_tag}: {messages[-1].text}"
        usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
        if self.tools:
            fn = self.tools[0]["function"]
            args = {k: 1 for k in fn.get("parameters", {}).get("properties", {})}
            call = {"name": fn["name"], "args": args, "id": "call_1"}
            return AIMessage(content="", tool_calls=[call], usage_metadata=usage)
        return AIMessage(content=text, usage_metadata=usage)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=self._answer(messages))])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        answer = self._answer(messages)
        words = answer.text.split(" ")
        for i, word in enumerate(words):
            piece = word if i == 0 else " " + word
            yield ChatGenerationChunk(message=AIMessageChunk(content=piece))
        if answer.tool_calls:
            call = answer.tool_calls[0]
            yield ChatGenerationChunk(
                message=AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        {
                            "name": call["name"],
                            "args": '{"a": 1, "b": 1}',
                            "id": call["id"],
                            "index": 0,
                        }
                    ],
                )
            )

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        formatted = [convert_to_openai_tool(t) for t in tools]
        return self.model_copy(update={"tools": formatted})


def query(kind: str, i: int) -> str:
    """A query of ``kind`` that the keyword embedder recognises."""
    return (
        f"math question {i}: what is {i} + {i}?"
        if kind == "math"
        else (f"write a poem number {i} about the sea")
    )


class NamedEmbeddings(KeywordEmbeddings):
    """``KeywordEmbeddings`` that, like hosted embedders, reports a model name and
    a dimension (what a router save records and checks)."""

    def __init__(self, model: str = "keyword-v2", dimension: int = 4) -> None:
        super().__init__()
        self.model = model
        self.dimension = dimension
