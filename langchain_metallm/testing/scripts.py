"""Scripted behaviours for the replay server: rules that the next matching requests get.

A rule may answer with given text or tool calls, fail with an HTTP error, send a
malformed body, or wait first (``delay``, alone or with any of those). Rules are
tried in the order added; each serves ``times`` requests (None: every request).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class ScriptedToolCall:
    """One function call the scripted answer makes."""

    name: str
    arguments: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Rule:
    """A scripted behaviour and which requests it applies to."""

    text: str | None = None
    """Answer with this text."""
    tool_calls: Sequence[ScriptedToolCall] = ()
    """Answer with these tool calls (finish reason ``tool_calls``)."""
    status: int | None = None
    """Fail with this HTTP status (4xx/5xx) and an OpenAI-style error body."""
    error_message: str | None = None
    """Message in the error body; a standard one for ``status`` if None."""
    malformed: bool = False
    """Send a body (or stream event) that is not valid JSON."""
    delay: float = 0.0
    """Seconds to wait before answering, e.g. to trigger a client timeout."""
    model: str | None = None
    """Apply only to requests for this model (None: any model)."""
    contains: str | None = None
    """Apply only when the last user message contains this text."""
    times: int | None = 1
    """How many matching requests this rule serves (None: unlimited)."""

    def __post_init__(self) -> None:
        """Reject rules that are contradictory or out of range."""
        outcomes = [
            self.text is not None,
            bool(self.tool_calls),
            self.status is not None,
            self.malformed,
        ]
        if sum(outcomes) > 1:
            raise ValueError(
                "a rule sets at most one of text, tool_calls, status and malformed"
            )
        if self.status is not None and not 400 <= self.status <= 599:
            raise ValueError(
                f"status must be an HTTP error code 400-599, got {self.status}"
            )
        if self.delay < 0:
            raise ValueError(f"delay must be >= 0 seconds, got {self.delay}")
        if self.times is not None and self.times < 1:
            raise ValueError(f"times must be >= 1 or None, got {self.times}")
        if not any(outcomes) and self.delay == 0:
            raise ValueError(
                "a rule needs text, tool_calls, status, malformed or a delay"
            )

    def matches(self, model: str, user_text: str) -> bool:
        """Whether this rule targets a request for ``model`` with ``user_text``."""
        return (self.model is None or self.model == model) and (
            self.contains is None or self.contains in user_text
        )


@dataclass
class _Entry:
    rule: Rule
    remaining: int | None


class RuleTable:
    """Thread-safe ordered rules with per-rule remaining use counts."""

    def __init__(self) -> None:
        """Start empty."""
        self._lock = threading.Lock()
        self._entries: list[_Entry] = []

    def add(self, rule: Rule) -> None:
        """Append ``rule``; earlier rules win when several match."""
        with self._lock:
            self._entries.append(_Entry(rule, rule.times))

    def take(self, model: str, user_text: str) -> Rule | None:
        """The first rule matching the request, using up one of its uses."""
        with self._lock:
            for index, entry in enumerate(self._entries):
                if not entry.rule.matches(model, user_text):
                    continue
                if entry.remaining is not None:
                    entry.remaining -= 1
                    if entry.remaining == 0:
                        del self._entries[index]
                return entry.rule
        return None

    def clear(self) -> None:
        """Drop every rule."""
        with self._lock:
            self._entries.clear()

    def __len__(self) -> int:
        """Number of rules with uses left."""
        with self._lock:
            return len(self._entries)
