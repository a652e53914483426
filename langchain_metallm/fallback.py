"""Provider failure fallback: call children in the decision's order until one answers.

The chosen child is tried first, then (with fallback on) the others in
``Decision.order`` (best to worst decision value, cooling children last). Each
attempt is recorded as ``{"model": name, "error": None}`` or ``{"model": name,
"error": "Type: message"}``. When no child answers, the last failure propagates
unchanged; each later attempt runs while the earlier failure is being handled,
so Python chains them as implicit context.
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

T = TypeVar("T")
Attempt = dict[str, str | None]
"""One child call: ``{"model": name, "error": None or "Type: message"}``."""


def call_in_order(
    candidates: Iterable[str],
    call: Callable[[str], T],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[str, T, list[Attempt]]:
    """The first candidate whose ``call`` returns, its result, and every attempt
    (each also given to ``on_attempt`` as it ends, even if all fail)."""
    pending = iter(candidates)
    attempts = _Attempts(on_attempt)

    def attempt(child: str) -> tuple[str, T]:
        try:
            result = call(child)
        except Exception as error:
            attempts.add(_failed(child, error))
            following = next(pending, None) if fallback else None
            if following is None:
                raise
            return attempt(following)
        attempts.add(_answered(child))
        return child, result

    decision, result = attempt(_first(pending))
    return decision, result, attempts.made


async def acall_in_order(
    candidates: Iterable[str],
    call: Callable[[str], Awaitable[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[str, T, list[Attempt]]:
    """Async twin of ``call_in_order``."""
    pending = iter(candidates)
    attempts = _Attempts(on_attempt)

    async def attempt(child: str) -> tuple[str, T]:
        try:
            result = await call(child)
        except Exception as error:
            attempts.add(_failed(child, error))
            following = next(pending, None) if fallback else None
            if following is None:
                raise
            return await attempt(following)
        attempts.add(_answered(child))
        return child, result

    decision, result = await attempt(_first(pending))
    return decision, result, attempts.made


def stream_in_order(
    candidates: Iterable[str],
    open_stream: Callable[[str], Iterable[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[str, Iterator[T], list[Attempt]]:
    """``call_in_order`` for streams: a child that fails before its first chunk
    is replaced; the returned stream starts with that first chunk."""

    def start(child: str) -> Iterator[T]:
        stream = iter(open_stream(child))
        head = list(islice(stream, 1))
        return chain(head, stream)

    return call_in_order(candidates, start, fallback=fallback, on_attempt=on_attempt)


async def astream_in_order(
    candidates: Iterable[str],
    open_stream: Callable[[str], AsyncIterator[T]],
    *,
    fallback: bool,
    on_attempt: Callable[[Attempt], None] | None = None,
) -> tuple[str, AsyncIterator[T], list[Attempt]]:
    """Async twin of ``stream_in_order``."""

    async def start(child: str) -> AsyncIterator[T]:
        stream = open_stream(child)
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


def _first(pending: Iterator[str]) -> str:
    first = next(pending, None)
    if first is None:
        raise ValueError("fallback: no child to call")
    return first


def _failed(child: str, error: Exception) -> Attempt:
    return {"model": child, "error": f"{type(error).__name__}: {error}"}


def _answered(child: str) -> Attempt:
    return {"model": child, "error": None}
