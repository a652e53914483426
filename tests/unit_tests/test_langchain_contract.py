"""The router keeps LangChain's chat-model contracts (issue 14), at the public API.

Usage is counted once, each streamed token reaches consumers once, the global LLM
cache, configured variants and copies keep learning sound, batches fail per item,
and scorers are awaited, isolated and loud about their errors.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import Iterator
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from langchain_core.caches import InMemoryCache
from langchain_core.callbacks import (
    BaseCallbackHandler,
    CallbackManagerForLLMRun,
    get_usage_metadata_callback,
)
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.embeddings import Embeddings
from langchain_core.globals import set_llm_cache
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk
from langchain_core.runnables import ConfigurableField, RunnableLambda

from langchain_metallm import (
    FeedbackError,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
)

from .fakes import EchoChild, KeywordEmbeddings, query

USAGE = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}


class MeteredChild(EchoChild):
    """``EchoChild`` that names its model and reports usage when streaming too,
    as provider integrations do; counts its calls."""

    calls: int = 0

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        self.calls += 1
        answer = super()._answer(messages)
        return answer.model_copy(
            update={"response_metadata": {"model_name": self.name_tag}}
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield from super()._stream(messages, stop, run_manager, **kwargs)
        yield ChatGenerationChunk(
            message=AIMessageChunk(
                content="",
                usage_metadata=USAGE,  # type: ignore[arg-type]
                response_metadata={"model_name": self.name_tag},
            )
        )


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {
            "cheap": MeteredChild(name_tag="cheap"),
            "pricey": MeteredChild(name_tag="pricey"),
        },
        "costs": {"cheap": 0.1, "pricey": 1.0},
        "alpha": 0.5,
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def child_calls(router: MetaLLMRouterChatModel) -> int:
    return sum(cast_metered(child).calls for child in router.models.values())


def cast_metered(child: Any) -> MeteredChild:
    assert isinstance(child, MeteredChild)
    return child


def run_id(answer: BaseMessage) -> str:
    return str(answer.response_metadata["metallm"]["run_id"])


def learned(router: MetaLLMRouterChatModel) -> int:
    policy = router.policy
    return 0 if policy is None else int(policy.counts.sum())


@pytest.fixture
def global_cache() -> Iterator[InMemoryCache]:
    cache = InMemoryCache()
    set_llm_cache(cache)
    yield cache
    set_llm_cache(None)


# 1. Usage is counted once --------------------------------------------------------


@pytest.mark.parametrize("call", ["invoke", "stream", "batch"])
def test_usage_callback_counts_one_call_once(call: str) -> None:
    router = make_router()
    with get_usage_metadata_callback() as tally:
        if call == "invoke":
            router.invoke("math 1")
        elif call == "stream":
            list(router.stream("math 1"))
        else:
            router.batch(["math 1"])
    totals = list(tally.usage_metadata.values())
    assert len(totals) == 1
    assert {k: totals[0][k] for k in USAGE} == USAGE  # type: ignore[literal-required]


async def test_usage_callback_counts_async_calls_once() -> None:
    router = make_router()
    with get_usage_metadata_callback() as tally:
        await router.ainvoke("math 1")
        [c async for c in router.astream("poem 2")]
    assert sum(u["total_tokens"] for u in tally.usage_metadata.values()) == 10


def test_the_answer_reports_its_childs_usage_in_the_routing_metadata() -> None:
    answer = make_router().invoke("math 1")
    assert answer.usage_metadata is None  # carried by the child's run
    assert answer.response_metadata["metallm"]["usage"] == USAGE


# 2. Each streamed token reaches consumers once ----------------------------------


async def test_astream_events_streams_each_token_once() -> None:
    router = make_router()
    tokens = [
        event["data"]["chunk"].text
        async for event in router.astream_events("math 1", version="v2")
        if event["event"] == "on_chat_model_stream"
    ]
    answer = "".join(tokens)
    assert answer.endswith(": math 1") and answer.count("math") == 1


def test_child_stays_a_nested_run_while_streaming() -> None:
    runs: dict[UUID, UUID | None] = {}

    class Tracer(BaseCallbackHandler):
        def on_chat_model_start(
            self, serialized: Any, messages: Any, *, run_id: UUID, **kwargs: Any
        ) -> None:
            runs[run_id] = kwargs.get("parent_run_id")

    list(make_router().stream("math 1", config={"callbacks": [Tracer()]}))
    parents = list(runs.values())
    assert len(runs) == 2 and parents.count(None) == 1
    child_parent = next(p for p in parents if p is not None)
    assert child_parent in runs


def test_langgraph_messages_stream_each_token_once() -> None:
    from langgraph.graph import END, START, MessagesState, StateGraph

    router = make_router()

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [router.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("model", call)
    graph.add_edge(START, "model")
    graph.add_edge("model", END)
    app = graph.compile()
    streamed = "".join(
        message.text
        for message, _ in app.stream(
            {"messages": [("user", "math 1")]}, stream_mode="messages"
        )
    )
    assert streamed.endswith(": math 1") and streamed.count("math") == 1


# 3. The global LLM cache -----------------------------------------------------------


def test_global_cache_does_not_short_circuit_routing(
    global_cache: InMemoryCache,
) -> None:
    router = make_router()
    first, second = router.invoke("math 1"), router.invoke("math 1")
    assert run_id(first) != run_id(second)
    router.record_feedback(first, 1.0)
    router.record_feedback(second, 1.0)
    assert learned(router) == 2


def test_an_opted_in_cache_hit_has_its_own_run_and_refuses_feedback(
    global_cache: InMemoryCache,
) -> None:
    router = make_router(cache=True)
    first = router.invoke("math 1")
    calls = child_calls(router)
    second = router.invoke("math 1")
    assert child_calls(router) == calls  # served from the cache
    meta = second.response_metadata["metallm"]
    assert meta["cached"] is True and run_id(second) != run_id(first)
    with pytest.raises(FeedbackError, match="cache"):
        router.record_feedback(second, 1.0)
    assert router.record_feedback(first, 1.0) == 1.0


# 4. Configured variants and copies -------------------------------------------------


def test_configured_variant_routes_and_learns_on_the_shared_state() -> None:
    router = make_router()
    router.fit([query("math", i) for i in range(6)], [[1.0, 0.0]] * 6)
    configurable = router.configurable_fields(max_tokens=ConfigurableField(id="mt"))
    answer = configurable.invoke("math 7", config={"configurable": {"mt": 5}})
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == "cheap" and meta["expected_reward"] > 0.5
    router.record_feedback(answer, 1.0)
    assert learned(router) == 13  # 6 prompts x 2 models, then this answer


def test_configured_variant_feedback_through_the_handler() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router, lambda messages, generation: 1.0)
    configurable = router.configurable_fields(max_tokens=ConfigurableField(id="mt"))
    configurable.invoke(
        "math 1", config={"configurable": {"mt": 5}, "callbacks": [handler]}
    )
    assert learned(router) == 1 and router.stats()["refused"] == 0


@pytest.mark.parametrize(
    "field", ["costs", "embeddings", "ridge", "budget", "decay", "alpha"]
)
def test_configuring_a_field_that_defines_learning_is_refused(field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_router().configurable_fields(**{field: ConfigurableField(id=field)})


def test_a_configured_cost_weight_changes_decisions_not_statistics() -> None:
    """The cost weight enters decisions only: a configured variant decides with
    its own, the router keeps its weight, and feedback on the variant's answer
    learns the same score statistics as feedback on the router's."""
    router = make_router()
    router.fit([query("math", i) for i in range(6)], [[0.6, 0.9]] * 6)
    configurable = router.configurable_fields(cost_weight=ConfigurableField(id="p"))
    before = [a.tobytes() for a in router.policy.statistics()]  # type: ignore[union-attr]

    def chosen(answer: BaseMessage) -> str:
        return str(answer.response_metadata["metallm"]["model"])

    frugal = configurable.invoke("math 7", config={"configurable": {"p": 1.0}})
    assert chosen(frugal) == "cheap" and router.cost_weight == 0.0
    assert chosen(router.invoke("math 8")) == "pricey"
    assert chosen(configurable.invoke("math 9")) == "pricey"  # not configured: 0
    lavish = configurable.invoke("math 10", config={"configurable": {"p": 0.0}})
    assert chosen(lavish) == "pricey"
    after = [a.tobytes() for a in router.policy.statistics()]  # type: ignore[union-attr]
    assert after == before  # deciding learned nothing
    reference = make_router()
    reference.fit([query("math", i) for i in range(6)], [[0.6, 0.9]] * 6)
    reference_answer = reference.invoke("math 7", cost_weight=1.0)
    router.record_feedback(frugal, 0.5)
    reference.record_feedback(reference_answer, 0.5)
    for mine, theirs in zip(
        router.policy.statistics(),  # type: ignore[union-attr]
        reference.policy.statistics(),  # type: ignore[union-attr]
        strict=True,
    ):
        np.testing.assert_array_equal(mine, theirs)
    with pytest.raises(ValueError, match="cost_weight"):
        configurable.invoke("math 11", config={"configurable": {"p": -1.0}})
    assert [a.tobytes() for a in router.policy.statistics()] == [  # type: ignore[union-attr]
        a.tobytes()
        for a in reference.policy.statistics()  # type: ignore[union-attr]
    ]


