"""Plain inline SVG charts as strings (frame, axes, bars, lines, legends): generic,
with no knowledge of routers, and nothing fetched, so a page opens offline."""

from __future__ import annotations

import html
import math
from collections.abc import Sequence
from dataclasses import dataclass

_WIDTH, _HEIGHT = 860, 250
_LEFT, _RIGHT, _TOP, _BOTTOM = 58, 16, 12, 40


@dataclass(frozen=True)
class Plot:
    """Data coordinates to pixels inside a chart's frame."""

    x_lo: float
    x_hi: float
    y_lo: float
    y_hi: float
    height: int = _HEIGHT
    width: int = _WIDTH

    def x(self, value: float) -> float:
        """The pixel column of ``value``."""
        span = (self.x_hi - self.x_lo) or 1.0
        return _LEFT + (value - self.x_lo) / span * (self.width - _LEFT - _RIGHT)

    def y(self, value: float) -> float:
        """The pixel row of ``value`` (up is larger)."""
        span = (self.y_hi - self.y_lo) or 1.0
        inner = self.height - _TOP - _BOTTOM
        return self.height - _BOTTOM - (value - self.y_lo) / span * inner

    @property
    def label_y(self) -> int:
        """The baseline of the labels under the x axis."""
        return self.height - _BOTTOM + 16


