"""Running a routed call: the LangChain side of one call, around the core.

``RoutedCalls`` is the chat model's four hooks (``_generate``, ``_agenerate``,
``_stream``, ``_astream``), each: messages -> ``RoutedCall`` (query text, plan,
tool loop, per-call cost weight) -> ``core.context`` -> ``core.decide`` ->
children called in ``Decision.order`` (``fallback``; ``cooldown`` watches each
attempt) -> ``core.register`` -> the answer with ``metadata``.
``bound_child`` puts the router's bound tools or structured output on a child.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable

from langchain_metallm import stream_run
from langchain_metallm.child_runs import ChunkRelay, routed_result
from langchain_metallm.cooldown import Cooldowns
from langchain_metallm.core.decision import Decision
from langchain_metallm.core.router import RouterCore
from langchain_metallm.core.vectors import FloatArray, text_key
from langchain_metallm.fallback import (
    Attempt,
    acall_in_order,
    astream_in_order,
    call_in_order,
    stream_in_order,
)
from langchain_metallm.planned_batch import PLAN_ARGUMENT, PlannedChoice
from langchain_metallm.structured_output import STRUCTURED_OUTPUT, StructuredOutput
from langchain_metallm.tool_loops import loop_model

T = TypeVar("T")

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


@dataclass(frozen=True)
class CallOptions:
    """What a call takes from the handle it was made on (its own fields)."""

    models: Mapping[str, BaseChatModel]
    """The children by name."""
    query: Callable[[Sequence[BaseMessage]], str]
    """The text a call is routed by."""
    stop: list[str] | None
    """Default stop sequences."""
    max_tokens: int | None
    """Default ``max_tokens`` for the child."""
    fallback: bool
    """Try the next child in the decision's order if one raises."""
    sticky_tool_loops: bool
    """Send a tool loop's next step to the child that started it."""
    off_loop: bool
    """Run the core's store I/O in a worker thread in async calls."""


class BackgroundCalls(Protocol):
    """Calls made after the answer, off its path (``explorer.Explorer``)."""

    def start(
        self,
        decision: Decision,
        call: RoutedCall,
        options: CallOptions,
        context: FloatArray | None,
    ) -> None: ...


