"""cost_mode="usage": metadata and budget spend priced by each answer's token usage."""

from __future__ import annotations

from typing import Any

import pytest

from langchain_metallm import MetaLLMRouterChatModel
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.costs import dollars

from .fakes import echo_router

# EchoChild reports 3 input and 2 output tokens per answer.
PRICES = {"cheap": (1.0, 2.0), "pricey": (10.0, 30.0)}


def make_router(**overrides: Any) -> MetaLLMRouterChatModel:
    settings = {
        "cost_weight": 0.5,
        "cost_mode": "usage",
        "prices": PRICES,
        "reference_tokens": (30, 10),
    }
    return echo_router(
        {"cheap": 0.1, "pricey": 1.0},
        **{"online_clusters": False, **settings, **overrides},
    )


def test_dollars_and_normalisation_by_the_priciest_reference_call() -> None:
    usage = {"input_tokens": 3, "output_tokens": 2, "total_tokens": 5}
    assert dollars(usage, (10.0, 30.0)) == pytest.approx(90e-6)
    # reference: 30 in + 10 out on the priciest model = 300 + 300 = $600e-6
    catalogue = Catalogue.build(
        dict.fromkeys(PRICES, 1.0),
        cost_mode="usage",
        prices=PRICES,
        reference_tokens=(30, 10),
    )
    assert catalogue.answer_cost("pricey", usage) == pytest.approx(0.15)
    assert catalogue.answer_cost("cheap", usage) == pytest.approx(7 / 600)


@pytest.mark.parametrize("model", ["cheap", "pricey"])
def test_reward_and_metadata_use_the_answers_usage(model: str) -> None:
    router = make_router()
    router.route("math x")
    policy = router.policy
    assert policy is not None
    other = 1 - router.model_names.index(model)
    policy.update(other, [1.0, 0.0, 0.0, 0.0, 1.0], -5.0)  # steer to ``model``
    answer = router.invoke("math x")
    meta = answer.response_metadata["metallm"]
    usage = meta["usage"]
    assert meta["model"] == model and usage is not None
    expected = dollars(usage, PRICES[model]) / 600e-6
    assert meta["cost"] == pytest.approx(expected)
    assert router.record_feedback(answer, 0.8) == 0.8  # scores are learned


def test_fixed_mode_uses_the_normalised_model_cost() -> None:
    router = make_router(cost_mode="fixed", prices=None)
    answer = router.invoke("math x")
    model = answer.response_metadata["metallm"]["model"]
    assert answer.response_metadata["metallm"]["cost"] == router.normalized_costs[model]
    assert router.record_feedback(answer, 1.0) == 1.0


def test_answer_without_usage_warns_and_falls_back_to_the_fixed_cost() -> None:
    router = make_router()
    # EchoChild's stream carries no usage_metadata.
    with pytest.warns(UserWarning, match="no token usage"):
        chunks = list(router.stream("math x"))
    meta = chunks[-1].response_metadata["metallm"]
    assert meta["cost"] == router.normalized_costs[meta["model"]]


@pytest.mark.parametrize(
    ("overrides", "field"),
    [
        ({"prices": None}, "prices: required"),
        ({"prices": {"cheap": (1.0, 2.0)}}, "prices: missing"),
        ({"prices": {**PRICES, "cheap": (-1.0, 2.0)}}, "prices: 'cheap'"),
        ({"prices": {**PRICES, "cheap": (1.0, float("nan"))}}, "prices: 'cheap'"),
        ({"cost_mode": "fixed"}, "prices: only used"),
        ({"reference_tokens": (0, 0)}, "reference call must cost"),
        ({"reference_tokens": (-5, 10)}, "reference_tokens"),
        ({"cost_mode": "tokens"}, "cost_mode"),
    ],
)
def test_bad_usage_settings_name_the_problem(
    overrides: dict[str, Any], field: str
) -> None:
    with pytest.raises(ValueError, match=field):
        make_router(**overrides)
