"""Issue 20: one core owns the settings, the catalogue and every routing choice.

Each test here failed before the core was restructured (the defect it names is
in the test's docstring); together they pin where features meet: restarts,
catalogue changes under traffic, copies and bad input.
"""

from __future__ import annotations

import asyncio
import json
import math
import threading
import time
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any
from uuid import uuid4

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.runnables import RunnableLambda

from langchain_metallm import FeedbackError, MetaLLMFeedbackHandler
from langchain_metallm.chat_models import MetaLLMRouterChatModel
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.decision import Decision
from langchain_metallm.core.stores.memory import MemoryStore

from .fakes import EchoChild, KeywordEmbeddings, echo_router, query, serve

COSTS = {"cheap": 0.1, "mid": 0.4, "pricey": 1.0}


def router_of(**overrides: Any) -> MetaLLMRouterChatModel:
    return echo_router(dict(COSTS), **{"online_clusters": False, **overrides})


def best_on_math(prompt: str, model: str) -> float:
    """Pricey is right on maths, everyone on poems."""
    if "math" not in prompt:
        return 1.0
    return {"cheap": 0.2, "mid": 0.5, "pricey": 1.0}[model]


def fitted(**overrides: Any) -> MetaLLMRouterChatModel:
    router = router_of(auto_tasks=False, **overrides)
    prompts = [query("math" if i % 2 else "poetry", i) for i in range(200)]
    scores = [[best_on_math(p, m) for m in COSTS] for p in prompts]
    router.fit(prompts, scores)
    return router


class BrokenEmbeddings(KeywordEmbeddings):
    """Fails on demand (an outage), else like ``KeywordEmbeddings``."""

    down = False

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        if self.down:
            raise ConnectionError("embedder down")
        return super().embed_documents(texts)


def test_every_decision_is_a_record_naming_children_with_estimates() -> None:
    router = fitted(cost_weight=0.1)
    answer = router.invoke(query("math", 7))
    decision = router.route(query("math", 7))
    assert isinstance(decision, Decision)
    assert set(decision.order) == set(COSTS) and decision.order[0] == decision.chosen
    assert set(decision.predicted) == set(decision.penalty) == set(COSTS)
    assert decision.penalty["pricey"] == pytest.approx(0.1)
    assert decision.probability == 1.0
    record = json.loads(json.dumps(decision.to_dict()))  # JSON-ready, no prompt
    assert record["chosen"] == decision.chosen and "math" not in json.dumps(record)
    meta = answer.response_metadata["metallm"]
    assert meta["model"] == meta["chosen"] == "pricey"


# Defect 1 -------------------------------------------------------------------------


def test_outage_default_is_the_best_mean_under_the_live_prior_and_decay() -> None:
    """``best_mean_arm`` divided a decayed, prior-inflated sum by raw counts: a
    live child tried once with score 0 got mean 1.0, and a much-used child's mean
    shrank toward 0 under decay."""
    embedder = BrokenEmbeddings()
    router = echo_router(
        {"a": 1.0, "b": 1.0}, embeddings=embedder, decay=0.99, online_clusters=None
    )
    for i in range(200):  # b is the good child, learned over many decayed updates
        answer = router.invoke(query("math", i))
        model = answer.response_metadata["metallm"]["model"]
        router.record_feedback(answer, 0.8 if model == "b" else 0.0)
    policy = router.policy
    assert policy is not None
    counts = dict(zip(policy.arms, policy.counts, strict=True))
    assert counts["a"] >= 1 and counts["b"] > counts["a"]
    assert policy.best_mean() == "b"
    embedder.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = router.invoke("anything")
    assert answer.response_metadata["metallm"]["model"] == "b"
    assert answer.response_metadata["metallm"]["embedding_failed"] is True


# Defects 2, 13 -------------------------------------------------------------------


