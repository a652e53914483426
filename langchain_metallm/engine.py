"""``RouterEngine``: everything a routed call and its reward do, without LangChain.

One call: query text -> query vector (cache keyed by a hash of the text) ->
context (``features``) -> policy decision with each child's penalty ``p * cost``
(``p`` the fixed cost weight, or the ``BudgetPacer``'s under a budget) -> child
call (by the adapter) -> pending decision (``pending``) with the answer's cost
(``costs``), which the pacer also accounts.
One score: run id -> pending decision -> policy update (the policy learns scores;
cost never enters what it learns).
A router that was never fitted learns from live feedback alone: it routes on
``online_clusters`` of the prompts it sees, each child starting from an
optimistic prior, with a wider exploration bonus (``LIVE_ALPHA``).
Also the glue for ``fit``, cost-weight calibration, the Pareto front of a batch
and saving. ``chat_models`` and ``planned_batch`` call only its public methods.
"""

from __future__ import annotations

import hashlib
import math
import threading
import warnings
from collections import OrderedDict
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.auto_tasks import QueryClusters, cluster_count
from langchain_metallm.calibration import CostWeightCalibration, calibrate
from langchain_metallm.costs import (
    Usage,
    check_cost_weight,
    check_costs,
    check_prices,
    check_reference,
    cost_vector,
    normalized_costs,
    penalty,
    usage_cost,
)
from langchain_metallm.embedder_outage import NO_CONTEXT, BadEmbeddingsError
from langchain_metallm.fallback import ranked_decisions
from langchain_metallm.features import (
    TaskClassifier,
    TaskModel,
    check_task_labels,
    embedding_dim,
    query_features,
    task_of,
)
from langchain_metallm.online_clusters import OnlineClusters
from langchain_metallm.outcomes import Scores, check_prompts, score_matrix
from langchain_metallm.pacing import BudgetPacer, check_budget
from langchain_metallm.pareto import ParetoFront, policy_scores
from langchain_metallm.pending import PendingDecision, PendingDecisions
from langchain_metallm.persistence import RouterState, StrPath, save_router
from langchain_metallm.policy import LinUCBPolicy, RouteDecision, check_decay
from langchain_metallm.stores.base import PolicyStore, namespace

FloatArray = NDArray[np.float64]
PROBES = 30
"""Forced probes of a child added to a live router (where it could win)."""
PRIOR_OUTCOMES = 20
"""Pseudo-outcomes of the best child a newly added child starts with."""
FITTED_ALPHA = 0.1
"""Exploration bonus of a policy created by ``fit`` (``alpha=None``)."""
LIVE_ALPHA = 0.5
"""Exploration bonus of a policy learning from live feedback alone (``alpha=None``):
0.1 is too small next to the score gaps and locks onto early winners (issue 16)."""
LIVE_PRIOR_SCORE = 1.0
"""Optimistic prior of each child of a live-learning router: one pseudo-outcome
of this score on the bias, so none is written off after a few unlucky calls."""


