"""Embedding cache, ``run_benchmark`` and the ``metallm-bench`` CLI on tiny data."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest

from langchain_metallm.bench import cli, run_benchmark
from langchain_metallm.bench.cache import EmbeddingCache, text_key
from langchain_metallm.bench.cli import main
from langchain_metallm.bench.routers import OnlineLinUCB
from langchain_metallm.bench.runner import prepare

from .fakes import TaskWordEmbeddings


def counting() -> TaskWordEmbeddings:
    """8 normalised dims that count the texts they embed."""
    return TaskWordEmbeddings("counting-test-embedder")


def test_cache_embeds_each_text_once_and_persists(tmp_path: Path) -> None:
    embedder = counting()
    cache = EmbeddingCache(embedder, tmp_path, batch_size=2)
    first = cache.embed(["a x", "b y", "a x", "c z"], progress=False)
    assert sorted(embedder.calls) == ["a x", "b y", "c z"]
    np.testing.assert_array_equal(first[0], first[2])
    again = cache.embed(["c z", "a x"], progress=False)
    assert len(embedder.calls) == 3
    np.testing.assert_allclose(again, first[[3, 0]], rtol=1e-6)
    # a new cache object reads the shards from disk
    fresh = EmbeddingCache(embedder, tmp_path)
    np.testing.assert_allclose(fresh.embed(["b y"], progress=False), first[[1]])
    assert len(embedder.calls) == 3
    assert (tmp_path / "counting-test-embedder").is_dir()


def test_cache_is_keyed_by_embedder_name(tmp_path: Path) -> None:
    embedder = counting()
    EmbeddingCache(embedder, tmp_path).embed(["a x"], progress=False)
    EmbeddingCache(embedder, tmp_path, name="other").embed(["a x"], progress=False)
    assert embedder.calls == ["a x", "a x"]
    assert text_key("a x") == hashlib.sha256(b"a x").hexdigest()


def test_cache_rejects_a_wrong_shaped_embedder(tmp_path: Path) -> None:
    class Broken(TaskWordEmbeddings):
        def embed_documents(self, texts: list[str]) -> list[list[float]]:
            return [[0.0, 1.0]]

    with pytest.raises(ValueError, match="returned shape"):
        EmbeddingCache(Broken(), tmp_path).embed(["a", "b"], progress=False)


def write_tiny(folder: Path, n_per_task: int = 30) -> Path:
    """Two models; the cheap one is right on 'easy' prompts, the dear one always."""
    folder.mkdir(parents=True)
    models = [
        {"name": "weak", "input_usd_per_mtok": 0.5, "output_usd_per_mtok": 0.5},
        {"name": "strong", "input_usd_per_mtok": 5, "output_usd_per_mtok": 15},
    ]
    (folder / "models.json").write_text(json.dumps({"models": models}))
    rng = np.random.default_rng(0)
    lines = []
    for task in ("easy", "hard", "mixed"):
        for i in range(n_per_task):
            weak = {"easy": 1.0, "hard": 0.0, "mixed": float(rng.integers(0, 2))}[task]
            strong = 1.0 if task != "mixed" else float(rng.integers(0, 2))
            record = {
                "id": f"{task}{i}",
                "task": task,
                "prompt": f"{task} question number {i}",
                "scores": {"weak": weak, "strong": strong},
            }
            lines.append(json.dumps(record))
    (folder / "train.jsonl").write_text("\n".join(lines) + "\n")
    return folder


def test_run_benchmark_compares_every_policy(tmp_path: Path) -> None:
    data = write_tiny(tmp_path / "tiny")
    result = run_benchmark(
        data,
        embeddings=counting(),
        cache_dir=tmp_path / "cache",
        cost_weights=[0.0, 0.2, 0.5, 1.0],
        knn_k=5,
        features="tasks",
        progress=False,
    )
    names = [c.policy for c in result.curves]
    assert names == [
        "weak",
        "strong",
        "random",
        "oracle",
        "knn-5",
        "ridge-offline",
        "linucb-warm",
        "linucb-cold",
    ]
    assert result.split.n_train == 72 and result.split.n_test == 18
    # embedding (8) + one-hot of the 3 training tasks + bias, as router.fit(tasks=)
    assert result.feature_dim == 12
    assert result.task_names == ("easy", "hard", "mixed")
    assert "embedding + 3 tasks" in result.table()
    summary = {s.policy: s for s in result.summaries}
    assert summary["weak"].apgr is None  # the single models are the curve's ends
    assert summary["strong"].best_accuracy == pytest.approx(
        result.reference[1].accuracy
    )
    assert summary["oracle"].apgr is not None and summary["oracle"].apgr > 0.9
    ridge, random = summary["ridge-offline"].apgr, summary["random"].apgr
    assert ridge is not None and random is not None
    assert ridge > 0.6 and ridge > random  # easy prompts go to the weak model
    assert summary["linucb-warm"].us_per_query > 0
    record = result.to_dict()
    assert record["reference"]["model"] == "strong"
    assert set(record["curves"][0]["points"][0]["shares"]) == {"weak", "strong"}


def test_cli_writes_table_json_and_png(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = write_tiny(tmp_path / "tiny")
    out = tmp_path / "out"
    code = main(
        [
            str(data),
            "--split",
            "tasks",
            "--seed",
            "1",
            "--out",
            str(out),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--cost-weights",
            "0,0.3,1",
            "--quiet",
        ],
        embeddings=counting(),
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "| linucb-warm |" in printed and "APGR" in printed
    stem = "bench_tiny_tasks_seed1"
    record = json.loads((out / f"{stem}.json").read_text())
    assert record["split"]["kind"] == "tasks"
    assert len(record["split"]["held_out_tasks"]) == 1
    assert record["cost_weights"] == [0.0, 0.3, 1.0]
    png = (out / f"{stem}.png").read_bytes()
    assert png.startswith(b"\x89PNG") and len(png) < 200_000


def test_cli_rejects_a_missing_data_set(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="no such data set"):
        main([str(tmp_path / "absent")])
    with pytest.raises(SystemExit):
        main([str(tmp_path), "--cost-weights", "a,b"])


def test_cli_reports_bad_data_without_a_traceback(tmp_path: Path) -> None:
    folder = tmp_path / "one-task"
    folder.mkdir()
    (folder / "models.json").write_text(
        json.dumps(
            {
                "models": [
                    {"name": "m", "input_usd_per_mtok": 1, "output_usd_per_mtok": 1}
                ]
            }
        )
    )
    rows = [
        {"id": str(i), "task": "t", "prompt": f"p {i}", "scores": {"m": 1}}
        for i in range(5)
    ]
    (folder / "a.jsonl").write_text("\n".join(json.dumps(r) for r in rows))
    with pytest.raises(
        SystemExit, match=r"metallm-bench: task split: .* needs at least two"
    ):
        main(
            [str(folder), "--split", "tasks", "--quiet"],
            embeddings=counting(),
        )


def test_the_benchmark_can_route_on_the_embedding_only(tmp_path: Path) -> None:
    result = run_benchmark(
        write_tiny(tmp_path / "tiny"),
        embeddings=counting(),
        cache_dir=tmp_path / "cache",
        cost_weights=[0.0, 0.5],
        features="embedding",
        progress=False,
    )
    assert result.feature_dim == 9 and result.task_names == ()
    assert "embedding only" in result.table()


def test_warm_linucb_uses_task_features_and_cold_the_bare_embedding(
    tmp_path: Path,
) -> None:
    """Like the router: only a fit (with tasks) brings task features."""
    folder = write_tiny(tmp_path / "tiny")
    embedder = counting()
    tasks, plain = (
        prepare(
            folder,
            embeddings=embedder,
            cache_dir=tmp_path / "cache",
            features=flag,
            progress=False,
        ).problem
        for flag in ("tasks", "embedding")
    )
    assert tasks.tasks is not None and plain.tasks is None
    weights = [0.0, 0.3]
    for warm, same in ((False, True), (True, False)):
        policy = OnlineLinUCB(warm=warm)
        with_tasks = [r.choices for r in policy.route(tasks, weights)]
        without = [r.choices for r in policy.route(plain, weights)]
        equal = all(
            np.array_equal(a, b) for a, b in zip(with_tasks, without, strict=True)
        )
        assert equal == same


def test_cli_runs_on_the_packaged_sample_without_shared_data(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(cli, "SHARED_DATA", Path("no") / "shared" / "data")
    out = tmp_path / "out"
    args = ["--limit", "40", "--out", str(out), "--cache-dir", str(tmp_path / "c")]
    code = main([*args, "--cost-weights", "0,1", "--quiet"], embeddings=counting())
    assert code == 0
    printed = capsys.readouterr().out
    assert "using the packaged sample" in printed
    record = json.loads((out / "bench_gsm8k2_random_seed0.json").read_text())
    assert record["split"]["n_train"] + record["split"]["n_test"] == 40
    assert "data/gsm8k2" in record["data_dir"]


def test_cli_limit_must_keep_two_rows(tmp_path: Path) -> None:
    with pytest.raises(SystemExit, match="limit: must be >= 2"):
        main([str(write_tiny(tmp_path / "tiny")), "--limit", "1", "--quiet"])
