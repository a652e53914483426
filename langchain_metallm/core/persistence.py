"""Saving and loading learned routing state: a JSON manifest and an ``.npz`` of arrays.

A save is a directory holding two files (format version 3):

- ``metallm.json``, the manifest::

    {"format": "langchain-metallm", "format_version": 3,
     "kind": "router" | "policy",
     "arms": [model names, in arm order], "dim": d, "alpha": a, "ridge": l,
     "arrays": {"file": "arrays-<sha256 prefix>.npz", "sha256": "<hex>"},
     "router": {"costs": {name: cost}, "cost_weight": p,           (routers only)
                "unit": u, "dollar_unit": u$ | null,
                "newcomers": [name], "default": name | null,
                "decay": g, "alpha": a | null, "budget": B | null,
                "pacer_weight": p | null, "pacer_level": q | null,
                "embedder": {"name": str, "dimension": e},
                "tasks": [task names] | null,
                "task_kind": "classifier" | "clusters" | "online"}}  (with tasks)

  ``d = e + len(tasks) + 1`` (``features.embedding_dim`` gives ``e``); with
  online clusters ``d = len(tasks) + 1`` (their contexts hold no embedding).

- ``arrays-<sha256 prefix>.npz``: ``A`` (arms, d, d) float64, ``b`` (arms, d)
  float64, ``counts`` (arms,) int64: the policy's sufficient statistics of
  SCORES (cost is weighed only when deciding); with a task classifier also
  ``task_weights`` (e + 1, tasks) float64; with automatic tasks
  ``cluster_centroids`` (tasks, e + 10), ``cluster_style_mean`` and
  ``cluster_style_scale`` (10,) float64 (``auto_tasks.QueryClusters``); with
  online clusters their ``online_*`` arrays (``OnlineClusters.to_arrays``: stages,
  which are fitted, centroids, style scaling and the prompts kept, as embedding
  and style numbers, until the last stage is fitted). It holds
  no object arrays and is read with ``allow_pickle=False``.

``unit`` (the cost that normalises to 1, see ``catalogue``), ``newcomers``,
``default``, ``decay``, ``alpha`` (the setting; the top-level ``alpha`` is the
one resolved), ``budget`` and ``pacer_level`` (the pacer's signed level: its
weight, or the credit an under-spend carries when negative) are what resuming
needs; ``pacer_weight`` is the weight decisions used, for reports. A save without
them (before this release) resumes with the defaults, one without ``pacer_level``
from ``pacer_weight``.

Versions 1 and 2 are still read. Version 1 (before task features) had no
``tasks``; version 2 had no ``task_kind`` (its tasks are a classifier). Both
learned rewards ``score - cost_weight * c_j``: a router save is converted exactly
(``costs.scores_from_rewards``, with its saved costs and cost weight); a bare
policy save is read as it is.

Writes are atomic and the pair stays consistent: the arrays go to a temp file that
is fsynced and renamed to its content-addressed name, then the manifest likewise;
renaming the manifest is the commit point, so a crash at any moment leaves the
previous save or the new one. Files no manifest names are removed after a commit.
One writer per directory at a time.

Not saved: decisions still awaiting feedback (their feedback must go to the router
that made them), the embedding cache and the child models.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import math
import os
import tempfile
import zipfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from langchain_metallm.core.auto_tasks import QueryClusters
from langchain_metallm.core.catalogue import Catalogue
from langchain_metallm.core.costs import (
    cost_vector,
    normalized_costs,
    scores_from_rewards,
)
from langchain_metallm.core.features import TaskClassifier, TaskModel, embedding_dim
from langchain_metallm.core.identity import declared_dimension, embedder_label
from langchain_metallm.core.online_clusters import ARRAY_NAMES, OnlineClusters
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.stores.base import PolicyStore

FORMAT = "langchain-metallm"
FORMAT_VERSION = 3
_READABLE_VERSIONS = (1, 2, 3)
MANIFEST = "metallm.json"
_ARRAYS = ("A", "b", "counts")
_TASK_WEIGHTS = "task_weights"
_CLUSTER_ARRAYS = ("cluster_centroids", "cluster_style_mean", "cluster_style_scale")
_TASK_ARRAYS = (_TASK_WEIGHTS, *_CLUSTER_ARRAYS, *ARRAY_NAMES)
_INTEGER_ARRAYS = ("counts", *ARRAY_NAMES[:2])
SAVED_SETTINGS = (
    "cost_weight",
    "decay",
    "alpha",
    "budget",
    "pacer_weight",
    "pacer_level",
)
"""Router settings a save holds besides its catalogue; passed at load they override."""
_CATALOGUE = ("unit", "dollar_unit", "newcomers", "default")
"""Catalogue entries a save holds besides the costs."""

StrPath = str | os.PathLike[str]


@dataclass(frozen=True)
class RouterState:
    """A loaded router save: its policy and the router settings it was learned with."""

    policy: LinUCBPolicy
    costs: dict[str, float]
    cost_weight: float
    tasks: TaskModel | None
    settings: dict[str, Any]
    """The saved ``unit``, ``newcomers``, ``default``, ``decay``, ``alpha``,
    ``budget``, ``pacer_weight`` and ``pacer_level`` (those the save holds)."""


def save_policy(policy: LinUCBPolicy, path: StrPath) -> None:
    """Save ``policy``'s settings and statistics to the directory ``path``."""
    _save(Path(path), policy, "policy", None, None)


