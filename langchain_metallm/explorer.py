"""Background exploration calls: the other children answer too, off the answer's path.

When the core's decision names ``explored`` children (``core.exploration``), each
is called in a worker thread after the router has answered, with the same
messages and options as the answering child. Its run is an ordinary child run
under the router's run in tracing, tagged ``metallm:exploration``; its answer is
never returned to the caller. ``scorer(messages, generation)`` (sync or async)
grades it, and the core learns the score (``RouterCore.learn_explored``). A
child or scorer that fails is counted (``stats()["explore_errors"]``) and logged,
and never touches the answer. ``wait`` waits for the calls in flight.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from concurrent.futures import wait as wait_futures
from typing import Any

import numpy as np
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration
from langchain_core.runnables.config import merge_configs

from langchain_metallm.core.decision import Decision
from langchain_metallm.core.router import RouterCore
from langchain_metallm.routed_call import CallOptions, RoutedCall, bound_child

EXPLORATION_TAG = "metallm:exploration"
"""Tag on every background exploration run."""
WORKERS = 4
"""Background calls that run at once."""

_logger = logging.getLogger(__name__)
Scorer = Callable[[Any, ChatGeneration], Any]


class Explorer:
    """Runs the background calls of explored children for one router's core."""

    def __init__(self, core: RouterCore, scorer: object) -> None:
        self.core = core
        self.scorer = check_scorer(scorer, core.settings.explore_rate)
        self._pool: ThreadPoolExecutor | None = None
        self._in_flight: set[Future[None]] = set()
        self._lock = threading.Lock()

    def start(
        self,
        decision: Decision,
        call: RoutedCall,
        options: CallOptions,
        context: np.ndarray[Any, Any] | None,
    ) -> None:
        """Call each explored child of ``decision`` (but the one that answered)
        in the background; returns at once."""
        children = [c for c in decision.explored if c != decision.answered]
        if not children or context is None:
            return
        if self.scorer is None:  # refused at construction; a scorer set to None
            for child in children:
                self.core.explore_failed(decision.run_id, child, "no scorer")
            return
        with self._lock:
            if self._pool is None:
                self._pool = ThreadPoolExecutor(WORKERS, "metallm-explore")
            futures = [
                self._pool.submit(
                    self._explore, decision.run_id, child, call, options, context
                )
                for child in children
            ]
            self._in_flight.update(futures)
        for future in futures:  # a done future calls back at once: not under the lock
            future.add_done_callback(self._done)

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background calls in flight; True if none is left."""
        with self._lock:
            pending = set(self._in_flight)
        if not pending:
            return True
        _, left = wait_futures(pending, timeout=timeout)
        return not left

    def _done(self, future: Future[None]) -> None:
        with self._lock:
            self._in_flight.discard(future)

    def _explore(
        self,
        run_id: str,
        child: str,
        call: RoutedCall,
        options: CallOptions,
        context: np.ndarray[Any, Any],
    ) -> None:
        """One background call: answer, score, learn; failures are counted."""
        try:
            model, child_options = bound_child(
                child, options.models[child], call, options.max_tokens
            )
            config = merge_configs(
                child_options.pop("config"),
                {"tags": [EXPLORATION_TAG], "metadata": {"metallm_exploration": True}},
            )
            message = model.invoke(call.messages, config=config, **child_options)
            generation = ChatGeneration(message=_as_ai(message))
            score = self._score(call.messages, generation)
            usage = generation.message.usage_metadata  # type: ignore[attr-defined]
            self.core.learn_explored(run_id, child, context, score, usage)
        except Exception as error:  # a background call never touches the answer
            problem = f"{type(error).__name__}: {error}"
            _logger.warning("metallm exploration of %s failed: %s", child, problem)
            self.core.explore_failed(run_id, child, problem)

    def _score(self, messages: list[BaseMessage], generation: ChatGeneration) -> Any:
        """The scorer's grade of ``generation`` (an async scorer is run here)."""
        scorer = self.scorer
        assert scorer is not None
        result = scorer(messages, generation)
        if inspect.isawaitable(result):
            return asyncio.run(_awaited(result))
        return result


def check_scorer(scorer: object, explore_rate: float) -> Scorer | None:
    """``scorer`` if it is callable (or None while ``explore_rate`` is 0)."""
    if scorer is not None and not callable(scorer):
        raise TypeError(
            f"scorer: expected (messages, generation) -> score, got {scorer!r}"
        )
    if scorer is None and explore_rate > 0:
        raise ValueError(
            "explore_rate: explored answers need a scorer to grade them; pass "
            "scorer=(messages, generation) -> score in [0, 1]"
        )
    return scorer


async def _awaited(result: Any) -> Any:
    return await result


def _as_ai(message: BaseMessage) -> AIMessage:
    """``message`` as an AIMessage (structured-output runnables may return one)."""
    return message if isinstance(message, AIMessage) else AIMessage(message.content)
