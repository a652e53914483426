"""Issue 21: shadow mode, background exploration, the decision log and evaluation."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.core.decision_log import DecisionLog
from langchain_metallm.explorer import EXPLORATION_TAG

from .fakes import EchoChild, KeywordEmbeddings, query, serve

COSTS = {"cheap": 0.1, "mid": 0.4, "pricey": 1.0}


def truth(prompt: str, model: str) -> float:
    """Pricey is right on maths, everyone on poems."""
    if "math" not in prompt:
        return 1.0
    return {"cheap": 0.0, "mid": 0.5, "pricey": 1.0}[model]


def grade(messages: Any, generation: ChatGeneration) -> float:
    """A scorer that knows ``truth``: answers read ``"<child>: <prompt>"``."""
    child, _, prompt = generation.text.partition(": ")
    return truth(prompt, child)


async def agrade(messages: Any, generation: ChatGeneration) -> float:
    return grade(messages, generation)


class GatedChild(EchoChild):
    """An ``EchoChild`` that answers only once ``gate`` is set."""

    gate: Any = None

    def _generate(self, messages: list[BaseMessage], *a: Any, **k: Any) -> ChatResult:
        self.gate.wait(10)
        return super()._generate(messages, *a, **k)


def router_of(**overrides: Any) -> MetaLLMRouterChatModel:
    fields: dict[str, Any] = {
        "models": {name: EchoChild(name_tag=name) for name in COSTS},
        "costs": dict(COSTS),
        "embeddings": KeywordEmbeddings(),
        "online_clusters": False,
        "auto_tasks": False,
        **overrides,
    }
    return MetaLLMRouterChatModel(**fields)


def fitted(**overrides: Any) -> MetaLLMRouterChatModel:
    router = router_of(**overrides)
    prompts = [query("math" if i % 2 else "poetry", i) for i in range(100)]
    router.fit(prompts, [[truth(p, m) for m in COSTS] for p in prompts])
    return router


def test_in_shadow_mode_the_incumbent_answers_and_the_router_still_decides() -> None:
    router = fitted(shadow="pricey", cost_weight=0.3)
    answer = router.invoke(query("poetry", 1))
    meta = answer.response_metadata["metallm"]
    assert (meta["model"], meta["chosen"], meta["shadow"]) == ("pricey", "cheap", True)
    assert answer.content.startswith("pricey:")
    counts = dict(zip(router.policy.arms, router.policy.counts, strict=True))  # type: ignore[union-attr]
    router.record_feedback(answer, 1.0)  # the incumbent's score is learned
    after = dict(zip(router.policy.arms, router.policy.counts, strict=True))  # type: ignore[union-attr]
    assert after["pricey"] == counts["pricey"] + 1
    logged = router.decisions().records()[-1]
    assert logged.decision.chosen == "cheap" and logged.scores == {"pricey": 1.0}
    copy = router.model_copy()
    copy.set_shadow(None)  # go live, on every handle
    assert router.shadow is None
    meta = router.invoke(query("poetry", 2)).response_metadata["metallm"]
    assert meta["model"] == meta["chosen"] == "cheap" and meta["shadow"] is False
    router.set_shadow("mid")
    assert (
        router.invoke(query("poetry", 3)).response_metadata["metallm"]["model"] == "mid"
    )


def test_explored_children_answer_in_the_background_and_are_learned() -> None:
    gate = threading.Event()
    children: dict[str, BaseChatModel] = {
        "cheap": EchoChild(name_tag="cheap"),
        "mid": GatedChild(name_tag="mid", gate=gate),
        "pricey": GatedChild(name_tag="pricey", gate=gate),
    }
    traced = Tags()
    router = fitted(models=children, shadow="cheap", explore_rate=1.0, scorer=agrade)
    before = dict(zip(router.policy.arms, router.policy.counts, strict=True))  # type: ignore[union-attr]
    answer = router.invoke(query("math", 1), config={"callbacks": [traced]})
    # The answer came back while both explored children are still blocked.
    assert answer.content.startswith("cheap:") and not gate.is_set()
    assert router.wait_explorations(timeout=0.05) is False
    gate.set()
    assert router.wait_explorations(timeout=10) is True
    after = dict(zip(router.policy.arms, router.policy.counts, strict=True))  # type: ignore[union-attr]
    assert {k: after[k] - before[k] for k in after} == {
        "cheap": 0,
        "mid": 1,
        "pricey": 1,
    }
    logged = router.decisions().records()[-1]
    assert logged.decision.explored == ("mid", "pricey")
    assert logged.scores == {"mid": 0.5, "pricey": 1.0}
    assert logged.costs == pytest.approx({"cheap": 0.1, "mid": 0.4, "pricey": 1.0})
    stats = router.stats()
    assert (stats["explored"], stats["explored_calls"]) == (1, 2)
    assert stats["explored_spend"] == pytest.approx(1.4)
    assert traced.exploration_runs == 2  # ordinary child runs, marked


class Tags(BaseCallbackHandler):
    """Counts chat-model runs tagged as exploration."""

    def __init__(self) -> None:
        self.exploration_runs = 0

    def on_chat_model_start(self, *args: Any, tags: Any = None, **kw: Any) -> None:
        if tags and EXPLORATION_TAG in tags:
            self.exploration_runs += 1


def test_exploration_failures_never_touch_the_answer() -> None:
    children: dict[str, BaseChatModel] = {
        "cheap": EchoChild(name_tag="cheap"),
        "mid": EchoChild(name_tag="mid", fail=True),
        "pricey": EchoChild(name_tag="pricey"),
    }
    router = fitted(models=children, shadow="cheap", explore_rate=1.0, scorer=grade)
    router.scorer = lambda messages, generation: 2.0  # junk: out of [0, 1]
    answer = router.invoke(query("math", 1))
    assert answer.content.startswith("cheap:")
    router.wait_explorations(timeout=10)
    stats = router.stats()
    assert stats["explore_errors"] == 2 and stats["explored_calls"] == 0
    errors = router.decisions().records()[-1].errors
    assert "is down" in errors["mid"] and "score" in errors["pricey"]
    assert router.record_feedback(answer, 1.0) == 1.0


def test_the_exploration_budget_caps_its_spend() -> None:
    router = fitted(shadow="cheap", explore_rate=1.0, explore_budget=0.14, scorer=grade)
    serve(router, [query("math", i) for i in range(200)], truth)
    router.wait_explorations(timeout=10)
    stats = router.stats()
    # Exploring costs 1.4 per call; 0.14 of credit per call allows one in ten.
    assert 15 <= stats["explored"] <= 21
    assert stats["explored_spend"] <= 0.14 * 200 + 1e-9


def test_bad_settings_are_refused() -> None:
    with pytest.raises(ValueError, match=r"explore_rate: must be in \[0, 1\]"):
        router_of(explore_rate=1.5, scorer=grade)
    with pytest.raises(ValueError, match="need a scorer"):
        router_of(explore_rate=0.1)
    with pytest.raises(ValueError, match="shadow: 'gpt' is not one of"):
        router_of(shadow="gpt")
    router = router_of(shadow="mid")
    with pytest.raises(ValueError, match="is the shadow incumbent"):
        router.remove_model("mid")
    with pytest.raises(ValueError, match="need a scorer"):
        router.explore_rate = 0.2
    assert router.explore_rate == 0.0
    with pytest.raises(TypeError, match="scorer: expected"):
        router.scorer = "grade"
    with pytest.raises(ValueError, match="no routed call with an embedding"):
        router.evaluate()


def test_the_decision_log_is_bounded_holds_no_text_and_reads_back(
    tmp_path: Path,
) -> None:
    router = fitted(decision_log_size=5, explore_rate=0.5, scorer=grade)
    serve(router, [query("math", i) for i in range(8)], truth)
    router.wait_explorations(timeout=10)
    log = router.decisions()
    assert len(log) == 5
    path = tmp_path / "log.jsonl"
    log.to_jsonl(path)
    text = path.read_text()
    assert "math question" not in text and "what is" not in text
    assert all(json.loads(line)["query_hash"] for line in text.splitlines())
    again = DecisionLog.read_jsonl(path)
    assert [r.to_dict() for r in again] == [r.to_dict() for r in log]
    with pytest.raises(ValueError, match="line 1"):
        (tmp_path / "bad.jsonl").write_text('{"run_id": 1}\n')
        DecisionLog.read_jsonl(tmp_path / "bad.jsonl")
    older = [{**json.loads(line), "probe": False} for line in text.splitlines()]
    (tmp_path / "older.jsonl").write_text("".join(json.dumps(r) + "\n" for r in older))
    kept = DecisionLog.read_jsonl(tmp_path / "older.jsonl")  # before probes went
    assert [r.to_dict() for r in kept] == [r.to_dict() for r in log]


def test_evaluate_estimates_going_live_from_a_shadow_log() -> None:
    """In the shadow of the priciest child, with a fifth of calls explored:
    the estimated accuracy at each cost weight covers what that rule really
    scores on the same calls."""
    router = fitted(shadow="pricey", explore_rate=0.2, scorer=grade)
    rng = np.random.default_rng(0)
    prompts = [query("math" if rng.random() < 0.5 else "poetry", i) for i in range(400)]
    serve(router, prompts, truth)
    router.wait_explorations(timeout=30)
    records = router.decisions().records()
    evaluation = router.evaluate(cost_weights=[0.0, 0.3, 2.0], budgets=[0.2])
    assert evaluation.observed["child"] == "pricey"
    assert evaluation.observed["accuracy"] == pytest.approx(1.0)
    assert evaluation.observed["cost"] == pytest.approx(1.0)
    names = list(COSTS)
    for row in evaluation.rows:
        weight = row["cost_weight"]
        true = []
        for logged, prompt in zip(records, prompts, strict=True):
            value = {
                n: min(max(logged.decision.predicted[n], 0.0), 1.0) - weight * COSTS[n]
                for n in names
            }
            true.append(truth(prompt, max(names, key=lambda n: value[n])))
        assert row["accuracy_low"] <= np.mean(true) <= row["accuracy_high"]
        assert sum(row["shares"].values()) == pytest.approx(1.0)
    cheap = evaluation.rows[2]
    assert cheap["shares"]["cheap"] == 1.0 and cheap["cost"] == pytest.approx(0.1)
    assert evaluation.rows[3]["budget"] == 0.2 and evaluation.rows[3]["cost"] <= 0.2
    replay = router.evaluate(cost_weights=[0.3], estimator="replay").rows[0]
    assert replay["calls"] < 400 * 0.3 and replay["accuracy_low"] <= 1.0