def chart(
    plot: Plot,
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
        grid.append(line(_LEFT, y, w - _RIGHT, y, "#e3e6eb"))
        grid.append(
            f'<text x="{_LEFT - 6}" y="{y + 4:.1f}" text-anchor="end">{text}</text>'
        )
    if x_ticks:
        for v in _ticks(plot.x_lo, plot.x_hi, integer=plot.x_lo == 0.5):
            x = plot.x(v)
            grid.append(line(x, h - _BOTTOM, x, h - _BOTTOM + 4, "#8a919e"))
            grid.append(
                f'<text x="{x:.1f}" y="{plot.label_y}" text-anchor="middle">'
                f"{_tick(v)}</text>"
            )
    frame = (
        f'<rect x="{_LEFT}" y="{_TOP}" width="{w - _LEFT - _RIGHT}" '
        f'height="{h - _TOP - _BOTTOM}" fill="none" stroke="#c4c9d2"/>'
    )
    labels = (
        f'<text x="{(w + _LEFT) / 2:.0f}" y="{h - 6}" text-anchor="middle" '
        f'class="axis">{esc(x_label)}</text>'
        f'<text x="14" y="{(h - _BOTTOM + _TOP) / 2:.0f}" text-anchor="middle" '
        f'class="axis" transform="rotate(-90 14 {(h - _BOTTOM + _TOP) / 2:.0f})">'
        f"{esc(y_label)}</text>"
    )
    return (
        f'<svg class="chart" viewBox="0 0 {w} {h}" width="{w}" height="{h}" '
        f'role="img" aria-label="{esc(label)}"><title>{esc(label)}</title>'
        f"{''.join(grid)}{body}{frame}{labels}</svg>"
    )


def bar(
    plot: Plot,
    x0: float,
    x1: float,
    y0: float,
    y1: float,
    color: str,
    title: str | None = None,
) -> str:
    """A filled box from (x0, y0) to (x1, y1), with a hover ``title``."""
    left, right = plot.x(x0), plot.x(x1)
    top, bottom = plot.y(y1), plot.y(y0)
    tip = "" if title is None else f"<title>{esc(title)}</title>"
    return (
        f'<rect x="{left:.2f}" y="{top:.2f}" width="{max(right - left, 0.5):.2f}" '
        f'height="{max(bottom - top, 0.0):.2f}" fill="{color}" '
        f'shape-rendering="crispEdges">{tip}</rect>'
    )


def polyline(
    plot: Plot,
    xs: Sequence[float],
    ys: Sequence[float],
    color: str,
    *,
    width: float = 1.5,
    dash: str = "",
    dots: bool = False,
) -> str:
    """A line through the points (at most about 600 of them drawn), dotted on
    request or when it is a single point."""
    step = max(1, math.ceil(len(xs) / 600))
    keep = list(range(0, len(xs), step))
    if keep and keep[-1] != len(xs) - 1:
        keep.append(len(xs) - 1)
    points = " ".join(f"{plot.x(xs[i]):.1f},{plot.y(ys[i]):.1f}" for i in keep)
    style = f' stroke-dasharray="{dash}"' if dash else ""
    drawn = (
        f'<polyline fill="none" stroke="{color}" stroke-width="{width}"{style} '
        f'stroke-linejoin="round" points="{points}"/>'
    )
    if dots or len(keep) == 1:
        drawn += "".join(
            f'<circle cx="{plot.x(xs[i]):.1f}" cy="{plot.y(ys[i]):.1f}" r="3" '
            f'fill="{color}"/>'
            for i in keep
        )
    return drawn


def hline(plot: Plot, value: float, color: str, label: str) -> str:
    """A dotted labelled line across the frame at ``value``."""
    y = plot.y(value)
    return line(_LEFT, y, plot.width - _RIGHT, y, color, dash="2 3", width=2.0) + (
        f'<text x="{_LEFT + 6}" y="{y - 5:.1f}" style="fill:{color}" '
        f'stroke="#ffffff" stroke-width="3" paint-order="stroke">{esc(label)}</text>'
    )


def line(
    x0: float,
    y0: float,
    x1: float,
    y1: float,
    color: str,
    *,
    dash: str = "",
    width: float = 1.0,
) -> str:
    """A straight line between two points in pixels."""
    style = f' stroke-dasharray="{dash}"' if dash else ""
    return (
        f'<line x1="{x0:.1f}" y1="{y0:.1f}" x2="{x1:.1f}" y2="{y1:.1f}" '
        f'stroke="{color}" stroke-width="{width}"{style}/>'
    )


def legend(items: Sequence[tuple[str, str, str]]) -> str:
    """Legend entries ``(colour, label, dash)``; dash ``"box"`` draws a swatch."""
    parts = []
    for color, label, dash in items:
        if dash == "box":
            mark = swatch(color)
        else:
            style = f' stroke-dasharray="{dash}"' if dash else ""
            mark = (
                '<svg class="key" width="26" height="10" viewBox="0 0 26 10">'
                f'<line x1="1" y1="5" x2="25" y2="5" stroke="{color}" '
                f'stroke-width="2.5"{style}/></svg>'
            )
        parts.append(f"<span>{mark}{esc(label)}</span>")
    return f'<div class="legend">{"".join(parts)}</div>'


def swatch(color: str) -> str:
    """A small colour square, styled inline so it shows without the page's CSS."""
    return (
        '<i class="swatch" style="display:inline-block;width:11px;height:11px;'
        f'border-radius:2px;margin-right:5px;vertical-align:-1px;background:{color}">'
        "</i>"
    )


def nice_top(value: float) -> float:
    """A round upper end for an axis that starts at 0 and must show ``value``."""
    if value <= 0 or not math.isfinite(value):
        return 1.0
    magnitude = 10.0 ** math.floor(math.log10(value))
    return next(
        m * magnitude
        for m in (1.0, 1.2, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 8.0, 10.0)
        if m * magnitude >= value * 1.05
    )


def padded(lo: float, hi: float) -> tuple[float, float]:
    """An axis range around ``lo`` and ``hi`` with a margin, never empty."""
    pad = (hi - lo) * 0.12 or max(abs(hi) * 0.1, 0.05)
    return lo - pad, hi + pad


def esc(text: object) -> str:
    """``text`` safe inside HTML or SVG, in text and in quoted attributes."""
    return html.escape(str(text), quote=True)


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


def _tick(value: float) -> str:
    """A tick's label: whole numbers bare, others to three significant digits."""
    if value == int(value) and abs(value) >= 1:
        return f"{int(value)}"
    return f"{value:.3g}"