class Embedder(Protocol):
    """What the engine needs of an embedder (any LangChain ``Embeddings`` is one)."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]: ...

    async def aembed_documents(self, texts: list[str]) -> list[list[float]]: ...


class EngineSettings(Protocol):
    """The settings the engine reads at each use (the router's fields)."""

    @property
    def model_names(self) -> list[str]: ...
    @property
    def costs(self) -> Mapping[str, float]: ...
    @property
    def cost_weight(self) -> float: ...
    @property
    def budget(self) -> float | None: ...
    @property
    def decay(self) -> float: ...
    @property
    def alpha(self) -> float | None: ...
    @property
    def ridge(self) -> float: ...
    @property
    def embeddings(self) -> Embedder: ...
    @property
    def store(self) -> PolicyStore | None: ...
    @property
    def strict_feedback(self) -> bool: ...
    @property
    def embedding_cache_size(self) -> int: ...
    @property
    def auto_tasks(self) -> bool: ...
    @property
    def online_clusters(self) -> bool | None: ...
    @property
    def cost_mode(self) -> str: ...
    @property
    def prices(self) -> Mapping[str, tuple[float, float]] | None: ...
    @property
    def reference_tokens(self) -> tuple[int, int]: ...


class RouterEngine:
    """Routing and learning for one router: query vectors, contexts, the LinUCB
    policy, decisions awaiting feedback, costs and rewards."""

    def __init__(
        self,
        settings: EngineSettings,
        *,
        name: str,
        max_pending: int,
        pending_ttl: float | None,
    ) -> None:
        self.settings = settings
        self.name = name
        self.pending = PendingDecisions(max_pending, pending_ttl)
        self._policy: LinUCBPolicy | None = None
        self._tasks: TaskModel | None = None
        self._vectors: OrderedDict[str, FloatArray] = OrderedDict()
        self._lock = threading.RLock()
        self.pacer: BudgetPacer | None = None
        self.set_budget(settings.budget)
        self._warned_outage = False

    @property
    def policy(self) -> LinUCBPolicy | None:
        """The LinUCB policy, created on the first embedded query."""
        return self._policy

    @property
    def task_classifier(self) -> TaskModel | None:
        """What gives queries their task: the classifier ``fit(..., tasks=...)``
        learned, or the clusters a first fit without labels learned; else None."""
        return self._tasks

    @property
    def normalized_costs(self) -> dict[str, float]:
        """Each child's fixed cost over the largest, so the priciest costs 1."""
        return normalized_costs(self.settings.costs, self.settings.model_names)

    # One call ------------------------------------------------------------------

    def vectors(self, texts: Sequence[str]) -> FloatArray:
        """Embeddings of ``texts`` (n, dim); uncached ones are embedded in one call."""
        keys = [_key(t) for t in texts]
        found, missing = self._lookup(keys, texts)
        if missing:
            raw = self.settings.embeddings.embed_documents(list(missing.values()))
            found.update(self._remember(missing, raw))
        return np.stack([found[k] for k in keys])

    async def avectors(self, texts: Sequence[str]) -> FloatArray:
        """Async twin of ``vectors``."""
        keys = [_key(t) for t in texts]
        found, missing = self._lookup(keys, texts)
        if missing:
            raw = await self.settings.embeddings.aembed_documents(
                list(missing.values())
            )
            found.update(self._remember(missing, raw))
        return np.stack([found[k] for k in keys])

    def contexts_of(self, vectors: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Policy contexts of ``texts`` embedded as ``vectors`` (with task
        features once learned)."""
        return query_features(vectors, self._tasks, texts)

    def contexts(self, texts: Sequence[str]) -> FloatArray:
        """Policy contexts for the live prompts ``texts`` (embedding those not
        cached yet), which online clusters learn from."""
        vectors = self.vectors(texts)
        self._observe(vectors, texts)
        return self.contexts_of(vectors, texts)

    async def acontexts(self, texts: Sequence[str]) -> FloatArray:
        """Async twin of ``contexts``."""
        vectors = await self.avectors(texts)
        self._observe(vectors, texts)
        return self.contexts_of(vectors, texts)

    def call_context(self, text: str) -> FloatArray | None:
        """One call's context, or None when the embedder fails (the call is then
        answered without one, see ``embedder_outage``)."""
        try:
            context: FloatArray = self.contexts([text])[0]
        except BadEmbeddingsError:
            raise  # a misconfigured embedder is refused loudly, not routed around
        except Exception as error:
            self._note_outage(error)
            return None
        return context

    async def acall_context(self, text: str) -> FloatArray | None:
        """Async twin of ``call_context``."""
        try:
            context: FloatArray = (await self.acontexts([text]))[0]
        except BadEmbeddingsError:
            raise
        except Exception as error:
            self._note_outage(error)
            return None
        return context

    @property
    def cost_weight(self) -> float:
        """The cost weight decisions use now: the pacer's under a budget, else
        the fixed ``cost_weight``."""
        pacer = self.pacer
        return self.settings.cost_weight if pacer is None else pacer.weight

    def set_budget(self, budget: float | None) -> None:
        """Pace the cost weight to ``budget`` (None: use the fixed weight); a
        running pacer keeps its weight and retargets."""
        if budget is None:
            self.pacer = None
            return
        costs = self.normalized_costs.values()
        if self.pacer is None:
            self.pacer = BudgetPacer(budget, costs, weight=self.settings.cost_weight)
        else:
            self.pacer.retarget(budget, costs)

    def checked_costs(self, costs: Mapping[str, float]) -> dict[str, float]:
        """``costs`` (every child's, after a change of prices or children) as
        floats, if valid and the budget stays feasible under them."""
        checked = {name: float(cost) for name, cost in costs.items()}
        check_costs(checked, list(checked))
        if self.pacer is not None:
            check_budget(
                self.pacer.budget, normalized_costs(checked, list(checked)).values()
            )
        return checked

    def decide(
        self,
        context: FloatArray,
        *,
        arm: int | None = None,
        cost_weight: float | None = None,
    ) -> RouteDecision:
        """The policy's choice for one context (at ``cost_weight`` if given,
        else ``self.cost_weight``), or its estimates for ``arm`` when a plan
        already chose it."""
        policy = self._policy_for(context[None])
        weight = (
            self.cost_weight if cost_weight is None else check_cost_weight(cost_weight)
        )
        cost = penalty(policy.arms, self.normalized_costs, weight)
        if arm is None:
            return policy.select(context, cost)
        mean, width = policy.predict(context[None])
        ucb = mean[0] - cost + policy.alpha * width[0]
        return RouteDecision(
            arm=arm,
            model=policy.arms[arm],
            expected_reward=float(mean[0, arm] - cost[arm]),
            ucb=float(ucb[arm]),
            ucbs=tuple(float(u) for u in ucb),
        )

    def candidates(
        self, decision: RouteDecision, context: FloatArray
    ) -> Iterator[RouteDecision]:
        """Arms to call in order: the chosen one, then the rest by UCB."""
        return ranked_decisions(self._require_policy(), decision, context)

    def answer_cost(self, model: str, usage: Usage | None) -> float:
        """Normalised cost of one answer: its child's, or from its token usage."""
        settings = self.settings
        if settings.cost_mode == "usage" and settings.prices is not None:
            if usage is not None:
                return usage_cost(
                    usage, model, settings.prices, settings.reference_tokens
                )
            warnings.warn(
                f"cost_mode='usage': {model!r} reported no token usage (streaming "
                "ChatOpenAI needs stream_usage=True); its fixed cost is used",
                stacklevel=5,
            )
        return self.normalized_costs[model]

    def register(
        self,
        run_id: str,
        decision: RouteDecision,
        context: FloatArray | None,
        usage: Usage | None,
    ) -> dict[str, Any]:
        """Remember an answered call for feedback (a call routed without an
        embedding cannot be learned from); return its routing metadata."""
        cost = self.answer_cost(decision.model, usage)
        if self.pacer is not None:
            self.pacer.observe(cost)
        if context is None:
            self.pending.refuse(run_id, NO_CONTEXT)
        else:
            self.pending.add(
                run_id, PendingDecision(decision.arm, decision.model, context, cost)
            )
        return {
            "model": decision.model,
            "arm": decision.arm,
            "expected_reward": decision.expected_reward,
            "ucb": decision.ucb,
            "cost": cost,
            "run_id": run_id,
            "task": None if context is None else task_of(context, self._tasks),
            "embedding_failed": context is None,
        }

    # One score -----------------------------------------------------------------

    def record_feedback(
        self, run_id: str, score: float, *, strict: bool | None = None
    ) -> float:
        """Learn ``score`` for the child behind ``run_id`` and return it; refused
        feedback raises (or warns and gives NaN)."""
        checked = check_score(score)
        try:
            decision = self.pending.take(run_id)
        except ValueError as error:
            if self.settings.strict_feedback if strict is None else strict:
                raise
            warnings.warn(str(error), stacklevel=3)
            return math.nan
        try:
            self._require_policy().update(decision.model, decision.context, checked)
        except Exception:
            self.pending.restore(run_id, decision)
            raise
        return checked

    # Learning from recorded outcomes -------------------------------------------

    def fit(
        self, prompts: Sequence[str], scores: Scores, tasks: Sequence[str] | None
    ) -> None:
        """Warm start: the policy learns every observed score. A first fit
        without labels learns automatic tasks (``auto_tasks``) if enabled."""
        names = self.settings.model_names
        texts = check_prompts(prompts)
        matrix = score_matrix(scores, names, len(texts))
        labels = None if tasks is None else check_task_labels(tasks, len(texts))
        vectors = self.vectors(texts)
        if labels is not None:
            self._check_fresh()
            self._use_tasks(TaskClassifier.fit(vectors, labels))
        elif self._clusters_wanted(len(texts)):
            self._use_tasks(QueryClusters.fit(vectors, texts))
        elif isinstance(self._tasks, OnlineClusters) and self._unlearned():
            self._use_tasks(None)  # fitted before any feedback: as if never routed
        contexts = self.contexts_of(vectors, texts)
        policy = self._policy_for(contexts)
        columns = [names.index(arm) for arm in policy.arms]
        policy.fit(contexts, matrix[:, columns])

    def calibrate_cost_weight(
        self,
        prompts: Sequence[str],
        scores: Scores,
        *,
        budget: float,
        cost_weights: Sequence[float] | None,
    ) -> CostWeightCalibration:
        """The cost weight whose greedy routing of validation data is most
        accurate within ``budget`` (``calibration.calibrate``)."""
        checked = check_budget(budget, self.normalized_costs.values())
        texts = check_prompts(prompts)
        matrix = score_matrix(
            scores, self.settings.model_names, len(texts), complete=True
        )
        return calibrate(
            self._policy,
            self.contexts_of(self.vectors(texts), texts),
            matrix,
            self.normalized_costs,
            budget=checked,
            cost_weights=cost_weights,
        )

    # Planning a batch ------------------------------------------------------------

    def pareto_front(
        self, contexts: FloatArray, *, robust: bool
    ) -> tuple[ParetoFront, FloatArray]:
        """The batch's front (total normalised cost vs predicted accuracy) and the
        predicted scores it was built from."""
        policy = self._trained_policy()
        names = tuple(policy.arms)
        cost = cost_vector(names, self.normalized_costs)
        scores = policy_scores(policy, contexts, robust=robust)
        return ParetoFront.build(scores=scores, costs=cost, models=names), scores

    # Saving --------------------------------------------------------------------

    def save(self, path: StrPath) -> None:
        """Save what was learned and the router's cost settings; a fresh router
        embeds one probe text to learn the dimension and saves an untrained
        policy."""
        policy = self._policy
        if policy is None:
            probe = ["metallm dimension probe"]
            vectors = self.vectors(probe)
            self._start_online(vectors)
            policy = self._policy_for(self.contexts_of(vectors, probe))
        save_router(
            path,
            policy,
            costs=self.settings.costs,
            cost_weight=self.cost_weight,
            embeddings=self.settings.embeddings,
            tasks=self._tasks,
        )

    def restore(self, state: RouterState, added: Sequence[str]) -> None:
        """Continue from a loaded save (replacing what a shared store holds): the
        saved statistics of the children still here, then ``added`` ones cold;
        online clusters are refused with a shared store (workers would disagree)."""
        if isinstance(state.tasks, OnlineClusters) and self.settings.store is not None:
            raise ValueError(
                "store: this save routes on online clusters, which are learned per "
                "process; load it without a shared store"
            )
        self._tasks = state.tasks
        saved = list(state.policy.arms)
        kept = [name for name in self.settings.model_names if name in saved]
        rows = [saved.index(name) for name in kept]
        policy = self._policy_for(
            np.empty((0, state.policy.dim)), arms=kept, fresh=False
        )
        policy.load_statistics(*(a[rows] for a in state.policy.statistics()))
        for name in added:
            self.add_arm(name)

    def add_arm(self, name: str) -> None:
        """Give a new child an arm on the live policy (if there is one yet):
        an optimistic prior (the child with the best mean score, seen
        ``PRIOR_OUTCOMES`` times) and ``PROBES`` forced probes where it could win."""
        policy = self._policy
        if policy is None:
            return
        best = policy.best_mean_arm()
        like = None if best is None else policy.arms[best]
        policy.add_arm(name, probes=PROBES, like=like, prior_outcomes=PRIOR_OUTCOMES)

    def remove_arm(self, name: str) -> None:
        """Drop a child's arm (and its statistics) from the live policy."""
        if self._policy is not None:
            self._policy.remove_arm(name)

    # Internals -------------------------------------------------------------------

    def _note_outage(self, error: Exception) -> None:
        """Count and (once) warn that a call is routed without an embedding."""
        self.pending.count("embedding_failures")
        if not self._warned_outage:
            self._warned_outage = True
            warnings.warn(
                f"embeddings: failed ({type(error).__name__}: {error}); calls are "
                "answered by the default child until it recovers, and not learned "
                "from (stats()['embedding_failures'] counts them)",
                stacklevel=5,
            )

    def _lookup(
        self, keys: list[str], texts: Sequence[str]
    ) -> tuple[dict[str, FloatArray], dict[str, str]]:
        """Cached embeddings among ``texts`` by key, and the distinct uncached
        texts by key."""
        with self._lock:
            found = {k: self._vectors[k] for k in keys if k in self._vectors}
        missing = {k: t for k, t in zip(keys, texts, strict=True) if k not in found}
        return found, missing

    def _remember(
        self, missing: dict[str, str], raw: list[list[float]]
    ) -> dict[str, FloatArray]:
        """Validate fresh embeddings and cache them (oldest dropped)."""
        vectors = self._checked_vectors(raw, list(missing.values()))
        fresh = dict(zip(missing, vectors, strict=True))
        with self._lock:
            self._vectors.update(fresh)
            while len(self._vectors) > self.settings.embedding_cache_size:
                self._vectors.popitem(last=False)
        return fresh

    def _checked_vectors(
        self, raw: list[list[float]], texts: Sequence[str]
    ) -> list[FloatArray]:
        """Embeddings as arrays, refusing a wrong count, dimension or NaN."""
        if len(raw) != len(texts):
            raise BadEmbeddingsError(
                f"embeddings: returned {len(raw)} vectors for {len(texts)} texts"
            )
        vectors = [np.asarray(v, dtype=np.float64) for v in raw]
        policy, tasks = self._policy, self._tasks
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

    def _observe(self, vectors: FloatArray, texts: Sequence[str]) -> None:
        """Let online clusters learn from live prompts (starting them first if
        this router has learned nothing and routes on nothing else)."""
        self._start_online(vectors)
        tasks = self._tasks
        if isinstance(tasks, OnlineClusters):
            tasks.observe(vectors, texts)

    def _start_online(self, vectors: FloatArray) -> None:
        """Route on online clusters from now on if they are wanted: no policy or
        task model yet, and the router's own memory (``online_clusters``)."""
        settings = self.settings
        with self._lock:
            if (
                self._policy is None
                and self._tasks is None
                and settings.online_clusters is not False
                and settings.store is None
            ):
                self._tasks = OnlineClusters(int(vectors.shape[1]))

    def _clusters_wanted(self, n_prompts: int) -> bool:
        """Whether a fit without labels learns automatic tasks: enabled, enough
        prompts, and nothing learned or awaiting feedback on the current features
        (online clusters of the few prompts seen so far give way)."""
        return (
            self.settings.auto_tasks
            and (self._tasks is None or isinstance(self._tasks, OnlineClusters))
            and cluster_count(n_prompts) >= 2
            and self._unlearned()
        )

    def _unlearned(self) -> bool:
        """Nothing learned from feedback and nothing awaiting it."""
        policy = self._policy
        return (policy is None or int(policy.counts.sum()) == 0) and not len(
            self.pending
        )

    def _check_fresh(self) -> None:
        """Refuse to learn task labels once anything was learned or is awaiting
        feedback, since they change what the policy's statistics mean."""
        if self._policy is not None and self._policy.counts.sum() > 0:
            raise ValueError(
                "tasks: this router has already learned from rewards; a task "
                "classifier can only be learned by the first fit (fit without "
                "tasks to add data, or start a new router)"
            )
        if len(self.pending):
            raise ValueError(
                f"tasks: {len(self.pending)} routed calls still await feedback on "
                "the current features; give their feedback first, or fit with tasks "
                "before routing"
            )

    def _use_tasks(self, tasks: TaskModel | None) -> None:
        """Route on ``tasks`` (None: the bare embedding) from now on; the policy
        is created again with the features' dimension."""
        with self._lock:
            self._tasks = tasks
            self._policy = None

    def _policy_for(
        self,
        contexts: FloatArray,
        arms: Sequence[str] | None = None,
        *,
        fresh: bool = True,
    ) -> LinUCBPolicy:
        """The policy, created on first use with the contexts' dimension (and
        ``arms``, default every child); a ``fresh`` one on online clusters starts
        from the optimistic prior."""
        with self._lock:
            if self._policy is None:
                settings = self.settings
                live = isinstance(self._tasks, OnlineClusters)
                alpha = settings.alpha
                if alpha is None:
                    alpha = LIVE_ALPHA if live else FITTED_ALPHA
                self._policy = LinUCBPolicy(
                    settings.model_names if arms is None else arms,
                    contexts.shape[1],
                    alpha=alpha,
                    ridge=settings.ridge,
                    decay=settings.decay,
                    store=settings.store,
                    namespace=namespace(
                        self.name,
                        settings.embeddings,
                        tasks=None
                        if self._tasks is None
                        else self._tasks.fingerprint(),
                    ),
                )
                if live and fresh:
                    add_live_prior(self._policy)
            return self._policy

    def _require_policy(self) -> LinUCBPolicy:
        if self._policy is None:
            raise ValueError("router: no decision has been made yet")
        return self._policy

    def _trained_policy(self) -> LinUCBPolicy:
        """The policy; planning on one that learned nothing is refused."""
        policy = self._policy
        if policy is None or int(policy.counts.sum()) == 0:
            raise ValueError(
                "router: the policy has not learned from any outcome yet, so every "
                "predicted score is 0; warm-start it or record feedback before "
                "planning"
            )
        return policy


def add_live_prior(policy: LinUCBPolicy) -> None:
    """Start a live-learning policy optimistic: one pseudo-outcome of
    ``LIVE_PRIOR_SCORE`` per child on the bias feature (contexts end in 1)."""
    prior = np.full(policy.n_arms, LIVE_PRIOR_SCORE)
    policy.add_prior(np.eye(policy.dim)[-1], prior, 1.0)


def check_settings(settings: EngineSettings) -> None:
    """Refuse costs, learning settings or prices the engine cannot work with."""
    check_costs(settings.costs, settings.model_names)
    check_cost_weight(settings.cost_weight)
    if settings.alpha is not None and (
        not math.isfinite(settings.alpha) or settings.alpha < 0
    ):
        raise ValueError(f"alpha: must be finite and >= 0, got {settings.alpha}")
    if settings.online_clusters and settings.store is not None:
        raise ValueError(
            "online_clusters: not available with a shared store (each worker would "
            "cluster the prompts it saw, and their statistics would not agree); "
            "fit the router on recorded outcomes instead, or leave it None"
        )
    if not math.isfinite(settings.ridge) or settings.ridge <= 0:
        raise ValueError(f"ridge: must be > 0, got {settings.ridge}")
    check_decay(settings.decay)
    if settings.budget is not None:
        check_budget(
            settings.budget,
            normalized_costs(settings.costs, settings.model_names).values(),
        )
    if settings.embedding_cache_size < 0:
        raise ValueError(
            f"embedding_cache_size: must be >= 0, got {settings.embedding_cache_size}"
        )
    if settings.cost_mode == "usage":
        if settings.prices is None:
            raise ValueError('prices: required with cost_mode="usage"')
        check_reference(
            check_prices(settings.prices, settings.model_names),
            settings.reference_tokens,
        )
    elif settings.prices is not None:
        raise ValueError('prices: only used with cost_mode="usage"')


def check_score(score: float) -> float:
    """``score`` as a float in [0, 1]; TypeError or ValueError otherwise."""
    if isinstance(score, bool) or not isinstance(score, (int, float, np.number)):
        raise TypeError(f"score: expected a number in [0, 1], got {score!r}")
    value = float(score)
    if not 0.0 <= value <= 1.0:  # also refuses NaN
        raise ValueError(f"score: must be in [0, 1], got {score!r}")
    return value


def _key(text: str) -> str:
    """Cache key of a query text: its sha256, so the cache holds no raw text."""
    return hashlib.sha256(text.encode("utf-8")).hexdigest()
