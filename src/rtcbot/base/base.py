"""Producers and consumers: the one idea of rtcbot.

A **producer** has ``subscribe()`` and ``async get()``; a **consumer** has ``put_nowait()`` and
``putSubscription()``. Wiring a robot is plugging producers into consumers.
"""

from __future__ import annotations

import asyncio
import logging
import weakref
from typing import Any

from .errors import SubscriptionClosed, SubscriptionFull
from .events import _call_kind, baseEventHandler
from .subscriptions import (
    BaseSubscription,
    MostRecentSubscription,
    NoClosedSubscription,
    QueueSubscription,
    describe,
)

__all__ = [
    "BaseSubscriptionConsumer",
    "BaseSubscriptionProducer",
    "NoClosedSubscription",
    "SubscriptionClosed",
    "SubscriptionConsumer",
    "SubscriptionProducer",
    "SubscriptionProducerConsumer",
]


class _Target:
    """One subscriber of a producer, with how to deliver to it and its failure count."""

    __slots__ = ("deliver", "deliver_many", "failures", "subscription")

    def __init__(self, subscription: Any, deliver: Any) -> None:
        self.subscription = subscription
        self.deliver = deliver
        # A bulk path for rtcbot's own queues: a whole batch from a thread in one call.
        self.deliver_many = getattr(subscription, "_put_many", None)
        self.failures = 0


class _CoroutineCallback:
    """Delivers elements to an ``async def`` callback one at a time, in order, from one task
    owned by the producer. Its buffer follows the producer's policy (video keeps the newest)."""

    def __init__(self, producer: BaseSubscriptionProducer, callback: Any, buffer: Any) -> None:
        self._producer = producer
        self._callback = callback
        self._buffer = buffer
        self._task: asyncio.Task[None] | None = None

    def put_nowait(self, element: Any) -> None:
        self._buffer.put_nowait(element)
        if self._task is None:
            self._task = self._producer._spawn(
                self._run(), critical=False, name=f"rtcbot callback {self._callback!r}"
            )

    async def _run(self) -> None:
        while True:
            try:
                element = await self._buffer.get()
            except SubscriptionClosed:
                return
            try:
                await self._callback(element)
            except Exception:
                self._producer._log.exception("subscriber %r raised", self._callback)

    def close(self) -> None:
        self._buffer.close()


