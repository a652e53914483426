"""How the chosen child's run sits under the router's run, so nothing counts twice.

The child's chat-model run stays nested under the router's run for every tracer
and callback handler (LangSmith, usage and cost callbacks, the feedback handler),
with two exceptions that keep LangChain's totals right:

* Usage: the child's run carries the token usage (its provider's callbacks count
  it there, under its real model name); the router's answer has
  ``usage_metadata=None`` and repeats the child's usage in
  ``response_metadata["metallm"]["usage"]`` for reading, not for counting.
* Streaming: stream consumers (``astream_events``, ``astream_log``, LangGraph's
  ``stream_mode="messages"``) are not handed the child's run; they see each token
  once, from the router's run, whose last chunk carries the routing metadata.
"""

from __future__ import annotations

from typing import Any, TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, AIMessageChunk, BaseMessage
from langchain_core.messages.ai import UsageMetadata, add_usage
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult

# Private in langchain-core, but the documented way LangGraph recognises stream
# consumers too: the handlers behind astream_events/astream_log/messages mode.
from langchain_core.tracers._streaming import (
    _StreamingCallbackHandler,
    _V2StreamingCallbackHandler,
)

from langchain_metallm.structured_output import as_chunk

M = TypeVar("M", bound=BaseMessage)


def is_stream_consumer(handler: BaseCallbackHandler) -> bool:
    """Whether ``handler`` turns runs' tokens into a stream for a consumer."""
    return isinstance(handler, (_StreamingCallbackHandler, _V2StreamingCallbackHandler))


def without_stream_consumers(
    handlers: list[BaseCallbackHandler],
) -> list[BaseCallbackHandler]:
    """``handlers`` minus the stream consumers (they get the router's tokens)."""
    return [h for h in handlers if not is_stream_consumer(h)]


def without_usage(message: M) -> tuple[M, UsageMetadata | None]:
    """``message`` without ``usage_metadata`` (the child's run carries it), and
    the usage it had."""
    usage = message.usage_metadata if isinstance(message, AIMessage) else None
    if usage is None:
        return message, None
    return message.model_copy(update={"usage_metadata": None}), usage


def routed_result(message: BaseMessage, metadata: dict[str, Any]) -> ChatResult:
    """The router's answer: the child's ``message`` without its usage (the child's
    run carries it), with the routing ``metadata`` under ``metallm``."""
    update: dict[str, Any] = {
        "response_metadata": {**message.response_metadata, "metallm": metadata}
    }
    if isinstance(message, AIMessage) and message.usage_metadata is not None:
        update["usage_metadata"] = None
    routed = message.model_copy(update=update)
    return ChatResult(generations=[ChatGeneration(message=routed)])


class ChunkRelay:
    """Passes a child's chunks on one behind, without usage (the child's run
    carries it), so that the last one can carry the routing metadata."""

    def __init__(self) -> None:
        self.last: BaseMessage | None = None
        self.usage: UsageMetadata | None = None
        """The usage the chunks reported, summed."""

    def push(self, chunk: BaseMessage) -> ChatGenerationChunk | None:
        """Take ``chunk``; return the one before it, if any, to pass on."""
        previous, (self.last, usage) = self.last, without_usage(chunk)
        if usage:
            self.usage = add_usage(self.usage, usage)
        if previous is None:
            return None
        return ChatGenerationChunk(message=as_chunk(previous))

    def final(self, metadata: dict[str, Any]) -> ChatGenerationChunk:
        """The last chunk, carrying the routing ``metadata``, marked last."""
        chunk = AIMessageChunk(content="") if self.last is None else as_chunk(self.last)
        final = chunk.model_copy(
            update={
                "response_metadata": {**chunk.response_metadata, "metallm": metadata},
                "chunk_position": "last",
            }
        )
        return ChatGenerationChunk(message=final)
