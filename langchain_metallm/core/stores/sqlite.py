"""``SQLiteStore``: statistics in one SQLite file, shared by processes on a machine.

WAL mode lets readers run while one writer holds the lock. Each arm is a row keyed
by its name (``present`` while it is in the catalogue) plus logged increments; an
update appends its ``(x, s, decay)`` and bumps the arm's version in one ``BEGIN
IMMEDIATE`` transaction, so none is lost and the log's order is the order of
updates, and every ``COMPACT_AT`` entries the same transaction folds the log into
the snapshot. A row with no ``A`` and ``b`` is in its initial state. A removed
arm's row stays (absent, without statistics) so its version keeps growing.
"""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager

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

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metallm_layouts (
    namespace TEXT PRIMARY KEY,
    layout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metallm_arm_stats (
    namespace TEXT NOT NULL,
    arm TEXT NOT NULL,
    present INTEGER NOT NULL,
    a BLOB,
    b BLOB,
    count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    PRIMARY KEY (namespace, arm)
);
CREATE TABLE IF NOT EXISTS metallm_arm_log (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    arm TEXT NOT NULL,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS metallm_arm_log_arm ON metallm_arm_log (namespace, arm, id);
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

    def arms(self, namespace: str) -> tuple[str, ...]:
        self.layout(namespace)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT arm FROM metallm_arm_stats WHERE namespace = ? AND present "
                "ORDER BY arm",
                (namespace,),
            ).fetchall()
        return tuple(arm for (arm,) in rows)

    def add_arm(self, namespace: str, arm: str) -> bool:
        self.layout(namespace)
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT present FROM metallm_arm_stats WHERE namespace = ? AND arm = ?",
                (namespace, arm),
            ).fetchone()
            if row is not None and row[0]:
                return False
            db.execute(
                "INSERT INTO metallm_arm_stats VALUES (?, ?, 1, NULL, NULL, 0, 1) "
                "ON CONFLICT (namespace, arm) DO UPDATE SET present = 1, "
                "a = NULL, b = NULL, count = 0, version = version + 1",
                (namespace, arm),
            )
        return True

    def remove_arm(self, namespace: str, arm: str) -> bool:
        self.layout(namespace)
        with self._transaction(write=True) as db:
            gone = db.execute(
                "UPDATE metallm_arm_stats SET present = 0, a = NULL, b = NULL, "
                "count = 0, version = version + 1 "
                "WHERE namespace = ? AND arm = ? AND present",
                (namespace, arm),
            ).rowcount
            db.execute(
                "DELETE FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
                (namespace, arm),
            )
        return bool(gone)

    def add(
        self, namespace: str, arm: str, x: FloatArray, score: float, decay: float
    ) -> int:
        layout = self.layout(namespace)
        with self._transaction(write=True) as db:
            row = db.execute(
                "UPDATE metallm_arm_stats SET version = version + 1 "
                "WHERE namespace = ? AND arm = ? AND present RETURNING version",
                (namespace, arm),
            ).fetchone()
            if row is None:
                raise removed(namespace, [arm])
            db.execute(
                "INSERT INTO metallm_arm_log (namespace, arm, entry) VALUES (?, ?, ?)",
                (namespace, arm, entry(x, score, decay)),
            )
            (logged,) = db.execute(
                "SELECT count(*) FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
                (namespace, arm),
            ).fetchone()
            if logged >= COMPACT_AT:
                self._compact(db, namespace, layout, arm)
        return int(row[0])

    def versions(self, namespace: str, arms: Sequence[str]) -> IntArray:
        self.layout(namespace)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT arm, version FROM metallm_arm_stats "
                "WHERE namespace = ? AND present",
                (namespace,),
            ).fetchall()
        found = {arm: self._version(namespace, arm, v) for arm, v in rows}
        return np.array([found.get(a, REMOVED) for a in arms], dtype=np.int64)

    def read(self, namespace: str, arms: Sequence[str]) -> Statistics:
        layout = self.layout(namespace)
        with self._transaction() as db:
            rows = db.execute(
                "SELECT arm, a, b, count, version FROM metallm_arm_stats "
                "WHERE namespace = ? AND present",
                (namespace,),
            ).fetchall()
            log = db.execute(
                "SELECT arm, entry FROM metallm_arm_log WHERE namespace = ? "
                "ORDER BY id",
                (namespace,),
            ).fetchall()
        entries: dict[object, list[bytes]] = {}
        for arm, logged in log:
            entries.setdefault(arm, []).append(logged)
        found = {row[0]: row[1:] for row in rows}
        strays = sorted(str(arm) for arm in set(entries) - set(found))
        if strays:
            raise ValueError(
                f"store: corrupt log in namespace {namespace!r}: entries for arms "
                f"{strays} that have no row"
            )
        missing = [a for a in arms if a not in found]
        if missing:
            raise removed(namespace, missing)
        states, versions = [], []
        for arm in arms:
            a, b, count, version = found[arm]
            where = f"namespace {namespace!r} arm {arm!r}"
            state = decode_arm(layout, where, a, b, count)
            states.append(fold(layout, where, state, entries.get(arm, [])))
            versions.append(self._version(namespace, arm, version))
        return gather(layout, states, versions)

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
        self, namespace: str, arms: list[str], change: Change, *, drop_log: bool
    ) -> list[int]:
        layout = self.layout(namespace)
        versions = []
        with self._transaction(write=True) as db:
            for arm in arms:
                state, version = self._snapshot(db, namespace, layout, arm)
                a, b, n = change(arm, *state)
                db.execute(
                    "UPDATE metallm_arm_stats SET a = ?, b = ?, count = ?, "
                    "version = ? WHERE namespace = ? AND arm = ?",
                    (encode(a), encode(b), n, version + 1, namespace, arm),
                )
                if drop_log:
                    db.execute(
                        "DELETE FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
                        (namespace, arm),
                    )
                versions.append(version + 1)
        return versions

    def _compact(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: str
    ) -> None:
        """Fold ``arm``'s logged increments into its snapshot (inside a write)."""
        state, _ = self._snapshot(db, namespace, layout, arm)
        logged = db.execute(
            "SELECT entry FROM metallm_arm_log WHERE namespace = ? AND arm = ? "
            "ORDER BY id",
            (namespace, arm),
        ).fetchall()
        where = f"namespace {namespace!r} arm {arm!r}"
        a, b, n = fold(layout, where, state, [e for (e,) in logged])
        db.execute(
            "UPDATE metallm_arm_stats SET a = ?, b = ?, count = ? "
            "WHERE namespace = ? AND arm = ?",
            (encode(a), encode(b), n, namespace, arm),
        )
        db.execute(
            "DELETE FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
            (namespace, arm),
        )

    def _snapshot(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: str
    ) -> tuple[ArmState, int]:
        """``arm``'s snapshot ``(A, b, count)`` (logged increments excluded) and
        its version; ``ValueError`` if it is not in the catalogue."""
        row = db.execute(
            "SELECT a, b, count, version FROM metallm_arm_stats "
            "WHERE namespace = ? AND arm = ? AND present",
            (namespace, arm),
        ).fetchone()
        if row is None:
            raise removed(namespace, [arm])
        where = f"namespace {namespace!r} arm {arm!r}"
        version = self._version(namespace, arm, row[3])
        return decode_arm(layout, where, *row[:3]), version

    @staticmethod
    def _version(namespace: str, arm: object, version: object) -> int:
        """Check a row's version, refusing a corrupt one."""
        if isinstance(version, int) and not isinstance(version, bool) and version >= 0:
            return version
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
