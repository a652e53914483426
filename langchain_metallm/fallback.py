"""Provider failure fallback: call children in UCB order until one answers.

The chosen arm is tried first, then (with fallback on) every other arm from best to
worst upper confidence bound. Each attempt is recorded as ``{"model": name,
"error": None}`` or ``{"model": name, "error": "Type: message"}``. When no arm
answers, the last failure propagates unchanged; each later attempt runs while the
earlier failure is being handled, so Python chains them as implicit context.
A stream counts as answered once its first chunk arrives: later failures propagate.
"""

from __future__ import annotations

from collections.abc import (
    AsyncIterator,
    Awaitable,
    Callable,
    Iterable,
    Iterator,
)
from itertools import chain, islice
from typing import TypeVar

import numpy as np
from numpy.typing import NDArray

from langchain_metallm.policy import LinUCBPolicy, RouteDecision

T = TypeVar("T")
Attempt = dict[str, str | None]
"""One child call: ``{"model": name, "error": None or "Type: message"}``."""


def ranked_decisions(
    policy: LinUCBPolicy, decision: RouteDecision, context: NDArray[np.float64]
) -> Iterator[RouteDecision]:
    """``decision``, then the other arms from best to worst UCB, each with its own
    expected reward (computed only if a fallback is needed)."""
    yield decision
    mean, _ = policy.predict(context[None])
    for arm in decision.ranking():
        if arm != decision.arm:
            yield RouteDecision(
                arm=arm,
                model=policy.arms[arm],
                expected_reward=float(mean[0, arm]),
                ucb=decision.ucbs[arm],
                ucbs=decision.ucbs,
            )


def call_in_order(
    candidates: Iterable[RouteDecision],
    call: Callable[[RouteDecision], T],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[RouteDecision, T, list[Attempt]]:
    """The first candidate whose ``call`` returns, its result, and every attempt
    (each also given to ``on_attempt`` as it ends, even if all fail)."""
    pending = iter(candidates)
    attempts = _Attempts(on_attempt)

    def attempt(decision: RouteDecision) -> tuple[RouteDecision, T]:
        try:
            result = call(decision)
        except Exception as error:
            attempts.add(_failed(decision, error))
            following = next(pending, None) if fallback else None
            if following is None:
                raise
            return attempt(following)
        attempts.add(_answered(decision))
        return decision, result

    decision, result = attempt(_first(pending))
    return decision, result, attempts.made


async def acall_in_order(
    candidates: Iterable[RouteDecision],
    call: Callable[[RouteDecision], Awaitable[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[RouteDecision, T, list[Attempt]]:
    """Async twin of ``call_in_order``."""
    pending = iter(candidates)
    attempts = _Attempts(on_attempt)

    async def attempt(decision: RouteDecision) -> tuple[RouteDecision, T]:
        try:
            result = await call(decision)
        except Exception as error:
            attempts.add(_failed(decision, error))
            following = next(pending, None) if fallback else None
            if following is None:
                raise
            return await attempt(following)
        attempts.add(_answered(decision))
        return decision, result

    decision, result = await attempt(_first(pending))
    return decision, result, attempts.made


def stream_in_order(
    candidates: Iterable[RouteDecision],
    open_stream: Callable[[RouteDecision], Iterable[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[RouteDecision, Iterator[T], list[Attempt]]:
    """``call_in_order`` for streams: a child that fails before its first chunk
    is replaced; the returned stream starts with that first chunk."""

    def start(decision: RouteDecision) -> Iterator[T]:
        stream = iter(open_stream(decision))
        head = list(islice(stream, 1))
        return chain(head, stream)

    return call_in_order(candidates, start, fallback=fallback, on_attempt=on_attempt)


async def astream_in_order(
    candidates: Iterable[RouteDecision],
    open_stream: Callable[[RouteDecision], AsyncIterator[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[RouteDecision, AsyncIterator[T], list[Attempt]]:
    """Async twin of ``stream_in_order``."""

    async def start(decision: RouteDecision) -> AsyncIterator[T]:
        stream = open_stream(decision)
        try:
            head = [await anext(stream)]
        except StopAsyncIteration:
            head = []
        return _prepend(head, stream)

    return await acall_in_order(
        candidates, start, fallback=fallback, on_attempt=on_attempt
    )


async def _prepend(head: list[T], rest: AsyncIterator[T]) -> AsyncIterator[T]:
    for item in head:
        yield item
    async for item in rest:
        yield item


class _Attempts:
    """The attempts of one call, each also reported to an observer."""

    def __init__(self, observer: Callable[[Attempt], None] | None) -> None:
        self.made: list[Attempt] = []
        self._observer = observer

    def add(self, attempt: Attempt) -> None:
        self.made.append(attempt)
        if self._observer is not None:
            self._observer(attempt)


def _first(pending: Iterator[RouteDecision]) -> RouteDecision:
    first = next(pending, None)
    if first is None:
        raise ValueError("fallback: no candidate arm to call")
    return first


def _failed(decision: RouteDecision, error: Exception) -> Attempt:
    return {"model": decision.model, "error": f"{type(error).__name__}: {error}"}


def _answered(decision: RouteDecision) -> Attempt:
    return {"model": decision.model, "error": None}
