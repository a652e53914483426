"""Each child's score per task or cluster, for the report: predicted by the policy
where a fair context stands for the task, else observed in the decision log."""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from langchain_metallm.core.auto_tasks import STYLE_WEIGHT, QueryClusters
from langchain_metallm.core.decision_log import LoggedDecision
from langchain_metallm.core.features import EMBEDDING_SCALE, TaskClassifier, TaskModel
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.policy import LinUCBPolicy

ALL_QUERIES = "all queries"
"""The one row of the task table when the router routes on no tasks."""
BEFORE_CLUSTERS = "before any cluster"
"""The row of logged calls routed before a router's online clusters existed."""


@dataclass(frozen=True)
class TaskTable:
    """Each child's score per task: ``values[t][j]`` for task ``t`` and child ``j``
    (NaN: none), with ``weights[t][j]`` the outcomes behind it."""

    kind: str
    """``"online clusters"``, ``"clusters"``, ``"task classifier"`` or ``"none"``."""
    basis: str
    """``"predicted"`` (the policy now) or ``"observed"`` (mean score in the log)."""
    note: str
    """How the values were computed, for the reader."""
    tasks: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    weights: tuple[tuple[float, ...], ...]
    """Predicted: outcomes learned on the task (the diagonal of ``A``, priors
    included); observed: scored calls."""
    observed: tuple[tuple[float, ...], ...]
    """Mean observed score of the task's logged calls per child (NaN: none)."""
    scored: tuple[tuple[int, ...], ...]
    """Scored logged calls per task and child."""
    decided: tuple[tuple[float, ...], ...]
    """Mean ``Decision.predicted`` per task and child when its calls were routed."""
    calls: tuple[int, ...]
    """Logged calls routed as each task."""
    predicted: tuple[bool, ...]
    """Whether each row is predicted (else observed: a task of older calls, routed
    before finer clusters existed)."""


def task_table(
    policy: LinUCBPolicy | None,
    tasks: TaskModel | None,
    records: Sequence[LoggedDecision],
    children: Sequence[str],
) -> TaskTable:
    """Each child's predicted score per task where a fair context exists (cluster
    centroids, online cluster slots), else its mean observed score in the log."""
    kind = (
        "none"
        if tasks is None
        else "online clusters"
        if isinstance(tasks, OnlineClusters)
        else "task classifier"
        if isinstance(tasks, TaskClassifier)
        else "clusters"
    )
    contexts = None if policy is None else _task_contexts(tasks, policy.dim)
    if policy is None or contexts is None:
        note = _why_observed(policy, tasks)
        return _table(kind, "observed", note, _by_task(records, children))
    names, contexts_of_tasks, slots, note = contexts
    prediction = policy.predict(contexts_of_tasks)[0]
    diagonal = np.stack([np.diagonal(a) for a in policy.A])  # (arms, dim)
    arms = list(policy.arms)
    values, weights = [], []
    for t in range(len(names)):
        values.append(
            tuple(
                float(prediction[t, arms.index(c)]) if c in arms else math.nan
                for c in children
            )
        )
        weights.append(
            tuple(
                max(float(diagonal[arms.index(c), slots[t]]) - policy.ridge, 0.0)
                if c in arms
                else math.nan
                for c in children
            )
        )
    unlabelled = ALL_QUERIES if names == (ALL_QUERIES,) else BEFORE_CLUSTERS
    log = _by_task(records, children, names, unlabelled)
    if any(t not in names for t in log.calls):  # older contexts' tasks
        note += (
            " Rows in italics hold calls routed before the current clusters "
            "existed: their observed mean score, n = scored calls."
        )
    return _table(kind, "predicted", note, log, names, values, weights)


def mean(values: Sequence[float]) -> float:
    """The mean of ``values``, NaN for none (a blank cell, not an error)."""
    return float(sum(values) / len(values)) if values else math.nan


def _task_contexts(
    tasks: TaskModel | None, dim: int
) -> tuple[tuple[str, ...], np.ndarray[Any, Any], list[int], str] | None:
    """Per task: its name, context and outcome slot, and how the contexts were
    built; None when no fair context exists (bare embedding, task classifier)."""
    if isinstance(tasks, OnlineClusters):
        return _online_contexts(tasks, dim)
    if isinstance(tasks, QueryClusters):
        k, e = len(tasks.tasks), tasks.embedding_dim
        if dim != e + k + 1:
            return None
        rows = np.zeros((k, dim))
        rows[:, :e] = EMBEDDING_SCALE * tasks.centroids[:, :e]
        rows[np.arange(k), e + np.arange(k)] = 1.0
        rows[:, -1] = 1.0
        note = (
            "Predicted by the policy now on each cluster's context: its centroid "
            "(the mean embedding of its training queries), its one-hot and the bias; "
            "the model is linear, so this is the mean prediction over those queries."
        )
        return tasks.tasks, rows, list(e + np.arange(k)), note
    return None


