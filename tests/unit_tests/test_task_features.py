"""Task features: the task classifier, the contexts it makes, and a router that
learns one (fit with tasks, metadata, refusals, save/load, store namespace)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.core.features import (
    EMBEDDING_SCALE,
    TaskClassifier,
    embedding_dim,
    query_features,
)

from .fakes import EchoChild, NoisyTopicEmbeddings

NAMES = ["small", "medium", "large"]
COSTS = {"small": 0.1, "medium": 0.3, "large": 1.0}
TASKS = ("code", "math", "trivia")
BEST = {"code": "medium", "math": "large", "trivia": "small"}
"""Each task's most accurate model; the others are 12 points behind on it."""
DIM = 48


def prompts(n: int, seed: int) -> tuple[list[str], list[str]]:
    rng = np.random.default_rng(seed)
    tasks = [TASKS[int(i)] for i in rng.integers(0, len(TASKS), size=n)]
    return [f"{t}: question {seed}-{i}" for i, t in enumerate(tasks)], tasks


def outcomes(tasks: list[str], seed: int) -> np.ndarray:
    """Sampled 0/1 scores: the task's best model right 82%, the others 70%."""
    rng = np.random.default_rng(seed)
    p = np.array([[0.82 if BEST[t] == m else 0.70 for m in NAMES] for t in tasks])
    return (rng.uniform(size=p.shape) < p).astype(float)


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in NAMES},
        "costs": COSTS,
        "cost_weight": 0.0,
        "alpha": 0.0,
        "embeddings": NoisyTopicEmbeddings(TASKS, DIM),
    }
    return MetaLLMRouterChatModel(**{"online_clusters": False, **settings, **overrides})


def load(path: Path) -> MetaLLMRouterChatModel:
    children = {name: EchoChild(name_tag=name) for name in NAMES}
    return MetaLLMRouterChatModel.load(
        path, models=children, embeddings=NoisyTopicEmbeddings(TASKS, DIM)
    )


def fitted(
    *, with_tasks: bool, n: int = 600, **overrides: Any
) -> MetaLLMRouterChatModel:
    texts, tasks = prompts(n, seed=1)
    router = make_router(**overrides)
    router.fit(texts, outcomes(tasks, seed=2), tasks=tasks if with_tasks else None)
    return router


# The classifier and the contexts ----------------------------------------------


def test_the_classifier_predicts_the_task_of_unseen_queries() -> None:
    emb = NoisyTopicEmbeddings(TASKS, DIM)
    texts, tasks = prompts(300, seed=3)
    classifier = TaskClassifier.fit(emb.embed_documents(texts), tasks)
    assert classifier.tasks == TASKS
    test_texts, test_tasks = prompts(200, seed=4)
    predicted = classifier.predict(emb.embed_documents(test_texts))
    hits = np.mean(
        [classifier.tasks[i] == t for i, t in zip(predicted, test_tasks, strict=True)]
    )
    assert hits >= 0.95


def test_task_contexts_are_scaled_embedding_one_hot_task_and_bias() -> None:
    vectors = np.array([[1.0, 0.0], [0.0, 1.0], [0.9, 0.1]])
    classifier = TaskClassifier.fit(vectors[:2], ["a", "b"])
    contexts = query_features(vectors, classifier)
    assert contexts.shape == (3, 5) and embedding_dim(5, classifier) == 2
    np.testing.assert_allclose(contexts[:, :2], EMBEDDING_SCALE * vectors)
    np.testing.assert_array_equal(contexts[:, 2:4], [[1, 0], [0, 1], [1, 0]])
    np.testing.assert_array_equal(contexts[:, 4], 1.0)
    plain = query_features(vectors)
    np.testing.assert_array_equal(plain, np.hstack([vectors, np.ones((3, 1))]))


def test_the_fingerprint_tells_classifiers_apart() -> None:
    vectors = np.eye(3)
    one = TaskClassifier.fit(vectors, ["a", "b", "b"])
    same = TaskClassifier.fit(vectors, ["a", "b", "b"])
    other = TaskClassifier.fit(vectors, ["a", "a", "b"])
    assert one.fingerprint() == same.fingerprint() != other.fingerprint()


