"""Saving and loading routers and policies: exact resume, refusals, crash safety."""

from __future__ import annotations

import io
import json
import os
import random
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm import (
    FeedbackError,
    LinUCBPolicy,
    MetaLLMRouterChatModel,
)
from langchain_metallm.core import persistence
from langchain_metallm.core.identity import embedder_label
from langchain_metallm.core.stores.memory import MemoryStore

from . import fakes
from .fakes import (
    KINDS,
    EchoChild,
    KeywordEmbeddings,
    NamedEmbeddings,
    query,
)

NAMES = ["cheap", "mid", "pricey"]
COSTS = {"cheap": 0.1, "mid": 0.4, "pricey": 1.0}


def children() -> dict[str, EchoChild]:
    return {name: EchoChild(name_tag=name) for name in NAMES}


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": children(),
        "costs": COSTS,
        "cost_weight": 0.25,
        "alpha": 0.4,
        "ridge": 0.7,
        "embeddings": KeywordEmbeddings(),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def score(prompt: str, model: str) -> float:
    if "poem" in prompt:
        return 1.0
    return {"cheap": 0.0, "mid": 0.5, "pricey": 1.0}[model]


def stream(n: int, seed: int) -> list[str]:
    rng = random.Random(seed)
    return [query(rng.choice(KINDS), i) for i in range(n)]


def serve(router: MetaLLMRouterChatModel, prompts: list[str]) -> list[str]:
    """Route and reward each prompt by ``score``; the chosen models in order."""
    return fakes.serve(router, prompts, score)


def learned(router: MetaLLMRouterChatModel) -> list[np.ndarray]:
    assert router.policy is not None
    return [*router.policy.statistics(), router.policy.theta]


def saved_router(tmp_path: Path) -> tuple[MetaLLMRouterChatModel, Path]:
    router = make_router()
    serve(router, stream(30, seed=0))
    path = tmp_path / "router"
    router.save(path)
    return router, path


def policy_with_data(seed: int = 0, dim: int = 5) -> LinUCBPolicy:
    rng = np.random.default_rng(seed)
    policy = LinUCBPolicy(["a", "b"], dim, alpha=0.3, ridge=2.0)
    for _ in range(25):
        policy.update(int(rng.integers(2)), rng.normal(size=dim), float(rng.uniform()))
    return policy


# Round trips --------------------------------------------------------------------


def test_a_loaded_router_resumes_exactly_where_the_saved_one_stopped(
    tmp_path: Path,
) -> None:
    prompts = stream(120, seed=1)
    never_saved, saved = make_router(), make_router()
    serve(never_saved, prompts[:50])
    serve(saved, prompts[:50])
    saved.save(tmp_path / "r")
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r", children(), embeddings=KeywordEmbeddings()
    )
    assert (loaded.costs, loaded.cost_weight, loaded.alpha, loaded.ridge) == (
        COSTS,
        0.25,
        0.4,
        0.7,
    )
    assert loaded.model_names == NAMES
    assert serve(loaded, prompts[50:]) == serve(never_saved, prompts[50:])
    for a, b in zip(learned(loaded), learned(never_saved), strict=True):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-9)


def test_saving_changes_nothing_and_loading_restores_the_bytes(tmp_path: Path) -> None:
    router, path = saved_router(tmp_path)
    before = [a.tobytes() for a in learned(router)]
    router.save(path)
    assert [a.tobytes() for a in learned(router)] == before
    loaded = MetaLLMRouterChatModel.load(
        path, children(), embeddings=KeywordEmbeddings()
    )
    assert loaded.policy is not None and router.policy is not None
    assert [a.tobytes() for a in loaded.policy.statistics()] == [
        a.tobytes() for a in router.policy.statistics()
    ]


def test_models_are_matched_by_name_in_any_order(tmp_path: Path) -> None:
    router, path = saved_router(tmp_path)
    reordered = dict(reversed(list(children().items())))
    loaded = MetaLLMRouterChatModel.load(
        path, reordered, embeddings=KeywordEmbeddings()
    )
    assert loaded.model_names == NAMES
    prompt = query("math", 1)
    decision, expected = loaded.route(prompt), router.route(prompt)
    assert decision.chosen == expected.chosen
    for name in NAMES:
        assert decision.value[name] == pytest.approx(expected.value[name], abs=1e-12)


