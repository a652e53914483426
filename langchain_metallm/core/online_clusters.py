"""Online clusters: automatic tasks a never-fitted router learns from its live prompts.

A router with no recorded outcomes has nothing to cluster up front, and per-child
ridge on the bare embedding learns too slowly from live feedback: it locks onto
early winners (issue 16). Instead the router clusters the live prompts themselves
as they arrive, coarse to fine and without scores: 8 clusters
(``auto_tasks.QueryClusters``) once 200 prompts were seen, 32 more once 1,000
were. A context is ``[one-hot cluster of each stage, 1]``, a stage's slots zeros
until its clusters exist, so the context dimension never changes and nothing
learned is remapped: each child learns its mean score on the bias, then a
correction per coarse and per fine cluster, shrunk toward it by the ridge.
Prompts are kept (embedding and ``text_style`` numbers, never the text) only
until the last stage is fitted.

A stage is fitted off the request path: the call that reaches its prompt count
hands those prompts to one background thread (``background=True``, as the router
runs it) and routes on the stages already there until the new one is installed.
If a process gives that thread no time (a tight loop of instant calls), calls
made once ``STARVED`` more prompts were seen yield to it briefly (``YIELD``).

A fleet (workers sharing a store) agrees on its clusters through the store
(``share``): a stage is due once the fleet has routed its prompt count (the
outcomes in the store; counting only its own prompts, each of four workers
reached the stages after 800 and 4,000 fleet calls and the fine clusters learned
from a seventh of the outcomes), provided the worker holds ``POINTS_PER_CLUSTER``
prompts per cluster to fit it on; the first to fit it publishes it
(``PolicyStore.publish``: the first writer wins), and every
other worker, later joiners included, adopts the published stage as soon as it
sees it (it checks every ``store.refresh_interval`` seconds, and before fitting a
stage itself) instead of its own. Slot positions never change, so the clusters'
``fingerprint`` (and the store namespace) is fixed by construction and every
worker learns into the same statistics.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import threading
import time
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from langchain_metallm.core.auto_tasks import STYLE_DIM, QueryClusters, text_style

if TYPE_CHECKING:
    from langchain_metallm.core.stores.base import PolicyStore

FloatArray = NDArray[np.float64]

STAGES: tuple[tuple[int, int], ...] = ((8, 200), (32, 1_000))
"""(clusters, live prompts seen before they are fitted) per stage, coarse first."""

POINTS_PER_CLUSTER = 5
"""Own prompts per cluster a worker needs to fit a stage its fleet has reached."""

SEED = 0
"""k-means seed, so one stream of prompts always gives the same clusters."""

ARRAY_NAMES = (
    "online_stages",
    "online_fitted",
    "online_centroids",
    "online_style_mean",
    "online_style_scale",
    "online_seen",
)
"""The arrays of a saved ``OnlineClusters`` (``to_arrays``); the first two are
integers."""

RETRY_AFTER = 5.0
"""Seconds before a stage whose fit or publication failed is tried again."""

STARVED = 20
"""Prompts after which a stage still being fitted is starved: the process's
calls never wait on I/O (instant children, a replay), so the fitting thread
hardly gets the GIL and the stage would not be installed for thousands of calls.
Each later call then yields to the thread for ``YIELD`` seconds at most."""
YIELD = 0.001
"""See ``STARVED``: the call goes on as soon as the stage is installed (getting
the GIL back may take up to the interpreter's switch interval, 5 ms)."""


class OnlineClusters:
    """Coarse-to-fine clusters fitted on the first live prompts, read as one-hot
    context slots (zeros until a stage is fitted) plus a bias.

    ``observe`` feeds prompts as the router sees them; ``contexts`` reads them
    without learning. Thread-safe. ``background``: stages are fitted in a
    background thread (one at a time) instead of inside ``observe``.
    """

    def __init__(
        self,
        embedding_dim: int,
        stages: Sequence[tuple[int, int]] = STAGES,
        *,
        fitted: Sequence[QueryClusters | None] | None = None,
        seen: ArrayLike | None = None,
        background: bool = False,
    ) -> None:
        if isinstance(embedding_dim, bool) or not isinstance(embedding_dim, int):
            raise TypeError(f"embedding_dim: expected an int, got {embedding_dim!r}")
        if embedding_dim < 1:
            raise ValueError(f"embedding_dim: must be >= 1, got {embedding_dim}")
        self.stages = _check_stages(stages)
        self.embedding_dim = embedding_dim
        self._fitted: list[QueryClusters | None] = (
            [None] * len(self.stages) if fitted is None else list(fitted)
        )
        width = embedding_dim + STYLE_DIM
        points = np.zeros((0, width)) if seen is None else np.asarray(seen, float)
        self._check_state(points)
        self._seen: list[FloatArray] = list(points)
        self.background = background
        self._lock = threading.Lock()
        self._idle = threading.Condition(self._lock)
        self._due: dict[int, FloatArray] = {}  # stage -> the prompts to fit it on
        self._fitting = False
        self._fitting_since = 0  # prompts seen when the running fit started
        self._retry_at = -math.inf
        self._shared: SharedStages | None = None

    @property
    def dim(self) -> int:
        """Context dimension: every stage's clusters plus the bias."""
        return sum(k for k, _ in self.stages) + 1

    @property
    def tasks(self) -> tuple[str, ...]:
        """Names of the context slots, ``online-<stage>-<cluster>``."""
        return _slot_names(tuple(self.stages))

    @property
    def fitted(self) -> tuple[QueryClusters | None, ...]:
        """Each stage's clusters, None until enough prompts were seen."""
        with self._lock:
            return tuple(self._fitted)

    @property
    def seen(self) -> FloatArray:
        """Prompts kept for stages still to fit: rows ``[embedding, text_style]``."""
        with self._lock:
            return np.array(self._seen, dtype=np.float64).reshape(
                len(self._seen), self.embedding_dim + STYLE_DIM
            )

    def observe(
        self, vectors: ArrayLike, texts: Sequence[str], fleet_prompts: int = 0
    ) -> None:
        """Count live prompts ``texts`` embedded as ``vectors``; each stage
        whose prompt count is reached, by this worker or by ``fleet_prompts``
        (its fleet's routed prompts) with enough of its own to fit on, is
        fitted on the prompts seen so far (in the background if
        ``background``), or adopted from the store if shared."""
        emb = self._check_vectors(vectors, texts)
        if self._shared is not None:
            self._adopt(self._shared.poll(self._missing()))
        with self._lock:
            if all(stage is not None for stage in self._fitted):
                return
            self._seen.extend(np.hstack([emb, text_style(texts)]))
            if time.monotonic() >= self._retry_at:
                seen = len(self._seen)
                for s, (k, after) in enumerate(self.stages):
                    reached = seen >= after or (
                        fleet_prompts >= after and seen >= POINTS_PER_CLUSTER * k
                    )
                    if self._fitted[s] is None and s not in self._due and reached:
                        self._due[s] = np.array(self._seen)
            start = bool(self._due) and not self._fitting
            if start:
                self._fitting = True
                self._fitting_since = len(self._seen)
            starved = (
                self._fitting
                and not start
                and len(self._seen) >= self._fitting_since + STARVED
            )
        if start and self.background:
            threading.Thread(
                target=self._fit_due, name="metallm-online-clusters", daemon=True
            ).start()
        elif start:
            self._fit_due()
        elif starved and self.background:
            self.wait(YIELD)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no stage is being fitted; False if ``timeout`` passed first."""
        with self._idle:
            return self._idle.wait_for(lambda: not self._fitting, timeout)

    def share(self, store: PolicyStore, namespace: str) -> None:
        """Agree on stages with every worker on ``store`` under ``namespace``
        (see the module docstring): adopt published stages, publish fitted ones."""
        self._shared = SharedStages(store, namespace, self.stages, self.embedding_dim)

    def publish_fitted(self) -> None:
        """Publish this object's fitted stages to its store (a loaded save
        joining a fleet) and adopt the ones only the store has; ``ValueError``,
        before anything is written, if the store holds other clusters."""
        shared = self._shared
        if shared is None:
            raise ValueError("online clusters: not shared (call share() first)")
        fitted = self.fitted
        held = {s: shared.get(s) for s in range(len(self.stages))}
        for s, (mine, theirs) in enumerate(zip(fitted, held.values(), strict=True)):
            if mine is not None and theirs is not None and not same(mine, theirs):
                raise ValueError(shared.conflict(s))
        for s, mine in enumerate(fitted):
            if (
                mine is not None
                and held[s] is None
                and not same(mine, shared.publish(s, mine))
            ):
                raise ValueError(shared.conflict(s))  # another worker was first
        self._adopt({s: c for s, c in held.items() if c is not None})

    def _missing(self) -> list[int]:
        with self._lock:
            return [s for s, stage in enumerate(self._fitted) if stage is None]

    def _adopt(self, found: Mapping[int, QueryClusters]) -> None:
        """Install stages fitted elsewhere (those not installed yet)."""
        if found:
            with self._lock:
                for s, clusters in found.items():
                    self._install(s, clusters)

    def _install(self, s: int, clusters: QueryClusters) -> None:
        """Stage ``s`` from now on, unless one is installed (under the lock);
        prompts are no longer kept once every stage is."""
        if self._fitted[s] is None:
            self._fitted[s] = clusters
        if all(stage is not None for stage in self._fitted):
            self._seen = []
            self._due.clear()

    def _fit_due(self) -> None:
        """Fit (or adopt) the stages due, one at a time, coarse first; the
        only fitter while ``_fitting`` is set."""
        while True:
            with self._lock:
                due = {s: p for s, p in self._due.items() if self._fitted[s] is None}
                if not due:
                    self._due.clear()
                    self._fitting = False
                    self._idle.notify_all()
                    return
                s = min(due)
                points = due[s]
            try:
                clusters = self._fit_stage(s, points)
            except Exception as exc:  # a store or fit failure: route on, retry later
                warnings.warn(
                    f"online clusters: stage {s} not fitted ({type(exc).__name__}: "
                    f"{exc}); routing on the stages there, retrying in "
                    f"{RETRY_AFTER:.0f} s",
                    RuntimeWarning,
                    stacklevel=2,
                )
                with self._lock:
                    self._due.pop(s, None)
                    self._retry_at = time.monotonic() + RETRY_AFTER
                continue
            with self._lock:
                self._install(s, clusters)
                self._due.pop(s, None)

    def _fit_stage(self, s: int, points: FloatArray) -> QueryClusters:
        """Stage ``s`` fitted on ``points``, or the fleet's if one is published."""
        shared = self._shared
        if shared is not None:
            published = shared.get(s)
            if published is not None:
                return published
        clusters = QueryClusters.fit_styles(
            points[:, : self.embedding_dim],
            points[:, self.embedding_dim :],
            clusters=self.stages[s][0],
            seed=SEED + s,
        )
        return clusters if shared is None else shared.publish(s, clusters)

    def contexts(self, vectors: ArrayLike, texts: Sequence[str]) -> FloatArray:
        """Context rows ``[one-hot per stage (zeros if not fitted), 1]``."""
        emb = self._check_vectors(vectors, texts)
        fitted = self.fitted
        style = text_style(texts) if any(f is not None for f in fitted) else None
        rows = np.zeros((len(texts), self.dim))
        start = 0
        for (k, _), clusters in zip(self.stages, fitted, strict=True):
            if clusters is not None and style is not None:
                found = clusters.assign_styles(emb, style)
                rows[np.arange(len(texts)), start + found] = 1.0
            start += k
        rows[:, -1] = 1.0
        return rows

    def task_of(self, context: FloatArray) -> str | None:
        """The finest fitted cluster a context encodes, or None before any."""
        names, start, found = self.tasks, 0, None
        for k, _ in self.stages:
            block = context[start : start + k]
            if block.any():
                found = names[start + int(np.argmax(block))]
            start += k
        return found

    def fingerprint(self) -> str:
        """A short hash of the stages and embedding dimension, fixed by
        construction: slot positions never change as stages are fitted, so
        every worker of a fleet (and every save) names the same statistics."""
        digest = hashlib.sha256(b"online-clusters")
        digest.update(repr((self.stages, self.embedding_dim)).encode("utf-8"))
        return digest.hexdigest()[:16]

    def to_arrays(self) -> dict[str, NDArray[Any]]:
        """Its state as the named arrays of a save (``from_arrays`` reads them),
        once a stage being fitted is installed."""
        self.wait()
        fitted, seen = self.fitted, self.seen
        width = self.embedding_dim + STYLE_DIM
        centroids = np.zeros((self.dim - 1, width))
        mean = np.zeros((len(self.stages), STYLE_DIM))
        scale = np.ones((len(self.stages), STYLE_DIM))
        flags = np.zeros(len(self.stages), dtype=np.int64)
        start = 0
        for s, ((k, _), clusters) in enumerate(zip(self.stages, fitted, strict=True)):
            if clusters is not None:
                centroids[start : start + k] = clusters.centroids
                mean[s], scale[s], flags[s] = (
                    clusters.style_mean,
                    clusters.style_scale,
                    1,
                )
            start += k
        values = (np.array(self.stages, dtype=np.int64), flags, centroids, mean, scale)
        return {**dict(zip(ARRAY_NAMES, values, strict=False)), "online_seen": seen}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, NDArray[Any]]) -> OnlineClusters:
        """The online clusters ``to_arrays`` saved; ``ValueError`` if the arrays
        are missing or do not fit together."""
        if sorted(arrays) != sorted(ARRAY_NAMES):
            raise ValueError(f"online clusters: expected arrays {list(ARRAY_NAMES)}")
        table, flags, centroids, mean, scale, seen = (arrays[k] for k in ARRAY_NAMES)
        if table.ndim != 2 or table.shape[1] != 2 or flags.shape != (len(table),):
            raise ValueError(
                f"online clusters: stages {table.shape} and flags {flags.shape}"
            )
        stages = [(int(k), int(n)) for k, n in table]
        if (
            centroids.ndim != 2
            or centroids.shape[1] <= STYLE_DIM
            or centroids.shape[0] != sum(k for k, _ in stages)
        ):
            raise ValueError(f"online clusters: centroids of shape {centroids.shape}")
        if mean.shape != scale.shape or mean.shape != (len(stages), STYLE_DIM):
            raise ValueError(f"online clusters: style scaling of shape {mean.shape}")
        fitted: list[QueryClusters | None] = []
        start = 0
        for s, (k, _) in enumerate(stages):
            block = centroids[start : start + k]
            fitted.append(QueryClusters(block, mean[s], scale[s]) if flags[s] else None)
            start += k
        dim = int(centroids.shape[1]) - STYLE_DIM
        return cls(dim, stages, fitted=fitted, seen=seen)

    def _check_vectors(self, vectors: ArrayLike, texts: Sequence[str]) -> FloatArray:
        emb = np.asarray(vectors, dtype=np.float64)
        if emb.shape != (len(texts), self.embedding_dim):
            raise ValueError(
                f"embeddings: online clusters read {len(texts)} vectors of "
                f"dimension {self.embedding_dim}, got shape {emb.shape}"
            )
        if not np.all(np.isfinite(emb)):
            raise ValueError("embeddings: contain NaN or infinity")
        return emb

    def _check_state(self, seen: FloatArray) -> None:
        """Refuse fitted stages or kept prompts that do not fit the stages."""
        if len(self._fitted) != len(self.stages):
            raise ValueError(
                f"online clusters: {len(self._fitted)} fitted stages for "
                f"{len(self.stages)} stages"
            )
        for (k, _), clusters in zip(self.stages, self._fitted, strict=True):
            if clusters is not None and (
                clusters.centroids.shape[0] != k
                or clusters.embedding_dim != self.embedding_dim
            ):
                raise ValueError(
                    f"online clusters: a stage of {k} clusters on dimension "
                    f"{self.embedding_dim} got centroids {clusters.centroids.shape}"
                )
        width = self.embedding_dim + STYLE_DIM
        if seen.ndim != 2 or seen.shape[1] != width or not np.all(np.isfinite(seen)):
            raise ValueError(
                f"online clusters: kept prompts must be finite rows of {width} "
                f"numbers, got shape {seen.shape}"
            )


