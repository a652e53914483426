"""Running a planned batch: predicted scores -> Pareto front -> one routed call each.

The front comes from the core (``RouterCore.pareto_front``); each prompt then
runs through the router itself with its planned child (the ``metallm_plan`` call
argument), so a planned call gets what a routed one gets: the same metadata,
fallback, ``stop``, ``max_tokens``, bound tools, usage cost and feedback
bookkeeping, plus ``planned`` and ``predicted_score`` in its metadata.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypedDict

from langchain_core.language_models import LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableConfig

from langchain_metallm.core.costs import Price, check_prices, dollars
from langchain_metallm.core.pareto import ParetoFront, PlannedAssignment
from langchain_metallm.core.router import RouterCore

PLAN_ARGUMENT = "metallm_plan"
"""Call argument (a ``PlannedChoice``) that makes the router answer with a
planned child instead of choosing one."""


class PlannedChoice(TypedDict):
    """The child a plan chose for one prompt and the score it predicted there."""

    child: str
    predicted_score: float


class PlanningRouter(Protocol):
    """What running a plan needs of a router (``MetaLLMRouterChatModel`` is one)."""

    @property
    def core(self) -> RouterCore: ...

    def query_of(self, input: LanguageModelInput) -> str: ...

    async def ainvoke(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        **kwargs: Any,
    ) -> AIMessage: ...


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


def pareto_front(
    router: PlanningRouter,
    prompts: Sequence[LanguageModelInput],
    *,
    robust: bool = False,
) -> ParetoFront:
    """The batch's front: total normalised cost vs predicted accuracy.

    Embeds uncached prompts (one call). ``robust`` plans on the lower confidence
    bound of each score instead of its mean.
    """
    core = router.core
    return core.pareto_front(core.contexts(_texts(router, prompts)), robust=robust)[0]


async def abatch_planned(
    router: PlanningRouter,
    prompts: Sequence[LanguageModelInput],
    *,
    budget: float | None = None,
    min_accuracy: float | None = None,
    robust: bool = False,
    max_concurrency: int = 8,
    prices: Mapping[str, Price] | None = None,
    config: RunnableConfig | None = None,
    **kwargs: Any,
) -> PlannedBatchResult:
    """Plan the batch, then run each prompt through the router on its planned child.

    Give exactly one of ``budget`` (total normalised cost of the batch; above the
    most expensive useful plan, the best-score plan is used) or ``min_accuracy``
    (predicted mean score). Every call is a routed call of the router, so a
    ``MetaLLMFeedbackHandler`` in ``config`` or ``router.callbacks`` rewards it,
    as does ``router.record_feedback(answer, score)``. At most
    ``max_concurrency`` calls run at once; answers keep the input order.
    ``kwargs`` (e.g. ``stop``) are passed to every call.
    """
    by_budget = _by_budget(budget, min_accuracy)
    if isinstance(max_concurrency, bool) or not isinstance(max_concurrency, int):
        raise TypeError(f"max_concurrency: expected an int, got {max_concurrency!r}")
    if max_concurrency < 1:
        raise ValueError(f"max_concurrency: must be >= 1, got {max_concurrency}")
    core = router.core
    checked_prices = (
        None if prices is None else check_prices(prices, core.catalogue.names)
    )
    contexts = await core.acontexts(_texts(router, prompts))
    front, scores = core.pareto_front(contexts, robust=robust)
    plan = (
        front.for_budget(by_budget[1])
        if by_budget[0]
        else front.for_accuracy(by_budget[1])
    )
    limit = asyncio.Semaphore(max_concurrency)

    async def run(i: int) -> AIMessage:
        arm = int(plan.arms[i])  # an index into the front's children, named here
        choice = PlannedChoice(
            child=front.models[arm], predicted_score=float(scores[i, arm])
        )
        async with limit:
            return await router.ainvoke(
                prompts[i], config, **{PLAN_ARGUMENT: choice}, **kwargs
            )

    tasks = [asyncio.ensure_future(run(i)) for i in range(len(prompts))]
    try:
        answers = list(await asyncio.gather(*tasks))
    except BaseException:
        for task in tasks:
            task.cancel()
        raise
    cost = core.catalogue.normalized
    answered = [a.response_metadata["metallm"]["model"] for a in answers]
    return PlannedBatchResult(
        answers=answers,
        plan=plan,
        normalized_cost=float(sum(cost[m] for m in answered)),
        dollars=_dollars(answers, answered, checked_prices),
    )


def _by_budget(budget: float | None, min_accuracy: float | None) -> tuple[bool, float]:
    """(True, budget) or (False, accuracy floor): exactly one must be given."""
    if budget is not None and min_accuracy is None:
        return True, budget
    if min_accuracy is not None and budget is None:
        return False, min_accuracy
    raise ValueError("abatch_planned: pass exactly one of budget= or min_accuracy=")


def _texts(router: PlanningRouter, prompts: Sequence[LanguageModelInput]) -> list[str]:
    if isinstance(prompts, (str, BaseMessage)) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts: expected a list of prompts, got {type(prompts).__name__}"
        )
    if len(prompts) == 0:
        raise ValueError("prompts: the batch is empty (no queries to plan)")
    return [router.query_of(prompt) for prompt in prompts]


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
        usage = answer.response_metadata["metallm"]["usage"]  # see child_runs
        if usage is None:
            return None
        total += dollars(usage, prices[model])
    return total
