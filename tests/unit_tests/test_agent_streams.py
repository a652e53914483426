"""Agent streams show each token once (issue 20, defect 17).

In a LangGraph node (a ``create_agent`` agent, or a hand-built graph) streamed with
``stream_mode="messages"``, every chat-model run whose tokens reach LangGraph's
messages handler is streamed. The router's run must be the only one: the chosen
child's run stays a nested run under the router's, but its tokens must not be
streamed a second time. Provider integrations such as ``ChatOpenAI`` trigger both
conditions the plain fakes do not: ``bind_tools`` returns a ``RunnableBinding``
(which merges in the config of the code that called the router), and ``_stream``
reports each chunk with ``run_manager.on_llm_new_token``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
    get_usage_metadata_callback,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool

from langchain_metallm import MetaLLMRouterChatModel

from .fakes import KeywordEmbeddings

USAGE = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
QUESTION = "math: what is 1+1"


class ProviderLikeChild(BaseChatModel):
    """A child that behaves like provider integrations (``ChatOpenAI``):
    ``bind_tools`` binds the tools as call arguments (a ``RunnableBinding``), and
    ``_stream``/``_astream`` report every chunk to the run manager
    (``on_llm_new_token``) as they yield it. Calls its first tool once, then
    answers ``"<name>: <tool result>"``; the last chunk carries the usage."""

    name_tag: str

    @property
    def _llm_type(self) -> str:
        return "provider-like"

    def _chunks(
        self, messages: list[BaseMessage], tools: list[dict[str, Any]] | None
    ) -> list[AIMessageChunk]:
        if tools and messages[-1].type == "human":
            name = tools[0]["function"]["name"]
            pieces = [
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[
                        tool_call_chunk(name=name, args="", id="call_1", index=0)
                    ],
                ),
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[tool_call_chunk(args='{"a": 1, ', index=0)],
                ),
                AIMessageChunk(
                    content="",
                    tool_call_chunks=[tool_call_chunk(args='"b": 1}', index=0)],
                ),
            ]
        else:
            words = f"{self.name_tag}: {messages[-1].text}".split(" ")
            pieces = [
                AIMessageChunk(content=word if i == 0 else " " + word)
                for i, word in enumerate(words)
            ]
        usage = AIMessageChunk(
            content="",
            usage_metadata=USAGE,  # type: ignore[arg-type]
            response_metadata={"model_name": self.name_tag},
        )
        return [*pieces, usage]

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        merged = AIMessageChunk(content="")
        for piece in self._chunks(messages, kwargs.get("tools")):
            merged += piece
        message = AIMessage(
            content=merged.content,
            tool_calls=merged.tool_calls,
            usage_metadata=merged.usage_metadata,
            response_metadata=merged.response_metadata,
        )
        return ChatResult(generations=[ChatGeneration(message=message)])

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for piece in self._chunks(messages, kwargs.get("tools")):
            chunk = ChatGenerationChunk(message=piece)
            if run_manager is not None:
                run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        for piece in self._chunks(messages, kwargs.get("tools")):
            chunk = ChatGenerationChunk(message=piece)
            if run_manager is not None:
                await run_manager.on_llm_new_token(chunk.text, chunk=chunk)
            yield chunk

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        return self.bind(tools=[convert_to_openai_tool(t) for t in tools], **kwargs)


CHILDREN = ("small", "large")


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {name: ProviderLikeChild(name_tag=name) for name in CHILDREN},
        "costs": {"small": 0.1, "large": 1.0},
        "embeddings": KeywordEmbeddings(),
        "online_clusters": False,
    }
    return MetaLLMRouterChatModel(**{**settings, **overrides})


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


class Steps:
    """A graph's ``stream_mode=["messages", "values"]`` output: the message chunks
    per step, the runs (by ``ls_model_name``) that streamed them, the last state."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[AIMessageChunk]] = {}
        self.sources: set[str] = set()
        self.messages: list[BaseMessage] = []

    def add(self, mode: str, item: Any) -> None:
        if mode == "values":
            self.messages = item["messages"]
            return
        message, meta = item
        if isinstance(message, AIMessageChunk):
            self.chunks.setdefault(meta["langgraph_step"], []).append(message)
            self.sources.add(str(meta.get("ls_model_name")))

    def text(self, step: int) -> str:
        return "".join(chunk.text for chunk in self.chunks[step])

    def merged(self, step: int) -> AIMessageChunk:
        first, *rest = self.chunks[step]
        return first + rest if rest else first


def check_once(steps: Steps) -> None:
    """Each model step streamed its final message exactly once, from the router."""
    call, answer = steps.messages[1], steps.messages[-1]
    assert isinstance(call, AIMessage) and isinstance(answer, AIMessage)
    assert sorted(steps.chunks) == [1, 3]  # model, tools, model
    # The step after the tool result: each token once.
    assert steps.text(3) == answer.text
    assert answer.text == f"{answer.response_metadata['metallm']['model']}: 2"
    # The tool-call step: the call's arguments once (doubled, they are not JSON).
    assert steps.text(1) == call.text == ""
    streamed_call = steps.merged(1).tool_calls
    assert [(c["name"], c["args"]) for c in streamed_call] == [
        ("add", {"a": 1, "b": 1})
    ]
    assert [(c["name"], c["args"]) for c in call.tool_calls] == [
        ("add", {"a": 1, "b": 1})
    ]
    assert not steps.sources & set(CHILDREN)  # never from the child's run
    # The sticky tool loop sent the second step to the child that started it.
    first = call.response_metadata["metallm"]["model"]
    assert answer.response_metadata["metallm"]["model"] == first


