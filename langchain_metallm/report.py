"""What a router learned, as one self-contained HTML page (tables and inline SVG, no
prompt text, nothing fetched) and a one-screen summary, drawn from ``ReportData``."""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import Any

import numpy as np

from langchain_metallm.core.decision_log import LoggedDecision
from langchain_metallm.core.persistence import StrPath
from langchain_metallm.report_data import ReportData, report_data, saved_report_data
from langchain_metallm.report_evaluation import render_evaluation
from langchain_metallm.report_format import num, pct
from langchain_metallm.svg_charts import (
    Plot,
    bar,
    chart,
    esc,
    hline,
    legend,
    nice_top,
    polyline,
    swatch,
)
from langchain_metallm.task_table import TaskTable, mean

__all__ = [
    "PALETTE",
    "ReportData",
    "render_evaluation",
    "render_html",
    "report_data",
    "saved_report_data",
    "summary_html",
    "summary_text",
    "write_report",
]

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


# Per child -------------------------------------------------------------------


@dataclass(frozen=True)
class ChildSummary:
    """One child over the logged calls."""

    name: str
    color: str
    cost: float
    learned: int
    answered: int
    share: float
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
                score=mean(feedback),
                scored=len(feedback),
                explored=len(explored),
                explored_score=mean(explored_scores),
                explored_scored=len(explored_scores),
                errors=sum(name in r.errors for r in data.records),
                mean_cost=mean(costs),
                cooling=sum(name in r.decision.cooldown for r in data.records),
                fallbacks=sum(r.decision.fallback for r in answered),
            )
        )
    return rows


def color_of(index: int) -> str:
    """The colour of the ``index``-th child."""
    return PALETTE[index % len(PALETTE)]


# Text summary -----------------------------------------------------------------


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
            f"{row.name[:20]:<20} {pct(row.share):>7} {row.answered:>6} "
            f"{num(row.score):>6} {f'({row.scored})':>6} {num(row.cost):>6} "
            f"{row.learned:>8}"
        )
    return "\n".join([*head, "", *table, "", *footer])


def summary_html(data: ReportData) -> str:
    """The summary as a small HTML table (a notebook's ``_repr_html_``)."""
    head, footer = _summary_lines(data)
    rows = "".join(
        f"<tr><td>{swatch(r.color)}{esc(r.name)}</td><td>{pct(r.share)}</td>"
        f"<td>{r.answered}</td><td>{num(r.score)} ({r.scored})</td>"
        f"<td>{num(r.cost)}</td><td>{r.learned}</td></tr>"
        for r in child_summaries(data)
    )
    return (
        f"<div><b>{'<br>'.join(map(esc, head))}</b><table><tr><th>child</th>"
        "<th>share</th><th>calls</th><th>score (n)</th><th>cost</th><th>learned</th>"
        f"</tr>{rows}</table><small>{'<br>'.join(map(esc, footer))}</small></div>"
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
    spend = f"; mean cost {num(mean(costs), 3)} per logged call" if costs else ""
    if data.budget is None:
        footer.append(f"cost weight {num(data.cost_weight, 3)} (fixed){spend}")
    else:
        footer.append(
            f"budget {num(data.budget, 3)} per call{spend}; paced cost weight now "
            f"{num(data.cost_weight, 3)}"
        )
    return head, footer


# The HTML report ------------------------------------------------------------------


def write_report(
    router: object,
    path: StrPath,
    *,
    evaluation: Sequence[Mapping[str, Any]] | None = None,
) -> Path:
    """Write the report of ``router`` (a live router or a ``ReportData``) to ``path``,
    one HTML file, with any ``evaluation`` rows; returns the path."""
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
        f"<title>metallm router report: {esc(data.name)}</title>"
        f"<style>{_CSS}</style></head><body><main>"
        f"<h1>What the router {esc(data.name)} learned</h1>"
        f'<p class="note">{esc(data.source)}; written {created}. The decision log '
        "holds no prompt text, and neither does this report.</p>"
        + "".join(sections)
        + "</main></body></html>\n"
    )


