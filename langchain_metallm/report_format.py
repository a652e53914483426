"""How the report writes numbers: fixed decimals and percentages, with a dash where a
value is missing (NaN or None) rather than "nan", in tables, cards and charts."""

from __future__ import annotations

import math


def num(value: float | None, digits: int = 2) -> str:
    """``value`` to ``digits`` decimals; a dash for none or NaN."""
    if value is None or not math.isfinite(value):
        return "—"
    return f"{value:.{digits}f}"


def pct(value: float) -> str:
    """``value`` as a percentage; a dash for NaN."""
    return "—" if not math.isfinite(value) else f"{value:.1%}"
