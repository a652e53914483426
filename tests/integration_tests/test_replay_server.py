"""The replay server through the real LangChain OpenAI clients."""

from __future__ import annotations

import json
import socket
import threading
from pathlib import Path
from typing import Any, Literal

import httpx
import openai
import pytest
from langchain_core.messages import AIMessage, AIMessageChunk
from langchain_openai import ChatOpenAI
from langchain_together import ChatTogether
from pydantic import BaseModel, Field, SecretStr

import langchain_metallm
from langchain_metallm.testing import (
    ReplayServer,
    Rule,
    ScriptedToolCall,
    default_gsm8k_path,
    fallback_reply,
)
from langchain_metallm.testing.recorded import count_tokens
from langchain_metallm.testing.schema_values import example_from_schema

MIXTRAL = "mistralai/Mixtral-8x7B-Instruct-v0.1"
GPT4 = "gpt-4-1106-preview"
ROWS = [
    json.loads(line)
    for line in default_gsm8k_path().read_text(encoding="utf-8").splitlines()[:3]
]
QUESTION = ROWS[0]["prompt"]
# langchain_openai caches async clients per base_url: share one loop (see conftest).
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")
WRAPPED = (
    f"Solve step by step; end with '#### <number>'.\n\nQuestion: {QUESTION}\nAnswer:"
)


class Weather(BaseModel):
    """Weather report for a city."""

    city: str = Field(description="City name")
    celsius: int = Field(ge=-30, le=50)
    sunny: bool


def get_weather(city: str, days: int = 3) -> str:
    """Forecast the weather in ``city`` for ``days`` days."""
    return f"{city}: sunny for {days} days"


def chat(server: ReplayServer, model: str = GPT4, **kwargs: Any) -> ChatOpenAI:
    return ChatOpenAI(
        base_url=server.base_url,
        api_key=SecretStr("test"),
        model=model,
        max_retries=0,
        **kwargs,
    )


def expected_usage(text: str, reply: str) -> dict[str, int]:
    prompt, completion = count_tokens(text), count_tokens(reply)
    return {
        "input_tokens": prompt,
        "output_tokens": completion,
        "total_tokens": prompt + completion,
    }


def aggregate(chunks: list[Any]) -> AIMessageChunk:
    """Sum streamed chunks into one message, as LangChain does."""
    assert chunks
    assert all(isinstance(chunk, AIMessageChunk) for chunk in chunks)
    total: AIMessageChunk = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def usage_counts(message: AIMessage) -> dict[str, int]:
    usage = message.usage_metadata
    assert usage is not None
    return {
        key: usage[key] for key in ("input_tokens", "output_tokens", "total_tokens")
    }


def test_lists_both_gsm8k_models(replay_server: ReplayServer) -> None:
    client = openai.OpenAI(base_url=replay_server.base_url, api_key="test")
    assert [model.id for model in client.models.list()] == [MIXTRAL, GPT4]


@pytest.mark.parametrize("model", [MIXTRAL, GPT4])
def test_invoke_returns_recorded_response(
    replay_server: ReplayServer, model: str
) -> None:
    recorded = ROWS[0]["responses"][model]
    message = chat(replay_server, model).invoke(QUESTION)
    assert message.content == recorded
    assert usage_counts(message) == expected_usage(QUESTION, recorded)
    assert chat(replay_server, model).invoke(WRAPPED).content == recorded


@pytest.mark.parametrize("model", [MIXTRAL, GPT4])
def test_stream_returns_same_text_in_chunks_with_usage(
    replay_server: ReplayServer, model: str
) -> None:
    recorded = ROWS[1]["responses"][model]
    question = ROWS[1]["prompt"]
    chunks = list(chat(replay_server, model, stream_usage=True).stream(question))
    texts = [chunk.content for chunk in chunks if chunk.content]
    assert len(texts) > 3
    assert "".join(str(text) for text in texts) == recorded
    assert usage_counts(aggregate(chunks)) == expected_usage(question, recorded)
    request = replay_server.requests[-1]
    assert request.stream
    assert request.body["stream_options"] == {"include_usage": True}


