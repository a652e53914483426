"""Automatic tasks: clustering queries without labels, the contexts the clusters
make, and a router whose first fit without labels learns and saves them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from langchain_metallm.core.auto_tasks import (
    MAX_CLUSTERS,
    MIN_CLUSTERS,
    QueryClusters,
    cluster_count,
    text_style,
)
from langchain_metallm.core.features import EMBEDDING_SCALE, query_features

from .test_task_features import (
    DIM,
    fitted,
    held_out_choices,
    load,
    make_router,
    outcomes,
    prompts,
)


def blobs(n: int, seed: int) -> tuple[np.ndarray, list[str], np.ndarray]:
    """Unit vectors around three far-apart directions, texts, and each one's blob."""
    rng = np.random.default_rng(seed)
    blob = rng.integers(0, 3, size=n)
    vectors = np.eye(8)[blob] + rng.normal(scale=0.05, size=(n, 8))
    texts = ["a question"] * n  # one format: only the vectors tell them apart
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True), texts, blob


# The clusters -------------------------------------------------------------------


def test_cluster_count_grows_with_the_data_and_is_capped() -> None:
    assert cluster_count(299) == 0  # too few queries: keep the bare embedding
    assert cluster_count(300) == MIN_CLUSTERS  # a small fit still gets 8
    assert cluster_count(1_200) == MIN_CLUSTERS
    assert cluster_count(1_500) == 10
    assert cluster_count(4_486) == 29
    assert cluster_count(10**6) == MAX_CLUSTERS


def test_clusters_recover_well_separated_groups() -> None:
    vectors, texts, blob = blobs(120, seed=0)
    clusters = QueryClusters.fit(vectors, texts, clusters=3)
    assert clusters.tasks == ("cluster-00", "cluster-01", "cluster-02")
    found = clusters.assign(vectors, texts)
    # one cluster per group: the assignment is a relabelling of the groups
    pairs = set(zip(blob.tolist(), found.tolist(), strict=True))
    assert len(pairs) == 3 and len({f for _, f in pairs}) == 3


def test_text_style_tells_formats_apart() -> None:
    style = text_style(
        ["who wrote hamlet?", "def f(x):\n    return x", "Solve $x^2 = 4$."]
    )
    assert style.shape == (3, 10)
    assert style[0, 4] == 1.0 and style[1, 4] == 0.0  # ends with '?'
    assert style[1, 6] == 1.0 and style[0, 6] == 0.0  # code
    assert style[2, 5] == 1.0 and style[0, 5] == 0.0  # maths


def test_style_separates_queries_the_embedding_cannot() -> None:
    """Same vectors, two formats: only the text style can split them."""
    vectors = np.tile(np.eye(4)[0], (200, 1))
    texts = [f"what is item {i}?" if i % 2 else f"def item_{i}():" for i in range(200)]
    found = QueryClusters.fit(vectors, texts, clusters=2).assign(vectors, texts)
    assert set(found[::2].tolist()) != set(found[1::2].tolist())
    assert len(set(found[::2].tolist())) == len(set(found[1::2].tolist())) == 1


def test_clusters_are_seeded_and_fingerprinted() -> None:
    vectors, texts, _ = blobs(90, seed=1)
    one = QueryClusters.fit(vectors, texts, clusters=4)
    same = QueryClusters.fit(vectors, texts, clusters=4)
    other = QueryClusters.fit(vectors, texts, clusters=5)
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()


def test_cluster_contexts_are_the_task_layout() -> None:
    vectors, texts, _ = blobs(60, seed=2)
    clusters = QueryClusters.fit(vectors, texts, clusters=3)
    contexts = query_features(vectors, clusters, texts)
    assert contexts.shape == (60, 8 + 3 + 1)
    np.testing.assert_allclose(contexts[:, :8], EMBEDDING_SCALE * vectors)
    np.testing.assert_array_equal(
        np.argmax(contexts[:, 8:11], axis=1), clusters.assign(vectors, texts)
    )
    with pytest.raises(ValueError, match="clusters need the query texts"):
        query_features(vectors, clusters)


