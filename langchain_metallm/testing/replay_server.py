"""An OpenAI-compatible chat server that answers from recorded LLM responses.

``POST /v1/chat/completions`` (JSON, or SSE when ``"stream": true``) and
``GET /v1/models``. For model M and a last user message holding a known question,
the reply is the response M really gave (for data sets that record only scores,
such as llmrouter9, a text that says it is M's recorded outcome and its score:
``recorded.recorded_outcome``); unknown questions get a deterministic hash-based
fallback. Answer order for each request:

1. the first scripted :class:`Rule` that matches (see :mod:`.scripts`);
2. if ``tool_choice`` forces a function (or is ``"required"``: the first tool), a call
   to it with arguments synthesised from its JSON schema (:mod:`.schema_values`);
3. if ``response_format`` is a ``json_schema``, JSON content synthesised from it;
4. the recorded response, else the fallback.

Every request is recorded (:attr:`ReplayServer.requests`) so tests can check what a
client sent. Run ``python -m langchain_metallm.testing.replay_server --port 8000``
for manual use.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

try:
    import uvicorn
    from fastapi import FastAPI, Request
    from fastapi.responses import JSONResponse, Response, StreamingResponse
except ImportError as missing:  # an optional extra, not a core dependency
    raise ImportError(
        f"the replay server needs FastAPI and uvicorn ({missing}): "
        'pip install "langchain-metallm[testing]"'
    ) from missing

from langchain_metallm.testing.data_paths import default_gsm8k_path
from langchain_metallm.testing.openai_format import (
    MALFORMED_JSON,
    Reply,
    Usage,
    completion_body,
    error_body,
    stream_events,
)
from langchain_metallm.testing.recorded import (
    RecordedAnswers,
    count_tokens,
    fallback_reply,
)
from langchain_metallm.testing.schema_values import example_from_schema
from langchain_metallm.testing.scripts import Rule, RuleTable, ScriptedToolCall

_START_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class RecordedRequest:
    """One chat-completions request the server received."""

    model: str
    messages: list[dict[str, Any]]
    stream: bool
    tools: list[dict[str, Any]] | None
    tool_choice: Any
    body: dict[str, Any]


class ReplayState:
    """Recorded answers, scripted rules and the request log behind one app."""

    def __init__(
        self, answers: RecordedAnswers, extra_models: Sequence[str] = ()
    ) -> None:
        """Serve ``answers``; ``extra_models`` are listed too (they get fallbacks)."""
        self.answers = answers
        self.models = tuple(dict.fromkeys([*answers.models, *extra_models]))
        self.rules = RuleTable()
        self._log: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._ids = itertools.count(1)

    def record(self, request: RecordedRequest) -> str:
        """Log ``request`` and return a fresh completion id."""
        with self._lock:
            self._log.append(request)
            return f"chatcmpl-replay-{next(self._ids)}"

    @property
    def requests(self) -> list[RecordedRequest]:
        """A copy of the request log, oldest first."""
        with self._lock:
            return list(self._log)

    def reset(self) -> None:
        """Forget scripted rules and logged requests."""
        self.rules.clear()
        with self._lock:
            self._log.clear()

    def reply(self, body: Mapping[str, Any], user_text: str) -> Reply:
        """Unscripted answer: forced tool call, JSON schema, recorded or fallback."""
        forced = _forced_tool(body.get("tools"), body.get("tool_choice"))
        if forced is not None:
            name, parameters = forced
            call = ScriptedToolCall(name, example_from_schema(parameters, name))
            return Reply(None, (call,))
        response_format = body.get("response_format")
        if (
            isinstance(response_format, Mapping)
            and response_format.get("type") == "json_schema"
        ):
            schema = response_format.get("json_schema", {}).get("schema", {})
            return Reply(json.dumps(example_from_schema(schema)))
        model = str(body["model"])
        recorded = self.answers.answer(model, user_text)
        return Reply(
            recorded if recorded is not None else fallback_reply(model, user_text)
        )


def create_app(state: ReplayState) -> FastAPI:
    """The FastAPI app serving ``state``."""
    app = FastAPI(title="langchain-metallm replay server")

    @app.get("/v1/models")
    async def list_models() -> dict[str, Any]:
        data = [
            {"id": name, "object": "model", "created": 0, "owned_by": "replay"}
            for name in state.models
        ]
        return {"object": "list", "data": data}

    @app.post("/v1/chat/completions")
    async def chat_completions(request: Request) -> Response:
        try:
            body = await request.json()
        except ValueError:
            return _error(400, "Request body is not valid JSON.")
        problem = _request_problem(body)
        if problem:
            return _error(400, problem)
        model, messages = body["model"], body["messages"]
        stream = bool(body.get("stream"))
        completion_id = state.record(
            RecordedRequest(
                model,
                messages,
                stream,
                body.get("tools"),
                body.get("tool_choice"),
                body,
            )
        )
        user_text = _last_user_text(messages)
        rule = state.rules.take(model, user_text)
        if rule is not None and rule.delay:
            await asyncio.sleep(rule.delay)
        if rule is not None and rule.status is not None:
            return _error(rule.status, rule.error_message)
        if rule is not None and rule.malformed:
            if stream:
                return _sse(iter([f"data: {MALFORMED_JSON}\n\n", "data: [DONE]\n\n"]))
            return Response(MALFORMED_JSON, media_type="application/json")
        if rule is not None and (rule.text is not None or rule.tool_calls):
            reply = Reply(rule.text, tuple(rule.tool_calls))
        else:
            reply = state.reply(body, user_text)
        prompt_tokens = sum(count_tokens(_message_text(m)) for m in messages)
        usage = Usage(prompt_tokens, count_tokens(reply.output_text()))
        created = int(time.time())
        if stream:
            options = body.get("stream_options")
            include_usage = isinstance(options, dict) and bool(
                options.get("include_usage")
            )
            return _sse(
                stream_events(
                    completion_id, created, model, reply, usage, include_usage
                )
            )
        return JSONResponse(
            completion_body(completion_id, created, model, reply, usage)
        )

    return app


class ReplayServer:
    """The replay app on a free 127.0.0.1 port, served from a background thread.

    Use as a context manager or call :meth:`start` / :meth:`stop`; point clients at
    :attr:`base_url`. Script behaviours with :meth:`add_rule`, read :attr:`requests`,
    and :meth:`reset` both between tests.
    """

    def __init__(
        self,
        data: str | Path | RecordedAnswers | None = None,
        *,
        host: str = "127.0.0.1",
        port: int = 0,
        extra_models: Sequence[str] = (),
    ) -> None:
        """Serve ``data`` (a JSONL path of rows with ``responses`` or ``scores``,
        or loaded answers; default: gsm8k2)."""
        if not isinstance(data, RecordedAnswers):
            data = RecordedAnswers.from_jsonl(data or default_gsm8k_path())
        self.state = ReplayState(data, extra_models)
        self._host = host
        self._requested_port = port
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None
        self._socket: socket.socket | None = None

    @property
    def port(self) -> int:
        """The bound port (only while running)."""
        if self._socket is None:
            raise RuntimeError("the replay server is not running; call start() first")
        port: int = self._socket.getsockname()[1]
        return port

    @property
    def base_url(self) -> str:
        """``http://host:port/v1``, the OpenAI client's ``base_url``."""
        return f"http://{self._host}:{self.port}/v1"

    @property
    def models(self) -> tuple[str, ...]:
        """Model names listed by ``GET /v1/models``."""
        return self.state.models

    @property
    def requests(self) -> list[RecordedRequest]:
        """Requests received so far, oldest first."""
        return self.state.requests

    def add_rule(self, rule: Rule) -> Rule:
        """Script ``rule`` for the next matching request(s); returns it."""
        self.state.rules.add(rule)
        return rule

    def reset(self) -> None:
        """Forget scripted rules and the request log."""
        self.state.reset()

    def start(self) -> ReplayServer:
        """Bind the port and serve in a daemon thread; returns once accepting."""
        if self._thread is not None:
            raise RuntimeError("the replay server is already running")
        # proto=IPPROTO_TCP makes asyncio set TCP_NODELAY on accepted connections;
        # without it each keep-alive response waits ~40 ms for a delayed ACK.
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((self._host, self._requested_port))
        except OSError:
            sock.close()
            raise
        config = uvicorn.Config(
            create_app(self.state),
            log_config=None,
            log_level="warning",
            access_log=False,
            lifespan="off",
            timeout_graceful_shutdown=1,
        )
        server = uvicorn.Server(config)
        thread = threading.Thread(
            target=server.run,
            kwargs={"sockets": [sock]},
            name=f"replay-server-{sock.getsockname()[1]}",
            daemon=True,
        )
        self._server, self._thread, self._socket = server, thread, sock
        thread.start()
        deadline = time.monotonic() + _START_TIMEOUT_S
        while not server.started:
            if not thread.is_alive() or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("the replay server failed to start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        """Shut the server down, join its thread and release the port."""
        if self._server is not None:
            self._server.should_exit = True
        if self._thread is not None:
            self._thread.join(timeout=_START_TIMEOUT_S)
            if self._thread.is_alive():
                raise RuntimeError("the replay server thread did not stop")
        if self._socket is not None:
            self._socket.close()
        self._server = self._thread = self._socket = None

    def __enter__(self) -> ReplayServer:
        """Start serving."""
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        """Stop serving."""
        self.stop()


def _forced_tool(tools: Any, tool_choice: Any) -> tuple[str, Mapping[str, Any]] | None:
    """The (name, parameters schema) of the function ``tool_choice`` forces, if any."""
    functions = {
        tool["function"]["name"]: tool["function"].get("parameters") or {}
        for tool in tools or []
        if isinstance(tool, Mapping) and isinstance(tool.get("function"), Mapping)
    }
    if not functions:
        return None
    if tool_choice == "required":
        name = next(iter(functions))
    elif isinstance(tool_choice, Mapping) and isinstance(
        tool_choice.get("function"), Mapping
    ):
        name = tool_choice["function"].get("name")
    else:
        return None
    return (name, functions[name]) if name in functions else None


def _request_problem(body: Any) -> str | None:
    """Why ``body`` is not a usable chat-completions request, or None."""
    if not isinstance(body, dict):
        return "Request body must be a JSON object."
    if not isinstance(body.get("model"), str) or not body["model"]:
        return "'model' must be a non-empty string."
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return "'messages' must be a non-empty array."
    if not all(
        isinstance(m, dict) and isinstance(m.get("role"), str) for m in messages
    ):
        return "Each message must be an object with a string 'role'."
    if body.get("tools") is not None and not isinstance(body["tools"], list):
        return "'tools' must be an array."
    return None


def _message_text(message: Mapping[str, Any]) -> str:
    """A message's text: string content, text parts, and any tool-call arguments."""
    content = message.get("content")
    if isinstance(content, list):
        content = " ".join(
            str(part.get("text", "")) for part in content if isinstance(part, Mapping)
        )
    calls = message.get("tool_calls") or []
    arguments = [
        str(call.get("function", {}).get("arguments", ""))
        for call in calls
        if isinstance(call, Mapping)
    ]
    return " ".join([str(content or ""), *arguments])


def _last_user_text(messages: Sequence[Mapping[str, Any]]) -> str:
    """Text of the last ``user`` message ("" if there is none)."""
    for message in reversed(messages):
        if message.get("role") == "user":
            return _message_text(message)
    return ""


def _error(status: int, message: str | None) -> JSONResponse:
    return JSONResponse(error_body(status, message), status_code=status)


def _sse(events: Iterator[str]) -> StreamingResponse:
    return StreamingResponse(events, media_type="text/event-stream")


def main(argv: Sequence[str] | None = None) -> None:
    """Command line: serve recorded answers until interrupted."""
    parser = argparse.ArgumentParser(
        description=__doc__.splitlines()[0] if __doc__ else None
    )
    parser.add_argument(
        "--data",
        type=Path,
        default=None,
        help="JSONL rows with responses or scores (default: gsm8k2)",
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument(
        "--extra-model", action="append", default=[], help="also list this model name"
    )
    args = parser.parse_args(argv)
    data = args.data or default_gsm8k_path()
    state = ReplayState(RecordedAnswers.from_jsonl(data), args.extra_model)
    models = ", ".join(state.models)
    print(f"Replaying {len(state.answers)} questions from {data} for {models}")
    print(f"OpenAI base_url: http://{args.host}:{args.port}/v1")
    uvicorn.run(create_app(state), host=args.host, port=args.port, log_level="info")


if __name__ == "__main__":
    main()
