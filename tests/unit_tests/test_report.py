"""The report of what a router learned: one offline HTML file, the CLI, the summary."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
from dataclasses import replace
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.report import (
    PALETTE,
    render_evaluation,
    report_data,
    saved_report_data,
)
from langchain_metallm.report_cli import main
from tests.unit_tests.fakes import (
    KINDS,
    NamedEmbeddings,
    TaskWordEmbeddings,
    echo_router,
    query,
    serve,
)

COSTS = {"small": 0.1, "medium": 0.4, "large": 1.0}
ROWS = [
    {
        "cost_weight": weight,
        "accuracy": accuracy,
        "accuracy_low": accuracy - 0.05,
        "accuracy_high": accuracy + 0.05,
        "cost": cost,
        "cost_low": cost - 0.02,
        "cost_high": cost + 0.02,
        "shares": {"small": 1 - cost, "large": cost},
    }
    for weight, accuracy, cost in ((0.0, 0.9, 0.8), (0.5, 0.8, 0.4), (1.0, 0.7, 0.2))
]


def _score(prompt: str, model: str) -> float:
    """Poems: every child is good; maths: only the large child is."""
    if "poem" in prompt:
        return 0.9
    return {"small": 0.2, "medium": 0.5, "large": 0.95}[model]


def _prompts(n: int) -> list[str]:
    return [query(KINDS[i % 2], i) for i in range(n)]


def _served(n: int = 120, **overrides: object) -> tuple[MetaLLMRouterChatModel, list]:
    """A router over ``COSTS``, warm-started, that served ``n`` prompts (with
    feedback) and explored the other children on every fifth call."""
    settings = {"embeddings": NamedEmbeddings(), "online_clusters": False}
    router = echo_router(COSTS, **{**settings, **overrides})
    warm = [query(KINDS[i % 2], 1_000 + i) for i in range(40)]
    router.fit(warm, [{c: _score(p, c) for c in COSTS} for p in warm])
    prompts = _prompts(n)
    serve(router, prompts, _score)
    log = router.core.log
    for i, logged in enumerate(log.records()):
        if i % 5 == 0:  # as background exploration will log it
            decision = logged.decision
            others = tuple(n for n in COSTS if n != decision.answered)
            scores = dict(logged.scores)
            digest = hashlib.sha256(prompts[i].encode()).hexdigest()
            log.add(replace(decision, explored=others, query_hash=digest))
            for child, score in scores.items():
                log.observe(decision.run_id, child, score=score)
            for child in others:
                log.observe(decision.run_id, child, score=_score(prompts[i], child))
    return router, prompts


class _Tags(HTMLParser):
    """Every start tag with its attributes, and the text."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def handle_data(self, data: str) -> None:
        self.text.append(data)


def _parse(html: str) -> _Tags:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser


def _check_self_contained(html: str) -> _Tags:
    """Nothing is fetched: no script, stylesheet, frame or font link; every
    picture is inline SVG or a data: URI; no http(s) address anywhere."""
    parsed = _parse(html)
    names = [tag for tag, _ in parsed.tags]
    assert not {"script", "link", "iframe", "object", "embed"} & set(names)
    for tag, attrs in parsed.tags:
        for key in ("src", "href", "xlink:href", "data", "srcset", "poster"):
            value = attrs.get(key)
            if value is not None:
                assert value.startswith("data:"), (tag, key, value)
        if tag == "img":
            assert (attrs.get("src") or "").startswith("data:")
    assert "http://" not in html and "https://" not in html
    assert "url(" not in html and "@import" not in html
    return parsed


def test_the_report_is_one_offline_file_with_every_child_and_no_prompt_text(
    tmp_path: Path,
) -> None:
    router, prompts = _served(budget=0.5)
    path = router.report(tmp_path / "report.html")
    html = path.read_text(encoding="utf-8")
    parsed = _check_self_contained(html)
    charts = [attrs for tag, attrs in parsed.tags if tag == "svg"]
    assert len([c for c in charts if c.get("class") == "chart"]) >= 5
    text = " ".join(parsed.text)
    for name in COSTS:
        assert name in text
    for section in (
        "Share of calls",
        "Spend per call",
        "Feedback received",
        "Score per task",
        "Cooldowns",
        "Exploration",
    ):
        assert section in text
    assert "budget 0.500" in text
    for prompt in prompts:
        assert prompt not in html
    assert "math question" not in html and "poem number" not in html
    for logged in router.core.log.records():
        assert logged.decision.run_id not in html
        if logged.decision.query_hash is not None:
            assert logged.decision.query_hash not in html
    # each child's colour is drawn in the share chart
    for color in PALETTE[: len(COSTS)]:
        assert f'fill="{color}"' in html


def test_the_report_of_a_router_that_never_routed_says_so(tmp_path: Path) -> None:
    router = echo_router(COSTS)
    html = router.report(tmp_path / "empty.html").read_text(encoding="utf-8")
    _check_self_contained(html)
    assert "No calls in the decision log yet." in html
    assert "small" in router.summary()
    assert "<table>" in router._repr_html_()