def test_model_copy_shares_learning_and_refuses_a_different_cost_weight() -> None:
    router = make_router()
    copy = router.model_copy(update={"fallback": False})
    answer = copy.invoke("math 1")
    router.record_feedback(answer, 1.0)
    assert learned(copy) == learned(router) == 1
    copy.set_cost_weight(0.5)  # decisions of both use it; nothing is relearned
    assert router.cost_weight == copy.cost_weight == 0.5
    second = copy.invoke("math 2")
    assert router.record_feedback(second, 1.0) == 1.0  # the score is learned
    with pytest.raises(ValueError, match="cost_weight"):
        router.model_copy(update={"cost_weight": 0.9})
    with pytest.raises(ValueError, match="deep"):
        router.model_copy(deep=True)


# 5. Cost weight changes race-free ---------------------------------------------------


def test_set_cost_weight_loses_no_concurrent_feedback() -> None:
    router = make_router(cost_weight=0.0)
    reference = make_router(cost_weight=0.0)
    texts = [query("math" if i % 2 else "poetry", i) for i in range(300)]
    answers = router.batch(texts)
    for text, answer in zip(texts, answers, strict=True):
        arm = answer.response_metadata["metallm"]["model"]
        reference.route(text)
        assert reference.policy is not None
        context = np.array([*KeywordEmbeddings().embed_query(text), 1.0])
        reference.policy.update(arm, context, 1.0)
    done = threading.Event()

    def flip() -> None:
        while not done.is_set():
            router.set_cost_weight(0.7)
            router.set_cost_weight(0.0)

    flipper = threading.Thread(target=flip)
    flipper.start()
    try:
        for answer in answers:
            router.record_feedback(answer, 1.0)
    finally:
        done.set()
        flipper.join()
    assert router.cost_weight == 0.0
    assert learned(router) == router.stats()["applied"] == len(texts)
    assert router.policy is not None and reference.policy is not None
    np.testing.assert_allclose(router.policy.theta, reference.policy.theta, atol=1e-8)


