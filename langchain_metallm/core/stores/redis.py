"""``RedisStore``: statistics on a Redis server, shared by processes on many machines.

A namespace has a clock key and a catalogue (a set of arm names); each arm has
three keys named after it: a snapshot hash (``a``, ``b``, ``count`` and the
``stamp`` clock it was written at), a list of logged entries and a version
counter (kept when the arm is removed, so versions never repeat). An update and a
merge are one Lua script each (``_APPEND``): it checks the catalogue, moves the
clock by the update's ``log(decay)``, appends each entry with that clock and bumps
the versions, atomically and in one round trip, so every worker sees one order
and one clock and none waits for another. Every ``COMPACT_AT`` entries (and after
a merge) the log is folded into the snapshot under ``WATCH``; ``replace`` also
``WATCH``es the snapshots, logs and clock and retries if another worker wrote
first. Published values (``publish``) are keys set once (``SET NX``).
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
    Written,
    at_clock,
    check_clock,
    clock_step,
    decode_arm,
    encode,
    entry,
    fold,
    gather,
    merge_entry,
    removed,
)

if TYPE_CHECKING:
    from redis import Redis

_FIELDS = ("a", "b", "count", "stamp")

_ADJUST = """
local level = tonumber(redis.call('GET', KEYS[1]) or ARGV[1])
level = math.max(level + tonumber(ARGV[2]), tonumber(ARGV[3]))
local text = string.format('%.17g', level)
redis.call('SET', KEYS[1], text)
return text
"""
"""``adjust``: move a shared number by a delta, not below a floor, atomically."""

_APPEND = """
-- KEYS: catalogue, clock, then a log and a version key per arm
-- ARGV: clock step, then an arm name and an entry body per arm
local missing = {}
for i = 2, #ARGV, 2 do
    if redis.call('SISMEMBER', KEYS[1], ARGV[i]) == 0 then
        table.insert(missing, ARGV[i])
    end
end
if #missing > 0 then return {0, missing} end
local stored = redis.call('GET', KEYS[2])
local clock = 0
if stored then
    clock = tonumber(stored)
    if clock == nil then return {-1, stored} end
end
local step = tonumber(ARGV[1])
if step ~= 0 then
    clock = clock + step
    redis.call('SET', KEYS[2], string.format('%.17g', clock))
end
local stamp = struct.pack('<d', clock)
local out = {}
for i = 2, #ARGV, 2 do
    table.insert(out, redis.call('RPUSH', KEYS[i + 1], ARGV[i + 1] .. stamp))
    table.insert(out, redis.call('INCR', KEYS[i + 2]))
