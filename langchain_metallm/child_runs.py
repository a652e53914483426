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

from typing import TypeVar

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.messages.ai import UsageMetadata

# Private in langchain-core, but the documented way LangGraph recognises stream
# consumers too: the handlers behind astream_events/astream_log/messages mode.
from langchain_core.tracers._streaming import (
    _StreamingCallbackHandler,
    _V2StreamingCallbackHandler,
)

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
