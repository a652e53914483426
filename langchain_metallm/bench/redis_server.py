"""A throwaway ``redis-server`` for benchmarks: a free 127.0.0.1 port, nothing
saved to disk, stopped when the block ends."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager

STARTUP = 10.0
"""Seconds the server has to answer a ping."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


@contextmanager
def redis_server(directory: str) -> Iterator[str | None]:
    """The URL of a ``redis-server`` running in ``directory`` for the block
    (None if there is no binary); it is terminated afterwards."""
    binary = shutil.which("redis-server")
    if binary is None:
        yield None
        return
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError

    port = free_port()
    options = {"port": str(port), "bind": "127.0.0.1", "save": "", "appendonly": "no"}
    command = [binary, "--dir", directory]
    for name, value in options.items():
        command += [f"--{name}", value]
    server = subprocess.Popen(command, stdout=subprocess.DEVNULL)
    try:
        client = Redis(port=port)
        deadline = time.monotonic() + STARTUP
        while True:
            try:
                client.ping()
                break
            except RedisConnectionError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)
