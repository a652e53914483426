"""LangChain contracts over real ``ChatOpenAI`` HTTP on the replay server (issue 14):
usage counted once, tokens streamed once, structured output by the chosen child;
and (issue 23) children as ``init_chat_model`` strings, the router's profile, and
runs priced as the child that answered."""

from __future__ import annotations

from typing import Any
from uuid import UUID

import pytest
from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler, get_usage_metadata_callback
from langchain_core.outputs import LLMResult
from pydantic import BaseModel, Field

from langchain_metallm import MetaLLMFeedbackHandler, MetaLLMRouterChatModel
from langchain_metallm.testing import ReplayServer, Rule, fallback_reply

from .embedders import HashingEmbeddings
from .replay_router import NAMES, replay_router

SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


class Weather(BaseModel):
    """Weather report for a city."""

    city: str = Field(description="City name")
    celsius: int = Field(ge=-30, le=50)


@pytest.mark.parametrize("streaming", [False, True])
def test_one_call_is_counted_once_by_usage_callbacks(
    replay_server: ReplayServer, streaming: bool
) -> None:
    router = replay_router(replay_server, streaming=streaming)
    with get_usage_metadata_callback() as tally:
        answer = router.invoke("What is 1 + 2?")
    assert list(tally.usage_metadata) == [answer.response_metadata["model_name"]]
    counted = next(iter(tally.usage_metadata.values()))
    assert (
        counted["total_tokens"]
        == answer.response_metadata["metallm"]["usage"]["total_tokens"]
    )


@SESSION_LOOP
async def test_astream_events_stream_each_token_once(
    replay_server: ReplayServer,
) -> None:
    router = replay_router(replay_server)
    events = [e async for e in router.astream_events("What is 1 + 2?", version="v2")]
    streamed = "".join(
        e["data"]["chunk"].text for e in events if e["event"] == "on_chat_model_stream"
    )
    answer = next(e for e in events if e["event"] == "on_chat_model_end")
    assert streamed == answer["data"]["output"].text and streamed


def test_json_schema_is_sent_as_response_format_by_the_chosen_child(
    replay_server: ReplayServer,
) -> None:
    router = replay_router(replay_server)
    out = router.with_structured_output(
        Weather, method="json_schema", strict=True, include_raw=True
    ).invoke("Weather in Rome?")
    assert isinstance(out["parsed"], Weather) and out["parsing_error"] is None
    body = replay_server.requests[-1].body
    assert body["response_format"]["type"] == "json_schema"
    assert body["response_format"]["json_schema"]["strict"] is True
    assert "tools" not in body
    meta = out["raw"].response_metadata["metallm"]
    assert router.is_pending(meta["run_id"])
    router.record_feedback(out["raw"], 1.0)


def test_json_mode_is_sent_as_response_format(replay_server: ReplayServer) -> None:
    replay_server.add_rule(Rule(text='{"city": "Rome", "celsius": 21}', times=None))
    router = replay_router(replay_server)
    out = router.with_structured_output(Weather, method="json_mode").invoke(
        "Weather in Rome? Answer in JSON."
    )
    assert out == Weather(city="Rome", celsius=21)
    body = replay_server.requests[-1].body
    assert body["response_format"] == {"type": "json_object"}
    assert "tools" not in body


def test_strict_function_calling_reaches_the_tool_definition(
    replay_server: ReplayServer,
) -> None:
    router = replay_router(replay_server)
    out = router.with_structured_output(
        Weather, method="function_calling", strict=True
    ).invoke("Weather in Rome?")
    assert isinstance(out, Weather)
    tools = replay_server.requests[-1].tools
    assert tools is not None and tools[0]["function"]["strict"] is True


def test_structured_output_is_scored_by_the_feedback_handler(
    replay_server: ReplayServer,
) -> None:
    router = replay_router(replay_server)
    handler = MetaLLMFeedbackHandler(router, lambda messages, generation: 1.0)
    router.with_structured_output(Weather, method="json_schema").invoke(
        "Weather in Rome?", config={"callbacks": [handler]}
    )
    assert router.stats()["applied"] == 1 and router.stats()["pending"] == 0


