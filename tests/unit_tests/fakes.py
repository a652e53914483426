"""Deterministic fakes for the unit tests: the embedders and tool-calling children."""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import numpy as np
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import Field

from langchain_metallm import MetaLLMRouterChatModel

KINDS = ("math", "poetry")


class KeywordEmbeddings(Embeddings):
    """A "math" flag, a "poem" flag, then ``noise_dims`` hash-noise dims (each in
    +-``noise_scale`` / 2); records each call's texts."""

    def __init__(
        self,
        dim_override: int | None = None,
        *,
        noise_dims: int = 2,
        noise_scale: float = 1.0,
    ) -> None:
        self.calls: list[list[str]] = []
        self.dim_override = dim_override
        self.noise_dims = noise_dims
        self.noise_scale = noise_scale

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.append(list(texts))
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _vector(self, text: str) -> list[float]:
        if self.dim_override is not None:
            return [0.5] * self.dim_override
        digest = hashlib.sha256(text.encode("utf-8", "surrogatepass")).digest()
        noise = [
            self.noise_scale * (digest[i] / 255 - 0.5) for i in range(self.noise_dims)
        ]
        return [float("math" in text), float("poem" in text), *noise]


class TaskWordEmbeddings(Embeddings):
    """``dim`` dims from a hash of the prompt's first (task) word plus ``noise``
    times a hash of the whole prompt; records every text it embeds."""

    def __init__(
        self,
        name: str = "task-word-embedder",
        *,
        dim: int = 8,
        noise: float = 0.1,
        normalize: bool = True,
    ) -> None:
        self.name = name
        self.dim, self.noise, self.normalize = dim, noise, normalize
        self.calls: list[str] = []

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.calls.extend(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]

    def _vector(self, text: str) -> list[float]:
        topic = hashlib.sha256(text.split()[0].encode()).digest()
        noise = hashlib.sha256(text.encode()).digest()
        vec = np.array(
            [topic[i] - 128 + self.noise * (noise[i] - 128) for i in range(self.dim)]
        )
        scaled = vec / np.linalg.norm(vec) if self.normalize else vec / 128
        return [float(v) for v in scaled]


class NoisyTopicEmbeddings(Embeddings):
    """Unit vectors: a weak direction per task (the text before ":") under hash
    noise, so a per-arm ridge on the raw vector has many noisy coefficients."""

    def __init__(self, tasks: Sequence[str], dim: int) -> None:
        self.tasks, self.dim = tuple(tasks), dim
        self.embedded = 0

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        self.embedded += len(texts)
        return [self._vector(t) for t in texts]

    def embed_query(self, text: str) -> list[float]:
        return self._vector(text)

    def _vector(self, text: str) -> list[float]:
        seed = int.from_bytes(text.encode()[-8:].rjust(8, b"\0"), "little")
        vec = np.random.default_rng(seed).normal(scale=0.25, size=self.dim)
        vec[self.tasks.index(text.split(":")[0])] += 1.0
        return [float(v) for v in vec / np.linalg.norm(vec)]


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


def echo_router(costs: dict[str, float], /, **overrides: Any) -> MetaLLMRouterChatModel:
    """A router over one ``EchoChild`` per name in ``costs``, on ``KeywordEmbeddings``;
    ``overrides`` set any other field."""
    settings: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in costs},
        "costs": costs,
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{**settings, **overrides})


def serve(
    router: MetaLLMRouterChatModel,
    prompts: list[str],
    score: Callable[[str, str], float],
) -> list[str]:
    """Route each prompt and reward the answer with ``score(prompt, model)``;
    the chosen models in order."""
    chosen = []
    for prompt in prompts:
        answer = router.invoke(prompt)
        model = answer.response_metadata["metallm"]["model"]
        router.record_feedback(answer, score(prompt, model))
        chosen.append(model)
    return chosen


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