def load_policy(
    path: StrPath, *, store: PolicyStore | None = None, namespace: str = "default"
) -> LinUCBPolicy:
    """The policy saved at ``path`` (by ``save_policy`` or a router's ``save``);
    with a ``store``, bound to ``namespace`` there, whose statistics it replaces."""
    saved = _load(Path(path))[0][0]
    if store is None:
        return saved
    policy = LinUCBPolicy(
        saved.arms,
        saved.dim,
        alpha=saved.alpha,
        ridge=saved.ridge,
        store=store,
        namespace=namespace,
    )
    policy.load_statistics(*saved.statistics())
    return policy


def save_router(
    path: StrPath,
    policy: LinUCBPolicy,
    *,
    catalogue: Catalogue,
    settings: Mapping[str, Any],
    embeddings: object,
    tasks: TaskModel | None,
) -> None:
    """Save a router's learned policy, task classifier or clusters, its
    catalogue and the ``settings`` resuming needs (``SAVED_SETTINGS``)."""
    kept = catalogue.state()
    router = {
        "costs": {name: float(kept["costs"][name]) for name in policy.arms},
        "unit": kept["unit"],
        "dollar_unit": kept["dollar_unit"],
        "newcomers": [n for n in kept["newcomers"] if n in policy.arms],
        "default": kept["default"],
        **{key: settings[key] for key in SAVED_SETTINGS},
        "embedder": {
            "name": embedder_label(embeddings),
            "dimension": embedding_dim(policy.dim, tasks),
        },
        "tasks": None if tasks is None else list(tasks.tasks),
    }
    if tasks is not None:
        router["task_kind"] = _task_kind(tasks)
    _save(Path(path), policy, "router", router, tasks)


