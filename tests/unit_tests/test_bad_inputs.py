"""Every bad input in docs/reliability.md gets a clear error and changes nothing."""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.messages import AIMessage

from langchain_metallm import FeedbackError, LinUCBPolicy, MetaLLMRouterChatModel
from langchain_metallm.core.stores import SQLiteStore

from .fakes import EchoChild, KeywordEmbeddings, query


class BadEmbeddings(KeywordEmbeddings):
    """Returns ``vectors(texts)`` once routing has started (first call is good)."""

    def __init__(self, vectors: Callable[[list[str]], list[list[float]]]) -> None:
        super().__init__()
        self.vectors = vectors

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.calls:
            return self.vectors(texts)
        return super().embed_documents(texts)


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings: dict[str, Any] = {
        "models": {"cheap": EchoChild(name_tag="c"), "pricey": EchoChild(name_tag="p")},
        "costs": {"cheap": 0.1, "pricey": 1.0},
        "embeddings": KeywordEmbeddings(),
        "max_pending": 2,
    }
    return MetaLLMRouterChatModel(**{**settings, **overrides})


def _snapshot(router: MetaLLMRouterChatModel) -> list[Any]:
    assert router.policy is not None
    stats = {k: v for k, v in router.stats().items() if k != "refused"}
    arrays = [*router.policy.statistics(), router.policy.theta]
    return [a.tobytes() for a in arrays] + [stats]


Case = Callable[[MetaLLMRouterChatModel, dict[str, AIMessage]], object]

ROUTER_CASES: list[tuple[str, Case, type[Exception], str]] = [
    ("no messages", lambda r, a: r.invoke([]), ValueError, "at least one message"),
    ("input of a wrong type", lambda r, a: r.invoke(42), ValueError, "Invalid input"),
    (
        "score of a wrong type",
        lambda r, a: r.record_feedback(a["pending"], "1"),  # type: ignore[arg-type]
        TypeError,
        "score: expected a number",
    ),
    (
        "NaN score",
        lambda r, a: r.record_feedback(a["pending"], math.nan),
        ValueError,
        "score: must be in",
    ),
    (
        "infinite score",
        lambda r, a: r.record_feedback(a["pending"], math.inf),
        ValueError,
        "score: must be in",
    ),
    (
        "score out of [0, 1]",
        lambda r, a: r.record_feedback(a["pending"], 1.5),
        ValueError,
        "score: must be in",
    ),
    (
        "run of a wrong type",
        lambda r, a: r.record_feedback(3.5, 1.0),  # type: ignore[arg-type]
        TypeError,
        "run: expected a run id",
    ),
    (
        "message not routed by the router",
        lambda r, a: r.record_feedback(AIMessage("hi"), 1.0),
        ValueError,
        "carries no response_metadata",
    ),
    (
        "unknown run id",
        lambda r, a: r.record_feedback("no-such-run", 1.0),
        FeedbackError,
        "is unknown",
    ),
    (
        "duplicate feedback",
        lambda r, a: r.record_feedback(a["rewarded"], 1.0),
        FeedbackError,
        "already rewarded",
    ),
    (
        "feedback for an evicted run",
        lambda r, a: r.record_feedback(a["evicted"], 1.0),
        FeedbackError,
        "evicted",
    ),
]


@pytest.mark.parametrize(
    ("what", "case", "error", "match"), ROUTER_CASES, ids=[c[0] for c in ROUTER_CASES]
)
def test_bad_router_input_is_refused_and_changes_nothing(
    what: str, case: Case, error: type[Exception], match: str
) -> None:
    router = make_router()
    answers = {"evicted": router.invoke(query("math", 0))}
    answers["rewarded"] = router.invoke(query("poetry", 1))
    router.record_feedback(answers["rewarded"], 1.0)
    answers["pending"] = router.invoke(query("math", 2))
    router.invoke(query("math", 3))  # evicts the first
    before = _snapshot(router)
    with pytest.raises(error, match=match):
        case(router, answers)
    assert _snapshot(router) == before