def _overview(data: ReportData, children: Sequence[ChildSummary]) -> str:
    """Headline cards, the table of children, and the settings."""
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
        ("mean cost per call", num(mean(costs), 3)),
        ("budget", "none" if data.budget is None else num(data.budget, 3)),
        ("cost weight now", num(data.cost_weight, 3)),
        (
            "feedback applied",
            "not saved" if data.stats is None else str(data.stats.get("applied", 0)),
        ),
    ]
    card_html = "".join(
        f'<div class="card" title="{esc(v)}"><span>{esc(k)}</span><b>{esc(v)}</b></div>'
        for k, v in cards
    )
    head = (
        "<tr><th>child</th><th>cost</th><th>share of calls</th><th>calls</th>"
        "<th>mean score (n)</th><th>explored score (n)</th><th>mean cost</th>"
        "<th>learned outcomes</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{swatch(c.color)}{esc(c.name)}</td><td>{num(c.cost, 3)}</td>"
        f"<td>{pct(c.share)}</td><td>{c.answered}</td>"
        f"<td>{num(c.score)} ({c.scored})</td>"
        f"<td>{num(c.explored_score)} ({c.explored_scored})</td>"
        f"<td>{num(c.mean_cost, 3)}</td><td>{c.learned}</td></tr>"
        for c in children
    )
    settings = ", ".join(
        f"{esc(k)} {esc(_value(v))}" for k, v in data.settings.items() if v is not None
    )
    return (
        f'<section><div class="cards">{card_html}</div>'
        f"<h2>Children</h2><table>{head}{rows}</table>"
        '<p class="note">cost: normalised fixed cost (the priciest child when the '
        "router was built costs 1). Mean score: feedback on its answers in the log; "
        "explored score: scores of its background calls. Learned outcomes: what "
        f"the policy learned from, saves and warm starts included. "
        f"{('Logged calls: ' + span + '. ') if span else ''}Mode: {esc(data.mode)}. "
        f"Settings: {settings}."
        "</p></section>"
    )


def _shares_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    """Which child answered (and, in shadow mode, would be chosen) over time."""
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
    """Stacked bars: each child's share of ``names`` per group of consecutive calls."""
    n = len(names)
    plot = Plot(0.5, n + 0.5, 0.0, 1.0)
    parts = []
    for start, stop in _bins(n):
        counts = Counter(names[start:stop])
        below = 0.0
        for child in children:
            share = counts.get(child.name, 0) / (stop - start)
            if share > 0:
                x0, x1, top = start + 0.5, stop + 0.5, below + share
                parts.append(bar(plot, x0, x1, below, top, child.color, child.name))
            below += share
    return chart(plot, "".join(parts), label, "call (oldest first)", "share", pct=True)


