"""Subscriptions: the buffers between a producer and whoever reads from it.

A subscription is anything with ``put_nowait(x)`` (the producer pushes into it) and
``async get()`` (a reader awaits the next element). Each class here states its buffering policy
in its name and docstring, is bounded, and reports :meth:`statistics`:

* :class:`QueueSubscription` -- first in, first out, bounded; when full it either refuses the new
  element with :class:`SubscriptionFull` (messages: nothing is lost silently) or drops the oldest
  (audio: a bounded backlog). The default everywhere a queue is needed.
* :class:`MostRecentSubscription` -- keeps only the newest element (video: a slow reader skips
  frames and never falls behind).
* :class:`EventSubscription` -- one value, delivered to every reader (one-shot events).
* :class:`RebatchSubscription` -- re-chunks numpy arrays into blocks of a fixed length (audio).
* :class:`GetterSubscription`, :class:`CallbackSubscription`, :class:`DelayedSubscription` --
  adapters kept from RTCBot 0.2.5.

All of them are used from the event loop's thread only (they are not thread-safe); the thread and
process bridges in :mod:`rtcbot.base` are what move data across threads. None of them touches an
event loop until the first ``await get()``, so they can be created at module level.

``close()`` ends a subscription: readers first receive what is still buffered, then
:class:`SubscriptionClosed`. Cancelling a task that waits in ``get()`` loses nothing: the element
it would have received stays buffered for the next ``get()``.
"""

from __future__ import annotations

import asyncio
import collections
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

import numpy as np

from .errors import SubscriptionClosed, SubscriptionFull

__all__ = [
    "BaseSubscription",
    "CallbackSubscription",
    "DelayedSubscription",
    "EventSubscription",
    "GetterSubscription",
    "MostRecentSubscription",
    "QueueSubscription",
    "RebatchSubscription",
    "SubscriptionStatistics",
]

T = TypeVar("T")

#: Default bound of a message queue: large enough that a healthy reader never hits it, small
#: enough that a reader that stopped reading cannot exhaust memory.
DEFAULT_QUEUE_SIZE = 10_000


@dataclass(frozen=True)
class SubscriptionStatistics:
    """Counters of one subscription.

    * ``buffered`` -- elements waiting to be read now.
    * ``peak`` -- the most elements ever buffered at once.
    * ``dropped`` -- elements lost by the buffering policy (overwritten, dropped oldest, or
      refused because the buffer was full).
    * ``delivered`` -- elements returned by ``get()``.
    """

    buffered: int
    peak: int
    dropped: int
    delivered: int


def describe(value: Any) -> str:
    """A short description of a value for error messages (never dumps a whole array)."""
    if isinstance(value, np.ndarray):
        return f"numpy array shape={value.shape} dtype={value.dtype}"
    text = repr(value)
    if len(text) > 80:
        text = text[:77] + "..."
    return f"{type(value).__name__} {text}"


class _Waiters:
    """Futures of tasks waiting in ``get()``, created on the running loop when needed."""

    __slots__ = ("_futures",)

    def __init__(self) -> None:
        self._futures: collections.deque[asyncio.Future[None]] = collections.deque()

    async def wait(self) -> None:
        future = asyncio.get_running_loop().create_future()
        self._futures.append(future)
        try:
            await future
        except asyncio.CancelledError:
            try:
                self._futures.remove(future)
            except ValueError:
                # We were woken and cancelled at the same time: pass the wake-up on, so the
                # element that woke us is not stranded.
                self.wake_one()
            raise

    def wake_one(self) -> None:
        futures = self._futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(None)
                return

    def wake(self, n: int) -> None:
        futures = self._futures
        while n > 0 and futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(None)
                n -= 1

    def wake_all(self) -> None:
        futures = self._futures
        while futures:
            future = futures.popleft()
            if not future.done():
                future.set_result(None)