@SESSION_LOOP
async def test_ainvoke_and_astream(replay_server: ReplayServer) -> None:
    recorded = ROWS[2]["responses"][MIXTRAL]
    question = ROWS[2]["prompt"]
    model = chat(replay_server, MIXTRAL, stream_usage=True)
    message = await model.ainvoke(question)
    assert message.content == recorded
    pieces = [chunk async for chunk in model.astream(question)]
    assert "".join(str(piece.content) for piece in pieces) == recorded
    assert usage_counts(aggregate(pieces)) == expected_usage(question, recorded)


def test_unknown_question_gets_deterministic_fallback(
    replay_server: ReplayServer,
) -> None:
    question = "What is the airspeed velocity of an unladen swallow?"
    first = chat(replay_server, MIXTRAL).invoke(question).content
    assert first == chat(replay_server, MIXTRAL).invoke(question).content
    assert first == fallback_reply(MIXTRAL, question)
    assert first != chat(replay_server, GPT4).invoke(question).content


def test_requests_are_recorded(replay_server: ReplayServer) -> None:
    chat(replay_server, MIXTRAL).bind_tools([get_weather]).invoke("hi there")
    (request,) = replay_server.requests
    assert request.model == MIXTRAL
    assert request.messages == [{"role": "user", "content": "hi there"}]
    assert not request.stream
    assert request.tools is not None
    assert request.tools[0]["function"]["name"] == "get_weather"
    replay_server.reset()
    assert replay_server.requests == []


@pytest.mark.parametrize("streaming", [False, True])
def test_scripted_tool_call(replay_server: ReplayServer, streaming: bool) -> None:
    replay_server.add_rule(
        Rule(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris", "days": 2})])
    )
    model = chat(replay_server).bind_tools([get_weather])
    if streaming:
        chunks = list(model.stream("Weather in Paris?"))
        assert len(chunks) > 3
        message: AIMessage = aggregate(chunks)
    else:
        message = model.invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "Paris", "days": 2})
    ]
    assert message.tool_calls[0]["id"]
    # The rule was used up: the next request gets the normal answer.
    assert chat(replay_server).invoke("Weather in Paris?").tool_calls == []


@pytest.mark.parametrize("tool_choice", ["get_weather", "any"])
def test_forced_tool_choice_synthesises_arguments(
    replay_server: ReplayServer, tool_choice: str
) -> None:
    model = chat(replay_server).bind_tools([get_weather], tool_choice=tool_choice)
    message = model.invoke("Weather in Paris?")
    assert [(c["name"], c["args"]) for c in message.tool_calls] == [
        ("get_weather", {"city": "sample city", "days": 3})
    ]
    expected = "required" if tool_choice == "any" else "function"
    sent = replay_server.requests[-1].tool_choice
    assert (sent if tool_choice == "any" else sent["type"]) == expected


@pytest.mark.parametrize("method", ["function_calling", "json_schema"])
@SESSION_LOOP
async def test_with_structured_output(
    replay_server: ReplayServer, method: Literal["function_calling", "json_schema"]
) -> None:
    # LangChain swaps json_schema for tools on gpt-4-1106-preview (too old for it).
    llm = chat(replay_server, "gpt-4o-mini" if method == "json_schema" else GPT4)
    model = llm.with_structured_output(Weather, method=method)
    result = model.invoke("Weather in Paris?")
    assert result == Weather(city="sample city", celsius=-30, sunny=True)
    assert await model.ainvoke("Weather in Paris?") == result
    assert example_from_schema(Weather.model_json_schema()) == result.model_dump()
    sent = replay_server.requests[-1].body
    if method == "json_schema":
        assert sent["response_format"]["type"] == "json_schema"
        assert "tools" not in sent
    else:
        assert sent["tool_choice"]["function"]["name"] == "Weather"


@pytest.mark.parametrize(
    ("status", "error"),
    [
        (429, openai.RateLimitError),
        (500, openai.InternalServerError),
        (503, openai.InternalServerError),
    ],
)
@pytest.mark.parametrize("streaming", [False, True])
def test_scripted_http_errors(
    replay_server: ReplayServer,
    status: int,
    error: type[openai.APIStatusError],
    streaming: bool,
) -> None:
    replay_server.add_rule(Rule(status=status, error_message="try later"))
    model = chat(replay_server)
    with pytest.raises(error, match="try later") as caught:
        if streaming:
            list(model.stream(QUESTION))
        else:
            model.invoke(QUESTION)
    assert caught.value.status_code == status
    assert caught.value.body == {
        "message": "try later",
        "type": "requests" if status == 429 else "server_error",
        "param": None,
        "code": {429: "rate_limit_exceeded", 503: "service_unavailable"}.get(status),
    }