class BaseSubscriptionProducer(baseEventHandler):
    """Fans every element it produces out to its subscribers.

    ``defaultSubscriptionClass`` is the buffer created by ``subscribe()`` with no argument and by
    ``get()`` (its policy: video uses :class:`MostRecentSubscription`, the default is a bounded
    :class:`QueueSubscription`). Elements produced before anyone subscribed are kept in one such
    buffer and handed to the first subscriber. ``defaultAutosubscribe`` creates the default
    subscription at once (RTCBot 0.2.5 compatibility; the first-subscriber buffer already keeps
    early elements).

    Subclasses whose elements are mutable (video frames) set ``_copyForSubscriber`` to a
    function returning a copy of an element: every subscriber beyond the first then receives
    its own copy, made before any subscriber sees the element, so each may keep or modify it.
    """

    #: Copy an element for the second and later subscribers (None: all share it).
    _copyForSubscriber: Any = None

    def __init__(
        self,
        defaultSubscriptionClass: Any = QueueSubscription,
        defaultAutosubscribe: bool = False,
        logger: logging.Logger | None = None,
    ) -> None:
        baseEventHandler.__init__(self, logger)
        if not callable(defaultSubscriptionClass):
            raise TypeError(
                f"defaultSubscriptionClass must be a class, got {defaultSubscriptionClass!r}"
            )
        self._defaultSubscriptionClass = defaultSubscriptionClass
        self._shouldClose = False
        self._targets: dict[int, _Target] = {}
        self._fanout: tuple[_Target, ...] = ()
        self._defaultSubscription: Any = None
        self._fastGet: Any = None  # get_nowait of the default subscription, if it is ours
        # Elements produced before the first subscriber; handed to it, then dropped.
        self._early: Any = defaultSubscriptionClass()
        self._earlyDropped = 0
        if defaultAutosubscribe:
            self._setDefaultSubscription(self.subscribe())

    # ---------------------------------------------------------------- subscribing

    def subscribe(self, subscription: Any = None) -> Any:
        """Add a subscriber and return it (so it works as a decorator).

        ``subscription`` is one of: None (a new default subscription is created and returned;
        read it with ``await sub.get()``), an object with ``put_nowait`` (a queue, or any
        consumer such as a display or a connection), an ``async def`` function (called with each
        element, one at a time, in order), or a plain callable (called with each element on the
        event loop). Subscribing to a closed producer gives an already-ended subscription.
        """
        if subscription is None:
            subscription = self._defaultSubscriptionClass()
        kind = _call_kind(subscription)
        if kind == "put":
            deliver = subscription.put_nowait
        elif kind == "coro":
            deliver = _CoroutineCallback(
                self, subscription, self._defaultSubscriptionClass()
            ).put_nowait
        else:
            deliver = subscription
        self._ensureLoop()
        if self._shouldClose:
            # Closed: the first subscriber still gets what was produced before anyone
            # subscribed (a source that ended on its own), then the end of the stream.
            early, self._early = self._early, None
            if early is not None:
                self._handOver(early, _Target(subscription, deliver))
            if isinstance(subscription, BaseSubscription):
                subscription.close()
            owner = getattr(deliver, "__self__", None)
            if isinstance(owner, _CoroutineCallback):
                owner.close()  # its task ends after the handed-over elements
            return subscription
        key = id(subscription)
        if key in self._targets:
            return subscription
        target = _Target(subscription, deliver)
        if isinstance(subscription, BaseSubscription):
            subscription._producerRef = weakref.ref(self)
        self._targets[key] = target
        self._fanout = (*self._fanout, target)
        self._onFanoutChanged()
        if self._early is not None:
            early, self._early = self._early, None
            self._handOver(early, target)
        return subscription

    def _handOver(self, early: Any, target: _Target) -> None:
        """Give the elements kept before the first subscriber to it."""
        while True:
            try:
                element = early.get_nowait()
            except (asyncio.QueueEmpty, SubscriptionClosed):
                break
            self._deliverTo(target, element)
        if self._earlyDropped:
            self._log.warning(
                "%d elements were dropped before the first subscriber", self._earlyDropped
            )

    def unsubscribe(self, subscription: Any = None) -> None:
        """Stop delivering to ``subscription`` (default: the default subscription used by
        ``get()``; a no-op if there is none). Raises ``KeyError`` naming an unknown
        subscription. A no-op once the producer is closed."""
        if self._shouldClose:
            return  # a closed producer has no subscribers left (close ended them)
        if subscription is None:
            subscription = self._defaultSubscription
            if subscription is None:
                return
            self._defaultSubscription = None
            self._fastGet = None
        target = self._targets.pop(id(subscription), None)
        if target is None:
            raise KeyError(f"{subscription!r} is not subscribed to {self!r}")
        if isinstance(subscription, BaseSubscription):
            subscription._producerRef = None
        self._fanout = tuple(t for t in self._fanout if t is not target)
        self._onFanoutChanged()
        owner = getattr(target.deliver, "__self__", None)
        if isinstance(owner, _CoroutineCallback):
            owner.close()

    def unsubscribeAll(self) -> None:
        """Remove every subscriber."""
        for target in list(self._fanout):
            self.unsubscribe(target.subscription)
        self._defaultSubscription = None
        self._fastGet = None

    async def get(self) -> Any:
        """The next element, from the producer's default subscription (created at the first
        call). Raises :class:`SubscriptionClosed` once the producer is closed and the
        subscription drained. Cancelling the wait loses nothing. Several independent readers
        should each ``subscribe()`` instead of sharing ``get()``."""
        fast = self._fastGet
        if fast is not None:
            try:  # the common case of a busy stream: no extra coroutine
                return fast()
            except (IndexError, asyncio.QueueEmpty):
                pass
        subscription = self._defaultSubscription
        if subscription is None:
            if self._shouldClose and self._early is None:
                raise SubscriptionClosed(f"{type(self).__name__} is closed")
            subscription = self._setDefaultSubscription(self.subscribe())
        return await subscription.get()

    def _onFanoutChanged(self) -> None:
        """Hook: the set of subscribers or the default subscription changed."""

    def _setDefaultSubscription(self, subscription: Any) -> Any:
        self._defaultSubscription = subscription
        self._onFanoutChanged()
        kind = type(subscription)
        if kind is QueueSubscription:
            # its buffer's own popleft: the next element, or IndexError (then the slow path
            # waits, or reports the end of the stream)
            self._fastGet = subscription._items.popleft
        elif kind is MostRecentSubscription:
            self._fastGet = subscription.get_nowait
        else:
            self._fastGet = None
        return subscription

    # ---------------------------------------------------------------- producing

    def _deliverTo(self, target: _Target, element: Any) -> None:
        try:
            target.deliver(element)
        except Exception as exc:
            self._deliveryFailed(target, element, exc)

    def _deliveryFailed(
        self, target: _Target, element: Any, exc: Exception | None, count: int = 1
    ) -> None:
        before = target.failures
        target.failures = n = before + count
        if any(before < mark <= n for mark in (1, 10, 100, 1000)) or n // 10000 > before // 10000:
            if exc is None or isinstance(exc, SubscriptionFull):
                self._log.warning(
                    "subscriber %r is not keeping up: %d elements dropped so far",
                    target.subscription,
                    n,
                )
            elif isinstance(exc, SubscriptionClosed):
                self._log.warning(
                    "subscriber %r is closed: %d elements not delivered", target.subscription, n
                )
            else:
                self._log.error(
                    "subscriber %r raised on %s (%d failures so far)",
                    target.subscription,
                    describe(element),
                    n,
                    exc_info=exc,
                )

    def _put_nowait(self, element: Any) -> None:
        """Deliver ``element`` to every subscriber, in subscription order. A subscriber that
        raises (or is full) is logged and counted; the others still receive the element. Must
        be called on the event loop's thread."""
        fanout = self._fanout
        if not fanout:
            early = self._early
            if early is not None and not self._shouldClose:
                try:
                    early.put_nowait(element)
                except SubscriptionFull:
                    self._earlyDropped += 1
            return
        copy = self._copyForSubscriber
        if copy is not None and len(fanout) > 1:
            # every copy exists before anyone can modify the original
            elements = [element, *(copy(element) for _ in range(len(fanout) - 1))]
            for target, own in zip(fanout, elements, strict=True):
                try:
                    target.deliver(own)
                except Exception as exc:
                    self._deliveryFailed(target, own, exc)
            return
        for target in fanout:
            try:
                target.deliver(element)
            except Exception as exc:
                self._deliveryFailed(target, element, exc)

    def _put_many(self, elements: list[Any]) -> None:
        """Deliver a batch (a list, in order) to every subscriber; the same as calling
        ``_put_nowait`` for each element, with one call per subscriber where it can take the
        whole batch."""
        fanout = self._fanout
        if not fanout or (self._copyForSubscriber is not None and len(fanout) > 1):
            for element in elements:  # not self._put_nowait: subclasses override it
                BaseSubscriptionProducer._put_nowait(self, element)
            return
        for target in fanout:
            deliver_many = target.deliver_many
            if deliver_many is not None:
                try:
                    lost = deliver_many(elements)
                except Exception as exc:
                    lost = len(elements)
                    self._deliveryFailed(target, elements[-1], exc, lost)
                else:
                    if lost:
                        self._deliveryFailed(target, elements[-1], None, lost)
                continue
            deliver = target.deliver
            for element in elements:
                try:
                    deliver(element)
                except Exception as exc:
                    self._deliveryFailed(target, element, exc)

    def close(self) -> None:
        """Stop producing: every subscription created by this producer is closed, so its
        readers receive what is buffered and then :class:`SubscriptionClosed`."""
        if self._closedFlag:
            return
        self._shouldClose = True
        fanout, self._fanout = self._fanout, ()
        self._onFanoutChanged()
        self._targets = {}
        if self._early is not None and not _has_items(self._early):
            self._early = None
        for target in fanout:
            sub = target.subscription
            owner = getattr(target.deliver, "__self__", None)
            if isinstance(owner, _CoroutineCallback):
                owner.close()
            if isinstance(sub, BaseSubscription):
                sub.close()
        if self._defaultSubscription is not None:
            self._defaultSubscription.close()
        super().close()


