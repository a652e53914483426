"""``MetaLLMRouterChatModel``: the LangChain adapter over ``RouterEngine``.

It holds what LangChain needs: the settings as fields, the chat model hooks,
callbacks, child calls with fallback, and response metadata. Routing and learning
(embedding cache, contexts, policy, pending decisions, costs, rewards) are the
engine's; see ``engine`` for the data path of one call and of one reward.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from dataclasses import dataclass
from typing import Any, Literal
from uuid import UUID

from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable, RunnableSerializable
from langchain_core.runnables.utils import AnyConfigurableField
from langchain_core.tools import BaseTool
from pydantic import ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from langchain_metallm import planned_batch, stream_run
from langchain_metallm.calibration import CostWeightCalibration
from langchain_metallm.child_runs import ChunkRelay, routed_result
from langchain_metallm.cooldown import Cooldowns
from langchain_metallm.costs import check_cost_weight, check_prices
from langchain_metallm.embedder_outage import blind_decisions, default_arm
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.engine import FloatArray, RouterEngine, check_settings
from langchain_metallm.fallback import (
    Attempt,
    acall_in_order,
    astream_in_order,
    call_in_order,
    stream_in_order,
)
from langchain_metallm.features import TaskModel
from langchain_metallm.llm_cache import CACHE_HIT
from langchain_metallm.outcomes import Scores
from langchain_metallm.pareto import ParetoFront
from langchain_metallm.persistence import StrPath, load_router, router_settings
from langchain_metallm.planned_batch import (
    PLAN_ARGUMENT,
    PlannedBatchResult,
    PlannedChoice,
)
from langchain_metallm.policy import LinUCBPolicy, RouteDecision
from langchain_metallm.router_base import RouterBase
from langchain_metallm.routing_text import recent_turns_text
from langchain_metallm.shared_learning import (
    SharedLearningConfigurableFields,
    check_shareable,
)
from langchain_metallm.stores.base import PolicyStore
from langchain_metallm.structured_output import (
    STRUCTURED_OUTPUT,
    StructuredOutput,
    unpacker,
)
from langchain_metallm.tool_loops import LoopDecision, loop_decision, loop_model

_TOOL_KEYS = ("tools", "tool_choice", "tool_binding")
_logger = logging.getLogger(__name__)


class MetaLLMRouterChatModel(RouterBase):
    """Routes each call to one child chat model with a LinUCB contextual bandit.

    The router learns each child's expected score per query and decides by
    ``predicted score - p * normalised_cost`` (MetaLLM, arXiv 2407.10834), so with
    a positive cost weight ``p`` it sends each query to the cheapest child that
    still answers it well. ``p`` is ``cost_weight``, or set online by a pacer so
    that spend tracks ``budget``; changing either needs no relearning.

    Example:
        ```python
        router = MetaLLMRouterChatModel(
            models={"small": ChatOpenAI(model="gpt-4o-mini"),
                    "large": ChatOpenAI(model="gpt-4o")},
            costs={"small": 0.15, "large": 2.5},
            cost_weight=0.1,
        )
        answer = router.invoke("What is 2 + 2?")
        router.record_feedback(answer, score=1.0)
        ```
    """

    model_config = ConfigDict(arbitrary_types_allowed=True, extra="forbid")

    models: dict[str, BaseChatModel]
    """Child chat models by name (a list is named by each child's model name)."""
    costs: dict[str, float]
    """Cost of each child in any unit (a list follows ``models``' order)."""
    cost_weight: float = 0.0
    """``p`` in ``value = predicted score - p * normalised_cost`` (the starting
    weight when ``budget`` is set)."""
    budget: float | None = None
    """Target mean normalised cost per routed call, in [cheapest child's cost, 1]
    (0.3: on average 30% of the priciest child). When set, the cost weight is
    paced online (``pacing.BudgetPacer``) so realised mean cost tracks it."""
    decay: float = 1.0
    """Forgetting factor in (0, 1] applied to a child's statistics at each of its
    updates (1: never forget); below 1 a child whose quality drifts is re-judged
    within about ``1 / (1 - decay)`` of its calls."""
    alpha: float | None = None
    """Width of the exploration bonus; None: 0.5 for a router learning from live
    feedback alone (online clusters), 0.1 for one created by ``fit``."""
    ridge: float = 1.0
    """``lambda`` in ``A = lambda * I + sum x x^T``."""
    embeddings: Embeddings = Field(default_factory=LocalEmbeddings)
    """Embeds the query text; defaults to the packaged all-MiniLM-L6-v2."""
    query_from_messages: Callable[[Sequence[BaseMessage]], str] = recent_turns_text
    """Builds the text that is embedded to route a call (see ``routing_text``)."""
    max_pending: int = 10_000
    """How many decisions may await feedback before the oldest is dropped."""
    pending_ttl: float | None = None
    """Seconds a decision may await feedback before it expires (None: no limit)."""
    store: PolicyStore | None = None
    """Where the learned statistics live (None: this process's memory); a shared
    ``SQLiteStore`` or ``RedisStore`` lets many workers learn together."""
    strict_feedback: bool = True
    """Raise on feedback for unknown or already-rewarded runs (else warn, ignore)."""
    streaming: bool = False
    """Stream from the chosen child even when called with ``invoke``."""
    auto_tasks: bool = True
    """A first ``fit`` without task labels (of at least 300 prompts) learns
    k-means clusters of the prompts and routes on them as tasks (``auto_tasks``);
    False keeps the bare embedding."""
    online_clusters: bool | None = None
    """A router never fitted routes on clusters of its live prompts (8 after 200,
    32 after 1,000; see ``online_clusters``). None: on unless ``store`` is set;
    True with a ``store``: refused (workers would disagree on the clusters);
    False: the bare embedding."""
    embedding_cache_size: int = 2_048
    """Query embeddings kept in memory; ``batch`` fills it with one call."""
    stop: list[str] | None = None
    """Default stop sequences, passed to the chosen child."""
    max_tokens: int | None = None
    """If set, passed to the chosen child as ``max_tokens``."""
    fallback: bool = True
    """If the chosen child raises, try the others by UCB (streams: only before the
    first chunk); every try is listed in ``response_metadata["metallm"]["attempts"]``
    and only the child that answered is rewarded. False: the error propagates."""
    sticky_tool_loops: bool = True
    """Send the step after a tool result to the child that called the tool (see
    ``tool_loops``)."""
    allowed_fails: int = 3
    """Consecutive failures after which a child cools down (see ``cooldown``)."""
    cooldown_time: float = 60.0
    """Seconds a failing child is tried last (after every other child)."""
    default_model: str | None = None
    """Child that answers when the embedder fails (None: the best mean reward,
    else the cheapest); see ``embedder_outage``."""
    cost_mode: Literal["fixed", "usage"] = "fixed"
    """``"fixed"``: an answer's cost is its child's ``costs`` entry over the largest
    (MetaLLM). ``"usage"``: its tokens times ``prices`` over the priciest child's
    price for ``reference_tokens`` (see ``costs``); the reward uses it."""
    prices: dict[str, tuple[float, float]] | None = None
    """``cost_mode="usage"`` only: (input, output) dollars per million tokens."""
    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """LangChain's LLM cache for the router's own answers: off by default so that
    repeated prompts keep being routed and learned from (children still use the
    global cache); a hit is an answer without a decision (see ``llm_cache``)."""
    reference_tokens: tuple[int, int] = (1_000, 1_000)
    """``cost_mode="usage"``: (input, output) tokens of a call that costs 1 on the
    priciest child."""

    _engine: RouterEngine = PrivateAttr()
    _cooldowns: Cooldowns = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _name_models_and_costs(cls, values: Any) -> Any:
        """Accept ``models`` and ``costs`` as lists as well as dicts."""
        if not isinstance(values, dict):
            return values
        models = values.get("models")
        if isinstance(models, (list, tuple)):
            names = [_child_name(model, i) for i, model in enumerate(models)]
            if len(set(names)) != len(names):
                raise ValueError(
                    f"models: child names must be unique, got {names}; pass a dict"
                )
            values = {**values, "models": dict(zip(names, models, strict=True))}
        costs = values.get("costs")
        if isinstance(costs, (list, tuple)) and isinstance(values.get("models"), dict):
            if len(costs) != len(values["models"]):
                raise ValueError(
                    f"costs: expected {len(values['models'])} values, got {len(costs)}"
                )
            values = {
                **values,
                "costs": dict(zip(values["models"], costs, strict=True)),
            }
        return values

    @model_validator(mode="after")
    def _validate_settings(self) -> MetaLLMRouterChatModel:
        """Check children, costs and learning settings before any call."""
        if len(self.models) < 2:
            raise ValueError(
                f"models: at least 2 children needed, got {len(self.models)}"
            )
        check_settings(self)
        if self.default_model is not None and self.default_model not in self.models:
            raise ValueError(
                f"default_model: {self.default_model!r} is not one of "
                f"{list(self.models)}"
            )
        if self.prices is not None:  # a single price stands for (input, output)
            self.prices = check_prices(self.prices, self.models)
        self._engine = RouterEngine(
            self,
            name=self.name or self._llm_type,
            max_pending=self.max_pending,
            pending_ttl=self.pending_ttl,
        )
        self._cooldowns = Cooldowns(self.allowed_fails, self.cooldown_time)
        return self

    @property
    def _llm_type(self) -> str:
        return "metallm-router"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "models": list(self.models),
            "costs": self.costs,
            "cost_weight": self.cost_weight,
            "alpha": self.alpha,
            "ridge": self.ridge,
        }

    def _get_ls_params(self, stop: list[str] | None = None, **kwargs: Any) -> Any:
        params = super()._get_ls_params(stop=stop, **kwargs)
        params["ls_provider"] = "metallm"
        params["ls_model_name"] = kwargs.get("model", "metallm-router")
        if self.max_tokens is not None:
            params["ls_max_tokens"] = self.max_tokens
        if stop or self.stop:
            params["ls_stop"] = stop or self.stop
        return params

    @property
    def model_names(self) -> list[str]:
        """Children's names, in arm order."""
        return list(self.models)

    @property
    def normalized_costs(self) -> dict[str, float]:
        """Each child's cost divided by the largest, so the priciest costs 1."""
        return self._engine.normalized_costs

    @property
    def engine(self) -> RouterEngine:
        """The routing and learning engine behind this chat model."""
        return self._engine

    @property
    def policy(self) -> LinUCBPolicy | None:
        """The LinUCB policy, created on the first embedded query."""
        return self._engine.policy

    @property
    def task_classifier(self) -> TaskModel | None:
        """What gives queries their task: the classifier ``fit(..., tasks=...)``
        learned, or the clusters a first fit without labels learned; else None."""
        return self._engine.task_classifier

    # Routing and feedback -------------------------------------------------------

    def route(self, input: LanguageModelInput) -> RouteDecision:
        """Which child would answer ``input``, without calling it or learning."""
        context = self._engine.contexts([self.query_of(input)])[0]
        return self._engine.decide(context)

    def record_feedback(
        self,
        run: UUID | str | AIMessage,
        score: float,
        *,
        strict: bool | None = None,
    ) -> float:
        """Reward the decision behind ``run`` (a run id or the routed AIMessage).

        ``score`` in [0, 1] is the answer's quality; it is what the router learns
        (cost is weighed only when deciding) and is returned. Unknown or
        already-rewarded runs raise ``FeedbackError`` (with ``strict=False`` they
        are ignored with a warning and NaN is returned).
        """
        return self._engine.record_feedback(_run_id_of(run), score, strict=strict)

    def is_pending(self, run_id: UUID | str) -> bool:
        """Whether a routed call with this run id still awaits feedback."""
        return str(run_id) in self._engine.pending

    def note_feedback_error(self, run_id: UUID | str | None, problem: str) -> None:
        """Count (``stats()["scorer_errors"]``) and log feedback that a scorer or
        a feedback event failed to give; the decision stays pending."""
        self._engine.pending.count("scorer_errors")
        _logger.error("metallm feedback for run_id %s not applied: %s", run_id, problem)

    def stats(self) -> dict[str, int]:
        """Feedback counters: ``pending`` decisions, feedback ``applied`` and
        ``refused``, decisions ``expired`` (``pending_ttl``) or ``evicted``,
        ``scorer_errors``, ``embedding_failures``, ``cooldowns`` started and
        children ``cooling_down`` now."""
        return {**self._engine.pending.stats(), **self._cooldowns.stats()}

    def query_of(self, input: LanguageModelInput) -> str:
        """The text a call on ``input`` is routed by (``query_from_messages``)."""
        return self._query(self._convert_input(input).to_messages())

    # Learning, planning and persistence -----------------------------------------

    def pareto_front(
        self, prompts: Sequence[LanguageModelInput], *, robust: bool = False
    ) -> ParetoFront:
        """OptLLM-style Pareto-optimal assignments of ``prompts`` to children:
        total normalised cost vs predicted accuracy (see ``planned_batch``)."""
        return planned_batch.pareto_front(self, prompts, robust=robust)

    async def abatch_planned(
        self, prompts: Sequence[LanguageModelInput], **kwargs: Any
    ) -> PlannedBatchResult:
        """Plan ``prompts`` for a ``budget`` or ``min_accuracy``, then run each
        through its planned child (see ``planned_batch.abatch_planned``)."""
        return await planned_batch.abatch_planned(self, prompts, **kwargs)

    def fit(
        self,
        prompts: Sequence[str],
        scores: Scores,
        tasks: Sequence[str] | None = None,
    ) -> None:
        """Warm start from recorded outcomes, embedding ``prompts`` in one call.

        ``scores`` in [0, 1]: an (n, models) array in ``model_names`` order or one
        ``{model name: score}`` dict per prompt; NaN or absent = not observed.
        Rewards use the fixed normalised costs, so the result is exactly one
        ``record_feedback`` per observed score (with ``cost_mode="fixed"``).

        ``tasks`` (one task name per prompt, at least two distinct) is for the
        first fit of a router that has learned nothing yet: it also learns a task
        classifier, and from then on the router routes on the predicted task as
        well as the embedding, which makes its per-model estimates far less noisy
        (see ``features``). Later fits and feedback use that classifier.
        Without ``tasks``, the first fit of such a router learns automatic tasks
        instead, k-means clusters of the prompts (``auto_tasks``), unless
        ``auto_tasks=False`` or there are fewer than 300 prompts.
        """
        self._engine.fit(prompts, scores, tasks)

    def calibrate_cost_weight(
        self,
        prompts: Sequence[str],
        scores: Scores,
        *,
        budget: float,
        cost_weights: Sequence[float] | None = None,
    ) -> CostWeightCalibration:
        """Set ``cost_weight`` to the candidate whose greedy routing of validation
        ``prompts`` is most accurate at mean normalised cost <= ``budget``.

        Every score must be observed; see ``calibration.calibrate`` for the rule.
        """
        result = self._engine.calibrate_cost_weight(
            prompts, scores, budget=budget, cost_weights=cost_weights
        )
        self.set_cost_weight(result.cost_weight)
        return result

    def set_cost_weight(self, cost_weight: float) -> None:
        """Decide with ``cost_weight`` from the next call on (nothing relearned)."""
        self.cost_weight = check_cost_weight(cost_weight)
        owner = self._engine.settings  # the router the engine was built for
        if isinstance(owner, MetaLLMRouterChatModel):
            owner.cost_weight = self.cost_weight

    def set_budget(self, budget: float | None) -> None:
        """Pace spend to ``budget`` from the next call on (None: fixed weight)."""
        self._engine.set_budget(budget)
        self.budget = None if budget is None else float(budget)

    def set_costs(self, costs: Mapping[str, float]) -> None:
        """New costs for some children, in effect from the next call (nothing
        relearned); unknown names or a budget they make infeasible are refused."""
        unknown = sorted(set(costs) - set(self.models))
        if unknown:
            raise ValueError(
                f"costs: unknown children {unknown}; have {self.model_names}"
            )
        self.costs = self._engine.checked_costs({**self.costs, **costs})

    def add_model(self, name: str, model: BaseChatModel, cost: float) -> None:
        """Add child ``name`` on the live router, keeping every other child's
        statistics; it is explored on purpose (an optimistic prior and a few
        forced probes where it could win, see ``RouterEngine.add_arm``)."""
        if not isinstance(name, str) or not name:
            raise ValueError(f"name: expected a non-empty string, got {name!r}")
        if name in self.models:
            raise ValueError(f"name: {name!r} is already a child")
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"model: expected a chat model, got {type(model).__name__}")
        costs = self._engine.checked_costs({**self.costs, name: cost})
        old_costs, old_models = self.costs, self.models
        self.costs, self.models = costs, {**self.models, name: model}
        try:  # the child is callable before the policy can choose it
            self._engine.add_arm(name)
        except Exception:
            self.costs, self.models = old_costs, old_models
            raise

    def remove_model(self, name: str) -> None:
        """Remove child ``name`` and its statistics, keeping every other child's;
        a router keeps at least 2 children. Feedback still pending for its calls
        is refused."""
        if name not in self.models:
            raise ValueError(f"name: {name!r} is not a child; have {self.model_names}")
        if len(self.models) <= 2:
            raise ValueError("models: a router needs at least 2 children")
        costs = self._engine.checked_costs(
            {k: v for k, v in self.costs.items() if k != name}
        )
        self._engine.remove_arm(name)
        self.models = {k: v for k, v in self.models.items() if k != name}
        self.costs = costs

    def save(self, path: StrPath) -> None:
        """Save what was learned to the directory ``path``, atomically (format in
        ``persistence``); a fresh router is saved as an untrained policy.
        Decisions still awaiting feedback are not saved."""
        self._engine.save(path)

    @classmethod
    def load(
        cls,
        path: StrPath,
        models: Mapping[str, BaseChatModel],
        *,
        embeddings: Embeddings | None = None,
        **kwargs: Any,
    ) -> MetaLLMRouterChatModel:
        """A router that resumes learning where ``save(path)`` stopped.

        ``models`` may differ from the saved children: saved ones it lacks are
        dropped, new ones are added cold and explored (give their cost in
        ``costs``); a warning says what was done. ``embeddings`` (default: the
        packaged MiniLM) must be the embedder the save was learned on. Alpha and
        ridge come from the save, costs and cost weight too unless given;
        ``kwargs`` set the other fields (with a shared ``store``, the save
        replaces the statistics stored there).
        """
        embedder = LocalEmbeddings() if embeddings is None else embeddings
        state = load_router(path, embedder)
        settings, added, removed = router_settings(state, models, embedder, kwargs)
        router = cls(**settings)
        router._engine.restore(state, added)
        if added or removed:
            warnings.warn(
                f"load: {path}: added children {added} (cold, explored), dropped "
                f"saved children {removed}",
                stacklevel=2,
            )
        return router

    # LangChain chat model ------------------------------------------------------

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self:
        """A copy that shares this router's engine (see ``shared_learning``);
        fields that define learning cannot change, and deep copies are refused."""
        if deep:
            raise ValueError(
                "model_copy: deep copies are refused (the learned state is shared "
                "by reference); save() and load() make an independent router"
            )
        check_shareable(update or {}, "model_copy")
        return super().model_copy(update=update)

    def configurable_fields(
        self, **kwargs: AnyConfigurableField
    ) -> RunnableSerializable[LanguageModelInput, AIMessage]:
        """Per-call fields; configured routers share this one's engine, and fields
        that define learning cannot be configured (see ``shared_learning``)."""
        check_shareable(kwargs, "configurable_fields", per_call=True)
        for key in kwargs:
            if key not in type(self).model_fields:
                raise ValueError(f"configurable_fields: unknown field {key!r}")
        return SharedLearningConfigurableFields(default=self, fields=kwargs)

    def with_structured_output(
        self,
        schema: dict[str, Any] | type,
        *,
        include_raw: bool = False,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, Any]:
        """Route, then let the chosen child's own ``with_structured_output`` (its
        ``method``, ``strict``, ...) answer; see ``structured_output``."""
        request = StructuredOutput(schema, kwargs)
        routed = self.bind(
            **{STRUCTURED_OUTPUT: request},
            ls_structured_output_format=request.ls_format(),
        )
        return routed | unpacker(include_raw)

    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind ``tools`` on whichever child answers; routing is unchanged."""
        binding = {"tools": list(tools), "tool_choice": tool_choice, **kwargs}
        # Also on the router's own run, so its trace shows the structured output.
        traced = {k: v for k, v in kwargs.items() if k == "ls_structured_output_format"}
        return self.bind(tool_binding=binding, **traced)

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, run_manager, kwargs)
        context = self._engine.call_context(call.query)

        def send(choice: RouteDecision) -> BaseMessage:
            child, options = self._child(choice, call)
            return child.invoke(messages, **options)

        decision, message, attempts = call_in_order(
            self._candidates(context, call),
            send,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        return routed_result(
            message, self._metadata(decision, context, call, attempts, usage)
        )

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        call = self._call(messages, stop, run_manager, kwargs)
        context = await self._engine.acall_context(call.query)

        async def send(choice: RouteDecision) -> BaseMessage:
            child, options = self._child(choice, call)
            return await child.ainvoke(messages, **options)

        decision, message, attempts = await acall_in_order(
            self._candidates(context, call),
            send,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        return routed_result(
            message, self._metadata(decision, context, call, attempts, usage)
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        call = self._call(messages, stop, run_manager, kwargs)
        context = self._engine.call_context(call.query)

        def start(choice: RouteDecision) -> Iterator[BaseMessage]:
            child, options = self._child(choice, call)
            return child.stream(messages, **options)

        decision, stream, attempts = stream_in_order(
            self._candidates(context, call),
            start,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        relay = ChunkRelay()
        for chunk in stream:
            if (previous := relay.push(chunk)) is not None:
                yield previous
        yield relay.final(
            self._metadata(decision, context, call, attempts, relay.usage)
        )

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        call = self._call(messages, stop, run_manager, kwargs)
        context = await self._engine.acall_context(call.query)

        def start(choice: RouteDecision) -> AsyncIterator[BaseMessage]:
            child, options = self._child(choice, call)
            return child.astream(messages, **options)

        decision, stream, attempts = await astream_in_order(
            self._candidates(context, call),
            start,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        relay = ChunkRelay()
        async for chunk in stream:
            if (previous := relay.push(chunk)) is not None:
                yield previous
        yield relay.final(
            self._metadata(decision, context, call, attempts, relay.usage)
        )

    # Internals -----------------------------------------------------------------

    def _call(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> _Call:
        """One call's routing inputs, with the router's own arguments taken out
        of ``kwargs``; a run id already routed is refused."""
        link = stream_run.take(run_manager)
        self._engine.pending.check_unused(link.run_id)
        return _Call(
            query=self._query(messages),
            messages=messages,
            stop=stop or self.stop,
            link=link,
            plan=kwargs.pop(PLAN_ARGUMENT, None),
            cost_weight=kwargs.pop("cost_weight", None),
            kwargs=kwargs,
        )

    def _query(self, messages: Sequence[BaseMessage]) -> str:
        text = self.query_from_messages(messages)
        if not isinstance(text, str):
            raise TypeError(
                f"query_from_messages: must return str, got {type(text).__name__}"
            )
        return text

    def _candidates(
        self, context: FloatArray | None, call: _Call
    ) -> Iterator[RouteDecision]:
        """Arms to call in order: the chosen (planned, or tool loop's) one, then
        the rest by UCB (by cost without an embedding); cooling children last.
        ``cost_weight`` (``invoke(..., cost_weight=p)`` or ``bind``) overrides
        the router's for this call."""
        names, costs = self.model_names, self.normalized_costs
        if context is None:
            first = default_arm(names, costs, self.policy, self.default_model)
            ranked = blind_decisions(names, costs, first)
        else:
            plan = call.plan
            sticky = self.sticky_tool_loops and plan is None
            loop = loop_model(call.messages, names) if sticky else None
            arm = names.index(loop) if loop else None if plan is None else plan["arm"]
            decision = self._engine.decide(
                context, arm=arm, cost_weight=call.cost_weight
            )
            ranked = self._engine.candidates(
                loop_decision(decision) if loop else decision, context
            )
        cooling = self._cooldowns.cooling()
        return self._cooldowns.deferred(ranked, cooling) if cooling else ranked

    def _child(
        self, decision: RouteDecision, call: _Call
    ) -> tuple[Runnable[LanguageModelInput, BaseMessage], dict[str, Any]]:
        """The chosen child, with the router's bound tools or structured output
        on it, and the options to call it with."""
        model = self.models[decision.model]
        options: dict[str, Any] = {"config": call.link.child_config, "stop": call.stop}
        request = call.kwargs.get(STRUCTURED_OUTPUT)
        if isinstance(request, StructuredOutput):
            return request.on(model), options
        options.update((k, v) for k, v in call.kwargs.items() if k not in _TOOL_KEYS)
        if self.max_tokens is not None:
            options.setdefault("max_tokens", self.max_tokens)
        binding = call.kwargs.get("tool_binding")
        if binding is not None:
            tools = binding["tools"]
            extra = {k: v for k, v in binding.items() if k != "tools"}
            return model.bind_tools(tools, **extra), options
        if "tools" in call.kwargs:
            tools, choice = call.kwargs["tools"], call.kwargs.get("tool_choice")
            return model.bind_tools(tools, tool_choice=choice), options
        return model, options

    def _metadata(
        self,
        decision: RouteDecision,
        context: FloatArray | None,
        call: _Call,
        attempts: list[Attempt],
        usage: UsageMetadata | None,
    ) -> dict[str, Any]:
        """Register the answered call with the engine; its ``metallm`` metadata."""
        metadata = self._engine.register(call.link.run_id, decision, context, usage)
        metadata.update(
            attempts=attempts,
            usage=usage,
            cached=False,
            sticky=isinstance(decision, LoopDecision),
            cooling_down=self._cooldowns.cooling(),
        )
        if call.plan is not None:
            metadata.update(planned=True, predicted_score=call.plan["predicted_score"])
        return metadata

    # RouterBase hooks --------------------------------------------------------------

    @property
    def _prefetch_size(self) -> int:
        return self.embedding_cache_size

    def _prefetch(self, inputs: Sequence[LanguageModelInput]) -> None:
        self._engine.vectors(self._batch_queries(inputs))

    async def _aprefetch(self, inputs: Sequence[LanguageModelInput]) -> None:
        await self._engine.avectors(self._batch_queries(inputs))

    def _on_cache_hit(self, run_id: str) -> None:
        self._engine.pending.refuse(run_id, CACHE_HIT)

    def _batch_queries(self, inputs: Sequence[LanguageModelInput]) -> list[str]:
        """Query texts of the batch items that have one; a bad item is left to
        fail on its own call, so ``return_exceptions`` gets one result per item."""
        texts = []
        for item in inputs:
            with suppress(Exception):
                texts.append(self.query_of(item))
        return texts


@dataclass
class _Call:
    """One routed call: what it is routed on, and what the child is called with."""

    query: str
    messages: list[BaseMessage]
    stop: list[str] | None
    link: stream_run.RunLink
    plan: PlannedChoice | None
    cost_weight: float | None
    kwargs: dict[str, Any]


def _child_name(model: BaseChatModel, index: int) -> str:
    for attr in ("model_name", "model", "model_id"):
        name = getattr(model, attr, None)
        if isinstance(name, str) and name:
            return name
    return f"model_{index}"


def _run_id_of(run: UUID | str | AIMessage) -> str:
    if isinstance(run, BaseMessage):
        metadata = run.response_metadata.get("metallm")
        if not isinstance(metadata, dict) or "run_id" not in metadata:
            raise ValueError(
                "run: this message carries no response_metadata['metallm']['run_id'];"
                " was it produced by the router?"
            )
        return str(metadata["run_id"])
    if isinstance(run, (UUID, str)):
        return str(run)
    raise TypeError(f"run: expected a run id or an AIMessage, got {type(run).__name__}")
