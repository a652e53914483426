"""LangChain contracts over real ``ChatOpenAI`` HTTP on the replay server (issue 14):
usage counted once, tokens streamed once, structured output by the chosen child."""

from __future__ import annotations

import pytest
from langchain_core.callbacks import get_usage_metadata_callback
from pydantic import BaseModel, Field

from langchain_metallm import MetaLLMFeedbackHandler
from langchain_metallm.testing import ReplayServer, Rule

from .replay_router import replay_router

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