def test_other_settings_pass_through_and_a_store_receives_the_statistics(
    tmp_path: Path,
) -> None:
    router, path = saved_router(tmp_path)
    store = MemoryStore()
    loaded = MetaLLMRouterChatModel.load(
        path,
        children(),
        embeddings=KeywordEmbeddings(),
        store=store,
        max_pending=7,
    )
    assert loaded.max_pending == 7
    assert loaded.policy is not None and loaded.policy.store is store
    for a, b in zip(loaded.policy.statistics(), learned(router)[:3], strict=True):
        np.testing.assert_array_equal(a, b)


def test_decisions_awaiting_feedback_are_not_saved(tmp_path: Path) -> None:
    router, path = saved_router(tmp_path)
    answer = router.invoke(query("math", 500))
    router.save(path)
    loaded = MetaLLMRouterChatModel.load(
        path, children(), embeddings=KeywordEmbeddings()
    )
    with pytest.raises(FeedbackError, match="unknown"):
        loaded.record_feedback(answer, 1.0)
    router.record_feedback(answer, 1.0)  # the router that routed it still can


def test_policy_round_trip_is_exact(tmp_path: Path) -> None:
    policy = policy_with_data()
    persistence.save_policy(policy, tmp_path / "p")
    loaded = persistence.load_policy(tmp_path / "p")
    assert (loaded.arms, loaded.dim, loaded.alpha, loaded.ridge) == (
        ("a", "b"),
        5,
        0.3,
        2.0,
    )
    for a, b in zip(loaded.statistics(), policy.statistics(), strict=True):
        assert a.tobytes() == b.tobytes()
    x = np.ones(5)
    assert loaded.select(x) == policy.select(x)
    np.testing.assert_allclose(loaded.theta, policy.theta, rtol=0, atol=1e-12)
    in_store = persistence.load_policy(
        tmp_path / "p", store=MemoryStore(), namespace="n"
    )
    assert in_store.namespace == "n"
    np.testing.assert_array_equal(in_store.statistics()[1], policy.statistics()[1])


def test_the_format_is_a_json_manifest_and_a_plain_npz(tmp_path: Path) -> None:
    _, path = saved_router(tmp_path)
    manifest = json.loads((path / "metallm.json").read_text())
    assert manifest["format"] == "langchain-metallm"
    assert manifest["format_version"] == 3
    assert manifest["kind"] == "router"
    assert manifest["arms"] == NAMES
    assert (manifest["dim"], manifest["alpha"], manifest["ridge"]) == (5, 0.4, 0.7)
    assert manifest["router"] == {
        "costs": COSTS,
        "cost_weight": 0.25,
        "unit": max(COSTS.values()),
        "dollar_unit": None,
        "newcomers": [],
        "default": None,
        "decay": 1.0,
        "alpha": 0.4,
        "budget": None,
        "pacer_weight": None,
        "pacer_level": None,
        "embedder": {"name": "KeywordEmbeddings", "dimension": 4},
        "tasks": None,
    }
    files = sorted(p.name for p in path.iterdir())
    assert files == sorted(["metallm.json", manifest["arrays"]["file"]])
    with np.load(path / manifest["arrays"]["file"], allow_pickle=False) as npz:
        assert sorted(npz.files) == ["A", "b", "counts"]
        assert npz["A"].shape == (3, 5, 5) and npz["counts"].dtype == np.int64


def test_repeated_saves_keep_one_arrays_file(tmp_path: Path) -> None:
    router, path = saved_router(tmp_path)
    for i in range(3):
        serve(router, [query("poetry", 900 + i)])
        router.save(path)
    assert len(list(path.glob("arrays-*.npz"))) == 1
    assert not list(path.glob(".*"))


def test_embedder_names_follow_name_model_model_name_then_class() -> None:
    assert embedder_label(NamedEmbeddings(model="text-embed-3")) == ("text-embed-3")
    assert embedder_label(KeywordEmbeddings()) == "KeywordEmbeddings"
    with_name = NamedEmbeddings()
    with_name.name = "given"  # type: ignore[attr-defined]
    assert embedder_label(with_name) == "given"


# Refusals -------------------------------------------------------------------------


def test_a_file_path_cannot_be_saved(tmp_path: Path) -> None:
    router, _ = saved_router(tmp_path)
    (tmp_path / "file").write_text("x")
    with pytest.raises(ValueError, match="is a file"):
        router.save(tmp_path / "file")


