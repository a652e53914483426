"""MetaLLMRouterChatModel behaviour over fake children and a keyword embedder."""

from __future__ import annotations

import random
from typing import Any
from uuid import UUID, uuid4

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.callbacks.manager import dispatch_custom_event
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_core.runnables import RunnableLambda
from pydantic import BaseModel, ValidationError

from langchain_metallm import (
    FeedbackError,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
    stream_run,
)
from langchain_metallm.core.online_clusters import OnlineClusters

from .fakes import KINDS, EchoChild, KeywordEmbeddings, echo_router, query


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    return echo_router(
        {"cheap": 0.1, "pricey": 1.0}, **{"cost_weight": 0.0, "alpha": 0.5, **overrides}
    )


def state(router: MetaLLMRouterChatModel) -> list[bytes]:
    policy = router.policy
    assert policy is not None
    return [a.tobytes() for a in policy.statistics()] + [policy.theta.tobytes()]


# Construction ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        (
            {"models": {"only": EchoChild(name_tag="x")}, "costs": {"only": 1.0}},
            "models",
        ),
        ({"costs": {"cheap": 0.1}}, "costs"),
        ({"costs": {"cheap": -1.0, "pricey": 1.0}}, "costs"),
        ({"costs": {"cheap": 0.0, "pricey": 0.0}}, "costs"),
        ({"costs": {"cheap": float("nan"), "pricey": 1.0}}, "costs"),
        ({"cost_weight": -0.1}, "cost_weight"),
        ({"alpha": -1.0}, "alpha"),
        ({"ridge": 0.0}, "ridge"),
        ({"max_pending": 0}, "max_pending"),
        (
            {
                "models": [EchoChild(name_tag="a"), EchoChild(name_tag="b")],
                "costs": [1.0],
            },
            "costs",
        ),
        ({"cost_wieght": 1.0}, "cost_wieght"),
    ],
)
def test_bad_settings_name_the_field(overrides: dict[str, Any], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        make_router(**overrides)


def test_list_of_children_is_named_and_costed_in_order() -> None:
    router = make_router(
        models=[EchoChild(name_tag="a"), EchoChild(name_tag="b")], costs=[2.0, 4.0]
    )
    assert router.model_names == ["model_0", "model_1"]
    assert router.normalized_costs == {"model_0": 0.5, "model_1": 1.0}


def test_duplicate_child_names_in_a_list_are_refused() -> None:
    from langchain_core.language_models import GenericFakeChatModel

    class Named(GenericFakeChatModel):
        model_name: str = "same"

    with pytest.raises(ValueError, match="unique"):
        make_router(
            models=[Named(messages=iter([])), Named(messages=iter([]))], costs=[1, 2]
        )


# Routing and metadata ---------------------------------------------------------


def test_invoke_delegates_and_reports_the_decision() -> None:
    router = make_router()
    decision = router.route("hello")
    answer = router.invoke("hello")
    meta = answer.response_metadata["metallm"]
    chosen = decision.chosen
    assert answer.content == f"{chosen}: hello"
    assert meta["model"] == meta["chosen"] == chosen
    assert meta["cost"] == router.normalized_costs[chosen]
    assert meta["ucb"] == pytest.approx(decision.value[chosen])
    expected = decision.predicted[chosen] - decision.penalty[chosen]
    assert meta["expected_reward"] == pytest.approx(expected)
    assert decision.probability == 1.0 and not decision.fallback
    assert router.is_pending(meta["run_id"])
    assert answer.usage_metadata is None  # the child's run carries it
    assert meta["usage"]["total_tokens"] == 5


def test_query_text_is_last_human_message_unless_overridden() -> None:
    emb = KeywordEmbeddings()
    router = make_router(embeddings=emb)
    router.invoke(
        [SystemMessage("be brief"), HumanMessage("math one"), AIMessage("ok")]
    )
    assert emb.calls[-1] == ["math one"]
    custom = make_router(embeddings=emb, query_from_messages=lambda m: m[0].text)
    custom.invoke([SystemMessage("sys prompt"), HumanMessage("math two")])
    assert emb.calls[-1] == ["sys prompt"]


def _train(
    router: MetaLLMRouterChatModel, calls: int, seed: int = 0
) -> list[tuple[str, str]]:
    """Rewarded calls: "cheap" is right on math, "pricey" on poems."""
    rng = random.Random(seed)
    good = {"math": "cheap", "poetry": "pricey"}
    history = []
    for i in range(calls):
        kind = rng.choice(KINDS)
        answer = router.invoke(query(kind, i))
        chosen = answer.response_metadata["metallm"]["model"]
        router.record_feedback(answer, 1.0 if chosen == good[kind] else 0.0)
        history.append((kind, chosen))
    return history


def test_learns_which_child_is_right_for_each_kind_of_query() -> None:
    router = make_router()
    history = _train(router, 200)
    # Online clusters' first stage (200 prompts) is fitted in a background
    # thread; a loop this tight (no child I/O) would starve it of the GIL.
    tasks = router.task_classifier
    assert isinstance(tasks, OnlineClusters) and tasks.wait(timeout=30)
    history += _train(router, 100, seed=1)
    good = {"math": "cheap", "poetry": "pricey"}
    late = history[-100:]
    rate = sum(chosen == good[kind] for kind, chosen in late) / len(late)
    assert rate >= 0.95
    assert router.route(query("math", 999)).chosen == "cheap"
    assert router.route(query("poetry", 999)).chosen == "pricey"


def test_high_cost_weight_prefers_the_cheap_child() -> None:
    router = make_router(cost_weight=2.0, alpha=0.2)
    rng = random.Random(1)
    chosen = []
    for i in range(200):
        answer = router.invoke(query(rng.choice(KINDS), i))
        chosen.append(answer.response_metadata["metallm"]["model"])
        router.record_feedback(answer, 1.0)  # both always right: only cost differs
    assert chosen[-100:].count("cheap") >= 95


# Feedback -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("score", "error"),
    [
        (1.5, ValueError),
        (-0.1, ValueError),
        (float("nan"), ValueError),
        ("1", TypeError),
    ],
)
def test_bad_scores_are_refused_without_touching_the_policy(
    score: Any, error: type
) -> None:
    router = make_router()
    _train(router, 5)
    answer = router.invoke("math x")
    before = state(router)
    with pytest.raises(error, match="score"):
        router.record_feedback(answer, score)
    assert state(router) == before
    assert router.is_pending(answer.response_metadata["metallm"]["run_id"])