# 6. Calls made inside a scorer are not scored -------------------------------------


def test_a_scorer_that_calls_the_router_is_not_scored_itself() -> None:
    router = make_router()
    judged: list[str] = []

    def judge(messages: Any, generation: Any) -> float:
        judged.append(generation.text)
        verdict = router.invoke(f"math judge: {generation.text}")
        return 1.0 if verdict.text else 0.0

    handler = MetaLLMFeedbackHandler(router, judge)
    chain = RunnableLambda(lambda text: text) | router
    chain.invoke("math 1", config={"callbacks": [handler]})
    assert len(judged) == 1 and learned(router) == 1
    assert router.stats()["pending"] == 1  # the judge's own call awaits feedback


# 8. Batches fail per item -----------------------------------------------------------


class FailingEmbeddings(KeywordEmbeddings):
    """Refuses any batch that contains the word 'boom'."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if any("boom" in t for t in texts):
            raise RuntimeError("embedder: cannot embed 'boom'")
        return super().embed_documents(texts)


def test_batch_returns_one_result_or_exception_per_item() -> None:
    router = make_router()
    out = router.batch(["math 1", []], return_exceptions=True)  # type: ignore[list-item]
    assert isinstance(out[0], AIMessage) and isinstance(out[1], ValueError)
    failing = make_router(embeddings=FailingEmbeddings())
    with pytest.warns(UserWarning, match="embeddings: failed"):
        out = failing.batch(["math 1", "boom"])
    # The batch's one embeddings call failed; each item is then embedded alone,
    # and only the one that cannot be is answered without an embedding.
    flags = [a.response_metadata["metallm"]["embedding_failed"] for a in out]
    assert flags == [False, True]


async def test_abatch_returns_one_result_or_exception_per_item() -> None:
    router = make_router()
    out = await router.abatch(["math 1", 42], return_exceptions=True)  # type: ignore[list-item]
    assert isinstance(out[0], AIMessage) and isinstance(out[1], Exception)


# 9. A reused run id is refused before any child is called -------------------------


@pytest.mark.parametrize("call", ["invoke", "stream"])
def test_reused_run_id_is_refused_before_the_child_is_called(call: str) -> None:
    router = make_router()
    config: Any = {"run_id": uuid4()}
    router.invoke("math 1", config=config)
    calls = child_calls(router)
    with pytest.raises(ValueError, match="already routed"):
        if call == "invoke":
            router.invoke("math 2", config=config)
        else:
            list(router.stream("math 2", config=config))
    assert child_calls(router) == calls


# 10. Async scorers ------------------------------------------------------------------


async def test_async_scorer_is_awaited_in_async_runs() -> None:
    router = make_router()

    async def scorer(messages: Any, generation: Any) -> float:
        await asyncio.sleep(0)
        return 1.0

    handler = MetaLLMFeedbackHandler(router, scorer)
    answer = await router.ainvoke("math 1", config={"callbacks": [handler]})
    assert not router.is_pending(run_id(answer)) and learned(router) == 1


def test_async_scorer_also_works_in_sync_runs() -> None:
    router = make_router()

    async def scorer(messages: Any, generation: Any) -> float:
        return 0.5

    handler = MetaLLMFeedbackHandler(router, scorer)
    router.invoke("math 1", config={"callbacks": [handler]})
    assert learned(router) == 1


# 11. Scorer errors are counted and visible ----------------------------------------


@pytest.mark.parametrize("bad", [1.5, None, "0.7", "raise"])
def test_scorer_errors_are_counted_and_logged_with_the_run(
    bad: Any, caplog: pytest.LogCaptureFixture
) -> None:
    router = make_router()

    def scorer(messages: Any, generation: Any) -> Any:
        if bad == "raise":
            raise RuntimeError("grader down")
        return bad

    handler = MetaLLMFeedbackHandler(router, scorer)
    with caplog.at_level(logging.ERROR, logger="langchain_metallm"):
        answer = router.invoke("math 1", config={"callbacks": [handler]})
    assert router.stats()["scorer_errors"] == 1
    assert router.is_pending(run_id(answer))
    assert any(run_id(answer) in r.getMessage() for r in caplog.records)


def test_scorer_errors_raise_with_raise_error() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router, lambda m, g: 2.0, raise_error=True)
    with pytest.raises(ValueError, match="score"):
        router.invoke("math 1", config={"callbacks": [handler]})
    assert router.stats()["scorer_errors"] == 1


def test_malformed_feedback_event_is_counted() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router)

    def grade(answer: AIMessage) -> AIMessage:
        dispatch_custom_event("metallm_feedback", {"score": 1.0})
        return answer

    chain = router | RunnableLambda(grade)
    chain.invoke("math 1", config={"callbacks": [handler]})
    assert router.stats()["scorer_errors"] == 1


# Production expectations ------------------------------------------------------------


def test_a_fresh_router_can_be_saved_and_loaded(tmp_path: Any) -> None:
    router = make_router()
    router.save(tmp_path / "fresh")
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "fresh", router.models, embeddings=KeywordEmbeddings()
    )
    answer = loaded.invoke("math 1")
    loaded.record_feedback(answer, 1.0)
    assert learned(loaded) == 1


class DownEmbeddings(Embeddings):
    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        raise ConnectionError("embedding service unavailable")

    def embed_query(self, text: str) -> list[float]:
        raise ConnectionError("embedding service unavailable")


def test_embedder_outage_answers_from_the_default_child_and_warns_once() -> None:
    router = make_router(embeddings=DownEmbeddings(), default_model="cheap")
    with pytest.warns(UserWarning, match="embedding") as caught:
        first = router.invoke("math 1")
        second = router.invoke("math 2")
    assert len([w for w in caught if "embedding" in str(w.message)]) == 1
    for answer in (first, second):
        meta = answer.response_metadata["metallm"]
        assert meta["model"] == "cheap" and meta["embedding_failed"] is True
    assert router.stats()["embedding_failures"] == 2
    with pytest.raises(FeedbackError, match="embed"):
        router.record_feedback(first, 1.0)


def two_step_graph(router: MetaLLMRouterChatModel) -> Any:
    """A LangGraph graph whose two nodes each make one routed call."""
    from langgraph.graph import END, START, MessagesState, StateGraph

    def call(state: MessagesState) -> dict[str, Any]:
        return {"messages": [router.invoke(state["messages"])]}

    graph = StateGraph(MessagesState)
    graph.add_node("draft", call)
    graph.add_node("revise", call)
    graph.add_edge(START, "draft")
    graph.add_edge("draft", "revise")
    graph.add_edge("revise", END)
    return graph.compile()


def test_rewarding_a_whole_graph_run_credits_every_routed_call_under_it() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router)
    root = uuid4()
    two_step_graph(router).invoke(
        {"messages": [("user", "math 1")]},
        config={"run_id": root, "callbacks": [handler]},
    )
    other = router.invoke("math 2")  # not under the run: stays pending
    rewards = handler.record_feedback(root, 0.5)
    assert rewards == [0.5, 0.5] and learned(router) == 2
    assert router.is_pending(run_id(other))
    assert handler.record_feedback(root, 0.5) == []  # nothing left to credit


def test_run_scorer_grades_each_root_run_at_its_end() -> None:
    router = make_router()
    seen: list[Any] = []

    def grade(inputs: Any, outputs: Any) -> float:
        seen.append(outputs)
        return 1.0

    handler = MetaLLMFeedbackHandler(router, run_scorer=grade)
    chain = router | RunnableLambda(lambda m: m.text) | router
    chain.invoke("math 1", config={"callbacks": [handler]})
    assert len(seen) == 1 and learned(router) == 2
    assert router.stats()["pending"] == 0


def test_a_failing_child_cools_down_and_is_tried_last() -> None:
    router = make_router(
        models={
            "cheap": MeteredChild(name_tag="cheap", fail=True),
            "pricey": MeteredChild(name_tag="pricey"),
        },
        allowed_fails=2,
        cooldown_time=3600.0,
    )
    router.fit([query("math", i) for i in range(6)], [[1.0, 0.0]] * 6)  # cheap first
    tried = [
        [
            a["model"]
            for a in router.invoke("math 1").response_metadata["metallm"]["attempts"]
        ]
        for _ in range(4)
    ]
    assert tried[:2] == [["cheap", "pricey"]] * 2
    assert tried[2:] == [["pricey"]] * 2  # cooling down: tried only as a last resort
    last = router.invoke("math 2").response_metadata["metallm"]
    assert last["cooling_down"] == ["cheap"]
    assert router.stats()["cooldowns"] == 1 and router.stats()["cooling_down"] == 1


def test_a_cooldown_ends_and_one_success_resets_the_streak() -> None:
    router = make_router(allowed_fails=1, cooldown_time=0.0)
    router.models["cheap"] = MeteredChild(name_tag="cheap", fail=True)
    router.fit([query("math", i) for i in range(6)], [[1.0, 0.0]] * 6)
    for _ in range(2):  # cooldown_time 0: over at once, so cheap is tried first again
        attempts = router.invoke("math 1").response_metadata["metallm"]["attempts"]
        assert [a["model"] for a in attempts] == ["cheap", "pricey"]
    assert router.stats()["cooling_down"] == 0


def tool_loop(started_by: str) -> list[BaseMessage]:
    from langchain_core.messages import HumanMessage, ToolMessage

    call = {"name": "add", "args": {"a": 1, "b": 2}, "id": "call_1"}
    return [
        HumanMessage("poem 1 then add 1 and 2"),
        AIMessage(
            content="",
            tool_calls=[call],
            response_metadata={"metallm": {"model": started_by}},
        ),
        ToolMessage("3", tool_call_id="call_1"),
    ]


@pytest.mark.parametrize("started_by", ["cheap", "pricey"])
def test_the_step_after_a_tool_result_stays_on_the_loops_child(started_by: str) -> None:
    router = make_router()
    router.fit([query("poetry", i) for i in range(6)], [[1.0, 0.0]] * 6)
    answer = router.invoke(tool_loop(started_by))
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == started_by and meta["sticky"] is True
    router.record_feedback(answer, 1.0)  # still a decision the router learns from


def test_sticky_tool_loops_can_be_turned_off() -> None:
    router = make_router(sticky_tool_loops=False)
    router.fit([query("poetry", i) for i in range(6)], [[1.0, 0.0]] * 6)
    meta = router.invoke(tool_loop("pricey")).response_metadata["metallm"]
    assert meta["model"] == "cheap" and meta["sticky"] is False


def test_default_routing_text_fits_conversations() -> None:
    from langchain_core.messages import HumanMessage, SystemMessage, ToolMessage

    embeddings = KeywordEmbeddings()
    router = make_router(embeddings=embeddings)
    router.invoke(
        [
            HumanMessage("translate 'good night' to Spanish"),
            AIMessage("buenas noches"),
            HumanMessage("and in French?"),
        ]
    )
    assert embeddings.calls[-1] == ["and in French?\ntranslate 'good night' to Spanish"]
    image = {"type": "image_url", "image_url": {"url": "data:image/png;base64,AA"}}
    router.invoke([HumanMessage(content=[image])])
    assert embeddings.calls[-1] == ["[image]"]
    call = {"name": "add", "args": {"a": 1, "b": 1}, "id": "c1"}
    router.invoke(
        [
            SystemMessage("You are a calculator."),
            AIMessage(content="", tool_calls=[call]),
            ToolMessage("2", tool_call_id="c1"),
        ]
    )
    assert embeddings.calls[-1] == ["You are a calculator.\ntools: add"]


class ToolOnceChild(MeteredChild):
    """Calls its first bound tool once, then answers the tool's result."""

    def _answer(self, messages: list[BaseMessage]) -> AIMessage:
        if self.tools and messages[-1].type == "human":
            return super()._answer(messages)  # EchoChild's tool call
        self.calls += 1
        text = f"{self.name_tag}: {messages[-1].text}"
        return AIMessage(content=text, response_metadata={"model_name": self.name_tag})


def test_agent_messages_stream_each_token_once_and_keep_the_tool_loop() -> None:
    from langchain.agents import create_agent

    def add(a: int, b: int) -> int:
        """Add two numbers."""
        return a + b

    router = make_router(
        models={
            "cheap": ToolOnceChild(name_tag="cheap"),
            "pricey": ToolOnceChild(name_tag="pricey"),
        }
    )
    agent = create_agent(router, tools=[add])
    streamed: dict[str, str] = {}
    for message, _ in agent.stream(
        {"messages": [("user", "math: what is 1+1")]}, stream_mode="messages"
    ):
        if message.type == "AIMessageChunk":
            streamed[message.id] = streamed.get(message.id, "") + message.text
    result = agent.invoke({"messages": [("user", "math: what is 1+1")]})
    final = result["messages"][-1]
    assert (
        list(streamed.values())[-1]
        == final.text
        == f"{final.response_metadata['metallm']['model']}: 2"
    )
    first = result["messages"][1].response_metadata["metallm"]["model"]
    assert final.response_metadata["metallm"]["model"] == first  # sticky tool loop
