"""Rate-limited log lines: a stranger who sends a thousand bad messages gets a few lines logged,
then a count, not a thousand lines.

:class:`RateLimit` is the rule (a token bucket fed ``now``, no clock of its own, testable without
a loop); :class:`RateLimitedLogger` applies it to a :class:`logging.Logger`; :func:`short_repr`
cuts the ``repr`` of a value a peer sent to a length fit for one log line.
"""

from __future__ import annotations

import logging
import reprlib
import time
from collections.abc import Callable
from typing import Any

__all__ = ["RateLimit", "RateLimitedLogger", "short_repr"]

_repr = reprlib.Repr()
_repr.maxstring = 80
_repr.maxother = 80
_repr.maxlevel = 3
_repr.maxdict = _repr.maxlist = _repr.maxtuple = _repr.maxset = 8


def short_repr(value: Any, limit: int = 200) -> str:
    """``repr(value)``, abbreviated (nested containers, long strings) and at most ``limit``
    characters: safe to log for a value of any size or depth a peer may send."""
    try:
        text = _repr.repr(value)
    except Exception:  # a hostile __repr__, or one too deep: say what it is
        text = f"<{type(value).__name__}>"
    if len(text) > limit:
        text = text[: limit - 3] + "..."
    return text


class RateLimit:
    """A token bucket: up to ``burst`` events at once, then ``per_second`` on average.

    ``allow(now)`` (``now`` in seconds, any monotonic clock) says whether one more event may
    happen; refused ones are counted, and ``take_suppressed()`` returns (and resets) that
    count, for the next allowed line to report."""

    def __init__(self, per_second: float = 1.0, burst: int = 10) -> None:
        if not per_second > 0:
            raise ValueError(f"per_second must be positive, got {per_second!r}")
        if not isinstance(burst, int) or burst < 1:
            raise ValueError(f"burst must be a positive int, got {burst!r}")
        self.per_second = float(per_second)
        self.burst = burst
        self._tokens = float(burst)
        self._last: float | None = None
        self.suppressed = 0

    def allow(self, now: float) -> bool:
        """True if an event at ``now`` fits the limit (and uses up its share)."""
        if self._last is not None:
            self._tokens = min(self.burst, self._tokens + (now - self._last) * self.per_second)
        self._last = now
        if self._tokens >= 1:
            self._tokens -= 1
            return True
        self.suppressed += 1
        return False

    def take_suppressed(self) -> int:
        """How many events were refused since the last call."""
        count, self.suppressed = self.suppressed, 0
        return count


class RateLimitedLogger:
    """A logger whose lines are rate-limited (``per_second``, ``burst``: see
    :class:`RateLimit`). The first line allowed after some were dropped says how many.

    ``warning(msg, *args)``, ``info``, ``error``, ``debug``: as :class:`logging.Logger`
    (``exc_info`` too). Lines below the logger's level cost nothing and use no share."""

    def __init__(
        self,
        logger: logging.Logger,
        per_second: float = 1.0,
        burst: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.logger = logger
        self.limit = RateLimit(per_second, burst)
        self._clock = clock

    def log(self, level: int, msg: str, *args: Any, **kwargs: Any) -> bool:
        """Log one line if the limit allows; True if it was logged."""
        if not self.logger.isEnabledFor(level):
            return False
        if not self.limit.allow(self._clock()):
            return False
        dropped = self.limit.take_suppressed()
        if dropped:
            msg = f"{msg} ({dropped} similar lines suppressed)"
        self.logger.log(level, msg, *args, **kwargs)
        return True

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.DEBUG, msg, *args, **kwargs)

    def info(self, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.INFO, msg, *args, **kwargs)

    def warning(self, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.WARNING, msg, *args, **kwargs)

    def error(self, msg: str, *args: Any, **kwargs: Any) -> bool:
        return self.log(logging.ERROR, msg, *args, **kwargs)