def test_add_model_under_usage_costs_needs_a_price_before_any_call() -> None:
    """``add_model`` took no price, so the new child's first answer raised
    ``KeyError`` after the child had been called and billed."""
    prices = {"cheap": (0.1, 0.1), "mid": (0.4, 0.4), "pricey": (1.0, 1.0)}
    router = router_of(cost_mode="usage", prices=prices)
    with pytest.raises(ValueError, match="needs the price of 'new'"):
        router.add_model("new", EchoChild(name_tag="new"), 0.5)
    assert "new" not in router.models and "new" not in router.model_names
    router.add_model("new", EchoChild(name_tag="new"), 0.5, price=(0.5, 0.5))
    assert router.prices is not None and router.prices["new"] == (0.5, 0.5)
    answers = (router.invoke(query("math", i)) for i in range(20))
    meta = next(  # the newcomer is explored within a few calls
        a.response_metadata["metallm"]
        for a in answers
        if a.response_metadata["metallm"]["model"] == "new"
    )
    assert meta["cost"] == pytest.approx(5 * 0.5e-6 / (2_000 * 1.0e-6))
    router.remove_model("new")
    assert router.prices is not None and "new" not in router.prices


def test_the_budget_unit_stays_when_a_pricier_child_is_added() -> None:
    """The budget was a share of the priciest child: adding one 10 times
    pricier multiplied the allowed spend per call by 10."""
    router = router_of(budget=0.3)
    before = router.normalized_costs
    router.add_model("huge", EchoChild(name_tag="huge"), 10.0)
    after = router.normalized_costs
    assert after["huge"] == pytest.approx(10.0)
    assert {k: after[k] for k in before} == before
    assert router.core.pacer is not None and router.core.pacer.budget == 0.3
    router.set_budget(5.0)  # now feasible: up to the priciest child's cost
    assert router.budget == 5.0


# Defect 3 --------------------------------------------------------------------------


def test_catalogue_changes_under_concurrent_traffic_break_no_call() -> None:
    """While ``add_model``/``remove_model`` ran and 4 threads routed, 41 of
    1,108 calls raised ``penalty: expected one per arm``."""
    router = fitted(cost_weight=0.05)
    errors: list[BaseException] = []
    answered: list[str] = []
    done = threading.Event()

    def traffic(seed: int) -> None:
        i = 0
        while not done.is_set() or i < 50:
            try:
                answer = router.invoke(query("math" if i % 2 else "poetry", seed + i))
                answered.append(answer.response_metadata["metallm"]["model"])
                router.record_feedback(answer, 1.0, strict=False)
            except BaseException as error:
                errors.append(error)
            i += 1

    threads = [threading.Thread(target=traffic, args=(k * 10_000,)) for k in range(4)]
    for thread in threads:
        thread.start()
    for _ in range(30):
        router.add_model("extra", EchoChild(name_tag="extra"), 0.2)
        router.remove_model("extra")
    done.set()
    for thread in threads:
        thread.join()
    assert errors == []
    assert len(answered) >= 200 and set(answered) <= {*COSTS, "extra"}


# Defect 4, 11 ----------------------------------------------------------------------


def test_a_re_added_name_never_inherits_the_old_childs_feedback() -> None:
    """After ``remove_model('mid')`` and ``add_model('mid', new)``, a pending
    score for the old ``mid`` was applied to the new one."""
    router = fitted(cost_weight=0.0)
    old = router.invoke(query("math", 1), config={"callbacks": []})
    router.core.set_catalogue(router.core.catalogue)  # no-op swap keeps generations
    chosen = old.response_metadata["metallm"]["model"]
    keep = next(name for name in COSTS if name != chosen)
    router.set_costs({})  # nothing changes
    router.remove_model(chosen)
    router.add_model(chosen, EchoChild(name_tag=chosen), COSTS[chosen])
    assert router.policy is not None
    before = router.policy.statistics()[2].copy()
    with pytest.raises(FeedbackError, match="was removed from the router"):
        router.record_feedback(old, 1.0)
    np.testing.assert_array_equal(router.policy.statistics()[2], before)
    assert router.stats()["refused"] == 1 and router.stats()["applied"] == 0
    assert keep in router.model_names


