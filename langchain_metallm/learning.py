"""Learning from recorded outcomes: warm-start rewards and budget calibration.

A reward is ``score - cost_weight * normalised_cost`` (MetaLLM). The router's
contexts end in a constant 1 (``features.query_features``), so an arm's sum of
contexts is the last column of ``A_j - ridge * I`` and the learned statistics can
be moved to another cost weight exactly, without the data:
``b_j(p') = b_j(p) - (p' - p) * c_j * sum x``.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.policy import LinUCBPolicy

FloatArray = NDArray[np.float64]
IndexArray = NDArray[np.int64]
Scores: TypeAlias = "ArrayLike | Sequence[Mapping[str, float]]"
"""Per-prompt scores: an (n, models) array or one ``{model name: score}`` per row."""


@dataclass(frozen=True)
class CalibrationPoint:
    """What the fitted policy would do on the validation data at one cost weight."""

    cost_weight: float
    accuracy: float
    cost: float


@dataclass(frozen=True)
class CostWeightCalibration:
    """The chosen cost weight, its validation accuracy and mean normalised cost,
    and every candidate's point (the cost-accuracy curve)."""

    cost_weight: float
    accuracy: float
    cost: float
    budget: float
    curve: tuple[CalibrationPoint, ...]


def check_prompts(prompts: Sequence[str]) -> list[str]:
    """``prompts`` as a non-empty list of strings."""
    if isinstance(prompts, str) or not isinstance(prompts, Sequence):
        raise TypeError(
            f"prompts: expected a list of strings, got {type(prompts).__name__}"
        )
    texts = list(prompts)
    if not texts:
        raise ValueError("prompts: empty; at least one recorded outcome is needed")
    for i, text in enumerate(texts):
        if not isinstance(text, str):
            raise TypeError(f"prompts: item {i} is {type(text).__name__}, not str")
    return texts


