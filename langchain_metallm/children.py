"""Naming children: ``models`` and ``costs`` given as lists get names, and a
routed answer or run id names the run whose feedback it is."""

from __future__ import annotations

from typing import Any
from uuid import UUID

from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage


def named_children(values: dict[str, Any]) -> dict[str, Any]:
    """``values`` with ``models`` and ``costs`` lists turned into dicts keyed by
    each child's model name (``model_<i>`` when it has none)."""
    models = values.get("models")
    if isinstance(models, (list, tuple)):
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
