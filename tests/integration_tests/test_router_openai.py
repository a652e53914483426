"""The router over real ``ChatOpenAI`` children, over HTTP, on the replay server."""

from __future__ import annotations

import json
import re
from typing import Any
from uuid import UUID

import numpy as np
import openai
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_together import ChatTogether
from pydantic import BaseModel, Field, SecretStr
from typing_extensions import TypedDict

from langchain_metallm import (
    LocalEmbeddings,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
)
from langchain_metallm.core.costs import dollars
from langchain_metallm.testing import (
    ReplayServer,
    Rule,
    ScriptedToolCall,
    default_gsm8k_path,
)
from langchain_metallm.testing.recorded import count_tokens

from .embedders import HashingEmbeddings
from .replay_router import GPT4, MIXTRAL, NAMES, replay_router

PRICES = {"mixtral": (0.6, 0.6), "gpt-4": (10.0, 30.0)}
ROWS = [
    json.loads(line)
    for line in default_gsm8k_path().read_text(encoding="utf-8").splitlines()[:8]
]
QUESTION = ROWS[0]["prompt"]
# langchain_openai caches async clients per base_url: share one loop (see conftest).
SESSION_LOOP = pytest.mark.asyncio(loop_scope="session")


class Weather(BaseModel):
    """Weather report for a city."""

    city: str = Field(description="City name")
    celsius: int = Field(ge=-30, le=50)
    sunny: bool


class WeatherDict(TypedDict):
    """Weather report for a city."""

    city: str
    celsius: int


def get_weather(city: str, days: int = 3) -> str:
    """Forecast the weather in ``city`` for ``days`` days."""
    return f"{city}: sunny for {days} days"


def make_router(server: ReplayServer, **overrides: Any) -> MetaLLMRouterChatModel:
    """Routes on the bare embedding (these tests are about the children's HTTP)."""
    settings = {"cost_weight": 0.2, "online_clusters": False}
    return replay_router(server, **{**settings, **overrides})


def recorded(row: dict[str, Any], child: str) -> str:
    text: str = row["responses"][NAMES[child]]
    return text


def usage_of(message: AIMessage) -> dict[str, int]:
    """The answer's usage, reported in the routing metadata (the child's run
    carries ``usage_metadata``, so callbacks count it once)."""
    assert message.usage_metadata is None
    usage = message.response_metadata["metallm"]["usage"]
    return {k: usage[k] for k in ("input_tokens", "output_tokens", "total_tokens")}


def expected_usage(prompt: str, reply: str) -> dict[str, int]:
    n_in, n_out = count_tokens(prompt), count_tokens(reply)
    return {"input_tokens": n_in, "output_tokens": n_out, "total_tokens": n_in + n_out}


def merge(chunks: list[AIMessageChunk]) -> AIMessageChunk:
    total = chunks[0]
    for chunk in chunks[1:]:
        total = total + chunk
    return total


def final_number(text: str) -> str | None:
    numbers = re.findall(r"-?\d[\d,]*\.?\d*", text)
    return numbers[-1].replace(",", "").rstrip(".") if numbers else None


# Calls ------------------------------------------------------------------------


def test_invoke_returns_the_chosen_childs_recorded_answer_and_usage(
    replay_server: ReplayServer,
) -> None:
    router = make_router(replay_server)
    chosen = router.route(QUESTION).chosen
    answer = router.invoke(QUESTION)
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == chosen
    assert answer.content == recorded(ROWS[0], chosen)
    assert usage_of(answer) == expected_usage(QUESTION, recorded(ROWS[0], chosen))
    assert answer.response_metadata["model_name"] == NAMES[chosen]
    assert [r.model for r in replay_server.requests] == [NAMES[chosen]]
    assert meta["attempts"] == [{"model": chosen, "error": None}]
    assert router.is_pending(meta["run_id"])


