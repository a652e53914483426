"""Load recorded LLM outcomes: ``models.json`` and ``*.jsonl`` rows of model scores.

The format is the one of ``../shared/data`` (see its README); every row must score
every model in ``models.json`` so each policy's choice can be evaluated. Ids may
repeat (MMLU asks some questions under two subjects); splits keep them together.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.float64]

PACKAGED_SAMPLES = Path(__file__).resolve().parents[1] / "data"
"""Small data set samples shipped with the library (see each one's README)."""


@dataclass(frozen=True)
class Outcomes:
    """One data set: per-query prompts and tasks, per-model scores and prices.

    ``scores`` has shape (rows, models); ``price`` is the mean of input and output
    $/Mtok per model and ``cost`` that price divided by the largest one.
    """

    name: str
    models: tuple[str, ...]
    price: FloatArray
    ids: tuple[str, ...]
    tasks: tuple[str, ...]
    prompts: tuple[str, ...]
    scores: FloatArray

    @property
    def cost(self) -> FloatArray:
        """Per-model cost normalised so the most expensive model costs 1."""
        top = float(self.price.max())
        return self.price / top if top > 0 else np.zeros_like(self.price)

    def __len__(self) -> int:
        return len(self.ids)

    def subset(self, rows: NDArray[np.int64]) -> Outcomes:
        """The rows at indices ``rows``, in that order."""
        idx = [int(i) for i in rows]
        return Outcomes(
            name=self.name,
            models=self.models,
            price=self.price,
            ids=tuple(self.ids[i] for i in idx),
            tasks=tuple(self.tasks[i] for i in idx),
            prompts=tuple(self.prompts[i] for i in idx),
            scores=self.scores[idx],
        )


def load_outcomes(directory: str | os.PathLike[str]) -> Outcomes:
    """Read and validate a data set folder (``models.json`` and ``*.jsonl`` files)."""
    folder = Path(directory)
    if not folder.is_dir():
        raise ValueError(f"{folder}: not a directory")
    models, price = _load_models(folder / "models.json")
    files = sorted(folder.glob("*.jsonl"))
    if not files:
        raise ValueError(f"{folder}: no *.jsonl files")
    ids: list[str] = []
    tasks: list[str] = []
    prompts: list[str] = []
    scores: list[list[float]] = []
    for path in files:
        with path.open(encoding="utf-8") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                where = f"{path}, line {number}"
                row_id, task, prompt, row = _parse_row(line, models, where)
                ids.append(row_id)
                tasks.append(task)
                prompts.append(prompt)
                scores.append(row)
    if not ids:
        raise ValueError(f"{folder}: the *.jsonl files hold no rows")
    return Outcomes(
        name=folder.resolve().name,
        models=models,
        price=price,
        ids=tuple(ids),
        tasks=tuple(tasks),
        prompts=tuple(prompts),
        scores=np.array(scores, dtype=np.float64),
    )


def _load_models(path: Path) -> tuple[tuple[str, ...], FloatArray]:
    if not path.is_file():
        raise ValueError(f"{path}: missing (the data set's model list and prices)")
    try:
        spec = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise ValueError(f"{path}: invalid JSON ({exc})") from exc
    entries = spec.get("models") if isinstance(spec, dict) else None
    if not isinstance(entries, list) or not entries:
        raise ValueError(f"{path}: 'models' must be a non-empty list")
    names: list[str] = []
    prices: list[float] = []
    for i, entry in enumerate(entries):
        where = f"{path}: models[{i}]"
        if not isinstance(entry, dict) or not isinstance(entry.get("name"), str):
            raise ValueError(f"{where}: expected an object with a string 'name'")
        if entry["name"] in names:
            raise ValueError(f"{where}: model {entry['name']!r} is listed twice")
        pair = [
            _price(entry, key, where)
            for key in ("input_usd_per_mtok", "output_usd_per_mtok")
        ]
        names.append(entry["name"])
        prices.append(sum(pair) / 2)
    return tuple(names), np.array(prices, dtype=np.float64)


def _price(entry: dict[str, Any], key: str, where: str) -> float:
    value = entry.get(key)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"{where}: {key!r} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ValueError(f"{where}: {key!r} must be finite and >= 0, got {value!r}")
    return float(value)


def _parse_row(
    line: str, models: tuple[str, ...], where: str
) -> tuple[str, str, str, list[float]]:
    try:
        record = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"{where}: invalid JSON ({exc})") from exc
    if not isinstance(record, dict):
        raise ValueError(f"{where}: expected a JSON object")
    for key in ("id", "task", "prompt"):
        if not isinstance(record.get(key), str):
            raise ValueError(f"{where}: {key!r} must be a string")
    given = record.get("scores")
    if not isinstance(given, dict):
        raise ValueError(f"{where}: 'scores' must be an object {{model: score}}")
    unknown = sorted(set(given) - set(models))
    if unknown:
        raise ValueError(
            f"{where}: unknown model(s) {unknown}; models.json has {list(models)}"
        )
    absent = [m for m in models if m not in given]
    if absent:
        raise ValueError(f"{where}: no score for model(s) {absent}")
    row: list[float] = []
    for model in models:
        value = given[model]
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ValueError(
                f"{where}: score of {model!r} must be a number, got {value!r}"
            )
        if not 0.0 <= value <= 1.0:
            raise ValueError(f"{where}: score of {model!r} is {value}, outside [0, 1]")
        row.append(float(value))
    return record["id"], record["task"], record["prompt"], row
