"""Batch planning on a router: predicted scores -> Pareto front -> planned calls.

The router's policy predicts the REWARD ``score - cost_weight * normalised_cost``,
so the predicted score of model ``j`` for a query is
``mean[j] + cost_weight * normalised_cost[j]``; with ``robust=True`` it is the
lower confidence bound, that minus ``alpha * width``. Scores are probabilities
(or partial credit) in [0, 1], so predictions are clipped to [0, 1].
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any
from uuid import UUID, uuid4

import numpy as np
from langchain_core.callbacks import AsyncCallbackManager
from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig
from langchain_core.runnables.config import patch_config
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.features import task_of
from langchain_metallm.feedback import PendingDecision
from langchain_metallm.planning import ParetoFront, PlannedAssignment
from langchain_metallm.policy import LinUCBPolicy

if TYPE_CHECKING:
    from langchain_metallm.chat_models import MetaLLMRouterChatModel

FloatArray = NDArray[np.float64]
Price = float | tuple[float, float]
"""US dollars per million tokens: one price, or (input, output) prices."""


@dataclass(frozen=True)
class PlannedBatchResult:
    """Answers of a planned batch, in input order, with the plan and its cost.

    ``normalized_cost`` is the total normalised cost of the calls made (the most
    expensive child costs 1 per call). ``dollars`` is the total of each answer's
    token usage times ``prices``; None when no prices were given or a child
    reported no token usage.
    """

    answers: list[AIMessage]
    plan: PlannedAssignment
    normalized_cost: float
    dollars: float | None


def policy_scores(
    policy: LinUCBPolicy,
    contexts: ArrayLike,
    costs: ArrayLike,
    *,
    cost_weight: float,
    robust: bool = False,
) -> FloatArray:
    """Predicted score (n, arms) of every arm: mean reward plus the cost penalty.

    ``costs`` are the arms' normalised costs and ``cost_weight`` the ``p`` the
    policy's rewards were learned with; ``robust`` takes the lower confidence
    bound (``alpha * width`` below the mean). Clipped to [0, 1].
    """
    cost = np.asarray(costs, dtype=np.float64)
    if cost.shape != (policy.n_arms,):
        raise ValueError(
            f"costs: expected one per arm ({policy.n_arms}), got shape {cost.shape}"
        )
    mean, width = policy.predict(contexts)
    scores = mean + cost_weight * cost[None, :]
    if robust:
        scores = scores - policy.alpha * width
    clipped: FloatArray = np.clip(scores, 0.0, 1.0)
    return clipped


def pareto_front(
    router: MetaLLMRouterChatModel,
    prompts: Sequence[LanguageModelInput],
    *,
    robust: bool = False,
) -> ParetoFront:
    """The batch's front: total normalised cost vs predicted accuracy.

    Embeds uncached prompts (one call). ``robust`` plans on the lower confidence
    bound of each score instead of its mean.
    """
    policy = _trained_policy(router)
    texts = _texts(router, prompts)
    contexts = router._contexts(texts)
    return _front(router, policy, contexts, robust)[0]


async def abatch_planned(
    router: MetaLLMRouterChatModel,
    prompts: Sequence[LanguageModelInput],
    *,
    budget: float | None = None,
    min_accuracy: float | None = None,
    robust: bool = False,
    max_concurrency: int = 8,
    prices: Mapping[str, Price] | None = None,
    config: RunnableConfig | None = None,
) -> PlannedBatchResult:
    """Plan the batch, then run each prompt through its planned child.

    Give exactly one of ``budget`` (total normalised cost of the batch; above the
    most expensive useful plan, the best-score plan is used) or ``min_accuracy``
    (predicted mean score). Every call is a pending decision of the router, so
    a ``MetaLLMFeedbackHandler`` in ``config`` or ``router.callbacks`` rewards
    it, as does ``router.record_feedback(answer, score)``. At most
    ``max_concurrency`` calls run at once; answers keep the input order.
    """
    by_budget = _by_budget(budget, min_accuracy)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"max_concurrency: expected an int, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency: must be >= 1, got {max_concurrency}")
    checked_prices = _check_prices(router, prices)
    policy = _trained_policy(router)
    texts = _texts(router, prompts)
    contexts = router._featurize(await router._avectors_for(texts), texts)
    front, scores = _front(router, policy, contexts, robust)
    plan = (
        front.for_budget(by_budget[1])
        if by_budget[0]
        else front.for_accuracy(by_budget[1])
    )
    base = _call_config(router, config)
    limit = asyncio.Semaphore(max_concurrency)

    async def run(i: int) -> AIMessage:
        arm = plan.arms[i]
        async with limit:
            return await _call(
                router, prompts[i], arm, contexts[i], float(scores[i, arm]), base
            )

    tasks = [asyncio.ensure_future(run(i)) for i in range(len(prompts))]
    try:
        answers = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    cost = router.normalized_costs
    return PlannedBatchResult(
        answers=answers,
        plan=plan,
        normalized_cost=float(sum(cost[m] for m in plan.models)),
        dollars=_dollars(answers, plan.models, checked_prices),
    )


def _by_budget(budget: float | None, min_accuracy: float | None) -> tuple[bool, float]:
    """(True, budget) or (False, accuracy floor): exactly one must be given."""
    if budget is not None and min_accuracy is None:
        return True, budget
    if min_accuracy is not None and budget is None:
        return False, min_accuracy
    raise ValueError("abatch_planned: pass exactly one of budget= or min_accuracy=")


def _trained_policy(router: MetaLLMRouterChatModel) -> LinUCBPolicy:
    """The router's policy; planning on one that learned nothing is refused."""
    policy = router.policy
    if policy is None or int(policy.counts.sum()) == 0:
        raise ValueError(
            "router: the policy has not learned from any outcome yet, so every "
            "predicted score is 0; warm-start it or record feedback before planning"
        )
    return policy


