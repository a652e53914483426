"""Agent streams over real ``ChatOpenAI`` HTTP show each token once (issue 20,
defect 17): a ``create_agent`` agent over the router, streamed with
``stream_mode="messages"``, streams every model step from the router's run only,
while each child's run stays nested under the router's run and counts the usage."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage

from langchain_metallm.testing import ReplayServer, Rule, ScriptedToolCall

from .replay_router import NAMES, replay_router

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
QUESTION = "What is 1 + 1? Use the add tool."
ANSWER = "The add tool says 1 + 1 is 2, so the answer is 2."
CHILD_NAMES = {*NAMES, *NAMES.values()}


def add(a: int, b: int) -> int:
    """Add two numbers."""
    return a + b


def script(server: ReplayServer) -> None:
    """Whichever child is asked: a call to ``add``, then ``ANSWER``."""
    server.add_rule(Rule(tool_calls=[ScriptedToolCall("add", {"a": 1, "b": 1})]))
    server.add_rule(Rule(text=ANSWER))


class Streamed:
    """A ``stream_mode=["messages", "values"]`` stream: the message chunks per
    step, the runs that streamed them (``ls_model_name``), the last state."""

    def __init__(self) -> None:
        self.chunks: dict[int, list[AIMessageChunk]] = {}
        self.sources: set[str] = set()
        self.state: dict[str, Any] = {}

    def add(self, mode: str, item: Any) -> None:
        if mode == "values":
            self.state = item
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

    def check_once(self) -> None:
        messages: list[BaseMessage] = self.state["messages"]
        call, answer = messages[1], messages[-1]
        assert isinstance(call, AIMessage) and isinstance(answer, AIMessage)
        assert sorted(self.chunks) == [1, 3]  # model, tools, model
        assert self.text(3) == answer.text == ANSWER
        assert len(self.chunks[3]) > 2  # really streamed, token by token
        streamed_call = self.merged(1).tool_calls
        assert [(c["name"], c["args"]) for c in streamed_call] == [
            ("add", {"a": 1, "b": 1})
        ]
        assert not self.sources & CHILD_NAMES  # never from a child's run
        first = call.response_metadata["metallm"]["model"]
        assert answer.response_metadata["metallm"]["model"] == first  # sticky


class Runs(BaseCallbackHandler):
    """Each chat model run's parent and ``ls_model_name``."""

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

    def check_nested(self) -> None:
        """Two router runs, each with one child run directly under it."""
        children = {r for r, name in self.names.items() if name in CHILD_NAMES}
        routers = set(self.names) - children
        assert len(routers) == len(children) == 2
        assert {self.parents[child] for child in children} == routers


def check_usage(streamed: Streamed, usage: dict[str, Any]) -> None:
    """The children's runs counted each step's usage once."""
    answers = [m for m in streamed.state["messages"] if isinstance(m, AIMessage)]
    reported = sum(
        a.response_metadata["metallm"]["usage"]["total_tokens"] for a in answers
    )
    assert set(usage) <= set(NAMES.values())
    assert sum(u["total_tokens"] for u in usage.values()) == reported > 0


def test_agent_stream_over_http_shows_each_token_once(
    replay_server: ReplayServer,
) -> None:
    from langchain.agents import create_agent

    script(replay_server)
    agent = create_agent(replay_router(replay_server), tools=[add])
    streamed, runs = Streamed(), Runs()
    with get_usage_metadata_callback() as usage:
        for mode, item in agent.stream(
            {"messages": [("user", QUESTION)]},
            {"callbacks": [runs]},
            stream_mode=["messages", "values"],
        ):
            streamed.add(mode, item)
    streamed.check_once()
    runs.check_nested()
    check_usage(streamed, usage.usage_metadata)
    assert [r.stream for r in replay_server.requests] == [True, True]


@SESSION_LOOP
async def test_async_agent_stream_over_http_shows_each_token_once(
    replay_server: ReplayServer,
) -> None:
    from langchain.agents import create_agent

    script(replay_server)
    agent = create_agent(replay_router(replay_server), tools=[add])
    streamed, runs = Streamed(), Runs()
    with get_usage_metadata_callback() as usage:
        async for mode, item in agent.astream(
            {"messages": [("user", QUESTION)]},
            {"callbacks": [runs]},
            stream_mode=["messages", "values"],
        ):
            streamed.add(mode, item)
    streamed.check_once()
    runs.check_nested()
    check_usage(streamed, usage.usage_metadata)
    assert [r.stream for r in replay_server.requests] == [True, True]
