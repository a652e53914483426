"""OpenAI chat-completions wire format: full responses, SSE chunks and error bodies."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from langchain_metallm.testing.scripts import ScriptedToolCall

_WORDS_PER_CHUNK = 3
_ARGUMENT_CHARS_PER_CHUNK = 16
_ERROR_KINDS = {
    400: ("invalid_request_error", None),
    401: ("invalid_request_error", "invalid_api_key"),
    404: ("invalid_request_error", "model_not_found"),
    429: ("requests", "rate_limit_exceeded"),
    500: ("server_error", None),
    503: ("server_error", "service_unavailable"),
}
MALFORMED_JSON = (
    '{"id": "chatcmpl-malformed", "object": "chat.completion", "choices": [{'
)


@dataclass(frozen=True)
class Reply:
    """What the assistant says: text, or tool calls (then text is None)."""

    text: str | None
    tool_calls: Sequence[ScriptedToolCall] = ()

    @property
    def finish_reason(self) -> str:
        """``tool_calls`` when calling tools, else ``stop``."""
        return "tool_calls" if self.tool_calls else "stop"

    def output_text(self) -> str:
        """Text counted as completion: the content, or call names and arguments."""
        if not self.tool_calls:
            return self.text or ""
        return " ".join(f"{c.name} {_arguments(c)}" for c in self.tool_calls)


@dataclass(frozen=True)
class Usage:
    """Token counts of one exchange."""

    prompt_tokens: int
    completion_tokens: int

    def as_dict(self) -> dict[str, int]:
        """The OpenAI ``usage`` object."""
        return {
            "prompt_tokens": self.prompt_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
        }


def completion_body(
    completion_id: str, created: int, model: str, reply: Reply, usage: Usage
) -> dict[str, Any]:
    """A non-streaming ``chat.completion`` response."""
    message: dict[str, Any] = {
        "role": "assistant",
        "content": reply.text,
        "refusal": None,
    }
    if reply.tool_calls:
        message["tool_calls"] = [
            {
                "id": _call_id(completion_id, index, call),
                "type": "function",
                "function": {"name": call.name, "arguments": _arguments(call)},
            }
            for index, call in enumerate(reply.tool_calls)
        ]
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": message,
                "logprobs": None,
                "finish_reason": reply.finish_reason,
            }
        ],
        "usage": usage.as_dict(),
        "system_fingerprint": None,
    }


def stream_events(
    completion_id: str,
    created: int,
    model: str,
    reply: Reply,
    usage: Usage,
    include_usage: bool,
) -> Iterator[str]:
    """Server-sent events of a streamed response, ending with ``data: [DONE]``."""

    def chunk(delta: dict[str, Any], finish_reason: str | None = None) -> str:
        body: dict[str, Any] = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": created,
            "model": model,
            "choices": [
                {
                    "index": 0,
                    "delta": delta,
                    "logprobs": None,
                    "finish_reason": finish_reason,
                }
            ],
        }
        if include_usage:
            body["usage"] = None
        return _event(body)

    if reply.tool_calls:
        yield chunk({"role": "assistant", "content": None})
        for index, call in enumerate(reply.tool_calls):
            yield chunk(
                {
                    "tool_calls": [
                        {
                            "index": index,
                            "id": _call_id(completion_id, index, call),
                            "type": "function",
                            "function": {"name": call.name, "arguments": ""},
                        }
                    ]
                }
            )
            arguments = _arguments(call)
            for start in range(0, len(arguments), _ARGUMENT_CHARS_PER_CHUNK):
                piece = arguments[start : start + _ARGUMENT_CHARS_PER_CHUNK]
                yield chunk(
                    {"tool_calls": [{"index": index, "function": {"arguments": piece}}]}
                )
    else:
        yield chunk({"role": "assistant", "content": ""})
        for piece in text_pieces(reply.text or ""):
            yield chunk({"content": piece})
    yield chunk({}, reply.finish_reason)
    if include_usage:
        yield _event(
            {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": [],
                "usage": usage.as_dict(),
            }
        )
    yield "data: [DONE]\n\n"


def text_pieces(text: str) -> list[str]:
    """Split ``text`` into chunks of a few words that join back to ``text``."""
    words = re.split(r"(?<=\s)(?=\S)", text)
    return [
        "".join(words[start : start + _WORDS_PER_CHUNK])
        for start in range(0, len(words), _WORDS_PER_CHUNK)
        if any(words[start : start + _WORDS_PER_CHUNK])
    ]


def error_body(status: int, message: str | None = None) -> dict[str, Any]:
    """An OpenAI-style ``{"error": {...}}`` body for HTTP ``status``."""
    kind, code = _ERROR_KINDS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None)
    )
    text = message or f"Scripted error {status} from the replay server."
    return {"error": {"message": text, "type": kind, "param": None, "code": code}}


def _event(body: dict[str, Any]) -> str:
    return f"data: {json.dumps(body)}\n\n"


def _arguments(call: ScriptedToolCall) -> str:
    return json.dumps(dict(call.arguments))


def _call_id(completion_id: str, index: int, call: ScriptedToolCall) -> str:
    seed = f"{completion_id}/{index}/{call.name}/{_arguments(call)}"
    return "call_" + hashlib.sha256(seed.encode()).hexdigest()[:24]