class Runs(BaseCallbackHandler):
    """Records each chat model run's parent and ``ls_model_name``."""

    def __init__(self) -> None:
        self.parents: dict[UUID, UUID | None] = {}
        self.names: dict[UUID, str] = {}

    def on_chat_model_start(
        self,
        serialized: Any,
        messages: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        metadata: dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> None:
        self.parents[run_id] = parent_run_id
        self.names[run_id] = str((metadata or {}).get("ls_model_name"))

    def check_nested(self, steps: int) -> None:
        """``steps`` router runs, each with one child run nested directly under it."""
        routers = {r for r, name in self.names.items() if name not in CHILDREN}
        children = {r for r, name in self.names.items() if name in CHILDREN}
        assert len(routers) == len(children) == steps
        assert {self.parents[child] for child in children} == routers


# create_agent: the model node calls the router with invoke/ainvoke -------------


def test_agent_stream_shows_each_token_once() -> None:
    from langchain.agents import create_agent

    runs = Runs()
    agent = create_agent(make_router(), tools=[add])
    steps = Steps()
    with get_usage_metadata_callback() as usage:
        for mode, item in agent.stream(
            {"messages": [("user", QUESTION)]},
            {"callbacks": [runs]},
            stream_mode=["messages", "values"],
        ):
            steps.add(mode, item)
    check_once(steps)
    runs.check_nested(steps=2)
    assert set(usage.usage_metadata) <= set(CHILDREN)  # the children's runs count
    assert sum(u["total_tokens"] for u in usage.usage_metadata.values()) == 10


async def test_async_agent_stream_shows_each_token_once() -> None:
    from langchain.agents import create_agent

    runs = Runs()
    agent = create_agent(make_router(), tools=[add])
    steps = Steps()
    async for mode, item in agent.astream(
        {"messages": [("user", QUESTION)]},
        {"callbacks": [runs]},
        stream_mode=["messages", "values"],
    ):
        steps.add(mode, item)
    check_once(steps)
    runs.check_nested(steps=2)


# A hand-built agent whose node streams the router (stream/astream) ---------------


def streaming_agent(use_async: bool) -> Any:
    from langgraph.graph import END, START, MessagesState, StateGraph
    from langgraph.prebuilt import ToolNode, tools_condition

    bound = make_router().bind_tools([add])

    def model(state: MessagesState) -> dict[str, Any]:
        chunks = list(bound.stream(state["messages"]))
        return {"messages": [as_message(chunks)]}

    async def amodel(state: MessagesState) -> dict[str, Any]:
        chunks = [chunk async for chunk in bound.astream(state["messages"])]
        return {"messages": [as_message(chunks)]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", amodel if use_async else model)
    graph.add_node("tools", ToolNode([add]))
    graph.add_edge(START, "model")
    graph.add_conditional_edges("model", tools_condition)
    graph.add_edge("tools", "model")
    graph.add_edge("model", END)
    return graph.compile()


def as_message(chunks: list[Any]) -> AIMessage:
    first, *rest = chunks
    merged = first + rest if rest else first
    return AIMessage(
        content=merged.content,
        tool_calls=merged.tool_calls,
        response_metadata=merged.response_metadata,
        id=merged.id,
    )


def test_a_node_that_streams_the_router_shows_each_token_once() -> None:
    runs = Runs()
    steps = Steps()
    for mode, item in streaming_agent(use_async=False).stream(
        {"messages": [("user", QUESTION)]},
        {"callbacks": [runs]},
        stream_mode=["messages", "values"],
    ):
        steps.add(mode, item)
    check_once(steps)
    runs.check_nested(steps=2)


async def test_a_node_that_astreams_the_router_shows_each_token_once() -> None:
    runs = Runs()
    steps = Steps()
    async for mode, item in streaming_agent(use_async=True).astream(
        {"messages": [("user", QUESTION)]},
        {"callbacks": [runs]},
        stream_mode=["messages", "values"],
    ):
        steps.add(mode, item)
    check_once(steps)
    runs.check_nested(steps=2)


@pytest.mark.parametrize("in_a_sequence", [False, True])
async def test_astream_events_of_a_bound_router_stream_each_chunk_once(
    in_a_sequence: bool,
) -> None:
    bound = make_router().bind_tools([add])
    runnable: Any = bound | (lambda message: message) if in_a_sequence else bound
    events = [e async for e in runnable.astream_events(QUESTION, version="v2")]
    streamed = [e for e in events if e["event"] == "on_chat_model_stream"]
    sources = {e["metadata"].get("ls_model_name") for e in streamed}
    assert sources and not sources & set(CHILDREN)  # never from the child's run
    first, *rest = [e["data"]["chunk"] for e in streamed]
    merged = first + rest
    assert [(c["name"], c["args"]) for c in merged.tool_calls] == [
        ("add", {"a": 1, "b": 1})
    ]
