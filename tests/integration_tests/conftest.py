"""Shared fixtures for integration tests: one replay server per session.

Async tests that call the session server must run on the session event loop
(``@pytest.mark.asyncio(loop_scope="session")``): ``langchain_openai`` caches its async
HTTP client per ``base_url``, so with one long-lived server, connections pooled on a
finished per-test loop fail later with "Event loop is closed".
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from langchain_metallm.testing import ReplayServer


@pytest.fixture(scope="session")
def replay_server_session() -> Iterator[ReplayServer]:
    """The OpenAI-compatible replay server over gsm8k2, started once per session."""
    with ReplayServer() as server:
        yield server


@pytest.fixture
def replay_server(replay_server_session: ReplayServer) -> ReplayServer:
    """The session's replay server with no scripted rules and an empty request log."""
    replay_server_session.reset()
    return replay_server_session