def _has_items(subscription: Any) -> bool:
    stats = getattr(subscription, "statistics", None)
    if stats is not None:
        return stats().buffered > 0
    empty = getattr(subscription, "empty", None)
    return empty is not None and not empty()


class BaseSubscriptionConsumer(baseEventHandler):
    """Reads its input either from elements given to ``put_nowait`` or from a source set with
    ``putSubscription`` (anything with ``async get()``, including a producer).

    ``directPutSubscriptionType`` is the buffer behind ``put_nowait`` (a bounded
    :class:`QueueSubscription` by default; video uses :class:`MostRecentSubscription`).
    Subclasses read with ``await self._get()``.
    """

    def __init__(
        self,
        directPutSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
    ) -> None:
        baseEventHandler.__init__(self, logger)
        self._directPutSubscriptionType = directPutSubscriptionType
        self._directPutSubscription = directPutSubscriptionType()
        self._subscription: Any = self._directPutSubscription
        self._shouldClose = False
        self._getTask: asyncio.Future[Any] | None = None
        self._interrupted: asyncio.Future[Any] | None = None

    @property
    def subscription(self) -> Any:
        """The source set by ``putSubscription``, or None when reading ``put_nowait`` data."""
        if self._subscription is self._directPutSubscription:
            return None
        return self._subscription

    def put_nowait(self, data: Any) -> None:
        """Queue ``data`` for the consumer; if a ``putSubscription`` source was active, reading
        switches back to ``put_nowait`` data. Never blocks. Raises :class:`SubscriptionClosed`
        when the consumer is closed and :class:`SubscriptionFull` when its buffer is full
        (nothing buffered is lost)."""
        if self._shouldClose:
            raise SubscriptionClosed(
                f"{type(self).__name__} is closed: cannot put {describe(data)}"
            )
        if self._subscription is not self._directPutSubscription:
            self._switchTo(self._directPutSubscription)
        self._directPutSubscription.put_nowait(data)

    def putSubscription(self, subscription: Any) -> None:
        """Read from ``subscription`` (anything with ``async get()``, such as a producer or
        ``producer.subscribe()``) from now on; the switch is immediate."""
        self._checkSource(subscription)
        self._ensureLoop()
        self._switchTo(subscription)

    def _checkSource(self, subscription: Any) -> None:
        """The checks of ``putSubscription``: a readable source, an open consumer."""
        if not callable(getattr(subscription, "get", None)):
            raise TypeError(
                f"putSubscription needs an object with an async get() method, got "
                f"{subscription!r}"
            )
        if self._shouldClose:
            raise SubscriptionClosed(f"{type(self).__name__} is closed")

    def stopSubscription(self) -> None:
        """Stop reading the current source; read a fresh, empty ``put_nowait`` buffer."""
        self._directPutSubscription = self._directPutSubscriptionType()
        self._switchTo(self._directPutSubscription)

    def _switchTo(self, subscription: Any) -> None:
        self._subscription = subscription
        self._interrupt()

    def _interrupt(self) -> None:
        task = self._getTask
        if task is not None and not task.done():
            self._interrupted = task
            task.cancel()

    async def _get(self) -> Any:
        """The next input element. Raises :class:`SubscriptionClosed` when the consumer is
        closed, and once when an external source ends (reading then continues from
        ``put_nowait`` data). Cancelling it loses nothing."""
        while True:
            if self._shouldClose:
                raise SubscriptionClosed(f"{type(self).__name__} is closed")
            source = self._subscription
            if isinstance(source, BaseSubscription):
                try:
                    return source.get_nowait()
                except asyncio.QueueEmpty:
                    pass
                except SubscriptionClosed:
                    self._sourceEnded(source)
                    raise
            task = asyncio.ensure_future(source.get())
            self._getTask = task
            try:
                return await task
            except asyncio.CancelledError:
                if self._interrupted is task and not _cancelling():
                    continue
                raise
            except SubscriptionClosed:
                if self._shouldClose:
                    raise
                if source is not self._subscription:
                    continue  # switched while it ended: read the new source
                self._sourceEnded(source)
                raise
            finally:
                self._getTask = None
                if self._interrupted is task:
                    self._interrupted = None

    def _sourceEnded(self, source: Any) -> None:
        if source is not self._directPutSubscription:
            self._subscription = self._directPutSubscription

    def close(self) -> None:
        """Stop consuming: a pending ``_get()`` raises :class:`SubscriptionClosed`, later
        ``put_nowait`` raises it too."""
        if self._closedFlag:
            return
        self._shouldClose = True
        self._interrupt()
        self._directPutSubscription.close()
        super().close()