@pytest.mark.parametrize(
    ("models", "kwargs", "error", "match"),
    [
        ([*NAMES, "extra"], {}, ValueError, r"added children \['extra'\] need a cost"),
        (["other"], {}, ValueError, "none of the saved children"),
        (NAMES, {"embeddings": NamedEmbeddings()}, ValueError, "'keyword-v2'"),
        (NAMES, {"ridge": 3.0}, TypeError, "come from the save"),
    ],
)
def test_mismatches_are_refused(
    tmp_path: Path,
    models: list[str],
    kwargs: dict[str, Any],
    error: type[Exception],
    match: str,
) -> None:
    _, path = saved_router(tmp_path)
    settings = {"embeddings": KeywordEmbeddings(), **kwargs}
    with pytest.raises(error, match=match):
        MetaLLMRouterChatModel.load(
            path, {n: EchoChild(name_tag=n) for n in models}, **settings
        )


def test_a_different_declared_dimension_is_refused(tmp_path: Path) -> None:
    router = make_router(embeddings=NamedEmbeddings())
    serve(router, stream(5, seed=2))
    router.save(tmp_path / "r")
    MetaLLMRouterChatModel.load(
        tmp_path / "r", children(), embeddings=NamedEmbeddings()
    )
    with pytest.raises(
        ValueError, match="dimension 4, embedder 'keyword-v2' returns 8"
    ):
        MetaLLMRouterChatModel.load(
            tmp_path / "r", children(), embeddings=NamedEmbeddings(dimension=8)
        )


def test_policy_and_router_saves_are_not_interchangeable(tmp_path: Path) -> None:
    persistence.save_policy(policy_with_data(), tmp_path / "p")
    with pytest.raises(ValueError, match="bare policy save"):
        MetaLLMRouterChatModel.load(
            tmp_path / "p", children(), embeddings=KeywordEmbeddings()
        )
    _, path = saved_router(tmp_path)
    assert persistence.load_policy(path).arms == tuple(
        NAMES
    )  # the router's policy part


def rewrite_manifest(path: Path, change: Any) -> None:
    manifest = json.loads((path / "metallm.json").read_text())
    change(manifest)
    (path / "metallm.json").write_text(json.dumps(manifest))


def replace_arrays(path: Path, **arrays: Any) -> None:
    """Swap in other arrays with a matching checksum (only content is wrong)."""
    buffer = io.BytesIO()
    np.savez(buffer, **arrays)
    data = buffer.getvalue()
    name = json.loads((path / "metallm.json").read_text())["arrays"]["file"]
    (path / name).write_bytes(data)
    digest = persistence.hashlib.sha256(data).hexdigest()
    rewrite_manifest(path, lambda m: m["arrays"].update(sha256=digest))


