"""LangChain conventions for children (issue 23, item 5): children given as
``init_chat_model`` strings, and the router's ``profile`` derived from theirs."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from langchain_openai import ChatOpenAI

from langchain_metallm import MetaLLMRouterChatModel

from .fakes import EchoChild, KeywordEmbeddings

SMALL = {
    "tool_calling": True,
    "structured_output": True,
    "image_inputs": False,
    "max_input_tokens": 128_000,
    "max_output_tokens": 16_384,
    "reasoning_effort_levels": ["low", "medium", "high"],
    "name": "Small",
}
LARGE = {
    "tool_calling": True,
    "structured_output": False,
    "image_inputs": True,
    "max_input_tokens": 200_000,
    "reasoning_effort_levels": ["medium", "high"],
    "name": "Large",
}


def router(**children: Any) -> MetaLLMRouterChatModel:
    return MetaLLMRouterChatModel(
        models=children,
        costs=dict.fromkeys(children, 1.0),
        embeddings=KeywordEmbeddings(),
    )


def child(name: str, profile: dict[str, Any] | None) -> EchoChild:
    return EchoChild(name_tag=name, profile=profile)  # type: ignore[arg-type]


def test_the_profile_promises_only_what_every_child_can_do() -> None:
    profile = router(small=child("s", SMALL), large=child("l", LARGE)).profile
    assert profile == {
        "tool_calling": True,  # both
        "structured_output": False,  # one cannot
        "image_inputs": False,  # one cannot
        "max_input_tokens": 128_000,  # the smaller limit
        "reasoning_effort_levels": ["medium", "high"],  # levels both have
        # max_output_tokens: unknown for Large; a model's name is not combined
    }


def test_a_child_without_a_profile_leaves_only_what_it_rules_out() -> None:
    profile = router(small=child("s", SMALL), plain=child("p", None)).profile
    assert profile == {"image_inputs": False}
    assert router(a=child("a", None), b=child("b", None)).profile is None


def test_a_given_profile_is_kept_and_a_derived_one_follows_the_children() -> None:
    derived = router(small=child("s", SMALL), large=child("l", SMALL))
    assert derived.profile is not None and derived.profile["structured_output"]
    derived.add_model("large2", child("l2", LARGE), cost=1.0)
    assert derived.profile is not None and not derived.profile["structured_output"]
    derived.remove_model("large2")
    assert derived.profile is not None and derived.profile["structured_output"]
    given = MetaLLMRouterChatModel(
        models={"small": child("s", SMALL), "large": child("l", SMALL)},
        costs=[1.0, 2.0],
        embeddings=KeywordEmbeddings(),
        profile={"tool_calling": False},
    )
    given.add_model("large2", child("l2", LARGE), cost=1.0)
    assert given.profile == {"tool_calling": False}


def test_init_chat_model_strings_become_children(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_API_KEY", "test")
    named = MetaLLMRouterChatModel(
        models={"small": "openai:gpt-4o-mini", "large": "openai:gpt-4o"},
        costs={"small": 0.15, "large": 2.5},
        embeddings=KeywordEmbeddings(),
    )
    assert all(isinstance(m, ChatOpenAI) for m in named.models.values())
    assert [m.model_name for m in named.models.values()] == ["gpt-4o-mini", "gpt-4o"]
    assert named.profile is not None and named.profile["tool_calling"] is True
    listed = MetaLLMRouterChatModel(
        models=["openai:gpt-4o-mini", EchoChild(name_tag="echo")],
        costs=[0.15, 1.0],
        embeddings=KeywordEmbeddings(),
    )
    assert list(listed.models) == ["gpt-4o-mini", "model_1"]


def test_a_string_child_without_langchain_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "langchain.chat_models", None)
    with pytest.raises(ImportError, match="pip install langchain"):
        router(small="openai:gpt-4o-mini", large=EchoChild(name_tag="l"))