def _check_stages(stages: Sequence[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    """``stages`` as (clusters >= 2, prompts >= clusters) pairs, prompts rising."""
    checked = tuple((int(k), int(n)) for k, n in stages)
    if not checked:
        raise ValueError("stages: at least one (clusters, prompts) stage is needed")
    for (k, n), raw in zip(checked, stages, strict=True):
        if tuple(raw) != (k, n) or k < 2 or n < k:
            raise ValueError(
                f"stages: each needs clusters >= 2 and prompts >= clusters, got {raw}"
            )
    counts = [n for _, n in checked]
    if counts != sorted(counts):
        raise ValueError(f"stages: prompt counts must not decrease, got {counts}")
    return checked


class SharedStages:
    """Online cluster stages published in a store under a namespace: each
    stage is one set-once value (the first worker to publish it wins)."""

    def __init__(
        self,
        store: PolicyStore,
        namespace: str,
        stages: Sequence[tuple[int, int]],
        embedding_dim: int,
    ) -> None:
        self.store = store
        self.namespace = namespace
        self.stages = tuple(stages)
        self.embedding_dim = embedding_dim
        self._checked_at = -math.inf

    def poll(self, missing: Sequence[int]) -> dict[int, QueryClusters]:
        """The published stages among ``missing``, read at most once per
        ``store.refresh_interval`` seconds; a store failure warns and finds
        none (routing goes on with the stages there)."""
        now = time.monotonic()
        if not missing or now - self._checked_at < self.store.refresh_interval:
            return {}
        self._checked_at = now
        try:
            found = {s: self.get(s) for s in missing}
        except Exception as exc:  # any store failure: stay available
            warnings.warn(
                f"online clusters: store check failed, routing on the stages there: "
                f"{exc}",
                RuntimeWarning,
                stacklevel=3,
            )
            return {}
        return {s: c for s, c in found.items() if c is not None}

    def get(self, s: int) -> QueryClusters | None:
        """Stage ``s`` as published, or None."""
        blob = self.store.published(self.namespace, self.key(s))
        return None if blob is None else self.decode(s, blob)

    def publish(self, s: int, clusters: QueryClusters) -> QueryClusters:
        """Publish stage ``s`` unless another worker did first; the stage
        published (this one or the other worker's)."""
        blob = self.store.publish(self.namespace, self.key(s), self.encode(s, clusters))
        return self.decode(s, blob)

    def conflict(self, s: int) -> str:
        """Why a save's online clusters cannot join this store's."""
        return (
            f"store: namespace {self.namespace!r} already holds other online "
            f"clusters (stage {s}: another fleet's live prompts); this save's "
            "statistics mean other clusters, so it cannot be loaded into it: load "
            "it with another router name, or into another store"
        )

    @staticmethod
    def key(s: int) -> str:
        return f"online-clusters-stage-{s}"

    def encode(self, s: int, clusters: QueryClusters) -> bytes:
        """A JSON header line, then the centroids, style mean and style scale
        as little-endian float64 (never pickle)."""
        header = self._header(s)
        values = np.concatenate(
            [clusters.centroids.ravel(), clusters.style_mean, clusters.style_scale]
        )
        body = np.ascontiguousarray(values, dtype="<f8").tobytes()
        return json.dumps(header, sort_keys=True).encode() + b"\n" + body

    def decode(self, s: int, blob: bytes) -> QueryClusters:
        """Stage ``s`` from its published bytes; ``ValueError`` naming the
        namespace and stage if they are corrupt or do not fit these stages."""
        where = f"store: corrupt online clusters for namespace {self.namespace!r}"
        where += f" stage {s}"
        k, width = self.stages[s][0], self.embedding_dim + STYLE_DIM
        try:
            head, _, body = blob.partition(b"\n")
            if json.loads(head) != self._header(s):
                raise ValueError(f"header {head[:200]!r}, expected {self._header(s)}")
            if len(body) != 8 * (k * width + 2 * STYLE_DIM):
                raise ValueError(f"{len(body)} bytes of numbers")
            values = np.frombuffer(body, dtype="<f8").astype(np.float64)
            if not np.all(np.isfinite(values)):
                raise ValueError("NaN or infinity")
            centroids = values[: k * width].reshape(k, width)
            mean = values[k * width : k * width + STYLE_DIM]
            scale = values[k * width + STYLE_DIM :]
            return QueryClusters(centroids, mean, scale)
        except (ValueError, TypeError, UnicodeDecodeError) as exc:
            raise ValueError(f"{where}: {exc}") from exc

    def _header(self, s: int) -> dict[str, int]:
        return {
            "format": 1,
            "stage": s,
            "clusters": self.stages[s][0],
            "embedding_dim": self.embedding_dim,
            "style_dim": STYLE_DIM,
        }


def same(one: QueryClusters, other: QueryClusters) -> bool:
    """Whether two stages are the same clusters (bit for bit)."""
    return all(
        np.array_equal(a, b)
        for a, b in (
            (one.centroids, other.centroids),
            (one.style_mean, other.style_mean),
            (one.style_scale, other.style_scale),
        )
    )


@functools.cache
def _slot_names(stages: tuple[tuple[int, int], ...]) -> tuple[str, ...]:
    """``online-<stage>-<cluster>`` for every slot of ``stages`` (built once)."""
    return tuple(
        f"online-{s}-{i:02d}" for s, (k, _) in enumerate(stages) for i in range(k)
    )
