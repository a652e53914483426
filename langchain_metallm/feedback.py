"""``MetaLLMFeedbackHandler``: rewards routed calls from LangChain callbacks.

A routed call leaves a pending decision (``pending``). Its score arrives from
``router.record_feedback``, from this handler scoring the answer in
``on_llm_end``, or from a ``metallm_feedback`` custom event sent by a grader step
in the same chain; the engine turns it into a policy update.
"""

from __future__ import annotations

import inspect
import threading
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from contextvars import ContextVar
from typing import Any, Protocol, cast
from uuid import UUID

from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import BaseMessage
from langchain_core.outputs import ChatGeneration, Generation, LLMResult

from langchain_metallm.core.checks import check_score
from langchain_metallm.core.pending import FeedbackError
from langchain_metallm.run_credit import RunTree

FEEDBACK_EVENT = "metallm_feedback"
"""Name of the custom event that carries ``{"run_id": ..., "score": ...}``."""

Scorer = Callable[[Sequence[BaseMessage] | str, Generation], float]
"""Grades one answer: ``(messages or prompt, generation) -> score in [0, 1]``."""
AsyncScorer = Callable[[Sequence[BaseMessage] | str, Generation], Awaitable[float]]
"""An ``async def`` ``Scorer``."""
RunScorer = Callable[[Any, Any], float]
"""Grades a whole root run: ``(its inputs, its outputs) -> score in [0, 1]``."""


class FeedbackTarget(Protocol):
    """What the handler needs of a router (``MetaLLMRouterChatModel`` is one)."""

    def is_pending(self, run_id: UUID | str) -> bool: ...

    def record_feedback(
        self, run: Any, score: float, *, strict: bool | None = None
    ) -> float: ...

    async def arecord_feedback(self, run: Any, score: float) -> float: ...

    def note_feedback_error(self, run_id: UUID | str | None, problem: str) -> None: ...


_IN_SCORER: ContextVar[bool] = ContextVar("metallm_in_scorer", default=False)
"""True while a scorer runs: calls it makes (a judge model) are not scored."""


def _is_async(scorer: Scorer | AsyncScorer | None) -> bool:
    call = getattr(scorer, "__call__", None)  # noqa: B004 - async callable objects
    return inspect.iscoroutinefunction(scorer) or inspect.iscoroutinefunction(call)


