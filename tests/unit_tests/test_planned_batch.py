"""Batch planning on a router over fake children and a deterministic embedder."""

from __future__ import annotations

import asyncio
from typing import Any
from uuid import UUID

import numpy as np
import pytest
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage, HumanMessage, SystemMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from langchain_core.outputs.generation import Generation

from langchain_metallm import (
    FeedbackError,
    MetaLLMFeedbackHandler,
    MetaLLMRouterChatModel,
    ParetoFront,
)
from langchain_metallm.core.pareto import policy_scores
from langchain_metallm.planned_batch import abatch_planned, pareto_front

from .fakes import KeywordEmbeddings

MODELS = ("cheap", "mid", "pricey")
COSTS = np.array([0.1, 0.4, 1.0])  # normalised: the priciest costs 1
COST_WEIGHT = 0.2


class Tracker:
    """What the children saw: calls per prompt, run ids, peak concurrency."""

    def __init__(self) -> None:
        self.calls: dict[str, str] = {}
        self.run_ids: dict[str, UUID] = {}
        self.settings: set[tuple[tuple[str, ...], Any]] = set()
        self.active = 0
        self.peak = 0


class SlowChild(BaseChatModel):
    """Answers ``"<tag>: <text>"`` after a delay that varies by prompt."""

    tag: str
    tracker: Tracker
    fail: bool = False

    @property
    def _llm_type(self) -> str:
        return "slow-child"

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        raise NotImplementedError("planned calls are async")

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        text = messages[-1].text
        assert run_manager is not None
        self.tracker.run_ids[text] = run_manager.run_id
        self.tracker.settings.add((tuple(stop or ()), kwargs.get("max_tokens")))
        self.tracker.active += 1
        self.tracker.peak = max(self.tracker.peak, self.tracker.active)
        try:
            await asyncio.sleep(0.002 * (len(text) % 7))  # later ones finish first
            if self.fail:
                raise RuntimeError(f"{self.tag} is down")
        finally:
            self.tracker.active -= 1
        self.tracker.calls[text] = self.tag
        usage = {"input_tokens": 10, "output_tokens": len(text), "total_tokens": 0}
        message = AIMessage(content=f"{self.tag}: {text}", usage_metadata=usage)
        return ChatResult(generations=[ChatGeneration(message=message)])


def prompt(i: int) -> str:
    return f"math problem {i}: {i} * {i}?" if i % 2 else f"write a poem {i} on rain"


def truth(text: str) -> list[float]:
    """cheap writes poems only, mid half of the math, pricey everything."""
    return [0.0, 0.6, 1.0] if "math" in text else [1.0, 1.0, 1.0]


def make_router(
    tracker: Tracker,
    *,
    trained: bool = True,
    failing: str | None = None,
    **settings: Any,
) -> MetaLLMRouterChatModel:
    router = MetaLLMRouterChatModel(
        online_clusters=False,
        models={
            m: SlowChild(tag=m, tracker=tracker, fail=m == failing) for m in MODELS
        },
        costs=dict(zip(MODELS, COSTS * 3.0, strict=True)),  # any unit
        cost_weight=COST_WEIGHT,
        alpha=0.5,
        embeddings=KeywordEmbeddings(noise_dims=1, noise_scale=0.1),
        **settings,
    )
    if trained:
        texts = [prompt(i) for i in range(100, 140)]
        router.route(texts[0])  # creates the policy
        policy = router.policy
        assert policy is not None
        scores = np.array([truth(t) for t in texts])
        policy.fit(router.core.contexts(texts), scores)
    return router


BATCH = [prompt(i) for i in range(12)]