def load_router(path: StrPath, embeddings: object) -> RouterState:
    """A router save, refused unless it was made with an embedder of the same name
    (and dimension, when ``embeddings`` declares one)."""
    (policy, task_arrays), manifest = _load(Path(path))
    if manifest["kind"] != "router":
        raise ValueError(
            f"{path}: holds a bare policy save, not a router save; "
            "use persistence.load_policy"
        )
    router = _field(manifest, "router", dict)
    embedder = _field(router, "embedder", dict)
    saved_name = _field(embedder, "name", str)
    saved_dim = _field(embedder, "dimension", int)
    name = embedder_label(embeddings)
    if name != saved_name:
        raise ValueError(
            f"embeddings: the save at {path} was learned on embedder {saved_name!r}, "
            f"not {name!r}; its statistics do not apply to other embeddings"
        )
    declared = declared_dimension(embeddings)
    if declared is not None and declared != saved_dim:
        raise ValueError(
            f"embeddings: the save at {path} has dimension {saved_dim}, "
            f"embedder {name!r} returns {declared}"
        )
    tasks = _task_model(path, router, task_arrays, saved_dim)
    if isinstance(tasks, OnlineClusters) and tasks.dim != policy.dim:
        raise ValueError(
            f"{path}: corrupt save: online clusters of dimension {tasks.dim} do not "
            f"fit the policy dimension {policy.dim}"
        )
    if saved_dim != embedding_dim(policy.dim, tasks):
        n_tasks = 0 if tasks is None else len(tasks.tasks)
        raise ValueError(
            f"{path}: corrupt save: embedder dimension {saved_dim} and "
            f"{n_tasks} tasks do not fit the policy dimension {policy.dim}"
        )
    raw_costs = _field(router, "costs", dict)
    if list(raw_costs) != list(policy.arms):
        raise ValueError(f"{path}: corrupt save: costs do not name the arms in order")
    costs = {str(k): _number(f"costs.{k}", v) for k, v in raw_costs.items()}
    cost_weight = _number("cost_weight", router.get("cost_weight"))
    if manifest["format_version"] < 3 and cost_weight != 0:
        A, b, counts = policy.statistics()  # noqa: N806
        cost = cost_vector(policy.arms, normalized_costs(costs, policy.arms))
        try:
            scores = scores_from_rewards(policy.ridge, A, b, counts, cost, cost_weight)
        except ValueError as exc:
            raise ValueError(f"{path}: cannot convert a format 2 save: {exc}") from exc
        policy.load_statistics(A, scores, counts)
    saved = {
        key: router[key] for key in (*SAVED_SETTINGS, *_CATALOGUE) if key in router
    }
    return RouterState(
        policy=policy,
        costs=costs,
        cost_weight=cost_weight,
        tasks=tasks,
        settings=saved,
    )


def _task_kind(tasks: TaskModel) -> str:
    if isinstance(tasks, OnlineClusters):
        return "online"
    return "classifier" if isinstance(tasks, TaskClassifier) else "clusters"


def _task_model(
    path: StrPath,
    router: dict[str, Any],
    arrays: dict[str, np.ndarray[Any, Any]],
    dim: int,
) -> TaskModel | None:
    """The saved task classifier or clusters, checked against the manifest, or
    None."""
    names, kind = router.get("tasks"), router.get("task_kind", "classifier")
    if names is None and not arrays:
        return None
    expected = {
        "classifier": (_TASK_WEIGHTS,),
        "clusters": _CLUSTER_ARRAYS,
        "online": ARRAY_NAMES,
    }.get(kind, ())
    if not expected or sorted(arrays) != sorted(expected):
        raise ValueError(
            f"{path}: corrupt save: task kind {kind!r} with arrays {sorted(arrays)}"
        )
    if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
        raise ValueError(f"{path}: corrupt save: task names must be a list of str")
    try:
        tasks: TaskModel = (
            TaskClassifier(tuple(names), arrays[_TASK_WEIGHTS])
            if kind == "classifier"
            else OnlineClusters.from_arrays(arrays)
            if kind == "online"
            else QueryClusters(*(arrays[key] for key in _CLUSTER_ARRAYS))
        )
    except ValueError as exc:
        raise ValueError(f"{path}: corrupt save: {exc}") from exc
    if list(tasks.tasks) != names:
        raise ValueError(f"{path}: corrupt save: task names do not match the arrays")
    if tasks.embedding_dim != dim:
        raise ValueError(
            f"{path}: corrupt save: the tasks read dimension "
            f"{tasks.embedding_dim}, the embedder's is {dim}"
        )
    return tasks


