"""The text a call is routed on: what the embedder reads of a conversation.

Default (``recent_turns_text``): the last three human turns, newest first, one per
line. A follow-up such as "and in French?" is routed with the turns it follows;
newest first because embedders read a bounded prefix (all-MiniLM-L6-v2 reads 256
word pieces), so the current turn is always read. Non-text content is named
(``[image]``, ``[audio]``, ``[file]``), so an image-only question is not routed as
an empty string. A conversation without human turns (an agent step fed only tool
results) is routed on its system prompt and the tools it called, not on a tool's
raw output such as ``"2"``. ``last_human_text`` is the previous default;
``query_from_messages`` takes either, or any function of the messages.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_core.messages import AIMessage, BaseMessage

HUMAN_TURNS = 3
"""Human turns the default routing text includes."""


def last_human_text(messages: Sequence[BaseMessage]) -> str:
    """The last human message, else the last message."""
    _require(messages)
    for message in reversed(messages):
        if message.type == "human":
            return message.text
    return messages[-1].text


def recent_turns_text(messages: Sequence[BaseMessage]) -> str:
    """The last ``HUMAN_TURNS`` human turns, newest first (module docstring)."""
    _require(messages)
    turns = [m for m in messages if m.type == "human"][-HUMAN_TURNS:]
    if turns:
        return "\n".join(content_text(m) for m in reversed(turns))
    parts = [content_text(m) for m in messages if m.type == "system"]
    called = [
        call["name"]
        for m in messages
        if isinstance(m, AIMessage)
        for call in m.tool_calls
    ]
    if called:
        parts.append("tools: " + ", ".join(dict.fromkeys(called)))
    return "\n".join(p for p in parts if p) or content_text(messages[-1])


def content_text(message: BaseMessage) -> str:
    """``message``'s text, with each non-text block named (``[image]``, ...)."""
    if isinstance(message.content, str):
        return message.content
    pieces = []
    for block in message.content:
        if isinstance(block, str):
            pieces.append(block)
        elif block.get("type") == "text":
            pieces.append(str(block.get("text", "")))
        else:
            kind = str(block.get("type", "content")).replace("_url", "")
            pieces.append(f"[{kind}]")
    return " ".join(p for p in pieces if p)


def _require(messages: Sequence[BaseMessage]) -> None:
    if not messages:
        raise ValueError("messages: at least one message is required to route")
