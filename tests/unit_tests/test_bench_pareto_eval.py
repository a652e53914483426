"""Planning evaluation on a tiny recorded-outcome data set with a fake embedder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from langchain_metallm.bench.pareto_eval import evaluate_planning, plot_planning
from langchain_metallm.bench.runner import Prepared, prepare

from .fakes import TaskWordEmbeddings

PRICES = {"weak": 0.1, "mid": 0.3, "strong": 1.0}
SKILL = {"easy": (1.0, 1.0, 1.0), "medium": (0.0, 0.8, 1.0), "hard": (0.0, 0.0, 0.9)}


@pytest.fixture
def prepared(tmp_path: Path) -> Prepared:
    folder = tmp_path / "tiny3"
    folder.mkdir()
    models = [
        {"name": m, "input_usd_per_mtok": p, "output_usd_per_mtok": p}
        for m, p in PRICES.items()
    ]
    (folder / "models.json").write_text(json.dumps({"models": models}))
    rng = np.random.default_rng(1)
    lines = []
    for task, skill in SKILL.items():
        for i in range(50):
            right = rng.uniform(size=3) < np.array(skill)
            scores = dict(zip(PRICES, right.astype(float).tolist(), strict=True))
            record = {"id": f"{task}{i}", "task": task, "prompt": f"{task} q{i}"}
            lines.append(json.dumps({**record, "scores": scores}))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return prepare(
        folder,
        embeddings=TaskWordEmbeddings(
            "task-test-embedder", dim=6, noise=0.05, normalize=False
        ),
        cache_dir=tmp_path / "cache",
        progress=False,
    )


def test_planned_budgets_are_kept_and_measured_on_the_outcomes(
    prepared: Prepared,
) -> None:
    result = evaluate_planning(prepared, n_budgets=10, cost_weights=(0.0, 0.3, 1.0))
    assert len(result.rows) == 10 and result.n_test == 30
    budgets = [r.budget for r in result.rows]
    assert budgets == sorted(budgets) and budgets[0] == pytest.approx(0.1)
    problem = prepared.problem
    for row in result.rows:
        assert row.cost <= row.budget + 1e-9
        assert row.robust_cost <= row.budget + 1e-9
        assert 0.0 <= row.realised <= 1.0
    gaps = [r.predicted - r.realised for r in result.rows]
    assert result.mean_abs_gap == pytest.approx(np.abs(gaps).mean())
    # the realised front ends at the plans' true accuracy, not the prediction
    assert result.front.realised[0] == pytest.approx(problem.test_scores[:, 0].mean())
    assert result.reference == "strong" and result.reference_cost == 1.0
    # with task-separable data, planning beats the best single model's cost
    front = next(s for s in result.savings if s.approach == "planned, realised front")
    assert front.target == result.reference_accuracy
    assert front.saved is not None and front.saved > 0.3
    assert len(result.savings) == 10 and len(result.online) == 3


def test_outputs_table_json_and_plot(prepared: Prepared, tmp_path: Path) -> None:
    result = evaluate_planning(prepared, n_budgets=4, cost_weights=(0.0, 0.5))
    table = result.table()
    assert len(result.rows) == 4 and "cost saved" in table
    assert all(
        f"\n| {row.budget:.3f} | {row.cost:.3f} |" in table for row in result.rows
    )
    record = json.loads(result.write_json(tmp_path / "out.json").read_text())
    assert record["dataset"] == "tiny3" and len(record["rows"]) == 4
    png = plot_planning(result, tmp_path / "plot.png")
    assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size < 200_000


def test_at_least_two_budgets(prepared: Prepared) -> None:
    with pytest.raises(ValueError, match="n_budgets"):
        evaluate_planning(prepared, n_budgets=1)
