"""Test utilities: an OpenAI-compatible server replaying recorded LLM answers.

The server needs FastAPI and uvicorn from the ``testing`` extra
(``pip install "langchain-metallm[testing]"``); it is imported on first use, so the
data helpers work without them and ``python -m ...testing.replay_server`` runs
cleanly.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from langchain_metallm.testing.data_paths import (
    default_gsm8k_models_path,
    default_gsm8k_path,
    default_llmrouter9_models_path,
    default_llmrouter9_path,
)
from langchain_metallm.testing.recorded import (
    RecordedAnswers,
    fallback_reply,
    recorded_outcome,
)
from langchain_metallm.testing.scripts import Rule, ScriptedToolCall

if TYPE_CHECKING:
    from langchain_metallm.testing.replay_server import (
        RecordedRequest,
        ReplayServer,
        create_app,
    )

_SERVER_NAMES = frozenset({"RecordedRequest", "ReplayServer", "create_app"})


def __getattr__(name: str) -> Any:
    """Import the server classes lazily, with a clear error if FastAPI is missing."""
    if name not in _SERVER_NAMES:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from langchain_metallm.testing import replay_server  # names the extra if missing

    return getattr(replay_server, name)


__all__ = [
    "RecordedAnswers",
    "RecordedRequest",
    "ReplayServer",
    "Rule",
    "ScriptedToolCall",
    "create_app",
    "default_gsm8k_models_path",
    "default_gsm8k_path",
    "default_llmrouter9_models_path",
    "default_llmrouter9_path",
    "fallback_reply",
    "recorded_outcome",
]
