"""``SQLiteStore``: statistics in one SQLite file, shared by processes on a machine.

WAL mode lets readers run while one writer holds the lock. Each arm is a snapshot
row plus logged increments; an update appends its ``(x, r)`` and bumps the arm's
version in one ``BEGIN IMMEDIATE`` transaction, so none is lost, and every
``COMPACT_AT`` entries the same transaction folds the log into the snapshot.
An arm with no row, or a row with no ``A`` and ``b``, is in its initial state.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metallm_layouts (
    namespace TEXT PRIMARY KEY,
    layout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metallm_arms (
    namespace TEXT NOT NULL,
    arm INTEGER NOT NULL,
    a BLOB,
    b BLOB,
    count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (namespace, arm)
);
CREATE TABLE IF NOT EXISTS metallm_log (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    arm INTEGER NOT NULL,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS metallm_log_arm ON metallm_log (namespace, arm, id);
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

    def add(self, namespace: str, arm: int, x: FloatArray, reward: float) -> int:
        layout = self.layout(namespace)
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO metallm_log (namespace, arm, entry) VALUES (?, ?, ?)",
                (namespace, arm, entry(x, reward)),
            )
            (version,) = db.execute(
                "INSERT INTO metallm_arms VALUES (?, ?, NULL, NULL, 0, 1) "
                "ON CONFLICT (namespace, arm) DO UPDATE SET version = version + 1 "
                "RETURNING version",
                (namespace, arm),
            ).fetchone()
            (logged,) = db.execute(
                "SELECT count(*) FROM metallm_log WHERE namespace = ? AND arm = ?",
                (namespace, arm),
            ).fetchone()
            if logged >= COMPACT_AT:
                self._compact(db, namespace, layout, arm)
        return int(version)

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
            log = db.execute(
                "SELECT arm, entry FROM metallm_log WHERE namespace = ? ORDER BY id",
                (namespace,),
            ).fetchall()
        entries: dict[object, list[bytes]] = {}
        for arm, logged in log:
            entries.setdefault(arm, []).append(logged)
        for arm, a, b, count, version in rows:
            j = self._arm(namespace, layout, arm, version)
            where = f"namespace {namespace!r} arm {layout.arms[j]!r}"
            state = decode_arm(layout, where, a, b, count)
            stats.A[j], stats.b[j], stats.counts[j] = fold(
                layout, where, state, entries.pop(j, [])
            )
            stats.versions[j] = version
        if entries:
            raise ValueError(
                f"store: corrupt log in namespace {namespace!r}: entries for arms "
                f"{sorted(map(repr, entries))} that have no row"
            )
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

    def _rewrite(
        self, namespace: str, arms: list[int], change: Change, *, drop_log: bool
    ) -> list[int]:
        layout = self.layout(namespace)
        versions = []
        with self._transaction(write=True) as db:
            for j in arms:
                state, version = self._snapshot(db, namespace, layout, j)
                a, b, n = change(j, *state)
                db.execute(
                    "INSERT OR REPLACE INTO metallm_arms VALUES (?, ?, ?, ?, ?, ?)",
                    (namespace, j, encode(a), encode(b), n, version + 1),
                )
                if drop_log:
                    db.execute(
                        "DELETE FROM metallm_log WHERE namespace = ? AND arm = ?",
                        (namespace, j),
                    )
                versions.append(version + 1)
        return versions

    def _compact(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: int
    ) -> None:
        """Fold ``arm``'s logged increments into its snapshot (inside a write)."""
        state, _ = self._snapshot(db, namespace, layout, arm)
        logged = db.execute(
            "SELECT entry FROM metallm_log WHERE namespace = ? AND arm = ? ORDER BY id",
            (namespace, arm),
        ).fetchall()
        where = f"namespace {namespace!r} arm {layout.arms[arm]!r}"
        a, b, n = fold(layout, where, state, [e for (e,) in logged])
        db.execute(
            "UPDATE metallm_arms SET a = ?, b = ?, count = ? "
            "WHERE namespace = ? AND arm = ?",
            (encode(a), encode(b), n, namespace, arm),
        )
        db.execute(
            "DELETE FROM metallm_log WHERE namespace = ? AND arm = ?", (namespace, arm)
        )

    def _snapshot(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: int
    ) -> tuple[ArmState, int]:
        """``arm``'s snapshot ``(A, b, count)`` (logged increments excluded) and
        its version."""
        row = db.execute(
            "SELECT a, b, count, version FROM metallm_arms "
            "WHERE namespace = ? AND arm = ?",
            (namespace, arm),
        ).fetchone()
        if row is None:
            a, b = layout.initial()
            return (a, b, 0), 0
        self._arm(namespace, layout, arm, row[3])
        where = f"namespace {namespace!r} arm {layout.arms[arm]!r}"
        return decode_arm(layout, where, *row[:3]), row[3]

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