def router_settings(
    state: RouterState,
    models: Mapping[str, Any],
    embeddings: object,
    overrides: Mapping[str, Any],
) -> tuple[dict[str, Any], list[str]]:
    """Constructor arguments for a router resuming ``state`` with children
    ``models``, and notes for the user: which children are added (not in the
    save) or dropped, and which saved settings ``overrides`` replace.

    Kept children come first in the saved order, added ones after. The saved
    costs, cost weight, decay, alpha, budget and default child apply unless
    ``overrides`` give them; an added child's cost must be in
    ``overrides["costs"]``, and a cost for a name that is no child is refused.
    """
    if not isinstance(models, Mapping):
        raise TypeError(
            "models: expected a dict of name -> chat model, "
            f"got {type(models).__name__}"
        )
    fixed = sorted(
        set(overrides)
        & {"ridge", "models", "embeddings", "pacer_weight", "pacer_level"}
    )
    if fixed:
        raise TypeError(f"load: {fixed} come from the save or the arguments")
    saved = list(state.policy.arms)
    kept = [name for name in saved if name in models]
    added = [name for name in models if name not in saved]
    removed = [name for name in saved if name not in models]
    if not kept:
        raise ValueError(
            f"models: none of the saved children {saved} is given; nothing to resume"
        )
    given_costs = overrides.get("costs") or {}
    if not isinstance(given_costs, Mapping):
        raise TypeError(
            f"costs: expected a mapping of child name -> cost, got {given_costs!r}"
        )
    unknown = sorted(set(given_costs) - set(models))
    if unknown:
        raise ValueError(f"costs: unknown children {unknown}; have {list(models)}")
    costs = {**{name: state.costs[name] for name in kept}, **given_costs}
    unpriced = [name for name in added if name not in costs]
    if unpriced:
        raise ValueError(
            f"costs: added children {unpriced} need a cost: pass costs={{...}}"
        )
    resumed: dict[str, Any] = {
        "cost_weight": state.cost_weight,
        "alpha": state.settings.get("alpha", state.policy.alpha),
        **{k: state.settings[k] for k in ("decay", "budget") if k in state.settings},
    }
    default = state.settings.get("default")
    if default in models:
        resumed["default_model"] = default
    replaced = sorted(
        key for key in resumed if key in overrides and overrides[key] != resumed[key]
    )
    notes = [
        *(
            [
                f"added children {added} (cold, explored), dropped saved children "
                f"{removed}"
            ]
            if added or removed
            else []
        ),
        *([f"{replaced} given, overriding the saved values"] if replaced else []),
    ]
    settings = {
        **resumed,
        **overrides,
        "models": {name: models[name] for name in [*kept, *added]},
        "costs": {name: costs[name] for name in [*kept, *added]},
        "ridge": state.policy.ridge,
        "embeddings": embeddings,
    }
    return settings, notes


# Writing ----------------------------------------------------------------------


def _save(
    directory: Path,
    policy: LinUCBPolicy,
    kind: str,
    router: dict[str, Any] | None,
    tasks: TaskModel | None,
) -> None:
    A, b, counts = policy.statistics()  # noqa: N806
    arrays_to_save: dict[str, Any] = {"A": A, "b": b, "counts": counts}
    if isinstance(tasks, TaskClassifier):
        arrays_to_save[_TASK_WEIGHTS] = tasks.weights
    elif isinstance(tasks, OnlineClusters):
        arrays_to_save.update(tasks.to_arrays())
    elif tasks is not None:
        arrays_to_save.update(
            zip(
                _CLUSTER_ARRAYS,
                (tasks.centroids, tasks.style_mean, tasks.style_scale),
                strict=True,
            )
        )
    buffer = io.BytesIO()
    np.savez(buffer, **arrays_to_save)
    arrays = buffer.getvalue()
    digest = hashlib.sha256(arrays).hexdigest()
    arrays_name = f"arrays-{digest[:16]}.npz"
    manifest: dict[str, Any] = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "kind": kind,
        "arms": list(policy.arms),
        "dim": policy.dim,
        "alpha": policy.alpha,
        "ridge": policy.ridge,
        "arrays": {"file": arrays_name, "sha256": digest},
    }
    if router is not None:
        manifest["router"] = router
    if directory.exists() and not directory.is_dir():
        raise ValueError(f"path: {directory} is a file; a save is a directory")
    directory.mkdir(parents=True, exist_ok=True)
    _write_atomic(directory, arrays_name, arrays)
    text = json.dumps(manifest, indent=2, allow_nan=False) + "\n"
    _write_atomic(directory, MANIFEST, text.encode("utf-8"))
    _remove_unreferenced(directory, arrays_name)