def test_unknown_and_double_feedback_are_refused() -> None:
    router = make_router()
    answer = router.invoke("math x")
    router.record_feedback(answer, 1.0)
    before = state(router)
    with pytest.raises(FeedbackError, match="already rewarded"):
        router.record_feedback(answer, 1.0)
    with pytest.raises(FeedbackError, match="unknown"):
        router.record_feedback(UUID(int=7), 1.0)
    with pytest.warns(UserWarning, match="already rewarded"):
        assert np.isnan(router.record_feedback(answer, 1.0, strict=False))
    assert state(router) == before


def test_feedback_learns_the_score_whatever_the_cost_weight() -> None:
    router = make_router(cost_weight=0.5)
    answer = router.invoke("math x")
    assert router.record_feedback(answer, 0.75) == 0.75


def test_pending_table_is_bounded_and_reports_eviction() -> None:
    router = make_router(max_pending=3)
    answers = [router.invoke(f"q{i}") for i in range(5)]
    with pytest.raises(FeedbackError, match="evicted"):
        router.record_feedback(answers[0], 1.0)
    router.record_feedback(answers[4], 1.0)


def test_wrong_embedding_dimension_is_refused_and_state_kept() -> None:
    router = make_router()
    _train(router, 5)
    before = state(router)
    with pytest.raises(ValueError, match="embeddings: fixed once the router is built"):
        router.embeddings = KeywordEmbeddings(dim_override=7)
    router.embeddings.dim_override = 7  # type: ignore[attr-defined]
    with pytest.raises(ValueError, match="dimension 4"):
        router.invoke("a new query")
    assert state(router) == before


def test_handler_scores_router_runs_only() -> None:
    router = make_router()
    seen: list[tuple[Any, str]] = []

    def scorer(messages: Any, generation: Any) -> float:
        seen.append((messages, generation.text))
        return 1.0

    handler = MetaLLMFeedbackHandler(router, scorer)
    answer = router.invoke("math x", config={"callbacks": [handler]})
    assert len(seen) == 1  # the child's own on_llm_end is not scored
    assert seen[0][1] == answer.content
    assert not router.is_pending(answer.response_metadata["metallm"]["run_id"])
    assert router.policy is not None and router.policy.counts.sum() == 1


async def test_handler_works_with_ainvoke_and_astream() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router, lambda m, g: 1.0)
    await router.ainvoke("math a", config={"callbacks": [handler]})
    chunks = [
        c async for c in router.astream("math b", config={"callbacks": [handler]})
    ]
    assert chunks[-1].response_metadata["metallm"]["model"] in router.models
    assert router.policy is not None and router.policy.counts.sum() == 2


def test_custom_event_from_a_grader_step_rewards_the_decision() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router)

    def grade(answer: AIMessage) -> str:
        dispatch_custom_event(
            "metallm_feedback",
            {"run_id": answer.response_metadata["metallm"]["run_id"], "score": 1.0},
        )
        return answer.text

    chain = router | RunnableLambda(grade)
    text = chain.invoke("math x", config={"callbacks": [handler]})
    assert text.endswith("math x")
    assert router.policy is not None and router.policy.counts.sum() == 1


# Streaming, async, batch ----------------------------------------------------------


def test_stream_yields_child_chunks_and_metadata_on_the_last() -> None:
    router = make_router()
    chunks = list(router.stream("math one two"))
    assert len(chunks) >= 3
    assert "".join(c.text for c in chunks).endswith("math one two")
    assert "metallm" in chunks[-1].response_metadata
    assert all("metallm" not in c.response_metadata for c in chunks[:-1])
    assert router.is_pending(chunks[-1].response_metadata["metallm"]["run_id"])


