"""What a router learned: one self-contained HTML report, and a one-screen summary.

``router.report(path)``, ``router.summary()`` and a notebook's view of a router
(``RouterBase``) call this module; ``metallm-report`` (``report_cli``) reads a save.
``report_data`` reads a live router (its core, ``stats()`` and decision log);
``saved_report_data`` reads a save (``MetaLLMRouterChatModel.save``) and a decision
log written by ``DecisionLog.to_jsonl``. Both give a ``ReportData`` of plain values;
``render_html`` draws it with inline SVG built here (no plotting library, no script,
no stylesheet, font or picture fetched: the file opens offline in any browser), and
``summary_text`` as a few lines of text. Neither reads prompt text: the log holds
only hashes of it, and the report shows none of those either.

The report shows, over the logged calls: each child's share of calls; the spend per
call against the budget and the cost weight that paced it; the feedback received
and each child's observed scores; each child's predicted score per task or
cluster with its learned outcomes (or the observed scores per task where no fair
context can be built for a task); cooldowns, embedder outages and fallbacks; and
exploration. ``render_evaluation`` is the hook for counterfactual estimates (rows of
``core.evaluation.evaluate``): pass them as ``evaluation=`` to ``write_report``.

LangChain-free: it reads the core only (``report_cli`` is the command line).
"""

from __future__ import annotations

import html
import json
import math
import time
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from langchain_metallm.core.auto_tasks import STYLE_WEIGHT, QueryClusters
from langchain_metallm.core.decision_log import DecisionLog, LoggedDecision
from langchain_metallm.core.features import EMBEDDING_SCALE, TaskClassifier, TaskModel
from langchain_metallm.core.online_clusters import OnlineClusters
from langchain_metallm.core.persistence import StrPath, load_router
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.router import RouterCore

PALETTE = (
    "#4e79a7",
    "#f28e2b",
    "#e15759",
    "#76b7b2",
    "#59a14f",
    "#edc948",
    "#b07aa1",
    "#ff9da7",
    "#9c755f",
    "#86bcb6",
)
"""Each child's colour, in the children's order (repeated past ten children)."""
MAX_BINS = 60
"""Bars of a chart over the logged calls, at most."""
SCORE_BINS = 24
"""Bins of the observed-score chart (fewer: each needs scored calls)."""
STATS_LABELS = {
    "applied": "feedback applied",
    "refused": "feedback refused",
    "pending": "awaiting feedback now",
    "expired": "expired without feedback",
    "evicted": "evicted (pending table full)",
    "scorer_errors": "scorer errors",
    "embedding_failures": "embedder outages (calls)",
    "cooldowns": "cooldowns started",
    "cooling_down": "children cooling down now",
}
"""The router's ``stats()`` counters, in the order and words the report uses."""
ALL_QUERIES = "all queries"
"""The one row of the task table when the router routes on no tasks."""
BEFORE_CLUSTERS = "before any cluster"
"""The row of logged calls routed before a router's online clusters existed."""


# The data a report is drawn from -------------------------------------------------


@dataclass(frozen=True)
class TaskTable:
    """Each child's score per task or cluster: ``values[t][j]`` for task ``t`` and
    child ``j`` (NaN: none), with ``weights[t][j]`` the outcomes behind it."""

    kind: str
    """``"online clusters"``, ``"clusters"``, ``"task classifier"`` or ``"none"``."""
    basis: str
    """``"predicted"`` (the policy's prediction now) or ``"observed"`` (mean score
    of the task's calls in the log)."""
    note: str
    """How the values were computed, for the reader."""
    tasks: tuple[str, ...]
    values: tuple[tuple[float, ...], ...]
    weights: tuple[tuple[float, ...], ...]
    """Predicted: the outcomes the policy learned on that task (the diagonal of
    its ``A``, priors included, discounted under decay); observed: scored calls."""
    observed: tuple[tuple[float, ...], ...]
    """Mean observed score of the task's logged calls per child (NaN: none)."""
    scored: tuple[tuple[int, ...], ...]
    """Scored logged calls per task and child."""
    decided: tuple[tuple[float, ...], ...]
    """Mean predicted score per task and child when its logged calls were
    routed (``Decision.predicted``; NaN: none)."""
    calls: tuple[int, ...]
    """Logged calls routed as each task."""
    predicted: tuple[bool, ...]
    """Whether each row is the policy's prediction (else observed in the log:
    a task older calls were routed as, before finer clusters existed)."""


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as plain values (see the module docstring)."""

    name: str
    source: str
    """Where it was read: a live router, or a save and a log."""
    children: tuple[str, ...]
    costs: Mapping[str, float]
    """Each child's normalised fixed cost (NaN for a child only the log names)."""
    learned: Mapping[str, int]
    """Outcomes the policy learned per child (0 without a policy)."""
    mode: str
    cost_weight: float
    """The cost weight decisions use now."""
    budget: float | None
    settings: Mapping[str, Any]
    """Settings shown as they are (alpha, decay, exploration, ...)."""
    stats: Mapping[str, float] | None
    """The router's ``stats()`` counters (None from a save: they are not saved)."""
    records: tuple[LoggedDecision, ...]
    tasks: TaskTable
    created: float


def report_data(
    router: object, *, stats: Mapping[str, float] | None = None
) -> ReportData:
    """The report of a live router: a chat model (its ``core`` and ``stats()``)
    or a ``RouterCore`` (its feedback counters)."""
    core = router if isinstance(router, RouterCore) else getattr(router, "core", None)
    if not isinstance(core, RouterCore):
        raise TypeError(
            f"router: expected a MetaLLMRouterChatModel or RouterCore, got "
            f"{type(router).__name__}"
        )
    if stats is None:
        counters = getattr(router, "stats", None)
        stats = counters() if callable(counters) else core.pending.stats()
    catalogue, policy, pacer = core.catalogue, core.policy, core.pacer
    records = tuple(core.log.records())
    children = _children(catalogue.names, records)
    shadow = catalogue.shadow
    return ReportData(
        name=core.name,
        source="live router",
        children=children,
        costs={n: catalogue.normalized.get(n, math.nan) for n in children},
        learned=_learned(policy, children),
        mode="live" if shadow is None else f"shadow: {shadow} answers every call",
        cost_weight=core.cost_weight,
        budget=None if pacer is None else pacer.budget,
        settings={
            "cost weight setting": core.settings.cost_weight,
            "alpha": None if policy is None else policy.alpha,
            "decay": core.settings.decay,
            "explore rate": core.settings.explore_rate,
            "explore budget": core.settings.explore_budget,
            "default child": catalogue.default,
            "cost mode": catalogue.cost_mode,
            "decision log size": core.log.size,
        },
        stats=dict(stats),
        records=records,
        tasks=task_table(policy, core.task_classifier, records, children),
        created=time.time(),
    )