@SESSION_LOOP
async def test_structured_output_async_and_streamed(
    replay_server: ReplayServer,
) -> None:
    router = replay_router(replay_server)
    structured = router.with_structured_output(Weather, method="json_schema")
    out = await structured.ainvoke("Weather in Rome?")
    streamed = [chunk async for chunk in structured.astream("Weather in Rome?")]
    assert isinstance(out, Weather) and streamed[-1] == out


# Issue 23, item 5: LangChain conventions ---------------------------------------------


class Runs(BaseCallbackHandler):
    """Each chat-model run's parent, tracing metadata and output."""

    def __init__(self) -> None:
        self.parent: dict[UUID, UUID | None] = {}
        self.metadata: dict[UUID, dict[str, Any]] = {}
        self.output: dict[UUID, LLMResult] = {}

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
        self.parent[run_id] = parent_run_id
        self.metadata[run_id] = dict(metadata or {})

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        self.output[run_id] = response


def string_children(
    server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> MetaLLMRouterChatModel:
    """A router whose children are ``init_chat_model`` strings; ``ChatOpenAI``
    finds the replay server and a key through the environment."""
    monkeypatch.delenv("OPENAI_API_BASE", raising=False)
    monkeypatch.setenv("OPENAI_BASE_URL", server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    return MetaLLMRouterChatModel(
        models={"small": "openai:gpt-4o-mini", "large": "openai:gpt-4o"},
        costs={"small": 0.15, "large": 2.5},
        embeddings=HashingEmbeddings(),
    )


def test_init_chat_model_strings_route_over_http(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    router = string_children(replay_server, monkeypatch)
    answer = router.invoke("What is 1 + 2?")
    chosen = answer.response_metadata["metallm"]["model"]
    requested = {"small": "gpt-4o-mini", "large": "gpt-4o"}[chosen]
    assert [r.model for r in replay_server.requests] == [requested]
    assert answer.text == fallback_reply(requested, "What is 1 + 2?")
    router.record_feedback(answer, 1.0)


def test_an_agent_uses_the_childrens_native_structured_output(
    replay_server: ReplayServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Both children's profiles have ``structured_output``, so the router's does,
    and ``create_agent`` asks for the provider's JSON schema, not a tool."""
    router = string_children(replay_server, monkeypatch)
    assert router.profile is not None and router.profile["structured_output"]
    agent = create_agent(router, tools=[], response_format=Weather)
    state = agent.invoke({"messages": [("user", "Weather in Rome?")]})
    assert isinstance(state["structured_response"], Weather)
    body = replay_server.requests[-1].body
    assert body["response_format"]["type"] == "json_schema"


def test_the_childs_run_is_priced_as_the_child_and_the_router_carries_no_usage(
    replay_server: ReplayServer,
) -> None:
    """LangSmith prices a run from its ``ls_provider``/``ls_model_name`` and
    token usage: the child's run has its own (openai, the served model, the
    usage); the router's run is ``metallm`` and reports no usage of its own."""
    router = replay_router(replay_server)
    runs = Runs()
    answer = router.invoke("What is 1 + 2?", config={"callbacks": [runs]})
    (root,) = [run for run, parent in runs.parent.items() if parent is None]
    (child,) = [run for run, parent in runs.parent.items() if parent == root]
    name = answer.response_metadata["metallm"]["model"]
    assert runs.metadata[child]["ls_provider"] == "openai"
    assert runs.metadata[child]["ls_model_name"] == NAMES[name]
    assert runs.metadata[root]["ls_provider"] == "metallm"
    child_message = runs.output[child].generations[0][0].message  # type: ignore[attr-defined]
    assert child_message.usage_metadata["total_tokens"] > 0
    router_message = runs.output[root].generations[0][0].message  # type: ignore[attr-defined]
    assert router_message.usage_metadata is None
    assert "token_usage" not in (runs.output[root].llm_output or {})
