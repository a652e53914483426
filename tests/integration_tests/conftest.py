"""Shared fixtures for integration tests: one replay server per session, and a
real ``redis-server`` per module that asks for one.

Async tests that call the session server must run on the session event loop
(``@pytest.mark.asyncio(loop_scope="session")``): ``langchain_openai`` caches its async
HTTP client per ``base_url``, so with one long-lived server, connections pooled on a
finished per-test loop fail later with "Event loop is closed".
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import time
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


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@pytest.fixture(scope="module")
def redis_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A real ``redis-server`` on a free 127.0.0.1 port, for this module."""
    binary = shutil.which("redis-server")
    if binary is None:
        reason = "no redis-server binary (install it: apt-get install redis-server)"
        if os.environ.get("CI"):
            pytest.fail(f"{reason}; CI must run the Redis tests")
        pytest.skip(reason)
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    port = _free_port()
    server = subprocess.Popen(
        [
            binary,
            "--port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path_factory.mktemp("redis")),
        ],
        stdout=subprocess.DEVNULL,
    )
    client = Redis(port=port)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            break
        except RedisConnectionError:
            if time.monotonic() > deadline or server.poll() is not None:
                server.kill()
                raise
            time.sleep(0.05)
    yield f"redis://127.0.0.1:{port}/0"
    server.terminate()
    server.wait(timeout=10)


@pytest.fixture
def redis_url(redis_server: str) -> str:
    """The module's Redis server, emptied for this test."""
    from redis import Redis

    Redis.from_url(redis_server).flushdb()
    return redis_server