class MetaLLMFeedbackHandler(BaseCallbackHandler):
    """Callback handler that rewards the router's routing decisions.

    With a ``scorer`` (sync, or ``async def``) it grades each routed answer in
    ``on_llm_end``; it also applies ``metallm_feedback`` custom events. Whole
    runs: ``record_feedback(run_id, score)`` credits every routed call made under
    a run it saw, and a ``run_scorer`` grades each root run at its end. Only the
    router's own runs are rewarded, never the child model's nested run, nor calls
    made inside the scorer (a judge model). A scorer that raises or returns
    anything but a number in [0, 1], and a malformed event, is counted in
    ``router.stats()["scorer_errors"]`` and logged naming the run; with
    ``raise_error=True`` it also raises into the call.
    """

    run_inline = True

    def __new__(
        cls,
        router: FeedbackTarget,
        scorer: Scorer | AsyncScorer | None = None,
        **kwargs: Any,
    ) -> MetaLLMFeedbackHandler:
        """An async scorer gets the handler variant whose ``on_llm_end`` awaits it."""
        if cls is MetaLLMFeedbackHandler and _is_async(scorer):
            return super().__new__(_AsyncScoringHandler)
        return super().__new__(cls)

    def __init__(
        self,
        router: FeedbackTarget,
        scorer: Scorer | AsyncScorer | None = None,
        *,
        run_scorer: RunScorer | None = None,
        raise_error: bool = False,
    ) -> None:
        self.router = router
        self.scorer = scorer
        self.run_scorer = run_scorer
        self.raise_error = raise_error
        self._inputs: OrderedDict[UUID, list[BaseMessage] | str] = OrderedDict()
        self._root_inputs: dict[UUID, Any] = {}
        self._runs = RunTree()
        self._lock = threading.Lock()

    def record_feedback(self, run_id: UUID | str, score: float) -> list[float]:
        """Reward every routed call made under ``run_id`` (a chain's or agent's
        run, at any depth) that still awaits feedback, each with ``score``; the
        rewards learned, one per call (see ``run_credit`` for the split)."""
        checked = check_score(score)
        root = run_id if isinstance(run_id, UUID) else UUID(str(run_id))
        if not self._runs.knows(root):
            raise FeedbackError(
                f"run_id {root}: unknown to this handler (was it run with the "
                "handler in its callbacks?); feedback not applied"
            )
        learned = []
        for routed in self._runs.take_routed_under(root):
            try:
                learned.append(
                    self.router.record_feedback(routed, checked, strict=True)
                )
            except FeedbackError:
                continue  # rewarded meanwhile by another path: not lost, not twice
        return learned

    def on_chain_start(
        self,
        serialized: dict[str, Any] | None,
        inputs: Any,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember where the run sits (and a root's inputs, for ``run_scorer``)."""
        if _IN_SCORER.get():
            return
        self._runs.started(run_id, parent_run_id)
        if parent_run_id is None and self.run_scorer is not None:
            with self._lock:
                self._root_inputs[run_id] = inputs

    def on_chain_end(self, outputs: Any, *, run_id: UUID, **kwargs: Any) -> None:
        """At a root run's end, grade it with ``run_scorer`` and credit its calls."""
        with self._lock:
            inputs = self._root_inputs.pop(run_id, None)
        if self.run_scorer is None or not self._runs.is_root(run_id):
            return
        run_scorer = self.run_scorer
        score = self._score(run_id, "run_scorer", lambda: run_scorer(inputs, outputs))
        if score is not None:
            self.record_feedback(run_id, score)

    def on_chain_error(
        self, error: BaseException, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Forget a failed root run's inputs."""
        with self._lock:
            self._root_inputs.pop(run_id, None)

    def on_tool_start(
        self,
        serialized: dict[str, Any],
        input_str: str,
        *,
        run_id: UUID,
        parent_run_id: UUID | None = None,
        **kwargs: Any,
    ) -> None:
        """Remember where the tool run sits."""
        if not _IN_SCORER.get():
            self._runs.started(run_id, parent_run_id)

    def on_chat_model_start(
        self,
        serialized: dict[str, Any],
        messages: list[list[BaseMessage]],
        *,
        run_id: UUID,
        **kwargs: Any,
    ) -> None:
        """Keep the call's messages until its end, for the scorer."""
        if _IN_SCORER.get():
            return
        self._runs.started(run_id, kwargs.get("parent_run_id"))
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
        if _IN_SCORER.get():
            return
        self._runs.started(run_id, kwargs.get("parent_run_id"))
        if self.scorer is not None and prompts:
            self._remember(run_id, prompts[0])

    def on_llm_end(self, response: LLMResult, *, run_id: UUID, **kwargs: Any) -> None:
        """Score the router's answer and record the reward."""
        to_score = self._to_score(response, run_id)
        if to_score is None:
            return
        scorer = cast(Scorer, self.scorer)
        score = self._score(run_id, "scorer", lambda: scorer(*to_score))
        if score is not None:
            self.router.record_feedback(run_id, score)

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
            self._fail(
                data.get("run_id") if isinstance(data, dict) else None,
                f"{FEEDBACK_EVENT} event: data must be a dict with 'run_id' and "
                f"'score', got {data!r}",
            )
            return
        self.router.record_feedback(data["run_id"], data["score"])

    def _to_score(
        self, response: LLMResult, run_id: UUID
    ) -> tuple[list[BaseMessage] | str, Generation] | None:
        """The inputs and answer of a routed run awaiting a score, else None."""
        with self._lock:
            inputs = self._inputs.pop(run_id, None)
        if self.router.is_pending(run_id):
            self._runs.routed(run_id)
        if self.scorer is None or inputs is None or not self.router.is_pending(run_id):
            return None
        generation = response.generations[0][0]
        if not isinstance(generation, (ChatGeneration, Generation)):
            return None
        return inputs, generation

    def _score(
        self, run_id: UUID, what: str, grade: Callable[[], float]
    ) -> float | None:
        """Run a scorer with its own calls left unscored; a failure or an invalid
        score is reported (``_fail``) and gives None."""
        token = _IN_SCORER.set(True)
        try:
            return check_score(grade())
        except Exception as error:
            self._fail(run_id, f"{what} failed: {type(error).__name__}: {error}")
            return None
        finally:
            _IN_SCORER.reset(token)

    def _fail(self, run_id: UUID | str | None, problem: str) -> None:
        """Count and log feedback that could not be given; raise if asked to."""
        self.router.note_feedback_error(run_id, problem)
        if self.raise_error:
            raise FeedbackError(f"run_id {run_id}: {problem}")

    def _remember(self, run_id: UUID, inputs: list[BaseMessage] | str) -> None:
        with self._lock:
            self._inputs[run_id] = inputs
            while len(self._inputs) > 10_000:
                self._inputs.popitem(last=False)


class _AsyncScoringHandler(MetaLLMFeedbackHandler):
    """``MetaLLMFeedbackHandler`` for an ``async def`` scorer: LangChain awaits
    ``on_llm_end`` in async runs and runs it to completion in sync ones."""

    async def on_llm_end(  # type: ignore[override]
        self, response: LLMResult, *, run_id: UUID, **kwargs: Any
    ) -> None:
        """Await the scorer on the router's answer and record the reward."""
        to_score = self._to_score(response, run_id)
        if to_score is None:
            return
        token = _IN_SCORER.set(True)
        try:
            score = check_score(await cast(AsyncScorer, self.scorer)(*to_score))
        except Exception as error:
            self._fail(run_id, f"scorer failed: {type(error).__name__}: {error}")
            return
        finally:
            _IN_SCORER.reset(token)
        await self.router.arecord_feedback(run_id, score)
