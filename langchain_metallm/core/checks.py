"""Input checks at the public boundary: one rule per kind of value, one wording.

Every setter, constructor argument and per-call option of the router passes its
value through one of these before it reaches the core, so a number is a number
everywhere (numpy scalars included, ``bool`` and strings refused) and a child is
named by a non-empty string everywhere.
"""

from __future__ import annotations

import math

import numpy as np


def check_number(
    name: str,
    value: object,
    *,
    low: float | None = None,
    high: float | None = None,
    low_open: bool = False,
) -> float:
    """``value`` as a finite float in [``low``, ``high``] (``(low, high]`` with
    ``low_open``); TypeError for a non-number, ValueError out of range."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(
        value, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{name}: expected a number, got {value!r}")
    number = float(value)
    below = low is not None and (number <= low if low_open else number < low)
    above = high is not None and number > high
    if not math.isfinite(number) or below or above:
        bracket = "(" if low_open else "["
        bounds = f"{bracket}{_bound(low)}, {_bound(high)}]"
        raise ValueError(f"{name}: must be in {bounds}, got {value!r}")
    return number


def check_child_name(name: object, what: str = "name") -> str:
    """``name`` if it is a non-empty string (a child's name)."""
    if not isinstance(name, str) or not name:
        raise TypeError(
            f"{what}: expected a child's name (a non-empty str), got {name!r}"
        )
    return name


def check_score(score: object) -> float:
    """``score`` as a float in [0, 1] (an answer's quality)."""
    return check_number("score", score, low=0.0, high=1.0)


def _bound(value: float | None) -> str:
    return "inf" if value is None else f"{value:g}"