def _spend_section(data: ReportData) -> str:
    """Cost per answered call against the budget, and the cost weight that paced it."""
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
    plot = Plot(0.5, n + 0.5, 0.0, nice_top(top))
    series = [
        polyline(plot, xs, rolling, "#4e79a7", width=2.0),
        polyline(plot, xs, list(cumulative), "#1d2330", dash="5 4", width=1.5),
    ]
    keys = [
        ("#4e79a7", f"rolling mean cost ({window} calls)", ""),
        ("#1d2330", "mean cost so far", "5 4"),
    ]
    if budget is not None:
        series.append(hline(plot, budget, "#e15759", "budget"))
        keys.append(("#e15759", f"budget {num(budget, 3)}", "2 3"))
    spend = legend(keys) + chart(
        plot, "".join(series), "Spend per call", "answered call", "normalised cost"
    )
    weights = [r.decision.cost_weight for r in records]
    wplot = Plot(0.5, n + 0.5, 0.0, nice_top(max([*weights, 1e-9])))
    weight_chart = legend([("#59a14f", "cost weight p of each decision", "")])
    weight_chart += chart(
        wplot,
        polyline(wplot, xs, weights, "#59a14f", width=2.0),
        "Cost weight over time",
        "answered call",
        "cost weight",
    )
    note = (
        "Normalised cost of each answer (fixed, or its tokens' price over the unit). "
        + (
            f"The pacer moves the cost weight so the mean cost tracks the budget "
            f"{num(budget, 3)}."
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
    """The feedback counters, and each child's observed score over time."""
    if data.stats is None:
        counters = _empty(
            "The feedback counters (applied, refused, pending, scorer errors) live in "
            "the running router and are not saved; what the log shows is below."
        )
    else:
        cells = "".join(
            f'<div class="card"><span>{esc(label)}</span><b>{data.stats[key]}</b></div>'
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
    """Each child's mean score per group of calls, and the share that got feedback."""
    n = len(records)
    plot = Plot(0.5, n + 0.5, 0.0, 1.0)
    bins = _bins(n, SCORE_BINS)
    parts = []
    rate_x, rate_y = [], []
    for start, stop in bins:
        group = records[start:stop]
        rate_x.append((start + stop + 1) / 2)
        rate_y.append(sum(r.decision.answered in r.scores for r in group) / len(group))
    parts.append(polyline(plot, rate_x, rate_y, "#8a919e", dash="4 4", width=1.2))
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
                runs[-1][1].append(mean(scores))
                last = b
        for xs, ys in runs:
            parts.append(polyline(plot, xs, ys, child.color, width=1.8, dots=True))
    keys = _legend(children) + legend(
        [("#8a919e", "share of calls with feedback", "4 4")]
    )
    return keys + chart(
        plot, "".join(parts), "Observed score per child", "call", "score"
    )


def _tasks_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    """The task table as a heat map, with where each task is routed now."""
    table = data.tasks
    if not table.tasks:
        return _section(
            "Score per task or cluster", _empty("No task and no logged call yet.")
        )
    predicted = table.basis == "predicted"
    head = "".join(f"<th>{swatch(c.color)}{esc(c.name)}</th>" for c in children)
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
        f'<p class="note"><b>{esc(what)}.</b> Task model: {esc(table.kind)}. '
        f"{esc(table.note)} The highest score per row is outlined; {esc(routed)}"
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
                f"predicted {num(value, 3)} from {weight:.1f} learned outcomes; "
                if predicted
                else ""
            )
            + f"observed {num(table.observed[t][j], 3)} over "
            f"{table.scored[t][j]} scored calls in the log; predicted "
            f"{num(decided, 3)} on average when they were routed"
        )
        mark = " best" if math.isfinite(value) and value == best else ""
        n_text = f"n={weight:.0f}" if math.isfinite(weight) else ""
        if not predicted and math.isfinite(decided):
            n_text += f" · pred {num(decided)}"
        cells.append(
            f'<td class="heat{mark}" style="{_heat(value)}" title="{esc(tip)}">'
            f"{num(value)}<small>{n_text}</small></td>"
        )
    if cost_weight is None:
        return f"<tr><th>{esc(task)}</th><td>{table.calls[t]}</td>{''.join(cells)}</tr>"
    target = "—"
    net = [
        (values[j] - cost_weight * c.cost, j)
        for j, c in enumerate(children)
        if math.isfinite(values[j]) and math.isfinite(c.cost)
    ]
    if predicted and net:
        routed = children[max(net)[1]]
        target = f"{swatch(routed.color)}{esc(routed.name)}"
    style = "" if predicted else ' class="observed"'
    return (
        f"<tr{style}><th>{esc(task)}</th><td>{table.calls[t]}</td>{''.join(cells)}"
        f"<td>{target}</td></tr>"
    )


def _outages_section(data: ReportData, children: Sequence[ChildSummary]) -> str:
    """Embedder outages, cooldowns and fallbacks: counts, over time, per child."""
    records = data.records
    stats = data.stats or {}
    counters = "".join(
        f'<div class="card"><span>{esc(STATS_LABELS[key])}</span><b>{stats[key]}</b>'
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
            f"<tr><td>{swatch(c.color)}{esc(c.name)}</td><td>{c.cooling}</td>"
            f"<td>{c.fallbacks}</td></tr>"
            for c in children
        )
        body += (
            "<table><tr><th>child</th><th>calls while it cooled down</th>"
            f"<th>fallback answers it gave</th></tr>{per_child}</table>"
        )
    return _section("Cooldowns, embedder outages and fallbacks", body)


def _event_chart(n: int, kinds: Sequence[tuple[str, str, Sequence[bool]]]) -> str:
    """Side-by-side bars: the share of calls flagged by each kind, per group."""
    bins = _bins(n)
    shares = [[sum(flags[a:b]) / (b - a) for a, b in bins] for _, _, flags in kinds]
    top = nice_top(max(max(s) for s in shares) or 1e-9)
    plot = Plot(0.5, n + 0.5, 0.0, top)
    parts = []
    lanes = len(kinds)
    for k, (_, color, _) in enumerate(kinds):
        for (a, b), share in zip(bins, shares[k], strict=True):
            if share > 0:
                width = (b - a) / lanes
                left = a + 0.5 + k * width
                parts.append(bar(plot, left, left + width, 0.0, share, color))
    keys = legend([(c, name, "box") for name, c, _ in kinds])
    return keys + chart(
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
    """Scores of explored calls per child, and any counterfactual estimates."""
    records = data.records
    explored = [r for r in records if r.decision.explored]
    if explored:
        rows = "".join(
            f"<tr><td>{swatch(c.color)}{esc(c.name)}</td><td>{c.explored}</td>"
            f"<td>{num(c.explored_score)} ({c.explored_scored})</td>"
            f"<td>{num(c.score)} ({c.scored})</td><td>{c.errors}</td></tr>"
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
    """One bar per explored child: its mean score when explored."""
    shown = [c for c in children if math.isfinite(c.explored_score)]
    if not shown:
        return ""
    plot = Plot(0.0, float(len(shown)), 0.0, 1.0, height=200)
    parts = []
    for i, c in enumerate(shown):
        parts.append(bar(plot, i + 0.2, i + 0.8, 0.0, c.explored_score, c.color))
        x, y = plot.x(i + 0.5), plot.y(c.explored_score)
        parts.append(
            f'<text x="{x:.1f}" y="{y - 4:.1f}" text-anchor="middle">'
            f"{num(c.explored_score)} (n={c.explored_scored})</text>"
        )
        parts.append(
            f'<text x="{x:.1f}" y="{plot.label_y:.1f}" '
            f'text-anchor="middle">{esc(c.name)}</text>'
        )
    return chart(
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
    return mean(costs), mean(scores)


# Helpers ----------------------------------------------------------------------


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


def _section(title: str, body: str, note: str = "") -> str:
    """One titled box of the page, with a note under it."""
    tail = f'<p class="note">{esc(note)}</p>' if note else ""
    return f"<section><h2>{esc(title)}</h2>{body}{tail}</section>"


def _empty(text: str) -> str:
    """What a section says when it has nothing to show."""
    return f'<p class="empty">{esc(text)}</p>'


def _legend(children: Sequence[ChildSummary]) -> str:
    """The children's colours, as one legend."""
    return legend([(c.color, c.name, "box") for c in children])


def _heat(value: float) -> str:
    """Cell colours for a score in [0, 1]: pale to deep teal."""
    if not math.isfinite(value):
        return "background:#f7f8fa;color:#9aa1ad"
    t = min(max(value, 0.0), 1.0)
    low, high = (244, 247, 250), (22, 112, 110)
    r, g, b = (round(a + (z - a) * t) for a, z in zip(low, high, strict=True))
    text = "#ffffff" if t > 0.55 else "#1d2330"
    return f"background:rgb({r},{g},{b});color:{text}"


def _value(value: object) -> str:
    """A setting as shown: floats to three decimals."""
    return num(value, 3) if isinstance(value, float) else str(value)


def _when(seconds: float) -> str:
    """A time, to the minute, in local time."""
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
