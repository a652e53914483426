"""``MetaLLMRouterChatModel``: the LangChain adapter over ``core.RouterCore``.

It holds what LangChain needs: the settings as fields, the chat model hooks,
callbacks, child calls with fallback, and response metadata. Every routing
choice and everything learned is the core's. One call: messages -> query text
-> ``core.context`` -> ``core.decide`` -> children called in ``Decision.order``
(``fallback``) -> ``core.register`` -> ``response_metadata["metallm"]``.
"""

from __future__ import annotations

import logging
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal
from uuid import UUID

from langchain_core.caches import BaseCache
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import (
    BaseChatModel,
    LanguageModelInput,
    ModelProfile,
)
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.runnables import RunnableSerializable
from langchain_core.runnables.utils import AnyConfigurableField
from pydantic import ConfigDict, Field, PrivateAttr, model_validator
from typing_extensions import Self

from langchain_metallm import children, planned_batch
from langchain_metallm.cooldown import Cooldowns
from langchain_metallm.core.calibration import CostWeightCalibration
from langchain_metallm.core.decision import Decision
from langchain_metallm.core.decision_log import DecisionLog
from langchain_metallm.core.evaluation import Evaluation
from langchain_metallm.core.features import TaskModel
from langchain_metallm.core.outcomes import Scores
from langchain_metallm.core.pareto import ParetoFront
from langchain_metallm.core.persistence import StrPath, load_router, router_settings
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.stores.base import PolicyStore
from langchain_metallm.embeddings import LocalEmbeddings
from langchain_metallm.explorer import Explorer
from langchain_metallm.planned_batch import PlannedBatchResult
from langchain_metallm.routed_call import CallOptions, RoutedCalls, query_text
from langchain_metallm.router_base import RouterBase
from langchain_metallm.routing_text import recent_turns_text
from langchain_metallm.shared_learning import (
    ASSIGNED,
    Handles,
    SharedLearningConfigurableFields,
    check_shareable,
    set_shared,
)

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
    """Child chat models by name (a list is named by each child's model name);
    a string such as ``"openai:gpt-4o-mini"`` is built by ``init_chat_model``."""
    costs: dict[str, float]
    """Cost of each child in any unit (a list follows ``models``' order)."""
    cost_weight: float = 0.0
    """``p`` in ``predicted score - p * normalised cost`` (a budget's start)."""
    budget: float | None = None
    """Target mean normalised cost per call; the cost weight is then paced."""
    decay: float = 1.0
    """Forgetting factor in (0, 1]: each update discounts every child (1: never)."""
    alpha: float | None = None
    """Exploration width; None: 0.5 learning live, 0.1 once fitted."""
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
    """Shared statistics (``SQLiteStore``, ``RedisStore``); None: this process."""
    strict_feedback: bool = True
    """Raise on feedback for unknown or already-rewarded runs (else warn, ignore)."""
    streaming: bool = False
    """Stream from the chosen child even when called with ``invoke``."""
    auto_tasks: bool = True
    """A first ``fit`` of 300+ prompts without task labels learns clusters."""
    online_clusters: bool | None = None
    """Never fitted: route on clusters of live prompts, shared by a store's fleet
    (None or True: on; False: the bare embedding)."""
    embedding_cache_size: int = 2_048
    """Query embeddings kept in memory; ``batch`` fills it with one call."""
    stop: list[str] | None = None
    """Default stop sequences, passed to the chosen child."""
    max_tokens: int | None = None
    """If set, passed to the chosen child as ``max_tokens``."""
    fallback: bool = True
    """If a child raises, try the next in the decision's order (streams: before
    the first chunk)."""
    sticky_tool_loops: bool = True
    """Send the step after a tool result to the child that called the tool."""
    allowed_fails: int = 3
    """Consecutive failures after which a child cools down (see ``cooldown``)."""
    cooldown_time: float = 60.0
    """Seconds a failing child is tried last (after every other child)."""
    default_model: str | None = None
    """Child that answers when the embedder fails (None: best mean, else cheapest)."""
    cost_mode: Literal["fixed", "usage"] = "fixed"
    """``"fixed"``: an answer costs its child's cost; ``"usage"``: its tokens."""
    prices: dict[str, tuple[float, float]] | None = None
    """``cost_mode="usage"`` only: (input, output) dollars per million tokens."""
    cache: BaseCache | bool | None = Field(default=False, exclude=True)
    """LangChain's LLM cache for the router's own answers (off: keep learning)."""
    reference_tokens: tuple[int, int] = (1_000, 1_000)
    """``cost_mode="usage"``: tokens of a call that costs 1 on the priciest child."""
    shadow: str | None = None
    """Shadow mode: this incumbent answers every call while the router learns."""
    explore_rate: float = 0.0
    """Share of calls on which the other children are also called and scored."""
    explore_budget: float | None = None
    """Cap on exploration's mean normalised spend per routed call (None: none)."""
    scorer: Callable[..., Any] | None = None
    """Scores explored answers: ``(messages, generation) -> float``, sync or async."""
    decision_log_size: int = 10_000
    """Decisions kept in the decision log (``decisions()``)."""

    _core: RouterCore = PrivateAttr()
    _cooldowns: Cooldowns = PrivateAttr()
    _handles: Handles = PrivateAttr()
    _explorer: Explorer = PrivateAttr()

    @model_validator(mode="before")
    @classmethod
    def _name_models_and_costs(cls, values: Any) -> Any:
        """Accept ``models`` and ``costs`` as lists as well as dicts."""
        return children.named_children(values) if isinstance(values, dict) else values

    @model_validator(mode="after")
    def _build_core(self) -> MetaLLMRouterChatModel:
        """Check every setting once and build the core that owns them."""
        self._core = RouterCore.build(
            self.name or self._llm_type,
            list(self.models),
            self.__dict__,
            self.embeddings,
            self.store,
        )
        prices = self._core.catalogue.prices
        self.__dict__.update(prices=None if prices is None else dict(prices))
        self._cooldowns = Cooldowns(self.allowed_fails, self.cooldown_time)
        self._explorer = Explorer(self._core, self.scorer)
        self._calls = RoutedCalls(self._core, self._cooldowns, self._explorer)
        self._handles = Handles(self)
        self._core.on_change(self._handles.show)
        return self

    def __setattr__(self, name: str, value: Any) -> None:
        """A shared field set on a running router acts on its core and shows on
        every handle; a field fixed at construction is refused."""
        if "_core" in (self.__pydantic_private__ or {}) and name in ASSIGNED:
            set_shared(self, name, value)
        else:
            super().__setattr__(name, value)

    @property
    def _llm_type(self) -> str:
        return "metallm-router"

    def _resolve_model_profile(self) -> ModelProfile | None:
        """What every child can do (see ``children.combined_profile``)."""
        return children.combined_profile(self.models.values())

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {"models": list(self.models), "costs": self.costs, "ridge": self.ridge}

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
        """Children's names, in routing order."""
        return list(self._core.catalogue.names)

    @property
    def normalized_costs(self) -> dict[str, float]:
        """Each child's cost over the catalogue's unit (the priciest child's
        cost when the router was built)."""
        return self._core.catalogue.normalized

    @property
    def core(self) -> RouterCore:
        """The LangChain-free core that owns this router's state and decisions."""
        return self._core

    @property
    def policy(self) -> LinUCBPolicy | None:
        """The LinUCB policy, created on the first embedded query."""
        return self._core.policy

    @property
    def task_classifier(self) -> TaskModel | None:
        """What gives queries their task (a classifier or clusters), or None."""
        return self._core.task_classifier

    # Routing and feedback -------------------------------------------------------

    def route(self, input: LanguageModelInput) -> Decision:
        """Which child would answer ``input``, without calling it or learning."""
        context = self._core.context(self.query_of(input), learn=False)
        return self._core.decide("preview", context)

    def record_feedback(
        self, run: UUID | str | AIMessage, score: float, *, strict: bool | None = None
    ) -> float:
        """Reward the decision behind ``run`` (a run id or the routed AIMessage)
        with ``score`` in [0, 1], the answer's quality; returns it. Unknown or
        already-rewarded runs raise ``FeedbackError`` (``strict=False``: warn,
        return NaN)."""
        return self._core.learn(children.run_id_of(run), score, strict=strict)

    async def arecord_feedback(
        self, run: UUID | str | AIMessage, score: float, *, strict: bool | None = None
    ) -> float:
        """Async twin of ``record_feedback`` (store I/O off the event loop)."""
        return await self._core.alearn(children.run_id_of(run), score, strict=strict)

    def is_pending(self, run_id: UUID | str) -> bool:
        """Whether a routed call with this run id still awaits feedback."""
        return str(run_id) in self._core.pending

    def note_feedback_error(self, run_id: UUID | str | None, problem: str) -> None:
        """Count (``stats()["scorer_errors"]``) and log feedback a scorer failed."""
        self._core.pending.count("scorer_errors")
        _logger.error("metallm feedback for run_id %s not applied: %s", run_id, problem)

    def stats(self) -> dict[str, float]:
        """Feedback, exploration and cooldown counters (``pending``, ``applied``,
        ``explored``, ``explored_spend``, ``cooldowns``, ...)."""
        core = self._core
        stats = {**core.pending.stats(), **core.exploration.stats()}
        return {**stats, **self._cooldowns.stats()}

    def query_of(self, input: LanguageModelInput) -> str:
        """The text a call on ``input`` is routed by (``query_from_messages``)."""
        messages = self._convert_input(input).to_messages()
        return query_text(self.query_from_messages, messages)

    # Learning, planning, settings and persistence ---------------------------------

    def pareto_front(
        self, prompts: Sequence[LanguageModelInput], *, robust: bool = False
    ) -> ParetoFront:
        """OptLLM-style Pareto-optimal assignments of ``prompts`` to children
        (see ``planned_batch``)."""
        return planned_batch.pareto_front(self, prompts, robust=robust)

    async def abatch_planned(
        self, prompts: Sequence[LanguageModelInput], **kwargs: Any
    ) -> PlannedBatchResult:
        """Plan ``prompts`` for a ``budget`` or ``min_accuracy``, then run each
        through its planned child (see ``planned_batch.abatch_planned``)."""
        return await planned_batch.abatch_planned(self, prompts, **kwargs)

    def fit(
        self, prompts: Sequence[str], scores: Scores, tasks: Sequence[str] | None = None
    ) -> None:
        """Warm start from recorded outcomes (``scores`` in [0, 1], an (n, models)
        array or one ``{name: score}`` dict per prompt; NaN or absent = not
        observed). ``tasks`` labels (first fit only) teach a task classifier;
        without them a first fit of 300+ prompts learns clusters (``auto_tasks``)."""
        self._core.fit(prompts, scores, tasks)

    def calibrate_cost_weight(
        self,
        prompts: Sequence[str],
        scores: Scores,
        *,
        budget: float,
        cost_weights: Sequence[float] | None = None,
    ) -> CostWeightCalibration:
        """Set ``cost_weight`` to the candidate whose greedy routing of validation
        ``prompts`` is most accurate at mean normalised cost <= ``budget``."""
        return self._core.calibrate_cost_weight(
            prompts, scores, budget=budget, cost_weights=cost_weights
        )

    def set_cost_weight(self, cost_weight: float) -> None:
        """Decide with ``cost_weight`` from the next call on (nothing relearned)."""
        self._core.set("cost_weight", cost_weight)

    def set_budget(self, budget: float | None) -> None:
        """Pace spend to ``budget`` from the next call on (None: fixed weight)."""
        self._core.set("budget", budget)

    def set_costs(self, costs: Mapping[str, float]) -> None:
        """New costs for some children, in effect from the next call (nothing
        relearned); unknown names or a budget they make infeasible are refused."""
        self._core.set_catalogue(self._core.catalogue.with_costs(costs))

    def add_model(
        self, name: str, model: BaseChatModel, cost: float, *, price: Any = None
    ) -> None:
        """Add child ``name`` on the live router (every handle), keeping every
        other child's statistics; it starts from a prior its own outcomes
        outweigh and explores wider meanwhile. ``price`` with ``cost_mode="usage"``."""
        if not isinstance(model, BaseChatModel):
            raise TypeError(f"model: expected a chat model, got {type(model).__name__}")
        models = {**self.models, name: model}  # callable before it can be chosen
        self._core.add_child(name, cost, price)
        self._handles.show(
            "profile", children.refreshed_profile(self.profile, self.models, models)
        )
        self._handles.show("models", models)

    def remove_model(self, name: str) -> None:
        """Remove child ``name`` and its statistics (every handle), keeping every
        other child's; feedback still pending for its calls is refused."""
        self._core.remove_child(name)
        models = {k: v for k, v in self.models.items() if k != name}
        self._handles.show(
            "profile", children.refreshed_profile(self.profile, self.models, models)
        )
        self._handles.show("models", models)

    def save(self, path: StrPath) -> None:
        """Save what was learned and what resuming needs to the directory
        ``path``, atomically (see ``core.persistence``); pending decisions are
        not saved."""
        self._core.save(path)

    @classmethod
    def load(
        cls,
        path: StrPath,
        models: Mapping[str, BaseChatModel],
        *,
        embeddings: Embeddings | None = None,
        **kwargs: Any,
    ) -> MetaLLMRouterChatModel:
        """A router that resumes where ``save(path)`` stopped: statistics, costs,
        cost weight, decay, alpha, budget and its pacer. ``models`` may differ
        from the saved children (new ones need ``costs``); ``kwargs`` set other
        fields, and override saved settings with a warning."""
        embedder = LocalEmbeddings() if embeddings is None else embeddings
        state = load_router(path, embedder)
        settings, notes = router_settings(state, models, embedder, kwargs)
        router = cls(**settings)
        router._core.restore(state)
        for note in notes:
            warnings.warn(f"load: {path}: {note}", stacklevel=2)
        return router

    # Shadow mode, exploration and the decision log ------------------------------

    def set_shadow(self, incumbent: str | None) -> None:
        """Let ``incumbent`` answer every call while the router decides and
        learns beside it (shadow mode); None routes live."""
        self.shadow = incumbent

    def decisions(self) -> DecisionLog:
        """The decision log: recent ``Decision`` records with observed scores."""
        return self._core.log

    def evaluate(self, **settings: Any) -> Evaluation:
        """What routing live would give at ``cost_weights`` or ``budgets``,
        estimated from the decision log (see ``core.evaluation``)."""
        return self._core.evaluate(**settings)

    def wait_explorations(self, timeout: float | None = None) -> bool:
        """Wait for background exploration calls; True if none is left."""
        return self._explorer.wait(timeout)

    # LangChain chat model ------------------------------------------------------

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self:
        """A handle on this router's core (see ``shared_learning``); fields that
        define learning cannot change, and deep copies are refused."""
        if deep:
            raise ValueError(
                "model_copy: deep copies are refused (the learned state is shared "
                "by reference); save() and load() make an independent router"
            )
        check_shareable(update or {}, "model_copy")
        copied = super().model_copy(update=update)
        self._handles.add(copied)
        return copied

    def configurable_fields(
        self, **kwargs: AnyConfigurableField
    ) -> RunnableSerializable[LanguageModelInput, AIMessage]:
        """Per-call fields; configured routers are handles on this one's core."""
        check_shareable(kwargs, "configurable_fields", per_call=True)
        for key in kwargs:
            if key not in type(self).model_fields:
                raise ValueError(f"configurable_fields: unknown field {key!r}")
        return SharedLearningConfigurableFields(default=self, fields=kwargs)

    def _call_options(self) -> CallOptions:
        """This handle's own fields a call uses (``RouterBase`` runs the call)."""
        return CallOptions(
            models=self.models,
            query=self.query_from_messages,
            stop=self.stop,
            max_tokens=self.max_tokens,
            fallback=self.fallback,
            sticky_tool_loops=self.sticky_tool_loops,
            off_loop=self.store is not None,
        )