def test_feedback_for_a_removed_child_warns_when_not_strict() -> None:
    """With ``strict_feedback=False`` it raised ``ValueError`` and the decision
    stayed pending for good."""
    router = fitted(strict_feedback=False)
    answer = router.invoke(query("poetry", 3))
    model = answer.response_metadata["metallm"]["model"]
    router.remove_model(model)
    with pytest.warns(UserWarning, match="was removed from the router"):
        assert math.isnan(router.record_feedback(answer, 1.0))
    assert router.stats()["pending"] == 0


# Defect 5 --------------------------------------------------------------------------


def test_the_default_model_cannot_be_removed() -> None:
    """Removing the ``default_model`` was accepted; the next embedder outage
    then crashed every call with ``'mid' is not in list``."""
    embedder = BrokenEmbeddings()
    router = router_of(default_model="mid", embeddings=embedder)
    with pytest.raises(ValueError, match="is the default_model"):
        router.remove_model("mid")
    router.default_model = "cheap"  # takes effect: now "mid" may go
    router.remove_model("mid")
    embedder.down = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        answer = router.invoke("anything")
    assert answer.response_metadata["metallm"]["model"] == "cheap"


# Defects 6, 7 --------------------------------------------------------------------


def test_add_model_on_a_copy_acts_on_the_whole_family() -> None:
    """After ``add_model`` on a ``model_copy()``, every call of the copy and of
    the original raised ``KeyError``."""
    router = fitted()
    copy = router.model_copy(update={"streaming": True})
    copy.add_model("new", EchoChild(name_tag="new"), 0.3)
    for handle in (router, copy):
        assert "new" in handle.models and "new" in handle.costs
        assert handle.invoke(query("math", 5)).content
    assert router.invoke(query("math", 6)).response_metadata["metallm"]["model"]
    router.remove_model("new")
    assert "new" not in copy.models and "new" not in copy.costs


def test_assigned_settings_take_effect_on_every_handle_or_are_refused() -> None:
    """``router.budget = 0.2`` and ``router.decay = 0.9`` were silently ignored,
    and ``copy.set_budget(0.3)`` paced the shared core but left
    ``router.budget`` at None."""
    router = fitted()
    copy = router.model_copy()
    router.budget = 0.2
    assert router.core.pacer is not None and router.core.pacer.budget == 0.2
    assert copy.budget == 0.2
    router.decay = 0.9
    assert router.policy is not None and router.policy.decay == 0.9
    assert copy.decay == 0.9
    copy.set_budget(0.3)
    assert router.budget == 0.3 and router.core.pacer.budget == 0.3
    copy.alpha = 0.7
    assert router.policy.alpha == 0.7 and router.alpha == 0.7
    router.strict_feedback = False
    assert copy.core.settings.strict_feedback is False
    router.allowed_fails = 5
    assert copy.allowed_fails == 5
    for field, value in (("ridge", 2.0), ("store", None), ("embeddings", None)):
        with pytest.raises(ValueError, match=f"{field}: fixed once the router"):
            setattr(router, field, value)
    with pytest.raises(ValueError, match="budget"):
        router.budget = 2.0  # infeasible: refused, and nothing changed
    assert router.budget == 0.3 and router.core.pacer.budget == 0.3
    router.streaming = True  # a per-handle field stays per handle
    assert copy.streaming is False


# Defects 8, 9, 15 ------------------------------------------------------------------