def _write_atomic(directory: Path, name: str, data: bytes) -> None:
    """Write ``data`` to ``directory/name`` so readers see the old or the new file."""
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=f".{name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, directory / name)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: Path) -> None:
    """Make a rename in ``directory`` durable (POSIX; a no-op where unsupported)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)


def _remove_unreferenced(directory: Path, keep: str) -> None:
    """Delete arrays files the manifest no longer names and stale temp files."""
    for stale in [*directory.glob("arrays-*.npz"), *directory.glob(".*.tmp")]:
        if stale.name != keep:
            with contextlib.suppress(FileNotFoundError):
                stale.unlink()


# Reading ----------------------------------------------------------------------


def _load(
    directory: Path,
) -> tuple[tuple[LinUCBPolicy, dict[str, np.ndarray[Any, Any]]], dict[str, Any]]:
    """The saved policy, its task arrays (by name; empty without tasks), and the
    manifest."""
    manifest = _read_manifest(directory)
    arms = _field(manifest, "arms", list)
    if not all(isinstance(a, str) for a in arms):
        raise ValueError(f"{directory}: corrupt save: arms must be strings")
    policy = LinUCBPolicy(
        arms,
        _field(manifest, "dim", int),
        alpha=_number("alpha", manifest.get("alpha")),
        ridge=_number("ridge", manifest.get("ridge")),
    )
    arrays = _read_arrays(directory, _field(manifest, "arrays", dict))
    try:
        policy.load_statistics(arrays["A"], arrays["b"], arrays["counts"])
    except ValueError as exc:
        raise ValueError(f"{directory}: corrupt save: {exc}") from exc
    tasks = {key: arrays[key] for key in _TASK_ARRAYS if key in arrays}
    return (policy, tasks), manifest


def _read_manifest(directory: Path) -> dict[str, Any]:
    path = directory / MANIFEST
    if not path.is_file():
        raise FileNotFoundError(f"{directory}: no saved state ({MANIFEST} missing)")
    try:
        manifest = json.loads(path.read_bytes().decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{path}: corrupt or truncated manifest ({exc})") from exc
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise ValueError(f"{path}: not a {FORMAT} save")
    version = manifest.get("format_version")
    if version not in _READABLE_VERSIONS:
        raise ValueError(
            f"{path}: format version {version!r}; this version of "
            f"langchain-metallm reads versions {list(_READABLE_VERSIONS)}"
        )
    if manifest.get("kind") not in ("router", "policy"):
        raise ValueError(f"{path}: corrupt save: unknown kind {manifest.get('kind')!r}")
    return manifest


def _read_arrays(
    directory: Path, entry: dict[str, Any]
) -> dict[str, np.ndarray[Any, Any]]:
    name = _field(entry, "file", str)
    if Path(name).name != name or not name.startswith("arrays-"):
        raise ValueError(f"{directory}: corrupt save: bad arrays file name {name!r}")
    try:
        data = (directory / name).read_bytes()
    except FileNotFoundError as exc:
        raise ValueError(f"{directory}: corrupt save: {name} is missing") from exc
    if hashlib.sha256(data).hexdigest() != _field(entry, "sha256", str):
        raise ValueError(
            f"{directory / name}: corrupt or truncated (checksum does not match)"
        )
    try:
        with np.load(io.BytesIO(data), allow_pickle=False) as npz:
            if sorted(set(npz.files) - set(_TASK_ARRAYS)) != sorted(_ARRAYS):
                raise ValueError(f"holds {sorted(npz.files)}, expected {list(_ARRAYS)}")
            arrays = {key: npz[key] for key in npz.files}
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise ValueError(f"{directory / name}: corrupt arrays ({exc})") from exc
    for key, array in arrays.items():
        if array.dtype.kind != ("i" if key in _INTEGER_ARRAYS else "f"):
            raise ValueError(
                f"{directory / name}: corrupt arrays ({key} has dtype {array.dtype})"
            )
    return arrays


def _field(mapping: dict[str, Any], key: str, kind: type[Any]) -> Any:
    value = mapping.get(key)
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(
            f"corrupt save: {key!r} should be {kind.__name__}, got {value!r}"
        )
    return value


def _number(key: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ValueError(f"corrupt save: {key!r} should be a number, got {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"corrupt save: {key!r} is not finite")
    return float(value)
