"""Loading recorded outcomes (validation errors name file and line) and the splits."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm.bench.data import load_outcomes
from langchain_metallm.bench.splits import make_split, random_split, task_split

MODELS = [
    {"name": "small", "input_usd_per_mtok": 0.1, "output_usd_per_mtok": 0.3},
    {"name": "large", "input_usd_per_mtok": 1.0, "output_usd_per_mtok": 3.0},
]


def write_dataset(
    folder: Path, rows: list[dict[str, Any]], models: Any = None, name: str = "a"
) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    spec = {"source": "test", "license": "MIT", "models": models or MODELS}
    (folder / "models.json").write_text(json.dumps(spec))
    lines = [r if isinstance(r, str) else json.dumps(r) for r in rows]
    (folder / f"{name}.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def row(
    i: int, task: str = "t0", small: float = 0.0, large: float = 1.0
) -> dict[str, Any]:
    return {
        "id": f"q{i}",
        "task": task,
        "prompt": f"question {i} about {task}",
        "scores": {"small": small, "large": large},
    }


def test_loads_rows_prices_and_normalised_cost(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path / "ds", [row(0), row(1, small=0.5, large=0.25)])
    data = load_outcomes(folder)
    assert data.name == "ds"
    assert data.models == ("small", "large")
    np.testing.assert_allclose(data.price, [0.2, 2.0])
    np.testing.assert_allclose(data.cost, [0.1, 1.0])
    np.testing.assert_allclose(data.scores, [[0.0, 1.0], [0.5, 0.25]])
    assert data.ids == ("q0", "q1")
    assert data.tasks == ("t0", "t0")


def test_reads_every_jsonl_file(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [row(0)], name="a")
    (folder / "b.jsonl").write_text(json.dumps(row(1)) + "\n\n")
    assert load_outcomes(folder).ids == ("q0", "q1")


@pytest.mark.parametrize(
    ("bad", "message"),
    [
        ({**row(1), "scores": {"small": 0.0, "huge": 1.0}}, r"line 2: unknown model"),
        (
            {**row(1), "scores": {"small": 0.0, "large": 1.5}},
            r"line 2: .*outside \[0, 1\]",
        ),
        (
            {**row(1), "scores": {"small": -0.1, "large": 1}},
            r"line 2: .*outside \[0, 1\]",
        ),
        ({**row(1), "scores": {"small": 0.0}}, r"line 2: no score for model"),
        (
            {**row(1), "scores": {"small": "x", "large": 1}},
            r"line 2: .*must be a number",
        ),
        ({"id": "q1", "task": "t", "scores": {}}, r"line 2: 'prompt' must be a string"),
        ("{not json", r"line 2: invalid JSON"),
    ],
)
def test_bad_rows_name_file_and_line(tmp_path: Path, bad: Any, message: str) -> None:
    folder = write_dataset(tmp_path, [row(0), bad])
    with pytest.raises(ValueError, match=message) as info:
        load_outcomes(folder)
    assert str(folder / "a.jsonl") in str(info.value)


def test_empty_data_is_an_error(tmp_path: Path) -> None:
    folder = write_dataset(tmp_path, [])
    (folder / "a.jsonl").write_text("\n")
    with pytest.raises(ValueError, match="hold no rows"):
        load_outcomes(folder)


def test_missing_files_are_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a directory"):
        load_outcomes(tmp_path / "nope")
    with pytest.raises(ValueError, match=r"models\.json: missing"):
        load_outcomes(tmp_path)
    write_dataset(tmp_path, [row(0)])
    (tmp_path / "a.jsonl").unlink()
    with pytest.raises(ValueError, match=r"no \*\.jsonl files"):
        load_outcomes(tmp_path)


@pytest.mark.parametrize(
    ("models", "message"),
    [
        ([], "non-empty list"),
        ([MODELS[0], MODELS[0]], "listed twice"),
        ([{"name": "x", "input_usd_per_mtok": -1, "output_usd_per_mtok": 1}], ">= 0"),
        ([{"name": "x", "input_usd_per_mtok": 1}], "'output_usd_per_mtok' must be"),
    ],
)
def test_bad_models_json(tmp_path: Path, models: Any, message: str) -> None:
    folder = write_dataset(tmp_path, [row(0)], models=models or [])
    if not models:
        (folder / "models.json").write_text(json.dumps({"models": []}))
    with pytest.raises(ValueError, match=message):
        load_outcomes(folder)


def many_rows(tmp_path: Path, n_tasks: int = 5, per_task: int = 20) -> Path:
    rows = [
        row(t * per_task + i, task=f"t{t}")
        for t in range(n_tasks)
        for i in range(per_task)
    ]
    return write_dataset(tmp_path, rows)


def test_random_split_is_disjoint_complete_and_seeded(tmp_path: Path) -> None:
    data = load_outcomes(many_rows(tmp_path))
    split = random_split(data, seed=3)
    assert set(split.train).isdisjoint(split.test)
    assert sorted([*split.train, *split.test]) == list(range(len(data)))
    assert len(split.test) == 20
    again = random_split(data, seed=3)
    np.testing.assert_array_equal(split.test, again.test)
    other = random_split(data, seed=4)
    assert set(other.test) != set(split.test)


def test_random_split_keeps_repeated_ids_together(tmp_path: Path) -> None:
    rows = [row(i) for i in range(30)] + [{**row(i), "task": "copy"} for i in range(30)]
    data = load_outcomes(write_dataset(tmp_path, rows))
    split = random_split(data, seed=0)
    train_ids = {data.ids[i] for i in split.train}
    test_ids = {data.ids[i] for i in split.test}
    assert train_ids.isdisjoint(test_ids)


def test_task_split_holds_out_whole_tasks(tmp_path: Path) -> None:
    data = load_outcomes(many_rows(tmp_path, n_tasks=10))
    split = make_split(data, "tasks", seed=1)
    assert len(split.held_out_tasks) == 2
    test_tasks = {data.tasks[i] for i in split.test}
    train_tasks = {data.tasks[i] for i in split.train}
    assert test_tasks == set(split.held_out_tasks)
    assert train_tasks.isdisjoint(test_tasks)
    assert make_split(data, "tasks", seed=1).held_out_tasks == split.held_out_tasks
    seeds = {make_split(data, "tasks", seed=s).held_out_tasks for s in range(5)}
    assert len(seeds) > 1


def test_task_split_by_name_and_errors(tmp_path: Path) -> None:
    data = load_outcomes(many_rows(tmp_path, n_tasks=3))
    split = task_split(data, held_out=["t1"])
    assert {data.tasks[i] for i in split.test} == {"t1"}
    with pytest.raises(ValueError, match="unknown task"):
        task_split(data, held_out=["t9"])
    with pytest.raises(ValueError, match="not all"):
        task_split(data, held_out=["t0", "t1", "t2"])
    with pytest.raises(ValueError, match="expected 'random' or 'tasks'"):
        make_split(data, "rows")
    with pytest.raises(ValueError, match="test_fraction"):
        random_split(data, test_fraction=1.0)


def test_task_split_needs_two_tasks(tmp_path: Path) -> None:
    data = load_outcomes(many_rows(tmp_path, n_tasks=1))
    with pytest.raises(ValueError, match="has 1 task"):
        task_split(data)