def truncate(path: Path, name: str) -> None:
    target = path / name
    target.write_bytes(target.read_bytes()[: target.stat().st_size // 2])


def arrays_name(path: Path) -> str:
    return str(json.loads((path / "metallm.json").read_text())["arrays"]["file"])


A3 = np.stack([np.eye(5)] * 3)


@pytest.mark.parametrize(
    ("corrupt", "match"),
    [
        (lambda p: truncate(p, "metallm.json"), "corrupt or truncated manifest"),
        (lambda p: truncate(p, arrays_name(p)), "corrupt or truncated"),
        (lambda p: (p / arrays_name(p)).unlink(), "is missing"),
        (lambda p: (p / "metallm.json").write_bytes(b"\xff\xfe"), "corrupt"),
        (
            lambda p: rewrite_manifest(p, lambda m: m.update(format_version=4)),
            "format version 4; this version of langchain-metallm reads versions",
        ),
        (lambda p: rewrite_manifest(p, lambda m: m.update(format="x")), "not a"),
        (lambda p: rewrite_manifest(p, lambda m: m.update(dim="5")), "'dim'"),
        (
            lambda p: rewrite_manifest(p, lambda m: m["arrays"].update(file="../x")),
            "bad arrays file name",
        ),
        (
            lambda p: replace_arrays(
                p, A=np.array([object()]), b=np.zeros((3, 5)), counts=np.zeros(3)
            ),
            "corrupt arrays",
        ),
        (
            lambda p: replace_arrays(p, A=A3, b=np.zeros((3, 5))),
            "corrupt arrays",
        ),
        (
            lambda p: replace_arrays(
                p, A=A3 * np.nan, b=np.zeros((3, 5)), counts=np.zeros(3, dtype=int)
            ),
            "corrupt save: A: contains NaN",
        ),
        (
            lambda p: replace_arrays(
                p, A=A3, b=np.zeros((3, 4)), counts=np.zeros(3, dtype=int)
            ),
            r"corrupt save: b: expected shape \(3, 5\)",
        ),
    ],
)
def test_corrupt_saves_are_refused_with_the_problem_named(
    tmp_path: Path, corrupt: Any, match: str
) -> None:
    _, path = saved_router(tmp_path)
    corrupt(path)
    with pytest.raises(ValueError, match=match):
        MetaLLMRouterChatModel.load(path, children(), embeddings=KeywordEmbeddings())


def test_a_missing_save_is_a_file_not_found_error(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match=r"metallm.json missing"):
        persistence.load_policy(tmp_path / "nowhere")


# Crash safety -----------------------------------------------------------------------


@pytest.mark.parametrize("fail_at", [1, 2])
def test_a_save_that_dies_midway_leaves_the_previous_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fail_at: int
) -> None:
    router, path = saved_router(tmp_path)
    previous = [a.tobytes() for a in learned(router)[:3]]
    serve(router, stream(10, seed=3))
    calls = []
    real_replace = os.replace

    def dying_replace(src: Any, dst: Any) -> None:
        calls.append(dst)
        if len(calls) == fail_at:  # 1: the arrays file, 2: the manifest
            raise OSError("disk gone")
        real_replace(src, dst)

    monkeypatch.setattr(persistence.os, "replace", dying_replace)
    with pytest.raises(OSError, match="disk gone"):
        router.save(path)
    monkeypatch.undo()
    loaded = MetaLLMRouterChatModel.load(
        path, children(), embeddings=KeywordEmbeddings()
    )
    assert [a.tobytes() for a in learned(loaded)[:3]] == previous
    router.save(path)  # the next save cleans up what the failed one left
    assert len(list(path.iterdir())) == 2


WRITER = textwrap.dedent(
    """
    import os
    import signal
    import sys
    import numpy as np
    from langchain_metallm.core.persistence import save_policy
    from langchain_metallm.core.policy import LinUCBPolicy

    path, saves, kill_at_fsync = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    real_fsync = os.fsync
    fsyncs = [0]

    def dying_fsync(fd):
        fsyncs[0] += 1
        if fsyncs[0] == kill_at_fsync:  # die at this step of the last save
            os.kill(os.getpid(), signal.SIGKILL)
        return real_fsync(fd)

    dim = 160
    policy = LinUCBPolicy(["a", "b", "c"], dim)
    for i in range(1, saves + 1):
        A = np.stack([np.eye(dim) * (1 + i)] * 3)
        policy.load_statistics(A, np.full((3, dim), float(i)), np.full(3, i))
        if i == saves:
            os.fsync = dying_fsync
        save_policy(policy, path)
        print(i, flush=True)
    """
)


# A save fsyncs: 1 the arrays file, 2 the directory after renaming it, 3 the
# manifest, 4 the directory after renaming the manifest (the commit point).
@pytest.mark.parametrize("kill_at_fsync", [1, 2, 3, 4])
def test_sigkill_while_saving_never_breaks_the_previous_save(
    tmp_path: Path, kill_at_fsync: int
) -> None:
    script = tmp_path / "writer.py"
    script.write_text(WRITER)
    path = tmp_path / "policy"
    proc = subprocess.run(
        [sys.executable, str(script), str(path), "3", str(kill_at_fsync)],
        capture_output=True,
        text=True,
        env={**os.environ, "OPENBLAS_NUM_THREADS": "1", "OMP_NUM_THREADS": "1"},
        check=False,
    )
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    printed = [int(line) for line in proc.stdout.split()]
    assert printed == [1, 2]  # killed during the third save
    policy = persistence.load_policy(path)
    A, b, counts = policy.statistics()
    i = int(counts[0])
    # the last save that finished, or the one under way if its commit landed
    assert printed[-1] <= i <= printed[-1] + 1
    assert i == (3 if kill_at_fsync == 4 else 2)
    np.testing.assert_array_equal(counts, np.full(3, i))
    np.testing.assert_array_equal(b, np.full((3, 160), float(i)))
    np.testing.assert_array_equal(A, np.stack([np.eye(160) * (1 + i)] * 3))