def score_matrix(
    scores: Scores, models: Sequence[str], n_rows: int, *, complete: bool = False
) -> FloatArray:
    """Scores as an (n_rows, models) array in [0, 1], NaN where not observed.

    Rows given as dicts may omit models (not observed) but not name unknown ones;
    with ``complete`` every score must be observed.
    """
    if isinstance(scores, Sequence) and any(isinstance(r, Mapping) for r in scores):
        matrix = _rows_from_dicts(scores, models)
    else:
        try:
            matrix = np.array(scores, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise TypeError(
                f"scores: expected an (n, {len(models)}) array of numbers or a list "
                f"of {{model name: score}} dicts ({exc})"
            ) from exc
        if matrix.ndim != 2 or matrix.shape[1] != len(models):
            raise ValueError(
                f"scores: expected shape (n, {len(models)}) with columns in the "
                f"order {list(models)}, got shape {matrix.shape}"
            )
    if matrix.shape[0] != n_rows:
        raise ValueError(
            f"prompts and scores: {n_rows} prompts but {matrix.shape[0]} score rows"
        )
    bad = ~np.isnan(matrix) & ~((matrix >= 0.0) & (matrix <= 1.0))
    if bad.any():
        row, col = (int(v) for v in np.argwhere(bad)[0])
        raise ValueError(
            f"scores: row {row}, model {models[col]!r} is {float(matrix[row, col])!r}; "
            "scores must be in [0, 1] (NaN = not observed)"
        )
    missing = np.isnan(matrix)
    if missing.all():
        raise ValueError("scores: nothing observed (every score is NaN)")
    if complete and missing.any():
        row, col = (int(v) for v in np.argwhere(missing)[0])
        raise ValueError(
            f"scores: row {row}, model {models[col]!r} is not observed; calibration "
            "needs every model's score on every prompt"
        )
    return matrix


def cost_vector(arms: Sequence[str], costs: Mapping[str, float]) -> FloatArray:
    """Normalised cost of each arm, in arm order."""
    return np.array([costs[name] for name in arms], dtype=np.float64)


def reward_matrix(
    scores: FloatArray, cost: FloatArray, cost_weight: float
) -> FloatArray:
    """``score - cost_weight * cost`` per row and arm; NaN stays NaN."""
    return scores - cost_weight * cost[None, :]


def shift_cost_weight(
    policy: LinUCBPolicy, costs: Mapping[str, float], old: float, new: float
) -> None:
    """Move ``policy``'s statistics from rewards at cost weight ``old`` to ``new``.

    The result equals learning every past outcome with ``new`` from the start.
    Not atomic with concurrent ``update`` calls: shift between serving calls.
    """
    A, b, counts = policy.statistics()  # noqa: N806
    sums = _context_sums(policy, A, counts)
    cost = cost_vector(policy.arms, costs)
    policy.load_statistics(A, b - (new - old) * cost[:, None] * sums, counts)


def check_budget(budget: float, costs: Mapping[str, float]) -> float:
    """``budget`` as a float no lower than the cheapest normalised cost."""
    if isinstance(budget, bool) or not isinstance(budget, (int, float, np.number)):
        raise TypeError(f"budget: expected a number, got {type(budget).__name__}")
    value = float(budget)
    if not math.isfinite(value):
        raise ValueError(f"budget: must be finite, got {budget!r}")
    cheapest = min(costs.values())
    if value < cheapest:
        raise ValueError(
            f"budget: {value} is below the cheapest model's normalised cost "
            f"{cheapest:.4g}; no routing can cost less"
        )
    return value


def default_cost_weights(costs: Mapping[str, float]) -> tuple[float, ...]:
    """0 to 1 in steps of 0.025, then geometric up to where every cost gap outweighs
    a score difference of 2 (larger weights cannot change a choice further)."""
    levels = np.unique(np.array(list(costs.values()), dtype=np.float64))
    gap = float(np.min(np.diff(levels))) if len(levels) > 1 else 1.0
    top = max(2.0 / gap, 2.0)
    grid = np.concatenate([np.linspace(0.0, 1.0, 41), np.geomspace(1.0, top, 25)])
    return tuple(float(p) for p in np.unique(np.round(grid, 6)))


def calibrate(
    policy: LinUCBPolicy | None,
    contexts: FloatArray,
    scores: FloatArray,
    costs: Mapping[str, float],
    *,
    fitted_weight: float,
    budget: float,
    cost_weights: Sequence[float] | None = None,
) -> CostWeightCalibration:
    """The cost weight whose greedy choices (alpha 0) on the validation ``contexts``
    reach the highest accuracy against ``scores`` at mean cost <= ``budget``.

    Each candidate ``p`` is judged by what ``policy`` would choose after
    ``shift_cost_weight(policy, costs, fitted_weight, p)``, computed exactly.
    Ties go to the lower cost, then to the smaller weight.
    """
    if policy is None or int(policy.counts.sum()) == 0:
        raise ValueError("router: nothing learned yet; call fit(...) first")
    candidates = _check_weights(
        default_cost_weights(costs) if cost_weights is None else cost_weights
    )
    cost = cost_vector(policy.arms, costs)
    base, slope = _score_and_cost_terms(policy, cost, fitted_weight, contexts)
    rows = np.arange(len(scores))
    curve = []
    for p in candidates:
        chosen = np.argmax(base - p * slope, axis=1)
        accuracy = float(scores[rows, chosen].mean())
        curve.append(CalibrationPoint(p, accuracy, float(cost[chosen].mean())))
    within = [point for point in curve if point.cost <= budget + 1e-12]
    if not within:
        lowest = min(curve, key=lambda point: point.cost)
        raise ValueError(
            f"budget: no candidate cost weight keeps the mean cost <= {budget}; the "
            f"lowest is {lowest.cost:.4f} at cost_weight {lowest.cost_weight}; "
            "pass larger cost_weights"
        )
    best = min(within, key=lambda pt: (-pt.accuracy, pt.cost, pt.cost_weight))
    return CostWeightCalibration(
        best.cost_weight, best.accuracy, best.cost, budget, tuple(curve)
    )


def _score_and_cost_terms(
    policy: LinUCBPolicy, cost: FloatArray, fitted_weight: float, contexts: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Per row and arm, ``m`` and ``s`` with ``mean reward at weight p = m - p * s``.

    With ``u_j = A_j^-1 sum x``: ``theta_j(p) = theta_j(p_fit) + (p_fit - p) c_j u_j``.
    """
    if contexts.ndim != 2 or not np.all(contexts[:, -1] == 1.0):
        raise ValueError("contexts: the last feature must be the constant bias 1")
    A, b, counts = policy.statistics()  # noqa: N806
    sums = _context_sums(policy, A, counts)
    u = np.linalg.solve(A, sums[..., None])[..., 0]
    theta = np.linalg.solve(A, b[..., None])[..., 0]
    score_theta = theta + fitted_weight * cost[:, None] * u
    return contexts @ score_theta.T, (contexts @ u.T) * cost[None, :]


def _context_sums(
    policy: LinUCBPolicy,
    A: FloatArray,  # noqa: N803
    counts: NDArray[np.int64],
) -> FloatArray:
    """Each arm's sum of learned contexts, read off the bias column of ``A``."""
    sums: FloatArray = A[:, :, -1].copy()
    sums[:, -1] -= policy.ridge
    if not np.allclose(sums[:, -1], counts, rtol=1e-9, atol=1e-6):
        raise ValueError(
            "policy: its statistics were not learned on contexts ending in the "
            "bias feature 1, so the cost weight cannot be changed exactly"
        )
    return sums


def _check_weights(weights: Sequence[float]) -> tuple[float, ...]:
    values = tuple(float(w) for w in weights)
    if not values:
        raise ValueError("cost_weights: at least one candidate is needed")
    for w in values:
        if not math.isfinite(w) or w < 0:
            raise ValueError(f"cost_weights: must be finite and >= 0, got {w}")
    return values


def _rows_from_dicts(
    rows: Sequence[Mapping[str, float] | object], models: Sequence[str]
) -> FloatArray:
    index = {name: j for j, name in enumerate(models)}
    matrix = np.full((len(rows), len(models)), np.nan)
    for i, row in enumerate(rows):
        if not isinstance(row, Mapping):
            raise TypeError(
                f"scores: row {i} is {type(row).__name__}; every row must be a "
                "{model name: score} dict"
            )
        unknown = sorted(str(name) for name in row if name not in index)
        if unknown:
            raise ValueError(
                f"scores: row {i} names unknown models {unknown}; known: {list(models)}"
            )
        for name, value in row.items():
            if isinstance(value, bool) or not isinstance(
                value, (int, float, np.number)
            ):
                raise TypeError(
                    f"scores: row {i}, model {name!r} is {value!r}, not a number"
                )
            matrix[i, index[name]] = float(value)
    return matrix