def test_a_plain_load_resumes_decay_budget_and_pace(tmp_path: Path) -> None:
    """A plain ``load`` resumed with ``decay=1.0`` and a fixed weight."""
    router = fitted(decay=0.95, budget=0.3, alpha=0.2)
    serve(router, [query("math", i) for i in range(40)], best_on_math)
    assert router.core.pacer is not None
    weight = router.core.pacer.weight
    router.save(tmp_path / "r")
    children = {name: EchoChild(name_tag=name) for name in COSTS}
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r", children, embeddings=KeywordEmbeddings()
    )
    assert (loaded.decay, loaded.budget, loaded.alpha) == (0.95, 0.3, 0.2)
    assert loaded.policy is not None and loaded.policy.decay == 0.95
    assert loaded.core.pacer is not None and loaded.core.pacer.weight == weight
    for saved, resumed in zip(
        router.policy.statistics(),  # type: ignore[union-attr]
        loaded.policy.statistics(),
        strict=True,
    ):
        np.testing.assert_array_equal(saved, resumed)
    prompt = query("math", 99)
    # The live cache lags the exact inverse by a bounded ridge deficit (policy),
    # every child's now that each update forgets on every child.
    assert loaded.route(prompt).value == pytest.approx(
        router.route(prompt).value, abs=1e-2
    )
    assert loaded.route(prompt).chosen == router.route(prompt).chosen
    with pytest.warns(UserWarning, match=r"\['decay'\] given, overriding"):
        again = MetaLLMRouterChatModel.load(
            tmp_path / "r", children, embeddings=KeywordEmbeddings(), decay=0.9
        )
    assert again.decay == 0.9
    with pytest.raises(ValueError, match=r"costs: unknown children \['larg'\]"):
        MetaLLMRouterChatModel.load(
            tmp_path / "r",
            children,
            embeddings=KeywordEmbeddings(),
            costs={"larg": 0.2},
        )


def test_a_restart_keeps_the_pacers_credit(tmp_path: Path) -> None:
    """A save kept the pacer's weight (0 while under-spending) and lost its
    credit; a save without ``pacer_level`` (before) resumes from its weight."""
    router = fitted(budget=0.9)
    serve(router, [query("poetry", i) for i in range(20)], best_on_math)
    pacer = router.core.pacer
    assert pacer is not None and pacer.weight == 0.0 and pacer.level < 0
    router.save(tmp_path / "r")
    children = {name: EchoChild(name_tag=name) for name in COSTS}
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r", children, embeddings=KeywordEmbeddings()
    )
    assert loaded.core.pacer is not None
    assert loaded.core.pacer.level == pacer.level
    manifest = tmp_path / "r" / "metallm.json"
    saved = json.loads(manifest.read_text())
    del saved["router"]["pacer_level"]
    saved["router"]["pacer_weight"] = 0.25
    manifest.write_text(json.dumps(saved))
    old = MetaLLMRouterChatModel.load(
        tmp_path / "r", children, embeddings=KeywordEmbeddings()
    )
    assert old.core.pacer is not None and old.core.pacer.level == 0.25


def test_a_budgeted_router_does_not_overspend_at_first() -> None:
    """The pacer started at weight 0: with ``budget=0.15`` the first 100 calls
    spent 2.4 times the budget; every restart and new worker repeated it."""
    router = fitted(budget=0.15)
    prompts = [query("math" if i % 2 else "poetry", 1_000 + i) for i in range(100)]
    chosen = serve(router, prompts, best_on_math)
    spend = np.mean([router.normalized_costs[m] for m in chosen])
    assert spend <= 1.25 * 0.15


# Defect 10 -------------------------------------------------------------------------


def test_route_previews_without_learning(tmp_path: Path) -> None:
    """``route()`` fed the online clusters, and previewed prompts' vectors went
    into the next save."""
    router = echo_router(dict(COSTS))
    router.invoke(query("math", 1))
    clusters = router.task_classifier
    assert clusters is not None
    seen = len(clusters.seen)  # type: ignore[union-attr]
    for i in range(20):
        router.route(query("poetry", i))
    assert len(clusters.seen) == seen  # type: ignore[union-attr]
    assert router.stats()["pending"] == 1


# Defects 12, 19 --------------------------------------------------------------------


def test_whole_run_feedback_for_an_unknown_run_is_refused() -> None:
    """``handler.record_feedback(unknown_root_id, score)`` returned ``[]``."""
    router = fitted()
    handler = MetaLLMFeedbackHandler(router)
    with pytest.raises(FeedbackError, match="unknown to this handler"):
        handler.record_feedback(uuid4(), 1.0)


