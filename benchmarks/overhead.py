"""Router overhead: policy decision time, per-call overhead, batch throughput,
and the calls around the online cluster stages.

Prints numbers; run with ``python benchmarks/overhead.py``. Targets: policy
select + update p50 < 0.2 ms at 9 arms x 385 dims; no call waits for a k-means
fit of an online cluster stage (issue 22: p99 of the calls around prompts 200
and 1,000, where a never-fitted router fits its 8 and 32 clusters).
"""

from __future__ import annotations

import os
import time
import zlib
from collections.abc import Callable
from typing import Any

import numpy as np
from langchain_core.embeddings import Embeddings
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_metallm import LinUCBPolicy, LocalEmbeddings, MetaLLMRouterChatModel
from langchain_metallm.core.online_clusters import OnlineClusters

os.environ.setdefault("HF_HUB_OFFLINE", "1")
ARMS, DIM = 9, 385


class InstantChild(BaseChatModel):
    """A child that answers at once, so only the router's own work is timed."""

    @property
    def _llm_type(self) -> str:
        return "instant"

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        return ChatResult(generations=[ChatGeneration(message=AIMessage("ok"))])


class RandomEmbeddings(Embeddings):
    """Precomputed-speed embeddings: a seeded random unit vector per text."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        rng = np.random.default_rng(len(texts))
        v = rng.normal(size=(len(texts), DIM - 1))
        return (v / np.linalg.norm(v, axis=1, keepdims=True)).tolist()

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


class TextEmbeddings(Embeddings):
    """A seeded random unit vector per text (distinct texts, distinct vectors),
    so online clusters have real points to fit."""

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        rows = []
        for text in texts:
            rng = np.random.default_rng(zlib.crc32(text.encode()))
            v = rng.normal(size=DIM - 1)
            rows.append((v / np.linalg.norm(v)).tolist())
        return rows

    def embed_query(self, text: str) -> list[float]:
        return self.embed_documents([text])[0]


def percentiles(samples: list[float]) -> str:
    ms = np.array(samples) * 1e3
    return f"p50 {np.percentile(ms, 50):.3f} ms  p99 {np.percentile(ms, 99):.3f} ms"


def timed(fn: Callable[[int], object], n: int) -> list[float]:
    out = []
    for i in range(n):
        start = time.perf_counter()
        fn(i)
        out.append(time.perf_counter() - start)
    return out


def policy_decisions(n: int = 5_000, decay: float = 1.0) -> None:
    rng = np.random.default_rng(0)
    policy = LinUCBPolicy([f"m{i}" for i in range(ARMS)], DIM, alpha=0.5, decay=decay)
    xs = rng.normal(size=(n, DIM)) / np.sqrt(DIM)
    rewards = rng.uniform(size=n)

    def step(i: int) -> None:
        policy.update(policy.select(xs[i]), xs[i], float(rewards[i]))

    timed(step, 200)  # warm up
    samples = timed(step, n)
    print(
        f"policy select+update ({ARMS} arms x {DIM} dims, decay {decay}): "
        f"{percentiles(samples)}  mean {np.mean(samples) * 1e3:.3f} ms"
    )


def router(embeddings: Embeddings, cache: int = 2_048) -> MetaLLMRouterChatModel:
    return MetaLLMRouterChatModel(
        models={f"m{i}": InstantChild() for i in range(ARMS)},
        costs={f"m{i}": float(i + 1) for i in range(ARMS)},
        embeddings=embeddings,
        embedding_cache_size=cache,
    )


def router_overhead(n: int = 1_000) -> None:
    direct = InstantChild()
    base = timed(lambda i: direct.invoke(f"q{i}"), n)
    fast = router(RandomEmbeddings())

    def routed(i: int) -> None:
        answer = fast.invoke(f"q{i}")
        fast.record_feedback(answer, 1.0)

    with_router = timed(routed, n)
    extra = np.array(with_router) - np.median(base)
    print(f"child alone: {percentiles(base)}")
    print(f"router + feedback, embedding excluded: {percentiles(with_router)}")
    print(f"  overhead over the child: p50 {np.median(extra) * 1e3:.3f} ms")
    local = router(LocalEmbeddings(), cache=0)
    local.invoke("warm up the model")
    prompts = [
        f"Question {i}: what is {i} times {i + 3}, explained?" for i in range(200)
    ]
    with_embedding = timed(lambda i: local.invoke(prompts[i]), len(prompts))
    print(f"router incl. local MiniLM embedding: {percentiles(with_embedding)}")


def batch_throughput(n: int = 1_000) -> None:
    prompts = [f"Question {i}: what is {i} times {i + 3}, explained?" for i in range(n)]
    for name, emb in (
        ("fake embedder", RandomEmbeddings()),
        ("local MiniLM", LocalEmbeddings()),
    ):
        r = router(emb)
        start = time.perf_counter()
        r.batch(prompts)
        elapsed = time.perf_counter() - start
        print(f"batch of {n} ({name}): {elapsed:.2f} s, {n / elapsed:.0f} queries/s")


def stage_latency(n: int = 1_200) -> None:
    """Calls of a never-fitted router (feedback included) around prompts 200
    and 1,000, where its cluster stages are due: fitted in the background as
    the router does, and inline for comparison (what a call would wait)."""
    prompts = [f"Question {i}: what is {i} times {i + 3}, explained?" for i in range(n)]
    for label, background in (("background (the router)", True), ("inline", False)):
        live = router(TextEmbeddings())
        live.record_feedback(live.invoke(prompts[0]), 1.0)  # starts the clusters
        tasks = live.task_classifier
        assert isinstance(tasks, OnlineClusters)
        tasks.background = background

        def call(i: int, live: MetaLLMRouterChatModel = live) -> None:
            answer = live.invoke(prompts[i])
            live.record_feedback(answer, 1.0 if i % 3 else 0.0)

        samples = np.array(timed(call, n))
        for start, end in ((150, 300), (950, 1_100), (400, 900)):
            window = samples[start:end] * 1e3
            print(
                f"stages {label}, calls {start}-{end}: p50 "
                f"{np.percentile(window, 50):.3f} ms  p99 "
                f"{np.percentile(window, 99):.3f} ms  max {window.max():.3f} ms"
            )


if __name__ == "__main__":
    stage_latency()
    policy_decisions()
    policy_decisions(decay=0.99)
    router_overhead()
    batch_throughput()