end
return {1, out, string.format('%.17g', clock)}
"""
"""Append entries at the clock (moved first by a nonzero step), atomically."""


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
        self._append = client.register_script(_APPEND)
        self._adjust = client.register_script(_ADJUST)

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
    ) -> Written:
        layout = self.layout(namespace)
        (logged, version), clock = self._appended(
            namespace, clock_step(decay), [(arm, entry(x, score))]
        )
        if logged >= COMPACT_AT:
            self._compact(namespace, layout, arm)
        return Written(version, clock)

    def merge(
        self,
        namespace: str,
        arms: Sequence[str],
        A: FloatArray,  # noqa: N803
        b: FloatArray,
        counts: IntArray,
    ) -> None:
        """Log each arm's increments as one entry at the current clock (after
        every update logged before it), atomically, then fold the logs."""
        layout = self.layout(namespace)
        bodies = [
            (arm, merge_entry(A[j], b[j], int(counts[j]))) for j, arm in enumerate(arms)
        ]
        self._appended(namespace, 0.0, bodies)
        for arm in arms:
            self._compact(namespace, layout, arm)

    def clock(self, namespace: str) -> float:
        self.layout(namespace)
        return self._clock(namespace, self.client.get(self._clock_key(namespace)))

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
        pipe.get(self._clock_key(namespace))
        for a in arms:
            pipe.hmget(self._key(namespace, "arm", a), _FIELDS)
            pipe.lrange(self._key(namespace, "log", a), 0, -1)
            pipe.get(self._key(namespace, "version", a))
        members, stored_clock, *raw = pipe.execute()
        missing = [a for a in arms if a.encode() not in members]
        if missing:
            raise removed(namespace, missing)
        clock = self._clock(namespace, stored_clock)
        states, versions = [], []
        for j, a in enumerate(arms):
            row, logged, version = raw[3 * j : 3 * j + 3]
            where = self._where(namespace, a)
            snapshot, stamp = self._snapshot(namespace, layout, a, row)
            state, written = fold(layout, where, snapshot, stamp, logged)
            states.append(at_clock(layout, where, state, written, clock))
            versions.append(self._int(namespace, a, version))
        return gather(layout, states, versions, clock)

    def publish(self, namespace: str, key: str, value: bytes) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError(f"value: expected bytes, got {type(value).__name__}")
        name = self._published_key(namespace, key)
        self.client.set(name, value, nx=True)
        stored = self.client.get(name)
        if not isinstance(stored, bytes):
            raise ValueError(f"store: {key!r} vanished from namespace {namespace!r}")
        return stored

    def adjust(
        self, namespace: str, key: str, delta: float, *, start: float, floor: float
    ) -> float:
        name = f"{self.prefix}{namespace}:level:{key}"
        level = self._adjust(keys=[name], args=[repr(start), repr(delta), repr(floor)])
        return float(level)

    def published(self, namespace: str, key: str) -> bytes | None:
        stored = self.client.get(self._published_key(namespace, key))
        if stored is not None and not isinstance(stored, bytes):
            raise ValueError(  # pragma: no cover - a client decoding responses
                f"store: corrupt value {key!r} in namespace {namespace!r}: not bytes"
            )
        return stored

    def _create(self, namespace: str, layout: Layout) -> tuple[Layout, bool]:
        key = f"{self.prefix}{namespace}:layout"
        created = bool(self.client.set(key, layout.to_json(), nx=True))
        stored = self.client.get(key)
        if not isinstance(stored, bytes):
            raise ValueError(f"store: namespace {namespace!r} has no layout")
        return Layout.from_json(stored, f"namespace {namespace!r}"), created

    def _appended(
        self, namespace: str, step: float, bodies: list[tuple[str, bytes]]
    ) -> tuple[tuple[int, int], float]:
        """Run ``_APPEND``: the last arm's log length and version, and the clock."""
        keys = [self._catalogue(namespace), self._clock_key(namespace)]
        args: list[Any] = [repr(step)]
        for arm, body in bodies:
            keys += [
                self._key(namespace, "log", arm),
                self._key(namespace, "version", arm),
            ]
            args += [arm, body]
        status, *result = self._append(keys=keys, args=args)
        if status == 0:
            raise removed(namespace, [m.decode() for m in result[0]])
        if status != 1:
            raise ValueError(
                f"store: corrupt clock for namespace {namespace!r}: {result[0]!r}"
            )
        counters, clock = result
        return (int(counters[-2]), int(counters[-1])), self._clock(namespace, clock)

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
        self, namespace: str, arms: list[str], change: Change
    ) -> tuple[list[int], float]:
        from redis import WatchError

        layout = self.layout(namespace)
        catalogue, clock_key = self._catalogue(namespace), self._clock_key(namespace)
        snapshots = [self._key(namespace, "arm", a) for a in arms]
        logs = [self._key(namespace, "log", a) for a in arms]
        with self.client.pipeline() as pipe:
            while True:
                try:
                    pipe.watch(catalogue, clock_key, *snapshots, *logs)  # type: ignore[no-untyped-call]
                    members = pipe.smembers(catalogue)
                    missing = [a for a in arms if a.encode() not in members]
                    if missing:
                        raise removed(namespace, missing)
                    clock = self._clock(namespace, pipe.get(clock_key))
                    states = []
                    for a, key, log in zip(arms, snapshots, logs, strict=True):
                        where = self._where(namespace, a)
                        row = pipe.hmget(key, _FIELDS)
                        snapshot, stamp = self._snapshot(namespace, layout, a, row)
                        state, written = fold(
                            layout, where, snapshot, stamp, pipe.lrange(log, 0, -1)
                        )
                        states.append(at_clock(layout, where, state, written, clock))
                    pipe.multi()
                    for a, key, log, state in zip(
                        arms, snapshots, logs, states, strict=True
                    ):
                        self._put(pipe, key, change(a, *state), clock)
                        pipe.delete(log)
                        pipe.incr(self._key(namespace, "version", a))
                    return [int(v) for v in pipe.execute()[2::3]], clock
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
        where = self._where(namespace, arm)
        with self.client.pipeline() as pipe:
            try:
                pipe.watch(snapshot, self._catalogue(namespace))  # type: ignore[no-untyped-call]
                state, stamp = self._snapshot(
                    namespace, layout, arm, pipe.hmget(snapshot, _FIELDS)
                )
                logged = pipe.lrange(log, 0, -1)
                if not logged:
                    return
                folded, written = fold(layout, where, state, stamp, logged)
                pipe.multi()
                self._put(pipe, snapshot, folded, written)
                pipe.ltrim(log, len(logged), -1)
                pipe.execute()
            except WatchError:
                return

    def _catalogue(self, namespace: str) -> str:
        return f"{self.prefix}{namespace}:arms"

    def _clock_key(self, namespace: str) -> str:
        return f"{self.prefix}{namespace}:clock"

    def _published_key(self, namespace: str, key: str) -> str:
        return f"{self.prefix}{namespace}:published:{key}"

    def _key(self, namespace: str, kind: str, arm: str) -> str:
        return f"{self.prefix}{namespace}:{kind}:{arm}"

    @staticmethod
    def _where(namespace: str, arm: str) -> str:
        return f"namespace {namespace!r} arm {arm!r}"

    @staticmethod
    def _put(pipe: Any, key: str, state: ArmState, stamp: float | None) -> None:
        """Write a snapshot and its stamp (a folded log always has one)."""
        a, b, n = state
        stamp = 0.0 if stamp is None else stamp
        pipe.hset(
            key,
            mapping={"a": encode(a), "b": encode(b), "count": n, "stamp": repr(stamp)},
        )

    def _snapshot(
        self, namespace: str, layout: Layout, arm: str, row: list[Any]
    ) -> tuple[ArmState, float | None]:
        """An arm's snapshot ``(A, b, count)`` and stamp; no hash means the
        initial state (no stamp)."""
        where = self._where(namespace, arm)
        a, b, count, stamp = row
        state = decode_arm(layout, where, a, b, self._int(namespace, arm, count))
        if a is None and stamp is None:
            return state, None
        return state, self._clock(namespace, stamp, where=where, name="stamp")

    @staticmethod
    def _clock(
        namespace: str, value: object, *, where: str | None = None, name: str = "clock"
    ) -> float:
        """A stored clock (none yet is 0.0), refusing anything but a number <= 0."""
        place = f"namespace {namespace!r}" if where is None else where
        if value is None:
            if name == "stamp":
                raise ValueError(f"store: corrupt row for {place}: no stamp")
            return 0.0
        try:
            number = float(value.decode() if isinstance(value, bytes) else str(value))
        except (ValueError, UnicodeDecodeError):
            raise ValueError(
                f"store: corrupt {name} for {place}: {value!r} is not a clock (<= 0)"
            ) from None
        return check_clock(place, name, number)

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
