"""``RedisStore``: statistics on a Redis server, shared by processes on many machines.

A namespace's catalogue is a set of arm names; each arm has three keys named after
it: a snapshot hash (``a``, ``b``, ``count``), a list of logged increments ``(x,
s, decay)`` and a version counter (kept when the arm is removed, so versions never
repeat). An update is one ``MULTI``/``EXEC`` of ``RPUSH`` and ``INCR`` under
``WATCH`` of the catalogue: atomic, small, in one order every worker sees, and
refused for an arm another worker removed. Every ``COMPACT_AT`` entries the log
is folded into the snapshot under ``WATCH``; rewrites (``merge``, ``replace``)
also ``WATCH`` the snapshots and retry if another worker rewrote one first.
Needs the ``redis`` extra: ``pip install "langchain-metallm[redis]"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from langchain_metallm.core.stores.base import (
    COMPACT_AT,
    REMOVED,
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
    gather,
    removed,
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

    def arms(self, namespace: str) -> tuple[str, ...]:
        self.layout(namespace)
        members = self.client.smembers(self._catalogue(namespace))
        return tuple(sorted(m.decode() for m in members))  # type: ignore[union-attr]

    def add_arm(self, namespace: str, arm: str) -> bool:
        return self._change_catalogue(namespace, arm, add=True)

    def remove_arm(self, namespace: str, arm: str) -> bool:
        return self._change_catalogue(namespace, arm, add=False)

    def add(
        self, namespace: str, arm: str, x: FloatArray, score: float, decay: float
    ) -> int:
        from redis import WatchError

        layout = self.layout(namespace)
        catalogue = self._catalogue(namespace)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(catalogue)  # type: ignore[no-untyped-call]
                    if not pipe.sismember(catalogue, arm):
                        raise removed(namespace, [arm])
                    pipe.multi()
                    pipe.rpush(self._key(namespace, "log", arm), entry(x, score, decay))
                    pipe.incr(self._key(namespace, "version", arm))
                    logged, version = pipe.execute()
                    break
                except WatchError:
                    continue
        if logged >= COMPACT_AT:
            self._compact(namespace, layout, arm)
        return int(version)

    def versions(self, namespace: str, arms: Sequence[str]) -> IntArray:
        self.layout(namespace)
        pipe = self.client.pipeline(transaction=True)
        pipe.smembers(self._catalogue(namespace))
        pipe.mget([self._key(namespace, "version", a) for a in arms])
        members, raw = pipe.execute()
        return np.array(
            [
                self._int(namespace, a, v) if a.encode() in members else REMOVED
                for a, v in zip(arms, raw, strict=True)
            ],
            dtype=np.int64,
        )

    def read(self, namespace: str, arms: Sequence[str]) -> Statistics:
        layout = self.layout(namespace)
        pipe = self.client.pipeline(transaction=True)
        pipe.smembers(self._catalogue(namespace))
        for a in arms:
            pipe.hmget(self._key(namespace, "arm", a), _FIELDS)
            pipe.lrange(self._key(namespace, "log", a), 0, -1)
            pipe.get(self._key(namespace, "version", a))
        members, *raw = pipe.execute()
        missing = [a for a in arms if a.encode() not in members]
        if missing:
            raise removed(namespace, missing)
        states, versions = [], []
        for j, a in enumerate(arms):
            row, logged, version = raw[3 * j : 3 * j + 3]
            where = f"namespace {namespace!r} arm {a!r}"
            snapshot = self._snapshot(namespace, layout, a, row)
            states.append(fold(layout, where, snapshot, logged))
            versions.append(self._int(namespace, a, version))
        return gather(layout, states, versions)

    def _create(self, namespace: str, layout: Layout) -> Layout:
        key = f"{self.prefix}{namespace}:layout"
        self.client.set(key, layout.to_json(), nx=True)
        stored = self.client.get(key)
        if not isinstance(stored, bytes):
            raise ValueError(f"store: namespace {namespace!r} has no layout")
        return Layout.from_json(stored, f"namespace {namespace!r}")

    def _change_catalogue(self, namespace: str, arm: str, *, add: bool) -> bool:
        """Add or remove ``arm`` (statistics back to the initial state, version
        bumped) unless the catalogue already is that way; True if it changed."""
        from redis import WatchError

        self.layout(namespace)
        catalogue = self._catalogue(namespace)
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(catalogue)  # type: ignore[no-untyped-call]
                    if bool(pipe.sismember(catalogue, arm)) == add:
                        return False
                    pipe.multi()
                    (pipe.sadd if add else pipe.srem)(catalogue, arm)
                    pipe.delete(
                        self._key(namespace, "arm", arm),
                        self._key(namespace, "log", arm),
                    )
                    pipe.incr(self._key(namespace, "version", arm))
                    pipe.execute()
                    return True
                except WatchError:
                    continue

    def _rewrite(
        self, namespace: str, arms: list[str], change: Change, *, drop_log: bool
    ) -> list[int]:
        from redis import WatchError

        layout = self.layout(namespace)
        catalogue = self._catalogue(namespace)
        snapshots = [self._key(namespace, "arm", a) for a in arms]
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(catalogue, *snapshots)  # type: ignore[no-untyped-call]
                    members = pipe.smembers(catalogue)
                    missing = [a for a in arms if a.encode() not in members]
                    if missing:
                        raise removed(namespace, missing)
                    states = [
                        self._snapshot(namespace, layout, a, pipe.hmget(key, _FIELDS))
                        for a, key in zip(arms, snapshots, strict=True)
                    ]
                    pipe.multi()
                    for a, key, state in zip(arms, snapshots, states, strict=True):
                        self._put(pipe, key, change(a, *state))
                        if drop_log:
                            pipe.delete(self._key(namespace, "log", a))
                        pipe.incr(self._key(namespace, "version", a))
                    step = 3 if drop_log else 2
                    return [int(v) for v in pipe.execute()[step - 1 :: step]]
                except WatchError:
                    continue

    def _compact(self, namespace: str, layout: Layout, arm: str) -> None:
        """Fold ``arm``'s log into its snapshot; entries appended meanwhile stay.

        Skipped if another worker rewrites the snapshot (or the catalogue)
        first: the next update past ``COMPACT_AT`` tries again.
        """
        from redis import WatchError

        snapshot = self._key(namespace, "arm", arm)
        log = self._key(namespace, "log", arm)
        where = f"namespace {namespace!r} arm {arm!r}"
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(snapshot, self._catalogue(namespace))  # type: ignore[no-untyped-call]
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

    def _catalogue(self, namespace: str) -> str:
        return f"{self.prefix}{namespace}:arms"

    def _key(self, namespace: str, kind: str, arm: str) -> str:
        return f"{self.prefix}{namespace}:{kind}:{arm}"

    @staticmethod
    def _put(pipe: Any, key: str, state: ArmState) -> None:
        a, b, n = state
        pipe.hset(key, mapping={"a": encode(a), "b": encode(b), "count": n})

    def _snapshot(
        self, namespace: str, layout: Layout, arm: str, row: list[Any]
    ) -> ArmState:
        """An arm's snapshot ``(A, b, count)``; no hash means the initial state."""
        where = f"namespace {namespace!r} arm {arm!r}"
        a, b, count = row
        return decode_arm(layout, where, a, b, self._int(namespace, arm, count))

    @staticmethod
    def _int(namespace: str, arm: str, value: object) -> int:
        """A stored counter (none yet is 0), refusing anything but digits."""
        if value is None:
            return 0
        if isinstance(value, bytes) and value.isdigit():
            return int(value)
        raise ValueError(
            f"store: corrupt row in namespace {namespace!r} arm {arm!r}: "
            f"counter {value!r} is not a non-negative integer"
        )