EMBEDDING_CASES = [
    ("NaN", lambda t: [[math.nan] * 4 for _ in t], "NaN or infinity"),
    ("infinity", lambda t: [[math.inf, 0, 0, 0] for _ in t], "NaN or infinity"),
    ("wrong dimension", lambda t: [[0.5] * 7 for _ in t], "routes on dimension 4"),
    ("wrong count", lambda t: [], "returned 0 vectors for 1 texts"),
]


@pytest.mark.parametrize(
    ("what", "vectors", "match"), EMBEDDING_CASES, ids=[c[0] for c in EMBEDDING_CASES]
)
def test_bad_embeddings_are_refused_and_change_nothing(
    what: str, vectors: Callable[[list[str]], list[list[float]]], match: str
) -> None:
    router = make_router(embeddings=BadEmbeddings(vectors))
    router.record_feedback(router.invoke(query("math", 0)), 1.0)
    before = _snapshot(router)
    with pytest.raises(ValueError, match=match):
        router.invoke(query("math", 1))
    assert _snapshot(router) == before


def test_a_huge_prompt_is_routed_and_only_its_embedding_is_learned(
    tmp_path: Path,
) -> None:
    router = make_router(store=SQLiteStore(tmp_path / "p.db"), embedding_cache_size=0)
    huge = "math " * 200_000 + "zebra-secret"
    answer = router.invoke(huge)
    router.record_feedback(answer, 1.0)
    assert router.policy is not None and router.policy.counts.sum() == 1
    files = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert b"zebra-secret" not in files


POLICY_CASES: list[
    tuple[str, Callable[[LinUCBPolicy], object], type[Exception], str]
] = [
    ("NaN context", lambda p: p.update(0, [math.nan] * 3, 1.0), ValueError, "context"),
    ("wrong context size", lambda p: p.select([1.0, 2.0]), ValueError, "dimension 3"),
    ("NaN score", lambda p: p.update(0, [1, 2, 3], math.nan), ValueError, "score"),
    (
        "infinite score",
        lambda p: p.update(0, [1, 2, 3], -math.inf),
        ValueError,
        "score",
    ),
    (
        "score of a wrong type",
        lambda p: p.update(0, [1, 2, 3], "1"),  # type: ignore[arg-type]
        TypeError,
        "score: expected a number",
    ),
    ("arm of a wrong type", lambda p: p.update(True, [1, 2, 3], 1), TypeError, "arm"),
    ("arm out of range", lambda p: p.update(5, [1, 2, 3], 1.0), ValueError, "range"),
    (
        "infinite fit score",
        lambda p: p.fit(np.ones((2, 3)), [[math.inf, 0], [0, 0]]),
        ValueError,
        "infinity",
    ),
    (
        "statistics not positive definite",
        lambda p: p.load_statistics(
            -np.stack([np.eye(3)] * 2), np.zeros((2, 3)), [0, 0]
        ),
        ValueError,
        "positive definite",
    ),
    (
        "asymmetric statistics",
        lambda p: p.load_statistics(
            np.stack([np.eye(3) + np.triu(np.ones((3, 3)), 1)] * 2),
            np.zeros((2, 3)),
            [0, 0],
        ),
        ValueError,
        "symmetric",
    ),
]


@pytest.mark.parametrize(
    ("what", "case", "error", "match"), POLICY_CASES, ids=[c[0] for c in POLICY_CASES]
)
def test_bad_policy_input_is_refused_and_changes_nothing(
    what: str,
    case: Callable[[LinUCBPolicy], object],
    error: type[Exception],
    match: str,
) -> None:
    policy = LinUCBPolicy(["a", "b"], 3)
    policy.update(1, [0.5, -1.0, 2.0], 0.7)
    before = [a.tobytes() for a in (*policy.statistics(), policy.theta)]
    with pytest.raises(error, match=match):
        case(policy)
    assert [a.tobytes() for a in (*policy.statistics(), policy.theta)] == before
