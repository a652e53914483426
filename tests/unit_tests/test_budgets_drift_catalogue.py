"""Budgets, drift and a changing catalogue on the router (issue 15)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.core.stores.sqlite import SQLiteStore

from .fakes import EchoChild, KeywordEmbeddings, echo_router, serve

PROMPTS = [f"math question {i}" for i in range(30)] + [
    f"poem request {i}" for i in range(30)
]
# cheap is good at poems, pricey at math; mid is in between
SCORES = np.array([[0.2, 0.6, 0.9]] * 30 + [[0.9, 0.6, 0.3]] * 30)


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    costs = {"cheap": 0.1, "mid": 0.4, "pricey": 1.0}
    return echo_router(costs, **{"alpha": 0.0, **overrides})


def state(router: MetaLLMRouterChatModel) -> list[bytes]:
    assert router.policy is not None
    return [a.tobytes() for a in router.policy.statistics()] + [
        json.dumps([router.costs, router.cost_weight, router.budget]).encode(),
        ",".join(router.models).encode(),
    ]


def test_the_router_learns_scores_and_weighs_cost_only_when_deciding() -> None:
    router = make_router(cost_weight=0.0)
    router.fit(PROMPTS, SCORES)
    before = state(router)
    assert router.route("math question 99").chosen == "pricey"
    router.set_cost_weight(1.0)  # nothing relearned, the next decision changes
    assert router.route("math question 99").chosen == "mid"
    router.set_cost_weight(2.0)
    assert router.route("math question 99").chosen == "cheap"
    assert state(router)[:3] == before[:3]
    answer = router.invoke("math question 7")
    assert router.record_feedback(answer, 0.25) == 0.25  # the score is learned


def test_set_costs_takes_effect_on_the_next_call_without_relearning() -> None:
    router = make_router(cost_weight=0.5)
    router.fit(PROMPTS, SCORES)
    assert router.route("math question 99").chosen == "mid"
    before = state(router)[:3]
    router.set_costs({"pricey": 0.1})  # a 10x price cut
    assert router.route("math question 99").chosen == "pricey"
    assert state(router)[:3] == before


def test_a_budget_paces_spend_to_the_target() -> None:
    router = make_router(budget=0.3)
    router.fit(PROMPTS, SCORES)
    rng = np.random.default_rng(0)
    spent = []
    for i in rng.integers(0, 60, size=400):
        answer = router.invoke(PROMPTS[i] + " again")
        meta = answer.response_metadata["metallm"]
        spent.append(meta["cost"])
        router.record_feedback(
            answer, float(SCORES[i, router.model_names.index(meta["model"])])
        )
    # primal-dual: the overspend is at most the final weight / (step * calls)
    assert router.core.pacer is not None
    bound = router.core.pacer.weight / (router.core.pacer.step * len(spent))
    assert abs(np.mean(spent) - 0.3) <= bound + 0.005
    router.set_budget(None)  # back to the fixed weight (0): the best child
    assert router.route("math question 99").chosen == "pricey"


def test_decay_lets_a_regressed_child_lose_its_share() -> None:
    shares = {}
    for decay in (1.0, 0.8):
        router = make_router(decay=decay)
        router.fit(PROMPTS[:30] * 5, np.tile(SCORES[:30], (5, 1)))
        chosen = []
        for i in range(60):  # pricey now fails math; mid still scores 0.6
            answer = router.invoke(f"math question {100 + i}")
            model = answer.response_metadata["metallm"]["model"]
            chosen.append(model)
            router.record_feedback(
                answer, {"cheap": 0.2, "mid": 0.6, "pricey": 0.0}[model]
            )
        shares[decay] = chosen[-30:].count("pricey") / 30
    assert shares[0.8] < 0.1 < shares[1.0]


def test_a_child_added_live_is_explored_and_adopted_keeping_the_others() -> None:
    router = make_router(cost_weight=0.0)
    router.fit(PROMPTS, SCORES)
    before = [a[:3].tobytes() for a in router.policy.statistics()]  # type: ignore[union-attr]
    router.add_model("star", EchoChild(name_tag="star"), 0.2)
    assert router.model_names == ["cheap", "mid", "pricey", "star"]
    after = [a[:3].tobytes() for a in router.policy.statistics()]  # type: ignore[union-attr]
    assert after == before
    chosen = []
    for i in range(120):
        answer = router.invoke(f"math question {200 + i}")
        model = answer.response_metadata["metallm"]["model"]
        chosen.append(model)
        router.record_feedback(
            answer, {"cheap": 0.2, "mid": 0.6, "pricey": 0.9, "star": 1.0}[model]
        )
    assert chosen[-50:].count("star") >= 45


def test_a_fit_with_a_new_childs_own_outcomes_ends_its_wider_exploration() -> None:
    """A fit that held a live-added child's recorded outcomes left it a
    newcomer, explored wider than the rest for hundreds of calls more."""
    router = make_router(cost_weight=0.0, alpha=0.1)
    router.fit(PROMPTS, SCORES)
    router.add_model("star", EchoChild(name_tag="star"), 0.2)
    router.add_model("nova", EchoChild(name_tag="nova"), 0.3)
    prompt = "math question 7"
    widened = router.route(prompt).bonus["star"]
    rows = [
        {**dict(zip(["cheap", "mid", "pricey"], row, strict=True)), "star": 1.0}
        for row in SCORES
    ]
    router.fit(PROMPTS, rows)
    assert router.core.catalogue.newcomers == {"nova"}
    policy = router.policy
    assert policy is not None
    arms, _, width, _ = policy.estimate(router.core.contexts([prompt])[0])
    assert router.route(prompt).bonus["star"] == pytest.approx(
        0.1 * width[arms.index("star")]
    )
    assert router.route(prompt).bonus["star"] < widened / 2


def test_removing_a_child_keeps_the_others_statistics() -> None:
    router = make_router()
    router.fit(PROMPTS, SCORES)
    A, _, counts = router.policy.statistics()  # type: ignore[union-attr]
    router.remove_model("mid")
    assert router.model_names == ["cheap", "pricey"]
    left = router.policy.statistics()  # type: ignore[union-attr]
    assert left[0].tobytes() == A[[0, 2]].tobytes()
    assert left[2].tolist() == counts[[0, 2]].tolist()
    assert router.route("poem request 99").chosen == "cheap"


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda r: r.set_budget(0.05), "between the cheapest"),
        (lambda r: r.set_budget(1.5), "the priciest child"),
        (lambda r: r.set_cost_weight(-1.0), "cost_weight"),
        (lambda r: r.set_cost_weight(float("nan")), "cost_weight"),
        (lambda r: r.set_costs({"nope": 1.0}), r"unknown children \['nope'\]"),
        (lambda r: r.set_costs({"cheap": -1.0}), "cheap"),
        (lambda r: r.add_model("mid", EchoChild(name_tag="x"), 0.5), "already a child"),
        (lambda r: r.add_model("", EchoChild(name_tag="x"), 0.5), "non-empty"),
        (lambda r: r.add_model("new", EchoChild(name_tag="x"), float("inf")), "new"),
        (lambda r: r.add_model("new", "not a model", 0.5), "chat model"),
        (lambda r: r.remove_model("nope"), "'nope' is not a child"),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(call, error: str) -> None:  # type: ignore[no-untyped-def]
    router = make_router()
    router.fit(PROMPTS, SCORES)
    before = state(router)
    with pytest.raises((ValueError, TypeError), match=error):
        call(router)
    assert state(router) == before


def test_removing_down_to_one_child_and_bad_settings_are_refused() -> None:
    router = make_router()
    router.remove_model("mid")
    with pytest.raises(ValueError, match="at least 2 children"):
        router.remove_model("cheap")
    assert router.model_names == ["cheap", "pricey"]
    with pytest.raises(ValueError, match="decay"):
        make_router(decay=0.0)
    with pytest.raises(ValueError, match="decay"):
        make_router(decay=1.5)
    with pytest.raises(ValueError, match="budget"):
        make_router(budget=0.01)
    budgeted = make_router(budget=0.2)
    with pytest.raises(ValueError, match="budget"):  # 0.2 is below the new cheapest
        budgeted.set_costs({"cheap": 0.5})
    assert budgeted.costs["cheap"] == 0.1


def test_load_adds_and_drops_children_and_says_so(tmp_path: Path) -> None:
    router = make_router(cost_weight=0.2)
    router.fit(PROMPTS, SCORES)
    router.save(tmp_path / "saved")
    A, _, counts = router.policy.statistics()  # type: ignore[union-attr]
    models = {
        "cheap": EchoChild(name_tag="x"),
        "pricey": EchoChild(name_tag="x"),
        "star": EchoChild(name_tag="x"),
    }
    with pytest.warns(
        UserWarning, match=r"added children \['star'\].*dropped .*\['mid'\]"
    ):
        loaded = MetaLLMRouterChatModel.load(
            tmp_path / "saved",
            models,
            embeddings=KeywordEmbeddings(),
            costs={"star": 0.3},
        )
    assert loaded.model_names == ["cheap", "pricey", "star"]
    assert loaded.costs == {"cheap": 0.1, "pricey": 1.0, "star": 0.3}
    new_a, _, new_counts = loaded.policy.statistics()  # type: ignore[union-attr]
    assert new_a[:2].tobytes() == A[[0, 2]].tobytes()
    assert new_counts.tolist() == [counts[0], counts[2], 0]
    with pytest.raises(ValueError, match=r"added children \['star'\] need a cost"):
        MetaLLMRouterChatModel.load(
            tmp_path / "saved", models, embeddings=KeywordEmbeddings()
        )


def test_a_format_2_save_of_rewards_loads_as_scores(tmp_path: Path) -> None:
    """Old saves learned ``score - p * c``; they convert exactly to scores."""
    router = make_router(cost_weight=0.4)
    router.fit(PROMPTS, SCORES)
    router.save(tmp_path / "saved")
    scores_b = router.policy.statistics()[1]  # type: ignore[union-attr]
    cost = np.array([0.1, 0.4, 1.0])
    manifest_path = tmp_path / "saved" / "metallm.json"
    manifest = json.loads(manifest_path.read_text())
    arrays_path = tmp_path / "saved" / manifest["arrays"]["file"]
    with np.load(arrays_path) as saved:
        arrays = {key: saved[key] for key in saved.files}
    sums = arrays["A"][:, :, -1].copy()
    sums[:, -1] -= 1.0
    arrays["b"] = arrays["b"] - 0.4 * cost[:, None] * sums  # what format 2 held
    np.savez(arrays_path, **arrays)
    import hashlib

    manifest["arrays"]["sha256"] = hashlib.sha256(arrays_path.read_bytes()).hexdigest()
    manifest["format_version"] = 2
    manifest_path.write_text(json.dumps(manifest))
    loaded = MetaLLMRouterChatModel.load(
        tmp_path / "saved", dict(router.models), embeddings=KeywordEmbeddings()
    )
    np.testing.assert_allclose(loaded.policy.statistics()[1], scores_b, atol=1e-9)  # type: ignore[union-attr]


def test_a_call_may_override_the_cost_weight() -> None:
    router = make_router(cost_weight=0.0)
    router.fit(PROMPTS, SCORES)
    answer = router.invoke("math question 99", cost_weight=2.0)
    assert answer.response_metadata["metallm"]["model"] == "cheap"
    bound = router.bind(cost_weight=2.0).invoke("math question 98")
    assert bound.response_metadata["metallm"]["model"] == "cheap"
    assert router.invoke("math question 97").response_metadata["metallm"]["model"] == (
        "pricey"
    )
    with pytest.raises(ValueError, match="cost_weight"):
        router.invoke("math question 96", cost_weight=-1.0)


def test_routers_sharing_a_store_pace_one_budget(tmp_path: Path) -> None:
    """A fleet's budget is one: the level a worker's pacer moves is the one
    every worker on the store decides with (each worker paced alone before)."""
    path = tmp_path / "fleet.db"
    first, second = (
        make_router(budget=0.3, store=SQLiteStore(path, refresh_interval=0))
        for _ in "ab"
    )
    first.fit(PROMPTS, SCORES)  # pricey is best at math: it spends above 0.3
    serve(first, [f"math question {i}" for i in range(40)], lambda p, m: 1.0)
    assert first.core.pacer is not None and second.core.pacer is not None
    level = first.core.pacer.weight
    assert level > 0.0  # the first worker spent above the budget
    answer = second.invoke("poem request 1")
    cost = answer.response_metadata["metallm"]["cost"]
    expected = max(0.0, level + 0.05 * (cost - 0.3))
    assert second.core.pacer.weight == pytest.approx(expected)


def test_a_worker_restarted_into_a_fleet_paces_with_the_fleets_level(
    tmp_path: Path,
) -> None:
    """A save's level resumes a worker alone; in a fleet the store's level,
    moved by the others since the save, is the one it decides with."""
    path = tmp_path / "fleet.db"
    first, second = (
        make_router(budget=0.3, store=SQLiteStore(path, refresh_interval=0))
        for _ in "ab"
    )
    first.fit(PROMPTS, SCORES)
    serve(first, [f"math question {i}" for i in range(40)], lambda p, m: 1.0)
    first.save(tmp_path / "saved")
    assert first.core.pacer is not None and second.core.pacer is not None
    saved_level = first.core.pacer.level
    serve(second, [f"poem request {i}" for i in range(40)], lambda p, m: 1.0)
    fleet_level = second.core.pacer.level
    assert fleet_level < saved_level  # the cheap poems spent below the budget
    restarted = MetaLLMRouterChatModel.load(
        tmp_path / "saved",
        dict(first.models),
        embeddings=KeywordEmbeddings(),
        store=SQLiteStore(path, refresh_interval=0),
    )
    assert restarted.core.pacer is not None
    assert restarted.core.pacer.level == saved_level  # alone until its first call
    answer = restarted.invoke("poem request 99")
    cost = answer.response_metadata["metallm"]["cost"]
    assert restarted.core.pacer.level == pytest.approx(
        fleet_level + 0.05 * (cost - 0.3)
    )
