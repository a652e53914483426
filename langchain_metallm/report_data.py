"""What a report shows, as plain values (``ReportData``): read from a live router, or
from a save and its decision log without loading a model; LangChain-free."""

from __future__ import annotations

import json
import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from langchain_metallm.core.decision_log import DecisionLog, LoggedDecision
from langchain_metallm.core.persistence import StrPath, load_router
from langchain_metallm.core.policy import LinUCBPolicy
from langchain_metallm.core.router import RouterCore
from langchain_metallm.task_table import TaskTable, task_table


@dataclass(frozen=True)
class ReportData:
    """Everything a report shows, as plain values."""

    name: str
    source: str
    """Where it was read: a live router, or a save and a log."""
    children: tuple[str, ...]
    costs: Mapping[str, float]
    """Each child's normalised fixed cost (NaN for a child only the log names)."""
    learned: Mapping[str, int]
    """Outcomes the policy learned per child (0 without a policy)."""
    mode: str
    cost_weight: float
    """The cost weight decisions use now."""
    budget: float | None
    settings: Mapping[str, Any]
    """Settings shown as they are (alpha, decay, exploration, ...)."""
    stats: Mapping[str, float] | None
    """The router's ``stats()`` counters (None from a save: they are not saved)."""
    records: tuple[LoggedDecision, ...]
    tasks: TaskTable
    created: float


def report_data(
    router: object, *, stats: Mapping[str, float] | None = None
) -> ReportData:
    """The report of a live router: a chat model (its ``core`` and ``stats()``)
    or a ``RouterCore`` (its feedback counters)."""
    core = router if isinstance(router, RouterCore) else getattr(router, "core", None)
    if not isinstance(core, RouterCore):
        raise TypeError(
            f"router: expected a MetaLLMRouterChatModel or RouterCore, got "
            f"{type(router).__name__}"
        )
    if stats is None:
        counters = getattr(router, "stats", None)
        stats = counters() if callable(counters) else core.pending.stats()
    catalogue, policy, pacer = core.catalogue, core.policy, core.pacer
    records = tuple(core.log.records())
    children = _children(catalogue.names, records)
    shadow = catalogue.shadow
    return ReportData(
        name=core.name,
        source="live router",
        children=children,
        costs={n: catalogue.normalized.get(n, math.nan) for n in children},
        learned=_learned(policy, children),
        mode="live" if shadow is None else f"shadow: {shadow} answers every call",
        cost_weight=core.cost_weight,
        budget=None if pacer is None else pacer.budget,
        settings={
            "cost weight setting": core.settings.cost_weight,
            "alpha": None if policy is None else policy.alpha,
            "decay": core.settings.decay,
            "explore rate": core.settings.explore_rate,
            "explore budget": core.settings.explore_budget,
            "default child": catalogue.default,
            "cost mode": catalogue.cost_mode,
            "decision log size": core.log.size,
        },
        stats=dict(stats),
        records=records,
        tasks=task_table(policy, core.task_classifier, records, children),
        created=time.time(),
    )


def saved_report_data(
    state_dir: StrPath, decisions: StrPath | DecisionLog | None = None
) -> ReportData:
    """The report of a save (``MetaLLMRouterChatModel.save``) and, if given, a
    decision log (``DecisionLog.to_jsonl``); no embedding model is loaded."""
    path = Path(state_dir)
    try:
        manifest = json.loads((path / "metallm.json").read_text(encoding="utf-8"))
        embedder = str(manifest["router"]["embedder"]["name"])
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise ValueError(f"{path}: not a router save ({error})") from None
    state = load_router(path, _SavedEmbedder(embedder))
    log = (
        decisions
        if isinstance(decisions, DecisionLog)
        else DecisionLog.read_jsonl(Path(decisions))
        if decisions is not None
        else None
    )
    records = () if log is None else tuple(log.records())
    policy, saved = state.policy, state.settings
    children = _children(policy.arms, records)
    unit = float(saved.get("unit") or max(state.costs.values()))
    budget = saved.get("budget")
    pacer_weight = saved.get("pacer_weight")
    last = records[-1].decision if records else None
    mode = (
        "unknown (a save does not record it; no decision log given)"
        if last is None
        else f"shadow: {last.answered} answers every call (from the decision log)"
        if last.shadow
        else "live (from the decision log)"
    )
    return ReportData(
        name=path.name,
        source=f"save {path}"
        + ("" if decisions is None else f" and decision log {decisions}"),
        children=children,
        costs={n: state.costs.get(n, math.nan) / unit for n in children},
        learned=_learned(policy, children),
        mode=mode,
        cost_weight=float(
            pacer_weight
            if budget is not None and pacer_weight is not None
            else state.cost_weight
        ),
        budget=None if budget is None else float(budget),
        settings={
            "cost weight setting": state.cost_weight,
            "alpha": policy.alpha,
            "decay": saved.get("decay"),
            "default child": saved.get("default"),
            "embedder": embedder,
        },
        stats=None,
        records=records,
        tasks=task_table(policy, state.tasks, records, children),
        created=time.time(),
    )


class _SavedEmbedder:
    """Stands for the embedder a save names, so it is read without loading one."""

    def __init__(self, name: str) -> None:
        self.name = name


def _children(
    names: Iterable[str], records: Sequence[LoggedDecision]
) -> tuple[str, ...]:
    """``names``, then any other child the log names (removed since)."""
    found = dict.fromkeys(names)
    for logged in records:
        decision = logged.decision
        for name in (decision.answered, decision.chosen, *decision.explored):
            if name is not None:
                found.setdefault(name)
    return tuple(found)


def _learned(policy: LinUCBPolicy | None, children: Sequence[str]) -> dict[str, int]:
    """Outcomes the policy learned per child, 0 for a child it has no arm for."""
    counts = (
        {}
        if policy is None
        else dict(zip(policy.arms, policy.counts.tolist(), strict=True))
    )
    return {name: int(counts.get(name, 0)) for name in children}