def test_per_task_scores_are_predicted_on_fair_contexts_or_observed() -> None:
    prompts = [f"{('alpha', 'beta', 'gamma')[i % 3]} question {i}" for i in range(330)]
    scores = [{"small": float(p[0] == "a"), "large": 0.9} for p in prompts]
    costs = {"small": 0.2, "large": 1.0}
    clustered = echo_router(costs, embeddings=TaskWordEmbeddings())
    clustered.fit(prompts, scores)
    table = report_data(clustered).tasks
    assert (table.kind, table.basis) == ("clusters", "predicted")
    clusters = clustered.task_classifier
    assert clusters is not None and table.tasks == clusters.tasks
    policy = clustered.policy
    assert policy is not None
    # the outcomes on each cluster's slot add up to every fitted prompt
    learned = np.array(table.weights).sum(axis=0)
    np.testing.assert_allclose(learned, policy.counts, atol=1e-6)

    labelled = echo_router(costs, embeddings=TaskWordEmbeddings())
    labelled.fit(prompts, scores, tasks=[p.split()[0] for p in prompts])
    serve(labelled, prompts[:30], lambda p, m: scores[0][m])
    table = report_data(labelled).tasks
    assert (table.kind, table.basis) == ("task classifier", "observed")
    assert set(table.tasks) == {"alpha", "beta", "gamma"}
    assert sum(table.calls) == 30
    assert "no fair context" in table.note


def test_the_cli_writes_the_report_from_a_save_and_a_decision_log(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    router, prompts = _served(budget=0.5)
    router.save(tmp_path / "state")
    router.core.log.to_jsonl(tmp_path / "decisions.jsonl")
    (tmp_path / "rows.json").write_text(json.dumps(ROWS), encoding="utf-8")
    out = tmp_path / "saved.html"
    code = main(
        [
            str(tmp_path / "state"),
            "--decisions",
            str(tmp_path / "decisions.jsonl"),
            "--evaluation",
            str(tmp_path / "rows.json"),
            "-o",
            str(out),
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "feedback: counters are not saved" in printed and str(out) in printed
    html = out.read_text(encoding="utf-8")
    parsed = _check_self_contained(html)
    text = " ".join(parsed.text)
    for name in COSTS:
        assert name in text
    assert "cost weight 0.5" in text  # the evaluation rows' table
    assert "Estimated accuracy against cost" in html
    assert all(prompt not in html for prompt in prompts)
    live = report_data(router)
    saved = saved_report_data(tmp_path / "state", tmp_path / "decisions.jsonl")
    assert saved.learned == live.learned and saved.budget == live.budget
    assert len(saved.records) == len(live.records)
    np.testing.assert_allclose(saved.tasks.values, live.tasks.values)
    with pytest.raises(SystemExit, match="not a router save"):
        main([str(tmp_path), "-o", str(out)])


def test_the_summary_fits_one_screen() -> None:
    router, _ = _served(budget=0.5)
    text = router.summary()
    lines = text.splitlines()
    assert len(lines) <= 24 and max(map(len, lines)) <= 100
    assert lines[0] == "metallm router 'metallm-router': live; 3 children"
    assert lines[1].startswith("decision log: 120 calls (120 scored, 24 explored")
    stats = router.stats()
    assert f"applied {stats['applied']}," in text and "refused 0" in text
    assert "budget 0.500 per call" in text and "paced cost weight now" in text
    rows = {line.split()[0]: line.split() for line in lines[4:7]}
    assert set(rows) == set(COSTS)
    share = sum(float(row[1].rstrip("%")) for row in rows.values())
    assert share == pytest.approx(100.0, abs=0.2)
    fixed = echo_router(COSTS, cost_weight=0.2)
    assert "cost weight 0.200 (fixed)" in fixed.summary()


def test_evaluation_rows_render_as_a_table_and_a_plot() -> None:
    html = render_evaluation(ROWS, ["small", "large"], (0.5, 0.85))
    parsed = _check_self_contained(html)
    assert sum(tag == "svg" for tag, _ in parsed.tags) >= 1
    assert "cost weight 0.5" in html and "[0.750, 0.850]" in html
    with pytest.raises(ValueError, match="'cost_weight' or 'budget'"):
        render_evaluation([{"accuracy": 0.5, "cost": 0.1}])


def _chromium() -> str:
    """The headless browser, or skip (fail under CI: it must run there)."""
    binary = shutil.which("chromium") or shutil.which("chromium-browser")
    if binary is None:
        reason = "no chromium binary (install it: apt-get install chromium)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must render the report")
        pytest.skip(reason)
    return binary


def test_a_browser_draws_every_picture_of_the_report(tmp_path: Path) -> None:
    from PIL import Image

    browser = _chromium()
    router, _ = _served(budget=0.5)
    path = router.report(tmp_path / "report.html", evaluation=ROWS)
    shot = tmp_path / "shot.png"
    subprocess.run(
        [
            browser,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--hide-scrollbars",
            f"--user-data-dir={tmp_path / 'profile'}",
            f"--screenshot={shot}",
            "--window-size=1200,3000",
            path.resolve().as_uri(),
        ],
        check=True,
        capture_output=True,
        timeout=120,
    )
    pixels = np.asarray(Image.open(shot).convert("RGB")).astype(int)
    assert pixels.shape[:2] == (3000, 1200)
    page = np.array([0xF3, 0xF4, 0xF7])
    drawn = (np.abs(pixels - page).sum(axis=2) > 30) & (pixels.sum(axis=2) < 720)
    assert drawn.mean() > 0.05  # not a blank page
    for color in PALETTE[: len(COSTS)]:  # each child's area in the share chart
        rgb = np.array([int(color[i : i + 2], 16) for i in (1, 3, 5)])
        painted = (np.abs(pixels - rgb).sum(axis=2) < 12).sum()
        assert painted > 2_000, color