def test_front_is_built_from_the_policy_scores() -> None:
    router = make_router(Tracker())
    policy = router.policy
    assert policy is not None
    mean, _ = policy.predict(router.core.contexts(BATCH))
    scores = np.clip(mean, 0, 1)
    expected = ParetoFront.build(scores=scores, costs=COSTS, models=MODELS)
    front = pareto_front(router, BATCH)
    np.testing.assert_allclose(front.points, expected.points)
    assert front.point(-1).models == expected.point(-1).models
    np.testing.assert_allclose(
        policy_scores(policy, router.core.contexts(BATCH)),
        scores,
    )
    math = np.array(["math" in t for t in BATCH])  # scores, not rewards:
    np.testing.assert_allclose(scores[math], [[0.0, 0.6, 1.0]] * 6, atol=0.05)
    np.testing.assert_allclose(scores[~math], np.ones((6, 3)), atol=0.05)
    cheap = front.for_accuracy(0.9)  # poems stay cheap, math is upgraded
    assert [m for m, t in zip(cheap.models, BATCH, strict=True) if "poem" in t] == [
        "cheap"
    ] * 6
    assert "cheap" not in [m for m, q in zip(cheap.models, math, strict=True) if q]


def test_robust_front_uses_the_lower_confidence_bound() -> None:
    router = make_router(Tracker())
    policy = router.policy
    assert policy is not None
    mean, width = policy.predict(router.core.contexts(BATCH))
    lcb = np.clip(mean - 0.5 * width, 0, 1)
    robust = pareto_front(router, BATCH, robust=True)
    expected = ParetoFront.build(scores=lcb, costs=COSTS, models=MODELS)
    np.testing.assert_allclose(robust.points, expected.points)
    assert robust.accuracies[-1] < pareto_front(router, BATCH).accuracies[-1] - 0.01


def test_message_prompts_are_planned_on_their_last_human_text() -> None:
    router = make_router(Tracker())
    chat = [[SystemMessage("be brief"), HumanMessage(t)] for t in BATCH]
    np.testing.assert_allclose(
        pareto_front(router, chat).points, pareto_front(router, BATCH).points
    )


