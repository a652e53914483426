"""Children: ``models`` given as ``init_chat_model`` strings become chat models,
``models`` and ``costs`` given as lists get names, the router's ``profile`` is
what every child can do, and a routed answer or run id names the run whose
feedback it is."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any, cast
from uuid import UUID

from langchain_core.language_models import BaseChatModel, ModelProfile
from langchain_core.messages import AIMessage, BaseMessage

_ONE_MODELS_IDENTITY = frozenset({"name", "status", "release_date", "last_updated"})
"""Profile keys that describe one model, not a capability: never combined."""


def named_children(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``init_chat_model`` strings in ``models`` turned into chat
    models, and ``models`` and ``costs`` lists into dicts keyed by each child's
    model name (``model_<i>`` when it has none)."""
    models = values.get("models")
    if isinstance(models, Mapping):
        values = {**values, "models": {k: as_chat_model(v) for k, v in models.items()}}
    elif isinstance(models, (list, tuple)):
        models = [as_chat_model(model) for model in models]
        names = [child_name(model, i) for i, model in enumerate(models)]
        if len(set(names)) != len(names):
            raise ValueError(
                f"models: child names must be unique, got {names}; pass a dict"
            )
        values = {**values, "models": dict(zip(names, models, strict=True))}
    costs = values.get("costs")
    if isinstance(costs, (list, tuple)) and isinstance(values.get("models"), dict):
        if len(costs) != len(values["models"]):
            raise ValueError(
                f"costs: expected {len(values['models'])} values, got {len(costs)}"
            )
        values = {**values, "costs": dict(zip(values["models"], costs, strict=True))}
    return values


def as_chat_model(model: Any) -> Any:
    """``model``, or the chat model ``langchain``'s ``init_chat_model`` makes of
    a string such as ``"openai:gpt-4o-mini"`` (provider settings such as the API
    key and base URL come from the provider's environment variables)."""
    if not isinstance(model, str):
        return model
    try:
        from langchain.chat_models import init_chat_model
    except ImportError as missing:
        raise ImportError(
            f"models: {model!r} is an init_chat_model string, which needs the "
            f"langchain package ({missing}): pip install langchain, or pass a chat "
            "model"
        ) from missing
    return init_chat_model(model)


def combined_profile(models: Iterable[BaseChatModel]) -> ModelProfile | None:
    """What the router can promise whichever child answers: a capability only
    if every child has it (any child without it: False), a limit the smallest
    child's, a list of levels those every child has, another value only if all
    agree. A key some child's profile lacks, with no child ruling it out, is
    left out (unknown); a model's own name and dates are never combined."""
    profiles: list[dict[str, Any]] = [dict(m.profile or {}) for m in models]
    if not profiles:
        return None
    keys = {key for profile in profiles for key in profile} - _ONE_MODELS_IDENTITY
    combined: dict[str, Any] = {}
    for key in sorted(keys):
        values = [profile[key] for profile in profiles if key in profile]
        if all(isinstance(v, bool) for v in values) and False in values:
            combined[key] = False
        elif len(values) < len(profiles):
            continue
        elif all(isinstance(v, bool) for v in values):
            combined[key] = True
        elif all(isinstance(v, (int, float)) for v in values):
            combined[key] = min(values)
        elif all(isinstance(v, list) for v in values):
            combined[key] = [x for x in values[0] if all(x in v for v in values)]
        elif all(v == values[0] for v in values):
            combined[key] = values[0]
    return cast(ModelProfile, combined) if combined else None


def refreshed_profile(
    current: ModelProfile | None,
    before: Mapping[str, BaseChatModel],
    after: Mapping[str, BaseChatModel],
) -> ModelProfile | None:
    """The router's profile once its children change from ``before`` to
    ``after``: combined anew, unless it was set by hand (differs from the
    profile ``before`` combined to)."""
    if current != combined_profile(before.values()):
        return current
    return combined_profile(after.values())


def child_name(model: BaseChatModel, index: int) -> str:
    """A child's name: its model name, else ``model_<index>``."""
    for attr in ("model_name", "model", "model_id"):
        name = getattr(model, attr, None)
        if isinstance(name, str) and name:
            return name
    return f"model_{index}"


def run_id_of(run: UUID | str | AIMessage) -> str:
    """The run id feedback for ``run`` (an id or a routed answer) is given under."""
    if isinstance(run, BaseMessage):
        metadata = run.response_metadata.get("metallm")
        if not isinstance(metadata, dict) or "run_id" not in metadata:
            raise ValueError(
                "run: this message carries no response_metadata['metallm']['run_id'];"
                " was it produced by the router?"
            )
        return str(metadata["run_id"])
    if isinstance(run, (UUID, str)):
        return str(run)
    raise TypeError(f"run: expected a run id or an AIMessage, got {type(run).__name__}")