@SESSION_LOOP
async def test_ainvoke_routes_over_http(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    answer = await router.ainvoke(QUESTION)
    chosen = answer.response_metadata["metallm"]["model"]
    assert answer.content == recorded(ROWS[0], chosen)
    assert usage_of(answer) == expected_usage(QUESTION, recorded(ROWS[0], chosen))


def test_stream_yields_the_childs_chunks_and_usage(
    replay_server: ReplayServer,
) -> None:
    router = make_router(replay_server)
    question = ROWS[1]["prompt"]
    chunks = list(router.stream(question))
    chosen = chunks[-1].response_metadata["metallm"]["model"]
    assert len([c for c in chunks if c.content]) > 3
    assert "".join(c.text for c in chunks) == recorded(ROWS[1], chosen)
    assert all("metallm" not in c.response_metadata for c in chunks[:-1])
    assert chunks[-1].chunk_position == "last"
    full = merge(chunks)
    assert usage_of(full) == expected_usage(question, recorded(ROWS[1], chosen))
    assert replay_server.requests[-1].stream


@SESSION_LOOP
async def test_astream_yields_the_childs_chunks_and_usage(
    replay_server: ReplayServer,
) -> None:
    router = make_router(replay_server)
    question = ROWS[2]["prompt"]
    chunks = [c async for c in router.astream(question)]
    chosen = chunks[-1].response_metadata["metallm"]["model"]
    assert "".join(c.text for c in chunks) == recorded(ROWS[2], chosen)
    assert usage_of(merge(chunks)) == expected_usage(
        question, recorded(ROWS[2], chosen)
    )


def test_batch_embeds_once_and_answers_each_from_its_child(
    replay_server: ReplayServer,
) -> None:
    embeddings = HashingEmbeddings()
    router = make_router(replay_server, embeddings=embeddings)
    answers = router.batch([row["prompt"] for row in ROWS])
    assert len(embeddings.calls) == 1 and len(embeddings.calls[0]) == len(ROWS)
    for row, answer in zip(ROWS, answers, strict=True):
        chosen = answer.response_metadata["metallm"]["model"]
        assert answer.content == recorded(row, chosen)
    assert len(replay_server.requests) == len(ROWS)
    assert len({a.response_metadata["metallm"]["run_id"] for a in answers}) == len(ROWS)


@SESSION_LOOP
async def test_abatch_answers_each(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    answers = await router.abatch([row["prompt"] for row in ROWS[:4]])
    for row, answer in zip(ROWS, answers, strict=False):
        assert answer.content == recorded(
            row, answer.response_metadata["metallm"]["model"]
        )


# Tools and structured output -------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_tool_calls_through_the_router(
    replay_server: ReplayServer, streaming: bool
) -> None:
    replay_server.add_rule(
        Rule(tool_calls=[ScriptedToolCall("get_weather", {"city": "Paris", "days": 2})])
    )
    bound = make_router(replay_server).bind_tools([get_weather])
    if streaming:
        message: AIMessage = merge(list(bound.stream("Weather in Paris?")))
    else:
        message = bound.invoke("Weather in Paris?")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert message.tool_calls[0]["args"] == {"city": "Paris", "days": 2}
    sent = replay_server.requests[-1]
    assert sent.tools is not None
    assert sent.tools[0]["function"]["name"] == "get_weather"
    assert "metallm" in message.response_metadata


def test_forced_tool_choice_reaches_the_child(replay_server: ReplayServer) -> None:
    bound = make_router(replay_server).bind_tools(
        [get_weather], tool_choice="get_weather"
    )
    message = bound.invoke("hello")
    assert message.tool_calls[0]["name"] == "get_weather"
    assert replay_server.requests[-1].tool_choice == {
        "type": "function",
        "function": {"name": "get_weather"},
    }


def test_tool_result_round_trip(replay_server: ReplayServer) -> None:
    replay_server.add_rule(
        Rule(tool_calls=[ScriptedToolCall("get_weather", {"city": "Oslo"})])
    )
    replay_server.add_rule(Rule(text="Sunny in Oslo."))
    bound = make_router(replay_server).bind_tools([get_weather])
    history: list[BaseMessage | tuple[str, str]] = [("user", "Weather in Oslo?")]
    call = bound.invoke(history)
    result = get_weather.__call__(**call.tool_calls[0]["args"])
    from langchain_core.messages import ToolMessage

    history += [call, ToolMessage(result, tool_call_id=call.tool_calls[0]["id"])]
    final = bound.invoke(history)
    assert final.content == "Sunny in Oslo."
    sent = replay_server.requests[-1].messages
    assert [m["role"] for m in sent] == ["user", "assistant", "tool"]
    assert sent[-1]["content"] == "Oslo: sunny for 3 days"


@pytest.mark.parametrize("schema", [Weather, WeatherDict, Weather.model_json_schema()])
def test_structured_output_through_the_router(
    replay_server: ReplayServer, schema: Any
) -> None:
    router = make_router(replay_server)
    result = router.with_structured_output(schema).invoke("Weather in Rome?")
    data = result.model_dump() if isinstance(result, BaseModel) else result
    assert isinstance(data["city"], str) and isinstance(data["celsius"], int)
    if schema is Weather:
        assert isinstance(result, Weather)
    streamed = list(router.with_structured_output(schema).stream("Weather in Rome?"))
    final = streamed[-1]
    assert (final.model_dump() if isinstance(final, BaseModel) else final) == data


@SESSION_LOOP
async def test_structured_output_async_with_raw(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    out = await router.with_structured_output(Weather, include_raw=True).ainvoke(
        "Weather in Rome?"
    )
    assert isinstance(out["parsed"], Weather) and out["parsing_error"] is None
    assert out["raw"].response_metadata["metallm"]["model"] in NAMES


def test_router_run_reports_the_structured_output_format(
    replay_server: ReplayServer,
) -> None:
    options: dict[UUID, tuple[UUID | None, dict[str, Any]]] = {}

    class Record(BaseCallbackHandler):
        def on_chat_model_start(
            self,
            serialized: Any,
            messages: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            **kwargs: Any,
        ) -> None:
            options[run_id] = (parent_run_id, kwargs.get("options") or {})

    router = make_router(replay_server)
    router.with_structured_output(Weather).invoke(
        "Weather in Rome?", config={"callbacks": [Record()]}
    )
    assert len(options) == 2  # the router's run and its child's, nested under it
    router_run = next(r for r, (parent, _) in options.items() if parent not in options)
    schema = options[router_run][1]["ls_structured_output_format"]["schema"]
    assert schema["title"] == "Weather"


# Feedback -------------------------------------------------------------------------


def test_feedback_handler_scores_the_parsed_answer(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    gold = {row["prompt"]: row["answer"] for row in ROWS}
    graded: dict[str, float] = {}

    def scorer(messages: Any, generation: Any) -> float:
        prompt = messages[-1].text
        graded[prompt] = float(final_number(generation.text) == gold[prompt])
        return graded[prompt]

    handler = MetaLLMFeedbackHandler(router, scorer)
    answers = router.batch(
        [row["prompt"] for row in ROWS], config={"callbacks": [handler]}
    )
    expected = {
        row["prompt"]: float(final_number(a.text) == row["answer"])
        for row, a in zip(ROWS, answers, strict=True)
    }
    assert graded == expected and sum(graded.values()) > 0
    policy = router.policy
    assert policy is not None and policy.counts.sum() == len(ROWS)
    assert not any(
        router.is_pending(a.response_metadata["metallm"]["run_id"]) for a in answers
    )


def test_mixed_providers_chat_together_and_chat_openai(
    replay_server: ReplayServer,
) -> None:
    together = ChatTogether(
        base_url=replay_server.base_url,
        api_key=SecretStr("test"),
        model=MIXTRAL,
        max_retries=0,
    )
    gpt4 = make_router(replay_server).models["gpt-4"]
    router = make_router(replay_server, models={"mixtral": together, "gpt-4": gpt4})
    replay_server.add_rule(Rule(status=500, model=GPT4))
    router.route(QUESTION)
    policy = router.policy
    assert policy is not None
    bias_only = np.r_[np.zeros(policy.dim - 1), 1.0]
    policy.update(1, policy.check_context(bias_only), 1.0)  # gpt-4 first
    answer = router.invoke(QUESTION)
    meta = answer.response_metadata["metallm"]
    assert [a["model"] for a in meta["attempts"]] == ["gpt-4", "mixtral"]
    assert answer.content == recorded(ROWS[0], "mixtral")
    assert usage_of(answer) == expected_usage(QUESTION, recorded(ROWS[0], "mixtral"))


# Provider failure -----------------------------------------------------------------


def other(name: str) -> str:
    return "gpt-4" if name == "mixtral" else "mixtral"


@pytest.mark.parametrize(
    ("rule", "error"),
    [
        (Rule(status=500), "Error code: 500"),
        (Rule(status=429), "Error code: 429"),
        (Rule(malformed=True), "JSONDecodeError: "),
    ],
)
def test_failed_child_falls_back_to_the_next_arm(
    replay_server: ReplayServer, rule: Rule, error: str
) -> None:
    router = make_router(replay_server)
    chosen = router.route(QUESTION).chosen
    replay_server.add_rule(
        Rule(status=rule.status, malformed=rule.malformed, model=NAMES[chosen])
    )
    answer = router.invoke(QUESTION)
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == other(chosen)
    assert answer.content == recorded(ROWS[0], other(chosen))
    assert [a["model"] for a in meta["attempts"]] == [chosen, other(chosen)]
    assert error in meta["attempts"][0]["error"]
    assert meta["attempts"][1]["error"] is None
    assert [r.model for r in replay_server.requests] == [
        NAMES[chosen],
        NAMES[other(chosen)],
    ]
    router.record_feedback(answer, 1.0)
    policy = router.policy
    assert policy is not None
    assert policy.counts[router.model_names.index(chosen)] == 0
    assert policy.counts[router.model_names.index(other(chosen))] == 1


def test_timeout_falls_back(replay_server: ReplayServer) -> None:
    router = make_router(replay_server, timeout=0.3)
    chosen = router.route(QUESTION).chosen
    replay_server.add_rule(Rule(delay=30.0, model=NAMES[chosen]))  # never in time
    answer = router.invoke(QUESTION)
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == other(chosen)
    assert "timed out" in meta["attempts"][0]["error"]


def test_without_fallback_the_http_error_propagates(
    replay_server: ReplayServer,
) -> None:
    router = make_router(replay_server, fallback=False)
    replay_server.add_rule(Rule(status=500, error_message="provider down"))
    with pytest.raises(openai.InternalServerError, match="provider down") as caught:
        router.invoke(QUESTION)
    assert caught.value.status_code == 500
    assert len(replay_server.requests) == 1


def test_when_every_child_fails_the_last_error_is_raised_with_the_first_in_its_chain(
    replay_server: ReplayServer,
) -> None:
    router = make_router(replay_server)
    chosen = router.route(QUESTION).chosen
    replay_server.add_rule(Rule(status=503, model=NAMES[chosen]))
    replay_server.add_rule(Rule(status=500, model=NAMES[other(chosen)]))
    with pytest.raises(openai.InternalServerError) as caught:
        router.invoke(QUESTION)
    assert caught.value.status_code == 500
    chain: list[BaseException] = []
    link: BaseException | None = caught.value
    while link is not None and len(chain) < 20:
        chain.append(link)
        link = link.__cause__ or link.__context__
    assert any(getattr(e, "status_code", None) == 503 for e in chain[1:])


def test_stream_falls_back_before_the_first_chunk(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    chosen = router.route(QUESTION).chosen
    replay_server.add_rule(Rule(status=500, model=NAMES[chosen]))
    chunks = list(router.stream(QUESTION))
    meta = chunks[-1].response_metadata["metallm"]
    assert meta["model"] == other(chosen)
    assert "".join(c.text for c in chunks) == recorded(ROWS[0], other(chosen))
    assert [a["model"] for a in meta["attempts"]] == [chosen, other(chosen)]


@SESSION_LOOP
async def test_async_calls_fall_back(replay_server: ReplayServer) -> None:
    router = make_router(replay_server)
    chosen = router.route(QUESTION).chosen
    replay_server.add_rule(Rule(status=502, model=NAMES[chosen], times=2))
    answer = await router.ainvoke(QUESTION)
    assert answer.response_metadata["metallm"]["model"] == other(chosen)
    chunks = [c async for c in router.astream(QUESTION)]
    assert chunks[-1].response_metadata["metallm"]["model"] == other(chosen)
    assert "".join(c.text for c in chunks) == recorded(ROWS[0], other(chosen))


# Usage-priced cost ----------------------------------------------------------------


@pytest.mark.parametrize("streaming", [False, True])
def test_usage_cost_mode_prices_the_answers_tokens(
    replay_server: ReplayServer, streaming: bool
) -> None:
    router = make_router(
        replay_server,
        cost_mode="usage",
        prices=PRICES,
        reference_tokens=(100, 200),
        cost_weight=1.0,
    )
    if streaming:
        message: AIMessage = merge(list(router.stream(QUESTION)))
    else:
        message = router.invoke(QUESTION)
    meta = message.response_metadata["metallm"]
    usage = meta["usage"]
    assert usage is not None and usage["output_tokens"] > 0
    reference = 100 * 10.0 / 1e6 + 200 * 30.0 / 1e6  # GPT-4 is the priciest
    cost = dollars(usage, PRICES[meta["model"]]) / reference
    assert meta["cost"] == pytest.approx(cost)
    assert router.record_feedback(meta["run_id"], 1.0) == 1.0  # the score is learned


# The real embedder ----------------------------------------------------------------


@pytest.mark.slow
def test_routes_with_the_real_local_embeddings(replay_server: ReplayServer) -> None:
    router = make_router(replay_server, embeddings=LocalEmbeddings())
    answers = router.batch([row["prompt"] for row in ROWS[:3]])
    policy = router.policy
    assert policy is not None and policy.dim == 384 + 1
    for row, answer in zip(ROWS, answers, strict=False):
        chosen = answer.response_metadata["metallm"]["model"]
        assert answer.content == recorded(row, chosen)
        router.record_feedback(
            answer, float(final_number(answer.text) == row["answer"])
        )
    assert policy.counts.sum() == 3
    assert np.all(np.isfinite(policy.theta))
