"""``RouterCore``: one router's state and every routing choice, without LangChain.

It owns the settings (``settings``), the children (``catalogue``), the learner
(``LinUCBPolicy`` over contexts from ``features``, with online clusters for a
router never fitted), the budget pacer, the decisions awaiting feedback and the
query vectors. Copies and configured variants of a chat model share one core.

One call: query text -> ``context`` (vector cache -> features; None during an
embedder outage) -> ``decide`` -> ``Decision`` (``decision.rank``, every ordering
rule) -> the adapter calls children in ``Decision.order`` -> ``register`` (the
answer's cost -> pacer -> pending decisions) -> metadata.
One score: run id -> ``learn`` -> the pending decision -> the child's current
generation checked -> ``LinUCBPolicy.update``. Nothing else reaches the learner.
"""

from __future__ import annotations

import asyncio
import math
import threading
import warnings
from collections import deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import fields as dataclass_fields
from dataclasses import replace
from typing import Any

import numpy as np

from langchain_metallm.core.auto_tasks import QueryClusters, cluster_count
from langchain_metallm.core.calibration import CostWeightCalibration, calibrate
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.checks import check_number, check_score
from langchain_metallm.core.costs import Usage, cost_vector
from langchain_metallm.core.decision import Decision, estimates_of, rank
from langchain_metallm.core.decision_log import DecisionLog
from langchain_metallm.core.evaluation import Evaluation, evaluate
from langchain_metallm.core.exploration import Exploration
from langchain_metallm.core.features import (
    TaskClassifier,
    TaskModel,
    check_task_labels,
    embedding_dim,
    query_features,
    task_of,
)
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.outcomes import Scores, check_prompts, score_matrix
from langchain_metallm.core.pacing import BudgetPacer, weight_for_budget
from langchain_metallm.core.pareto import ParetoFront, policy_scores
from langchain_metallm.core.pending import (
    FeedbackError,
    PendingDecision,
    PendingDecisions,
)
from langchain_metallm.core.persistence import RouterState, StrPath, save_router
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.settings import MUTABLE, Settings
from langchain_metallm.core.stores.base import PolicyStore, namespace
from langchain_metallm.core.vectors import (
    BadEmbeddingsError,
    Embedder,
    FloatArray,
    VectorCache,
)

PRIOR_OUTCOMES = 20
"""Pseudo-outcomes a newly added child starts with: as good as the best child
on recent contexts (``LinUCBPolicy.add_arm``)."""
FITTED_ALPHA = 0.1
"""Exploration bonus of a policy created by ``fit`` (``alpha=None``)."""
LIVE_ALPHA = 0.5
"""Exploration bonus of a policy learning from live feedback alone (``alpha=None``):
0.1 is too small next to the score gaps and locks onto early winners (issue 16)."""
LIVE_PRIOR_SCORE = 1.0
"""Optimistic prior of each child of a live-learning router: one pseudo-outcome
of this score on the bias, so none is written off after a few unlucky calls."""
REFERENCE_CONTEXTS = 256
"""Recent contexts kept to start a budget's cost weight where it will hold."""
PACER_WARMUP = 32
"""Contexts seen before a budget set without any is started from them."""
NO_CONTEXT = (
    "could not be embedded (the embedder failed), so there is no context to learn from"
)
"""Why feedback on a call routed without an embedding is refused."""


