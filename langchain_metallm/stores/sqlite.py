"""``SQLiteStore``: statistics in one SQLite file, shared by processes on a machine.

WAL mode lets readers run while one writer holds the lock; every write is a
read-modify-write inside ``BEGIN IMMEDIATE``, so concurrent increments are
serialised and none is lost. An arm with no row yet is in its initial state.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np

from langchain_metallm.stores.base import (
    Change,
    IntArray,
    Layout,
    PolicyStore,
    Statistics,
    decode_arm,
    encode,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metallm_layouts (
    namespace TEXT PRIMARY KEY,
    layout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metallm_arms (
    namespace TEXT NOT NULL,
    arm INTEGER NOT NULL,
    a BLOB NOT NULL,
    b BLOB NOT NULL,
    count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (namespace, arm)
);
"""


class SQLiteStore(PolicyStore):
    """A policy store in the SQLite file at ``path`` (created if missing).

    Each process (and each store object) opens its own connection; ``timeout``
    is how long a write waits for another process's write to finish.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        refresh_interval: float = 1.0,
        timeout: float = 30.0,
    ) -> None:
        super().__init__(refresh_interval=refresh_interval)
        self.path = os.fspath(path)
        self.timeout = timeout
        self._lock = threading.Lock()
        self._db: sqlite3.Connection | None = None
        self._pid = -1
        with self._transaction():
            pass

    def versions(self, namespace: str) -> IntArray:
        layout = self.layout(namespace)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT arm, version FROM metallm_arms WHERE namespace = ?",
                (namespace,),
            ).fetchall()
        versions = np.zeros(len(layout.arms), dtype=np.int64)
        for arm, version in rows:
            versions[self._arm(namespace, layout, arm, version)] = version
        return versions

    def read(self, namespace: str) -> Statistics:
        layout = self.layout(namespace)
        k = len(layout.arms)
        a0, b0 = layout.initial()
        stats = Statistics(
            np.repeat(a0[None], k, axis=0),
            np.repeat(b0[None], k, axis=0),
            np.zeros(k, dtype=np.int64),
            np.zeros(k, dtype=np.int64),
        )
        with self._transaction() as db:
            rows = db.execute(
                "SELECT arm, a, b, count, version FROM metallm_arms "
                "WHERE namespace = ?",
                (namespace,),
            ).fetchall()
        for arm, a, b, count, version in rows:
            j = self._arm(namespace, layout, arm, version)
            where = f"namespace {namespace!r} arm {layout.arms[j]!r}"
            stats.A[j], stats.b[j], stats.counts[j] = decode_arm(
                layout, where, a, b, count
            )
            stats.versions[j] = version
        return stats

    def _create(self, namespace: str, layout: Layout) -> Layout:
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT layout FROM metallm_layouts WHERE namespace = ?", (namespace,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO metallm_layouts VALUES (?, ?)",
                    (namespace, layout.to_json()),
                )
                return layout
        return Layout.from_json(row[0], f"namespace {namespace!r}")

    def _modify(self, namespace: str, arms: list[int], change: Change) -> list[int]:
        layout = self.layout(namespace)
        versions = []
        with self._transaction(write=True) as db:
            stray = db.execute(
                "SELECT arm, version FROM metallm_arms WHERE namespace = ? "
                "AND NOT (arm BETWEEN 0 AND ?)",
                (namespace, len(layout.arms) - 1),
            ).fetchone()
            if stray is not None:
                self._arm(namespace, layout, *stray)  # raises: out of range
            for j in arms:
                row = db.execute(
                    "SELECT a, b, count, version FROM metallm_arms "
                    "WHERE namespace = ? AND arm = ?",
                    (namespace, j),
                ).fetchone()
                if row is None:
                    a, b = layout.initial()
                    state, version = change(j, a, b, 0), 0
                else:
                    where = f"namespace {namespace!r} arm {layout.arms[j]!r}"
                    self._arm(namespace, layout, j, row[3])
                    state = change(j, *decode_arm(layout, where, *row[:3]))
                    version = row[3]
                db.execute(
                    "INSERT OR REPLACE INTO metallm_arms VALUES (?, ?, ?, ?, ?, ?)",
                    (
                        namespace,
                        j,
                        encode(state[0]),
                        encode(state[1]),
                        state[2],
                        version + 1,
                    ),
                )
                versions.append(version + 1)
        return versions

    @staticmethod
    def _arm(namespace: str, layout: Layout, arm: object, version: object) -> int:
        """Check a row's arm index and version, refusing corrupt ones."""
        if (
            isinstance(arm, int)
            and 0 <= arm < len(layout.arms)
            and isinstance(version, int)
            and version >= 0
        ):
            return arm
        raise ValueError(
            f"store: corrupt row in namespace {namespace!r}: arm {arm!r}, "
            f"version {version!r}"
        )

    @contextmanager
    def _transaction(self, *, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One transaction on this process's connection; ``write`` takes the
        database's write lock up front, so read-modify-write cannot interleave."""
        with self._lock:
            db = self._connection()
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    def _connection(self) -> sqlite3.Connection:
        """This process's connection (a forked child opens its own)."""
        if self._db is None or self._pid != os.getpid():
            db = sqlite3.connect(
                self.path,
                timeout=self.timeout,
                isolation_level=None,
                check_same_thread=False,
            )
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            self._db, self._pid = db, os.getpid()
        return self._db
