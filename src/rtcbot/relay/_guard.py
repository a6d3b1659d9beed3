"""The relay's defences against strangers, as plain rules fed ``now`` (no loop, no sockets).

* :class:`FailureLockout`: after ``max_failures`` failed registrations (wrong secret, broken
  protocol, no register message in time) from one address within ``window`` seconds, that
  address is refused for ``lockout`` seconds, before any websocket is opened for it.
* :class:`PendingSockets`: at most ``limit`` websockets that have not registered yet; a new
  one beyond that evicts the oldest, so a flood of silent sockets cannot keep a robot from
  registering (it sends its register message as soon as it is connected).
"""

from __future__ import annotations

from collections import OrderedDict, deque
from typing import Generic, TypeVar

__all__ = ["FailureLockout", "PendingSockets"]

T = TypeVar("T")


class FailureLockout:
    """Counts failed registrations per address and locks out addresses that fail too often.

    Memory is bounded: at most ``max_addresses`` addresses are tracked (the least recently
    seen are forgotten first)."""

    def __init__(
        self,
        max_failures: int = 10,
        window: float = 60.0,
        lockout: float = 60.0,
        max_addresses: int = 10_000,
    ) -> None:
        if not isinstance(max_failures, int) or max_failures < 1:
            raise ValueError(f"max_failures must be a positive int, got {max_failures!r}")
        for label, value in (("window", window), ("lockout", lockout)):
            if not value > 0:
                raise ValueError(f"{label} must be positive seconds, got {value!r}")
        self.max_failures = max_failures
        self.window = float(window)
        self.lockout = float(lockout)
        self.max_addresses = max_addresses
        self._failures: OrderedDict[str, deque[float]] = OrderedDict()
        self._locked: dict[str, float] = {}  # address -> end of its lockout
        #: addresses locked out so far (a counter, for statistics)
        self.lockouts = 0

    def locked_for(self, address: str, now: float) -> float:
        """Seconds ``address`` stays locked out (0 if it may try)."""
        until = self._locked.get(address)
        if until is None:
            return 0.0
        if now >= until:
            del self._locked[address]
            return 0.0
        return until - now

    def failed(self, address: str, now: float) -> bool:
        """Record a failure of ``address`` at ``now``; True if it is locked out now."""
        times = self._failures.pop(address, None) or deque()
        self._failures[address] = times  # most recently seen last
        times.append(now)
        while times and times[0] <= now - self.window:
            times.popleft()
        while len(self._failures) > self.max_addresses:
            self._failures.popitem(last=False)
        if len(times) >= self.max_failures:
            times.clear()
            if address not in self._locked:
                self.lockouts += 1
            self._locked[address] = now + self.lockout
            if len(self._locked) > self.max_addresses:
                self._locked.pop(next(iter(self._locked)))
            return True
        return False

    def succeeded(self, address: str) -> None:
        """A registration from ``address`` succeeded: forget its failures."""
        self._failures.pop(address, None)


class PendingSockets(Generic[T]):
    """The sockets that have not registered yet, oldest first, at most ``limit``."""

    def __init__(self, limit: int = 64) -> None:
        if not isinstance(limit, int) or limit < 1:
            raise ValueError(f"limit must be a positive int, got {limit!r}")
        self.limit = limit
        self._items: OrderedDict[T, None] = OrderedDict()
        #: sockets evicted to make room so far
        self.evicted = 0

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> list[T]:
        """Add ``item``; return the oldest ones that must be closed to make room."""
        self._items[item] = None
        out = []
        while len(self._items) > self.limit:
            oldest, _ = self._items.popitem(last=False)
            out.append(oldest)
        self.evicted += len(out)
        return out

    def discard(self, item: T) -> None:
        """``item`` registered or went away."""
        self._items.pop(item, None)
