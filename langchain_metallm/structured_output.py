"""Structured output through the router: route first, then the chosen child's own
``with_structured_output`` does the work.

So each provider's native options reach the wire (``method="json_schema"`` as
``response_format``, ``"json_mode"``, ``strict=True`` on the tool or schema),
instead of LangChain's generic tool-calling fallback. The router's run answers
with the child's raw message (routing metadata, feedback and the handler work as
for any call), carrying the parsed value in ``additional_kwargs["parsed"]`` (as
``ChatOpenAI`` does) and a parse failure in ``additional_kwargs["parsing_error"]``;
the runnable returned by ``router.with_structured_output`` unpacks it. The
router's ``stop`` and ``max_tokens`` are not passed on these calls: the child's
own settings apply. A streamed call yields the whole parsed value at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Any

from langchain_core.exceptions import OutputParserException
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.runnables import Runnable, RunnableConfig, RunnableLambda

STRUCTURED_OUTPUT = "structured_output"
"""The router's call keyword that carries a ``StructuredOutput`` request."""


@dataclass(frozen=True)
class StructuredOutput:
    """A ``with_structured_output`` request: the schema and the child's options
    (``method``, ``strict``, ...)."""

    schema: Any
    options: dict[str, Any] = field(default_factory=dict)

    def on(self, child: BaseChatModel) -> Runnable[LanguageModelInput, BaseMessage]:
        """``child``'s own structured-output runnable, answering one message that
        carries the parsed value (invoked whole, also when streamed)."""
        structured = child.with_structured_output(
            self.schema, include_raw=True, **self.options
        )

        def call(
            messages: LanguageModelInput, config: RunnableConfig, **_: Any
        ) -> BaseMessage:
            return carrying_parsed(structured.invoke(messages, config))

        async def acall(
            messages: LanguageModelInput, config: RunnableConfig, **_: Any
        ) -> BaseMessage:
            return carrying_parsed(await structured.ainvoke(messages, config))

        return RunnableLambda(call, afunc=acall, name="structured_output")

    def ls_format(self) -> dict[str, Any]:
        """What the router's own run reports as ``ls_structured_output_format``."""
        method = self.options.get("method", "function_calling")
        return {"kwargs": {"method": method}, "schema": self.schema}


def carrying_parsed(result: Any) -> AIMessage:
    """The raw message of an ``include_raw`` result, carrying the parsed value."""
    raw = result["raw"]
    if not isinstance(raw, AIMessage):
        raise TypeError(f"structured output: child returned {type(raw).__name__}")
    extra: dict[str, Any] = {"parsed": result["parsed"]}
    if result.get("parsing_error") is not None:
        extra["parsing_error"] = str(result["parsing_error"])
    return raw.model_copy(
        update={"additional_kwargs": {**raw.additional_kwargs, **extra}}
    )


def as_chunk(message: BaseMessage) -> AIMessageChunk:
    """``message`` as a stream chunk (structured answers arrive whole)."""
    if isinstance(message, AIMessageChunk):
        return message
    tool_calls = message.tool_calls if isinstance(message, AIMessage) else []
    return AIMessageChunk(
        content=message.content,
        additional_kwargs=message.additional_kwargs,  # by reference: keeps parsed
        response_metadata=message.response_metadata,
        tool_calls=tool_calls,
        id=message.id,
    )


def unpacked(message: BaseMessage, *, include_raw: bool) -> Any:
    """The parsed value of a routed structured answer (or ``raw``/``parsed``/
    ``parsing_error`` with ``include_raw``); a parse failure raises without it."""
    parsed = message.additional_kwargs.get("parsed")
    problem = message.additional_kwargs.get("parsing_error")
    error = None if problem is None else OutputParserException(problem)
    if include_raw:
        return {"raw": message, "parsed": parsed, "parsing_error": error}
    if error is not None:
        raise error
    return parsed


def unpacker(include_raw: bool) -> Runnable[BaseMessage, Any]:
    """The step after the router's run that returns what the caller asked for."""
    return RunnableLambda(partial(unpacked, include_raw=include_raw), name="unpack")