@pytest.mark.parametrize(
    ("labels", "error", "match"),
    [
        (["a", "a", "a"], ValueError, "at least 2 distinct tasks"),
        (["a", "b"], ValueError, "expected 3 task names"),
        (["a", "", "b"], ValueError, "entry 1"),
        (["a", None, "b"], ValueError, "entry 1"),
        ("abc", TypeError, "one string"),
    ],
)
def test_bad_task_labels_are_refused(labels: Any, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        TaskClassifier.fit(np.eye(3), labels)


def test_the_classifier_refuses_embeddings_of_another_dimension() -> None:
    classifier = TaskClassifier.fit(np.eye(3), ["a", "b", "b"])
    with pytest.raises(ValueError, match="reads dimension 3, got 4"):
        classifier.predict(np.ones((1, 4)))


# The router ---------------------------------------------------------------------


def held_out_choices(router: MetaLLMRouterChatModel) -> float:
    """Share of unseen queries sent to their task's most accurate model."""
    texts, tasks = prompts(300, seed=9)
    chosen = [router.route(t).chosen for t in texts]
    return float(np.mean([c == BEST[t] for c, t in zip(chosen, tasks, strict=True)]))


def test_task_features_find_each_tasks_best_model_where_the_embedding_cannot() -> None:
    with_tasks = fitted(with_tasks=True)
    plain = fitted(with_tasks=False, auto_tasks=False)
    # 600 noisy 0/1 outcomes, 12 points between models: measured 0.89 vs 0.59.
    assert held_out_choices(with_tasks) >= 0.85
    assert held_out_choices(plain) <= held_out_choices(with_tasks) - 0.2


def test_fit_with_tasks_sets_the_features_and_the_metadata_names_the_task() -> None:
    router = fitted(with_tasks=True)
    assert router.task_classifier is not None
    assert router.task_classifier.tasks == TASKS
    assert router.policy is not None and router.policy.dim == DIM + 3 + 1
    answer = router.invoke("math: what is 2 + 2")
    assert answer.response_metadata["metallm"]["task"] == "math"
    plain = fitted(with_tasks=False, n=60)
    assert plain.invoke("math: 1 + 1").response_metadata["metallm"]["task"] is None


def test_feedback_and_later_fits_use_the_learned_classifier() -> None:
    router = fitted(with_tasks=True)
    assert router.policy is not None
    before = router.policy.counts.copy()
    answer = router.invoke("code: reverse a list")
    router.record_feedback(answer, 1.0)
    texts, tasks = prompts(30, seed=5)
    router.fit(texts, outcomes(tasks, seed=6))
    assert (router.policy.counts - before).tolist() == [
        30 + (name == answer.response_metadata["metallm"]["model"]) for name in NAMES
    ]


def test_tasks_after_learning_are_refused_and_nothing_changes() -> None:
    router = fitted(with_tasks=False, n=60)
    assert router.policy is not None
    before = [a.copy() for a in router.policy.statistics()]
    texts, tasks = prompts(30, seed=5)
    with pytest.raises(ValueError, match="already learned"):
        router.fit(texts, outcomes(tasks, seed=6), tasks=tasks)
    assert router.task_classifier is None
    for old, new in zip(before, router.policy.statistics(), strict=True):
        np.testing.assert_array_equal(old, new)


def test_tasks_are_learned_after_routing_that_learned_nothing() -> None:
    router = make_router()
    router.route("trivia: capital of France")
    texts, tasks = prompts(120, seed=7)
    router.fit(texts, outcomes(tasks, seed=8), tasks=tasks)
    assert router.policy is not None and router.policy.dim == DIM + 4


def test_tasks_wait_for_the_feedback_of_calls_already_routed() -> None:
    router = make_router()
    answer = router.invoke("trivia: capital of Peru")
    texts, tasks = prompts(60, seed=7)
    with pytest.raises(ValueError, match="1 routed calls still await feedback"):
        router.fit(texts, outcomes(tasks, seed=8), tasks=tasks)
    assert router.task_classifier is None
    router.record_feedback(answer, 1.0)  # still applies, on the old features
    assert router.policy is not None and router.policy.counts.sum() == 1


def test_bad_tasks_in_fit_change_nothing() -> None:
    router = make_router()
    texts, tasks = prompts(30, seed=5)
    with pytest.raises(ValueError, match="expected 30 task names"):
        router.fit(texts, outcomes(tasks, seed=6), tasks=tasks[:-1])
    with pytest.raises(ValueError, match="at least 2 distinct"):
        router.fit(texts, outcomes(tasks, seed=6), tasks=["math"] * 30)
    assert router.task_classifier is None and router.policy is None


def test_a_saved_router_keeps_its_classifier_and_resumes_exactly(
    tmp_path: Path,
) -> None:
    router = fitted(with_tasks=True)
    router.save(tmp_path / "r")
    manifest = json.loads((tmp_path / "r" / "metallm.json").read_text())
    assert manifest["router"]["tasks"] == list(TASKS)
    assert manifest["router"]["embedder"]["dimension"] == DIM
    loaded = load(tmp_path / "r")
    assert loaded.task_classifier is not None and router.task_classifier is not None
    assert loaded.task_classifier.fingerprint() == router.task_classifier.fingerprint()
    for twin in (router, loaded):
        answer = twin.invoke("math: 17 * 3")
        twin.record_feedback(answer, 1.0)
    assert router.policy is not None and loaded.policy is not None
    for old, new in zip(
        router.policy.statistics(), loaded.policy.statistics(), strict=True
    ):
        np.testing.assert_allclose(old, new, rtol=0, atol=1e-12)


def test_a_save_with_task_names_but_no_weights_is_refused(tmp_path: Path) -> None:
    fitted(with_tasks=False, n=60).save(tmp_path / "r")
    path = tmp_path / "r" / "metallm.json"
    manifest = json.loads(path.read_text())
    manifest["router"]["tasks"] = list(TASKS)
    path.write_text(json.dumps(manifest))
    with pytest.raises(ValueError, match=r"task kind .classifier. with arrays \[\]"):
        load(tmp_path / "r")


def test_a_version_1_save_still_loads(tmp_path: Path) -> None:
    router = fitted(with_tasks=False, n=60)
    router.save(tmp_path / "r")
    path = tmp_path / "r" / "metallm.json"
    manifest = json.loads(path.read_text())
    manifest["format_version"] = 1
    del manifest["router"]["tasks"]
    path.write_text(json.dumps(manifest))
    loaded = load(tmp_path / "r")
    assert loaded.task_classifier is None
    assert loaded.policy is not None and router.policy is not None
    np.testing.assert_array_equal(loaded.policy.b, router.policy.b)


def test_routers_with_different_classifiers_do_not_share_statistics() -> None:
    router = fitted(with_tasks=True)
    plain = fitted(with_tasks=False, n=60)
    assert router.policy is not None and plain.policy is not None
    classifier = router.task_classifier
    assert classifier is not None
    assert router.policy.namespace.endswith(f"tasks:{classifier.fingerprint()}")
    assert "tasks:" not in plain.policy.namespace


def test_fit_with_tasks_embeds_each_prompt_once_beyond_the_cache_size() -> None:
    embedder = NoisyTopicEmbeddings(TASKS, DIM)
    router = make_router(embeddings=embedder, embedding_cache_size=16)
    texts, tasks = prompts(100, seed=11)
    router.fit(texts, outcomes(tasks, seed=12), tasks=tasks)
    assert embedder.embedded == 100


async def test_planned_batches_plan_on_the_task_features() -> None:
    router = fitted(with_tasks=True)
    texts, tasks = prompts(60, seed=13)
    front = router.pareto_front(texts)
    best = front.for_budget(len(texts))
    # the top of the front sends each query to its task's most accurate model
    hits = [
        router.model_names[arm] == BEST[t]
        for arm, t in zip(best.arms, tasks, strict=True)
    ]
    assert sum(hits) >= 0.85 * len(texts)
    result = await router.abatch_planned(texts, budget=len(texts))
    chosen = [a.response_metadata["metallm"]["model"] for a in result.answers]
    assert chosen == [router.model_names[arm] for arm in best.arms]
    classifier = router.task_classifier
    assert classifier is not None
    predicted = classifier.predict(
        NoisyTopicEmbeddings(TASKS, DIM).embed_documents(texts)
    )
    named = [a.response_metadata["metallm"]["task"] for a in result.answers]
    assert named == [classifier.tasks[i] for i in predicted]
    assert sum(n == t for n, t in zip(named, tasks, strict=True)) >= 0.9 * len(tasks)