def _online_contexts(
    tasks: OnlineClusters, dim: int
) -> tuple[tuple[str, ...], np.ndarray[Any, Any], list[int], str] | None:
    """Contexts of the finest fitted stage's clusters (their slots, their coarser
    clusters' slots, the bias); before any stage, one row: the bias alone."""
    if dim != tasks.dim:
        return None
    fitted = tasks.fitted
    starts = np.cumsum([0, *(k for k, _ in tasks.stages)])
    finest = max((s for s, c in enumerate(fitted) if c is not None), default=None)
    if finest is None:
        row = np.zeros((1, dim))
        row[0, -1] = 1.0
        note = (
            "No clusters yet (the first stage is fitted after "
            f"{tasks.stages[0][1]} prompts): one row, the policy's prediction on "
            "the bias, which every call shares."
        )
        return (ALL_QUERIES,), row, [dim - 1], note
    clusters = fitted[finest]
    assert clusters is not None
    e = tasks.embedding_dim
    emb = clusters.centroids[:, :e]
    style = (
        clusters.centroids[:, e:] / STYLE_WEIGHT * clusters.style_scale
        + clusters.style_mean
    )
    k = len(emb)
    rows = np.zeros((k, dim))
    rows[np.arange(k), starts[finest] + np.arange(k)] = 1.0
    for s in range(finest):
        coarse = fitted[s]
        if coarse is not None:
            rows[np.arange(k), starts[s] + coarse.assign_styles(emb, style)] = 1.0
    rows[:, -1] = 1.0
    names = tasks.tasks[starts[finest] : starts[finest] + k]
    note = (
        f"Predicted by the policy now on each online cluster of stage {finest}: "
        "its slot, the slot of the coarser cluster its centroid falls in, and the "
        "bias (what a query of that cluster is routed on)."
    )
    return names, rows, list(starts[finest] + np.arange(k)), note


def _why_observed(policy: LinUCBPolicy | None, tasks: TaskModel | None) -> str:
    """The reader's note on why the table shows observed scores only."""
    if policy is None:
        return "The policy does not exist yet (no embedded call): observed scores only."
    if tasks is None:
        return (
            "The router routes on the bare embedding (no tasks), and no context "
            "stands for all queries fairly: the observed mean score per child over "
            "the logged calls instead."
        )
    return (
        f"A {type(tasks).__name__} holds no mean embedding per task, so no fair "
        "context stands for a task: the observed mean score per task and child "
        "over the logged calls instead."
    )


@dataclass(frozen=True)
class _ByTask:
    """The log per task: per child its mean observed score, scored calls and mean
    prediction at decision time; and the calls routed as it."""

    observed: dict[str, tuple[float, ...]]
    scored: dict[str, tuple[int, ...]]
    decided: dict[str, tuple[float, ...]]
    calls: dict[str, int]


def _by_task(
    records: Sequence[LoggedDecision],
    children: Sequence[str],
    order: Sequence[str] = (),
    unlabelled: str = ALL_QUERIES,
) -> _ByTask:
    """Each task in ``order``, then the log's others (no task: ``unlabelled``);
    scores of answers and explored calls alike."""
    scores: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    predicted: dict[str, dict[str, list[float]]] = defaultdict(
        lambda: defaultdict(list)
    )
    calls: Counter[str] = Counter()
    for logged in records:
        task = logged.decision.task or unlabelled
        calls[task] += 1
        for child, score in logged.scores.items():
            scores[task][child].append(score)
        for child, value in logged.decision.predicted.items():
            if math.isfinite(value):
                predicted[task][child].append(value)
    names = [*order, *sorted(t for t in calls if t not in order)]
    return _ByTask(
        observed={t: tuple(mean(scores[t][c]) for c in children) for t in names},
        scored={t: tuple(len(scores[t][c]) for c in children) for t in names},
        decided={t: tuple(mean(predicted[t][c]) for c in children) for t in names},
        calls={t: calls.get(t, 0) for t in names},
    )


def _table(
    kind: str,
    basis: str,
    note: str,
    log: _ByTask,
    names: Sequence[str] = (),
    values: Sequence[tuple[float, ...]] = (),
    weights: Sequence[tuple[float, ...]] = (),
) -> TaskTable:
    """The predicted rows ``names`` (``values``, ``weights``), then each other task
    of the ``log`` with its observed mean score and scored calls."""
    extra = tuple(t for t in log.calls if t not in names)
    rows = (*names, *extra)
    return TaskTable(
        kind=kind,
        basis=basis,
        note=note,
        tasks=rows,
        values=(*values, *(log.observed[t] for t in extra)),
        weights=(*weights, *(tuple(map(float, log.scored[t])) for t in extra)),
        observed=tuple(log.observed[t] for t in rows),
        scored=tuple(log.scored[t] for t in rows),
        decided=tuple(log.decided[t] for t in rows),
        calls=tuple(log.calls[t] for t in rows),
        predicted=(*(True for _ in names), *(False for _ in extra)),
    )
