"""The decision log: recent ``Decision`` records with the scores observed later.

Each routed call adds its completed ``Decision``; feedback for the child that
answered, and the scores of children explored in the background, are added to
it as they arrive. The log is bounded (the oldest record goes first), holds no
prompt text (a decision carries only a hash of it), and is what
``evaluation.evaluate`` estimates other settings from and what a report reads.
``to_jsonl`` writes one JSON object per line; ``read_jsonl`` reads them back.
"""

from __future__ import annotations

import json
import math
import threading
from collections import OrderedDict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from langchain_metallm.core.decision import Decision

DEFAULT_SIZE = 10_000
"""Records kept by default."""


@dataclass
class LoggedDecision:
    """One decision and what was observed after it."""

    decision: Decision
    """The completed decision (who answered, its cost)."""
    scores: dict[str, float] = field(default_factory=dict)
    """Observed score per child: the answering child's and every explored one's."""
    costs: dict[str, float] = field(default_factory=dict)
    """Normalised cost per child called: the answer's and every explored one's."""
    errors: dict[str, str] = field(default_factory=dict)
    """Explored children whose call or scorer failed, with why."""

    def to_dict(self) -> dict[str, Any]:
        """A JSON-ready dict: the decision's fields, then ``scores``, ``costs``
        and ``errors`` (NaN written as null)."""
        record = self.decision.to_dict()
        record.update(scores=self.scores, costs=self.costs, errors=self.errors)
        finite: dict[str, Any] = _finite(record)
        return finite

    @classmethod
    def from_dict(cls, record: dict[str, Any]) -> LoggedDecision:
        """The record ``to_dict`` wrote."""
        data = dict(record)
        data.pop("probe", None)  # logs written before forced probes went (issue 22)
        logged = {k: data.pop(k, {}) for k in ("scores", "costs", "errors")}
        for key in ("predicted", "penalty", "bonus", "value"):
            data[key] = {k: math.nan if v is None else v for k, v in data[key].items()}
        for key in ("order", "cooldown", "explored"):
            data[key] = tuple(data.get(key, ()))
        try:
            decision = Decision(**data)
        except TypeError as error:
            raise ValueError(f"decision log: not a decision record ({error})") from None
        return cls(decision, **logged)


class DecisionLog:
    """The last ``size`` logged decisions by run id; thread-safe."""

    def __init__(self, size: int = DEFAULT_SIZE) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < 1:
            raise ValueError(
                f"decision_log_size: must be an integer >= 1, got {size!r}"
            )
        self.size = size
        self._records: OrderedDict[str, LoggedDecision] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        with self._lock:
            return len(self._records)

    def __iter__(self) -> Iterator[LoggedDecision]:
        return iter(self.records())

    def add(self, decision: Decision) -> None:
        """Log a completed decision (its answer's cost as the first cost)."""
        logged = LoggedDecision(decision)
        if decision.answered is not None and decision.cost is not None:
            logged.costs[decision.answered] = decision.cost
        with self._lock:
            self._records[decision.run_id] = logged
            while len(self._records) > self.size:
                self._records.popitem(last=False)

    def observe(
        self,
        run_id: str,
        child: str,
        *,
        score: float | None = None,
        cost: float | None = None,
        error: str | None = None,
    ) -> None:
        """Note a score, cost or failure of ``child`` on ``run_id`` (ignored once
        the record has left the log)."""
        with self._lock:
            logged = self._records.get(run_id)
            if logged is None:
                return
            if score is not None:
                logged.scores[child] = score
            if cost is not None:
                logged.costs[child] = cost
            if error is not None:
                logged.errors[child] = error

    def records(self) -> list[LoggedDecision]:
        """The logged decisions, oldest first."""
        with self._lock:
            return list(self._records.values())

    def to_jsonl(self, path: str | Path) -> None:
        """Write every record as one JSON line to ``path``."""
        lines = [json.dumps(r.to_dict(), allow_nan=False) for r in self.records()]
        Path(path).write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")

    @classmethod
    def read_jsonl(cls, path: str | Path, size: int | None = None) -> DecisionLog:
        """A log of the records ``to_jsonl`` wrote (the last ``size`` of them)."""
        records = []
        text = Path(path).read_text(encoding="utf-8")
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                records.append(LoggedDecision.from_dict(json.loads(line)))
            except (json.JSONDecodeError, ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}: line {number}: {error}") from None
        log = cls(size or max(len(records), 1))
        with log._lock:
            for logged in records[-log.size :]:
                log._records[logged.decision.run_id] = logged
        return log


def _finite(value: Any) -> Any:
    """``value`` with every NaN float replaced by None (JSON has no NaN)."""
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value
