"""Recorded answers keyed by question, found even when a prompt wraps the question.

Rows follow the gsm8k2 format (``prompt`` and ``responses: {model: text}``). Rows
that record only each model's score (``scores: {model: number}``, as llmrouter9's)
are answered with a text that says so plainly: ``[recorded llmrouter9 outcome for
<model>: score 1]`` (``recorded_outcome``), never an invented answer. Lookup
tries the exact text, then whitespace-normalised text, then the longest recorded
question contained in the message (found through an index of question prefixes).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

_TOKEN = re.compile(r"\w+|[^\w\s]")
_PREFIX_CHARS = 48


def count_tokens(text: str) -> int:
    """Deterministic token count: words and single punctuation marks."""
    return len(_TOKEN.findall(text))


def normalise(text: str) -> str:
    """Collapse runs of whitespace to one space and strip the ends."""
    return " ".join(text.split())


def fallback_reply(model: str, message: str) -> str:
    """A short reply derived from a hash of model and message: same input, same text."""
    digest = hashlib.sha256(f"{model}\n{normalise(message)}".encode()).hexdigest()
    number = int(digest[:8], 16) % 1000
    return (
        f"[{model}] No recorded answer for this question (replay {digest[:10]}).\n"
        f"#### {number}"
    )


def recorded_outcome(source: str, model: str, score: float) -> str:
    """The reply for a row without answer texts: the recorded outcome, said plainly
    (``[recorded llmrouter9 outcome for gemma-2-9b-it: score 1]``)."""
    return f"[recorded {source} outcome for {model}: score {score:g}]"


class RecordedAnswers:
    """Each model's recorded response to each known question."""

    def __init__(
        self, rows: Iterable[Mapping[str, Any]], *, source: str = "recorded"
    ) -> None:
        """Index ``rows``; each needs a ``prompt`` string and a ``responses`` dict
        (answer texts) or, lacking those, a ``scores`` dict (then each model's
        reply is ``recorded_outcome(source, model, score)``)."""
        self.source = source
        self._exact: dict[str, dict[str, str]] = {}
        self._normalised: dict[str, dict[str, str]] = {}
        models: dict[str, None] = {}
        for number, row in enumerate(rows, start=1):
            prompt, responses = _check_row(row, number, source)
            self._exact.setdefault(prompt.strip(), responses)
            self._normalised.setdefault(normalise(prompt), responses)
            models.update(dict.fromkeys(responses))
        self._models = tuple(models)
        shortest = min((len(key) for key in self._normalised), default=1)
        self._prefix_len = max(1, min(_PREFIX_CHARS, shortest))
        self._by_prefix: dict[str, list[str]] = {}
        for key in self._normalised:
            self._by_prefix.setdefault(key[: self._prefix_len], []).append(key)

    @classmethod
    def from_jsonl(cls, path: str | Path, source: str | None = None) -> RecordedAnswers:
        """Load a JSON-lines file of rows; ``source`` (default: the name of the
        file's folder, the data set's) names it in recorded-outcome replies."""
        rows: list[dict[str, Any]] = []
        with Path(path).open(encoding="utf-8") as lines:
            for number, line in enumerate(lines, start=1):
                if not line.strip():
                    continue
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as err:
                    msg = f"{path}: line {number} is not valid JSON ({err.msg})"
                    raise ValueError(msg) from err
        return cls(rows, source=source or Path(path).resolve().parent.name)

    @property
    def models(self) -> tuple[str, ...]:
        """Model names with recorded responses, in first-seen order."""
        return self._models

    def __len__(self) -> int:
        """Number of distinct questions."""
        return len(self._normalised)

    def responses_for(self, message: str) -> Mapping[str, str] | None:
        """All models' responses to the question ``message`` holds, or None."""
        exact = self._exact.get(message.strip())
        if exact is not None:
            return exact
        text = normalise(message)
        found = self._normalised.get(text)
        if found is not None:
            return found
        best = ""
        size = self._prefix_len
        for start in range(len(text) - size + 1):
            for key in self._by_prefix.get(text[start : start + size], ()):
                if len(key) > len(best) and text.startswith(key, start):
                    best = key
        return self._normalised[best] if best else None

    def answer(self, model: str, message: str) -> str | None:
        """``model``'s recorded response to the question in ``message``, or None."""
        responses = self.responses_for(message)
        return None if responses is None else responses.get(model)


def _check_row(
    row: Mapping[str, Any], number: int, source: str
) -> tuple[str, dict[str, str]]:
    """Return a row's prompt and responses (recorded outcomes for a row with
    scores only), or raise ValueError naming the row."""
    if not isinstance(row, Mapping):
        raise ValueError(
            f"row {number}: expected a JSON object, got {type(row).__name__}"
        )
    prompt = row.get("prompt")
    responses = row.get("responses")
    if not isinstance(prompt, str) or not prompt.strip():
        raise ValueError(f"row {number}: 'prompt' must be a non-empty string")
    if responses is None and "scores" in row:
        return prompt, _outcome_texts(row["scores"], number, source)
    if not isinstance(responses, Mapping) or not all(
        isinstance(key, str) and isinstance(value, str)
        for key, value in responses.items()
    ):
        raise ValueError(f"row {number}: 'responses' must map model names to strings")
    return prompt, dict(responses)


def _outcome_texts(scores: Any, number: int, source: str) -> dict[str, str]:
    """Each model's recorded-outcome reply, from a row's ``scores``."""
    if not isinstance(scores, Mapping) or not all(
        isinstance(key, str)
        and isinstance(value, (int, float))
        and not isinstance(value, bool)
        for key, value in scores.items()
    ):
        raise ValueError(f"row {number}: 'scores' must map model names to numbers")
    return {
        model: recorded_outcome(source, model, float(score))
        for model, score in scores.items()
    }
