"""Session resume: the rules of a session that outlives its transport, as a plain class fed
``now`` (seconds, any monotonic clock). The connection wires it to loop timers and aiortc; its
tests need no loop.

States::

    "new" --connected--> "up" --lost--> "lost" --connected--> "up"
                                          |
                                          +--expired (resume window) / closed--> "closed"

While ``"lost"``, the side that offered makes resume attempts: the first at once, then after a
back-off that starts at ``backoff_initial`` seconds and doubles up to ``backoff_max``. Each
attempt has ``attempt_timeout`` seconds to bring a new transport up. The window (``window``
seconds from the loss; ``None``: forever) bounds the whole gap.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

__all__ = [
    "DEFAULT_RESUME_WINDOW",
    "ResumePolicy",
    "ResumeStatistics",
    "check_window",
]

#: Seconds a lost link may take to come back before the session closes.
DEFAULT_RESUME_WINDOW = 30.0


def check_window(value: Any) -> float | None:
    """``resume_window`` as given by a user: None (forever), or seconds >= 0 (0: never
    resume, the session closes when its link is lost)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"resume_window must be seconds (a number) or None, got {value!r}")
    if math.isnan(value) or value < 0:
        raise ValueError(f"resume_window must be >= 0 seconds or None, got {value!r}")
    return None if math.isinf(value) else float(value)


def _positive(name: str, value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number of seconds, got {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive, finite number of seconds, got {value!r}")
    return float(value)


@dataclass(frozen=True)
class ResumeStatistics:
    """What the link of a session went through (times in seconds).

    * ``state`` -- ``"new"``, ``"up"``, ``"lost"`` or ``"closed"``.
    * ``losses`` -- times the link was lost; ``restores`` -- times it came back.
    * ``attempts`` -- resume attempts made (offering side); ``failed_attempts`` -- of them,
      those that did not bring the link back.
    * ``last_gap_s``, ``longest_gap_s`` -- the length of the latest and of the longest gap that
      ended (None before the first).
    * ``gap_s`` -- how long the current gap has lasted (None while the link is up).
    """

    state: str
    losses: int
    restores: int
    attempts: int
    failed_attempts: int
    last_gap_s: float | None
    longest_gap_s: float | None
    gap_s: float | None


class ResumePolicy:
    """The link state of one session and when to try to bring it back.

    Use: :meth:`connected` each time a transport comes up (True when that ended a gap);
    :meth:`lost` when the link is lost (True if it was up: a new gap starts); while lost,
    :meth:`attempt_due` / :meth:`next_attempt` say when to start an attempt, and
    :meth:`attempt_started` / :meth:`attempt_failed` report it; :meth:`expired` says the
    window is over; :meth:`close` ends it.
    """

    def __init__(
        self,
        window: float | None = DEFAULT_RESUME_WINDOW,
        *,
        backoff_initial: float = 0.2,
        backoff_max: float = 1.0,
        attempt_timeout: float = 3.0,
    ) -> None:
        self.window = check_window(window)
        self.backoff_initial = _positive("backoff_initial", backoff_initial)
        self.backoff_max = _positive("backoff_max", backoff_max)
        if self.backoff_max < self.backoff_initial:
            raise ValueError(
                f"backoff_max ({backoff_max!r}) must be >= backoff_initial ({backoff_initial!r})"
            )
        self.attempt_timeout = _positive("attempt_timeout", attempt_timeout)
        self.state = "new"
        self._lost_at: float | None = None
        self._next_attempt: float | None = None
        self._backoff = self.backoff_initial
        self._attempting = False
        self._losses = 0
        self._restores = 0
        self._attempts = 0
        self._failed = 0
        self._last_gap: float | None = None
        self._longest_gap: float | None = None

    @property
    def enabled(self) -> bool:
        """False when the window is 0: a lost link ends the session at once."""
        return self.window is None or self.window > 0

    @property
    def up(self) -> bool:
        return self.state == "up"

    @property
    def is_lost(self) -> bool:
        return self.state == "lost"

    @property
    def lost_at(self) -> float | None:
        """When the current gap started (None while not lost)."""
        return self._lost_at if self.state == "lost" else None

    @property
    def deadline(self) -> float | None:
        """When the session closes if the link is not back (None: not lost, or no window)."""
        if self.state != "lost" or self.window is None or self._lost_at is None:
            return None
        return self._lost_at + self.window

    def connected(self, now: float) -> bool:
        """A transport is up (its data channels open). True if it ended a gap."""
        if self.state == "closed":
            return False
        restored = self.state == "lost"
        if restored and self._lost_at is not None:
            gap = max(0.0, now - self._lost_at)
            self._last_gap = gap
            self._longest_gap = gap if self._longest_gap is None else max(self._longest_gap, gap)
            self._restores += 1
            if self._attempting:
                self._attempting = False
        self.state = "up"
        self._lost_at = None
        self._next_attempt = None
        self._backoff = self.backoff_initial
        return restored

    def lost(self, now: float) -> bool:
        """The link is lost. True if it was up (a new gap starts, the first attempt is due at
        once); False if it was already lost, never up, or the session is closed."""
        if self.state != "up":
            return False
        self.state = "lost"
        self._losses += 1
        self._lost_at = now
        self._next_attempt = now
        self._backoff = self.backoff_initial
        self._attempting = False
        return True

    def attempt_due(self, now: float) -> bool:
        return (
            self.state == "lost"
            and not self._attempting
            and self._next_attempt is not None
            and now >= self._next_attempt
        )

    def next_attempt(self) -> float | None:
        """When the next attempt may start (None: not lost, or one is running)."""
        if self.state != "lost" or self._attempting:
            return None
        return self._next_attempt

    def attempt_started(self, now: float) -> float:
        """An attempt starts; returns its deadline (``now + attempt_timeout``)."""
        self._attempting = True
        self._attempts += 1
        return now + self.attempt_timeout

    def attempt_failed(self, now: float) -> None:
        """The attempt did not bring the link back: the next one waits for the back-off."""
        if not self._attempting:
            return
        self._attempting = False
        self._failed += 1
        if self.state == "lost":
            self._next_attempt = now + self._backoff
            self._backoff = min(self._backoff * 2, self.backoff_max)

    def expired(self, now: float) -> bool:
        """True once the gap has lasted the whole window."""
        deadline = self.deadline
        return deadline is not None and now >= deadline

    def close(self) -> None:
        self.state = "closed"
        self._attempting = False
        self._next_attempt = None

    def statistics(self, now: float | None = None) -> ResumeStatistics:
        gap = None
        if self.state == "lost" and self._lost_at is not None and now is not None:
            gap = max(0.0, now - self._lost_at)
        return ResumeStatistics(
            state=self.state,
            losses=self._losses,
            restores=self._restores,
            attempts=self._attempts,
            failed_attempts=self._failed,
            last_gap_s=self._last_gap,
            longest_gap_s=self._longest_gap,
            gap_s=gap,
        )
