"""Provider failure fallback: the next-best child answers, only it is rewarded."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.messages import AIMessageChunk, BaseMessage
from langchain_core.outputs import ChatGenerationChunk

from langchain_metallm import MetaLLMFeedbackHandler, MetaLLMRouterChatModel

from .fakes import EchoChild, KeywordEmbeddings, query


class BreaksMidStream(EchoChild):
    """Streams one word, then fails."""

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        yield ChatGenerationChunk(message=AIMessageChunk(content=self.name_tag))
        raise ConnectionError(f"{self.name_tag} dropped the stream")


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    """``down`` is arm 0, so an untrained router picks it first (UCB ties)."""
    settings: dict[str, Any] = {
        "models": {
            "down": EchoChild(name_tag="down", fail=True),
            "up": EchoChild(name_tag="up"),
        },
        "costs": {"down": 0.1, "up": 1.0},
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def counts(router: MetaLLMRouterChatModel) -> list[int]:
    assert router.policy is not None
    return router.policy.counts.tolist()


FAILED = {"model": "down", "error": "RuntimeError: down is down"}
ANSWERED = {"model": "up", "error": None}


def test_failed_child_is_replaced_and_both_attempts_are_recorded() -> None:
    router = make_router()
    assert router.route("math x").chosen == "down"
    answer = router.invoke("math x")
    meta = answer.response_metadata["metallm"]
    assert answer.content == "up: math x"
    assert meta["attempts"] == [FAILED, ANSWERED]
    assert (meta["model"], meta["chosen"], meta["cost"]) == ("up", "down", 1.0)
    assert meta["fallback"] is True


def test_only_the_child_that_answered_is_rewarded_with_the_query_context() -> None:
    router = make_router()
    answer = router.invoke("math x")
    router.record_feedback(answer, 1.0)
    assert counts(router) == [0, 1]
    policy = router.policy
    assert policy is not None
    expected = np.array([1.0, 0.0, *KeywordEmbeddings()._vector("math x")[2:], 1.0])
    np.testing.assert_allclose(policy.b[1], expected)  # reward 1 * context
    np.testing.assert_allclose(policy.b[0], 0.0)


def test_answer_without_failure_records_a_single_attempt() -> None:
    router = make_router(
        models={"a": EchoChild(name_tag="a"), "b": EchoChild(name_tag="b")},
        costs={"a": 1.0, "b": 2.0},
    )
    answer = router.invoke("math x")
    assert answer.response_metadata["metallm"]["attempts"] == [
        {"model": "a", "error": None}
    ]


def test_without_fallback_the_error_propagates_and_nothing_is_pending() -> None:
    router = make_router(fallback=False)
    run_id = uuid4()
    with pytest.raises(RuntimeError, match=r"^down is down$"):
        router.invoke("math x", config={"run_id": run_id})
    assert not router.is_pending(run_id)
    assert counts(router) == [0, 0]


def test_when_every_child_fails_the_last_error_is_raised_chained() -> None:
    router = make_router(
        models={
            "a": EchoChild(name_tag="a", fail=True),
            "b": EchoChild(name_tag="b", fail=True),
        },
        costs={"a": 1.0, "b": 2.0},
    )
    run_id = uuid4()
    with pytest.raises(RuntimeError, match=r"^b is down$") as caught:
        router.invoke("math x", config={"run_id": run_id})
    first = caught.value.__context__
    assert isinstance(first, RuntimeError) and str(first) == "a is down"
    assert not router.is_pending(run_id)


def test_fallback_follows_the_ucb_ranking_with_each_arms_own_estimate() -> None:
    names = ["a", "b", "c"]
    router = make_router(
        models={n: EchoChild(name_tag=n) for n in names},
        costs=dict.fromkeys(names, 1.0),
        alpha=0.0,
    )
    text = query("math", 1)
    context = np.array([1.0, 0.0, *KeywordEmbeddings()._vector(text)[2:], 1.0])
    router.route(text)  # creates the policy
    policy = router.policy
    assert policy is not None
    for arm, score in enumerate((0.2, 0.9, 0.5)):
        policy.update(arm, context, score)
    assert list(router.route(text).order) == ["b", "c", "a"]
    router.models["b"] = EchoChild(name_tag="b", fail=True)
    router.models["c"] = EchoChild(name_tag="c", fail=True)
    meta = router.invoke(text).response_metadata["metallm"]
    assert [a["model"] for a in meta["attempts"]] == ["b", "c", "a"]
    assert meta["model"] == "a" and meta["chosen"] == "b"
    mean = policy.predict(context[None])[0][0]
    assert meta["expected_reward"] == pytest.approx(mean[0])
    assert meta["expected_reward"] < mean[2] < mean[1]


def test_stream_falls_back_when_the_child_fails_before_its_first_chunk() -> None:
    router = make_router()
    chunks = list(router.stream("math one two"))
    assert "".join(c.text for c in chunks) == "up: math one two"
    assert chunks[-1].response_metadata["metallm"]["attempts"] == [FAILED, ANSWERED]


def test_stream_failure_after_the_first_chunk_propagates() -> None:
    router = make_router(
        models={
            "flaky": BreaksMidStream(name_tag="flaky"),
            "up": EchoChild(name_tag="up"),
        },
        costs={"flaky": 0.1, "up": 1.0},
    )
    run_id = uuid4()
    with pytest.raises(ConnectionError, match="dropped"):
        list(router.stream("math x", config={"run_id": run_id}))
    assert not router.is_pending(run_id)


async def test_ainvoke_and_astream_fall_back() -> None:
    router = make_router()
    answer = await router.ainvoke("math x")
    assert answer.response_metadata["metallm"]["attempts"] == [FAILED, ANSWERED]
    chunks = [c async for c in router.astream("math y")]
    assert "".join(c.text for c in chunks) == "up: math y"
    assert chunks[-1].response_metadata["metallm"]["attempts"] == [FAILED, ANSWERED]
    with pytest.raises(RuntimeError, match="down is down"):
        await make_router(fallback=False).ainvoke("math x")


async def test_astream_failure_after_the_first_chunk_propagates() -> None:
    router = make_router(
        models={
            "flaky": BreaksMidStream(name_tag="flaky"),
            "up": EchoChild(name_tag="up"),
        },
        costs={"flaky": 0.1, "up": 1.0},
    )
    with pytest.raises(ConnectionError, match="dropped"):
        _ = [c async for c in router.astream("math x")]


def test_batch_falls_back_per_input() -> None:
    router = make_router()
    answers = router.batch([f"math {i}" for i in range(4)])
    assert [a.content for a in answers] == [f"up: math {i}" for i in range(4)]


def test_handler_rewards_the_answering_child_once() -> None:
    router = make_router()
    handler = MetaLLMFeedbackHandler(router, lambda m, g: 1.0)
    answer = router.invoke("math x", config={"callbacks": [handler]})
    assert counts(router) == [0, 1]
    assert not router.is_pending(answer.response_metadata["metallm"]["run_id"])


def test_streaming_flag_under_invoke_falls_back() -> None:
    router = make_router(streaming=True)
    answer = router.invoke("math x")
    assert answer.content == "up: math x"
    assert answer.response_metadata["metallm"]["attempts"] == [FAILED, ANSWERED]