async def test_each_prompt_goes_to_its_planned_child_in_input_order() -> None:
    tracker = Tracker()
    router = make_router(tracker)
    front = pareto_front(router, BATCH)
    budget = float(front.costs[len(front) // 2])
    result = await abatch_planned(router, BATCH, budget=budget, max_concurrency=4)
    plan = result.plan
    assert plan.predicted_cost <= budget + 1e-9 and plan.budget == budget
    assert len(set(plan.models)) >= 2  # a real mix, not one model
    assert tracker.calls == dict(zip(BATCH, plan.models, strict=True))
    assert [a.content for a in result.answers] == [
        f"{m}: {t}" for m, t in zip(plan.models, BATCH, strict=True)
    ]
    for answer, model in zip(result.answers, plan.models, strict=True):
        meta = answer.response_metadata["metallm"]
        assert meta["model"] == model and meta["planned"] is True
        assert router.is_pending(meta["run_id"])
    assert result.normalized_cost == pytest.approx(plan.predicted_cost)
    assert result.dollars is None


@pytest.mark.parametrize("limit", [1, 3])
async def test_concurrency_is_bounded(limit: int) -> None:
    tracker = Tracker()
    router = make_router(tracker)
    await abatch_planned(router, BATCH, min_accuracy=0.5, max_concurrency=limit)
    assert tracker.peak == limit
    assert len(tracker.calls) == len(BATCH)


async def test_accuracy_floor_plans_the_cheapest_reaching_plan() -> None:
    router = make_router(Tracker())
    front = pareto_front(router, BATCH)
    floor = float(front.accuracies[-1]) - 0.05
    result = await abatch_planned(router, BATCH, min_accuracy=floor)
    assert result.plan.predicted_accuracy >= floor - 1e-9
    assert result.plan.predicted_cost == pytest.approx(
        front.for_accuracy(floor).predicted_cost
    )
    assert result.plan.predicted_cost < front.costs[-1]


async def test_budget_beyond_the_best_plan_runs_the_best_plan() -> None:
    router = make_router(Tracker())
    result = await abatch_planned(router, BATCH, budget=1e6)
    assert result.plan.models == pareto_front(router, BATCH).point(-1).models


@pytest.mark.parametrize("attach", ["config", "router"])
async def test_feedback_handler_rewards_every_planned_call(attach: str) -> None:
    router = make_router(Tracker())
    scored: list[str] = []

    def scorer(inputs: Any, generation: Generation) -> float:
        scored.append(generation.text)
        return 1.0

    handler = MetaLLMFeedbackHandler(router, scorer)
    config: Any = None
    if attach == "router":
        router.callbacks = [handler]
    else:
        config = {"callbacks": [handler]}
    policy = router.policy
    assert policy is not None
    before = policy.counts
    result = await abatch_planned(router, BATCH, min_accuracy=0.8, config=config)
    learned = policy.counts - before
    np.testing.assert_array_equal(learned, np.bincount(result.plan.arms, minlength=3))
    assert sorted(scored) == sorted(str(a.content) for a in result.answers)
    run_id = result.answers[0].response_metadata["metallm"]["run_id"]
    assert not router.is_pending(run_id)  # already rewarded by the handler


async def test_record_feedback_accepts_a_planned_answer_once() -> None:
    router = make_router(Tracker())
    result = await abatch_planned(router, BATCH, budget=1e6)
    answer = result.answers[1]
    assert router.record_feedback(answer, 1.0) == 1.0  # the score is learned
    with pytest.raises(FeedbackError, match="already rewarded"):
        router.record_feedback(answer, 1.0)


async def test_dollars_come_from_token_usage_and_prices() -> None:
    router = make_router(Tracker())
    prices: dict[str, float | tuple[float, float]] = {
        "cheap": 0.5,
        "mid": (1.0, 3.0),
        "pricey": (10.0, 30.0),
    }
    result = await abatch_planned(router, BATCH, budget=1e6, prices=prices)
    expected = 0.0
    for text, model in zip(BATCH, result.plan.models, strict=True):
        pin, pout = prices[model] if model != "cheap" else (0.5, 0.5)
        expected += (10 * pin + len(text) * pout) / 1e6
    assert result.dollars == pytest.approx(expected)


async def test_a_failing_child_raises_and_leaves_no_pending_decision() -> None:
    tracker = Tracker()
    router = make_router(tracker, failing="pricey", fallback=False)
    with pytest.raises(RuntimeError, match="pricey is down"):
        await abatch_planned(router, BATCH, budget=1e6)
    failed = [t for t in BATCH if "math" in t and t in tracker.run_ids]
    assert failed
    assert not any(router.is_pending(tracker.run_ids[t]) for t in failed)


async def test_a_failed_planned_call_is_not_counted_as_applied_feedback() -> None:
    router = make_router(Tracker(), failing="pricey", fallback=False)
    before = router.policy.counts.copy() if router.policy else None
    with pytest.raises(RuntimeError, match="pricey is down"):
        await abatch_planned(router, BATCH, budget=1e6, max_concurrency=1)
    stats = router.stats()
    assert stats["applied"] == 0 and stats["refused"] == 0
    assert router.policy is not None and before is not None
    np.testing.assert_array_equal(router.policy.counts, before)


async def test_a_failing_planned_child_falls_back_like_a_routed_call() -> None:
    tracker = Tracker()
    # No cooldown here, so every call planned on "pricey" tries it first.
    router = make_router(tracker, failing="pricey", allowed_fails=10_000)
    result = await abatch_planned(router, BATCH, budget=1e6)
    for answer, planned in zip(result.answers, result.plan.models, strict=True):
        meta = answer.response_metadata["metallm"]
        if planned == "pricey":
            assert meta["model"] != "pricey"
            assert meta["attempts"][0]["model"] == "pricey"
            assert "pricey is down" in str(meta["attempts"][0]["error"])
        assert router.is_pending(meta["run_id"])
    assert "pricey" in result.plan.models


async def test_planned_calls_carry_the_routed_metadata_and_call_settings() -> None:
    tracker = Tracker()
    router = make_router(tracker, max_tokens=7, stop=["END"])
    routed = await router.ainvoke(BATCH[0])
    result = await abatch_planned(router, BATCH, budget=1e6)
    meta = result.answers[0].response_metadata["metallm"]
    assert set(routed.response_metadata["metallm"]) | {
        "planned",
        "predicted_score",
    } == (set(meta))
    assert meta["attempts"] == [{"model": meta["model"], "error": None}]
    assert tracker.settings == {(("END",), 7)}


async def test_planned_calls_price_the_usage_cost_that_invoke_prices() -> None:
    prices = {"cheap": (1.0, 2.0), "mid": (2.0, 4.0), "pricey": (10.0, 30.0)}
    router = make_router(Tracker(), cost_mode="usage", prices=prices)
    result = await abatch_planned(router, BATCH, budget=1e6)
    for answer, text in zip(result.answers, BATCH, strict=True):
        meta = answer.response_metadata["metallm"]
        price_in, price_out = prices[meta["model"]]
        reference = 1_000 * 10.0 + 1_000 * 30.0  # the priciest reference call
        expected = (10 * price_in + len(text) * price_out) / reference
        assert meta["cost"] == pytest.approx(expected)
        assert router.record_feedback(answer, 1.0) == 1.0


@pytest.mark.parametrize(
    ("kwargs", "error", "message"),
    [
        ({"prompts": [], "budget": 1.0}, ValueError, "batch is empty"),
        ({"prompts": "one prompt", "budget": 1.0}, TypeError, "list of prompts"),
        ({"budget": 0.1}, ValueError, "below the cheapest assignment"),
        ({"min_accuracy": 1.01}, ValueError, "above the best achievable"),
        ({}, ValueError, "exactly one of budget= or min_accuracy="),
        ({"budget": 5.0, "min_accuracy": 0.5}, ValueError, "exactly one"),
        ({"budget": 5.0, "max_concurrency": 0}, ValueError, "max_concurrency"),
        ({"budget": 5.0, "max_concurrency": 2.5}, TypeError, "max_concurrency"),
        ({"budget": float("nan")}, ValueError, "must be finite"),
        ({"budget": 5.0, "prices": {"cheap": 1.0}}, ValueError, r"prices: missing"),
        (
            {"budget": 5.0, "prices": {"cheap": -1, "mid": 1, "pricey": 2}},
            ValueError,
            "'cheap' must be a",
        ),
    ],
)
async def test_bad_requests_raise_before_any_call(
    kwargs: dict[str, Any], error: type[Exception], message: str
) -> None:
    tracker = Tracker()
    router = make_router(tracker)
    prompts = kwargs.pop("prompts", BATCH)
    with pytest.raises(error, match=message):
        await abatch_planned(router, prompts, **kwargs)
    assert tracker.calls == {} and tracker.run_ids == {}


async def test_an_untrained_router_refuses_to_plan() -> None:
    router = make_router(Tracker(), trained=False)
    with pytest.raises(ValueError, match="not learned from any outcome"):
        pareto_front(router, BATCH)
    router.route(BATCH[0])  # a policy now exists, but has learned nothing
    with pytest.raises(ValueError, match="not learned from any outcome"):
        await abatch_planned(router, BATCH, budget=5.0)


async def test_router_methods_plan_and_run_like_the_functions() -> None:
    tracker = Tracker()
    router = make_router(tracker)
    front = router.pareto_front(BATCH)
    np.testing.assert_allclose(front.points, pareto_front(router, BATCH).points)
    budget = float(front.costs[len(front) // 2])
    result = await router.abatch_planned(BATCH, budget=budget)
    assert tracker.calls == dict(zip(BATCH, result.plan.models, strict=True))
