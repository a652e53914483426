"""``SQLiteStore``: statistics in one SQLite file, shared by processes on a machine.

WAL mode lets readers run while one writer holds the lock. Each arm is a row keyed
by its name (``present`` while it is in the catalogue, ``stamp`` the namespace
clock its snapshot was written at) plus logged entries; an update moves the
namespace clock, appends its ``(x, s, clock)`` and bumps the arm's version in one
``BEGIN IMMEDIATE`` transaction, so none is lost and the log's order and clocks
are the order of updates, and every ``COMPACT_AT`` entries the same transaction
folds the log into the snapshot. A rewrite (``merge``, ``replace``) folds the
arm's log first and writes the result as of the clock, in one transaction, so a
merge lands after every update logged before it. A row with no ``A`` and ``b`` is
in its initial state. A removed arm's row stays (absent, without statistics) so
its version keeps growing. Published values (``publish``) live in their own table.
"""

from __future__ import annotations

import contextlib
import os
import sqlite3
import threading
import time
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
    Written,
    at_clock,
    check_clock,
    clock_step,
    decode_arm,
    encode,
    entry,
    fold,
    gather,
    removed,
    stamped,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS metallm_layouts (
    namespace TEXT PRIMARY KEY,
    layout TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS metallm_clocks (
    namespace TEXT PRIMARY KEY,
    clock REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metallm_arm_stats (
    namespace TEXT NOT NULL,
    arm TEXT NOT NULL,
    present INTEGER NOT NULL,
    a BLOB,
    b BLOB,
    count INTEGER NOT NULL,
    version INTEGER NOT NULL,
    stamp REAL,
    PRIMARY KEY (namespace, arm)
);
CREATE TABLE IF NOT EXISTS metallm_arm_log (
    id INTEGER PRIMARY KEY,
    namespace TEXT NOT NULL,
    arm TEXT NOT NULL,
    entry BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS metallm_arm_log_arm ON metallm_arm_log (namespace, arm, id);
CREATE TABLE IF NOT EXISTS metallm_published (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    value BLOB NOT NULL,
    PRIMARY KEY (namespace, key)
);
CREATE TABLE IF NOT EXISTS metallm_levels (
    namespace TEXT NOT NULL,
    key TEXT NOT NULL,
    level REAL NOT NULL,
    PRIMARY KEY (namespace, key)
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
                "INSERT INTO metallm_arm_stats "
                "VALUES (?, ?, 1, NULL, NULL, 0, 1, NULL) "
                "ON CONFLICT (namespace, arm) DO UPDATE SET present = 1, "
                "a = NULL, b = NULL, count = 0, version = version + 1, stamp = NULL",
                (namespace, arm),
            )
        return True

    def remove_arm(self, namespace: str, arm: str) -> bool:
        self.layout(namespace)
        with self._transaction(write=True) as db:
            gone = db.execute(
                "UPDATE metallm_arm_stats SET present = 0, a = NULL, b = NULL, "
                "count = 0, version = version + 1, stamp = NULL "
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
    ) -> Written:
        layout = self.layout(namespace)
        with self._transaction(write=True) as db:
            row = db.execute(
                "UPDATE metallm_arm_stats SET version = version + 1 "
                "WHERE namespace = ? AND arm = ? AND present RETURNING version",
                (namespace, arm),
            ).fetchone()
            if row is None:
                raise removed(namespace, [arm])
            clock = self._clock(db, namespace)
            step = clock_step(decay)
            if step:
                clock += step
                db.execute(
                    "INSERT INTO metallm_clocks VALUES (?, ?) "
                    "ON CONFLICT (namespace) DO UPDATE SET clock = excluded.clock",
                    (namespace, clock),
                )
            db.execute(
                "INSERT INTO metallm_arm_log (namespace, arm, entry) VALUES (?, ?, ?)",
                (namespace, arm, stamped(entry(x, score), clock)),
            )
            (logged,) = db.execute(
                "SELECT count(*) FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
                (namespace, arm),
            ).fetchone()
            if logged >= COMPACT_AT:
                self._compact(db, namespace, layout, arm)
        return Written(int(row[0]), clock)

    def clock(self, namespace: str) -> float:
        self.layout(namespace)
        with self._transaction() as db:
            return self._clock(db, namespace)

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
            clock = self._clock(db, namespace)
            rows = db.execute(
                "SELECT arm, a, b, count, version, stamp FROM metallm_arm_stats "
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
            a, b, count, version, stamp = found[arm]
            where = f"namespace {namespace!r} arm {arm!r}"
            state, written = fold(
                layout,
                where,
                decode_arm(layout, where, a, b, count),
                self._stamp(where, a, stamp),
                entries.get(arm, []),
            )
            states.append(at_clock(layout, where, state, written, clock))
            versions.append(self._version(namespace, arm, version))
        return gather(layout, states, versions, clock)

    def publish(self, namespace: str, key: str, value: bytes) -> bytes:
        if not isinstance(value, bytes):
            raise TypeError(f"value: expected bytes, got {type(value).__name__}")
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO metallm_published VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO NOTHING",
                (namespace, key, value),
            )
            stored = self._published(db, namespace, key)
        if stored is None:  # pragma: no cover - just inserted in this transaction
            raise ValueError(f"store: {key!r} vanished from namespace {namespace!r}")
        return stored

    def published(self, namespace: str, key: str) -> bytes | None:
        with self._transaction() as db:
            return self._published(db, namespace, key)

    def adjust(
        self, namespace: str, key: str, delta: float, *, start: float, floor: float
    ) -> float:
        with self._transaction(write=True) as db:
            db.execute(
                "INSERT INTO metallm_levels VALUES (?, ?, ?) "
                "ON CONFLICT (namespace, key) DO NOTHING",
                (namespace, key, start),
            )
            db.execute(
                "UPDATE metallm_levels SET level = max(level + ?, ?) "
                "WHERE namespace = ? AND key = ?",
                (delta, floor, namespace, key),
            )
            row = db.execute(
                "SELECT level FROM metallm_levels WHERE namespace = ? AND key = ?",
                (namespace, key),
            ).fetchone()
        return float(row[0])

    def _create(self, namespace: str, layout: Layout) -> tuple[Layout, bool]:
        with self._transaction(write=True) as db:
            row = db.execute(
                "SELECT layout FROM metallm_layouts WHERE namespace = ?", (namespace,)
            ).fetchone()
            if row is None:
                db.execute(
                    "INSERT INTO metallm_layouts VALUES (?, ?)",
                    (namespace, layout.to_json()),
                )
                return layout, True
        return Layout.from_json(row[0], f"namespace {namespace!r}"), False

    def _rewrite(
        self, namespace: str, arms: list[str], change: Change
    ) -> tuple[list[int], float]:
        layout = self.layout(namespace)
        versions = []
        with self._transaction(write=True) as db:
            clock = self._clock(db, namespace)
            for arm in arms:
                state, version = self._folded(db, namespace, layout, arm, clock)
                a, b, n = change(arm, *state)
                db.execute(
                    "UPDATE metallm_arm_stats SET a = ?, b = ?, count = ?, "
                    "version = ?, stamp = ? WHERE namespace = ? AND arm = ?",
                    (encode(a), encode(b), n, version + 1, clock, namespace, arm),
                )
                db.execute(
                    "DELETE FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
                    (namespace, arm),
                )
                versions.append(version + 1)
        return versions, clock

    def _compact(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: str
    ) -> None:
        """Fold ``arm``'s logged entries into its snapshot (inside a write)."""
        state, stamp, _ = self._snapshot(db, namespace, layout, arm)
        (a, b, n), written = fold(
            layout,
            self._where(namespace, arm),
            state,
            stamp,
            self._log(db, namespace, arm),
        )
        db.execute(
            "UPDATE metallm_arm_stats SET a = ?, b = ?, count = ?, stamp = ? "
            "WHERE namespace = ? AND arm = ?",
            (encode(a), encode(b), n, written, namespace, arm),
        )
        db.execute(
            "DELETE FROM metallm_arm_log WHERE namespace = ? AND arm = ?",
            (namespace, arm),
        )

    def _folded(
        self,
        db: sqlite3.Connection,
        namespace: str,
        layout: Layout,
        arm: str,
        clock: float,
    ) -> tuple[ArmState, int]:
        """``arm``'s statistics with its log folded in, at ``clock``, and its
        version (inside a transaction)."""
        state, stamp, version = self._snapshot(db, namespace, layout, arm)
        where = self._where(namespace, arm)
        state, written = fold(
            layout, where, state, stamp, self._log(db, namespace, arm)
        )
        return at_clock(layout, where, state, written, clock), version

    def _snapshot(
        self, db: sqlite3.Connection, namespace: str, layout: Layout, arm: str
    ) -> tuple[ArmState, float | None, int]:
        """``arm``'s snapshot ``(A, b, count)`` (logged entries excluded), its
        stamp and its version; ``ValueError`` if it is not in the catalogue."""
        row = db.execute(
            "SELECT a, b, count, version, stamp FROM metallm_arm_stats "
            "WHERE namespace = ? AND arm = ? AND present",
            (namespace, arm),
        ).fetchone()
        if row is None:
            raise removed(namespace, [arm])
        where = self._where(namespace, arm)
        version = self._version(namespace, arm, row[3])
        stamp = self._stamp(where, row[0], row[4])
        return decode_arm(layout, where, *row[:3]), stamp, version

    @staticmethod
    def _log(db: sqlite3.Connection, namespace: str, arm: str) -> list[bytes]:
        rows = db.execute(
            "SELECT entry FROM metallm_arm_log WHERE namespace = ? AND arm = ? "
            "ORDER BY id",
            (namespace, arm),
        ).fetchall()
        return [e for (e,) in rows]

    @staticmethod
    def _where(namespace: str, arm: str) -> str:
        return f"namespace {namespace!r} arm {arm!r}"

    @staticmethod
    def _stamp(where: str, a: object, stamp: object) -> float | None:
        """A snapshot's stamp: none for the initial state, else a clock."""
        if a is None and stamp is None:
            return None
        return check_clock(where, "stamp", stamp)

    @staticmethod
    def _clock(db: sqlite3.Connection, namespace: str) -> float:
        row = db.execute(
            "SELECT clock FROM metallm_clocks WHERE namespace = ?", (namespace,)
        ).fetchone()
        return (
            0.0
            if row is None
            else check_clock(f"namespace {namespace!r}", "clock", row[0])
        )

    @staticmethod
    def _published(db: sqlite3.Connection, namespace: str, key: str) -> bytes | None:
        row = db.execute(
            "SELECT value FROM metallm_published WHERE namespace = ? AND key = ?",
            (namespace, key),
        ).fetchone()
        if row is None:
            return None
        if not isinstance(row[0], bytes):
            raise ValueError(
                f"store: corrupt value {key!r} in namespace {namespace!r}: not bytes"
            )
        return row[0]

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
            _use_wal(db, self.timeout)
            db.execute("PRAGMA synchronous=NORMAL")
            db.executescript(_SCHEMA)
            _add_stamps(db)
            self._db, self._pid = db, os.getpid()
        return self._db


def _use_wal(db: sqlite3.Connection, timeout: float) -> None:
    """Switch the file to WAL, retrying for up to ``timeout`` seconds: SQLite
    answers "database is locked" to this switch without waiting, when another
    process opens the same new file at the same moment."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            db.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as error:
            if "locked" not in str(error) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _add_stamps(db: sqlite3.Connection) -> None:
    """Give a file written before stamps existed the column (its old namespaces
    are refused by their layout; new ones in the same file work)."""
    columns = {row[1] for row in db.execute("PRAGMA table_info(metallm_arm_stats)")}
    if "stamp" not in columns:
        # Another process may add it meanwhile.
        with contextlib.suppress(sqlite3.OperationalError):
            db.execute("ALTER TABLE metallm_arm_stats ADD COLUMN stamp REAL")
