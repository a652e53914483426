"""Counterfactual estimates in the report: rows of ``core.evaluation.evaluate`` (other
cost weights or budgets) as a table and an accuracy-against-cost plot, in HTML."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from langchain_metallm.report_format import num, pct
from langchain_metallm.svg_charts import (
    Plot,
    chart,
    esc,
    legend,
    line,
    padded,
    polyline,
)


class Named(Protocol):
    """A child as the table names it (a ``report.ChildSummary``)."""

    @property
    def name(self) -> str: ...


def render_evaluation(
    rows: Sequence[Mapping[str, Any]],
    children: Sequence[Named] | Sequence[str] = (),
    realised: tuple[float, float] | None = None,
) -> str:
    """The ``rows`` as a table (``children``'s shares first) and a cost/accuracy plot
    with the router's ``realised`` (mean cost, mean score) if given."""
    checked = [_check_row(i, row) for i, row in enumerate(rows)]
    names = [c if isinstance(c, str) else c.name for c in children]
    for row in checked:
        names += [n for n in row["shares"] if n not in names]
    head = "".join(f"<th>{esc(n)}</th>" for n in names)
    body = ""
    for row in checked:
        shares = "".join(
            f"<td>{pct(row['shares'].get(n, math.nan))}</td>" for n in names
        )
        body += (
            f"<tr><td>{esc(row['setting'])}</td><td>{num(row['accuracy'], 3)}</td>"
            f"<td>{_interval(row['accuracy_low'], row['accuracy_high'])}</td>"
            f"<td>{num(row['cost'], 3)}</td>"
            f"<td>{_interval(row['cost_low'], row['cost_high'])}</td>{shares}</tr>"
        )
    table = (
        "<table><tr><th>setting</th><th>accuracy</th><th>interval</th><th>cost</th>"
        f"<th>interval</th>{head}</tr>{body}</table>"
    )
    return table + _evaluation_chart(checked, realised)


def _check_row(index: int, row: Mapping[str, Any]) -> dict[str, Any]:
    """A row of ``cost_weight`` or ``budget``, ``accuracy``, ``cost`` (their ``_low``,
    ``_high`` may be None) and ``shares``, with its setting named; else ValueError."""
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
    """Estimated accuracy against cost per setting, and the router's ``realised``."""
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
    x_lo, x_hi = padded(min(xs), max(xs))
    y_lo, y_hi = padded(min(ys), max(ys))
    plot = Plot(x_lo, x_hi, y_lo, y_hi, height=300)
    parts = []
    ordered = sorted(rows, key=lambda r: r["cost"])
    parts.append(
        polyline(
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
                line(plot.x(r["cost_low"]), y, plot.x(r["cost_high"]), y, "#4e79a7")
            )
        if math.isfinite(r["accuracy_low"]) and math.isfinite(r["accuracy_high"]):
            parts.append(
                line(
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
            f'stroke-width="3" paint-order="stroke">{esc(r["short"])}</text>'
        )
    keys = [("#4e79a7", "estimated setting (with its interval)", "")]
    if realised is not None:
        x, y = plot.x(realised[0]), plot.y(realised[1])
        parts.append(
            f'<path d="M{x:.1f},{y - 7:.1f} L{x + 7:.1f},{y:.1f} L{x:.1f},'
            f'{y + 7:.1f} L{x - 7:.1f},{y:.1f} Z" fill="#e15759"/>'
        )
        keys.append(("#e15759", "this router over the log (observed)", "box"))
    return legend(keys) + chart(
        plot,
        "".join(parts),
        "Estimated accuracy against cost",
        "mean cost per call",
        "accuracy",
    )


def _interval(low: float, high: float) -> str:
    """``[low, high]``, or a dash when a bound is missing."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "—"
    return f"[{num(low, 3)}, {num(high, 3)}]"