def test_a_stream_hands_its_run_id_over_and_takes_it_back() -> None:
    router = make_router()
    run_id = uuid4()
    chunks = list(router.stream("math one two", {"run_id": run_id}))
    assert chunks[-1].response_metadata["metallm"]["run_id"] == str(run_id)
    assert stream_run.take(None).run_id != str(run_id)  # nothing left behind


async def test_an_abandoned_async_stream_leaves_no_run_behind() -> None:
    router = make_router()
    run_id = uuid4()
    chunks = router.astream("math one two", {"run_id": run_id})
    first = await anext(chunks)
    assert first.text
    await chunks.aclose()  # the consumer stops early
    assert stream_run.take(None).run_id != str(run_id)
    answer = await router.ainvoke("math three")
    assert router.is_pending(answer.response_metadata["metallm"]["run_id"])


def test_streaming_flag_streams_under_invoke() -> None:
    router = make_router(streaming=True)
    tokens: list[str] = []

    class Collect(BaseCallbackHandler):
        def on_llm_new_token(self, token: str, **kwargs: Any) -> None:
            tokens.append(token)

    answer = router.invoke("math one two", config={"callbacks": [Collect()]})
    assert answer.response_metadata["metallm"]["model"] in router.models
    assert len(tokens) >= 3


async def test_ainvoke_routes_and_records() -> None:
    router = make_router()
    answer = await router.ainvoke("math x")
    assert answer.content.endswith("math x")
    router.record_feedback(answer, 1.0)


def test_batch_embeds_all_queries_in_one_call() -> None:
    emb = KeywordEmbeddings()
    router = make_router(embeddings=emb)
    inputs = [query(KINDS[i % 2], i) for i in range(20)]
    answers = router.batch(inputs)
    assert len(emb.calls) == 1 and len(emb.calls[0]) == 20
    assert [a.content.split(": ", 1)[1] for a in answers] == inputs
    assert len({a.response_metadata["metallm"]["run_id"] for a in answers}) == 20


async def test_abatch_embeds_all_queries_in_one_call() -> None:
    emb = KeywordEmbeddings()
    router = make_router(embeddings=emb)
    answers = await router.abatch([f"q{i}" for i in range(6)])
    assert len(emb.calls) == 1 and len(answers) == 6


# Tools, structured output, tracing ---------------------------------------------------


def add(a: int, b: int) -> int:
    """Add two integers."""
    return a + b


def test_bind_tools_binds_on_the_chosen_child() -> None:
    router = make_router()
    answer = router.bind_tools([add]).invoke("math x")
    assert answer.tool_calls[0]["name"] == "add"
    assert answer.tool_calls[0]["args"] == {"a": 1, "b": 1}
    assert "metallm" in answer.response_metadata


def test_streamed_tool_calls_arrive_through_the_router() -> None:
    router = make_router()
    merged = None
    for chunk in router.bind_tools([add]).stream("math x"):
        merged = chunk if merged is None else merged + chunk
    assert merged is not None and merged.tool_calls[0]["name"] == "add"


class Answer(BaseModel):
    """A structured answer."""

    value: int
    unit: int


def test_with_structured_output_through_the_router() -> None:
    router = make_router()
    result = router.with_structured_output(Answer).invoke("math x")
    assert result == Answer(value=1, unit=1)


def test_child_run_is_nested_under_the_router_run() -> None:
    starts: dict[UUID, UUID | None] = {}

    class Record(BaseCallbackHandler):
        def on_chat_model_start(
            self,
            serialized: Any,
            messages: Any,
            *,
            run_id: UUID,
            parent_run_id: UUID | None = None,
            **kw: Any,
        ) -> None:
            starts[run_id] = parent_run_id

    router = make_router()
    answer = router.invoke("math x", config={"callbacks": [Record()], "tags": ["t1"]})
    router_run = UUID(answer.response_metadata["metallm"]["run_id"])
    assert starts[router_run] is None
    children = [run for run, parent in starts.items() if parent == router_run]
    assert len(children) == 1


def test_agent_uses_the_router_as_its_model() -> None:
    from langchain.agents import create_agent

    class ToolThenAnswer(EchoChild):
        def _answer(self, messages: list[Any]) -> AIMessage:
            if messages[-1].type == "tool":
                return AIMessage(content=f"{self.name_tag}: result {messages[-1].text}")
            return super()._answer(messages)

    router = make_router(
        models={
            "cheap": ToolThenAnswer(name_tag="cheap"),
            "pricey": ToolThenAnswer(name_tag="pricey"),
        }
    )
    handler = MetaLLMFeedbackHandler(router, lambda m, g: 1.0)
    agent = create_agent(router, tools=[add])
    result = agent.invoke(
        {"messages": [("user", "math: add 1 and 1")]}, config={"callbacks": [handler]}
    )
    messages = result["messages"]
    assert messages[-1].text.endswith("result 2")
    assert any(m.type == "tool" and m.text == "2" for m in messages)
    assert (
        router.policy is not None and router.policy.counts.sum() == 2
    )  # both model calls rewarded


def test_validation_error_is_a_value_error() -> None:
    with pytest.raises(ValidationError):
        make_router(alpha=-1.0)
