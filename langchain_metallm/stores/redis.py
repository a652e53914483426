"""``RedisStore``: statistics on a Redis server, shared by processes on many machines.

Each arm is one hash (``a``, ``b``, ``count``, ``version``) under a namespaced key.
A write is an optimistic transaction: ``WATCH`` the arms, read them, compute the
new statistics, ``MULTI``/``EXEC``; if another worker wrote in between, ``EXEC``
fails and the write is retried, so no increment is ever lost. Needs the ``redis``
extra: ``pip install "langchain-metallm[redis]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_metallm.stores.base import (
    ArmState,
    Change,
    IntArray,
    Layout,
    PolicyStore,
    Statistics,
    decode_arm,
    encode,
)

if TYPE_CHECKING:
    from redis import Redis

_FIELDS = ("a", "b", "count", "version")


class RedisStore(PolicyStore):
    """A policy store on the Redis server at ``url`` (or an existing ``client``).

    Keys start with ``prefix`` followed by the namespace.
    """

    def __init__(
        self,
        url: str = "redis://127.0.0.1:6379/0",
        *,
        client: Redis | None = None,
        prefix: str = "metallm:",
        refresh_interval: float = 1.0,
    ) -> None:
        super().__init__(refresh_interval=refresh_interval)
        if client is None:
            try:
                from redis import Redis
            except ImportError as exc:  # pragma: no cover - depends on the install
                raise ImportError(
                    'RedisStore needs the redis client: pip install "langchain-metallm'
                    '[redis]"'
                ) from exc
            client = Redis.from_url(url)
        self.client = client
        self.prefix = prefix

    def versions(self, namespace: str) -> IntArray:
        layout = self.layout(namespace)
        pipe = self.client.pipeline(transaction=False)
        for j in range(len(layout.arms)):
            pipe.hget(self._key(namespace, j), "version")
        raw = pipe.execute()
        return np.array(
            [0 if v is None else self._int(namespace, j, v) for j, v in enumerate(raw)],
            dtype=np.int64,
        )

    def read(self, namespace: str) -> Statistics:
        layout = self.layout(namespace)
        k = len(layout.arms)
        pipe = self.client.pipeline(transaction=True)
        for j in range(k):
            pipe.hmget(self._key(namespace, j), _FIELDS)
        rows = pipe.execute()
        states = [self._state(namespace, layout, j, row) for j, row in enumerate(rows)]
        return Statistics(
            np.stack([s[0][0] for s in states]),
            np.stack([s[0][1] for s in states]),
            np.array([s[0][2] for s in states], dtype=np.int64),
            np.array([s[1] for s in states], dtype=np.int64),
        )

    def _create(self, namespace: str, layout: Layout) -> Layout:
        key = f"{self.prefix}{namespace}:layout"
        self.client.set(key, layout.to_json(), nx=True)
        stored = self.client.get(key)
        if not isinstance(stored, bytes):
            raise ValueError(f"store: namespace {namespace!r} has no layout")
        return Layout.from_json(stored, f"namespace {namespace!r}")

    def _modify(self, namespace: str, arms: list[int], change: Change) -> list[int]:
        from redis import WatchError

        layout = self.layout(namespace)
        keys = [self._key(namespace, j) for j in arms]
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*keys)  # type: ignore[no-untyped-call]
                    rows = [pipe.hmget(key, _FIELDS) for key in keys]
                    new = []
                    for j, row in zip(arms, rows, strict=True):
                        (a, b, n), version = self._state(namespace, layout, j, row)
                        new.append((change(j, a, b, n), version + 1))
                    pipe.multi()
                    for key, ((a, b, n), version) in zip(keys, new, strict=True):
                        fields: dict[str | bytes, bytes | int] = {
                            "a": encode(a),
                            "b": encode(b),
                            "count": n,
                            "version": version,
                        }
                        pipe.hset(key, mapping=fields)  # type: ignore[arg-type]
                    pipe.execute()
                    return [version for _, version in new]
                except WatchError:
                    continue

    def _key(self, namespace: str, arm: int) -> str:
        return f"{self.prefix}{namespace}:arm:{arm}"

    def _state(
        self, namespace: str, layout: Layout, arm: int, row: list[Any]
    ) -> tuple[ArmState, int]:
        """An arm's ``(A, b, count)`` and version; no hash means the initial state."""
        if all(value is None for value in row):
            a, b = layout.initial()
            return (a, b, 0), 0
        where = f"namespace {namespace!r} arm {layout.arms[arm]!r}"
        count = self._int(namespace, arm, row[2])
        return decode_arm(layout, where, row[0], row[1], count), self._int(
            namespace, arm, row[3]
        )

    @staticmethod
    def _int(namespace: str, arm: int, value: object) -> int:
        """A stored counter, refusing anything but digits."""
        if isinstance(value, bytes) and value.isdigit():
            return int(value)
        raise ValueError(
            f"store: corrupt row in namespace {namespace!r} arm {arm}: "
            f"counter {value!r} is not a non-negative integer"
        )