class RouterCore:
    """Routing and learning for one router (see the module docstring)."""

    def __init__(
        self,
        *,
        name: str,
        settings: Settings,
        catalogue: Catalogue,
        embeddings: Embedder,
        store: PolicyStore | None = None,
    ) -> None:
        self.name = name
        self.settings = settings
        self.catalogue = catalogue
        self.embeddings = embeddings
        self.store = store
        self.pending = PendingDecisions(settings.max_pending, settings.pending_ttl)
        self.log = DecisionLog(settings.decision_log_size)
        self.exploration = Exploration()
        self.pacer: BudgetPacer | None = None
        self._vectors = VectorCache(embeddings, settings.embedding_cache_size)
        self._policy: LinUCBPolicy | None = None
        self._tasks: TaskModel | None = None
        self._reference: deque[FloatArray] = deque(maxlen=REFERENCE_CONTEXTS)
        self._lock = threading.RLock()
        self._warned_outage = False
        self._listeners: list[Callable[[str, Any], None]] = []
        if settings.budget is not None:
            self._start_pacer(catalogue.check_budget(settings.budget), None)

    @classmethod
    def build(
        cls,
        name: str,
        children: Sequence[str],
        fields: Mapping[str, Any],
        embeddings: Embedder,
        store: PolicyStore | None,
    ) -> RouterCore:
        """The core of a router with ``children`` and these field values
        (``costs``, ``cost_mode``, ``prices``, ``reference_tokens``,
        ``default_model``, ``shadow`` and every ``Settings`` field), each
        checked once here."""
        costs = fields["costs"]
        missing = sorted(set(children) - set(costs))
        unknown = sorted(set(costs) - set(children))
        if missing or unknown:
            raise ValueError(f"costs: missing for {missing}, unknown names {unknown}")
        catalogue = Catalogue.build(
            {name: costs[name] for name in children},
            cost_mode=fields["cost_mode"],
            prices=fields["prices"],
            reference_tokens=fields["reference_tokens"],
            default=fields["default_model"],
        ).with_shadow(fields["shadow"])
        settings = Settings(
            **{f.name: fields[f.name] for f in dataclass_fields(Settings)}
        )
        return cls(
            name=name,
            settings=settings,
            catalogue=catalogue,
            embeddings=embeddings,
            store=store,
        )

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
    def cost_weight(self) -> float:
        """The cost weight decisions use now: the pacer's under a budget, else
        the fixed ``cost_weight``."""
        pacer = self.pacer
        return self.settings.cost_weight if pacer is None else pacer.weight

    # Settings and catalogue -------------------------------------------------------

    def on_change(self, listener: Callable[[str, Any], None]) -> None:
        """Call ``listener(name, value)`` after each change of a setting or of
        the catalogue (``"costs"``, ``"prices"``, ``"default_model"``)."""
        self._listeners.append(listener)

    def set(self, name: str, value: Any) -> None:
        """Change setting ``name`` (one of ``settings.MUTABLE``) on the running
        router, checked first; it applies from the next call."""
        if name not in MUTABLE:
            raise ValueError(
                f"{name}: fixed when the router is built (it defines what the "
                "learned statistics mean); build a new router or save() and "
                "load() with it"
            )
        with self._lock:
            settings = self.settings.changed(**{name: value})
            value = getattr(settings, name)
            if name == "budget":
                checked = None if value is None else self.catalogue.check_budget(value)
                self._start_pacer(checked, self.pacer)
            self.settings = settings
            policy = self._policy
            if policy is not None and name == "decay":
                policy.decay = value
            if policy is not None and name == "alpha":
                policy.alpha = self._alpha(isinstance(self._tasks, OnlineClusters))
        self._notify(name, value)

    def set_catalogue(self, catalogue: Catalogue) -> None:
        """Swap in ``catalogue`` (costs or default changed), if a budget stays
        feasible under it."""
        with self._lock:
            if self.pacer is not None:
                catalogue.check_budget(self.pacer.budget)
            self.catalogue = catalogue
        self._show(catalogue)

    def add_child(self, name: str, cost: object, price: Any = None) -> None:
        """Add child ``name`` on the live router, keeping every other child's
        statistics: it starts as good as the best child on recent contexts,
        seen ``PRIOR_OUTCOMES`` times, a prior its own outcomes outweigh, and
        explores wider meanwhile (a newcomer, ``decision.newcomer_alpha``)."""
        with self._lock:
            catalogue = self.catalogue.with_child(name, cost, price=price)
            if self.pacer is not None:
                catalogue.check_budget(self.pacer.budget)
            policy = self._policy
            if policy is not None:
                policy.add_arm(
                    name,
                    contexts=self._prior_contexts(policy.dim),
                    prior_outcomes=PRIOR_OUTCOMES,
                )
            self.catalogue = catalogue
        self._show(catalogue)

    def remove_child(self, name: str) -> None:
        """Remove child ``name`` and its statistics, keeping every other child's;
        feedback still pending for it is then refused."""
        with self._lock:
            catalogue = self.catalogue.without_child(name)
            if self.pacer is not None:
                catalogue.check_budget(self.pacer.budget)
            self.catalogue = catalogue
            if self._policy is not None and name in self._policy.arms:
                self._policy.remove_arm(name)
        self._show(catalogue)

    # One call ---------------------------------------------------------------------

    def context(self, text: str, *, learn: bool = True) -> FloatArray | None:
        """One call's context, or None when the embedder fails (an outage: the
        call is answered without one). ``learn=False`` (a preview) leaves the
        online clusters and reference contexts untouched."""
        try:
            vectors = self._vectors.vectors([text], self._vector_dim())
        except BadEmbeddingsError:
            raise
        except Exception as error:
            self._note_outage(error)
            return None
        return self._context_of(vectors, text, learn)

    async def acontext(self, text: str, *, learn: bool = True) -> FloatArray | None:
        """Async twin of ``context``."""
        try:
            vectors = await self._vectors.avectors([text], self._vector_dim())
        except BadEmbeddingsError:
            raise
        except Exception as error:
            self._note_outage(error)
            return None
        return self._context_of(vectors, text, learn)

    def vectors(self, texts: Sequence[str]) -> FloatArray:
        """Embeddings of ``texts`` (one embedder call for the uncached ones)."""
        return self._vectors.vectors(texts, self._vector_dim())

    async def avectors(self, texts: Sequence[str]) -> FloatArray:
        """Async twin of ``vectors``."""
        return await self._vectors.avectors(texts, self._vector_dim())

    def contexts(self, texts: Sequence[str]) -> FloatArray:
        """Contexts of ``texts`` (one embedder call for the uncached ones),
        without learning from them (planning, previews)."""
        return self.contexts_of(self.vectors(texts), texts)

    async def acontexts(self, texts: Sequence[str]) -> FloatArray:
        """Async twin of ``contexts``."""
        return self.contexts_of(await self.avectors(texts), texts)

    def contexts_of(self, vectors: FloatArray, texts: Sequence[str]) -> FloatArray:
        """Policy contexts of ``texts`` embedded as ``vectors``, without learning."""
        return query_features(vectors, self._tasks, texts)

    def decide(
        self,
        run_id: str,
        context: FloatArray | None,
        *,
        cost_weight: float | None = None,
        planned: str | None = None,
        sticky: str | None = None,
        cooling: Sequence[str] = (),
        query_hash: str | None = None,
    ) -> Decision:
        """The decision for one call (``decision.rank``): at ``cost_weight``
        if given, else the router's; ``planned`` and ``sticky`` name a child a
        plan or a tool loop already chose; ``cooling`` children go last. In
        shadow mode the incumbent answers; on a share ``explore_rate`` of calls
        with an embedding the others are to be called too (``exploration``)."""
        weight = (
            self.cost_weight
            if cost_weight is None
            else check_number("cost_weight", cost_weight, low=0.0)
        )
        catalogue = self.catalogue
        if context is None:
            return rank(
                run_id,
                catalogue,
                None,
                cost_weight=weight,
                fallback_to=catalogue.shadow or catalogue.default or self._best_mean(),
                cooling=cooling,
                query_hash=query_hash,
            )
        policy = self._policy_for(context[None])
        estimates = estimates_of(*policy.estimate(context), policy.alpha)
        decision = rank(
            run_id,
            catalogue,
            estimates,
            cost_weight=weight,
            planned=planned,
            sticky=sticky,
            shadow=catalogue.shadow,
            cooling=cooling,
            query_hash=query_hash,
        )
        settings = self.settings
        if settings.explore_rate == 0.0:
            return decision
        explored = self.exploration.draw(
            catalogue,
            decision.order[0],
            settings.explore_rate,
            settings.explore_budget,
        )
        return replace(
            decision, explored=explored, explore_probability=settings.explore_rate
        )

    def register(
        self,
        decision: Decision,
        answered: str,
        context: FloatArray | None,
        usage: Usage | None,
    ) -> Decision:
        """Account the answer of ``answered`` to ``decision`` (its cost, the
        pacer) and keep it for feedback; the completed record."""
        catalogue = self.catalogue
        cost = self._answer_cost(answered, usage, catalogue)
        if self.pacer is not None:
            self.pacer.observe(cost)
        task = None if context is None else task_of(context, self._tasks)
        done = decision.answered_by(answered, cost, task)
        self.log.add(done)
        if context is None:
            self.pending.refuse(decision.run_id, NO_CONTEXT)
        else:
            generation = catalogue.generations.get(answered, -1)
            self.pending.add(
                decision.run_id, PendingDecision(answered, generation, context, cost)
            )
        return done

    # One score --------------------------------------------------------------------

    def learn(self, run_id: str, score: float, *, strict: bool | None = None) -> float:
        """Learn ``score`` for the child that answered ``run_id``; the only way a
        score reaches the learner. Refused feedback raises ``FeedbackError``, or
        with ``strict=False`` warns and returns NaN."""
        checked = check_score(score)
        strict = self.settings.strict_feedback if strict is None else strict
        try:
            decision = self.pending.take(run_id)
            self._check_current(run_id, decision)
        except FeedbackError as error:
            if strict:
                raise
            warnings.warn(str(error), stacklevel=3)
            return math.nan
        try:
            self._require_policy().update(decision.child, decision.context, checked)
        except Exception:
            self.pending.restore(run_id, decision)
            raise
        self.log.observe(run_id, decision.child, score=checked)
        return checked

    def learn_explored(
        self,
        run_id: str,
        child: str,
        context: FloatArray,
        score: float,
        usage: Usage | None,
    ) -> float:
        """Learn the score of ``child``'s answer to call ``run_id``, asked in the
        background (exploration), and log it with its cost; returns the score.
        A child removed meanwhile is skipped (NaN)."""
        checked = check_score(score)
        catalogue = self.catalogue
        if child not in catalogue:
            return math.nan
        cost = self._answer_cost(child, usage, catalogue)
        self._require_policy().update(child, context, checked)
        self.exploration.answered(cost)
        self.log.observe(run_id, child, score=checked, cost=cost)
        return checked

    def explore_failed(self, run_id: str, child: str, error: str) -> None:
        """Count and log that ``child``'s background call or its scorer failed."""
        self.exploration.failed()
        self.log.observe(run_id, child, error=error)

    def evaluate(
        self,
        *,
        cost_weights: Sequence[float] | None = None,
        budgets: Sequence[float] | None = None,
        decisions: DecisionLog | None = None,
        estimator: str = "dr",
    ) -> Evaluation:
        """What routing live would give at each setting, estimated from the
        decision log (``evaluation.evaluate``)."""
        log = self.log if decisions is None else decisions
        return evaluate(
            log.records(),
            self.catalogue.normalized,
            cost_weights=cost_weights,
            budgets=budgets,
            estimator=estimator,
        )

    async def alearn(
        self, run_id: str, score: float, *, strict: bool | None = None
    ) -> float:
        """Async twin of ``learn``: with a shared store its write runs in a
        worker thread, so the event loop never waits on store I/O."""
        if self.store is None:
            return self.learn(run_id, score, strict=strict)
        return await asyncio.to_thread(self.learn, run_id, score, strict=strict)

    # Learning from recorded outcomes ----------------------------------------------

    def fit(
        self, prompts: Sequence[str], scores: Scores, tasks: Sequence[str] | None
    ) -> None:
        """Warm start: the policy learns every observed score (a newcomer with
        scores here is one no longer). A first fit without labels learns
        automatic tasks (``auto_tasks``) if enabled."""
        names = list(self.catalogue.names)
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
        observed = [names[j] for j in np.flatnonzero(np.isfinite(matrix).any(axis=0))]
        with self._lock:  # read and swap as one: a child added meanwhile stays
            self.catalogue = self.catalogue.graduated(observed)
        sample = np.random.default_rng(0).permutation(len(contexts))
        self._reference.extend(contexts[sample[:REFERENCE_CONTEXTS]])
        if self.pacer is not None:
            self._start_pacer(self.pacer.budget, self.pacer)

    def calibrate_cost_weight(
        self,
        prompts: Sequence[str],
        scores: Scores,
        *,
        budget: float,
        cost_weights: Sequence[float] | None,
    ) -> CostWeightCalibration:
        """The cost weight whose greedy routing of validation data is most
        accurate within ``budget`` (``calibration.calibrate``); it is then set."""
        catalogue = self.catalogue
        checked = catalogue.check_budget(budget)
        texts = check_prompts(prompts)
        matrix = score_matrix(scores, list(catalogue.names), len(texts), complete=True)
        result = calibrate(
            self._policy,
            self.contexts(texts),
            matrix,
            catalogue.normalized,
            budget=checked,
            cost_weights=cost_weights,
        )
        self.set("cost_weight", result.cost_weight)
        return result

    # Planning a batch -------------------------------------------------------------

    def pareto_front(
        self, contexts: FloatArray, *, robust: bool
    ) -> tuple[ParetoFront, FloatArray]:
        """The batch's front (total normalised cost vs predicted accuracy) and the
        predicted scores it was built from."""
        policy = self._trained_policy()
        names = tuple(policy.arms)
        cost = cost_vector(names, self.catalogue.normalized)
        scores = policy_scores(policy, contexts, robust=robust)
        return ParetoFront.build(scores=scores, costs=cost, models=names), scores

    # Saving -----------------------------------------------------------------------

    def save(self, path: StrPath) -> None:
        """Save what was learned and what resuming needs (settings, catalogue,
        the pacer's level and credit); a fresh router embeds one probe text to
        learn the dimension and saves an untrained policy."""
        policy = self._policy
        if policy is None:
            probe = ["metallm dimension probe"]
            vectors = self.vectors(probe)
            self._start_online(vectors)
            policy = self._policy_for(self.contexts_of(vectors, probe))
        pacer = self.pacer
        save_router(
            path,
            policy,
            catalogue=self.catalogue,
            settings={
                "cost_weight": self.settings.cost_weight,
                "decay": self.settings.decay,
                "alpha": self.settings.alpha,
                "budget": None if pacer is None else pacer.budget,
                "pacer_weight": None if pacer is None else pacer.weight,
                "pacer_level": None if pacer is None else pacer.level,
            },
            embeddings=self.embeddings,
            tasks=self._tasks,
        )

    def restore(self, state: RouterState) -> None:
        """Continue from a loaded save (replacing what a shared store holds): the
        saved statistics of the children still here, new ones newcomers,
        and the pacer where it was. Online clusters join a shared store's fleet:
        their stages are published there (or those it holds adopted), and a
        store holding other clusters is refused before anything changes."""
        tasks = state.tasks
        if isinstance(tasks, OnlineClusters):
            tasks.background = True
            if self.store is not None:
                tasks.share(
                    self.store,
                    namespace(self.name, self.embeddings, tasks=tasks.fingerprint()),
                )
                tasks.publish_fitted()
        self._tasks = state.tasks
        saved = list(state.policy.arms)
        names = self.catalogue.names
        newcomers = [
            *state.settings.get("newcomers", ()),
            *(name for name in names if name not in saved),
        ]
        catalogue = self.catalogue
        self.set_catalogue(
            catalogue.resumed(
                unit=state.settings.get("unit", catalogue.unit),
                dollar_unit=state.settings.get("dollar_unit", catalogue.dollar_unit),
                newcomers=newcomers,
            )
        )
        kept = [name for name in names if name in saved]
        rows = [saved.index(name) for name in kept]
        policy = self._policy_for(
            np.empty((0, state.policy.dim)), arms=kept, fresh=False
        )
        policy.alpha = state.policy.alpha
        policy.load_statistics(*(a[rows] for a in state.policy.statistics()))
        for name in names:
            if name not in saved:
                policy.add_arm(
                    name,
                    contexts=self._prior_contexts(policy.dim),
                    prior_outcomes=PRIOR_OUTCOMES,
                )
        level = state.settings.get("pacer_level", state.settings.get("pacer_weight"))
        if self.pacer is not None and level is not None:
            self.pacer.resume(float(level))

    # Internals --------------------------------------------------------------------

    def _fleet_prompts(self) -> int:
        """Prompts the fleet sharing this router's store has learned from (0
        without a store): online cluster stages are due by the fleet's count."""
        policy = self._policy
        return 0 if self.store is None or policy is None else int(policy.counts.sum())

    def _prior_contexts(self, dim: int) -> FloatArray:
        """Contexts a new child's prior is spread over: recent ones, else the
        bias alone (a restart keeps none)."""
        recent = [c for c in self._reference if len(c) == dim]
        return np.stack(recent) if recent else np.eye(dim)[-1:]

    def _notify(self, name: str, value: Any) -> None:
        for listener in list(self._listeners):
            listener(name, value)

    def _show(self, catalogue: Catalogue) -> None:
        """Tell the listeners the catalogue's costs, prices and default."""
        prices = catalogue.prices
        self._notify("costs", dict(catalogue.costs))
        self._notify("prices", None if prices is None else dict(prices))
        self._notify("default_model", catalogue.default)
        self._notify("shadow", catalogue.shadow)

    def _context_of(self, vectors: FloatArray, text: str, learn: bool) -> FloatArray:
        if learn:
            self._start_online(vectors)
            tasks = self._tasks
            if isinstance(tasks, OnlineClusters):
                tasks.observe(vectors, [text], self._fleet_prompts())
        context: FloatArray = self.contexts_of(vectors, [text])[0]
        if learn:
            self._reference.append(context)
            pacer = self.pacer
            if (
                pacer is not None
                and not pacer.started
                and len(self._reference) >= PACER_WARMUP
            ):
                self._start_pacer(pacer.budget, pacer)
        return context

    def _vector_dim(self) -> int | None:
        """The embedding dimension this router routes on, once known."""
        policy, tasks = self._policy, self._tasks
        if policy is not None:
            return embedding_dim(policy.dim, tasks)
        return None if tasks is None else tasks.embedding_dim

    def _start_pacer(self, budget: float | None, pacer: BudgetPacer | None) -> None:
        """Pace to ``budget`` (None: stop pacing), starting the weight where the
        budget holds on the reference contexts (``pacing.weight_for_budget`` on
        the decision values), or keeping ``pacer``'s weight if there are none."""
        if budget is None:
            self.pacer = None
            return
        weight = self.settings.cost_weight if pacer is None else pacer.weight
        started = False
        policy = self._policy
        if policy is not None and self._reference:
            contexts = np.stack(list(self._reference))
            if contexts.shape[1] == policy.dim:
                mean, width = policy.predict(contexts)
                costs = cost_vector(policy.arms, self.catalogue.normalized)
                weight = weight_for_budget(
                    mean + policy.alpha * width, costs, budget, high=costs.max()
                )
                started = True
        self.pacer = BudgetPacer(budget, weight=weight, started=started)
        if self.store is not None:
            self.pacer.share(self.store, namespace(self.name, self.embeddings))

    def _best_mean(self) -> str | None:
        policy = self._policy
        best = None if policy is None else policy.best_mean()
        return best if best in self.catalogue else None

    def _answer_cost(
        self, answered: str, usage: Usage | None, catalogue: Catalogue
    ) -> float:
        """One answer's normalised cost (``Catalogue.answer_cost``); one its
        tokens cannot price costs its child's fixed cost, with a warning (or
        the priciest child's, if the child was removed)."""
        cost = catalogue.answer_cost(answered, usage) if answered in catalogue else None
        if cost is not None:
            return cost
        if answered in catalogue:
            warnings.warn(
                f"cost_mode='usage': {answered!r} reported no token usage (streaming "
                "ChatOpenAI needs stream_usage=True); its fixed cost is used",
                stacklevel=4,
            )
            return catalogue.cost(answered)
        return max(catalogue.normalized.values())

    def _check_current(self, run_id: str, decision: PendingDecision) -> None:
        """Refuse feedback for a child removed (or removed and added again)
        since it answered; the decision is closed either way."""
        generation = self.catalogue.generations.get(decision.child)
        if generation != decision.generation:
            self.pending.count_refused()
            raise FeedbackError(
                f"run_id {run_id}: its child {decision.child!r} was removed from the "
                "router since it answered; feedback not applied"
            )

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

    def _start_online(self, vectors: FloatArray) -> None:
        """Route on online clusters from now on if they are wanted: no policy or
        task model yet (``online_clusters`` not False). Stages are fitted in the
        background; with a shared store the fleet agrees on them there."""
        with self._lock:
            if (
                self._policy is None
                and self._tasks is None
                and self.settings.online_clusters is not False
            ):
                tasks = OnlineClusters(int(vectors.shape[1]), background=True)
                if self.store is not None:
                    tasks.share(
                        self.store,
                        namespace(
                            self.name, self.embeddings, tasks=tasks.fingerprint()
                        ),
                    )
                self._tasks = tasks

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
            self._reference.clear()

    def _alpha(self, live: bool) -> float:
        alpha = self.settings.alpha
        if alpha is None:
            return LIVE_ALPHA if live else FITTED_ALPHA
        return alpha

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
        policy = self._policy
        if policy is not None:
            return policy
        with self._lock:
            if self._policy is None:
                live = isinstance(self._tasks, OnlineClusters)
                self._policy = LinUCBPolicy(
                    self.catalogue.names if arms is None else arms,
                    contexts.shape[1],
                    alpha=self._alpha(live),
                    ridge=self.settings.ridge,
                    decay=self.settings.decay,
                    store=self.store,
                    namespace=namespace(
                        self.name,
                        self.embeddings,
                        tasks=None
                        if self._tasks is None
                        else self._tasks.fingerprint(),
                    ),
                )
                if live and fresh and self._policy.created:  # once per namespace
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
    ``LIVE_PRIOR_SCORE`` per child on the bias feature (contexts end in 1).
    The router adds it once per namespace: with a shared store, only the worker
    whose policy created the namespace does."""
    prior = np.full(policy.n_arms, LIVE_PRIOR_SCORE)
    policy.add_prior(np.eye(policy.dim)[-1], prior, 1.0)
