"""One routed call's inputs, and the child as it is called for it.

``RoutedCall`` gathers what the core decides on (the query text, a plan, a tool
loop's child, a per-call cost weight) and what the chosen child is called with
(messages, stop, the run link, the rest of the call's arguments).
``bound_child`` puts the router's bound tools or structured output on the child.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import BaseMessage
from langchain_core.runnables import Runnable

from langchain_metallm import stream_run
from langchain_metallm.planned_batch import PlannedChoice
from langchain_metallm.structured_output import STRUCTURED_OUTPUT, StructuredOutput

TOOL_KEYS = ("tools", "tool_choice", "tool_binding")
"""Call arguments that bind tools on the child rather than pass through."""


@dataclass
class RoutedCall:
    """One routed call: what it is routed on, and what the child is called with."""

    query: str
    """The text the call is routed by (``query_from_messages``)."""
    messages: list[BaseMessage]
    """The messages the child answers."""
    stop: list[str] | None
    """Stop sequences for the child."""
    link: stream_run.RunLink
    """The router's run id and the config that nests the child's run under it."""
    plan: PlannedChoice | None
    """The child a planned batch chose, with its predicted score."""
    sticky: str | None
    """The child that started the tool loop this call continues."""
    cost_weight: float | None
    """This call's own cost weight (``invoke(..., cost_weight=p)``)."""
    kwargs: dict[str, Any]
    """The call's other arguments."""


def bound_child(
    name: str, model: BaseChatModel, call: RoutedCall, max_tokens: int | None
) -> tuple[Runnable[LanguageModelInput, BaseMessage], dict[str, Any]]:
    """Child ``name`` (``model``) with the call's bound tools or structured
    output on it, and the options to call it with. Its run is traced under its
    own model name, or ``name`` if it declares none, never as the router."""
    config = {**call.link.child_config, "metadata": {"ls_model_name": name}}
    options: dict[str, Any] = {"config": config, "stop": call.stop}
    request = call.kwargs.get(STRUCTURED_OUTPUT)
    if isinstance(request, StructuredOutput):
        return request.on(model), options
    options.update((k, v) for k, v in call.kwargs.items() if k not in TOOL_KEYS)
    if max_tokens is not None:
        options.setdefault("max_tokens", max_tokens)
    binding = call.kwargs.get("tool_binding")
    if binding is not None:
        tools = binding["tools"]
        extra = {k: v for k, v in binding.items() if k != "tools"}
        return model.bind_tools(tools, **extra), options
    if "tools" in call.kwargs:
        tools, choice = call.kwargs["tools"], call.kwargs.get("tool_choice")
        return model.bind_tools(tools, tool_choice=choice), options
    return model, options
