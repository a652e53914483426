"""Provider cooldown: a child that keeps failing is tried last for a while.

After ``allowed_fails`` consecutive failed calls (any exception: HTTP 5xx, rate
limit, timeout), a child cools down for ``cooldown_time`` seconds: the router
still decides as usual, but ``Decision.order`` puts the cooling children after
all the others (as
LiteLLM's router does; here they stay a last resort, so cooldown alone never
fails a call). One success ends a child's failure streak. The answer's
``response_metadata["metallm"]["cooling_down"]`` lists the children deferred for
it; ``stats()`` counts ``cooldowns`` started and children ``cooling_down`` now.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from langchain_metallm.core.checks import check_number
from langchain_metallm.fallback import Attempt


class Cooldowns:
    """Thread-safe failure streaks and cooldown deadlines of the children."""

    def __init__(
        self,
        allowed_fails: int,
        cooldown_time: float,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowed_fails = 1
        self.cooldown_time = 0.0
        self.configure(allowed_fails=allowed_fails, cooldown_time=cooldown_time)
        self._clock = clock
        self._streaks: dict[str, int] = {}
        self._until: dict[str, float] = {}
        self._started = 0
        self._lock = threading.Lock()

    def configure(
        self, *, allowed_fails: object = None, cooldown_time: object = None
    ) -> None:
        """Change the failures allowed or the cooldown's length (checked)."""
        if allowed_fails is not None:
            if (
                isinstance(allowed_fails, bool)
                or not isinstance(allowed_fails, int)
                or allowed_fails < 1
            ):
                raise ValueError(
                    f"allowed_fails: must be an integer >= 1, got {allowed_fails!r}"
                )
            self.allowed_fails = allowed_fails
        if cooldown_time is not None:
            self.cooldown_time = check_number("cooldown_time", cooldown_time, low=0.0)

    def observe(self, attempt: Attempt) -> None:
        """Learn from one child call: a failure extends its streak, a success
        ends it."""
        model = str(attempt["model"])
        with self._lock:
            if attempt["error"] is None:
                self._streaks.pop(model, None)
                return
            streak = self._streaks.get(model, 0) + 1
            self._streaks[model] = streak
            if streak >= self.allowed_fails:
                self._until[model] = self._clock() + self.cooldown_time
                self._streaks[model] = 0
                self._started += 1

    def cooling(self) -> list[str]:
        """Children cooling down now."""
        if not self._until:  # nothing ever cooled down: the common, lock-free case
            return []
        now = self._clock()
        with self._lock:
            return sorted(m for m, until in self._until.items() if until > now)

    def stats(self) -> dict[str, int]:
        """``cooldowns`` started so far and children ``cooling_down`` now."""
        cooling = len(self.cooling())
        with self._lock:
            return {"cooldowns": self._started, "cooling_down": cooling}