@SESSION_LOOP
async def test_delay_beyond_client_timeout_raises_timeout(
    replay_server: ReplayServer,
) -> None:
    replay_server.add_rule(Rule(delay=30.0, times=2))  # far beyond the timeout
    model = chat(replay_server, timeout=0.3)
    with pytest.raises(openai.APITimeoutError):
        model.invoke(QUESTION)
    with pytest.raises(openai.APITimeoutError):
        await model.ainvoke(QUESTION)


def test_delay_within_timeout_still_answers(replay_server: ReplayServer) -> None:
    replay_server.add_rule(Rule(delay=0.2))
    assert (
        chat(replay_server, timeout=5).invoke(QUESTION).content
        == (ROWS[0]["responses"][GPT4])
    )


@pytest.mark.parametrize("streaming", [False, True])
def test_malformed_body_raises(replay_server: ReplayServer, streaming: bool) -> None:
    replay_server.add_rule(Rule(malformed=True))
    model = chat(replay_server)
    with pytest.raises(json.JSONDecodeError):
        if streaming:
            list(model.stream(QUESTION))
        else:
            model.invoke(QUESTION)


def test_rules_target_model_text_and_count(replay_server: ReplayServer) -> None:
    replay_server.add_rule(Rule(text="scripted", model=MIXTRAL, times=2))
    replay_server.add_rule(Rule(text="about ducks", contains="ducks", times=None))
    assert chat(replay_server, GPT4).invoke("hello").content != "scripted"
    assert chat(replay_server, MIXTRAL).invoke("hello").content == "scripted"
    assert chat(replay_server, MIXTRAL).invoke("hello").content == "scripted"
    assert chat(replay_server, MIXTRAL).invoke("hello").content != "scripted"
    for model in (MIXTRAL, GPT4, MIXTRAL):
        assert chat(replay_server, model).invoke("my ducks").content == "about ducks"


def test_bad_requests_get_openai_style_400(replay_server: ReplayServer) -> None:
    url = f"{replay_server.base_url}/chat/completions"
    not_json = httpx.post(url, content=b"{nope", timeout=5)
    assert not_json.status_code == 400
    assert not_json.json()["error"]["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError, match="messages"):
        openai.OpenAI(
            base_url=replay_server.base_url, api_key="test", max_retries=0
        ).chat.completions.create(model=GPT4, messages=[])


def test_chat_together_can_use_the_server(replay_server: ReplayServer) -> None:
    model = ChatTogether(
        base_url=replay_server.base_url,
        api_key=SecretStr("test"),
        model=MIXTRAL,
        max_retries=0,
    )
    message = model.invoke(QUESTION)
    assert message.content == ROWS[0]["responses"][MIXTRAL]
    assert usage_counts(message) == expected_usage(QUESTION, message.text)
    assert replay_server.requests[-1].model == MIXTRAL


def test_stop_releases_port_and_thread() -> None:
    sample = Path(langchain_metallm.__file__).parent / "data/gsm8k2/sample.jsonl"
    row = json.loads(sample.read_text(encoding="utf-8").splitlines()[-1])
    server = ReplayServer(sample).start()
    port, base_url = server.port, server.base_url
    assert chat(server).invoke(row["prompt"]).content == row["responses"][GPT4]
    server.stop()
    assert f"replay-server-{port}" not in {t.name for t in threading.enumerate()}
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{base_url}/models", timeout=2)
    with ReplayServer(port=port) as again:
        assert again.port == port
        assert httpx.get(f"{again.base_url}/models", timeout=5).status_code == 200
    probe = socket.socket()
    probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    probe.bind(("127.0.0.1", port))
    probe.close()
    with pytest.raises(RuntimeError, match="not running"):
        _ = server.base_url