class SavedEmbedder:
    """Stands for the embedder a save names, so it is read without loading one."""

    def __init__(self, name: str) -> None:
        self.name = name


def saved_report_data(
    state_dir: StrPath, decisions: StrPath | DecisionLog | None = None
) -> ReportData:
    """The report of a save (``MetaLLMRouterChatModel.save``) and, if given, a
    decision log (``DecisionLog.to_jsonl``); no embedding model is loaded."""
    path = Path(state_dir)
    try:
        manifest = json.loads((path / "metallm.json").read_text(encoding="utf-8"))
        embedder = str(manifest["router"]["embedder"]["name"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a router save ({error})") from None
    state = load_router(path, SavedEmbedder(embedder))
    log = (
        decisions
        if isinstance(decisions, DecisionLog)
        else DecisionLog.read_jsonl(Path(decisions))
        if decisions is not None
        else None
    )
    records = () if log is None else tuple(log.records())
    policy, saved = state.policy, state.settings
    children = _children(policy.arms, records)
    unit = float(saved.get("unit") or max(state.costs.values()))
    budget = saved.get("budget")
    pacer_weight = saved.get("pacer_weight")
    last = records[-1].decision if records else None
    mode = (
        "unknown (a save does not record it; no decision log given)"
        if last is None
        else f"shadow: {last.answered} answers every call (from the decision log)"
        if last.shadow
        else "live (from the decision log)"
    )
    return ReportData(
        name=path.name,
        source=f"save {path}"
        + ("" if decisions is None else f" and decision log {decisions}"),
        children=children,
        costs={n: state.costs.get(n, math.nan) / unit for n in children},
        learned=_learned(policy, children),
        mode=mode,
        cost_weight=float(
            pacer_weight
            if budget is not None and pacer_weight is not None
            else state.cost_weight
        ),
        budget=None if budget is None else float(budget),
        settings={
            "cost weight setting": state.cost_weight,
            "alpha": policy.alpha,
            "decay": saved.get("decay"),
            "default child": saved.get("default"),
            "embedder": embedder,
        },
        stats=None,
        records=records,
        tasks=task_table(policy, state.tasks, records, children),
        created=time.time(),
    )


def _children(
    names: Iterable[str], records: Sequence[LoggedDecision]
) -> tuple[str, ...]:
    """``names``, then any other child the log names (removed since)."""
    found = dict.fromkeys(names)
    for logged in records:
        decision = logged.decision
        for name in (decision.answered, decision.chosen, *decision.explored):
            if name is not None:
                found.setdefault(name)
    return tuple(found)


def _learned(policy: LinUCBPolicy | None, children: Sequence[str]) -> dict[str, int]:
    counts = (
        {}
        if policy is None
        else dict(zip(policy.arms, policy.counts.tolist(), strict=True))
    )
    return {name: int(counts.get(name, 0)) for name in children}


# Per task ---------------------------------------------------------------------------


def task_table(
    policy: LinUCBPolicy | None,
    tasks: TaskModel | None,
    records: Sequence[LoggedDecision],
    children: Sequence[str],
) -> TaskTable:
    """Each child's predicted score per task where a fair context exists for the
    task (clusters: their centroids; online clusters: their slots), else each
    child's mean observed score per task in the log."""
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
        return _observed_table(kind, records, children, _why_observed(policy, tasks))
    names, contexts_of_tasks, slots, note = contexts
    mean = policy.predict(contexts_of_tasks)[0]
    diagonal = np.stack([np.diagonal(a) for a in policy.A])  # (arms, dim)
    arms = list(policy.arms)
    values, weights = [], []
    for t in range(len(names)):
        values.append(
            tuple(
                float(mean[t, arms.index(c)]) if c in arms else math.nan
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
    extra = tuple(t for t in log.calls if t not in names)  # older contexts' tasks
    rows = (*names, *extra)
    return TaskTable(
        kind=kind,
        basis="predicted",
        note=note
        + (
            " Rows in italics hold calls routed before the current clusters "
            "existed: their observed mean score, n = scored calls."
            if extra
            else ""
        ),
        tasks=rows,
        values=(*values, *(log.observed[t] for t in extra)),
        weights=(*weights, *(tuple(map(float, log.scored[t])) for t in extra)),
        observed=tuple(log.observed[t] for t in rows),
        scored=tuple(log.scored[t] for t in rows),
        decided=tuple(log.decided[t] for t in rows),
        calls=tuple(log.calls[t] for t in rows),
        predicted=(*(True for _ in names), *(False for _ in extra)),
    )


def _task_contexts(
    tasks: TaskModel | None, dim: int
) -> tuple[tuple[str, ...], np.ndarray[Any, Any], list[int], str] | None:
    """Per task: its name, the context the policy predicts it on, the context
    slot that counts its outcomes, and how the contexts were built; None when
    no fair context exists (bare embedding, task classifier)."""
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
    """Contexts of the finest fitted stage's clusters: each cluster's slot, the
    slot of the coarser cluster its centroid falls in at each earlier stage, and
    the bias. Before any stage is fitted, one row: the bias alone."""
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
    """The log per task: mean observed score, scored calls and mean prediction
    at decision time per child, and calls routed as it."""

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
    """Each task in ``order``, then the others in the log (a call routed as no
    task: ``unlabelled``); scores of answers and explored calls alike."""
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
        observed={t: tuple(_mean(scores[t][c]) for c in children) for t in names},
        scored={t: tuple(len(scores[t][c]) for c in children) for t in names},
        decided={t: tuple(_mean(predicted[t][c]) for c in children) for t in names},
        calls={t: calls.get(t, 0) for t in names},
    )


def _observed_table(
    kind: str,
    records: Sequence[LoggedDecision],
    children: Sequence[str],
    note: str,
) -> TaskTable:
    log = _by_task(records, children)
    names = tuple(log.calls)
    return TaskTable(
        kind=kind,
        basis="observed",
        note=note,
        tasks=names,
        values=tuple(log.observed[t] for t in names),
        weights=tuple(tuple(map(float, log.scored[t])) for t in names),
        observed=tuple(log.observed[t] for t in names),
        scored=tuple(log.scored[t] for t in names),
        decided=tuple(log.decided[t] for t in names),
        calls=tuple(log.calls[t] for t in names),
        predicted=tuple(False for _ in names),
    )


# Per child ----------------------------------------------------------------------


@dataclass(frozen=True)
class ChildSummary:
    """One child over the logged calls."""

    name: str
    color: str
    cost: float
    learned: int
    answered: int
    share: float
    chosen: int
    score: float
    """Mean feedback on its answers (NaN: none)."""
    scored: int
    explored: int
    explored_score: float
    explored_scored: int
    errors: int
    mean_cost: float
    cooling: int
    """Logged calls on which it was cooling down (tried last)."""
    fallbacks: int
    """Logged calls it answered after a child before it in the order failed."""


def child_summaries(data: ReportData) -> list[ChildSummary]:
    """Each child's share, scores and costs over the logged calls."""
    total = len(data.records)
    rows = []
    for j, name in enumerate(data.children):
        answered = [r for r in data.records if r.decision.answered == name]
        feedback = [r.scores[name] for r in answered if name in r.scores]
        explored = [r for r in data.records if name in r.decision.explored]
        explored_scores = [r.scores[name] for r in explored if name in r.scores]
        costs = [r.decision.cost for r in answered if r.decision.cost is not None]
        rows.append(
            ChildSummary(
                name=name,
                color=color_of(j),
                cost=data.costs.get(name, math.nan),
                learned=data.learned.get(name, 0),
                answered=len(answered),
                share=len(answered) / total if total else math.nan,
                chosen=sum(r.decision.chosen == name for r in data.records),
                score=_mean(feedback),
                scored=len(feedback),
                explored=len(explored),
                explored_score=_mean(explored_scores),
                explored_scored=len(explored_scores),
                errors=sum(name in r.errors for r in data.records),
                mean_cost=_mean(costs),
                cooling=sum(name in r.decision.cooldown for r in data.records),
                fallbacks=sum(r.decision.fallback for r in answered),
            )
        )
    return rows


def color_of(index: int) -> str:
    """The colour of the ``index``-th child."""
    return PALETTE[index % len(PALETTE)]


def _mean(values: Sequence[float]) -> float:
    return float(sum(values) / len(values)) if values else math.nan


# Text summary -------------------------------------------------------------------


def summary(router: object) -> str:
    """``summary_text`` of a live router (see ``report_data``)."""
    return summary_text(report_data(router))


def summary_text(data: ReportData) -> str:
    """One screen of text: the mode; each child's share, observed score and
    cost; the feedback counters; the budget and cost weight."""
    head, footer = _summary_lines(data)
    table = [
        f"{'child':<20} {'share':>7} {'calls':>6} {'score':>6} {'(n)':>6} "
        f"{'cost':>6} {'learned':>8}"
    ]
    for row in child_summaries(data):
        table.append(
            f"{row.name[:20]:<20} {_pct(row.share):>7} {row.answered:>6} "
            f"{_num(row.score):>6} {f'({row.scored})':>6} {_num(row.cost):>6} "
            f"{row.learned:>8}"
        )
    return "\n".join([*head, "", *table, "", *footer])


def summary_html(data: ReportData) -> str:
    """The summary as a small HTML table (a notebook's ``_repr_html_``)."""
    head, footer = _summary_lines(data)
    rows = "".join(
        f"<tr><td>{_swatch(r.color)}{_e(r.name)}</td><td>{_pct(r.share)}</td>"
        f"<td>{r.answered}</td><td>{_num(r.score)} ({r.scored})</td>"
        f"<td>{_num(r.cost)}</td><td>{r.learned}</td></tr>"
        for r in child_summaries(data)
    )
    return (
        f"<div><b>{'<br>'.join(map(_e, head))}</b><table><tr><th>child</th>"
        "<th>share</th><th>calls</th><th>score (n)</th><th>cost</th><th>learned</th>"
        f"</tr>{rows}</table><small>{'<br>'.join(map(_e, footer))}</small></div>"
    )


def _summary_lines(data: ReportData) -> tuple[list[str], list[str]]:
    """The summary's lines above and below its table of children."""
    records = data.records
    count = {
        "scored": sum(bool(r.scores) for r in records),
        "explored": sum(bool(r.decision.explored) for r in records),
        "in an embedder outage": sum(r.decision.outage for r in records),
        "with a cooldown": sum(bool(r.decision.cooldown) for r in records),
    }
    head = [
        f"metallm router {data.name!r}: {data.mode}; {len(data.children)} children",
        f"decision log: {len(records)} calls ("
        + ", ".join(f"{n} {what}" for what, n in count.items())
        + ")",
    ]
    stats = data.stats
    if stats is None:
        footer = ["feedback: counters are not saved (read from a save)"]
    else:
        footer = [
            f"{title}: "
            + ", ".join(f"{k.replace('_', ' ')} {stats[k]}" for k in keys if k in stats)
            for title, keys in (
                ("feedback", ("applied", "refused", "pending", "expired", "evicted")),
                (
                    "failures",
                    (
                        "scorer_errors",
                        "embedding_failures",
                        "cooldowns",
                        "cooling_down",
                    ),
                ),
            )
        ]
    costs = [r.decision.cost for r in records if r.decision.cost is not None]
    spend = f"; mean cost {_num(_mean(costs), 3)} per logged call" if costs else ""
    if data.budget is None:
        footer.append(f"cost weight {_num(data.cost_weight, 3)} (fixed){spend}")
    else:
        footer.append(
            f"budget {_num(data.budget, 3)} per call{spend}; paced cost weight now "
            f"{_num(data.cost_weight, 3)}"
        )
    return head, footer


# The HTML report ------------------------------------------------------------------


def write_report(
    router: object,
    path: StrPath,
    *,
    evaluation: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the report of ``router`` (a live router, or a ``ReportData``) to
    ``path``, one HTML file; ``evaluation`` adds counterfactual estimates
    (``render_evaluation``). Returns the path."""
    data = router if isinstance(router, ReportData) else report_data(router)
    target = Path(path)
    target.write_text(render_html(data, evaluation=evaluation), encoding="utf-8")
    return target


def render_html(
    data: ReportData, *, evaluation: Sequence[Mapping[str, Any]] | None = None
) -> str:
    """The whole report as one HTML document (inline SVG and CSS only)."""
    children = child_summaries(data)
    sections = [
        _overview(data, children),
        _shares_section(data, children),
        _spend_section(data),
        _feedback_section(data, children),
        _tasks_section(data, children),
        _outages_section(data, children),
        _exploration_section(data, children, evaluation),
    ]
    created = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(data.created))
    return (
        '<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>metallm router report: {_e(data.name)}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>What the router {_e(data.name)} learned</h1>"
        f'<p class="note">{_e(data.source)}; written {created}. The decision log '
        "holds no prompt text, and neither does this report.</p>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def _overview(data: ReportData, children: Sequence[ChildSummary]) -> str:
    records = data.records
    span = ""
    if records:
        first = records[0].decision.time
        last = records[-1].decision.time
        span = f"{_when(first)} to {_when(last)}"
    costs = [r.decision.cost for r in records if r.decision.cost is not None]
    cards = [
        ("mode", data.mode.split()[0].rstrip(":")),
        ("calls in the log", f"{len(records)}"),
        ("mean cost per call", _num(_mean(costs), 3)),
        ("budget", "none" if data.budget is None else _num(data.budget, 3)),
        ("cost weight now", _num(data.cost_weight, 3)),
        (
            "feedback applied",
            "not saved" if data.stats is None else str(data.stats.get("applied", 0)),
        ),
    ]
    card_html = "".join(
        f'<div class="card" title="{_e(v)}"><span>{_e(k)}</span><b>{_e(v)}</b></div>'
        for k, v in cards
    )
    head = (
        "<tr><th>child</th><th>cost</th><th>share of calls</th><th>calls</th>"
        "<th>mean score (n)</th><th>explored score (n)</th><th>mean cost</th>"
        "<th>learned outcomes</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{_swatch(c.color)}{_e(c.name)}</td><td>{_num(c.cost, 3)}</td>"
        f"<td>{_pct(c.share)}</td><td>{c.answered}</td>"
        f"<td>{_num(c.score)} ({c.scored})</td>"
        f"<td>{_num(c.explored_score)} ({c.explored_scored})</td>"
        f"<td>{_num(c.mean_cost, 3)}</td><td>{c.learned}</td></tr>"
        for c in children
    )
    settings = ", ".join(
        f"{_e(k)} {_e(_value(v))}" for k, v in data.settings.items() if v is not None
    )
    return (
        f'<section><div class="cards">{card_html}</div>'
        f"<h2>Children</h2><table>{head}{rows}</table>"
        '<p class="note">cost: normalised fixed cost (the priciest child when the '
        "router was built costs 1). Mean score: feedback on its answers in the log; "
        "explored score: scores of its background calls. Learned outcomes: what "
        f"the policy learned from, saves and warm starts included. "
        f"{('Logged calls: ' + span + '. ') if span else ''}Mode: {_e(data.mode)}. "
        f"Settings: {settings}."
        "</p></section>"
    )


def _shares_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    records = data.records
    if not records:
        return _section(
            "Share of calls over time", _empty("No calls in the decision log yet.")
        )
    answered = [r.decision.answered for r in records]
    body = _legend(children) + _share_chart(
        answered, children, "Share of calls answered by each child"
    )
    if any(r.decision.shadow for r in records):
        chosen = [r.decision.chosen for r in records]
        body += "<h3>Shadow mode: the child the router would have chosen</h3>"
        body += _share_chart(chosen, children, "Share the router would choose")
    note = (
        f"Over the last {len(records)} calls, in {len(_bins(len(records)))} "
        "groups of consecutive calls: each bar is 100% of its group."
    )
    return _section("Share of calls over time", body, note)


def _share_chart(
    names: Sequence[str | None], children: Sequence[ChildSummary], label: str
) -> str:
    n = len(names)
    plot = _Plot(0.5, n + 0.5, 0.0, 1.0)
    parts = []
    for start, stop in _bins(n):
        counts = Counter(names[start:stop])
        below = 0.0
        for child in children:
            share = counts.get(child.name, 0) / (stop - start)
            if share > 0:
                parts.append(
                    _rect(plot, start + 0.5, stop + 0.5, below, below + share, child)
                )
            below += share
    return _svg(plot, "".join(parts), label, "call (oldest first)", "share", pct=True)


def _spend_section(data: ReportData) -> str:
    records = [r for r in data.records if r.decision.cost is not None]
    if not records:
        return _section(
            "Spend per call and the cost weight",
            _empty("No answered calls in the log yet."),
        )
    costs = [float(r.decision.cost or 0.0) for r in records]
    n = len(costs)
    window = min(n, max(10, n // 20))
    rolling = _rolling(costs, window)
    cumulative = np.cumsum(costs) / np.arange(1, n + 1)
    xs = list(range(1, n + 1))
    budget = data.budget
    top = max([*rolling, *cumulative, *([] if budget is None else [budget]), 1e-9])
    plot = _Plot(0.5, n + 0.5, 0.0, _nice_top(top))
    series = [
        _polyline(plot, xs, rolling, "#4e79a7", width=2.0),
        _polyline(plot, xs, list(cumulative), "#1d2330", dash="5 4", width=1.5),
    ]
    legend = [
        ("#4e79a7", f"rolling mean cost ({window} calls)", ""),
        ("#1d2330", "mean cost so far", "5 4"),
    ]
    if budget is not None:
        series.append(_hline(plot, budget, "#e15759", "budget"))
        legend.append(("#e15759", f"budget {_num(budget, 3)}", "2 3"))
    spend = _line_legend(legend) + _svg(
        plot, "".join(series), "Spend per call", "answered call", "normalised cost"
    )
    weights = [r.decision.cost_weight for r in records]
    wplot = _Plot(0.5, n + 0.5, 0.0, _nice_top(max([*weights, 1e-9])))
    weight_chart = _line_legend([("#59a14f", "cost weight p of each decision", "")])
    weight_chart += _svg(
        wplot,
        _polyline(wplot, xs, weights, "#59a14f", width=2.0),
        "Cost weight over time",
        "answered call",
        "cost weight",
    )
    note = (
        "Normalised cost of each answer (fixed, or its tokens' price over the unit). "
        + (
            f"The pacer moves the cost weight so the mean cost tracks the budget "
            f"{_num(budget, 3)}."
            if budget is not None
            else "No budget: the cost weight is fixed unless changed."
        )
    )
    return _section(
        "Spend per call and the cost weight",
        spend + "<h3>Cost weight of each decision</h3>" + weight_chart,
        note,
    )


def _feedback_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    if data.stats is None:
        counters = _empty(
            "The feedback counters (applied, refused, pending, scorer errors) live in "
            "the running router and are not saved; what the log shows is below."
        )
    else:
        cells = "".join(
            f'<div class="card"><span>{_e(label)}</span><b>{data.stats[key]}</b></div>'
            for key, label in STATS_LABELS.items()
            if key in data.stats
            and key not in ("embedding_failures", "cooldowns", "cooling_down")
        )
        counters = f'<div class="cards">{cells}</div>'
    records = data.records
    if not records:
        return _section("Feedback received", counters)
    answered = [r for r in records if r.decision.answered is not None]
    rewarded = sum(r.decision.answered in r.scores for r in answered)
    body = counters + (
        f'<p class="note">{rewarded} of {len(answered)} logged answers got '
        "feedback.</p><h3>Observed score of each child's answers</h3>"
    )
    body += _score_chart(records, children)
    note = (
        "Mean feedback on each child's answers per group of consecutive calls "
        "(dots: groups where it answered and was scored, joined where adjacent); "
        "the dashed line is the share of calls in the group that got feedback."
    )
    return _section("Feedback received", body, note)


def _score_chart(
    records: Sequence[LoggedDecision], children: Sequence[ChildSummary]
) -> str:
    n = len(records)
    plot = _Plot(0.5, n + 0.5, 0.0, 1.0)
    bins = _bins(n, SCORE_BINS)
    parts = []
    rate_x, rate_y = [], []
    for start, stop in bins:
        group = records[start:stop]
        rate_x.append((start + stop + 1) / 2)
        rate_y.append(sum(r.decision.answered in r.scores for r in group) / len(group))
    parts.append(_polyline(plot, rate_x, rate_y, "#8a919e", dash="4 4", width=1.2))
    for child in children:
        runs: list[tuple[list[float], list[float]]] = []
        last = -2
        for b, (start, stop) in enumerate(bins):
            scores = [
                r.scores[child.name]
                for r in records[start:stop]
                if r.decision.answered == child.name and child.name in r.scores
            ]
            if scores:
                if b != last + 1:  # a group without its answers breaks the line
                    runs.append(([], []))
                runs[-1][0].append((start + stop + 1) / 2)
                runs[-1][1].append(_mean(scores))
                last = b
        for xs, ys in runs:
            parts.append(_polyline(plot, xs, ys, child.color, width=1.8, dots=True))
    legend = _legend(children) + _line_legend(
        [("#8a919e", "share of calls with feedback", "4 4")]
    )
    return legend + _svg(
        plot, "".join(parts), "Observed score per child", "call", "score", pct=False
    )


def _tasks_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    table = data.tasks
    if not table.tasks:
        return _section(
            "Score per task or cluster", _empty("No task and no logged call yet.")
        )
    predicted = table.basis == "predicted"
    head = "".join(f"<th>{_swatch(c.color)}{_e(c.name)}</th>" for c in children)
    rows = "".join(
        _task_row(table, t, children, data.cost_weight if predicted else None)
        for t in range(len(table.tasks))
    )
    what = (
        "Predicted score (the policy now); n = outcomes learned on that task"
        if predicted
        else "Observed mean score in the log; n = scored calls; pred = the mean "
        "prediction when those calls were routed"
    )
    routed = (
        "“routed to” is the child whose predicted score less its cost penalty is "
        "highest at the cost weight now (before the exploration bonus); "
        if predicted
        else ""
    )
    body = (
        f'<p class="note"><b>{_e(what)}.</b> Task model: {_e(table.kind)}. '
        f"{_e(table.note)} The highest score per row is outlined; {_e(routed)}"
        "hover a cell for the other numbers.</p>"
        '<table class="tasks"><tr><th>task / cluster</th><th>calls</th>'
        f"{head}{'<th>routed to</th>' if predicted else ''}</tr>{rows}</table>"
    )
    return _section("Score per task or cluster", body)


def _task_row(
    table: TaskTable,
    t: int,
    children: Sequence[ChildSummary],
    cost_weight: float | None,
) -> str:
    """One task's row: a heat cell per child, and with a ``cost_weight`` (a
    predicted table) the child a query of the task is routed to."""
    task, values, predicted = table.tasks[t], table.values[t], table.predicted[t]
    finite = [v for v in values if math.isfinite(v)]
    best = max(finite) if finite else math.nan
    cells = []
    for j, child in enumerate(children):
        value, weight, decided = values[j], table.weights[t][j], table.decided[t][j]
        tip = (
            f"{child.name} on {task}: "
            + (
                f"predicted {_num(value, 3)} from {weight:.1f} learned outcomes; "
                if predicted
                else ""
            )
            + f"observed {_num(table.observed[t][j], 3)} over "
            f"{table.scored[t][j]} scored calls in the log; predicted "
            f"{_num(decided, 3)} on average when they were routed"
        )
        mark = " best" if math.isfinite(value) and value == best else ""
        n_text = f"n={weight:.0f}" if math.isfinite(weight) else ""
        if not predicted and math.isfinite(decided):
            n_text += f" · pred {_num(decided)}"
        cells.append(
            f'<td class="heat{mark}" style="{_heat(value)}" title="{_e(tip)}">'
            f"{_num(value)}<small>{n_text}</small></td>"
        )
    if cost_weight is None:
        return f"<tr><th>{_e(task)}</th><td>{table.calls[t]}</td>{''.join(cells)}</tr>"
    target = "—"
    net = [
        (values[j] - cost_weight * c.cost, j)
        for j, c in enumerate(children)
        if math.isfinite(values[j]) and math.isfinite(c.cost)
    ]
    if predicted and net:
        routed = children[max(net)[1]]
        target = f"{_swatch(routed.color)}{_e(routed.name)}"
    style = "" if predicted else ' class="observed"'
    return (
        f"<tr{style}><th>{_e(task)}</th><td>{table.calls[t]}</td>{''.join(cells)}"
        f"<td>{target}</td></tr>"
    )


def _outages_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    records = data.records
    stats = data.stats or {}
    counters = "".join(
        f'<div class="card"><span>{_e(STATS_LABELS[key])}</span><b>{stats[key]}</b>'
        "</div>"
        for key in ("embedding_failures", "cooldowns", "cooling_down")
        if key in stats
    )
    outage = [r.decision.outage for r in records]
    cooling = [bool(r.decision.cooldown) for r in records]
    fallback = [r.decision.fallback for r in records]
    body = f'<div class="cards">{counters}</div>' if counters else ""
    body += (
        f'<p class="note">Logged calls: {sum(outage)} routed without an embedding '
        f"(the default child answered; not learned from), {sum(cooling)} with a "
        f"child cooling down (tried last), {sum(fallback)} answered by a fallback "
        "child.</p>"
    )
    if any(outage) or any(cooling) or any(fallback):
        kinds = [
            ("embedder outage", "#e15759", outage),
            ("a child cooling down", "#f28e2b", cooling),
            ("fallback answer", "#b07aa1", fallback),
        ]
        body += _event_chart(len(records), kinds)
        per_child = "".join(
            f"<tr><td>{_swatch(c.color)}{_e(c.name)}</td><td>{c.cooling}</td>"
            f"<td>{c.fallbacks}</td></tr>"
            for c in children
        )
        body += (
            "<table><tr><th>child</th><th>calls while it cooled down</th>"
            f"<th>fallback answers it gave</th></tr>{per_child}</table>"
        )
    return _section("Cooldowns, embedder outages and fallbacks", body)


def _event_chart(n: int, kinds: Sequence[tuple[str, str, Sequence[bool]]]) -> str:
    bins = _bins(n)
    shares = [[sum(flags[a:b]) / (b - a) for a, b in bins] for _, _, flags in kinds]
    top = _nice_top(max(max(s) for s in shares) or 1e-9)
    plot = _Plot(0.5, n + 0.5, 0.0, top)
    parts = []
    lanes = len(kinds)
    for k, (_, color, _) in enumerate(kinds):
        for (a, b), share in zip(bins, shares[k], strict=True):
            if share > 0:
                width = (b - a) / lanes
                left = a + 0.5 + k * width
                parts.append(_bar(plot, left, left + width, 0.0, share, color))
    legend = _line_legend([(c, name, "box") for name, c, _ in kinds])
    return legend + _svg(
        plot,
        "".join(parts),
        "Outages, cooldowns and fallbacks",
        "call",
        "share of calls",
        pct=True,
    )


def _exploration_section(
    data: ReportData,
    children: Sequence[ChildSummary],
    evaluation: Sequence[Mapping[str, Any]] | None,
) -> str:
    records = data.records
    explored = [r for r in records if r.decision.explored]
    if explored:
        rows = "".join(
            f"<tr><td>{_swatch(c.color)}{_e(c.name)}</td><td>{c.explored}</td>"
            f"<td>{_num(c.explored_score)} ({c.explored_scored})</td>"
            f"<td>{_num(c.score)} ({c.scored})</td><td>{c.errors}</td></tr>"
            for c in children
        )
        body = (
            f'<p class="note">{len(explored)} of {len(records)} logged calls also '
            "called other children in the background and scored them.</p>"
            "<table><tr><th>child</th><th>times explored</th>"
            "<th>mean score when explored (n)</th><th>mean score of its answers (n)"
            f"</th><th>explore errors</th></tr>{rows}</table>"
            + _explored_chart(children)
        )
    else:
        body = _empty(
            "No explored calls in the log (explore_rate 0, or no scorer): only the "
            "answering child's score is known for each call."
        )
    body += "<h3>Counterfactual estimates</h3>"
    body += (
        render_evaluation(evaluation, children, _realised(data))
        if evaluation
        else _empty(
            "None given. write_report(router, path, evaluation=rows) or "
            "metallm-report --evaluation rows.json adds the estimates of "
            "core.evaluation.evaluate (accuracy and cost of other settings)."
        )
    )
    return _section("Exploration and counterfactual estimates", body)


def _explored_chart(children: Sequence[ChildSummary]) -> str:
    shown = [c for c in children if math.isfinite(c.explored_score)]
    if not shown:
        return ""
    plot = _Plot(0.0, float(len(shown)), 0.0, 1.0, height=200)
    parts = []
    for i, c in enumerate(shown):
        parts.append(_bar(plot, i + 0.2, i + 0.8, 0.0, c.explored_score, c.color))
        x, y = plot.x(i + 0.5), plot.y(c.explored_score)
        parts.append(
            f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
            f"{_num(c.explored_score)} (n={c.explored_scored})</text>"
        )
        parts.append(
            f'<text x="{x:.1f}" y="{plot.height - _BOTTOM + 16:.1f}" '
            f'text-anchor="middle">{_e(c.name)}</text>'
        )
    return _svg(
        plot, "".join(parts), "Mean score when explored", "", "score", x_ticks=False
    )


def _realised(data: ReportData) -> tuple[float, float] | None:
    """The router's own (mean cost, mean observed score) over the log."""
    costs = [r.decision.cost for r in data.records if r.decision.cost is not None]
    scores = [
        score
        for r in data.records
        if (score := r.scores.get(r.decision.answered or "")) is not None
    ]
    if not costs or not scores:
        return None
    return _mean(costs), _mean(scores)


def render_evaluation(
    rows: Sequence[Mapping[str, Any]],
    children: Sequence[ChildSummary] | Sequence[str] = (),
    realised: tuple[float, float] | None = None,
) -> str:
    """The hook for counterfactual estimates: ``rows`` of ``{"cost_weight"`` or
    ``"budget"``, ``"accuracy"``, ``"accuracy_low"``, ``"accuracy_high"``,
    ``"cost"``, ``"cost_low"``, ``"cost_high"``, ``"shares": {child: share}}``
    (the bounds may be None) as a table and a cost/accuracy plot, with the
    router's ``realised`` (mean cost, mean score) if given. HTML."""
    checked = [_check_row(i, row) for i, row in enumerate(rows)]
    names = [c.name if isinstance(c, ChildSummary) else c for c in children]
    for row in checked:
        names += [n for n in row["shares"] if n not in names]
    head = "".join(f"<th>{_e(n)}</th>" for n in names)
    body = ""
    for row in checked:
        shares = "".join(
            f"<td>{_pct(row['shares'].get(n, math.nan))}</td>" for n in names
        )
        body += (
            f"<tr><td>{_e(row['setting'])}</td><td>{_num(row['accuracy'], 3)}</td>"
            f"<td>{_interval(row['accuracy_low'], row['accuracy_high'])}</td>"
            f"<td>{_num(row['cost'], 3)}</td>"
            f"<td>{_interval(row['cost_low'], row['cost_high'])}</td>{shares}</tr>"
        )
    table = (
        "<table><tr><th>setting</th><th>accuracy</th><th>interval</th><th>cost</th>"
        f"<th>interval</th>{head}</tr>{body}</table>"
    )
    return table + _evaluation_chart(checked, realised)


def _check_row(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """An evaluation row with its setting named, or a ``ValueError``."""
    if not isinstance(row, Mapping):
        raise ValueError(f"evaluation row {index}: expected a dict, got {row!r}")
    if "cost_weight" in row:
        value, setting, short = row["cost_weight"], "cost weight", "p"
    elif "budget" in row:
        value, setting, short = row["budget"], "budget", "B"
    else:
        raise ValueError(f"evaluation row {index}: needs 'cost_weight' or 'budget'")
    if not isinstance(value, (int, float)):
        raise ValueError(f"evaluation row {index}: {setting} must be a number")
    checked: dict[str, Any] = {
        "setting": f"{setting} {value:.3g}",
        "short": f"{short}={value:.3g}",
    }
    for key in ("accuracy", "cost"):
        if not isinstance(row.get(key), (int, float)):
            raise ValueError(f"evaluation row {index}: {key!r} must be a number")
        checked[key] = float(row[key])
        for bound in ("low", "high"):
            value = row.get(f"{key}_{bound}")
            checked[f"{key}_{bound}"] = math.nan if value is None else float(value)
    shares = row.get("shares") or {}
    if not isinstance(shares, Mapping):
        raise ValueError(f"evaluation row {index}: 'shares' must be a dict")
    checked["shares"] = {str(k): float(v) for k, v in shares.items()}
    return checked


def _evaluation_chart(
    rows: Sequence[Mapping[str, Any]], realised: tuple[float, float] | None
) -> str:
    xs = [v for r in rows for v in (r["cost"], r["cost_low"], r["cost_high"])]
    ys = [
        v for r in rows for v in (r["accuracy"], r["accuracy_low"], r["accuracy_high"])
    ]
    if realised is not None:
        xs.append(realised[0])
        ys.append(realised[1])
    xs = [v for v in xs if math.isfinite(v)]
    ys = [v for v in ys if math.isfinite(v)]
    if not xs or not ys:
        return ""
    x_lo, x_hi = _padded(min(xs), max(xs))
    y_lo, y_hi = _padded(min(ys), max(ys))
    plot = _Plot(x_lo, x_hi, y_lo, y_hi, height=300)
    parts = []
    ordered = sorted(rows, key=lambda r: r["cost"])
    parts.append(
        _polyline(
            plot,
            [r["cost"] for r in ordered],
            [r["accuracy"] for r in ordered],
            "#4e79a7",
            width=1.5,
        )
    )
    for r in rows:
        x, y = plot.x(r["cost"]), plot.y(r["accuracy"])
        if math.isfinite(r["cost_low"]) and math.isfinite(r["cost_high"]):
            parts.append(
                _line(plot.x(r["cost_low"]), y, plot.x(r["cost_high"]), y, "#4e79a7")
            )
        if math.isfinite(r["accuracy_low"]) and math.isfinite(r["accuracy_high"]):
            parts.append(
                _line(
                    x,
                    plot.y(r["accuracy_low"]),
                    x,
                    plot.y(r["accuracy_high"]),
                    "#4e79a7",
                )
            )
        parts.append(f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#4e79a7"/>')
        right = x > 0.8 * plot.width
        parts.append(
            f'<text x="{x - 8 if right else x + 8:.1f}" y="{y - 8:.1f}" '
            f'text-anchor="{"end" if right else "start"}" stroke="#ffffff" '
            f'stroke-width="3" paint-order="stroke">{_e(r["short"])}</text>'
        )
    legend = [("#4e79a7", "estimated setting (with its interval)", "")]
    if realised is not None:
        x, y = plot.x(realised[0]), plot.y(realised[1])
        parts.append(
            f'<path d="M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},'
            f'{y + 7:.1f} L{x - 7:.1f},{y:.1f} Z" fill="#e15759"/>'
        )
        legend.append(("#e15759", "this router over the log (observed)", "box"))
    return _line_legend(legend) + _svg(
        plot,
        "".join(parts),
        "Estimated accuracy against cost",
        "mean cost per call",
        "accuracy",
    )


def _interval(low: float, high: float) -> str:
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{_num(low, 3)}, {_num(high, 3)}]"


# SVG ----------------------------------------------------------------------------

_WIDTH, _HEIGHT = 860, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 16, 12, 40


@dataclass(frozen=True)
class _Plot:
    """Data coordinates to pixels inside a chart's frame."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    height: int = _HEIGHT
    width: int = _WIDTH

    def x(self, value: float) -> float:
        span = (self.x_hi - self.x_lo) or 1.0
        return _LEFT + (value - self.x_lo) / span * (self.width - _LEFT - _RIGHT)

    def y(self, value: float) -> float:
        span = (self.y_hi - self.y_lo) or 1.0
        inner = self.height - _TOP - _BOTTOM
        return self.height - _BOTTOM - (value - self.y_lo) / span * inner


def _svg(
    plot: _Plot,
    body: str,
    label: str,
    x_label: str,
    y_label: str,
    *,
    pct: bool = False,
    x_ticks: bool = True,
) -> str:
    """A chart: frame, grid, ticks and axis labels around ``body``."""
    w, h = plot.width, plot.height
    grid = []
    for v in _ticks(plot.y_lo, plot.y_hi):
        y = plot.y(v)
        text = f"{v:.0%}" if pct else _tick(v)
        grid.append(_line(_LEFT, y, w - _RIGHT, y, "#e3e6eb"))
        grid.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    if x_ticks:
        for v in _ticks(plot.x_lo, plot.x_hi, integer=plot.x_lo == 0.5):
            x = plot.x(v)
            grid.append(_line(x, h - _BOTTOM, x, h - _BOTTOM + 4, "#8a919e"))
            grid.append(
                f'<text x="{x:.1f}" y="{h - _BOTTOM + 16}" text-anchor="middle">'
                f"{_tick(v)}</text>"
            )
    frame = (
        f'<rect x="{_LEFT}" y="{_TOP}" width="{w - _LEFT - _RIGHT}" '
        f'height="{h - _TOP - _BOTTOM}" fill="none" stroke="#c4c9d2"/>'
    )
    labels = (
        f'<text x="{(w + _LEFT) / 2:.0f}" y="{h - 6}" text-anchor="middle" '
        f'class="axis">{_e(x_label)}</text>'
        f'<text x="14" y="{(h - _BOTTOM + _TOP) / 2:.0f}" text-anchor="middle" '
        f'class="axis" transform="rotate(-90 14 {(h - _BOTTOM + _TOP) / 2:.0f})">'
        f"{_e(y_label)}</text>"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'role="img" aria-label="{_e(label)}"><title>{_e(label)}</title>'
        f"{''.join(grid)}{body}{frame}{labels}</svg>"
    )


def _rect(
    plot: _Plot, x0: float, x1: float, y0: float, y1: float, child: ChildSummary
) -> str:
    return _bar(plot, x0, x1, y0, y1, child.color, title=child.name)


def _bar(
    plot: _Plot,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    color: str,
    title: str | None = None,
) -> str:
    left, right = plot.x(x0), plot.x(x1)
    top, bottom = plot.y(y1), plot.y(y0)
    tip = "" if title is None else f"<title>{_e(title)}</title>"
    return (
        f'<rect x="{left:.2f}" y="{top:.2f}" width="{max(right - left, 0.5):.2f}" '
        f'height="{max(bottom - top, 0.0):.2f}" fill="{color}" '
        f'shape-rendering="crispEdges">{tip}</rect>'
    )


def _polyline(
    plot: _Plot,
    xs: Sequence[float],
    ys: Sequence[float],
    color: str,
    *,
    width: float = 1.5,
    dash: str = "",
    dots: bool = False,
) -> str:
    step = max(1, math.ceil(len(xs) / 600))
    keep = list(range(0, len(xs), step))
    if keep and keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    points = " ".join(f"{plot.x(xs[i]):.1f},{plot.y(ys[i]):.1f}" for i in keep)
    style = f' stroke-dasharray="{dash}"' if dash else ""
    line = (
        f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{style} '
        f'stroke-linejoin="round" points="{points}"/>'
    )
    if dots or len(keep) == 1:
        line += "".join(
            f'<circle cx="{plot.x(xs[i]):.1f}" cy="{plot.y(ys[i]):.1f}" r="3" '
            f'fill="{color}"/>'
            for i in keep
        )
    return line


def _hline(plot: _Plot, value: float, color: str, label: str) -> str:
    y = plot.y(value)
    return _line(_LEFT, y, plot.width - _RIGHT, y, color, dash="2 3", width=2.0) + (
        f'<text x="{_LEFT + 6}" y="{y - 5:.1f}" style="fill:{color}" '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{_e(label)}</text>'
    )


def _line(
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    color: str,
    *,
    dash: str = "",
    width: float = 1.0,
) -> str:
    style = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
        f'stroke="{color}" stroke-width="{width}"{style}/>'
    )


def _bins(n: int, most: int = MAX_BINS) -> list[tuple[int, int]]:
    """``n`` calls cut into at most ``most`` runs of nearly equal length."""
    count = max(1, min(n, most))
    edges = [round(i * n / count) for i in range(count + 1)]
    return [(a, b) for a, b in pairwise(edges) if b > a]


def _rolling(values: Sequence[float], window: int) -> list[float]:
    """Trailing mean over ``window`` values (fewer at the start)."""
    sums = np.concatenate([[0.0], np.cumsum(values)])
    out = []
    for i in range(1, len(values) + 1):
        start = max(0, i - window)
        out.append(float((sums[i] - sums[start]) / (i - start)))
    return out


def _ticks(
    lo: float, hi: float, count: int = 5, *, integer: bool = False
) -> list[float]:
    """Round numbers between ``lo`` and ``hi``, about ``count`` of them."""
    span = hi - lo
    if span <= 0 or not math.isfinite(span):
        return [lo]
    raw = span / count
    magnitude = 10.0 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    if integer:
        step = max(1.0, float(round(step)))
    first = math.ceil(lo / step) * step
    ticks = []
    value = first
    while value <= hi + 1e-9 * span:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _nice_top(value: float) -> float:
    """A round upper end for an axis that starts at 0 and must show ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(
        m * magnitude
        for m in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
        if m * magnitude >= value * 1.05
    )


def _padded(lo: float, hi: float) -> tuple[float, float]:
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 0.05)
    return lo - pad, hi + pad


def _tick(value: float) -> str:
    if value == int(value) and abs(value) >= 1:
        return f"{int(value)}"
    return f"{value:.3g}"


# HTML bits ----------------------------------------------------------------------


def _section(title: str, body: str, note: str = "") -> str:
    tail = f'<p class="note">{_e(note)}</p>' if note else ""
    return f"<section><h2>{_e(title)}</h2>{body}{tail}</section>"


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _legend(children: Sequence[ChildSummary]) -> str:
    items = "".join(f"<span>{_swatch(c.color)}{_e(c.name)}</span>" for c in children)
    return f'<div class="legend">{items}</div>'


def _line_legend(items: Sequence[tuple[str, str, str]]) -> str:
    """Legend entries ``(colour, label, dash)``; dash ``"box"`` draws a swatch."""
    parts = []
    for color, label, dash in items:
        if dash == "box":
            mark = _swatch(color)
        else:
            style = f' stroke-dasharray="{dash}"' if dash else ""
            mark = (
                '<svg class="key" width="26" height="10" viewBox="0 0 26 10">'
                f'<line x1="1" y1="5" x2="25" y2="5" stroke="{color}" '
                f'stroke-width="2.5"{style}/></svg>'
            )
        parts.append(f"<span>{mark}{_e(label)}</span>")
    return f'<div class="legend">{"".join(parts)}</div>'


def _swatch(color: str) -> str:
    return (
        '<i class="swatch" style="display:inline-block;width:11px;height:11px;'
        f'border-radius:2px;margin-right:5px;vertical-align:-1px;background:{color}">'
        "</i>"
    )


def _heat(value: float) -> str:
    """Cell colours for a score in [0, 1]: pale to deep teal."""
    if not math.isfinite(value):
        return "background:#f7f8fa;color:#9aa1ad"
    t = min(max(value, 0.0), 1.0)
    low, high = (244, 247, 250), (22, 112, 110)
    r, g, b = (round(a + (z - a) * t) for a, z in zip(low, high, strict=True))
    text = "#ffffff" if t > 0.55 else "#1d2330"
    return f"background:rgb({r},{g},{b});color:{text}"


def _e(text: object) -> str:
    return html.escape(str(text), quote=True)


def _num(value: float | None, digits: int = 2) -> str:
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def _pct(value: float) -> str:
    return "—" if not math.isfinite(value) else f"{value:.1%}"


def _value(value: object) -> str:
    return _num(value, 3) if isinstance(value, float) else str(value)


def _when(seconds: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(seconds))


_CSS = """
body{margin:0;background:#f3f4f7;color:#1d2330;
font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:920px;margin:0 auto;padding:20px 24px 40px}
h1{font-size:24px;margin:8px 0 2px}
h2{font-size:17px;margin:0 0 10px}
h3{font-size:14px;margin:18px 0 4px;color:#394150}
section{background:#fff;border:1px solid #dde1e7;border-radius:8px;
padding:16px 20px;margin:14px 0}
.note{color:#5b6472;font-size:12.5px;margin:8px 0 0}
.empty{color:#5b6472;font-style:italic;margin:6px 0}
table{border-collapse:collapse;width:100%;font-size:13px;margin:6px 0}
th,td{padding:4px 8px;border-bottom:1px solid #eceef2;text-align:right;
white-space:nowrap}
th:first-child,td:first-child{text-align:left}
th{font-weight:600;color:#394150}
.cards{display:flex;flex-wrap:wrap;gap:8px;margin-bottom:10px}
.card{flex:1 1 100px;min-width:0;border:1px solid #e3e6eb;border-radius:6px;
padding:6px 10px;background:#fafbfc}
.card span{font-size:12px;color:#5b6472}
.card b{display:block;font-size:17px;white-space:nowrap;overflow:hidden;
text-overflow:ellipsis}
.legend{display:flex;flex-wrap:wrap;gap:6px 16px;font-size:12.5px;margin:4px 0 6px}
.swatch{display:inline-block;width:11px;height:11px;border-radius:2px;
margin-right:5px;vertical-align:-1px}
svg.key{margin-right:5px;vertical-align:0}
svg.chart{display:block;width:100%;height:auto;margin:2px 0}
svg.chart text{font-size:11px;fill:#5b6472}
svg.chart text.axis{font-size:12px;fill:#394150}
table.tasks td.heat{text-align:center;min-width:64px}
table.tasks td.heat small{display:block;font-size:10px;opacity:.75}
table.tasks tr.observed th,table.tasks tr.observed td{font-style:italic}
table.tasks td.best{box-shadow:inset 0 0 0 2px #1d2330;font-weight:700}
"""
