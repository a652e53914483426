"""``MetaLLMFeedbackHandler``: rewards routed calls from LangChain callbacks.

A routed call leaves a pending decision (``pending``). Its score arrives from
``router.record_feedback``, from this handler scoring the answer in
``on_llm_end``, or from a ``metallm_feedback`` custom event sent by a grader step
in the same chain; the engine turns it into a policy update.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import Any, Protocol
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

FEEDBACK_EVENT = "metallm_feedback"
"""Name of the custom event that carries ``{"run_id": ..., "score": ...}``."""

Scorer = Callable[[Sequence[BaseMessage] | str, Generation], float]
"""Grades one answer: ``(messages or prompt, generation) -> score in [0, 1]``."""


class FeedbackTarget(Protocol):
    """What the handler needs of a router (``MetaLLMRouterChatModel`` is one)."""

    def is_pending(self, run_id: UUID | str) -> bool: ...

    def record_feedback(self, run: Any, score: float) -> float: ...


class MetaLLMFeedbackHandler(BaseCallbackHandler):
    """Callback handler that rewards the router's routing decisions.

    With a ``scorer`` it grades each routed answer in ``on_llm_end``; it also
    applies ``metallm_feedback`` custom events. Only the router's own runs are
    rewarded, never the child model's nested run.
    """

    run_inline = True

    def __init__(
        self,
        router: FeedbackTarget,
        scorer: Scorer | None = None,
        *,
        raise_error: bool = False,
    ) -> None:
        self.router = router
        self.scorer = scorer
        self.raise_error = raise_error
        self._inputs: OrderedDict[UUID, list[BaseMessage] | str] = OrderedDict()
        self._lock = threading.Lock()

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Keep the call's messages until its end, for the scorer."""
        if self.scorer is not None and messages:
            self._remember(run_id, messages[0])

    def on_llm_start(
        self,
        serialized: dict[str, Any],
        prompts: list[str],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Keep the prompt of a completion-style run until its end."""
        if self.scorer is not None and prompts:
            self._remember(run_id, prompts[0])

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Score the router's answer and record the reward."""
        with self._lock:
            inputs = self._inputs.pop(run_id, None)
        if self.scorer is None or inputs is None or not self.router.is_pending(run_id):
            return
        generation = response.generations[0][0]
        if not isinstance(generation, (ChatGeneration, Generation)):
            return
        self.router.record_feedback(run_id, self.scorer(inputs, generation))

    def on_llm_error(
        self, error: BaseException, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Forget the inputs of a failed call."""
        with self._lock:
            self._inputs.pop(run_id, None)

    def on_custom_event(
        self,
        name: str,
        data: Any,
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Apply a ``metallm_feedback`` event: ``{"run_id": ..., "score": ...}``."""
        if name != FEEDBACK_EVENT:
            return
        if not isinstance(data, dict) or not {"run_id", "score"} <= data.keys():
            raise ValueError(
                f"{FEEDBACK_EVENT} event: data must be a dict with 'run_id' and "
                f"'score', got {data!r}"
            )
        self.router.record_feedback(data["run_id"], data["score"])

    def _remember(self, run_id: UUID, inputs: list[BaseMessage] | str) -> None:
        with self._lock:
            self._inputs[run_id] = inputs
            while len(self._inputs) > 10_000:
                self._inputs.popitem(last=False)
