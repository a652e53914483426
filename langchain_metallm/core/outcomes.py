"""Recorded outcomes handed to ``fit`` and calibration: prompts and their scores,
checked once here with errors that name the bad row and model."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TypeAlias

import numpy as np
from numpy.typing import ArrayLike, NDArray

FloatArray = NDArray[np.float64]
Scores: TypeAlias = "ArrayLike | Sequence[Mapping[str, float]]"
"""Per-prompt scores: an (n, models) array or one ``{model name: score}`` per row."""


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
            raw = np.asarray(scores)
            if raw.dtype.kind not in "iuf":  # strings, objects, bools: not scores
                raise TypeError(f"got values of type {raw.dtype}")
            matrix = raw.astype(np.float64)
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