def test_whole_run_feedback_skips_calls_rewarded_meanwhile(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The handler checked ``is_pending`` and then rewarded: a call rewarded in
    between raised partway through, and the calls not yet credited were lost.
    (``is_pending`` is made to answer as it would in that race.)"""
    router = fitted()
    handler = MetaLLMFeedbackHandler(router)
    chain = RunnableLambda(
        lambda _: [router.invoke(query("math", i)).content for i in range(3)]
    )
    root = uuid4()
    chain.invoke("go", config={"callbacks": [handler], "run_id": root})
    outside = router.invoke(query("poetry", 1), config={"callbacks": [handler]})
    pending = router.stats()["pending"]
    assert pending == 4
    first = next(r for r in handler._runs._under[root] if r != root)
    router.record_feedback(first, 0.5)  # rewarded by another path meanwhile
    monkeypatch.setattr(type(router), "is_pending", lambda self, run_id: True)
    assert handler.record_feedback(root, 1.0) == [1.0, 1.0]
    assert router.stats()["pending"] == 1  # only the call outside the chain
    assert router.is_pending(outside.response_metadata["metallm"]["run_id"])


# Defect 14 -------------------------------------------------------------------------


class ChildRuns(BaseCallbackHandler):
    """Records the metadata of each chat-model run that has a parent."""

    def __init__(self) -> None:
        self.metadata: list[dict[str, Any]] = []

    def on_chat_model_start(
        self, serialized: Any, messages: Any, *, parent_run_id: Any = None, **kw: Any
    ) -> None:
        if parent_run_id is not None:
            self.metadata.append(dict(kw.get("metadata") or {}))


def test_a_child_without_a_model_field_is_traced_as_itself() -> None:
    """Its run got ``ls_model_name='metallm-router'``, so LangSmith attributed
    its tokens to the router."""
    router = fitted()
    runs = ChildRuns()
    answer = router.invoke(query("math", 2), config={"callbacks": [runs]})
    model = answer.response_metadata["metallm"]["model"]
    assert [m.get("ls_model_name") for m in runs.metadata] == [model]
    assert all(m.get("ls_provider") != "metallm" for m in runs.metadata)


# Defect 16 -------------------------------------------------------------------------


def test_one_check_at_the_boundary_for_every_input() -> None:
    """numpy scalars were refused by some setters; ``cost=True`` was accepted;
    None or 'abc' costs raised raw ``float()`` errors; ``set_costs('small')``
    reported unknown children ['a', 'l', 'm', 's']; ``remove_model(['mid'])``
    raised "unhashable type"; ``fit`` accepted numeric strings as scores."""
    router = fitted()
    router.set_budget(np.float64(0.3))
    router.set_cost_weight(np.float32(0.2))
    assert router.invoke(query("math", 1), cost_weight=np.float64(0.1)).content
    assert router.budget == 0.3 and router.cost_weight == pytest.approx(0.2)
    cases: list[tuple[Any, type[Exception], str]] = [
        (
            lambda: router.add_model("x", EchoChild(name_tag="x"), True),
            TypeError,
            "expected a number, got True",
        ),
        (
            lambda: router.add_model("x", EchoChild(name_tag="x"), None),
            TypeError,
            "expected a number, got None",
        ),
        (
            lambda: router.set_costs({"mid": "abc"}),
            TypeError,
            r"costs\['mid'\]: expected a number",
        ),
        (lambda: router.set_costs("small"), TypeError, "expected a mapping"),
        (lambda: router.remove_model(["mid"]), TypeError, "expected a child's name"),
        (lambda: router.fit(["a", "b"], [[1, 1, "1"], [0, 0, 0]]), TypeError, "scores"),
        (lambda: router.record_feedback(uuid4(), "1"), TypeError, "score"),
    ]
    before = router.policy.statistics()[2].copy()  # type: ignore[union-attr]
    for call, kind, message in cases:
        with pytest.raises(kind, match=message):
            call()
    assert router.model_names == list(COSTS)
    np.testing.assert_array_equal(router.policy.statistics()[2], before)  # type: ignore[union-attr]


# Defect 18 -------------------------------------------------------------------------


def test_a_lone_surrogate_is_routed_and_learned_not_an_outage() -> None:
    """The cache key's ``encode("utf-8")`` raised on ``'\\ud800'``, so the call
    was routed blind and its feedback refused."""
    router = fitted()
    answer = router.invoke("math \ud800 question")
    meta = answer.response_metadata["metallm"]
    assert meta["embedding_failed"] is False
    assert router.record_feedback(answer, 1.0) == 1.0
    assert router.stats()["embedding_failures"] == 0


def test_a_catalogue_is_immutable_and_checks_its_input() -> None:
    catalogue = Catalogue.build({"a": 1.0, "b": 2.0})
    bigger = catalogue.with_child("c", 4.0)
    assert catalogue.names == ("a", "b") and bigger.names == ("a", "b", "c")
    assert bigger.normalized == {"a": 0.5, "b": 1.0, "c": 2.0}
    again = bigger.without_child("c").with_child("c", 4.0)
    assert again.generations["c"] != bigger.generations["c"]
    with pytest.raises(ValueError, match="at least 2 children"):
        Catalogue.build({"a": 1.0})


# Design item 5 ---------------------------------------------------------------------


class SlowStore(MemoryStore):
    """A shared store whose every round trip takes ``delay`` seconds."""

    delay = 0.1

    def versions(self, namespace: str, arms: Sequence[str]) -> Any:
        time.sleep(self.delay)
        return super().versions(namespace, arms)

    def add(self, *args: Any, **kwargs: Any) -> Any:
        time.sleep(self.delay)
        return super().add(*args, **kwargs)


def test_async_calls_never_block_the_event_loop_on_store_io() -> None:
    """``_agenerate`` blocked the loop on SQLite or Redis round trips."""
    router = fitted(store=SlowStore(refresh_interval=0.0))

    async def ticks_while(work: Any) -> int:
        ticks = 0

        async def tick() -> None:
            nonlocal ticks
            while True:
                await asyncio.sleep(0.005)
                ticks += 1

        ticker = asyncio.create_task(tick())
        await asyncio.sleep(0)
        await work()
        ticker.cancel()
        return ticks

    answers: list[Any] = []

    async def call() -> None:
        for i in range(2):
            answers.append(await router.ainvoke(query("math", i)))

    async def feedback() -> None:
        for answer in answers:
            await router.arecord_feedback(answer, 1.0)

    # Each takes at least two store round trips of 0.1 s: a loop blocked on
    # them would hardly tick at all.
    assert asyncio.run(ticks_while(call)) >= 15
    assert asyncio.run(ticks_while(feedback)) >= 15
    assert router.stats()["applied"] == 2


def test_a_restart_keeps_units_newcomers_and_pace_after_catalogue_changes(
    tmp_path: Path,
) -> None:
    """Catalogue change, budget and restart together: the unit stays that of the
    first catalogue, a new child stays a newcomer, the budget keeps pacing."""
    router = fitted(budget=0.3)
    router.add_model("huge", EchoChild(name_tag="huge"), 10.0)
    serve(router, [query("poetry", i) for i in range(5)], best_on_math)
    assert router.core.catalogue.newcomers == {"huge"}
    router.save(tmp_path / "r")
    children = {name: EchoChild(name_tag=name) for name in [*COSTS, "huge"]}
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "r", children, embeddings=KeywordEmbeddings()
    )
    assert loaded.normalized_costs == router.normalized_costs
    assert loaded.normalized_costs["huge"] == pytest.approx(10.0)
    assert loaded.core.catalogue.newcomers == {"huge"}
    assert loaded.budget == 0.3 and loaded.core.pacer is not None
    assert loaded.core.pacer.weight == router.core.pacer.weight  # type: ignore[union-attr]