class RoutedCalls:
    """Runs a router's calls: the core decides, the children are called in the
    decision's order (``fallback``, ``cooldown``), the core registers the
    answer, and the answer carries the decision as metadata."""

    def __init__(
        self, core: RouterCore, cooldowns: Cooldowns, explorer: BackgroundCalls
    ) -> None:
        self.core = core
        self.cooldowns = cooldowns
        self.explorer = explorer

    def generate(
        self,
        options: CallOptions,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        """``BaseChatModel._generate`` of the router."""
        call = self._call(options, messages, stop, run_manager, kwargs)
        context = self.core.context(call.query)
        decision = self._decide(call, context)
        answered, message, attempts = call_in_order(
            decision.order,
            lambda name: _child(options, name, call, "invoke")(messages),
            fallback=options.fallback,
            on_attempt=self.cooldowns.observe,
        )
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        done = self.core.register(decision, answered, context, usage)
        self.explorer.start(done, call, options, context)
        return routed_result(message, metadata(done, call, attempts, usage))

    async def agenerate(
        self,
        options: CallOptions,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> ChatResult:
        """``BaseChatModel._agenerate`` of the router."""
        call = self._call(options, messages, stop, run_manager, kwargs)
        context = await self.core.acontext(call.query)
        decision = await _off_loop(options, self._decide, call, context)
        answered, message, attempts = await acall_in_order(
            decision.order,
            lambda name: _child(options, name, call, "ainvoke")(messages),
            fallback=options.fallback,
            on_attempt=self.cooldowns.observe,
        )
        usage = message.usage_metadata if isinstance(message, AIMessage) else None
        register = self.core.register
        done = await _off_loop(options, register, decision, answered, context, usage)
        self.explorer.start(done, call, options, context)
        return routed_result(message, metadata(done, call, attempts, usage))

    def stream(
        self,
        options: CallOptions,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> Iterator[ChatGenerationChunk]:
        """``BaseChatModel._stream`` of the router."""
        call = self._call(options, messages, stop, run_manager, kwargs)
        context = self.core.context(call.query)
        decision = self._decide(call, context)
        answered, stream, attempts = stream_in_order(
            decision.order,
            lambda name: _child(options, name, call, "stream")(messages),
            fallback=options.fallback,
            on_attempt=self.cooldowns.observe,
        )
        relay = ChunkRelay()
        for chunk in stream:
            if (previous := relay.push(chunk)) is not None:
                yield previous
        done = self.core.register(decision, answered, context, relay.usage)
        self.explorer.start(done, call, options, context)
        yield relay.final(metadata(done, call, attempts, relay.usage))

    async def astream(
        self,
        options: CallOptions,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> AsyncIterator[ChatGenerationChunk]:
        """``BaseChatModel._astream`` of the router."""
        call = self._call(options, messages, stop, run_manager, kwargs)
        context = await self.core.acontext(call.query)
        decision = await _off_loop(options, self._decide, call, context)
        answered, stream, attempts = await astream_in_order(
            decision.order,
            lambda name: _child(options, name, call, "astream")(messages),
            fallback=options.fallback,
            on_attempt=self.cooldowns.observe,
        )
        relay = ChunkRelay()
        async for chunk in stream:
            if (previous := relay.push(chunk)) is not None:
                yield previous
        register, usage = self.core.register, relay.usage
        done = await _off_loop(options, register, decision, answered, context, usage)
        self.explorer.start(done, call, options, context)
        yield relay.final(metadata(done, call, attempts, usage))

    def _call(
        self,
        options: CallOptions,
        messages: list[BaseMessage],
        stop: list[str] | None,
        run_manager: CallbackManagerForLLMRun | AsyncCallbackManagerForLLMRun | None,
        kwargs: dict[str, Any],
    ) -> RoutedCall:
        """One call's routing inputs, with the router's own arguments taken out
        of ``kwargs``; a run id already routed is refused."""
        link = stream_run.take(run_manager)
        self.core.pending.check_unused(link.run_id)
        plan = kwargs.pop(PLAN_ARGUMENT, None)
        sticky = plan is None and options.sticky_tool_loops
        return RoutedCall(
            query=query_text(options.query, messages),
            messages=messages,
            stop=stop or options.stop,
            link=link,
            plan=plan,
            sticky=loop_model(messages, list(options.models)) if sticky else None,
            cost_weight=kwargs.pop("cost_weight", None),
            kwargs=kwargs,
        )

    def _decide(self, call: RoutedCall, context: FloatArray | None) -> Decision:
        return self.core.decide(
            call.link.run_id,
            context,
            cost_weight=call.cost_weight,
            planned=None if call.plan is None else call.plan["child"],
            sticky=call.sticky,
            cooling=self.cooldowns.cooling(),
            query_hash=text_key(call.query),
        )


def query_text(query: Callable[[Sequence[BaseMessage]], str], messages: Any) -> str:
    """The routing text of ``messages``, refused unless ``query`` gives a str."""
    text = query(messages)
    if not isinstance(text, str):
        raise TypeError(
            f"query_from_messages: must return str, got {type(text).__name__}"
        )
    return text


def metadata(
    decision: Decision,
    call: RoutedCall,
    attempts: list[Attempt],
    usage: UsageMetadata | None,
) -> dict[str, Any]:
    """The answer's ``metallm`` metadata: the decision and how it was served."""
    model = str(decision.answered)
    data: dict[str, Any] = {
        "model": model,
        "chosen": decision.chosen,
        "run_id": decision.run_id,
        "expected_reward": decision.predicted.get(model, math.nan)
        - decision.penalty[model],
        "ucb": decision.value.get(model, math.nan),
        "cost": decision.cost,
        "task": decision.task,
        "embedding_failed": decision.outage,
        "attempts": attempts,
        "usage": usage,
        "cached": False,
        "sticky": decision.sticky,
        "fallback": decision.fallback,
        "cooling_down": list(decision.cooldown),
        "shadow": decision.shadow,
        "explored": list(decision.explored),
    }
    if decision.planned and call.plan is not None:
        data.update(planned=True, predicted_score=call.plan["predicted_score"])
    return data


def _child(
    options: CallOptions, name: str, call: RoutedCall, method: str
) -> Callable[[list[BaseMessage]], Any]:
    """Child ``name``'s ``method`` (invoke, ainvoke, stream, astream), bound for
    ``call``."""
    child, child_options = bound_child(
        name, options.models[name], call, options.max_tokens
    )
    bound = getattr(child, method)
    return lambda messages: bound(messages, **child_options)


async def _off_loop(options: CallOptions, function: Callable[..., T], *args: Any) -> T:
    """``function(*args)`` in a worker thread when it may wait on a shared
    store, so the event loop never blocks on its I/O."""
    if not options.off_loop:
        return function(*args)
    return await asyncio.to_thread(function, *args)