@pytest.mark.parametrize(
    ("vectors", "texts", "k", "match"),
    [
        (np.ones((10, 4)), ["q"] * 9, 2, "expected 9 vectors"),
        (np.full((10, 4), np.nan), ["q"] * 10, 2, "NaN"),
        (np.ones((10, 4)), ["q"] * 10, 11, "need 2 to 10"),
        (np.ones((10, 4)), ["q"] * 10, None, "at least 300 queries"),
    ],
)
def test_bad_cluster_input_is_refused(
    vectors: np.ndarray, texts: list[str], k: int | None, match: str
) -> None:
    with pytest.raises(ValueError, match=match):
        QueryClusters.fit(vectors, texts, clusters=k)


def test_assigning_another_dimension_is_refused() -> None:
    vectors, texts, _ = blobs(30, seed=3)
    clusters = QueryClusters.fit(vectors, texts, clusters=2)
    with pytest.raises(ValueError, match="dimension 8"):
        clusters.assign(np.ones((1, 5)), ["q"])


# The router ---------------------------------------------------------------------


def test_a_first_fit_without_labels_learns_clusters_nearly_as_good_as_tasks() -> None:
    auto = fitted(with_tasks=False)
    plain = fitted(with_tasks=False, auto_tasks=False)
    labelled = fitted(with_tasks=True)
    assert isinstance(auto.task_classifier, QueryClusters)
    assert len(auto.task_classifier.tasks) == cluster_count(600) == MIN_CLUSTERS
    assert auto.policy is not None and auto.policy.dim == DIM + MIN_CLUSTERS + 1
    # measured: automatic tasks 0.83 (8 clusters for 3 tasks: each half as big),
    # task labels 0.89, bare embedding 0.59
    assert held_out_choices(auto) >= held_out_choices(plain) + 0.2
    assert held_out_choices(auto) >= held_out_choices(labelled) - 0.1


def test_small_fits_and_fits_after_learning_keep_their_features() -> None:
    small = fitted(with_tasks=False, n=120)
    assert small.task_classifier is None
    texts, tasks = prompts(600, seed=3)
    small.fit(texts, outcomes(tasks, seed=4))
    assert small.task_classifier is None  # it had already learned: no clusters
    router = make_router()
    answer = router.invoke("math: 1 + 1")
    router.fit(texts, outcomes(tasks, seed=4))
    assert router.task_classifier is None  # a call still awaits its feedback
    router.record_feedback(answer, 1.0)


def test_the_metadata_names_the_cluster() -> None:
    router = fitted(with_tasks=False)
    task = router.invoke("code: sort a list").response_metadata["metallm"]["task"]
    assert task in {"cluster-00", "cluster-01", "cluster-02", "cluster-03"}


def test_a_saved_router_keeps_its_clusters_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    router = fitted(with_tasks=False)
    router.save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "metallm.json").read_text())
    assert manifest["format_version"] == 3
    assert manifest["router"]["task_kind"] == "clusters"
    assert manifest["router"]["tasks"] == [f"cluster-0{i}" for i in range(8)]
    loaded = load(tmp_path / "r")
    assert isinstance(loaded.task_classifier, QueryClusters)
    assert router.task_classifier is not None
    assert loaded.task_classifier.fingerprint() == router.task_classifier.fingerprint()
    texts, _ = prompts(50, seed=11)
    assert [loaded.route(t).chosen for t in texts] == [
        router.route(t).chosen for t in texts
    ]


def test_a_save_whose_cluster_arrays_disagree_is_refused(tmp_path: Path) -> None:
    fitted(with_tasks=False).save(tmp_path / "r")
    path = tmp_path / "r" / "metallm.json"
    manifest = json.loads(path.read_text())
    manifest["router"]["task_kind"] = "classifier"
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match="task kind 'classifier' with arrays"):
        load(tmp_path / "r")