def _cancelling() -> int:
    """How many cancellation requests the current task has pending (0 on Python < 3.11)."""
    task = asyncio.current_task()
    fn = getattr(task, "cancelling", None)
    return fn() if fn is not None else 0


class SubscriptionProducer(BaseSubscriptionProducer):
    """A producer whose elements are given by ``put_nowait``: a simple in-process stream."""

    def put_nowait(self, element: Any) -> None:
        """Deliver ``element`` to every subscriber. Raises :class:`SubscriptionClosed` after
        close."""
        if self._shouldClose:
            raise SubscriptionClosed(
                f"{type(self).__name__} is closed: cannot put {describe(element)}"
            )
        self._ensureLoop()
        self._put_nowait(element)


class SubscriptionConsumer(BaseSubscriptionConsumer):
    """A consumer that exposes its input as ``get()``: a simple queue with the consumer API."""

    async def get(self) -> Any:
        """The next input element (see ``_get``). Cancelling the wait loses nothing."""
        return await self._get()


class SubscriptionProducerConsumer(BaseSubscriptionConsumer, BaseSubscriptionProducer):
    """Both at once, as a connection is: ``put_nowait``/``putSubscription`` feed what it sends
    (read by the subclass with ``_get()``), ``subscribe``/``get`` give what it receives (fed by
    the subclass with ``_put_nowait()``)."""

    def __init__(
        self,
        directPutSubscriptionType: Any = QueueSubscription,
        defaultSubscriptionType: Any = QueueSubscription,
        logger: logging.Logger | None = None,
        defaultAutosubscribe: bool = False,
    ) -> None:
        BaseSubscriptionConsumer.__init__(self, directPutSubscriptionType, logger)
        BaseSubscriptionProducer.__init__(
            self, defaultSubscriptionType, defaultAutosubscribe, logger
        )

