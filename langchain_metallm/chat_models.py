"""``MetaLLMRouterChatModel``: a chat model that routes each call to one child.

Data flows one way: messages -> query text -> embedding -> context -> LinUCB
decision -> child call -> response metadata. Rewards flow back through
``record_feedback`` (or ``MetaLLMFeedbackHandler``): run id -> pending decision
-> policy update.
"""

from __future__ import annotations

import logging
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import suppress
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Literal, cast
from uuid import UUID, uuid4

import numpy as np
from langchain_core.caches import BaseCache
from langchain_core.callbacks import (
    AsyncCallbackManager,
    AsyncCallbackManagerForLLMRun,
    CallbackManager,
    CallbackManagerForLLMRun,
)
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import (
    Runnable,
    RunnableConfig,
    RunnableSerializable,
    ensure_config,
)
from langchain_core.runnables.utils import AnyConfigurableField
from langchain_core.tools import BaseTool
from numpy.typing import NDArray
from pydantic import ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from langchain_metallm import batch_planning
from langchain_metallm.batch_planning import PlannedBatchResult
from langchain_metallm.child_runs import (
    child_config,
    stream_child_config,
    without_usage,
)
from langchain_metallm.cooldown import Cooldowns
from langchain_metallm.embedder_outage import (
    NO_CONTEXT,
    BadEmbeddingsError,
    blind_decisions,
    default_arm,
)
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.fallback import (
    Attempt,
    acall_in_order,
    astream_in_order,
    call_in_order,
    ranked_decisions,
    stream_in_order,
)
from langchain_metallm.features import (
    TaskClassifier,
    check_task_labels,
    embedding_dim,
    query_features,
    task_of,
)
from langchain_metallm.feedback import PendingDecision, PendingDecisions, check_score
from langchain_metallm.learning import (
    CostWeightCalibration,
    Scores,
    calibrate,
    check_budget,
    check_prompts,
    cost_vector,
    reward_matrix,
    score_matrix,
    shift_cost_weight,
)
from langchain_metallm.llm_cache import CACHE_HIT, as_cache_hit
from langchain_metallm.persistence import (
    StrPath,
    load_router,
    router_settings,
    save_router,
)
from langchain_metallm.planning import ParetoFront
from langchain_metallm.policy import LinUCBPolicy, RouteDecision
from langchain_metallm.routing_text import recent_turns_text
from langchain_metallm.shared_learning import (
    LearnedState,
    SharedLearningConfigurableFields,
    check_shareable,
)
from langchain_metallm.stores.base import PolicyStore, namespace
from langchain_metallm.structured_output import (
    STRUCTURED_OUTPUT,
    StructuredOutput,
    as_chunk,
    unpacker,
)
from langchain_metallm.tool_loops import LoopDecision, decision_for, loop_model
from langchain_metallm.usage_cost import UsageTally, check_prices, normalised_cost

_TOOL_KEYS = ("tools", "tool_choice", "tool_binding")
_logger = logging.getLogger(__name__)
Context = NDArray[np.float64]


@dataclass(frozen=True)
class _RunLink:
    """The router run a streamed call belongs to, and the child's callbacks."""

    run_id: str
    child_config: RunnableConfig


# langchain-core calls ``_stream`` without its run manager; this carries it there.
_STREAM_RUN: ContextVar[_RunLink | None] = ContextVar("metallm_stream", default=None)