def _texts(
    router: MetaLLMRouterChatModel, prompts: Sequence[LanguageModelInput]
) -> list[str]:
    if isinstance(prompts, (str, BaseMessage)) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts: expected a list of prompts, got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise ValueError("prompts: the batch is empty (no queries to plan)")
    return [router._input_query(prompt) for prompt in prompts]


def _front(
    router: MetaLLMRouterChatModel,
    policy: LinUCBPolicy,
    contexts: FloatArray,
    robust: bool,
) -> tuple[ParetoFront, FloatArray]:
    """The front and the predicted scores it was built from."""
    cost = router.normalized_costs
    costs = [cost[name] for name in policy.arms]
    scores = policy_scores(
        policy, contexts, costs, cost_weight=router.cost_weight, robust=robust
    )
    front = ParetoFront.build(scores=scores, costs=costs, models=policy.arms)
    return front, scores


def _call_config(
    router: MetaLLMRouterChatModel, config: RunnableConfig | None
) -> RunnableConfig:
    """``config`` with the router's own callbacks, tags and metadata added.

    Children see what a routed call would hand its handlers, so a feedback
    handler attached to the router hears each planned child's run end.
    """
    given = patch_config(config)  # also fills in the ambient (parent) config
    manager = AsyncCallbackManager.configure(
        inheritable_callbacks=given.get("callbacks"),
        local_callbacks=router.callbacks,
        verbose=router.verbose,
        inheritable_tags=given.get("tags"),
        local_tags=router.tags,
        inheritable_metadata=given.get("metadata"),
        local_metadata=router.metadata,
    )
    return patch_config(given, callbacks=manager)


async def _call(
    router: MetaLLMRouterChatModel,
    prompt: LanguageModelInput,
    arm: int,
    context: FloatArray,
    predicted_score: float,
    base: RunnableConfig,
) -> AIMessage:
    """One planned call, registered as a pending decision under its run id."""
    model = router.model_names[arm]
    run_id = uuid4()
    _expect_feedback(router, run_id, PendingDecision(arm, model, context))
    call_config = base.copy()
    call_config["run_id"] = run_id
    try:
        message = await router.models[model].ainvoke(prompt, call_config)
    except BaseException:
        _forget(router, run_id)
        raise
    metadata = {
        "model": model,
        "arm": arm,
        "predicted_score": predicted_score,
        "cost": router.normalized_costs[model],
        "task": task_of(context, router.task_classifier),
        "run_id": str(run_id),
        "planned": True,
    }
    return message.model_copy(
        update={"response_metadata": {**message.response_metadata, "metallm": metadata}}
    )


def _expect_feedback(
    router: MetaLLMRouterChatModel, run_id: UUID, decision: PendingDecision
) -> None:
    """Register ``decision`` so feedback on ``run_id`` updates the policy."""
    router._pending.add(str(run_id), decision)


def _forget(router: MetaLLMRouterChatModel, run_id: UUID) -> None:
    """Drop the pending decision of a call that failed (if still pending)."""
    if router.is_pending(run_id):
        router._pending.take(str(run_id))


def _check_prices(
    router: MetaLLMRouterChatModel, prices: Mapping[str, Price] | None
) -> dict[str, tuple[float, float]] | None:
    """Prices as (input, output) $/Mtok for every child, or None."""
    if prices is None:
        return None
    names = set(router.model_names)
    if set(prices) != names:
        missing = sorted(names - set(prices))
        unknown = sorted(set(prices) - names)
        raise ValueError(f"prices: missing for {missing}, unknown names {unknown}")
    checked: dict[str, tuple[float, float]] = {}
    for name, price in prices.items():
        pair = price if isinstance(price, tuple) else (price, price)
        if len(pair) != 2 or not all(_is_price(p) for p in pair):
            raise ValueError(
                f"prices: {name!r} must be a $/Mtok number >= 0 or an "
                f"(input, output) pair of them, got {price!r}"
            )
        checked[name] = (float(pair[0]), float(pair[1]))
    return checked


def _is_price(value: Any) -> bool:
    return (
        not isinstance(value, bool)
        and isinstance(value, (int, float))
        and math.isfinite(value)
        and value >= 0
    )


def _dollars(
    answers: Sequence[AIMessage],
    models: Sequence[str],
    prices: Mapping[str, tuple[float, float]] | None,
) -> float | None:
    """Token usage times price, summed; None if any answer lacks usage."""
    if prices is None:
        return None
    total = 0.0
    for answer, model in zip(answers, models, strict=True):
        usage = answer.usage_metadata
        if usage is None:
            return None
        price_in, price_out = prices[model]
        total += usage["input_tokens"] * price_in + usage["output_tokens"] * price_out
    return total / 1e6