class BaseSubscription(Generic[T]):
    """Common behaviour of rtcbot's subscriptions: ``close()``, ``closed``, ``statistics()``.

    Producers close the :class:`BaseSubscription` instances they feed when they close, which is
    how their readers learn that the stream ended.
    """

    def __init__(self) -> None:
        self._closed = False
        self._waiters = _Waiters()
        self._peak = 0
        self._dropped = 0
        self._delivered = 0
        self._producerRef: Any = None

    @property
    def producer(self) -> Any:
        """The producer this subscription was given to with ``subscribe()`` (None if none, or
        if that producer no longer exists)."""
        ref = self._producerRef
        return ref() if ref is not None else None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` was called."""
        return self._closed

    def close(self) -> None:
        """End the stream: readers get what is buffered, then :class:`SubscriptionClosed`.

        Idempotent; never blocks.
        """
        if not self._closed:
            self._closed = True
            self._waiters.wake_all()

    def _buffered(self) -> int:
        raise NotImplementedError

    def statistics(self) -> SubscriptionStatistics:
        """The counters of this subscription (see :class:`SubscriptionStatistics`)."""
        return SubscriptionStatistics(self._buffered(), self._peak, self._dropped, self._delivered)

    def put_nowait(self, element: T) -> None:  # pragma: no cover - abstract
        raise NotImplementedError

    def get_nowait(self) -> T:  # pragma: no cover - abstract
        raise NotImplementedError

    async def get(self) -> T:
        """Wait for the next element and return it.

        Raises :class:`SubscriptionClosed` once the subscription is closed and empty. Cancelling
        the wait loses nothing.
        """
        while True:
            try:
                return self.get_nowait()
            except asyncio.QueueEmpty:
                await self._waiters.wait()

    def __repr__(self) -> str:
        s = self.statistics()
        state = "closed" if self._closed else "open"
        return (
            f"<{type(self).__name__} {state} buffered={s.buffered} dropped={s.dropped} "
            f"delivered={s.delivered}>"
        )


class QueueSubscription(BaseSubscription[T]):
    """First in, first out, at most ``maxsize`` elements.

    ``overflow`` says what happens when a ``put_nowait`` finds the queue full:

    * ``"raise"`` (default, for messages): the new element is refused with
      :class:`SubscriptionFull` at the call site; what is buffered stays.
    * ``"drop_oldest"`` (for audio and sensor streams): the oldest element is discarded to make
      room.

    Both count the lost element in ``statistics().dropped``.
    """

    def __init__(self, maxsize: int = DEFAULT_QUEUE_SIZE, overflow: str = "raise") -> None:
        super().__init__()
        if not isinstance(maxsize, int) or maxsize < 1:
            raise ValueError(f"QueueSubscription maxsize must be a positive int, got {maxsize!r}")
        if overflow not in ("raise", "drop_oldest"):
            raise ValueError(
                f"QueueSubscription overflow must be 'raise' or 'drop_oldest', got {overflow!r}"
            )
        self.maxsize = maxsize
        self.overflow = overflow
        self._items: collections.deque[T] = collections.deque()
        self._accepted = 0  # delivered = accepted - dropped oldest - buffered (get stays lean)

    def _buffered(self) -> int:
        return len(self._items)

    def statistics(self) -> SubscriptionStatistics:
        buffered = len(self._items)
        evicted = self._evicted
        return SubscriptionStatistics(
            buffered, self._peak, self._dropped, self._accepted - evicted - buffered
        )

    @property
    def _evicted(self) -> int:
        # accepted elements that were later dropped to make room (drop_oldest only)
        return self._dropped if self.overflow == "drop_oldest" else 0

    def put_nowait(self, element: T) -> None:
        """Append ``element``; see the class docstring for a full queue. Raises
        :class:`SubscriptionClosed` if the subscription is closed."""
        if self._closed:
            raise SubscriptionClosed(f"cannot put {describe(element)}: subscription is closed")
        items = self._items
        if len(items) >= self.maxsize:
            self._dropped += 1
            if self.overflow == "raise":
                raise SubscriptionFull(
                    f"cannot put {describe(element)}: queue full ({self.maxsize} elements "
                    "waiting; the reader is not keeping up)"
                )
            items.popleft()
        items.append(element)
        self._accepted += 1
        if len(items) > self._peak:
            self._peak = len(items)
        self._waiters.wake_one()

    def _put_many(self, elements: list[T]) -> int:
        """Append a batch with one wake-up, applying the overflow policy as ``put_nowait`` would
        element by element. Returns how many elements were lost (refused or dropped); raises
        :class:`SubscriptionClosed` if closed."""
        if self._closed:
            raise SubscriptionClosed("cannot put: subscription is closed")
        items = self._items
        room = self.maxsize - len(items)
        lost = 0
        if len(elements) <= room:
            items.extend(elements)
            self._accepted += len(elements)
        elif self.overflow == "raise":
            lost = len(elements) - room
            items.extend(elements[:room])
            self._accepted += room
        else:
            items.extend(elements)
            self._accepted += len(elements)
            lost = len(items) - self.maxsize
            for _ in range(lost):
                items.popleft()
        self._dropped += lost
        if len(items) > self._peak:
            self._peak = len(items)
        self._waiters.wake(len(elements) - lost)
        return lost

    def get_nowait(self) -> T:
        """Return the oldest element; ``asyncio.QueueEmpty`` if none is buffered,
        :class:`SubscriptionClosed` if closed and empty."""
        try:
            return self._items.popleft()
        except IndexError:
            if self._closed:
                raise SubscriptionClosed("subscription is closed") from None
            raise asyncio.QueueEmpty from None

    def qsize(self) -> int:
        """Number of buffered elements (``asyncio.Queue`` compatible)."""
        return len(self._items)

    def empty(self) -> bool:
        """True if nothing is buffered (``asyncio.Queue`` compatible)."""
        return not self._items


class MostRecentSubscription(BaseSubscription[T]):
    """Keeps only the newest element: ``get()`` returns the latest one not yet returned.

    The policy for video: a reader slower than the producer skips frames instead of falling
    behind. Each overwritten element counts as dropped.
    """

    _EMPTY: Any = object()

    def __init__(self) -> None:
        super().__init__()
        self._element: Any = self._EMPTY

    def _buffered(self) -> int:
        return 0 if self._element is self._EMPTY else 1

    def put_nowait(self, element: T) -> None:
        """Replace the buffered element (if any) with ``element``."""
        if self._closed:
            raise SubscriptionClosed(f"cannot put {describe(element)}: subscription is closed")
        if self._element is not self._EMPTY:
            self._dropped += 1
        self._element = element
        self._peak = 1
        self._waiters.wake_one()

    def get_nowait(self) -> T:
        element = self._element
        if element is self._EMPTY:
            if self._closed:
                raise SubscriptionClosed("subscription is closed")
            raise asyncio.QueueEmpty
        self._element = self._EMPTY
        self._delivered += 1
        return element


class EventSubscription(BaseSubscription[T]):
    """A one-shot value: the first ``put_nowait(v)`` stores ``v``; every ``get()`` (and
    ``await sub``) then returns it. Later puts are ignored.
    """

    _UNSET: Any = object()

    def __init__(self) -> None:
        super().__init__()
        self._value: Any = self._UNSET

    def _buffered(self) -> int:
        return 0 if self._value is self._UNSET else 1

    @property
    def is_set(self) -> bool:
        """True once a value arrived."""
        return self._value is not self._UNSET

    def put_nowait(self, element: T) -> None:
        if self._value is self._UNSET and not self._closed:
            self._value = element
            self._peak = 1
            self._waiters.wake_all()

    def get_nowait(self) -> T:
        if self._value is self._UNSET:
            if self._closed:
                raise SubscriptionClosed("event subscription closed before a value arrived")
            raise asyncio.QueueEmpty
        self._delivered += 1
        return self._value

    def __await__(self):
        return self.get().__await__()


class GetterSubscription(Generic[T]):
    """Adapts a zero-argument coroutine function into a subscription: ``get()`` awaits it."""

    def __init__(self, callback: Callable[[], Awaitable[T]]) -> None:
        if not callable(callback):
            raise TypeError(f"GetterSubscription needs a coroutine function, got {callback!r}")
        self._callback = callback

    async def get(self) -> T:
        """Await the wrapped coroutine function once and return its result. Cancelling it
        cancels that call (what it loses is up to the wrapped function)."""
        return await self._callback()


class CallbackSubscription(Generic[T]):
    """``put_nowait(x)`` schedules ``callback(x)`` on the event loop (or calls it at once when
    ``runDirect``). Kept for RTCBot 0.2.5 code; ``producer.subscribe(callback)`` does the same.
    ``loop`` is accepted for compatibility; by default the running loop is used."""

    def __init__(
        self,
        callback: Callable[[T], Any],
        loop: asyncio.AbstractEventLoop | None = None,
        runDirect: bool = False,
    ) -> None:
        if not callable(callback):
            raise TypeError(f"CallbackSubscription needs a callable, got {callback!r}")
        self._callback = callback
        self._loop = loop
        self._runDirect = runDirect

    def put_nowait(self, element: T) -> None:
        if self._runDirect:
            self._callback(element)
        else:
            (self._loop or asyncio.get_running_loop()).call_soon(self._callback, element)


class DelayedSubscription(Generic[T]):
    """Subscribes to ``SubscriptionWriter`` only at the first ``get()``, so no backlog builds up
    before a reader exists (RTCBot used it for audio that starts playing later)."""

    def __init__(self, SubscriptionWriter: Any, subscription: Any = None) -> None:
        self._writer = SubscriptionWriter
        self._requested = subscription
        self._subscription: Any = None

    async def get(self) -> T:
        """Subscribe at the first call, then the next element. Cancelling the wait loses
        nothing (the subscription stays in place)."""
        if self._subscription is None:
            self._subscription = self._writer.subscribe(self._requested)
        return await self._subscription.get()

    def unsubscribe(self) -> None:
        """Stop receiving from the writer (a no-op before the first ``get()``)."""
        if self._subscription is not None:
            self._writer.unsubscribe(self._subscription)
            self._subscription = None


class RebatchSubscription(BaseSubscription[np.ndarray]):
    """Re-chunks numpy arrays along ``axis`` into arrays of exactly ``samples`` elements.

    ``put_nowait`` accepts arrays of any length along ``axis`` (the other dimensions must stay
    the same); ``get()`` returns arrays whose size along ``axis`` is ``samples``. A remainder
    shorter than ``samples`` waits for the next input. Used to turn audio blocks of any size
    into 20 ms frames (960 samples at 48 kHz). ``axis`` may be negative, as in numpy.
    Completed batches go to ``subscription`` (default: a :class:`QueueSubscription` that drops
    the oldest batch when 100 are waiting).
    """

    def __init__(self, samples: int, axis: int = 0, subscription: Any = None) -> None:
        super().__init__()
        if not isinstance(samples, (int, np.integer)) or samples < 1:
            raise ValueError(f"RebatchSubscription samples must be a positive int, got {samples!r}")
        if not isinstance(axis, (int, np.integer)):
            raise TypeError(f"RebatchSubscription axis must be an int, got {axis!r}")
        self.samples = int(samples)
        self.axis = int(axis)
        self._inner = (
            subscription
            if subscription is not None
            else QueueSubscription(100, overflow="drop_oldest")
        )
        self._remainder: np.ndarray | None = None

    def _buffered(self) -> int:
        stats = getattr(self._inner, "statistics", None)
        return stats().buffered if stats else 0

    def put_nowait(self, element: np.ndarray) -> None:
        """Add ``element`` (a numpy array); complete batches become readable at once.

        Raises ``ValueError`` naming the shapes if ``element`` cannot be joined to the
        remainder (another number of dimensions or channels); the remainder is kept.
        """
        if self._closed:
            raise SubscriptionClosed(f"cannot put {describe(element)}: subscription is closed")
        data = np.asarray(element)
        if data.ndim == 0:
            raise ValueError(f"RebatchSubscription needs arrays, got {describe(element)}")
        if not -data.ndim <= self.axis < data.ndim:
            raise ValueError(
                f"RebatchSubscription axis {self.axis} is out of range for {describe(element)}"
            )
        axis = self.axis % data.ndim
        if self._remainder is not None:
            rem = self._remainder
            if rem.ndim != data.ndim or any(
                a != b
                for i, (a, b) in enumerate(zip(rem.shape, data.shape, strict=True))
                if i != axis
            ):
                raise ValueError(
                    f"RebatchSubscription cannot join {describe(element)} to buffered samples "
                    f"of shape {rem.shape} along axis {self.axis}"
                )
            data = np.concatenate((rem, data), axis=axis)
            self._remainder = None
        length = data.shape[axis]
        start = 0
        while length - start >= self.samples:
            index = [slice(None)] * data.ndim
            index[axis] = slice(start, start + self.samples)
            self._inner.put_nowait(data[tuple(index)])
            start += self.samples
        if start < length:
            index = [slice(None)] * data.ndim
            index[axis] = slice(start, length)
            self._remainder = data[tuple(index)].copy()

    def get_nowait(self) -> np.ndarray:
        element = self._inner.get_nowait()
        self._delivered += 1
        return element

    async def get(self) -> np.ndarray:
        """The next batch of exactly ``samples`` along ``axis``. Cancelling the wait loses
        nothing."""
        element = await self._inner.get()
        self._delivered += 1
        return element

    def close(self) -> None:
        super().close()
        close = getattr(self._inner, "close", None)
        if close is not None:
            close()


class NoClosedSubscription(Generic[T]):
    """Wraps a zero-argument coroutine function as ``get()``; when it raises
    :class:`SubscriptionClosed`, ``get()`` keeps waiting (until cancelled) instead of ending.

    Kept for RTCBot 0.2.5 code that chains a stream which must never report its end.
    """

    def __init__(self, callback: Callable[[], Awaitable[T]]) -> None:
        if not callable(callback):
            raise TypeError(f"NoClosedSubscription needs a coroutine function, got {callback!r}")
        self._callback = callback

    async def get(self) -> T:
        """The next element; never raises :class:`SubscriptionClosed`. Cancelling it loses
        nothing that the wrapped function had not already returned."""
        try:
            return await self._callback()
        except SubscriptionClosed:
            await asyncio.get_running_loop().create_future()
            raise AssertionError("unreachable") from None
