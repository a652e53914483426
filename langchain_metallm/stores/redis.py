"""``RedisStore``: statistics on a Redis server, shared by processes on many machines.

Each arm has three namespaced keys: a snapshot hash (``a``, ``b``, ``count``), a
list of logged increments ``(x, r)`` and a version counter. An update is one
``MULTI``/``EXEC`` of ``RPUSH`` and ``INCR``: atomic, small, and never in conflict
with other workers. Every ``COMPACT_AT`` entries the log is folded into the
snapshot under ``WATCH``; rewrites (``merge``, ``replace``) also ``WATCH`` the
snapshot and retry if another worker rewrote it first. Needs the ``redis``
extra: ``pip install "langchain-metallm[redis]"``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_metallm.stores.base import (
    COMPACT_AT,
    ArmState,
    Change,
    FloatArray,
    IntArray,
    Layout,
    PolicyStore,
    Statistics,
    decode_arm,
    encode,
    entry,
    fold,
)

if TYPE_CHECKING:
    from redis import Redis

_FIELDS = ("a", "b", "count")


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

    def add(self, namespace: str, arm: int, x: FloatArray, reward: float) -> int:
        layout = self.layout(namespace)
        pipe = self.client.pipeline(transaction=True)
        pipe.rpush(self._key(namespace, "log", arm), entry(x, reward))
        pipe.incr(self._key(namespace, "version", arm))
        logged, version = pipe.execute()
        if logged >= COMPACT_AT:
            self._compact(namespace, layout, arm)
        return int(version)

    def versions(self, namespace: str) -> IntArray:
        layout = self.layout(namespace)
        keys = [self._key(namespace, "version", j) for j in range(len(layout.arms))]
        raw = self.client.mget(keys)
        return np.array(
            [self._int(namespace, j, v) for j, v in enumerate(raw)], dtype=np.int64
        )

    def read(self, namespace: str) -> Statistics:
        layout = self.layout(namespace)
        k = len(layout.arms)
        pipe = self.client.pipeline(transaction=True)
        for j in range(k):
            pipe.hmget(self._key(namespace, "arm", j), _FIELDS)
            pipe.lrange(self._key(namespace, "log", j), 0, -1)
            pipe.get(self._key(namespace, "version", j))
        raw = pipe.execute()
        states = []
        for j in range(k):
            row, logged, version = raw[3 * j : 3 * j + 3]
            where = f"namespace {namespace!r} arm {layout.arms[j]!r}"
            state = fold(
                layout, where, self._snapshot(namespace, layout, j, row), logged
            )
            states.append((state, self._int(namespace, j, version)))
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

    def _rewrite(
        self, namespace: str, arms: list[int], change: Change, *, drop_log: bool
    ) -> list[int]:
        from redis import WatchError

        layout = self.layout(namespace)
        snapshots = [self._key(namespace, "arm", j) for j in arms]
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(*snapshots)  # type: ignore[no-untyped-call]
                    states = [
                        self._snapshot(namespace, layout, j, pipe.hmget(key, _FIELDS))
                        for j, key in zip(arms, snapshots, strict=True)
                    ]
                    pipe.multi()
                    for j, key, state in zip(arms, snapshots, states, strict=True):
                        self._put(pipe, key, change(j, *state))
                        if drop_log:
                            pipe.delete(self._key(namespace, "log", j))
                        pipe.incr(self._key(namespace, "version", j))
                    step = 3 if drop_log else 2
                    return [int(v) for v in pipe.execute()[step - 1 :: step]]
                except WatchError:
                    continue

    def _compact(self, namespace: str, layout: Layout, arm: int) -> None:
        """Fold ``arm``'s log into its snapshot; entries appended meanwhile stay.

        Skipped if another worker rewrites the snapshot first: the next update
        past ``COMPACT_AT`` tries again.
        """
        from redis import WatchError

        snapshot = self._key(namespace, "arm", arm)
        log = self._key(namespace, "log", arm)
        where = f"namespace {namespace!r} arm {layout.arms[arm]!r}"
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(snapshot)  # type: ignore[no-untyped-call]
                state = self._snapshot(
                    namespace, layout, arm, pipe.hmget(snapshot, _FIELDS)
                )
                logged = pipe.lrange(log, 0, -1)
                folded = fold(layout, where, state, logged)
                pipe.multi()
                self._put(pipe, snapshot, folded)
                pipe.ltrim(log, len(logged), -1)
                pipe.execute()
            except WatchError:
                return

    def _key(self, namespace: str, kind: str, arm: int) -> str:
        return f"{self.prefix}{namespace}:{kind}:{arm}"

    @staticmethod
    def _put(pipe: Any, key: str, state: ArmState) -> None:
        a, b, n = state
        pipe.hset(key, mapping={"a": encode(a), "b": encode(b), "count": n})

    def _snapshot(
        self, namespace: str, layout: Layout, arm: int, row: list[Any]
    ) -> ArmState:
        """An arm's snapshot ``(A, b, count)``; no hash means the initial state."""
        where = f"namespace {namespace!r} arm {layout.arms[arm]!r}"
        a, b, count = row
        return decode_arm(layout, where, a, b, self._int(namespace, arm, count))

    @staticmethod
    def _int(namespace: str, arm: int, value: object) -> int:
        """A stored counter (none yet is 0), refusing anything but digits."""
        if value is None:
            return 0
        if isinstance(value, bytes) and value.isdigit():
            return int(value)
        raise ValueError(
            f"store: corrupt row in namespace {namespace!r} arm {arm}: "
            f"counter {value!r} is not a non-negative integer"
        )