class MetaLLMRouterChatModel(BaseChatModel):
    """Routes each call to one child chat model with a LinUCB contextual bandit.

    The reward of a call is ``score - cost_weight * normalised_cost``, so with a
    positive ``cost_weight`` the router learns to send each query to the cheapest
    child that still answers it well (MetaLLM, arXiv 2407.10834).

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
    """``p`` in ``reward = score - p * normalised_cost``."""
    alpha: float = 0.1
    """Width of the exploration bonus."""
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
    price for ``reference_tokens`` (see ``usage_cost``); the reward uses it."""
    prices: dict[str, tuple[float, float]] | None = None
    """``cost_mode="usage"`` only: (input, output) dollars per million tokens."""
    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """LangChain's LLM cache for the router's own answers: off by default so that
    repeated prompts keep being routed and learned from (children still use the
    global cache); a hit is an answer without a decision (see ``llm_cache``)."""
    reference_tokens: tuple[int, int] = (1_000, 1_000)
    """``cost_mode="usage"``: (input, output) tokens of a call that costs 1 on the
    priciest child."""

    _learned: LearnedState = PrivateAttr()
    _pending: PendingDecisions = PrivateAttr()
    _vectors: OrderedDict[str, NDArray[np.float64]] = PrivateAttr(
        default_factory=OrderedDict
    )
    _lock: threading.RLock = PrivateAttr(default_factory=threading.RLock)
    _warned_outage: bool = PrivateAttr(default=False)
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
        if set(self.costs) != set(self.models):
            missing = sorted(set(self.models) - set(self.costs))
            extra = sorted(set(self.costs) - set(self.models))
            raise ValueError(f"costs: missing for {missing}, unknown names {extra}")
        for name, cost in self.costs.items():
            if not math.isfinite(cost) or cost < 0:
                raise ValueError(f"costs: {name!r} must be finite and >= 0, got {cost}")
        if max(self.costs.values()) == 0:
            raise ValueError("costs: at least one cost must be > 0")
        for field in ("cost_weight", "alpha"):
            value = getattr(self, field)
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{field}: must be finite and >= 0, got {value}")
        if not math.isfinite(self.ridge) or self.ridge <= 0:
            raise ValueError(f"ridge: must be > 0, got {self.ridge}")
        if self.embedding_cache_size < 0:
            raise ValueError(
                f"embedding_cache_size: must be >= 0, got {self.embedding_cache_size}"
            )
        if self.default_model is not None and self.default_model not in self.models:
            raise ValueError(
                f"default_model: {self.default_model!r} is not one of "
                f"{list(self.models)}"
            )
        if self.cost_mode == "usage":
            if self.prices is None:
                raise ValueError('prices: required with cost_mode="usage"')
            check_prices(self.prices, self.models, self.reference_tokens)
        elif self.prices is not None:
            raise ValueError('prices: only used with cost_mode="usage"')
        self._pending = PendingDecisions(self.max_pending, self.pending_ttl)
        self._learned = LearnedState(self.cost_weight)
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
        top = max(self.costs.values())
        return {name: self.costs[name] / top for name in self.models}

    @property
    def policy(self) -> LinUCBPolicy | None:
        """The LinUCB policy, created on the first embedded query."""
        return self._learned.policy

    @property
    def task_classifier(self) -> TaskClassifier | None:
        """The task classifier learned by ``fit(..., tasks=...)``, if any."""
        return self._learned.tasks

    # Routing -----------------------------------------------------------------

    def route(self, input: LanguageModelInput) -> RouteDecision:
        """Which child would answer ``input``, without calling it or learning."""
        context = self._contexts([self._input_query(input)])
        return self._policy_for(context).select(context[0])

    def record_feedback(
        self,
        run: UUID | str | AIMessage,
        score: float,
        *,
        strict: bool | None = None,
    ) -> float:
        """Reward the decision behind ``run`` (a run id or the routed AIMessage).

        ``score`` in [0, 1] is the answer's quality; the reward learned is
        ``score - cost_weight * normalised_cost`` and is returned. Unknown or
        already-rewarded runs raise ``FeedbackError`` (with ``strict=False`` they
        are ignored with a warning and NaN is returned).
        """
        checked = check_score(score)
        run_id = _run_id_of(run)
        try:
            decision = self._pending.take(run_id)
        except ValueError as error:
            if self.strict_feedback if strict is None else strict:
                raise
            warnings.warn(str(error), stacklevel=2)
            return math.nan
        cost = decision.cost
        if cost is None:
            cost = self.normalized_costs[decision.model]
        with self._learned.lock:  # the weight and the statistics move together
            reward = checked - self._learned.cost_weight * cost
            try:
                self._require_policy().update(decision.arm, decision.context, reward)
            except Exception:
                self._pending.restore(run_id, decision)
                raise
        return reward

    def is_pending(self, run_id: UUID | str) -> bool:
        """Whether a routed call with this run id still awaits feedback."""
        return str(run_id) in self._pending

    def note_feedback_error(self, run_id: UUID | str | None, problem: str) -> None:
        """Count (``stats()["scorer_errors"]``) and log feedback that a scorer or
        a feedback event failed to give; the decision stays pending."""
        self._pending.count("scorer_errors")
        _logger.error("metallm feedback for run_id %s not applied: %s", run_id, problem)

    def stats(self) -> dict[str, int]:
        """Feedback counters: ``pending`` decisions, feedback ``applied`` and
        ``refused``, decisions ``expired`` (``pending_ttl``) or ``evicted``,
        ``scorer_errors``, ``embedding_failures``, ``cooldowns`` started and
        children ``cooling_down`` now."""
        return {**self._pending.stats(), **self._cooldowns.stats()}

    # Learning and persistence ---------------------------------------------------

    def pareto_front(
        self, prompts: Sequence[LanguageModelInput], *, robust: bool = False
    ) -> ParetoFront:
        """OptLLM-style Pareto-optimal assignments of ``prompts`` to children:
        total normalised cost vs predicted accuracy (see ``batch_planning``)."""
        return batch_planning.pareto_front(self, prompts, robust=robust)

    async def abatch_planned(
        self, prompts: Sequence[LanguageModelInput], **kwargs: Any
    ) -> PlannedBatchResult:
        """Plan ``prompts`` for a ``budget`` or ``min_accuracy``, then run each
        through its planned child (see ``batch_planning.abatch_planned``)."""
        return await batch_planning.abatch_planned(self, prompts, **kwargs)

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
        """
        texts = check_prompts(prompts)
        matrix = score_matrix(scores, self.model_names, len(texts))
        labels = None if tasks is None else check_task_labels(tasks, len(texts))
        vectors = self._vectors_for(texts)
        if labels is not None:
            self._learn_tasks(vectors, labels)
        contexts = self._featurize(vectors, texts)
        cost = cost_vector(self.model_names, self.normalized_costs)
        with self._learned.lock:
            rewards = reward_matrix(matrix, cost, self._learned.cost_weight)
            self._policy_for(contexts).fit(contexts, rewards)

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

        Every score must be observed; see ``learning.calibrate`` for the rule.
        """
        checked = check_budget(budget, self.normalized_costs)
        texts = check_prompts(prompts)
        matrix = score_matrix(scores, self.model_names, len(texts), complete=True)
        contexts = self._contexts(texts)
        with self._learned.lock:
            result = calibrate(
                self._learned.policy,
                contexts,
                matrix,
                self.normalized_costs,
                fitted_weight=self._learned.cost_weight,
                budget=checked,
                cost_weights=cost_weights,
            )
            self.set_cost_weight(result.cost_weight)
        return result

    def set_cost_weight(self, cost_weight: float) -> None:
        """Change ``cost_weight`` and move what was learned to it exactly, as if
        every past reward had used the new weight (``cost_mode="fixed"`` only)."""
        if not math.isfinite(cost_weight) or cost_weight < 0:
            raise ValueError(f"cost_weight: must be finite and >= 0, got {cost_weight}")
        if self.cost_mode != "fixed" and self._learned.policy is not None:
            raise ValueError(
                "cost_weight: cannot be moved exactly with cost_mode='usage' (each "
                "reward's cost is not recorded); refit with the new weight instead"
            )
        with self._learned.lock:  # no reward lands between the read and the move
            if self._learned.policy is not None:
                shift_cost_weight(
                    self._learned.policy,
                    self.normalized_costs,
                    self._learned.cost_weight,
                    cost_weight,
                )
            self._learned.cost_weight = self.cost_weight = float(cost_weight)

    def save(self, path: StrPath) -> None:
        """Save what was learned to the directory ``path``, atomically (format in
        ``persistence``); a fresh router is saved as an untrained policy.
        Decisions still awaiting feedback are not saved."""
        policy = self._learned.policy
        if policy is None:  # fresh: one probe embedding gives the dimension
            policy = self._policy_for(self._contexts(["metallm dimension probe"]))
        save_router(
            path,
            policy,
            costs=self.costs,
            cost_weight=self._learned.cost_weight,
            embeddings=self.embeddings,
            tasks=self._learned.tasks,
        )

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

        ``models`` must carry the saved names; ``embeddings`` (default: the packaged
        MiniLM) must be the embedder the save was learned on. Costs, cost weight,
        alpha and ridge come from the save; ``kwargs`` set the other fields (with
        a shared ``store``, the save replaces the statistics stored there).
        """
        embedder = LocalEmbeddings() if embeddings is None else embeddings
        state = load_router(path, embedder)
        router = cls(**router_settings(state, models, embedder, kwargs))
        router._learned.tasks = state.tasks
        policy = router._policy_for(np.empty((0, state.policy.dim)))
        policy.load_statistics(*state.policy.statistics())
        return router

    # LangChain chat model ------------------------------------------------------

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self:
        """A copy that shares this router's learned state (see ``shared_learning``);
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
        """Per-call fields; configured routers share this one's learned state, and
        fields that define learning cannot be configured (see ``shared_learning``)."""
        check_shareable(kwargs, "configurable_fields")
        for key in kwargs:
            if key not in type(self).model_fields:
                raise ValueError(f"configurable_fields: unknown field {key!r}")
        return SharedLearningConfigurableFields(default=self, fields=kwargs)

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

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._pending.check_unused(_run_id(run_manager))
        decision, context = self._decide(messages)
        config = child_config(run_manager)

        def call(choice: RouteDecision) -> BaseMessage:
            child, call_kwargs = self._child(choice, kwargs)
            return child.invoke(
                messages, config=config, stop=stop or self.stop, **call_kwargs
            )

        decision, message, attempts = call_in_order(
            self._candidates(decision, context),
            call,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        return self._finish(message, decision, context, _run_id(run_manager), attempts)

    async def _agenerate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        self._pending.check_unused(_run_id(run_manager))
        decision, context = await self._adecide(messages)
        config = child_config(run_manager)

        async def call(choice: RouteDecision) -> BaseMessage:
            child, call_kwargs = self._child(choice, kwargs)
            return await child.ainvoke(
                messages, config=config, stop=stop or self.stop, **call_kwargs
            )

        decision, message, attempts = await acall_in_order(
            self._candidates(decision, context),
            call,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        return self._finish(message, decision, context, _run_id(run_manager), attempts)

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        link = _take_link(
            _link(run_manager, child_config(run_manager)) if run_manager else None
        )
        self._pending.check_unused(link.run_id)
        decision, context = self._decide(messages)
        config = link.child_config

        def start(choice: RouteDecision) -> Iterator[BaseMessage]:
            child, call_kwargs = self._child(choice, kwargs)
            return child.stream(
                messages, config=config, stop=stop or self.stop, **call_kwargs
            )

        decision, stream, attempts = stream_in_order(
            self._candidates(decision, context),
            start,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        last: BaseMessage | None = None
        usage = UsageTally()
        for chunk in stream:
            if last is not None:
                yield ChatGenerationChunk(message=cast(AIMessageChunk, last))
            usage.add(chunk)
            last, _ = without_usage(chunk)
        yield self._final_chunk(last, decision, context, link.run_id, attempts, usage)

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        link = _take_link(
            _link(run_manager, child_config(run_manager)) if run_manager else None
        )
        self._pending.check_unused(link.run_id)
        decision, context = await self._adecide(messages)
        config = link.child_config

        def start(choice: RouteDecision) -> AsyncIterator[BaseMessage]:
            child, call_kwargs = self._child(choice, kwargs)
            return child.astream(
                messages, config=config, stop=stop or self.stop, **call_kwargs
            )

        decision, stream, attempts = await astream_in_order(
            self._candidates(decision, context),
            start,
            fallback=self.fallback,
            on_attempt=self._cooldowns.observe,
        )
        last: BaseMessage | None = None
        usage = UsageTally()
        async for chunk in stream:
            if last is not None:
                yield ChatGenerationChunk(message=cast(AIMessageChunk, last))
            usage.add(chunk)
            last, _ = without_usage(chunk)
        yield self._final_chunk(last, decision, context, link.run_id, attempts, usage)

    def stream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> Iterator[AIMessageChunk]:
        """Stream the chosen child's answer; the last chunk carries the decision."""
        config = _hand_over_stream_run(config, CallbackManager)
        try:
            yield from super().stream(input, config, stop=stop, **kwargs)
        finally:
            _STREAM_RUN.set(None)

    async def astream(
        self,
        input: LanguageModelInput,
        config: RunnableConfig | None = None,
        *,
        stop: list[str] | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[AIMessageChunk]:
        """Async twin of ``stream``."""
        config = _hand_over_stream_run(config, AsyncCallbackManager)
        try:
            async for chunk in super().astream(input, config, stop=stop, **kwargs):
                yield chunk
        finally:
            _STREAM_RUN.set(None)

    def _generate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        # When langchain-core streams under invoke, ``_stream`` gets no run manager.
        if run_manager is not None:
            _STREAM_RUN.set(_link(run_manager, child_config(run_manager)))
        try:
            result = super()._generate_with_cache(messages, stop, run_manager, **kwargs)
        finally:
            _STREAM_RUN.set(None)
        return self._unless_cache_hit(result, run_manager)

    async def _agenerate_with_cache(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if run_manager is not None:
            _STREAM_RUN.set(_link(run_manager, child_config(run_manager)))
        try:
            result = await super()._agenerate_with_cache(
                messages, stop, run_manager, **kwargs
            )
        finally:
            _STREAM_RUN.set(None)
        return self._unless_cache_hit(result, run_manager)

    def _unless_cache_hit(
        self,
        result: ChatResult,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
    ) -> ChatResult:
        """``result``, relabelled if it came from the LLM cache (see ``llm_cache``)."""
        run_id = _run_id(run_manager)
        hit = as_cache_hit(result, run_id)
        if hit is None:
            return result
        self._pending.refuse(run_id, CACHE_HIT)
        return hit

    def batch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Embed every query in one embeddings call, then route each."""
        outputs: list[AIMessage] = []
        for start, stop in self._chunks(len(inputs)):
            texts = self._batch_queries(inputs[start:stop])
            with suppress(Exception):  # then each item embeds, and fails, alone
                self._vectors_for(texts)
            outputs += super().batch(
                inputs[start:stop],
                config[start:stop] if isinstance(config, list) else config,
                return_exceptions=return_exceptions,
                **kwargs,
            )
        return outputs

    async def abatch(
        self,
        inputs: list[LanguageModelInput],
        config: RunnableConfig | list[RunnableConfig] | None = None,
        *,
        return_exceptions: bool = False,
        **kwargs: Any,
    ) -> list[AIMessage]:
        """Embed every query in one embeddings call, then route each."""
        outputs: list[AIMessage] = []
        for start, stop in self._chunks(len(inputs)):
            texts = self._batch_queries(inputs[start:stop])
            with suppress(Exception):  # then each item embeds, and fails, alone
                await self._avectors_for(texts)
            outputs += await super().abatch(
                inputs[start:stop],
                config[start:stop] if isinstance(config, list) else config,
                return_exceptions=return_exceptions,
                **kwargs,
            )
        return outputs

    # Internals -----------------------------------------------------------------

    def _query(self, messages: Sequence[BaseMessage]) -> str:
        text = self.query_from_messages(messages)
        if not isinstance(text, str):
            raise TypeError(
                f"query_from_messages: must return str, got {type(text).__name__}"
            )
        return text

    def _batch_queries(self, inputs: Sequence[LanguageModelInput]) -> list[str]:
        """Query texts of the batch items that have one; a bad item is left to
        fail on its own call, so ``return_exceptions`` gets one result per item."""
        texts = []
        for item in inputs:
            with suppress(Exception):
                texts.append(self._input_query(item))
        return texts

    def _input_query(self, input: LanguageModelInput) -> str:
        return self._query(self._convert_input(input).to_messages())

    def _decide(
        self, messages: Sequence[BaseMessage]
    ) -> tuple[RouteDecision, Context | None]:
        text = self._query(messages)
        try:
            vectors = self._vectors_for([text])
        except BadEmbeddingsError:
            raise  # a misconfigured embedder is refused loudly, not routed around
        except Exception as error:
            return self._route_blind(error), None
        return self._select(self._featurize(vectors, [text]), messages)

    async def _adecide(
        self, messages: Sequence[BaseMessage]
    ) -> tuple[RouteDecision, Context | None]:
        text = self._query(messages)
        try:
            vectors = await self._avectors_for([text])
        except BadEmbeddingsError:
            raise
        except Exception as error:
            return self._route_blind(error), None
        return self._select(self._featurize(vectors, [text]), messages)

    def _route_blind(self, error: Exception) -> RouteDecision:
        """The decision when the embedder fails (see ``embedder_outage``)."""
        self._pending.count("embedding_failures")
        if not self._warned_outage:
            self._warned_outage = True
            warnings.warn(
                f"embeddings: failed ({type(error).__name__}: {error}); calls are "
                "answered by the default child until it recovers, and not learned "
                "from (stats()['embedding_failures'] counts them)",
                stacklevel=5,
            )
        arm = default_arm(
            self.model_names,
            self.normalized_costs,
            self._learned.policy,
            self.default_model,
        )
        return next(blind_decisions(self.model_names, self.normalized_costs, arm))

    def _select(
        self, contexts: Context, messages: Sequence[BaseMessage]
    ) -> tuple[RouteDecision, Context]:
        """The policy's choice, or the loop's child mid tool loop (``tool_loops``)."""
        policy = self._policy_for(contexts)
        sticky = self.sticky_tool_loops and loop_model(messages, self.model_names)
        if sticky:
            return decision_for(policy, contexts[0], sticky), contexts[0]
        return policy.select(contexts[0]), contexts[0]

    def _contexts(self, texts: Sequence[str]) -> Context:
        """Policy contexts for ``texts``, embedding those not cached yet."""
        return self._featurize(self._vectors_for(texts), texts)

    def _featurize(self, vectors: Context, texts: Sequence[str]) -> Context:
        """Policy contexts from embeddings (with task features once learned)."""
        return query_features(vectors, texts, self._learned.tasks)

    def _learn_tasks(self, vectors: Context, labels: list[str]) -> None:
        """Learn the task classifier from labelled prompts; only before anything
        is learned, since it changes what the policy's statistics mean."""
        if self._learned.policy is not None and self._learned.policy.counts.sum() > 0:
            raise ValueError(
                "tasks: this router has already learned from rewards; a task "
                "classifier can only be learned by the first fit (fit without "
                "tasks to add data, or start a new router)"
            )
        if len(self._pending):
            raise ValueError(
                f"tasks: {len(self._pending)} routed calls still await feedback on "
                "the current features; give their feedback first, or fit with tasks "
                "before routing"
            )
        classifier = TaskClassifier.fit(vectors, labels)
        with self._lock:
            self._learned.tasks = classifier
            self._learned.policy = (
                None  # created again with the task features' dimension
            )

    def _vectors_for(self, texts: Sequence[str]) -> Context:
        """Embeddings of ``texts`` (n, dim); uncached ones are embedded in one call."""
        found, missing = self._lookup(texts)
        if missing:
            raw = self.embeddings.embed_documents(missing)
            found.update(self._store(missing, raw))
        return np.stack([found[t] for t in texts])

    async def _avectors_for(self, texts: Sequence[str]) -> Context:
        """Async twin of ``_vectors_for``."""
        found, missing = self._lookup(texts)
        if missing:
            raw = await self.embeddings.aembed_documents(missing)
            found.update(self._store(missing, raw))
        return np.stack([found[t] for t in texts])

    def _lookup(
        self, texts: Sequence[str]
    ) -> tuple[dict[str, NDArray[np.float64]], list[str]]:
        """Cached embeddings among ``texts``, and the distinct texts not cached."""
        with self._lock:
            found = {t: self._vectors[t] for t in texts if t in self._vectors}
        return found, [t for t in dict.fromkeys(texts) if t not in found]

    def _store(
        self, texts: list[str], raw: list[list[float]]
    ) -> dict[str, NDArray[np.float64]]:
        """Validate fresh embeddings and cache them (oldest dropped)."""
        fresh = dict(zip(texts, self._checked_vectors(raw, texts), strict=True))
        with self._lock:
            self._vectors.update(fresh)
            while len(self._vectors) > self.embedding_cache_size:
                self._vectors.popitem(last=False)
        return fresh

    def _checked_vectors(
        self, raw: list[list[float]], texts: Sequence[str]
    ) -> list[NDArray[np.float64]]:
        """Embeddings as arrays, refusing a wrong count, dimension or NaN."""
        if len(raw) != len(texts):
            raise BadEmbeddingsError(
                f"embeddings: returned {len(raw)} vectors for {len(texts)} texts"
            )
        vectors = [np.asarray(v, dtype=np.float64) for v in raw]
        policy, tasks = self._learned.policy, self._learned.tasks
        if policy is not None:
            expected: tuple[int, ...] = (embedding_dim(policy.dim, tasks),)
        elif tasks is not None:
            expected = (tasks.embedding_dim,)
        else:
            expected = vectors[0].shape
        for vector in vectors:
            if vector.ndim != 1 or vector.shape != expected:
                raise BadEmbeddingsError(
                    f"embeddings: returned a vector of shape {vector.shape}, "
                    f"but this router routes on dimension {expected[0]}"
                )
            if not np.all(np.isfinite(vector)):
                raise BadEmbeddingsError("embeddings: returned NaN or infinity")
        return vectors

    def _policy_for(self, contexts: Context) -> LinUCBPolicy:
        """The policy, created on first use with the contexts' dimension."""
        with self._lock:
            if self._learned.policy is None:
                self._learned.policy = LinUCBPolicy(
                    self.model_names,
                    contexts.shape[1],
                    alpha=self.alpha,
                    ridge=self.ridge,
                    store=self.store,
                    namespace=namespace(
                        self.name or self._llm_type,
                        self.embeddings,
                        self.model_names,
                        tasks=None
                        if self._learned.tasks is None
                        else self._learned.tasks.fingerprint(),
                    ),
                )
            return self._learned.policy

    def _require_policy(self) -> LinUCBPolicy:
        if self._learned.policy is None:
            raise ValueError("router: no decision has been made yet")
        return self._learned.policy

    def _child(
        self, decision: RouteDecision, kwargs: dict[str, Any]
    ) -> tuple[Runnable[LanguageModelInput, BaseMessage], dict[str, Any]]:
        """The chosen child, with the router's bound tools bound on it."""
        child: Runnable[LanguageModelInput, BaseMessage] = self.models[decision.model]
        request = kwargs.get(STRUCTURED_OUTPUT)
        if isinstance(request, StructuredOutput):
            return request.on(self.models[decision.model]), {}
        call_kwargs = {k: v for k, v in kwargs.items() if k not in _TOOL_KEYS}
        if self.max_tokens is not None:
            call_kwargs.setdefault("max_tokens", self.max_tokens)
        binding = kwargs.get("tool_binding")
        if binding is not None:
            tools = binding["tools"]
            options = {k: v for k, v in binding.items() if k != "tools"}
            child = self.models[decision.model].bind_tools(tools, **options)
        elif "tools" in kwargs:
            child = self.models[decision.model].bind_tools(
                kwargs["tools"], tool_choice=kwargs.get("tool_choice")
            )
        return child, call_kwargs

    def _candidates(
        self, decision: RouteDecision, context: Context | None
    ) -> Iterator[RouteDecision]:
        """Arms to call in order: the chosen one, then the rest by UCB (by cost
        when routed without an embedding); children cooling down go last."""
        cooling = self._cooldowns.cooling()
        if not cooling and context is not None:
            return ranked_decisions(self._require_policy(), decision, context)
        if context is None:
            costs = self.normalized_costs
            ranked = blind_decisions(self.model_names, costs, decision.arm)
        else:
            ranked = ranked_decisions(self._require_policy(), decision, context)
        return self._cooldowns.deferred(ranked, cooling)

    def _answer_cost(self, model: str, usage: UsageMetadata | None) -> float:
        """Normalised cost of one answer: its child's, or from its token usage."""
        if self.cost_mode == "usage" and self.prices is not None:
            if usage is not None:
                return normalised_cost(usage, model, self.prices, self.reference_tokens)
            warnings.warn(
                f"cost_mode='usage': {model!r} reported no token usage (streaming "
                "ChatOpenAI needs stream_usage=True); its fixed cost is used",
                stacklevel=4,
            )
        return self.normalized_costs[model]

    def _metadata(
        self, decision: RouteDecision, run_id: str, cost: float
    ) -> dict[str, Any]:
        return {
            "model": decision.model,
            "arm": decision.arm,
            "expected_reward": decision.expected_reward,
            "ucb": decision.ucb,
            "cost": cost,
            "run_id": run_id,
            "cached": False,
        }

    def _register(
        self,
        decision: RouteDecision,
        context: Context | None,
        run_id: str,
        attempts: list[Attempt],
        usage: UsageMetadata | None,
    ) -> dict[str, Any]:
        """Remember the decision for feedback; return its response metadata."""
        cost = self._answer_cost(decision.model, usage)
        if context is None:
            self._pending.refuse(run_id, NO_CONTEXT)
        else:
            self._pending.add(
                run_id, PendingDecision(decision.arm, decision.model, context, cost)
            )
        return {
            **self._metadata(decision, run_id, cost),
            "task": None if context is None else task_of(context, self._learned.tasks),
            "attempts": attempts,
            "usage": usage,
            "embedding_failed": context is None,
            "sticky": isinstance(decision, LoopDecision),
            "cooling_down": self._cooldowns.cooling(),
        }

    def _finish(
        self,
        message: BaseMessage,
        decision: RouteDecision,
        context: Context | None,
        run_id: str,
        attempts: list[Attempt],
    ) -> ChatResult:
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        metadata = self._register(decision, context, run_id, attempts, usage)
        update: dict[str, Any] = {
            "response_metadata": {**message.response_metadata, "metallm": metadata}
        }
        if usage is not None:
            update["usage_metadata"] = None  # the child's run carries it (child_runs)
        routed = message.model_copy(update=update)
        return ChatResult(generations=[ChatGeneration(message=routed)])

    def _final_chunk(
        self,
        last: BaseMessage | None,
        decision: RouteDecision,
        context: Context | None,
        run_id: str,
        attempts: list[Attempt],
        usage: UsageTally,
    ) -> ChatGenerationChunk:
        """The child's last chunk, carrying the routing metadata, marked last."""
        metadata = self._register(decision, context, run_id, attempts, usage.usage)
        chunk = AIMessageChunk(content="") if last is None else as_chunk(last)
        final = chunk.model_copy(
            update={
                "response_metadata": {**chunk.response_metadata, "metallm": metadata},
                "chunk_position": "last",
            }
        )
        return ChatGenerationChunk(message=final)

    def _chunks(self, total: int) -> Iterator[tuple[int, int]]:
        """Slices of a batch small enough that their embeddings stay cached."""
        size = max(self.embedding_cache_size, 1)
        for start in range(0, total, size):
            yield start, min(start + size, total)


def _child_name(model: BaseChatModel, index: int) -> str:
    for attr in ("model_name", "model", "model_id"):
        name = getattr(model, attr, None)
        if isinstance(name, str) and name:
            return name
    return f"model_{index}"


def _hand_over_stream_run(
    config: RunnableConfig | None,
    manager_class: type[CallbackManager] | type[AsyncCallbackManager],
) -> RunnableConfig:
    """Fix the run id of a ``stream`` call and hand it, with the child's callbacks,
    to ``_stream`` (which langchain-core calls without a run manager)."""
    config = ensure_config(config)
    run_id = config.get("run_id") or uuid4()
    manager = manager_class.configure(
        config.get("callbacks"),
        inheritable_tags=config.get("tags"),
        inheritable_metadata=config.get("metadata"),
    )
    _STREAM_RUN.set(_RunLink(str(run_id), stream_child_config(manager, run_id)))
    return {**config, "run_id": run_id}


def _link(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun,
    child_config: RunnableConfig,
) -> _RunLink:
    return _RunLink(str(run_manager.run_id), child_config)


def _take_link(link: _RunLink | None) -> _RunLink:
    """The run a streamed call belongs to: given, handed over, or a fresh id."""
    handed = _STREAM_RUN.get()
    _STREAM_RUN.set(None)
    return link or handed or _RunLink(str(uuid4()), {})


def _run_id(
    run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
) -> str:
    return str(run_manager.run_id if run_manager else uuid4())


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
