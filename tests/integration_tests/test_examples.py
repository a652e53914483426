"""The demo (llmrouter9), the GSM8K replay and the agent example, run end to end
on small inputs."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import pytest
from langchain_core.messages import AIMessage, ToolMessage

from langchain_metallm.testing import default_gsm8k_path

from .embedders import HashingEmbeddings

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        f"example_{name}", EXAMPLES / f"{name}.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


gsm8k = load("gsm8k_replay")
agent = load("agent")
demo = load("llmrouter9_demo")


def test_demo_routes_many_tasks_prints_its_tables_and_writes_the_report(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``make demo`` in a reduced mode: about 140 rows, two budgets."""
    quick = ["--limit", "140", "--budgets", "0.5,0.25"]
    files = ["--out", str(tmp_path), "--cache-dir", str(tmp_path / "cache")]
    summary = demo.main([*quick, *files], embedder=HashingEmbeddings())
    printed = capsys.readouterr().out
    assert "[recorded llmrouter9 outcome for " in printed
    labels = ["budget 50%", "budget 25%", "cost weight 0"]
    assert [run.label for run in summary.runs] == labels
    assert all(f"router, {label}" in printed for label in labels)
    models = summary.baselines.models
    assert len(models) == 9 and all(f"always {m}" in printed for m in models)
    assert "random, uniform over the 9 models" in printed
    assert [m.share for m in summary.marks] == [0.5, 0.35, 0.25]
    assert "Accuracy at a share of the best single model's cost" in printed
    assert "Where each task's calls went (budget 50%)" in printed
    # Every held-out call went over HTTP and was graded with its recorded score.
    held_out = summary.n_held_out
    assert 30 <= held_out <= 60 and summary.n_train > held_out
    stats = summary.router.stats()
    assert stats["applied"] == held_out and stats["pending"] == 0
    for run in summary.runs:
        assert len(run.chosen) == held_out and set(run.chosen) <= set(models)
        assert 0 <= run.accuracy <= 1
    budgeted = summary.runs[0]
    assert budgeted.cost <= summary.runs[-1].cost + 1e-9  # a budget spends less
    assert summary.plot.read_bytes().startswith(b"\x89PNG")
    report = summary.report.read_text(encoding="utf-8")
    assert report.startswith("<!DOCTYPE html>") or "<html" in report[:200]
    assert str(summary.report) in printed
    saved = json.loads((tmp_path / "llmrouter9_demo.json").read_text())
    assert [r["label"] for r in saved["runs"]] == labels


def test_gsm8k_demo_table_plot_and_rewards(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    summary = gsm8k.main(
        ["--limit", "40", "--out", str(tmp_path), "--cache-dir", str(tmp_path / "c")],
        embedder=HashingEmbeddings(),
    )
    policies = [row.policy for row in summary.table]
    assert policies == [
        "MetaLLM router",
        "always mixtral",
        "always gpt-4",
        "random, equal cost",
    ]
    printed = capsys.readouterr().out
    assert all(policy in printed for policy in policies)
    router_row, mixtral, gpt4, random_row = summary.table
    assert (summary.warmup_questions, summary.online_questions) == (10, 30)
    # Baselines over HTTP grade exactly like the recorded answers do.
    rows = gsm8k.load_rows(default_gsm8k_path(), 40, 0)[10:]
    for row, name in ((mixtral, "mixtral"), (gpt4, "gpt-4")):
        expected = [
            gsm8k.grade(r["responses"][gsm8k.CHILDREN[name]], r["answer"]) for r in rows
        ]
        assert row.accuracy == pytest.approx(sum(expected) / len(expected))
        assert row.share[name] == 1.0
    assert 0 < mixtral.dollars < gpt4.dollars
    assert random_row.dollars == pytest.approx(router_row.dollars)
    assert sum(router_row.share.values()) == pytest.approx(1.0)
    # Every online decision was rewarded; the warm start observed both children.
    router = summary.router
    assert router.stats()["applied"] == 30 and router.stats()["pending"] == 0
    assert router.policy.counts.sum() == 2 * 10 + 30
    assert summary.plot.read_bytes().startswith(b"\x89PNG")
    saved = json.loads((tmp_path / "gsm8k_replay.json").read_text())
    assert [r["policy"] for r in saved] == policies
    # The curve: one point per cost weight; spend falls as the weight rises.
    assert [p.cost_weight for p in summary.curve] == list(gsm8k.CURVE_WEIGHTS)
    assert summary.curve[0].dollars >= summary.curve[-1].dollars
    assert all(0 <= p.gpt4_share <= 1 for p in summary.curve)
    assert summary.curve_plot.read_bytes().startswith(b"\x89PNG")
    assert "CPT(50%)" in printed or summary.apgr_cpt50 is None
    assert "summary: router" in printed


@pytest.mark.parametrize(
    ("text", "gold", "score"),
    [
        ("so 9 * 2 = 18\n#### 18", "18", 1.0),
        ("#### 1,450,000", "1,450,000", 1.0),
        ("The answer is $18.00.", "18", 1.0),
        ("#### 17", "18", 0.0),
        ("no number here", "18", 0.0),
    ],
)
def test_gsm8k_grader_parses_the_final_number(
    text: str, gold: str, score: float
) -> None:
    assert gsm8k.grade(text, gold) == score


def test_agent_completes_the_task_and_its_decisions_are_rewarded() -> None:
    run = agent.main(embeddings=HashingEmbeddings())
    tools = [m for m in run.messages if isinstance(m, ToolMessage)]
    assert [t.text for t in tools] == ["18"]
    final = run.messages[-1]
    assert isinstance(final, AIMessage) and final.text.endswith("#### 18")
    assert len(run.routed) == 2 and set(run.routed) <= set(agent.CHILDREN)
    stats = run.router.stats()
    assert stats["applied"] == 2 and stats["pending"] == 0
    assert run.router.policy.counts.sum() == 2


@pytest.mark.parametrize(
    ("expression", "value"), [("(16 - 3 - 4) * 2", 18.0), ("-2 ** 3 / 4", -2.0)]
)
def test_calculator_evaluates_arithmetic(expression: str, value: float) -> None:
    assert agent.evaluate(expression) == value


@pytest.mark.parametrize("expression", ["__import__('os')", "x + 1", "2 +", "True + 1"])
def test_calculator_refuses_anything_else(expression: str) -> None:
    with pytest.raises(ValueError, match="calculator"):
        agent.evaluate(expression)
