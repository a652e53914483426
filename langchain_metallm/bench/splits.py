"""Train/test splits of a data set: seeded random rows, or whole tasks held out.

Rows that share an id (the same prompt recorded twice) always land on the same
side, so no test prompt is ever seen in training.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.bench.data import Outcomes

IndexArray = NDArray[np.int64]


@dataclass(frozen=True)
class Split:
    """Row indices of the training and test parts, and what was held out."""

    kind: str
    seed: int
    train: IndexArray
    test: IndexArray
    held_out_tasks: tuple[str, ...] = ()


def random_split(data: Outcomes, *, test_fraction: float = 0.2, seed: int = 0) -> Split:
    """Hold out a seeded random ``test_fraction`` of the ids (default 80/20)."""
    _check_fraction(test_fraction)
    groups = sorted(set(data.ids))
    if len(groups) < 2:
        raise ValueError("random split: needs at least two distinct ids")
    order = np.random.default_rng(seed).permutation(len(groups))
    n_test = min(max(1, round(test_fraction * len(groups))), len(groups) - 1)
    test_ids = {groups[i] for i in order[:n_test]}
    return _split("random", seed, data.ids, test_ids)


def task_split(
    data: Outcomes,
    *,
    test_fraction: float = 0.2,
    seed: int = 0,
    held_out: Sequence[str] | None = None,
) -> Split:
    """Leave tasks out: test on whole tasks never seen in training.

    ``held_out`` names the test tasks; otherwise a seeded ``test_fraction`` of the
    tasks (at least one, never all) is drawn.
    """
    tasks = sorted(set(data.tasks))
    if len(tasks) < 2:
        raise ValueError(
            f"task split: {data.name} has {len(tasks)} task(s); needs at least two"
        )
    if held_out is None:
        _check_fraction(test_fraction)
        n_test = min(max(1, round(test_fraction * len(tasks))), len(tasks) - 1)
        order = np.random.default_rng(seed).permutation(len(tasks))
        chosen = sorted(tasks[i] for i in order[:n_test])
    else:
        chosen = sorted(set(held_out))
        unknown = sorted(set(chosen) - set(tasks))
        if unknown:
            raise ValueError(f"task split: unknown task(s) {unknown}; have {tasks}")
        if not chosen or len(chosen) == len(tasks):
            raise ValueError("task split: hold out at least one task and not all")
    test_rows = np.isin(np.array(data.tasks), chosen)
    test_ids = {i for i, t in zip(data.ids, test_rows, strict=True) if t}
    split = _split("tasks", seed, data.ids, test_ids)
    return Split(split.kind, seed, split.train, split.test, tuple(chosen))


def make_split(
    data: Outcomes, kind: str, *, test_fraction: float = 0.2, seed: int = 0
) -> Split:
    """``random_split`` or ``task_split`` by name (``"random"`` or ``"tasks"``)."""
    if kind == "random":
        return random_split(data, test_fraction=test_fraction, seed=seed)
    if kind == "tasks":
        return task_split(data, test_fraction=test_fraction, seed=seed)
    raise ValueError(f"split: expected 'random' or 'tasks', got {kind!r}")


def _split(kind: str, seed: int, ids: Sequence[str], test_ids: set[str]) -> Split:
    in_test = np.array([i in test_ids for i in ids])
    train = np.flatnonzero(~in_test).astype(np.int64)
    test = np.flatnonzero(in_test).astype(np.int64)
    if not len(train) or not len(test):
        raise ValueError(f"{kind} split: both parts must be non-empty")
    return Split(kind, seed, train, test)


def _check_fraction(test_fraction: float) -> None:
    if not 0.0 < test_fraction < 1.0:
        raise ValueError(f"test_fraction: must be in (0, 1), got {test_fraction}")
